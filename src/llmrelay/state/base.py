"""The ``StateBackend`` protocol: what several processes must agree on.

Breakers, health, cooldowns, rate-limit windows and spend counters keep their
state behind this interface, so their logic is written once and the storage
(in-process memory, Redis) is chosen by configuration. Every operation is a
single atomic step: in memory it runs under one lock, in Redis it will be one
command or one Lua script. Logic that needs read-modify-write on a value uses
``compare_and_set`` in a loop; anything hot (counters, windows) has its own op.

Key families: a key is used by one family of operations only (values:
``get``/``set``/``compare_and_set``; counters: ``incr``/``counter``/``reserve``/
``settle``/``seed``/``seeded``; windows: ``window_*``; concurrency slots:
``slot_*``/``slots_held``). Mixing families on one key is an error.
``delete`` works on every family. Seeding a counter ``K`` also keeps a marker,
the value key ``K:seeded`` (so ``delete(K)`` leaves it; delete both to seed
again). TTLs, including slot leases, are seconds on the backend's clock (the
Redis server's for Redis, so processes with skewed clocks agree); ``now``
arguments of window operations are seconds on the caller's clock, which must be
the same across processes sharing a backend (wall-clock time).
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

    async def seed(self, key: str, amount: float, ttl_s: float | None = None) -> bool:
        """Atomically, once: if the counter was never seeded (no ``key:seeded``
        marker), add ``amount`` to it (as ``incr`` does, ``ttl_s`` applying when it
        is created), mark it seeded with ``ttl_s`` and return True; otherwise change
        nothing and return False. Marker and amount are one step, so no caller ever
        sees the one without the other: of concurrent seeders exactly one wins (for
        starting a period's spend from the database's sum once across processes)."""
        ...

    async def seeded(self, key: str) -> bool:
        """Whether the counter ``key`` has been seeded (its marker is live)."""
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

    async def slot_acquire(self, key: str, slot: str, limit: int, ttl_s: float) -> bool:
        """Concurrency slots: at most ``limit`` holders of ``key`` at once (requests in flight).

        Atomically: drop the slots of ``key`` whose lease has ended; if fewer than
        ``limit`` others remain, hold ``slot`` with a lease of ``ttl_s`` seconds and
        return True; otherwise change nothing and return False. Exact: concurrent
        callers never hold more than ``limit``. Acquiring a slot already held renews
        its lease (``ttl_s`` must be positive). The lease frees the slots of a
        holder that died without releasing; a live holder of a long task renews
        before it ends.
        """
        ...

    async def slot_release(self, key: str, slot: str) -> None:
        """Free ``slot`` of ``key``; absent (released or expired) is fine."""
        ...

    async def slots_held(self, key: str) -> int:
        """How many slots of ``key`` have a live lease."""
        ...

    async def aclose(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...
