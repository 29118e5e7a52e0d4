"""A config file's mistakes are reported all at once: one ``ConfigError``, one line
per problem (file, line, entry), sorted by line; hostile files are refused quickly."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmrelay import errors
from llmrelay.config import load_settings
from llmrelay.config_errors import MAX_SHOWN


def write(tmp_path: Path, text: str | bytes, name: str = "llmrelay.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def problems_in(path: Path, env: dict[str, str] | None = None) -> list[str]:
    """The problem lines of the ``ConfigError`` loading ``path`` raises (header checked and dropped)."""
    with pytest.raises(errors.ConfigError) as caught:
        load_settings(path, env={} if env is None else env)
    header, *lines = str(caught.value).splitlines()
    assert header == f"invalid config ({len(lines)} problem{'s' if len(lines) > 1 else ''}):"
    return [line.strip() for line in lines]


EXAMPLE = """\
providers:
  - name: openai
    kind: openai
    api_kye: sk-test
    base_url: ${OPENAI_BASE_URL}
models:
  - name: smart
    strategy: fastest
    deployments:
      - provider: openai
        model: gpt-4o
        weight: "three"
"""


def test_the_reported_example_lists_all_four_problems_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    assert problems_in(path) == [
        f"{path}:4: providers.openai.api_kye: unknown key (did you mean 'api_key'?)",
        f"{path}:5: providers.openai.base_url: environment variable OPENAI_BASE_URL is not set",
        f"{path}:8: models.smart.strategy: unknown strategy 'fastest' "
        "(known: cost, health, latency, least_busy, random, round_robin, weighted)",
        f"{path}:12: models.smart.deployments.0.weight: Input should be a valid number, "
        "unable to parse string as a number",
    ]


def test_the_file_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "routing: {retry: 3}\n")
    monkeypatch.chdir(tmp_path)
    [problem] = problems_in(Path("llmrelay.yaml"))
    assert problem == "llmrelay.yaml:1: routing.retry: unknown key (did you mean 'retries'?)"


def test_a_fixed_file_loads_as_before(tmp_path: Path) -> None:
    fixed = EXAMPLE.replace("api_kye: sk-test", "api_key: ${OPENAI_API_KEY}")
    fixed = fixed.replace("fastest", "latency").replace('"three"', "3")
    settings = load_settings(write(tmp_path, fixed), env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://h/v1"})
    provider = settings.providers["openai"]
    assert provider.base_url == "http://h/v1" and provider.api_key is not None
    assert provider.api_key.get() == "sk-x"
    smart = settings.models["smart"]
    assert smart.strategy == "latency" and smart.members[0].weight == 3
    assert settings.file is not None and settings.file.lines[("models", 0, "strategy")] == 8


def test_a_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  - name: a\n   kind: openai\n")
    [problem] = problems_in(path)
    assert problem.startswith(f"{path}:3:4: not valid YAML: expected <block end>")
    assert "<unicode string>" not in problem
    [unclosed] = problems_in(write(tmp_path, "providers: [\n"))
    assert unclosed.startswith(f"{tmp_path / 'llmrelay.yaml'}:2:1: not valid YAML:")
    [control] = problems_in(write(tmp_path, "default_model: a\nx: \x07\n"))
    assert control.endswith(":2: not valid YAML: character #x0007: special characters are not allowed")
    [latin1] = problems_in(write(tmp_path, b"default_model: a\nx: \xe9\n"))
    assert latin1.endswith(":2: not UTF-8 text")


def test_an_unknown_kind_has_its_line_and_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  - name: claude\n    kind: anthropc\n    quirks: nope\n")
    kind, quirks = problems_in(path)
    assert kind.startswith(f"{path}:3: providers.claude.kind: unknown kind 'anthropc' (did you mean 'anthropic'?)")
    assert "(known: anthropic, azure," in kind
    assert quirks.startswith(f"{path}:4: providers.claude.quirks: unknown quirks 'nope' (known: openai,")


def test_a_key_given_twice_is_a_problem_not_a_silent_choice(tmp_path: Path) -> None:
    text = "providers:\n  - name: openai\n    kind: openai\n    api_key: ${A}\n    api_key: ${B}\n"
    [twice] = problems_in(write(tmp_path, text), env={"A": "sk-secret-a", "B": "sk-secret-b"})
    assert twice.endswith(":4: providers.openai.api_key: given twice (lines 4 and 5): keep one")
    assert "sk-secret" not in twice


def test_references_between_entries_are_all_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
providers:
  - {name: main, kind: openai, api_key: k}
models:
  - name: x
    fallbacks: [y, nope, x]
    deployments: [{provider: mian, model: m}]
  - name: y
    fallbacks: [x]
    deployments: [{provider: main, model: m, input_per_mtok: 1}]
  - name: y
    deployments: [{provider: anthropic, model: m}]
""",
    )
    assert problems_in(path) == [
        f"{path}:5: models.x.fallbacks.1: 'nope' is not a model group (groups: x, y)",
        f"{path}:5: models.x.fallbacks.2: model group 'x' lists itself as a fallback",
        f"{path}:6: models.x.deployments.0.provider: unknown provider 'mian' (did you mean 'main'?)",
        f"{path}:8: models.y.fallbacks.0: fallbacks form a cycle: x -> y -> x",
        f"{path}:9: models.y.deployments.0: set both input_per_mtok and output_per_mtok "
        "(USD per million tokens; 0 for free)",
        f"{path}:10: models.y: model group 'y' is defined twice (first at line 7)",
    ]


