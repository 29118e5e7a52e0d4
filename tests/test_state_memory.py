"""MemoryState: what only the in-process backend shows (fake-clock TTLs, key families,
threads and loops, bounded memory); the shared contract is in test_state_contract.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from clocks import FakeClock
from llmrelay.state import MemoryState, StateBackend


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def state(clock: FakeClock) -> MemoryState:
    return MemoryState(clock=clock)


def run_in_threads(threads: int, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``work()`` (a coroutine function) in ``threads`` threads, each with its own event loop."""
    start = threading.Barrier(threads)

    def target() -> None:
        start.wait()
        asyncio.run(work())

    pool = [threading.Thread(target=target) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=30)


def test_is_a_state_backend(state: MemoryState) -> None:
    assert isinstance(state, StateBackend)


async def test_values_expire_lazily_with_their_ttl(state: MemoryState, clock: FakeClock) -> None:
    await state.set("a", "1", ttl_s=10)
    await state.set("b", "2")
    clock.advance(9.999)
    assert await state.get("a") == "1"
    clock.advance(0.001)
    assert await state.get("a") is None
    assert await state.get("b") == "2"
    await state.set("b", "3", ttl_s=1)  # set replaces the TTL too
    clock.advance(1)
    assert await state.get("b") is None
    await state.set("c", "x", ttl_s=1)
    await state.set("c", "y")  # no TTL: kept forever
    clock.advance(1e6)
    assert await state.get("c") == "y"
    await state.delete("c")
    await state.delete("never-there")
    assert await state.get("c") is None


async def test_compare_and_set(state: MemoryState, clock: FakeClock) -> None:
    assert await state.compare_and_set("k", None, "v1", ttl_s=5)
    assert not await state.compare_and_set("k", None, "v2")
    assert not await state.compare_and_set("k", "other", "v2")
    assert await state.get("k") == "v1"
    assert await state.compare_and_set("k", "v1", "v2")  # no TTL given: none kept
    clock.advance(10)
    assert await state.get("k") == "v2"
    assert await state.compare_and_set("k", "v2", None)  # None deletes
    assert await state.get("k") is None
    assert await state.compare_and_set("k", None, None)


async def test_expired_value_counts_as_absent_for_cas(state: MemoryState, clock: FakeClock) -> None:
    await state.set("k", "old", ttl_s=1)
    clock.advance(2)
    assert not await state.compare_and_set("k", "old", "new")
    assert await state.compare_and_set("k", None, "new")


async def test_incr_sets_ttl_at_creation_only(state: MemoryState, clock: FakeClock) -> None:
    assert await state.counter("n") == 0.0
    assert await state.incr("n", ttl_s=10) == 1.0
    clock.advance(6)
    assert await state.incr("n", 2.5, ttl_s=10) == 3.5  # does not extend the TTL
    clock.advance(4)
    assert await state.counter("n") == 0.0
    assert await state.incr("n") == 1.0


async def test_key_families_do_not_mix(state: MemoryState) -> None:
    await state.set("v", "x")
    await state.incr("c")
    with pytest.raises(TypeError):
        await state.incr("v")
    with pytest.raises(TypeError):
        await state.get("c")
    with pytest.raises(TypeError):
        await state.window_acquire("c", 0.0, 60, (1,), (1,))


async def test_slot_leases_run_on_the_backend_clock(state: MemoryState, clock: FakeClock) -> None:
    assert await state.slot_acquire("k", "a", 2, ttl_s=10)
    clock.advance(5)
    assert await state.slot_acquire("k", "b", 2, ttl_s=10)
    assert await state.slot_acquire("k", "a", 2, ttl_s=10)  # renewed: now ends at 15
    assert not await state.slot_acquire("k", "c", 2, ttl_s=10)
    clock.advance(9.999)
    assert await state.slots_held("k") == 2
    clock.advance(0.001)  # a lease that ends now has ended
    assert await state.slots_held("k") == 0
    assert state.size() == 0  # the key expired with its longest lease
    assert await state.slot_acquire("k", "c", 1, ttl_s=1)
    assert state.size() == 1
    await state.slot_release("k", "c")
    assert state.size() == 0  # the last release drops the key


