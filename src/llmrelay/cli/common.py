"""What every command shares: the client, error reporting, consoles."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import typer

from .. import errors

if TYPE_CHECKING:
    from rich.console import Console

    from ..client import Client


@dataclass
class State:
    config: str | None = None
    debug: bool = False
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            from ..client import Client

            self._client = Client(self.config)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)  # a message stays one line


def stdout() -> Console:
    """Tables fit the terminal; piped to a file or a program they are never cut."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 240)


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit ``code``."""
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
