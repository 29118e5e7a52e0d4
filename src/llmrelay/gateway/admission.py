"""Admission of a model request: rate limits and budgets of the caller's key and tenant.

**Rate limits** (requests and tokens per minute) apply per key, per tenant, and
per model for either (``model_limits``). Each is a sliding window in the state
backend, acquired atomically, so N processes sharing one Redis admit exactly the
limit between them. A request holds its estimated tokens (prompt estimate plus
``max_tokens``) until it ends, when the window is corrected to the real usage.

**Concurrency** (``max_parallel``) applies per key and per tenant: a request
holds one slot of each while it runs (a lease of ``SLOT_LEASE_S`` in the state
backend, so a process killed mid-request frees its slots within that time).
Past it is a 429 saying how many are in flight.

**Budgets** (USD per day, month or in total) apply per key and per tenant. The
request's worst case (billing.py: its prompt counted high and its whole output,
at the dearest deployment it may reach) is reserved before the upstream call and
settled with the real cost after; since an answer never costs more than its
reservation, concurrent requests against a nearly spent budget cannot overshoot
it by more than one request. Over budget is a 429 of type
``insufficient_quota`` that the SDKs do not retry. Spend counters live in the
state backend; a counter that is not there yet (first use in a period, or
in-memory state after a restart) starts from the ledger's sum for the period,
added in one atomic step with the mark that says so (``StateBackend.seed``): a
ledger that cannot be read is a 503 and marks nothing, so the next request
tries again. The mark is looked for on every budgeted request (one read), so a
state backend that lost its data (a Redis restarted without persistence) starts
again from the ledger, never from zero.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..state.base import StateBackend
from ..store.records import ApiKey, Limits, Period, Tenant
from ..store.store import Store
from .http import HTTPError
from .storage import store_call
from .tenancy import Caller

log = logging.getLogger("llmrelay.gateway")
WINDOW_S = 60.0
MAX_UNSETTLED = 10_000
"""Requests waiting to be settled in the background at most (a state backend away for long)."""
SLOT_LEASE_S = 900.0
"""How long a request holds a ``max_parallel`` slot at most (longer than any call's deadline)."""
_UNLIMITED = 1e18  # a finite "no limit" (Redis scripts compare numbers)


@dataclass(slots=True)
class Ticket:
    """What an admitted request holds until it ends (``Admission.settle``)."""

    windows: list[tuple[str, str | None, float]] = field(default_factory=list)
    """(window key, entry, tokens held)."""
    budgets: list[tuple[str, float]] = field(default_factory=list)
    """(spend counter key, USD reserved)."""
    slots: list[tuple[str, str]] = field(default_factory=list)
    """(concurrency key, slot id) held."""
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


@dataclass(frozen=True, slots=True)
class _Scope:
    """One limit: of a key or a tenant (``name``) called ``owner``, for one ``model`` or all."""

    name: str  # "key", "tenant"
    owner: str
    model: str | None
    rpm: int | None
    tpm: int | None

    @property
    def window(self) -> str:
        """The state key of its sliding window."""
        suffix = "" if self.model is None else f":model:{self.model}"
        return f"rl:{self.name}:{self.owner}{suffix}"


class Admission:
    def __init__(self, state: StateBackend, store: Store | None, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.store = store
        self._clock = clock
        self._unsettled: set[asyncio.Task[None]] = set()

    async def admit(self, caller: Caller, model: str, tokens: float, cost_usd: float) -> Ticket:
        """Acquire every limit and reserve every budget, or none of them (429)."""
        ticket = Ticket()
        if caller.key is None:
            return ticket
        try:
            await self._slots(ticket, caller)
            await self._limits(ticket, _scopes(caller, model), tokens)
            await self._budgets(ticket, caller, cost_usd)
        except BaseException:
            await self.settle(ticket, 0.0, 0.0)
            raise
        return ticket

    async def settle(self, ticket: Ticket, tokens: float, cost_usd: float) -> None:
        """Replace the estimates by the real tokens and cost (0, 0 for a request that failed).
        Each part is taken off the ticket once done: after a failure (the state backend
        away), settling again does only what is left."""
        if ticket.settled:
            return
        now = self._clock()
        while ticket.windows:
            key, entry, held = ticket.windows[0]
            if tokens != held:
                await self.state.window_adjust(key, now, (0.0, tokens - held), entry=entry)
            ticket.windows.pop(0)
        while ticket.budgets:
            key, reserved = ticket.budgets[0]
            await self.state.settle(key, reserved, cost_usd)
            ticket.budgets.pop(0)
        while ticket.slots:
            key, slot = ticket.slots[0]
            await self.state.slot_release(key, slot)
            ticket.slots.pop(0)
        ticket.settled = True

    async def settle_or_retry(self, ticket: Ticket, tokens: float, cost_usd: float) -> None:
        """``settle``, and when the state backend fails, again in the background until it
        answers (for up to ``SLOT_LEASE_S``): a slot or a worst-case reservation left held
        would refuse the caller's next requests. Never raises."""
        try:
            await self.settle(ticket, tokens, cost_usd)
        except Exception as exc:
            log.warning("settling a request failed (%s: %s); trying again in the background", type(exc).__name__, exc)
            if len(self._unsettled) < MAX_UNSETTLED:
                task = asyncio.create_task(self._settle_later(ticket, tokens, cost_usd))
                self._unsettled.add(task)
                task.add_done_callback(self._unsettled.discard)
            else:
                log.error("too many requests wait to be settled: this one's reservation stays held")

    async def _settle_later(self, ticket: Ticket, tokens: float, cost_usd: float) -> None:
        delay, give_up = 0.5, time.monotonic() + SLOT_LEASE_S
        while time.monotonic() < give_up:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                await self.settle(ticket, tokens, cost_usd)
            except Exception:
                continue
            log.info("a request failed to settle earlier is settled")
            return
        log.error("a request could not be settled for %.0f s: its reservation stays held", SLOT_LEASE_S)

    async def aclose(self) -> None:
        """Stop settling in the background (what is left stays held)."""
        for task in list(self._unsettled):
            task.cancel()

    async def _slots(self, ticket: Ticket, caller: Caller) -> None:
        owners: list[tuple[str, str, int | None]] = []
        if caller.key is not None:
            owners.append(("key", caller.key.id, caller.key.max_parallel))
        if caller.tenant is not None:
            owners.append(("tenant", caller.tenant.id, caller.tenant.max_parallel))
        for name, ident, limit in owners:
            if not limit:
                continue
            key, slot = f"par:{name}:{ident}", uuid.uuid4().hex
            if not await self.state.slot_acquire(key, slot, limit, SLOT_LEASE_S):
                raise HTTPError(
                    429, f"the {name} {ident!r} already has {limit} requests in flight (max_parallel); retry when "
                    "one ends", code="too_many_parallel_requests", headers={"retry-after": "1"},
                )  # fmt: skip
            ticket.slots.append((key, slot))

    async def _limits(self, ticket: Ticket, scopes: list[_Scope], tokens: float) -> None:
        now = self._clock()
        tightest: tuple[float, _Scope, tuple[float, ...], float] | None = None
        for scope in scopes:
            limits = (float(scope.rpm or _UNLIMITED), float(scope.tpm or _UNLIMITED))
            key = scope.window
            got = await self.state.window_acquire(key, now, WINDOW_S, limits, (1.0, tokens))
            if not got.allowed:
                raise _too_many(scope, limits, got.used, got.retry_after_s, tokens)
            ticket.windows.append((key, got.entry, tokens))
            room = min((lim - used) / lim for lim, used in zip(limits, got.used, strict=True))
            if tightest is None or room < tightest[0]:
                tightest = (room, scope, got.used, got.reset_s)
        if tightest is not None:
            ticket.headers = _headers(tightest[1], tightest[2], tightest[3])

    async def _budgets(self, ticket: Ticket, caller: Caller, cost_usd: float) -> None:
        key, tenant = caller.key, caller.tenant
        budgets: list[tuple[str, str, float | None, Period]] = []
        if key is not None:
            budgets.append(("key", key.id, key.budget_usd, key.budget_period))
        if tenant is not None:
            budgets.append(("tenant", tenant.id, tenant.budget_usd, tenant.budget_period))
        now = self._clock()
        for scope, ident, cap, period in budgets:
            if cap is None:
                continue
            start, end, label = period_bounds(period, now)
            counter = f"spend:{scope}:{ident}:{label}"
            ttl = None if end is None else end - now + 3600
            await self._seed(counter, scope, ident, start, ttl)
            if not await self.state.reserve(counter, cost_usd, cap, ttl):
                spent = await self.state.counter(counter)
                raise HTTPError(
                    429,
                    f"the {scope} {ident!r} is over its budget: ${spent:.4f} of ${cap:.4f} spent or reserved "
                    f"this {'period' if period == 'total' else period}, "
                    f"and this request may cost up to ${cost_usd:.4f}",
                    code="insufficient_quota", kind="insufficient_quota", headers={"x-should-retry": "false"},
                )  # fmt: skip
            ticket.budgets.append((counter, cost_usd))

    async def _seed(self, counter: str, scope: str, ident: str, since: float | None, ttl: float | None) -> None:
        """Start a period's spend counter from the ledger, once (across processes, too).
        The ledger is read first and the sum added with the mark in one atomic step, so
        a failed read marks nothing (503; the next request reads again)."""
        if self.store is None or await self.state.seeded(counter):
            return
        store = self.store
        if scope == "key":
            spent = await store_call(store.spend, key_id=ident, since=since)
        else:
            spent = await store_call(store.spend, tenant=ident, since=since)
        await self.state.seed(counter, spent, ttl)  # another process may have seeded it meanwhile: then a no-op


def period_bounds(period: Period, now: float) -> tuple[float | None, float | None, str]:
    """(start, end, label) of the budget period holding ``now`` (UTC)."""
    if period == "total":
        return None, None, "total"
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day.timestamp(), day.timestamp() + 86400, day.strftime("%Y-%m-%d")
    first = day.replace(day=1)
    following = (
        first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    )
    return first.timestamp(), following.timestamp(), first.strftime("%Y-%m")


def _scopes(caller: Caller, model: str) -> list[_Scope]:
    out: list[_Scope] = []
    key, tenant = caller.key, caller.tenant
    owners: list[tuple[str, ApiKey | Tenant]] = []
    if key is not None:
        owners.append(("key", key))
    if tenant is not None:
        owners.append(("tenant", tenant))
    for name, owner in owners:
        ident, rpm, tpm, per_model = owner.id, owner.rpm, owner.tpm, owner.model_limits
        if rpm or tpm:
            out.append(_Scope(name, ident, None, rpm, tpm))
        limits: Limits | None = per_model.get(model)
        if limits is not None and (limits.rpm or limits.tpm):
            out.append(_Scope(name, ident, model, limits.rpm, limits.tpm))
    return out


def _too_many(
    scope: _Scope, limits: tuple[float, float], used: tuple[float, ...], wait: float, tokens: float
) -> HTTPError:
    what = scope.name if scope.model is None else f"{scope.name} for model {scope.model!r}"
    who = scope.owner
    if math.isinf(wait):
        message = (
            f"this request's ~{int(tokens)} tokens exceed the {what} {who!r} limit of {scope.tpm} tokens per minute"
        )
        return HTTPError(429, message, code="rate_limit_exceeded", headers={"x-should-retry": "false"})
    reqs = scope.rpm is not None and used[0] + 1 > limits[0]
    limit = f"{scope.rpm} requests per minute" if reqs else f"{scope.tpm} tokens per minute"
    headers = _headers(scope, used, wait)
    headers["retry-after"] = str(max(math.ceil(wait), 1))
    headers["retry-after-ms"] = str(max(int(wait * 1000), 1))
    message = f"rate limit of the {what} {who!r} reached ({limit}); retry in {wait:.2f}s"
    return HTTPError(429, message, code="rate_limit_exceeded", headers=headers)


def _headers(scope: _Scope, used: tuple[float, ...], reset_s: float) -> dict[str, str]:
    headers: dict[str, str] = {}
    reset = f"{max(reset_s, 0.0):.3f}s"
    if scope.rpm:
        headers["x-ratelimit-limit-requests"] = str(scope.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(int(scope.rpm - used[0]), 0))
        headers["x-ratelimit-reset-requests"] = reset
    if scope.tpm:
        headers["x-ratelimit-limit-tokens"] = str(scope.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(int(scope.tpm - used[1]), 0))
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


__all__ = ["SLOT_LEASE_S", "WINDOW_S", "Admission", "Ticket", "period_bounds"]
