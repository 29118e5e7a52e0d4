"""Deployment health: passive (every attempt), active (checks) and manual.

- **Passive**, per process: a success score (exponential moving average of
  outcomes, ``ALPHA`` per attempt) that drifts back toward 1 with a half-life
  of ``RECOVERY_HALF_LIFE_S`` while no attempt is made, so a deployment that
  had a bad minute gets traffic again and is judged anew; moving averages of
  latency and time to first token; calls in flight.
- **Active**: the result of the latest background or ``check_now()`` check,
  kept in the ``StateBackend`` (shared by processes; it expires after a few
  intervals, so a stopped checker leaves no stale verdict).
- **Manual**: ``set_health(deployment, False)`` takes a deployment out of
  service and ``True`` forces it in, until ``None`` clears it; in the state
  backend, so every process sharing it obeys.

Shared entries are read through a short local cache (``refresh_s``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .._json import dumps_str, loads
from ..state.base import StateBackend

ALPHA = 0.2
RECOVERY_HALF_LIFE_S = 30.0
RECENT = 200
"""First-token times kept per deployment for its p95 (hedged requests)."""
MIN_SAMPLES = 20
"""No p95 before this many first tokens were seen."""
P95_EVERY = 16
"""The p95 is sorted out again after this many new samples, not on every call."""

HealthStatus = Literal["healthy", "degraded", "unhealthy", "disabled"]


@dataclass(slots=True)
class Stats:
    """What this process saw of one deployment."""

    success: float = 1.0
    latency_s: float | None = None
    ttft_s: float | None = None
    calls: int = 0
    failures: int = 0
    last_at: float | None = None
    last_error: str | None = None
    in_flight: int = 0
    errors: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=ERRORS_KEPT), repr=False)
    """The latest failures: (epoch seconds, what happened), oldest first."""
    first_tokens: Recent = field(default_factory=lambda: Recent(), repr=False)
    """Streams: the latest successful attempts' time to the first token."""
    answers: Recent = field(default_factory=lambda: Recent(), repr=False)
    """Whole answers (not streamed): the latest successful attempts' latency."""


ERRORS_KEPT = 5
"""Failures each deployment's record keeps, to show (``DeploymentHealth.recent_errors``)."""


class Recent:
    """The latest ``RECENT`` durations, and their 95th percentile, sorted out again only
    every ``P95_EVERY`` new ones."""

    __slots__ = ("_p95", "_unsorted", "samples")

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=RECENT)
        self._p95: float | None = None
        self._unsorted = 0

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self._unsorted += 1

    def p95(self) -> float | None:
        """``None`` until ``MIN_SAMPLES`` were seen."""
        if len(self.samples) < MIN_SAMPLES:
            return None
        if self._p95 is None or self._unsorted >= P95_EVERY:
            ordered = sorted(self.samples)
            self._p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]
            self._unsorted = 0
        return self._p95


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    at: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """One deployment's health as the CLI and the gateway show it."""

    group: str
    deployment: str
    status: HealthStatus
    reason: str
    score: float
    breaker: str
    cooldown_s: float
    in_flight: int
    calls: int
    failures: int
    latency_ms: float | None
    ttft_ms: float | None
    last_error: str | None
    check: CheckResult | None
    manual: bool | None
    recent_errors: tuple[tuple[float, str], ...] = ()
    """The latest failures this process saw, oldest first: (epoch seconds, the error)."""


def _average(old: float | None, new: float) -> float:
    return new if old is None else old + ALPHA * (new - old)


