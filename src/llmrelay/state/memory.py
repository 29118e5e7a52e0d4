"""``MemoryState``: the in-process ``StateBackend`` (the default, zero services).

Every operation runs under one ``threading.Lock`` that is never held across an
``await``, so each is atomic with respect to every coroutine, event loop and
thread of the process, and none can block the loop for more than its own few
microseconds. Expired keys are dropped lazily when touched, and a full sweep
runs once every ``max(sweep_every, number of keys with a TTL)`` operations
(amortised O(1) per operation), so memory stays bounded by the live keys. A
key's concurrency slots expire with its longest lease, so the slots of holders
that never released are swept like any other expired key.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .base import WindowResult

Clock = Callable[[], float]
_T = TypeVar("_T", str, float, "_Window", "_Slots")


@dataclass(slots=True)
class _Entry:
    ts: float
    costs: list[float]
    id: str


class _Window:
    """A sliding-window log: entries in time order and running totals per dimension."""

    __slots__ = ("by_id", "entries", "totals", "window_s")

    def __init__(self, window_s: float, dims: int) -> None:
        self.window_s = window_s
        self.entries: deque[_Entry] = deque()
        self.by_id: dict[str, _Entry] = {}
        self.totals = [0.0] * dims

    def purge(self, now: float) -> None:
        horizon = now - self.window_s
        while self.entries and self.entries[0].ts <= horizon:
            gone = self.entries.popleft()
            del self.by_id[gone.id]
            for d, cost in enumerate(gone.costs):
                self.totals[d] -= cost
        if not self.entries:  # start again from exact zeros (no float drift)
            self.totals = [0.0] * len(self.totals)

    def fits(self, limits: Sequence[float], costs: Sequence[float]) -> bool:
        return all(t + c <= lim for t, c, lim in zip(self.totals, costs, limits, strict=True))

    def wait_s(self, now: float, limits: Sequence[float], costs: Sequence[float]) -> float:
        """Time until enough entries expire for ``costs`` to fit in every dimension."""
        wait = 0.0
        for d, (limit, cost) in enumerate(zip(limits, costs, strict=True)):
            excess = self.totals[d] + cost - limit
            if excess <= 0:
                continue
            if cost > limit:
                return math.inf
            freed = 0.0
            until = self.entries[-1].ts if self.entries else now - self.window_s
            for entry in self.entries:
                freed += entry.costs[d]
                if freed >= excess:
                    until = entry.ts
                    break
            wait = max(wait, until + self.window_s - now)
        return max(wait, 0.0)

    def reset_s(self, now: float) -> float:
        return max(self.entries[-1].ts + self.window_s - now, 0.0) if self.entries else 0.0

    def add(self, now: float, costs: Sequence[float], id_: str) -> str:
        ts = max(now, self.entries[-1].ts) if self.entries else now  # keep the log in time order
        entry = _Entry(ts, [float(c) for c in costs], id_)
        self.entries.append(entry)
        self.by_id[id_] = entry
        for d, cost in enumerate(entry.costs):
            self.totals[d] += cost
        return id_

    def change(self, entry: _Entry, d: int, delta: float) -> float:
        """Add ``delta`` to one entry's cost (never below 0); returns what was applied."""
        new = max(entry.costs[d] + delta, 0.0)
        applied = new - entry.costs[d]
        entry.costs[d] = new
        self.totals[d] += applied
        return applied


class _Slots:
    """Concurrency slots: slot id -> end of its lease (on the backend's clock)."""

    __slots__ = ("leases",)

    def __init__(self) -> None:
        self.leases: dict[str, float] = {}

    def purge(self, now: float) -> None:
        self.leases = {slot: end for slot, end in self.leases.items() if end > now}

    def live(self, now: float) -> int:
        return sum(end > now for end in self.leases.values())


_FAMILY: dict[type, str] = {str: "value", float: "counter", _Window: "window", _Slots: "slots"}