async def test_seed_marks_with_its_ttl(state: MemoryState, clock: FakeClock) -> None:
    assert await state.incr("spend", 2, ttl_s=100)
    assert await state.seed("spend", 5, ttl_s=10)
    assert await state.get("spend:seeded") == "1"  # the marker is the value key K:seeded, as in Redis
    clock.advance(10)
    assert not await state.seeded("spend")  # the marker expires with its ttl...
    assert await state.counter("spend") == 7  # ...the counter's TTL, set at creation, is kept
    assert await state.seed("spend", 1, ttl_s=10)
    assert await state.counter("spend") == 8
    await state.delete("spend")
    assert await state.seeded("spend")  # delete(K) leaves the marker
    assert not await state.seed("spend", 1)


async def test_key_families_do_not_mix_with_slots(state: MemoryState) -> None:
    await state.incr("c")
    assert await state.slot_acquire("s", "a", 1, ttl_s=10)
    with pytest.raises(TypeError):
        await state.slot_acquire("c", "a", 1, ttl_s=10)
    with pytest.raises(TypeError):
        await state.incr("s")
    with pytest.raises(TypeError):
        await state.seed("s", 1)


def test_seeds_and_slots_from_many_threads_and_loops_are_exact() -> None:
    state = MemoryState()
    seeded: list[bool] = []
    slots: list[bool] = []

    async def work() -> None:
        for i in range(50):
            seeded.append(await state.seed("spend", 1.0))
            slots.append(await state.slot_acquire("inflight", f"{threading.get_ident()}:{i}", 30, 60))

    run_in_threads(8, work)
    assert len(seeded) == len(slots) == 400
    assert sum(seeded) == 1 and sum(slots) == 30
    assert asyncio.run(state.counter("spend")) == 1.0
    assert asyncio.run(state.slots_held("inflight")) == 30


def test_reserves_from_many_threads_and_loops_never_overshoot() -> None:
    state = MemoryState()
    granted: list[bool] = []

    async def work() -> None:
        for _ in range(200):
            granted.append(await state.reserve("spend", 1, cap=500))

    run_in_threads(8, work)
    assert len(granted) == 1600
    assert sum(granted) == 500
    assert asyncio.run(state.counter("spend")) == 500


async def test_reserve_then_settle_keeps_spend_within_cap(state: MemoryState) -> None:
    """The budget invariant: spend <= cap + reservations in flight, and <= cap once settled
    when actual costs never exceed the estimates."""
    cap, estimate = 1000.0, 7.0

    async def call(i: int) -> None:
        if not await state.reserve("spend", estimate, cap):
            return
        assert await state.counter("spend") <= cap
        await asyncio.sleep(0)  # the call happens; others interleave
        await state.settle("spend", estimate, actual=float(i % 8))  # 0..7 <= estimate

    await asyncio.gather(*(call(i) for i in range(400)))
    assert 0 < await state.counter("spend") <= cap


async def test_settle(state: MemoryState, clock: FakeClock) -> None:
    assert await state.reserve("s", 10, cap=100, ttl_s=60)
    assert await state.settle("s", reserved=10, actual=4) == 4
    assert await state.settle("s", reserved=0, actual=200) == 204  # spend happened: may pass the cap
    assert await state.settle("s", reserved=500, actual=0) == 0  # never below zero
    clock.advance(60)  # the TTL from creation is kept
    assert await state.counter("s") == 0
    assert await state.settle("s", reserved=1, actual=5) == 0  # expired: left absent
    assert state.size() == 0


def test_window_admits_exactly_n_across_threads() -> None:
    state = MemoryState()
    allowed: list[bool] = []

    async def work() -> None:
        for _ in range(100):
            allowed.append((await state.window_acquire("w", 5.0, 60, (150,), (1,))).allowed)

    run_in_threads(8, work)
    assert sum(allowed) == 150


async def test_memory_stays_bounded(clock: FakeClock) -> None:
    state = MemoryState(clock=clock, sweep_every=100)
    for i in range(5000):
        await state.set(f"cooldown:{i}", "1", ttl_s=1)
        await state.incr(f"health:{i}", ttl_s=1)
        await state.window_acquire(f"rate:{i}", clock.now, 1, (10,), (1,))
        await state.slot_acquire(f"inflight:{i}", "never-released", 4, ttl_s=1)
        await state.seed(f"spend:{i}", 1, ttl_s=1)
    assert state.size() == 30000
    clock.advance(2)
    for i in range(30000):  # a sweep comes within max(sweep_every, keys with a TTL) operations
        await state.get(f"other:{i}")
    assert state.size() == 0
    await state.set("keep", "x")
    await state.set("short", "x", ttl_s=1)
    clock.advance(1)
    assert state.purge_expired() >= 1
    assert state.size() == 1
