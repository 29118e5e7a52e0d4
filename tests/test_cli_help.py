"""Every ``llmrelay`` help screen, checked against the parser it describes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from llmrelay.cli import app

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})  # wide: a row stays one line


def command_paths(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """``()``, ``("chat",)``, ``("keys",)``, ``("keys", "create")``...: every command and group."""
    command = command or typer.main.get_command(app)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


PATHS = sorted(command_paths())
OPTION_ROW = re.compile(r"^│ +(\* +)?-")  # "*": a required option


def options_shown(help_text: str) -> dict[str, str]:
    """Each option name in the help's Options panel -> what help shows after the
    names on its row, before the help text ("" for a flag)."""
    shown = {}
    for line in help_text.splitlines():
        if not OPTION_ROW.match(line):
            continue
        cells = re.split(r" {2,}", line.strip("│ *"))  # columns are two spaces or more apart
        names = [c for c in cells if re.fullmatch(r"-[-\w]+", c)]
        rest = cells[len(names) :]
        # A value is shown as <type>, or a metavar in capitals (URL, N, KEY_ID, YYYY-MM-DD).
        value = rest[0] if len(rest) > 1 or (rest and re.fullmatch(r"<.*|[A-Z][A-Z0-9_-]*", rest[0])) else ""
        for name in names:
            shown[name] = value
    return shown


def parsing(path: tuple[str, ...]) -> tuple[Any, Any]:
    """The command at ``path`` and a context to parse its options in (under its
    parents', as when it runs: ``-h`` comes from the root's settings)."""
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("llmrelay", [], resilient_parsing=True)
    for name in path:
        command = command.commands[name]
        ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True)
    ctx.resilient_parsing = False  # a parse error is an error
    return command, ctx


def test_every_command_is_checked() -> None:
    assert {(), ("chat",), ("serve",), ("keys", "create"), ("tenants", "update"), ("test-connection",)} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "llmrelay")
def test_help_shows_what_the_parser_reads(path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0, result.output
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert "[[" not in usage and "{{" not in usage, usage  # a metavar bracketed twice
    assert not re.search(r"[\[{][a-z_]+[\]}]", usage), usage  # arguments in capitals, as the help texts name them
    shown = options_shown(result.output)
    assert {"--help", "-h", "--debug", "--config"} <= set(shown), shown  # both work after every command too
    for name, value in shown.items():
        assert "bool" not in value and "list[" not in value, (name, value)  # a flag takes no value
    command, ctx = parsing(path)
    for param in command.get_params(ctx):
        if param.param_type_name == "option" and not param.hidden:
            assert set(param.opts) <= set(shown), (param.opts, shown)  # every option is shown


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "llmrelay")
def test_every_option_in_help_is_parsed_as_shown(path: tuple[str, ...]) -> None:
    """Each option as help shows it (a flag alone, another with a value) is one
    option to the parser, that takes exactly what help shows."""
    command, ctx = parsing(path)
    by_name = {name: param for param in command.get_params(ctx) for name in param.opts}
    for name, value in options_shown(run(*path, "--help").output).items():
        values, left, _ = command.make_parser(ctx).parse_args([name, *(["1"] if value else [])])
        taken = [dest for dest, given in values.items() if given is not None]
        assert taken == [by_name[name].name] and left == [], (name, value, values, left)


def test_config_before_or_after_the_command(tmp_path: Path) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text(
        "models:\n  - name: smart\n    strategy: fastest\n    deployments: [{provider: local, model: m}]\n"
    )
    for args in (
        ("--config", str(config), "health"),
        ("health", "--config", str(config)),
        ("health", "-c", str(config)),
    ):
        result = run(*args)
        assert result.exit_code == 1 and "unknown strategy 'fastest'" in result.output, (args, result.output)