class MemoryState:
    """In-process state; see ``StateBackend`` for each operation's contract."""

    def __init__(self, *, clock: Clock = time.monotonic, sweep_every: int = 1024) -> None:
        self._clock = clock
        self._sweep_every = max(sweep_every, 1)
        self._lock = threading.Lock()
        self._data: dict[str, str | float | _Window | _Slots] = {}
        self._expires: dict[str, float] = {}
        self._ops = 0
        self._ids = itertools.count(1)

    def size(self) -> int:
        """Keys held, including expired ones not yet swept (see ``purge_expired``)."""
        return len(self._data)

    def purge_expired(self) -> int:
        """Drop every expired key now; returns how many were dropped."""
        with self._lock:
            return self._sweep(self._clock())

    # -- internals (call with the lock held) -------------------------------------------------

    def _begin(self) -> float:
        now = self._clock()
        self._ops += 1
        if self._ops >= max(self._sweep_every, len(self._expires)):
            self._sweep(now)
        return now

    def _sweep(self, now: float) -> int:
        self._ops = 0
        dead = [k for k, at in self._expires.items() if at <= now]
        for key in dead:
            self._drop(key)
        return len(dead)

    def _drop(self, key: str) -> None:
        self._data.pop(key, None)
        self._expires.pop(key, None)

    def _live(self, key: str, now: float) -> str | float | _Window | _Slots | None:
        at = self._expires.get(key)
        if at is not None and at <= now:
            self._drop(key)
            return None
        return self._data.get(key)

    def _get(self, key: str, now: float, kind: type[_T]) -> _T | None:
        found = self._live(key, now)
        if found is None or isinstance(found, kind):
            return found
        raise TypeError(f"state key {key!r} is not a {_FAMILY[kind]} (one family of operations per key)")

    def _ttl(self, key: str, ttl_s: float | None, now: float) -> None:
        if ttl_s is None:
            self._expires.pop(key, None)
        else:
            self._expires[key] = now + ttl_s

    def _add(self, key: str, amount: float, ttl_s: float | None, now: float) -> float:
        """Add ``amount`` to a counter (absent = 0); ``ttl_s`` applies when it is created."""
        current = self._get(key, now, float)
        total = (current or 0.0) + amount
        self._data[key] = total
        if current is None:
            self._ttl(key, ttl_s, now)
        return total

    def _keep_slots(self, key: str, slots: _Slots) -> None:
        """Store ``slots`` to expire with their longest lease, or drop the key when none is left."""
        if slots.leases:
            self._data[key] = slots
            self._expires[key] = max(slots.leases.values())
        else:
            self._drop(key)

    # -- values -------------------------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        with self._lock:
            return self._get(key, self._begin(), str)

    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        with self._lock:
            now = self._begin()
            self._get(key, now, str)
            self._data[key] = value
            self._ttl(key, ttl_s, now)

    async def delete(self, key: str) -> None:
        with self._lock:
            self._begin()
            self._drop(key)

    async def compare_and_set(
        self, key: str, expected: str | None, value: str | None, ttl_s: float | None = None
    ) -> bool:
        with self._lock:
            now = self._begin()
            if self._get(key, now, str) != expected:
                return False
            if value is None:
                self._drop(key)
            else:
                self._data[key] = value
                self._ttl(key, ttl_s, now)
            return True

    # -- counters -----------------------------------------------------------------------------

    async def incr(self, key: str, amount: float = 1.0, ttl_s: float | None = None) -> float:
        with self._lock:
            return self._add(key, amount, ttl_s, self._begin())

    async def counter(self, key: str) -> float:
        with self._lock:
            return self._get(key, self._begin(), float) or 0.0

    async def reserve(self, key: str, amount: float, cap: float, ttl_s: float | None = None) -> bool:
        if amount < 0:
            raise ValueError("a reservation cannot be negative")
        with self._lock:
            now = self._begin()
            current = self._get(key, now, float)
            total = (current or 0.0) + amount
            if total > cap:
                return False
            self._data[key] = total
            if current is None:
                self._ttl(key, ttl_s, now)
            return True

    async def settle(self, key: str, reserved: float, actual: float) -> float:
        with self._lock:
            now = self._begin()
            current = self._get(key, now, float)
            if current is None:  # expired or deleted: the reservation went with it
                return 0.0
            total = max(current + actual - reserved, 0.0)
            self._data[key] = total
            return total

    async def seed(self, key: str, amount: float, ttl_s: float | None = None) -> bool:
        marker = key + ":seeded"
        with self._lock:
            now = self._begin()
            if self._get(marker, now, str) is not None:
                return False
            self._add(key, amount, ttl_s, now)
            self._data[marker] = "1"
            self._ttl(marker, ttl_s, now)
            return True

    async def seeded(self, key: str) -> bool:
        with self._lock:
            return self._get(key + ":seeded", self._begin(), str) is not None

    # -- sliding windows ----------------------------------------------------------------------

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
        if len(limits) != len(costs) or any(c < 0 for c in costs):
            raise ValueError("window costs must be non-negative, one per limit")
        with self._lock:
            clock_now = self._begin()
            window = self._get(key, clock_now, _Window) or _Window(window_s, len(limits))
            window.window_s = window_s
            window.purge(now)
            if not window.fits(limits, costs):
                return WindowResult(False, tuple(window.totals), window.wait_s(now, limits, costs), window.reset_s(now))
            entry_id: str | None = None
            if reserve and any(costs):
                entry_id = window.add(now, costs, str(next(self._ids)))
            if window.entries:
                self._data[key] = window
                self._ttl(key, window_s, clock_now)
            else:
                self._drop(key)
            return WindowResult(True, tuple(window.totals), 0.0, window.reset_s(now), entry_id)

    async def window_adjust(self, key: str, now: float, deltas: Sequence[float], *, entry: str | None = None) -> None:
        with self._lock:
            window = self._get(key, self._begin(), _Window)
            if window is None:
                return
            window.purge(now)
            if entry is not None:
                target = window.by_id.get(entry)
                if target is not None:
                    for d, delta in enumerate(deltas):
                        window.change(target, d, delta)
                return
            for d, delta in enumerate(deltas):
                owed = -delta
                for older in reversed(window.entries):
                    if owed <= 0:
                        break
                    owed += window.change(older, d, -owed)
            extra = [max(delta, 0.0) for delta in deltas]
            if any(extra):
                window.add(now, extra, str(next(self._ids)))
                self._data[key] = window
                self._ttl(key, window.window_s, self._clock())

    # -- concurrency slots --------------------------------------------------------------------

    async def slot_acquire(self, key: str, slot: str, limit: int, ttl_s: float) -> bool:
        if ttl_s <= 0:
            raise ValueError("a slot's lease must be positive")
        with self._lock:
            now = self._begin()
            slots = self._get(key, now, _Slots) or _Slots()
            slots.purge(now)
            granted = len(slots.leases) - (slot in slots.leases) < limit
            if granted:
                slots.leases[slot] = now + ttl_s
            self._keep_slots(key, slots)
            return granted

    async def slot_release(self, key: str, slot: str) -> None:
        with self._lock:
            now = self._begin()
            slots = self._get(key, now, _Slots)
            if slots is not None:
                slots.leases.pop(slot, None)
                slots.purge(now)
                self._keep_slots(key, slots)

    async def slots_held(self, key: str) -> int:
        with self._lock:
            now = self._begin()
            slots = self._get(key, now, _Slots)
            return 0 if slots is None else slots.live(now)

    async def aclose(self) -> None:
        return None
