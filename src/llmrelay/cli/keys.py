"""``llmrelay keys ...``: virtual keys, managed in the store directly.

The commands open the database ``llmrelay serve`` uses (see
``llmrelay.store.default_store_url``), or the one ``--store`` names, so a key
made here works at the gateway at once. A secret is printed once, when it is
made or rotated: the store keeps only its hash. The store helpers here are
shared with ``llmrelay tenants``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._install import install_hint
from ..store.records import Limits, Period
from . import app
from .common import fail, plain, reported, stdout

if TYPE_CHECKING:
    from rich.table import Table

    from ..store import ApiKey, Store

_STORE_URL = "llmrelay.store_url"
"""Where a group's ``--store`` is kept, in ``ctx.meta`` (shared by the group's commands)."""

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="Database URL of the store (default: the gateway's: $LLMRELAY_STORE_URL, "
        "the config's store.url, else llmrelay.db beside the config or here).",
    ),
]
RpmOption = Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")]
TpmOption = Annotated[int | None, typer.Option("--tpm", help="Tokens per minute.")]
ParallelOption = Annotated[
    int | None, typer.Option("--max-parallel", metavar="N", help="Requests in flight at once (429 past it).")
]
BudgetOption = Annotated[float | None, typer.Option("--budget", metavar="USD", help="Spending limit in US dollars.")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON output, one object a line.")]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_STATUS_STYLE = {"active": "green", "revoked": "red", "expired": "yellow"}
_GROUPS = ("tenant", "key", "model", "day")
_TOTALS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")

keys_app = typer.Typer(
    name="keys",
    help="Virtual keys in the store: create, list, show, revoke, rotate, and their usage.",
    no_args_is_help=True,
)
app.add_typer(keys_app)


@keys_app.callback()
def keys_group(ctx: typer.Context, store: StoreOption = None) -> None:
    """Virtual keys in the store (the gateway's database): create, list, show,
    revoke, rotate, and their usage. A secret is shown once, when it is made."""
    remember_store(ctx, store)


# ---------------------------------------------------------------- shared with tenants.py


def remember_store(ctx: typer.Context, url: str | None) -> None:
    """Keep a group's ``--store`` for its commands."""
    if url:
        ctx.meta[_STORE_URL] = url


@contextmanager
def opened(ctx: typer.Context, *, create: bool = False) -> Iterator[Store]:
    """The store for this command, closed afterwards. A store error or a bad
    value (``ValueError`` from the records) is one line and exit 1. Only commands
    that ``create`` something make a SQLite file that is not there yet: the others
    say where they looked (a reader in the wrong folder learns it at once)."""
    from ..store import StoreError

    with reported(ctx) as st:
        store = _open(ctx.meta.get(_STORE_URL), st.config, create)
        try:
            yield store
        except (StoreError, ValueError) as exc:
            if st.debug:
                raise
            fail(str(exc))
        finally:
            store.close()


def _open(given: str | None, config: str | None, create: bool) -> Store:
    from ..store import StoreError, default_store_url
    from ..store.location import resolve_sqlite_path, sqlite_file

    if given:
        url = resolve_sqlite_path(given, Path.cwd())
    else:
        from ..config import load_settings

        url = default_store_url(load_settings(config))
    database = sqlite_file(url)
    if not create and database is not None and not database.exists():
        fail(
            f"no store at {database}: nothing has been created there yet (`llmrelay keys create` or "
            "`llmrelay tenants create` makes it; --store or LLMRELAY_STORE_URL to point elsewhere)"
        )
    try:
        from ..store import Store

        return Store.open(url)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing == "sqlalchemy":
            fail(f"the store needs SQLAlchemy: {install_hint('gateway')}")
        if missing == "psycopg":
            fail(f"a PostgreSQL store needs psycopg: {install_hint('postgres')}")
        raise
    except StoreError as exc:
        fail(str(exc))


def check_limits(rpm: int | None, tpm: int | None, budget: float | None, max_parallel: int | None = None) -> None:
    """Exit 1 with the flag's name when a limit is out of range."""
    for flag, value in (("--rpm", rpm), ("--tpm", tpm), ("--max-parallel", max_parallel)):
        if value is not None and value <= 0:
            fail(f"{flag} must be a whole number above 0, not {value}")
    if budget is not None and not (math.isfinite(budget) and budget >= 0):
        fail(f"--budget must be a dollar amount of 0 or more, not {budget}")


def when(ts: float | None) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM`` in UTC; ``-`` for none."""
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def limits_text(
    rpm: int | None, tpm: int | None, model_limits: Mapping[str, Limits], max_parallel: int | None = None
) -> str:
    parts = [f"{rpm:,} rpm" if rpm else "", f"{tpm:,} tpm" if tpm else ""]
    if max_parallel:
        parts.append(f"{max_parallel:,} parallel")
    if model_limits:
        parts.append(f"+{len(model_limits)} per model")
    return ", ".join(p for p in parts if p) or "-"


def budget_text(budget: float | None, period: str) -> str:
    if budget is None:
        return "-"
    return f"${budget:,.2f} total" if period == "total" else f"${budget:,.2f}/{period}"


def limits_json(model_limits: Mapping[str, Limits]) -> dict[str, dict[str, int | None]]:
    return {model: {"rpm": lim.rpm, "tpm": lim.tpm} for model, lim in model_limits.items()}


def echo_json(data: Mapping[str, Any]) -> None:
    typer.echo(json.dumps(data, default=str))


def new_table(*columns: str) -> Table:
    from rich.table import Table

    table = Table(header_style="bold")
    for column in columns:
        table.add_column(column)
    return table


# ---------------------------------------------------------------- keys


def key_json(key: ApiKey, now: float) -> dict[str, Any]:
    """A key as the admin API shows it (never its secret)."""
    return {
        "id": key.id, "tenant": key.tenant, "name": key.name, "prefix": key.prefix, "models": list(key.models),
        "status": key.usable(now) or "active", "expires_at": key.expires_at, "rpm": key.rpm, "tpm": key.tpm,
        "max_parallel": key.max_parallel, "budget_usd": key.budget_usd, "budget_period": key.budget_period,
        "model_limits": limits_json(key.model_limits), "created_at": key.created_at,
        "revoked_at": key.revoked_at, "rotated_at": key.rotated_at,
    }  # fmt: skip


def _status(key: ApiKey, now: float) -> str:
    status = key.usable(now) or "active"
    return f"[{_STATUS_STYLE[status]}]{status}[/]"


def _models(models: Sequence[str]) -> str:
    return plain(", ".join(models)) if models else "all"


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``3600s``, ``2w`` as seconds; exit 1 on anything else."""
    match = _DURATION.fullmatch(text.strip().lower())
    seconds = 0.0 if match is None else float(match.group(1)) * _SECONDS[match.group(2)]
    if seconds <= 0:
        fail(f"--expires-in {text!r} is not a duration: use a number above 0 and a unit, like 30d, 12h, 90m or 3600s")
    return seconds


def _show_secret(key: ApiKey, secret: str, action: str, as_json: bool, now: float) -> None:
    if as_json:
        echo_json({**key_json(key, now), "key": secret})
        return
    out = stdout()
    out.print(f"{action} key [bold]{key.id}[/] for tenant [bold]{key.tenant}[/].")
    out.print("[bold yellow]Secret[/] (store it now; it cannot be shown again):")
    typer.echo(f"\n    {secret}\n")  # plain: no markup, wrapping or highlighting in a secret


@keys_app.command("create", short_help="Make a key for a tenant; print its secret once.")
def create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="The tenant the key belongs to (made if absent).")],
    name: Annotated[str, typer.Option("--name", "-n", help="A label for people.")] = "",
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", metavar="MODEL", help="A model the key may use (repeat; default: all)."),
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", metavar="DURATION", help="Lifetime: 30d, 12h, 90m, 3600s.")
    ] = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    max_parallel: ParallelOption = None,
    budget: BudgetOption = None,
    period: Annotated[Period, typer.Option("--period", help="What the budget covers.")] = "month",
    as_json: Annotated[bool, typer.Option("--json", help='One JSON object, the secret as "key".')] = False,
) -> None:
    """Make a virtual key for TENANT and print its secret, once: the store keeps
    only its hash. Limits and budget apply to this key, on top of the tenant's."""
    check_limits(rpm, tpm, budget, max_parallel)
    lifetime = None if expires_in is None else parse_duration(expires_in)
    with opened(ctx, create=True) as store:
        now = time.time()
        new_tenant = store.get_tenant(tenant) is None
        key, secret = store.create_key(
            tenant, name=name, models=tuple(model or ()), expires_at=None if lifetime is None else now + lifetime,
            rpm=rpm, tpm=tpm, budget_usd=budget, budget_period=period, max_parallel=max_parallel,
        )  # fmt: skip
        _show_secret(key, secret, "Created", as_json, now)
        if new_tenant and not as_json:
            stdout().print(f"Tenant [bold]{tenant}[/] did not exist and was created without limits.")


