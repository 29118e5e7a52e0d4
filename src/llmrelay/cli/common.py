"""What every command shares: the client, error reporting, consoles, and the
command classes that give each command ``--debug`` and help as the parser reads it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from .. import errors

if TYPE_CHECKING:
    from rich.console import Console

    from ..client_sync import Client


@dataclass
class State:
    config: str | None = None
    debug: bool = False
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            from ..client_sync import Client

            self._client = Client(self.config)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def state(ctx: typer.Context) -> State:
    """The run's ``State``, kept on the root context (made on first use)."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


# ---------------------------------------------------------------- every command and group


def _debug(ctx: typer.Context, value: bool) -> None:
    if not value or state(ctx).debug:
        return
    import logging

    state(ctx).debug = True
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")


DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks and debug logs.", callback=_debug, expose_value=False)
]


def _config(ctx: typer.Context, value: str | None) -> None:
    if value:
        state(ctx).config = value


ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="YAML config file (as the global --config).", callback=_config, expose_value=False
    ),
]


@cache
def _shared_options() -> tuple[Any, Any]:
    """``--debug`` and ``--config`` as typer builds them (one object each, shared by the commands)."""

    def probe(debug: DebugOption = False, config: ConfigOption = None) -> None: ...

    one = typer.Typer(add_completion=False)
    one.command()(probe)
    debug, config = typer.main.get_command(one).params
    return debug, config


def _as_parsed(params: list[Any]) -> list[Any]:
    """Help that reads as the parser does: a flag takes no value (``--json``, where
    typer would show ``--json <bool>``), and an argument is named in capitals, as
    the help texts name it (``MODEL``, not ``model``)."""
    for param in params:
        if param.metavar is not None:
            continue
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
        elif isinstance(param, TyperArgument) and param.name:
            param.metavar = param.name.upper()
    return params


class _AsParsed:
    """``--debug`` after the command name too, and help as parsed (mixed into click's classes)."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        debug, config = _shared_options()
        if not any(p.name == "config" for p in self.params):  # serve, batch and the root have their own
            self.params.append(config)
        self.params.append(debug)

    def get_params(self, ctx: Any) -> list[Any]:
        return _as_parsed(super().get_params(ctx))  # type: ignore[misc]


class Command(_AsParsed, TyperCommand):
    """Every ``llmrelay`` command."""


class Group(_AsParsed, TyperGroup):
    """A group of commands (``llmrelay``, ``keys``, ``tenants``)."""


def adopt(app: typer.Typer) -> None:
    """Make every command and group of ``app`` (and of its sub-apps) a ``Command`` or a ``Group``."""
    app.info.cls = Group
    for command in app.registered_commands:
        command.cls = Command
    for group in app.registered_groups:
        assert group.typer_instance is not None
        adopt(group.typer_instance)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)  # a message stays one line


def stdout() -> Console:
    """Tables fit the terminal; piped to a file or a program they are never cut."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 240)


def fail(message: str, code: int = 1) -> NoReturn:
    """The message on stderr (one line, or one per problem of a config file), then exit ``code``."""
    stderr().print(f"[bold red]error:[/] {plain(message)}")
    raise SystemExit(code)


def plain(text: str) -> str:
    """User text (a message, a path, a name) made safe to print with rich: ``[`` is markup there."""
    from rich.markup import escape

    return escape(text)


@contextmanager
def reported(ctx: typer.Context) -> Iterator[State]:
    """Run a command body: ``LLMError`` -> one line and exit 1; Ctrl-C -> exit 130;
    the client is closed at the end either way."""
    st = state(ctx)
    try:
        yield st
    except errors.LLMError as exc:
        if st.debug:
            raise
        fail(str(exc))
    except KeyboardInterrupt:
        stderr().print("\ninterrupted")
        raise SystemExit(130) from None
    finally:
        st.close()


def read_text(value: str, what: str) -> str:
    """``value``, or standard input when it is ``-``."""
    if value != "-":
        return value
    if sys.stdin is None or sys.stdin.closed:
        fail(f"{what} is '-' but standard input is closed")
    data = sys.stdin.read()
    if not data.strip():
        fail(f"{what} from standard input is empty")
    return data