class HealthMonitor:
    def __init__(
        self,
        state: StateBackend,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 1.0,
        key_prefix: str = "health:",
    ) -> None:
        self._state = state
        self._clock = clock
        self._refresh_s = refresh_s
        self._prefix = key_prefix
        self._stats: dict[str, Stats] = {}
        self._shared: dict[str, tuple[float, bool | None, CheckResult | None]] = {}

    # ---- passive ------------------------------------------------------------------------

    def stats(self, deployment: str) -> Stats:
        found = self._stats.get(deployment)
        if found is None:
            found = self._stats[deployment] = Stats()
        return found

    def score(self, deployment: str) -> float:
        """The success score now, recovery included."""
        s = self._stats.get(deployment)
        if s is None or s.last_at is None:
            return 1.0
        idle = max(self._clock() - s.last_at, 0.0)
        return 1.0 - (1.0 - s.success) * float(0.5 ** (idle / RECOVERY_HALF_LIFE_S))

    def observe(
        self,
        deployment: str,
        ok: bool,
        *,
        latency_s: float | None = None,
        ttft_s: float | None = None,
        error: str | None = None,
    ) -> None:
        """Count one attempt that says something about the deployment's health."""
        s = self.stats(deployment)
        current = self.score(deployment)
        s.success = current + ALPHA * ((1.0 if ok else 0.0) - current)
        s.last_at = self._clock()
        s.calls += 1
        if ok:
            if latency_s is not None:
                s.latency_s = _average(s.latency_s, latency_s)
            if ttft_s is not None:
                s.ttft_s = _average(s.ttft_s, ttft_s)
            if ttft_s is not None:
                s.first_tokens.add(ttft_s)
            elif latency_s is not None:
                s.answers.add(latency_s)
        else:
            s.failures += 1
            s.last_error = error

    def note_error(self, deployment: str, error: str, detail: str) -> None:
        """Keep a failure among the deployment's latest (every failure, counted against its
        health or not: a rate limit, a timeout cut short by the caller's own deadline)."""
        self.stats(deployment).errors.append((time.time(), f"{error}: {detail}"[:300]))

    def forget(self, deployment: str) -> None:
        """Drop what this process saw (keeps the in-flight count)."""
        old = self._stats.pop(deployment, None)
        if old is not None:
            self.stats(deployment).in_flight = old.in_flight

    def drop(self, deployment: str) -> None:
        """Forget the deployment entirely (its group is gone)."""
        self._stats.pop(deployment, None)
        self._shared.pop(deployment, None)

    # ---- shared: manual overrides and check results ----------------------------------------

    async def shared(self, deployment: str) -> tuple[bool | None, CheckResult | None]:
        """``(manual override, latest check)``, through the local cache."""
        now = self._clock()
        cached = self._shared.get(deployment)
        if cached is not None and now - cached[0] < self._refresh_s:
            return cached[1], cached[2]
        manual_raw = await self._state.get(f"{self._prefix}{deployment}:manual")
        check_raw = await self._state.get(f"{self._prefix}{deployment}:check")
        manual = None if manual_raw is None else manual_raw == "1"
        check = None if check_raw is None else CheckResult(**loads(check_raw))
        self._shared[deployment] = (now, manual, check)
        return manual, check

    async def set_manual(self, deployment: str, healthy: bool | None) -> None:
        key = f"{self._prefix}{deployment}:manual"
        if healthy is None:
            await self._state.delete(key)
        else:
            await self._state.set(key, "1" if healthy else "0")
        self._shared.pop(deployment, None)

    async def set_check(self, deployment: str, result: CheckResult, ttl_s: float | None) -> None:
        payload = {"ok": result.ok, "at": result.at, "error": result.error}
        await self._state.set(f"{self._prefix}{deployment}:check", dumps_str(payload), ttl_s)
        self._shared.pop(deployment, None)


def status_of(
    score: float, breaker: str, cooldown_s: float, manual: bool | None, check: CheckResult | None
) -> tuple[HealthStatus, str]:
    """The status and its reason, from what is known of a deployment."""
    if manual is False:
        return "disabled", "taken out of service by hand"
    if manual is True:
        return "healthy", "forced in service by hand"
    if breaker == "open":
        return "unhealthy", "circuit breaker open"
    if check is not None and not check.ok:
        return "unhealthy", f"health check failed: {check.error or 'no detail'}"
    if score < 0.5:
        return "unhealthy", f"most recent calls failed (success score {score:.2f})"
    if breaker == "half_open":
        return "degraded", "circuit breaker half-open: probing"
    if cooldown_s > 0:
        return "degraded", f"cooling down for {cooldown_s:.1f}s after a rate limit"
    if score < 0.9:
        return "degraded", f"some recent calls failed (success score {score:.2f})"
    return "healthy", "ok"


__all__ = ["CheckResult", "DeploymentHealth", "HealthMonitor", "HealthStatus", "Recent", "Stats", "status_of"]
