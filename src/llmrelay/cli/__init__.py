"""The ``llmrelay`` command line (typer + rich).

Every command prints one clear line on failure and exits non-zero; ``--debug``
(before or after the command name) shows the traceback as well. Heavy modules
load only for the command that needs them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .._version import __version__
from .common import adopt, fail, state

app = typer.Typer(
    name="llmrelay",
    help="One API for every LLM provider: chat, models, tokens, health checks, the gateway, virtual keys and tenants.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmrelay {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="YAML config file (default: $LLMRELAY_CONFIG).")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    state(ctx).config = config  # --debug, here and on every command, is common.DebugOption


def _register() -> None:
    from . import batch, chat, health, info, keys, serve, tenants  # noqa: F401  (commands register themselves on ``app``)

    adopt(app)  # every command and group: --debug, and help as the parser reads it


_register()


def main() -> None:
    """Entry point: run the app, turning anything unexpected into one line."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        sys.exit(130)
    except Exception as exc:  # the last net: never a bare traceback unless --debug
        if "--debug" in sys.argv:
            raise
        fail(f"{type(exc).__name__}: {exc}")


__all__ = ["app", "main"]