@keys_app.command("list", short_help="Keys with their status, limits and budget (never secrets).")
def list_(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant's keys.")] = None,
    include_revoked: Annotated[bool, typer.Option("--all", "-a", help="Include revoked keys.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Keys, oldest first: id, tenant, name, the secret's first characters,
    models, status, limits, budget. Revoked keys only with --all."""
    with opened(ctx) as store:
        keys = store.list_keys(tenant, include_revoked=include_revoked)
        now = time.time()
        if as_json:
            for key in keys:
                echo_json(key_json(key, now))
            return
        if not keys:
            stdout().print("no keys" + (f" for tenant {tenant}" if tenant else ""))
            return
        table = new_table("id", "tenant", "name", "prefix", "models", "status", "limits", "budget", "created (UTC)")
        for key in keys:
            table.add_row(
                key.id, key.tenant, plain(key.name) or "-", key.prefix + "…", _models(key.models), _status(key, now),
                limits_text(key.rpm, key.tpm, key.model_limits, key.max_parallel),
                budget_text(key.budget_usd, key.budget_period),
                when(key.created_at),
            )  # fmt: skip
        stdout().print(table)


@keys_app.command("show", short_help="One key in full (never its secret).")
def show(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (key_...).")],
    as_json: JsonOption = False,
) -> None:
    """Everything the store knows about one key, but its secret."""
    with opened(ctx) as store:
        key = _get(store, key_id)
        now = time.time()
        if as_json:
            echo_json(key_json(key, now))
            return
        table = new_table("field", "value")
        table.show_header = False
        rows = [
            ("id", key.id), ("tenant", key.tenant), ("name", plain(key.name) or "-"), ("prefix", key.prefix + "…"),
            ("models", _models(key.models)), ("status", _status(key, now)), ("expires (UTC)", when(key.expires_at)),
            ("limits", limits_text(key.rpm, key.tpm, {}, key.max_parallel)),
            ("budget", budget_text(key.budget_usd, key.budget_period)),
        ]  # fmt: skip
        rows += [(plain(f"limits for {m}"), limits_text(lim.rpm, lim.tpm, {})) for m, lim in key.model_limits.items()]
        rows += [("created (UTC)", when(key.created_at)), ("rotated (UTC)", when(key.rotated_at))]
        rows += [("revoked (UTC)", when(key.revoked_at))]
        for field, value in rows:
            table.add_row(field, value)
        stdout().print(table)


@keys_app.command("revoke", short_help="Stop a key working, for good.")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (key_...).")],
) -> None:
    """Revoke a key: the gateway refuses its secret from now on (a running
    gateway notices within a few seconds). The key stays listed (with --all)
    and its usage is kept."""
    with opened(ctx) as store:
        before = _get(store, key_id)
        key = store.revoke_key(key_id)
        if before.revoked_at is not None:
            stdout().print(f"key {key.id} was already revoked ({when(key.revoked_at)} UTC)")
        else:
            stdout().print(f"revoked key [bold]{key.id}[/] of tenant {key.tenant}: its secret no longer works")


@keys_app.command("rotate", short_help="Give a key a new secret; print it once.")
def rotate(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (key_...).")],
    as_json: Annotated[bool, typer.Option("--json", help='One JSON object, the secret as "key".')] = False,
) -> None:
    """Replace a key's secret, keeping its id, limits and usage. The old secret
    stops working (a running gateway notices within a few seconds); the new one
    is printed this once."""
    with opened(ctx) as store:
        _get(store, key_id)
        key, secret = store.rotate_key(key_id)
        _show_secret(key, secret, "Rotated", as_json, time.time())


def _get(store: Store, key_id: str) -> ApiKey:
    key = store.get_key(key_id)
    if key is None:
        fail(f"no key {key_id!r} in the store at {store.url} (see: llmrelay keys list --all)")
    return key


# ---------------------------------------------------------------- usage


def parse_day(text: str, flag: str) -> float:
    """``YYYY-MM-DD`` as epoch seconds at 00:00 UTC; exit 1 on anything else."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        fail(f"{flag} {text!r} is not a date: use YYYY-MM-DD (a UTC day)")


def parse_groups(text: str) -> list[str]:
    """``tenant,key`` as a list; exit 1 naming an unknown field."""
    groups = [g.strip() for g in text.split(",") if g.strip()]
    unknown = [g for g in groups if g not in _GROUPS]
    if unknown:
        fail(f"--by {', '.join(unknown)}: not a field to group by (use {', '.join(_GROUPS)}, comma-separated)")
    return list(dict.fromkeys(groups))


@keys_app.command("usage", short_help="Requests, tokens and cost from the usage ledger.")
def usage(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    key_id: Annotated[str | None, typer.Option("--key", "-k", metavar="KEY_ID", help="Only this key.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    by: Annotated[
        str, typer.Option("--by", help="Group by some of tenant,key,model,day ('' for one total).")
    ] = "tenant,key",
    since: Annotated[str | None, typer.Option("--since", metavar="YYYY-MM-DD", help="From this UTC day.")] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="YYYY-MM-DD", help="Before this UTC day (not included).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Totals over the usage ledger the gateway writes: requests, errors, tokens
    and cost, grouped by tenant, key, model and/or day (UTC)."""
    from ..store import UsageQuery

    groups = parse_groups(by)
    start = None if since is None else parse_day(since, "--since")
    end = None if until is None else parse_day(until, "--until")
    with opened(ctx) as store:
        query = UsageQuery(tenant=tenant, key_id=key_id, model=model, since=start, until=end)
        rows = store.usage_totals(query, groups)  # type: ignore[arg-type]  # checked by parse_groups
        if as_json:
            for row in rows:
                echo_json(row)
            return
        if not rows:
            filtered = any(v is not None for v in (tenant, key_id, model, since, until))
            stdout().print("no usage recorded" + (" that matches these filters" if filtered else ""))
            return
        fields = ["key_id" if g == "key" else g for g in groups]
        table = new_table(*groups, "requests", "errors", "prompt", "completion", "cached", "reasoning", "cost")
        for column in table.columns[len(groups) :]:
            column.justify = "right"
        for row in rows:
            cells = [plain(str(row.get(f) or "-")) for f in fields]
            table.add_row(*cells, *(f"{row[t]:,}" for t in _TOTALS), _cost(row["cost_usd"]))
        if len(rows) > 1:
            table.add_section()
            sums = [sum(row[t] for row in rows) for t in _TOTALS]
            table.add_row("total", *[""] * (len(groups) - 1), *(f"{s:,}" for s in sums), _cost(_total_cost(rows)))
        stdout().print(table)


def _total_cost(rows: Sequence[Mapping[str, Any]]) -> float:
    return float(sum(row["cost_usd"] or 0 for row in rows))


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"
