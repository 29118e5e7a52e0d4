"""The ``StateBackend`` protocol: what several processes must agree on.

Breakers, health, cooldowns, rate-limit windows and spend counters keep their
state behind this interface, so their logic is written once and the storage
(in-process memory, Redis) is chosen by configuration. Every operation is a
single atomic step: in memory it runs under one lock, in Redis it will be one
command or one Lua script. Logic that needs read-modify-write on a value uses
``compare_and_set`` in a loop; anything hot (counters, windows) has its own op.

Key families: a key is used by one family of operations only (values:
``get``/``set``/``compare_and_set``; counters: ``incr``/``counter``/``reserve``/
``settle``; windows: ``window_*``). Mixing families on one key is an error.
``delete`` works on every family. TTLs are seconds on the backend's clock;
``now`` arguments of window operations are seconds on the caller's clock, which
must be the same across processes sharing a backend (wall-clock time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The outcome of ``window_acquire``.

    ``used`` is the window's total per dimension after the acquisition (or as it
    stands, when refused or not reserving). ``retry_after_s`` is 0 when allowed,
    otherwise the time until enough entries expire for the cost to fit (``inf``
    when a cost exceeds its limit and can never fit). ``reset_s`` is the time
    until every entry now in the window has expired. ``entry`` identifies the
    recorded entry, for ``window_adjust``.
    """

    allowed: bool
    used: tuple[float, ...]
    retry_after_s: float
    reset_s: float
    entry: str | None = None


@runtime_checkable
class StateBackend(Protocol):
    """Atomic shared-state operations; see the module docstring for key families."""

    async def get(self, key: str) -> str | None:
        """The value of ``key``, or ``None`` when absent or expired."""
        ...

    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        """Store ``value``, replacing any value and TTL; ``ttl_s=None`` keeps it forever."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` of any family; absent keys are fine."""
        ...

    async def compare_and_set(
        self, key: str, expected: str | None, value: str | None, ttl_s: float | None = None
    ) -> bool:
        """Atomically: if the current value equals ``expected`` (``None`` = absent),
        store ``value`` with ``ttl_s`` (``None`` value = delete) and return True;
        otherwise change nothing and return False. Comparison is by value."""
        ...

    async def incr(self, key: str, amount: float = 1.0, ttl_s: float | None = None) -> float:
        """Atomically add ``amount`` to a counter (absent = 0) and return the new
        total. ``ttl_s`` is applied when the counter is created, never extended,
        so a counter keyed by period expires with its period."""
        ...

    async def counter(self, key: str) -> float:
        """The counter's total (0.0 when absent or expired)."""
        ...

    async def reserve(self, key: str, amount: float, cap: float, ttl_s: float | None = None) -> bool:
        """Atomically: if ``total + amount <= cap``, add ``amount`` and return True;
        otherwise change nothing and return False. Concurrent reservations never
        take the total above ``cap``. ``ttl_s`` as for ``incr``."""
        ...

    async def settle(self, key: str, reserved: float, actual: float) -> float:
        """Atomically replace a reservation by the real amount: add
        ``actual - reserved`` (the total may then exceed the cap: the spend happened),
        never going below 0; the TTL is kept. Returns the new total."""
        ...

    async def window_acquire(
        self,
        key: str,
        now: float,
        window_s: float,
        limits: Sequence[float],
        costs: Sequence[float],
        *,
        reserve: bool = True,
    ) -> WindowResult:
        """A sliding-window log with one or more dimensions (e.g. requests and tokens).

        Atomically: drop entries older than ``now - window_s``; if for every
        dimension ``used + cost <= limit``, record one entry of ``costs`` at
        ``now`` (only when ``reserve``; an all-zero cost records nothing) and
        allow; otherwise record nothing and refuse. Exact: concurrent callers
        never get more than ``limit`` into any window. All calls on a key use
        the same number of dimensions and the same ``window_s``.
        """
        ...

    async def window_adjust(self, key: str, now: float, deltas: Sequence[float], *, entry: str | None = None) -> None:
        """Atomically correct a window's usage by ``deltas`` (per dimension).

        With ``entry`` (from ``window_acquire``), that entry's costs change (never
        below 0), so the correction expires with it; once the entry has left the
        window nothing changes (its usage left with it). Without ``entry``,
        positive deltas are recorded as a new entry at ``now`` and negative ones
        are taken from the newest entries. A key with no live window is left alone.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...