def test_an_unset_variable_is_not_also_a_wrong_type_but_a_wrong_key_still_is(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: [{name: p, kind: openai, api_kye: '${K}'}]\n"
                           "models:\n  - name: g\n    deployments: [{provider: openai, model: m, weight: '${W}'}]\n"
                           "default_model: ${A}-${B}-${A}-${C:-c}\n")  # fmt: skip
    assert problems_in(path) == [
        f"{path}:1: providers.p.api_kye: environment variable K is not set",
        f"{path}:1: providers.p.api_kye: unknown key (did you mean 'api_key'?)",
        f"{path}:4: models.g.deployments.0.weight: environment variable W is not set",
        f"{path}:5: default_model: environment variables A, B are not set",
    ]


def test_many_problems_are_counted_past_the_first_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "".join(f"key{i}: 1\n" for i in range(MAX_SHOWN + 20)))
    with pytest.raises(errors.ConfigError) as caught:
        load_settings(path, env={})
    lines = str(caught.value).splitlines()
    assert lines[0] == f"invalid config ({MAX_SHOWN + 20} problems):"
    assert lines[1].strip() == f"{path}:1: key0: unknown key" and lines[-1] == "  ... and 20 more"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("default_model: " + "[" * 5000 + "]" * 5000 + "\n", ":1:55: not valid YAML: nested deeper than 40 levels"),
        ("default_model: &a [*a]\n", ":1: aliases nest deeper than 40 levels"),
        ("a: &a [x,x,x,x,x,x,x,x,x]\n"
         + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)),
         "more than 100,000 values (aliases expanded)"),
        ("? [a, b]\n: 1\n", ":1: a key must be plain text, not a list or a mapping"),
        ("default_model: !!python/name:os.system ''\n", "default_model: cannot read this value"),
        ("just text\n", ":1: the top level must be a mapping"),
    ],
    ids=["deep-nesting", "recursive-alias", "billion-laughs", "list-as-key", "python-tag", "not-a-mapping"],
)  # fmt: skip
def test_hostile_files_are_refused_quickly(tmp_path: Path, text: str, expected: str) -> None:
    started = time.monotonic()
    [problem] = problems_in(write(tmp_path, text))
    assert expected in problem and time.monotonic() - started < 5


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, "default_model: " + "a" * 2_000_000 + "\n")
    with pytest.raises(errors.ConfigError, match="larger than 1,000,000 bytes"):
        load_settings(path, env={})


def test_the_cli_prints_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "llmrelay", "--config", str(path), "health"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.splitlines()[0] == "error: invalid config (4 problems):"
    for needle in ("api_kye", "OPENAI_BASE_URL", "'fastest'", "deployments.0.weight"):
        assert needle in run.stderr


@pytest.mark.parametrize(
    ("value", "tag"),
    [("!!int abc", "int"), ("!!float abc", "float"), ("!!bool maybe", "bool"), ("!!timestamp 2024-13-45", "timestamp")],
)
def test_a_value_its_tag_cannot_read_is_a_problem(tmp_path: Path, value: str, tag: str) -> None:
    [problem] = problems_in(write(tmp_path, f"default_model: {value}\n"))
    assert problem.endswith(f":1: default_model: cannot read this value as {tag}")


def test_values_from_the_environment_are_never_shown(tmp_path: Path) -> None:
    text = """\
providers:
  - name: ${SECRET}
    kind: ${SECRET}
    api_kye: x
models:
  - name: smart
    strategy: ${SECRET}
    fallbacks: ["${SECRET}"]
    deployments: [{provider: openai, model: m}]
"""
    found = problems_in(write(tmp_path, text), env={"SECRET": "sk-supersecret123"})
    assert len(found) == 4 and not any("supersecret" in line for line in found)
    assert ":3: providers.${SECRET}.kind: unknown kind '${SECRET}'" in found[0]
    assert "unknown strategy '${SECRET}'" in found[2] and "'${SECRET}' is not a model group" in found[3]


def test_names_from_the_file_are_printed_safely(tmp_path: Path) -> None:
    long_name = "k" * 5000
    text = 'providers:\n  - name: "a\\e[31mred\\a"\n    kind: openai\n    "x\\e[2Jy": 1\n'
    text += f"  - name: {long_name}\n    kind: openai\n    typo: 2\n"
    found = problems_in(write(tmp_path, text))
    assert found[0].endswith(r":4: providers.a\x1b[31mred\x07.x\x1b[2Jy: unknown key")
    assert all("\x1b" not in line and len(line) <= 400 for line in found)
    assert found[1].endswith("...")


def test_a_provider_defined_twice_is_reported_and_unset_names_are_said_once(tmp_path: Path) -> None:
    text = """\
providers:
  - name: a
    kind: openai
  - name: a
    kind: anthropic
models:
  - name: ${G}
    fallbacks: ["${F}"]
    deployments: [{provider: a, model: m}]
"""
    twice, group, fallback = problems_in(write(tmp_path, text))
    assert twice.endswith(":4: providers.a: provider 'a' is defined twice (first at line 2)")
    assert group.endswith(":7: models.0.name: environment variable G is not set")
    assert fallback.endswith(":8: models.0.fallbacks.0: environment variable F is not set")


def test_a_misspelt_required_key_is_one_problem(tmp_path: Path) -> None:
    text = "models:\n  - name: smart\n    deploymnts: [{provider: local, model: m}]\n"
    [problem] = problems_in(write(tmp_path, text))
    assert problem.endswith(":3: models.smart.deploymnts: unknown key (did you mean 'deployments'?)")
