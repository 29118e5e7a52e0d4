"""``llmrelay tenants ...``: tenants (who keys belong to), managed in the store directly."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..store.records import Period
from . import app
from .common import fail, stdout
from .keys import (
    BudgetOption,
    JsonOption,
    ParallelOption,
    RpmOption,
    StoreOption,
    TpmOption,
    budget_text,
    check_limits,
    echo_json,
    limits_json,
    limits_text,
    new_table,
    opened,
    remember_store,
    when,
)

if TYPE_CHECKING:
    from ..store import Tenant

tenants_app = typer.Typer(
    name="tenants",
    help="Tenants in the store: create, list, update their limits and budget.",
    no_args_is_help=True,
)
app.add_typer(tenants_app)


class Clearable(StrEnum):
    """What ``tenants update --clear`` removes."""

    RPM = "rpm"
    TPM = "tpm"
    MAX_PARALLEL = "max-parallel"
    BUDGET = "budget"


TenantId = Annotated[str, typer.Argument(metavar="ID", help="The tenant's id: letters, digits, '_', '.', '-'.")]


@tenants_app.callback()
def tenants_group(ctx: typer.Context, store: StoreOption = None) -> None:
    """Tenants in the store (the gateway's database). A tenant's limits and
    budget cover all its keys together; each key may have its own on top."""
    remember_store(ctx, store)


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    """A tenant as the admin API shows it."""
    return {
        "id": tenant.id, "rpm": tenant.rpm, "tpm": tenant.tpm, "max_parallel": tenant.max_parallel,
        "budget_usd": tenant.budget_usd,
        "budget_period": tenant.budget_period, "model_limits": limits_json(tenant.model_limits),
        "created_at": tenant.created_at,
    }  # fmt: skip


def _print(tenant: Tenant, action: str, as_json: bool) -> None:
    if as_json:
        echo_json(tenant_json(tenant))
        return
    limits = limits_text(tenant.rpm, tenant.tpm, tenant.model_limits, tenant.max_parallel)
    budget = budget_text(tenant.budget_usd, tenant.budget_period)
    stdout().print(f"{action} tenant [bold]{tenant.id}[/]: limits {limits}; budget {budget}")


@tenants_app.command("create", short_help="Add a tenant, with its limits and budget.")
def create(
    ctx: typer.Context,
    tenant_id: TenantId,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    max_parallel: ParallelOption = None,
    budget: BudgetOption = None,
    period: Annotated[Period, typer.Option("--period", help="What the budget covers.")] = "month",
    as_json: JsonOption = False,
) -> None:
    """Add tenant ID. Its limits and budget cover all its keys together
    (``llmrelay keys create --tenant ID`` makes a key for it)."""
    from ..store import Tenant

    check_limits(rpm, tpm, budget, max_parallel)
    with opened(ctx, create=True) as store:
        made = Tenant(tenant_id, rpm=rpm, tpm=tpm, budget_usd=budget, budget_period=period, max_parallel=max_parallel)
        tenant = store.create_tenant(made)
        _print(tenant, "Created", as_json)


@tenants_app.command("list", short_help="Tenants with their limits, budget and key count.")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every tenant: limits, budget, and how many keys it has that are not revoked."""
    with opened(ctx) as store:
        tenants = store.list_tenants()
        if as_json:
            for tenant in tenants:
                echo_json(tenant_json(tenant))
            return
        if not tenants:
            stdout().print("no tenants (llmrelay tenants create ID, or llmrelay keys create --tenant ID)")
            return
        keys = Counter(key.tenant for key in store.list_keys())
        table = new_table("id", "limits", "budget", "keys", "created (UTC)")
        for tenant in tenants:
            table.add_row(
                tenant.id, limits_text(tenant.rpm, tenant.tpm, tenant.model_limits, tenant.max_parallel),
                budget_text(tenant.budget_usd, tenant.budget_period), str(keys[tenant.id]), when(tenant.created_at),
            )  # fmt: skip
        stdout().print(table)


@tenants_app.command("update", short_help="Change a tenant's limits or budget.")
def update(
    ctx: typer.Context,
    tenant_id: TenantId,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    max_parallel: ParallelOption = None,
    budget: BudgetOption = None,
    period: Annotated[Period | None, typer.Option("--period", help="What the budget covers.")] = None,
    clear: Annotated[
        list[Clearable] | None,
        typer.Option(
            "--clear", metavar="LIMIT", help="Remove a limit: rpm, tpm, max-parallel or budget (repeat for more)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change some of tenant ID's limits and budget; the rest stay as they are.
    A running gateway applies the change within a few seconds."""
    check_limits(rpm, tpm, budget, max_parallel)
    given = (("rpm", rpm), ("tpm", tpm), ("max_parallel", max_parallel), ("budget_usd", budget))
    changes: dict[str, Any] = {name: value for name, value in (*given, ("budget_period", period)) if value is not None}
    fields = {Clearable.BUDGET: "budget_usd", Clearable.MAX_PARALLEL: "max_parallel"}
    for name in clear or ():
        field = fields.get(name, name.value)
        if field in changes:
            fail(f"--{name} and --clear {name} contradict each other: give one")
        changes[field] = None
    if not changes:
        fail("nothing to change: give --rpm, --tpm, --max-parallel, --budget, --period or --clear")
    with opened(ctx) as store:
        if store.get_tenant(tenant_id) is None:
            fail(f"no tenant {tenant_id!r} in the store at {store.url} (see: llmrelay tenants list)")
        _print(store.update_tenant(tenant_id, **changes), "Updated", as_json)
