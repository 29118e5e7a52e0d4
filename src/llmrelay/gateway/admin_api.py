"""The admin API: tenants, virtual keys and the usage ledger, under ``/admin/``.

The master key may do everything. A virtual key may read its own tenant's keys
(never their secrets) and usage, and, when its tenant manages its own keys
(``self_keys``), create, change, rotate and revoke its tenant's keys (at most
``MAX_SELF_KEYS`` active); nothing else: asking for another tenant's is a 403.
A key's secret is in the answer that creates or rotates it, and nowhere else
ever again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..store.records import MAX_LIMIT, ApiKey, Limits, Tenant, UsageQuery
from .exchange import Exchange
from .http import HTTPError
from .storage import store_call
from .tenancy import Caller

if TYPE_CHECKING:
    from .app import Gateway

T = TypeVar("T")
_GROUPS = ("tenant", "key", "model", "day")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsBody(_Body):
    rpm: int | None = Field(None, gt=0, le=MAX_LIMIT)
    tpm: int | None = Field(None, gt=0, le=MAX_LIMIT)


class LimitsPatch(_Body):
    """What tenants and keys share: rate limits and a budget."""

    rpm: int | None = Field(None, gt=0, le=MAX_LIMIT)
    tpm: int | None = Field(None, gt=0, le=MAX_LIMIT)
    max_parallel: int | None = Field(None, gt=0, le=MAX_LIMIT)
    budget_usd: float | None = Field(None, ge=0, allow_inf_nan=False)
    budget_period: Literal["day", "month", "total"] | None = None
    model_limits: dict[str, LimitsBody] | None = None


class TenantBody(LimitsPatch):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    budget_period: Literal["day", "month", "total"] | None = "month"
    self_keys: bool = False


class TenantPatch(LimitsPatch):
    self_keys: bool = False  # only what is sent changes (exclude_unset); null is refused, as it means nothing


class KeyPatch(LimitsPatch):
    name: str | None = Field(None, max_length=200)
    models: list[str] | None = None
    expires_at: float | None = Field(None, gt=0)


class KeyBody(KeyPatch):
    tenant: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    expires_in_s: float | None = Field(None, gt=0)


def _parse(model: type[T], raw: dict[str, Any]) -> T:
    try:
        return model.model_validate(raw)  # type: ignore[attr-defined, no-any-return]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        where = f"'{field}': " if field else ""
        raise HTTPError(400, f"{where}{first['msg']}", param=field) from None


def _limits(raw: dict[str, LimitsBody] | None) -> dict[str, Limits] | None:
    return None if raw is None else {m: Limits(rpm=v.rpm, tpm=v.tpm) for m, v in raw.items()}


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id, "rpm": tenant.rpm, "tpm": tenant.tpm, "max_parallel": tenant.max_parallel,
        "budget_usd": tenant.budget_usd,
        "budget_period": tenant.budget_period, "created_at": tenant.created_at, "self_keys": tenant.self_keys,
        "model_limits": {m: {"rpm": v.rpm, "tpm": v.tpm} for m, v in tenant.model_limits.items()},
    }  # fmt: skip


def key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id, "tenant": key.tenant, "name": key.name, "prefix": key.prefix, "models": list(key.models),
        "expires_at": key.expires_at, "rpm": key.rpm, "tpm": key.tpm, "max_parallel": key.max_parallel,
        "budget_usd": key.budget_usd,
        "budget_period": key.budget_period, "created_at": key.created_at, "revoked_at": key.revoked_at,
        "rotated_at": key.rotated_at, "status": key.usable(time.time()) or "active",
        "model_limits": {m: {"rpm": v.rpm, "tpm": v.tpm} for m, v in key.model_limits.items()},
    }  # fmt: skip


def operator_only(caller: Caller) -> None:
    if not caller.admin:
        raise HTTPError(403, "this needs the master key", code="admin_only")


MAX_SELF_KEYS = 100
"""Active keys a tenant managing its own keys may have (the master key has no such cap)."""


def may_manage(caller: Caller, tenant_id: str) -> None:
    """The master key may manage any tenant's keys; a virtual key only its own tenant's, and only
    when the tenant manages its own keys (``self_keys``). A 403 otherwise."""
    if caller.admin:
        return
    if caller.tenant is None or not caller.tenant.self_keys:
        raise HTTPError(
            403, "this needs the master key (or a key of a tenant allowed to manage its own keys)", code="admin_only"
        )
    if tenant_id != caller.tenant_id:
        raise HTTPError(403, f"this API key belongs to another tenant than {tenant_id!r}", code="other_tenant")


async def _key_to_manage(gw: Gateway, ex: Exchange) -> ApiKey:
    """The key of the path, if the caller may manage it (another tenant's is not there for it)."""
    key_id, caller = ex.params["key_id"], ex.caller
    if not caller.admin:  # a tenant that may not manage keys: 403 whatever the key; one that
        may_manage(caller, caller.tenant_id or "")  # may, its own only: another's is not there for it
    found = await store_call(gw.store_().get_key, key_id)
    if found is None or (not caller.admin and found.tenant != caller.tenant_id):
        raise HTTPError(404, f"no key {key_id!r}")
    return found


def own_tenant(caller: Caller, asked: str | None) -> str | None:
    """The tenant a request may see: a virtual key's own, whatever it asks for."""
    if caller.admin:
        return asked
    if asked is not None and asked != caller.tenant_id:
        raise HTTPError(403, f"this API key belongs to another tenant than {asked!r}", code="other_tenant")
    return caller.tenant_id


# ---- tenants ----------------------------------------------------------------------------


async def create_tenant(gw: Gateway, ex: Exchange) -> None:
    operator_only(ex.caller)
    body = _parse(TenantBody, await gw.json_request(ex))
    try:
        made = Tenant(
            id=body.id, rpm=body.rpm, tpm=body.tpm, max_parallel=body.max_parallel, budget_usd=body.budget_usd,
            budget_period=body.budget_period or "month", model_limits=_limits(body.model_limits) or {},
            self_keys=body.self_keys,
        )  # fmt: skip
    except ValueError as exc:
        raise HTTPError(400, str(exc)) from None
    tenant = await store_call(gw.store_().create_tenant, made)
    await ex.reply(201, tenant_json(tenant))


async def list_tenants(gw: Gateway, ex: Exchange) -> None:
    operator_only(ex.caller)
    tenants = await store_call(gw.store_().list_tenants)
    await ex.reply(200, {"object": "list", "data": [tenant_json(t) for t in tenants]})


async def get_tenant(gw: Gateway, ex: Exchange) -> None:
    operator_only(ex.caller)
    tenant_id = ex.params["tenant_id"]
    tenant = await store_call(gw.store_().get_tenant, tenant_id)
    if tenant is None:
        raise HTTPError(404, f"no tenant {tenant_id!r}")
    await ex.reply(200, tenant_json(tenant))


async def update_tenant(gw: Gateway, ex: Exchange) -> None:
    operator_only(ex.caller)
    tenant_id = ex.params["tenant_id"]
    store = gw.store_()
    patch = _parse(TenantPatch, await gw.json_request(ex))
    changes = patch.model_dump(exclude_unset=True)
    if "model_limits" in changes:
        changes["model_limits"] = _limits(patch.model_limits) or {}
    tenant = await store_call(store.update_tenant, tenant_id, **changes)
    gw.auth.forget(tenant=tenant_id)
    await ex.reply(200, tenant_json(tenant))


# ---- keys -------------------------------------------------------------------------------


async def create_key(gw: Gateway, ex: Exchange) -> None:
    body = _parse(KeyBody, await gw.json_request(ex))
    may_manage(ex.caller, body.tenant)
    if not ex.caller.admin:
        held = await store_call(gw.store_().list_keys, body.tenant)
        if len(held) >= MAX_SELF_KEYS:
            raise HTTPError(
                409, f"tenant {body.tenant!r} has {len(held)} active keys, the most it may make itself: revoke some",
                code="too_many_keys",
            )  # fmt: skip
    if body.expires_at is not None and body.expires_in_s is not None:
        raise HTTPError(400, "give 'expires_at' or 'expires_in_s', not both", param="expires_in_s")
    expires = body.expires_at if body.expires_in_s is None else time.time() + body.expires_in_s
    key, secret = await store_call(
        gw.store_().create_key, body.tenant, name=body.name or "", models=tuple(body.models or ()),
        expires_at=expires, rpm=body.rpm, tpm=body.tpm, max_parallel=body.max_parallel, budget_usd=body.budget_usd,
        budget_period=body.budget_period or "month", model_limits=_limits(body.model_limits),
    )  # fmt: skip
    await ex.reply(201, {**key_json(key), "key": secret})


async def list_keys(gw: Gateway, ex: Exchange) -> None:
    query = ex.query
    tenant = own_tenant(ex.caller, query.get("tenant"))
    revoked = query.get("include_revoked", "false").lower() in ("1", "true", "yes")
    keys = await store_call(gw.store_().list_keys, tenant, include_revoked=revoked)
    await ex.reply(200, {"object": "list", "data": [key_json(k) for k in keys]})


async def get_key(gw: Gateway, ex: Exchange) -> None:
    """A tenant's key may read its tenant's keys; another tenant's is not there for it."""
    key_id, caller = ex.params["key_id"], ex.caller
    found = await store_call(gw.store_().get_key, key_id)
    if found is None or (not caller.admin and found.tenant != caller.tenant_id):
        raise HTTPError(404, f"no key {key_id!r}")
    await ex.reply(200, key_json(found))


async def update_key(gw: Gateway, ex: Exchange) -> None:
    await _key_to_manage(gw, ex)
    patch = _parse(KeyPatch, await gw.json_request(ex))
    changes = patch.model_dump(exclude_unset=True)
    if "models" in changes:
        changes["models"] = tuple(patch.models or ())
    if "model_limits" in changes:
        changes["model_limits"] = _limits(patch.model_limits) or {}
    key = await store_call(gw.store_().update_key, ex.params["key_id"], **changes)
    await _changed(gw, ex, key)


async def revoke_key(gw: Gateway, ex: Exchange) -> None:
    await _key_to_manage(gw, ex)
    await _changed(gw, ex, await store_call(gw.store_().revoke_key, ex.params["key_id"]))


async def rotate_key(gw: Gateway, ex: Exchange) -> None:
    await _key_to_manage(gw, ex)
    key, secret = await store_call(gw.store_().rotate_key, ex.params["key_id"])
    await _changed(gw, ex, key, secret)


async def _changed(gw: Gateway, ex: Exchange, key: ApiKey, secret: str | None = None) -> None:
    """Answer with the key as it is now (and its new secret, once); cached lookups forget it."""
    gw.auth.forget(key_id=key.id)
    await ex.reply(200, key_json(key) if secret is None else {**key_json(key), "key": secret})


# ---- usage ------------------------------------------------------------------------------


async def usage(gw: Gateway, ex: Exchange) -> None:
    """``GET /admin/usage?tenant=&key_id=&model=&since=&until=&limit=&offset=&group_by=tenant,key,model,day``."""
    query = ex.query
    refuse_unknown(query, USAGE_PARAMS)
    group_by = [g for g in query.get("group_by", "").split(",") if g]
    for g in group_by:
        if g not in _GROUPS:
            raise HTTPError(400, f"group_by: {g!r} is not one of {', '.join(_GROUPS)}", param="group_by")
    asked = UsageQuery(
        tenant=own_tenant(ex.caller, query.get("tenant")), key_id=query.get("key_id"), model=query.get("model"),
        since=query_number(query, "since"), until=query_number(query, "until"),
        limit=int(query_number(query, "limit", 100, 1, 1000)), offset=int(query_number(query, "offset", 0, 0, 1e12)),
        request_id=query.get("request_id"),
    )  # fmt: skip
    store = gw.store_()
    rows = await store_call(store.usage, asked)
    totals = await store_call(store.usage_totals, asked, group_by)
    count = await store_call(store.count_usage, asked)
    payload = {"object": "list", "data": [r.to_json() for r in rows], "totals": totals, "total_count": count}
    await ex.reply(200, payload)


USAGE_PARAMS = frozenset(("tenant", "key_id", "model", "since", "until", "limit", "offset", "group_by", "request_id"))


def printable(value: str) -> str:
    """``value`` as an error may quote it: unprintable characters as ``?``, 64 at most."""
    return "".join(c if c.isprintable() else "?" for c in value)[:64]


def refuse_unknown(query: dict[str, str], known: frozenset[str]) -> None:
    """A 400 naming the first query parameter not in ``known``."""
    for name in sorted(set(query) - known):
        raise HTTPError(400, f"unknown query parameter {printable(name)!r}", param=printable(name))


def query_number(
    query: dict[str, str], name: str, default: float | None = None, low: float = 0, high: float = 1e15
) -> Any:
    """The query parameter ``name`` as a number from ``low`` to ``high`` (``default`` when it is
    absent); a 400 naming it otherwise (NaN and infinities fail the range)."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise HTTPError(400, f"{name!r} must be a number, not {raw!r}", param=name) from None
    if not low <= value <= high:
        raise HTTPError(400, f"{name!r} must be between {low:g} and {high:g}", param=name)
    return value


__all__ = [
    "MAX_SELF_KEYS", "USAGE_PARAMS", "create_key", "create_tenant", "get_key", "get_tenant", "key_json", "list_keys",
    "list_tenants", "may_manage", "operator_only", "own_tenant", "printable", "query_number", "refuse_unknown",
    "revoke_key", "rotate_key", "tenant_json", "update_key", "update_tenant", "usage",
]  # fmt: skip
