"""``llmrelay health``: every deployment of the configured model groups, checked now."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from . import app
from .common import fail, plain, reported, stdout

_STYLE = {"healthy": "green", "degraded": "yellow", "unhealthy": "bold red", "disabled": "dim"}


@app.command(short_help="Check every deployment of the model groups; exit 1 if any is unhealthy.")
def health(
    ctx: typer.Context,
    group: Annotated[str | None, typer.Argument(metavar="GROUP", help="One model group (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per deployment.")] = False,
) -> None:
    """Run an active check of each deployment (one cheap authenticated call per
    provider) and show its status, breaker, cooldown and the reason; exit 1 when
    a deployment is unhealthy."""
    from rich.table import Table

    with reported(ctx) as st:
        client = st.client()
        if not client.settings.models:
            fail("no model groups configured: add a models: section to the config (see docs/routing.md)")
        report = client.check_now(group)
        if as_json:
            for row in report:
                typer.echo(json.dumps(asdict(row), default=str))
        else:
            table = Table(header_style="bold")
            for column in ("group", "deployment", "status", "breaker", "checked", "reason"):
                table.add_column(column)
            for row in report:
                checked = "-" if row.check is None else ("ok" if row.check.ok else "failed")
                status = f"[{_STYLE[row.status]}]{row.status}[/]"
                table.add_row(plain(row.group), row.deployment, status, row.breaker, checked, plain(row.reason))
            stdout().print(table)
        if any(row.status == "unhealthy" for row in report):
            raise typer.Exit(1)
