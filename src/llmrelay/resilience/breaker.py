"""Circuit breakers per key (per deployment): closed -> open -> half-open -> closed.

- **closed**: calls pass. ``failure_threshold`` consecutive failures (or, when
  ``failure_rate`` is set, that share of failed calls over ``rate_window_s`` with
  at least ``rate_min_calls`` calls) open it.
- **open**: calls are refused until ``recovery_s`` has passed since it opened.
- **half-open**: up to ``half_open_probes`` calls (probes) pass at once. The
  first success closes it; a failure re-opens it with the recovery timer reset.
  A probe that never reports frees its slot after ``probe_timeout_s``.

The logic lives here and the state in a ``StateBackend``, so processes sharing
Redis share their breakers: one JSON record per key, changed by
``compare_and_set`` on transitions only (rare, few contenders), and a counter
of consecutive failures (``incr``: no lost updates when many calls fail at
once). The default clock is wall time because records are compared across
processes. Results arriving while open are ignored (calls let through before it
opened); in half-open any success or failure counts, probe or not.

For the router: choose deployments with ``available_in``/``state_of`` (they
change nothing); call ``allow`` only for the attempt actually made (in
half-open it takes a probe slot) and always report its outcome; do not record
attempts cut short by the caller's own deadline or cancellation. A 429 is not a
failure by default: put the deployment in a ``Cooldown`` for its retry-after.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import TypeVar

from .. import errors
from .._json import dumps_str, loads
from ..state.base import StateBackend
from .deadline import Clock

R = TypeVar("R")
_CAS_TRIES = 64
_RATE_BUCKETS = 6
_FAILURES = (errors.ProviderError, errors.Overloaded, errors.Timeout, errors.ConnectionError, errors.StreamInterrupted)


def counts_as_failure(error: BaseException, *, count_rate_limits: bool = False) -> bool:
    """Whether an attempt's error says the deployment is unwell.

    Counted: 5xx (``ProviderError``), ``Overloaded``, ``Timeout``, ``ConnectionError``,
    ``StreamInterrupted``, and any non-``LLMError`` exception (a failure we could
    not classify). Never counted: client errors (``InvalidRequest``,
    ``ContextWindowExceeded``, ``ContentFiltered``, auth, ``NotFound``) and
    llmrelay's own refusals (``CircuitOpen``, ``BudgetExceeded``...): they say
    nothing about the deployment's health. ``RateLimited`` only with
    ``count_rate_limits``: a 429 calls for a cooldown of ``retry_after``, not a trip.
    """
    if isinstance(error, errors.RateLimited):
        return count_rate_limits
    if isinstance(error, errors.LLMError):
        return isinstance(error, _FAILURES)
    return isinstance(error, Exception)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """A breaker's thresholds (a value: share one across every deployment of a group).

    ``idle_reset_s`` bounds how long state lives: a streak of failures older than
    that is forgotten, and an untouched record expires (closed).
    """

    failure_threshold: int = 5
    recovery_s: float = 30.0
    half_open_probes: int = 1
    probe_timeout_s: float = 60.0
    failure_rate: float | None = None
    rate_window_s: float = 60.0
    rate_min_calls: int = 20
    count_rate_limits: bool = False
    idle_reset_s: float = 3600.0
    key_prefix: str = "breaker:"

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.half_open_probes < 1 or self.rate_min_calls < 1:
            raise ValueError("failure_threshold, half_open_probes and rate_min_calls must be >= 1")
        if self.recovery_s < 0 or self.probe_timeout_s <= 0 or self.rate_window_s <= 0:
            raise ValueError("recovery_s must be >= 0; probe_timeout_s and rate_window_s > 0")
        if self.failure_rate is not None and not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class BreakerState:
    """One key's breaker record. ``failures`` counts consecutive failures;
    ``probes`` the probes let through in half-open; ``closed_at`` when it last
    closed after being open (the failure-rate window restarts there)."""

    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float | None = None
    probes: int = 0
    probe_at: float | None = None
    closed_at: float | None = None


_CLOSED = BreakerState()


def _close(s: BreakerState, closed_at: float | None) -> BreakerState:
    """A probe succeeded: half-open -> closed."""
    return BreakerState(closed_at=closed_at) if s.state is CircuitState.HALF_OPEN else s


def _reopen(s: BreakerState, now: float) -> BreakerState:
    """A probe failed: half-open -> open, recovery timer reset."""
    return replace(s, state=CircuitState.OPEN, opened_at=now, probes=0) if s.state is CircuitState.HALF_OPEN else s


def _trip(s: BreakerState, now: float, failures: int) -> BreakerState:
    """Too many failures: closed -> open."""
    return (
        replace(s, state=CircuitState.OPEN, failures=failures, opened_at=now) if s.state is CircuitState.CLOSED else s
    )


def _release(s: BreakerState) -> BreakerState:
    """A probe ended with no verdict (e.g. a client error): its slot is free again."""
    return replace(s, probes=s.probes - 1) if s.state is CircuitState.HALF_OPEN and s.probes else s


def _decode(raw: str | None) -> BreakerState:
    if raw is None:
        return _CLOSED
    data = loads(raw)
    data["state"] = CircuitState(data["state"])
    return BreakerState(**data)


def _encode(record: BreakerState) -> str | None:
    return None if record == _CLOSED else dumps_str(asdict(record))


class CircuitBreaker:
    """Breakers for many keys, sharing one config, one state backend and one clock."""

    def __init__(self, config: BreakerConfig, state: StateBackend, clock: Clock = time.time) -> None:
        self.config = config
        self._state = state
        self._clock = clock

    def counts(self, error: BaseException) -> bool:
        """``counts_as_failure`` with this breaker's ``count_rate_limits``."""
        return counts_as_failure(error, count_rate_limits=self.config.count_rate_limits)

    async def allow(self, key: str) -> bool:
        """Ask to make a call now; in half-open a True takes a probe slot. Call it
        only for a call you will make, then report its outcome (``record_*``)."""
        now = self._clock()
        return await self._update(key, lambda s: self._admit(s, now))

    async def record_success(self, key: str) -> None:
        now = self._clock()
        if self.config.failure_rate is not None:
            await self._count_call(key, now, failed=False)
        record = await self._record(key)
        if record.state is CircuitState.HALF_OPEN:
            closed_at = now if self.config.failure_rate is not None else None
            await self._apply(key, lambda s: _close(s, closed_at))
        if record.state is not CircuitState.OPEN and await self._state.counter(self._fails(key)):
            await self._state.delete(self._fails(key))

    async def record_failure(self, key: str) -> None:
        now = self._clock()
        tripped = await self._count_call(key, now, failed=True)
        record = await self._record(key)
        if record.state is CircuitState.HALF_OPEN:
            await self._apply(key, lambda s: _reopen(s, now))
        elif record.state is CircuitState.CLOSED:
            failures = int(await self._state.incr(self._fails(key), 1.0, self.config.idle_reset_s))
            if failures >= self.config.failure_threshold or tripped:
                await self._apply(key, lambda s: _trip(s, now, failures))
                await self._state.delete(self._fails(key))

    async def record_error(self, key: str, error: BaseException) -> bool:
        """Record a failed call: a failure when ``counts(error)``, otherwise neutral
        (a probe's slot is freed, nothing else changes). Returns whether it counted."""
        if self.counts(error):
            await self.record_failure(key)
            return True
        await self._apply(key, _release)
        return False

    async def state_of(self, key: str) -> BreakerState:
        """The record as ``allow`` would see it now (open past ``recovery_s`` reads as half-open)."""
        record = await self._record(key)
        if record.state is CircuitState.CLOSED:
            return replace(record, failures=int(await self._state.counter(self._fails(key))))
        if record.state is CircuitState.OPEN and self._recovered(record, self._clock()):
            return replace(record, state=CircuitState.HALF_OPEN, probes=0, probe_at=None)
        return record

    async def available_in(self, key: str) -> float:
        """Seconds until ``allow`` could say yes (0.0 if it could now); never changes state."""
        record, now = await self._record(key), self._clock()
        if record.state is CircuitState.OPEN:
            return max((record.opened_at or now) + self.config.recovery_s - now, 0.0)
        if record.state is CircuitState.HALF_OPEN and self._live_probes(record, now) >= self.config.half_open_probes:
            return max((record.probe_at or now) + self.config.probe_timeout_s - now, 0.0)
        return 0.0

    async def peek(self, key: str) -> tuple[float, CircuitState]:
        """``(available_in(key), the state as allow would see it)`` from one read;
        changes nothing. A closed breaker lets every call through, so a router that
        sees it closed need not call ``allow``."""
        record = await self._record(key)
        if record.state is CircuitState.CLOSED:
            return 0.0, CircuitState.CLOSED
        now = self._clock()
        if record.state is CircuitState.OPEN and not self._recovered(record, now):
            return max((record.opened_at or now) + self.config.recovery_s - now, 0.0), CircuitState.OPEN
        if record.state is CircuitState.HALF_OPEN and self._live_probes(record, now) >= self.config.half_open_probes:
            return max((record.probe_at or now) + self.config.probe_timeout_s - now, 0.0), CircuitState.HALF_OPEN
        return 0.0, CircuitState.HALF_OPEN

    async def reset(self, key: str) -> None:
        """Forget the key's breaker (closed, no failures): for manual overrides."""
        await self._state.delete(self._key(key))
        await self._state.delete(self._fails(key))

    # -- transitions ------------------------------------------------------------------------------

    def _recovered(self, s: BreakerState, now: float) -> bool:
        return now >= (s.opened_at or 0.0) + self.config.recovery_s

    def _live_probes(self, s: BreakerState, now: float) -> int:
        fresh = s.probe_at is not None and now < s.probe_at + self.config.probe_timeout_s
        return s.probes if fresh else 0

    def _admit(self, s: BreakerState, now: float) -> tuple[BreakerState, bool]:
        if s.state is CircuitState.CLOSED:
            return s, True
        if s.state is CircuitState.OPEN:
            if not self._recovered(s, now):
                return s, False
            return replace(s, state=CircuitState.HALF_OPEN, probes=1, probe_at=now), True
        probes = self._live_probes(s, now)
        if probes >= self.config.half_open_probes:
            return s, False
        return replace(s, probes=probes + 1, probe_at=now), True

    # -- storage ----------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return f"{self.config.key_prefix}{key}"

    def _fails(self, key: str) -> str:
        return f"{self.config.key_prefix}{key}:fails"

    async def _record(self, key: str) -> BreakerState:
        return _decode(await self._state.get(self._key(key)))

    async def _apply(self, key: str, step: Callable[[BreakerState], BreakerState]) -> None:
        await self._update(key, lambda s: (step(s), None))

    async def _update(self, key: str, step: Callable[[BreakerState], tuple[BreakerState, R]]) -> R:
        """Apply ``step`` with compare-and-set; no write when nothing changes."""
        skey = self._key(key)
        for _ in range(_CAS_TRIES):
            raw = await self._state.get(skey)
            current = _decode(raw)
            new, result = step(current)
            if new == current or await self._state.compare_and_set(skey, raw, _encode(new), self.config.idle_reset_s):
                return result
        raise RuntimeError(f"circuit breaker {key!r}: state kept changing under {_CAS_TRIES} updates")

    async def _count_call(self, key: str, now: float, *, failed: bool) -> bool:
        """Count the call in the failure-rate buckets; True when the rate trips the breaker."""
        cfg, rate = self.config, self.config.failure_rate
        if rate is None:
            return False
        bucket_s = cfg.rate_window_s / _RATE_BUCKETS
        current = math.floor(now / bucket_s)
        ttl = cfg.rate_window_s + bucket_s
        base = f"{self._key(key)}:rate:"
        await self._state.incr(f"{base}{current}:calls", 1.0, ttl)
        if not failed:
            return False
        await self._state.incr(f"{base}{current}:fails", 1.0, ttl)
        since = (await self._record(key)).closed_at
        calls = fails = 0.0
        for bucket in range(current - _RATE_BUCKETS + 1, current + 1):
            if since is not None and bucket * bucket_s < since:
                continue
            calls += await self._state.counter(f"{base}{bucket}:calls")
            fails += await self._state.counter(f"{base}{bucket}:fails")
        return calls >= cfg.rate_min_calls and fails / calls >= rate
