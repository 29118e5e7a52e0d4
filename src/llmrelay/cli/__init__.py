"""The ``llmrelay`` command line (typer + rich).

Every command prints one clear line on failure and exits non-zero; ``--debug``
shows the traceback as well. Heavy modules load only for the command that needs them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from .common import State, fail

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
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    ctx.obj = State(config=config, debug=debug)
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")


def _register() -> None:
    from . import batch, chat, health, info, keys, serve, tenants  # noqa: F401  (commands register themselves on ``app``)


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
