"""Client-side rate limits (requests and tokens per window) and 429 cooldowns.

``RateLimiter`` keeps, per key (a deployment, a virtual key...), one sliding
window log with two dimensions, requests and tokens, in a ``StateBackend``: one
atomic ``window_acquire`` checks and records both, so the limit is exact across
every coroutine of a process (and across processes once the backend is shared).
The token cost is an estimate (prompt + ``max_tokens``), reserved up front;
``settle`` corrects it when the real usage is known.

``Cooldown`` remembers "don't call this key before T" (a 429's ``retry_after``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..state.base import StateBackend
from .deadline import Clock


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Limits per ``window_s`` (60 s: requests and tokens per minute); ``None`` = no limit."""

    rpm: float | None = None
    tpm: float | None = None
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise ValueError("window_s must be > 0")
        if (self.rpm is not None and self.rpm <= 0) or (self.tpm is not None and self.tpm <= 0):
            raise ValueError("rpm and tpm must be > 0 (or None for no limit)")

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None


@dataclass(frozen=True, slots=True)
class Decision:
    """A limiter's answer.

    ``retry_after_s``: 0 when allowed; otherwise when enough of the window will
    have expired for this request to fit (``inf``: the request alone is over a
    limit and never fits). ``remaining_*``: what is left in the window after this
    request (``None`` when that dimension has no limit). ``reset_s``: until all the
    window's current usage has expired. ``ticket`` identifies the reservation for
    ``settle``.
    """

    allowed: bool
    retry_after_s: float
    remaining_requests: float | None
    remaining_tokens: float | None
    reset_s: float
    ticket: str | None = None


_UNLIMITED = Decision(True, 0.0, None, None, 0.0)


class RateLimiter:
    """Requests and tokens per window, per key, on a ``StateBackend``.

    The clock is wall time by default: window timestamps are shared across
    processes. ``retry_after_s`` is exact for the window as it stands; other
    callers may take the freed capacity first, so acquire again after waiting.
    """

    def __init__(self, state: StateBackend, *, clock: Clock = time.time, key_prefix: str = "ratelimit:") -> None:
        self._state = state
        self._clock = clock
        self._prefix = key_prefix

    async def acquire(self, key: str, tokens: float, limits: RateLimits) -> Decision:
        """Take one request and ``tokens`` from the window if both fit; else take nothing."""
        return await self._window(key, tokens, limits, reserve=True)

    async def check(self, key: str, tokens: float, limits: RateLimits) -> Decision:
        """Whether ``acquire`` would succeed now (and if not, when); records nothing."""
        return await self._window(key, tokens, limits, reserve=False)

    async def settle(
        self, key: str, reserved_tokens: float, actual_tokens: float, *, ticket: str | None = None
    ) -> None:
        """Replace a reservation's estimated tokens by the real count.

        With the ``ticket`` of the acquiring ``Decision`` the correction applies to
        that reservation and expires with it (exact); without, extra tokens are
        recorded now and unused ones are given back from the newest reservations.
        """
        delta = actual_tokens - reserved_tokens
        if delta:
            await self._state.window_adjust(self._prefix + key, self._clock(), (0.0, delta), entry=ticket)

    async def release(self, key: str, ticket: str, tokens: float) -> None:
        """Give back a reservation that was never used (the call was not made)."""
        await self._state.window_adjust(self._prefix + key, self._clock(), (-1.0, -float(tokens)), entry=ticket)

    async def _window(self, key: str, tokens: float, limits: RateLimits, *, reserve: bool) -> Decision:
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        if limits.unlimited:
            return _UNLIMITED
        caps = (_cap(limits.rpm), _cap(limits.tpm))
        result = await self._state.window_acquire(
            self._prefix + key, self._clock(), limits.window_s, caps, (1.0, float(tokens)), reserve=reserve
        )
        requests, used_tokens = result.used
        if reserve or not result.allowed:
            pending_requests, pending_tokens = 0.0, 0.0
        else:  # a check reports what would remain had the request been taken
            pending_requests, pending_tokens = 1.0, float(tokens)
        return Decision(
            allowed=result.allowed,
            retry_after_s=result.retry_after_s,
            remaining_requests=_left(limits.rpm, requests + pending_requests),
            remaining_tokens=_left(limits.tpm, used_tokens + pending_tokens),
            reset_s=result.reset_s,
            ticket=result.entry,
        )


def _cap(limit: float | None) -> float:
    return math.inf if limit is None else limit


def _left(limit: float | None, used: float) -> float | None:
    return None if limit is None else max(limit - used, 0.0)


class Cooldown:
    """Per-key "not before" times in a ``StateBackend`` (e.g. after a 429).

    A cooldown only ever moves later: a shorter ``start`` while a longer one runs
    changes nothing. Keys expire with their cooldown.
    """

    def __init__(self, state: StateBackend, *, clock: Clock = time.time, key_prefix: str = "cooldown:") -> None:
        self._state = state
        self._clock = clock
        self._prefix = key_prefix

    async def start(self, key: str, seconds: float) -> None:
        """Cool ``key`` down for ``seconds`` from now (at least)."""
        if seconds <= 0:
            return
        skey, until = self._prefix + key, self._clock() + seconds
        for _ in range(64):
            raw = await self._state.get(skey)
            if raw is not None and float(raw) >= until:
                return
            if await self._state.compare_and_set(skey, raw, repr(until), seconds):
                return

    async def remaining(self, key: str) -> float:
        """Seconds until ``key`` may be called again (0.0 when not cooling down)."""
        raw = await self._state.get(self._prefix + key)
        return 0.0 if raw is None else max(float(raw) - self._clock(), 0.0)
