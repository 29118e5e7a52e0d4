"""Every ``StateBackend`` keeps the same contract: memory and a real Redis
(``LLMRELAY_TEST_REDIS_URL``, default redis://127.0.0.1:6379/0; skipped with the
reason when no server answers there). Redis is also checked across processes."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from llmrelay.resilience import BreakerConfig, CircuitBreaker, RateLimiter, RateLimits
from llmrelay.state import MemoryState, StateBackend

REDIS_URL = os.environ.get("LLMRELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_reason() -> str | None:
    """Why Redis tests cannot run here, or None when a server answers."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # any failure to reach it is a reason to skip
        return f"no Redis server at {REDIS_URL} ({type(exc).__name__}: {exc})"
    return None


needs_redis = pytest.mark.skipif(redis_reason() is not None, reason=redis_reason() or "")


def wipe(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*", count=500):
        client.delete(key)


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[StateBackend]:
    if request.param == "memory":
        yield MemoryState()
        return
    from llmrelay.state.redis import RedisState

    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    backend = RedisState(REDIS_URL, prefix=prefix)
    try:
        yield backend
    finally:
        await backend.aclose()
        wipe(prefix)


def test_is_a_state_backend(state: StateBackend) -> None:
    assert isinstance(state, StateBackend)


async def test_values_and_compare_and_set(state: StateBackend) -> None:
    assert await state.get("k") is None
    assert await state.compare_and_set("k", None, "a")
    assert not await state.compare_and_set("k", None, "b")  # present now
    assert not await state.compare_and_set("k", "x", "b")
    assert await state.compare_and_set("k", "a", "b", ttl_s=60)
    assert await state.get("k") == "b"
    assert await state.compare_and_set("k", "b", None)  # None deletes
    assert await state.get("k") is None
    await state.set("k", "v")
    await state.delete("k")
    await state.delete("never-there")
    assert await state.get("k") is None


async def test_counters(state: StateBackend) -> None:
    assert await state.counter("c") == 0.0
    assert await state.incr("c", 2.5, ttl_s=60) == 2.5
    assert await state.incr("c") == 3.5
    assert await state.counter("c") == 3.5


async def test_reserve_respects_the_cap(state: StateBackend) -> None:
    assert await state.reserve("budget", 6, cap=10)
    assert not await state.reserve("budget", 5, cap=10)
    assert await state.reserve("budget", 4, cap=10)
    assert not await state.reserve("budget", 0.5, cap=10)
    assert await state.counter("budget") == 10
    with pytest.raises(ValueError):
        await state.reserve("budget", -1, cap=10)


async def test_200_concurrent_reserves_never_overshoot(state: StateBackend) -> None:
    results = await asyncio.gather(*(state.reserve("spend", 3, cap=100) for _ in range(200)))
    assert sum(results) == 33
    assert await state.counter("spend") == 99


async def test_settle(state: StateBackend) -> None:
    assert await state.reserve("s", 10, cap=100, ttl_s=60)
    assert await state.settle("s", reserved=10, actual=4) == 4
    assert await state.settle("s", reserved=0, actual=200) == 204  # the spend happened: may pass the cap
    assert await state.settle("s", reserved=500, actual=0) == 0  # never below zero
    assert await state.settle("absent", reserved=1, actual=5) == 0  # nothing to settle: left absent
    assert await state.counter("absent") == 0


async def test_window_admits_exactly_n_of_m_concurrent(state: StateBackend) -> None:
    results = await asyncio.gather(*(state.window_acquire("w", 0.0, 60, (37,), (1,)) for _ in range(300)))
    assert sum(r.allowed for r in results) == 37
    assert all(r.used == (37.0,) for r in results if not r.allowed)


async def test_window_slides_and_reports_waits(state: StateBackend) -> None:
    for t in (0.0, 10.0, 20.0):
        assert (await state.window_acquire("w", t, 60, (3,), (1,))).allowed
    refused = await state.window_acquire("w", 30.0, 60, (3,), (1,))
    assert (refused.allowed, refused.used, refused.entry) == (False, (3.0,), None)
    assert refused.retry_after_s == pytest.approx(30.0)  # the entry at 0 leaves at 60
    assert refused.reset_s == pytest.approx(50.0)  # the entry at 20 leaves at 80
    two = await state.window_acquire("w", 30.0, 60, (3,), (2,))
    assert two.retry_after_s == pytest.approx(40.0)  # needs the entries at 0 and 10 gone
    ok = await state.window_acquire("w", 60.0, 60, (3,), (1,))
    assert ok.allowed and ok.used == (3.0,) and ok.entry is not None


async def test_window_dimensions_are_all_or_nothing(state: StateBackend) -> None:
    limits = (10, 1000)
    assert (await state.window_acquire("w", 0.0, 60, limits, (1, 900))).allowed
    refused = await state.window_acquire("w", 1.0, 60, limits, (1, 200))
    assert not refused.allowed and refused.used == (1.0, 900.0)
    assert refused.retry_after_s == pytest.approx(59.0)
    never = await state.window_acquire("w", 1.0, 60, limits, (1, 1001))
    assert not never.allowed and math.isinf(never.retry_after_s)
    unlimited = await state.window_acquire("w", 1.0, 60, (math.inf, 1000), (1, 100))
    assert unlimited.allowed and unlimited.used == (2.0, 1000.0)


async def test_window_check_without_reserving(state: StateBackend) -> None:
    peek = await state.window_acquire("w", 0.0, 60, (1,), (1,), reserve=False)
    assert peek.allowed and peek.entry is None and peek.used == (0.0,)
    assert (await state.window_acquire("w", 0.0, 60, (1,), (1,))).allowed
    assert not (await state.window_acquire("w", 0.0, 60, (1,), (1,), reserve=False)).allowed


async def test_window_adjust_by_entry(state: StateBackend) -> None:
    first = await state.window_acquire("w", 0.0, 60, (1e9, 100), (1, 80))
    await state.window_acquire("w", 30.0, 60, (1e9, 100), (1, 10))
    await state.window_adjust("w", 31.0, (0, -70), entry=first.entry)  # used 10 of the 80 reserved
    assert (await state.window_acquire("w", 31.0, 60, (1e9, 100), (0, 0))).used == (2.0, 20.0)
    await state.window_adjust("w", 31.0, (0, 500), entry=first.entry)  # more than estimated
    assert (await state.window_acquire("w", 31.0, 60, (1e9, 1e9), (0, 0))).used == (2.0, 520.0)
    assert (await state.window_acquire("w", 60.0, 60, (1e9, 1e9), (0, 0))).used == (1.0, 10.0)
    await state.window_adjust("w", 61.0, (0, 1000), entry=first.entry)  # gone: nothing changes
    assert (await state.window_acquire("w", 61.0, 60, (1e9, 1e9), (0, 0))).used == (1.0, 10.0)


async def test_window_adjust_without_entry(state: StateBackend) -> None:
    for t, tokens in ((0.0, 50), (10.0, 30)):
        await state.window_acquire("w", t, 60, (1e9, 1e9), (1, tokens))
    await state.window_adjust("w", 11.0, (0, -40))  # from the newest first: 30 -> 0, then 50 -> 40
    assert (await state.window_acquire("w", 11.0, 60, (1e9, 1e9), (0, 0))).used == (2.0, 40.0)
    assert (await state.window_acquire("w", 60.0, 60, (1e9, 1e9), (0, 0))).used == (1.0, 0.0)
    await state.window_adjust("w", 61.0, (0, 25))  # recorded now, leaves at 121
    assert (await state.window_acquire("w", 120.0, 60, (1e9, 1e9), (0, 0))).used == (0.0, 25.0)
    assert (await state.window_acquire("w", 121.0, 60, (1e9, 1e9), (0, 0))).used == (0.0, 0.0)
    await state.window_adjust("absent", 0.0, (0, 5))
    assert await state.get("absent") is None


async def test_a_breaker_and_a_limiter_work_on_it(state: StateBackend) -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=2, recovery_s=60), state)
    await breaker.record_failure("d")
    assert (await breaker.state_of("d")).state.value == "closed"
    await breaker.record_failure("d")
    assert (await breaker.state_of("d")).state.value == "open" and not await breaker.allow("d")
    limiter = RateLimiter(state)
    limits = RateLimits(rpm=2, tpm=100)
    first = await limiter.acquire("k", 60, limits)
    assert first.allowed and first.remaining_requests == 1 and first.remaining_tokens == 40
    assert not (await limiter.acquire("k", 60, limits)).allowed  # tokens would pass 100
    await limiter.settle("k", 60, 10, ticket=first.ticket)
    assert (await limiter.acquire("k", 60, limits)).allowed


async def test_seed_adds_once_among_20_concurrent_seeders(state: StateBackend) -> None:
    assert not await state.seeded("spend")
    amounts = [float(10 * (i + 1)) for i in range(20)]  # all different: the total tells who won
    results = await asyncio.gather(*(state.seed("spend", amount, ttl_s=60) for amount in amounts))
    assert sum(results) == 1
    winner = amounts[results.index(True)]
    assert await state.counter("spend") == winner
    assert await state.seeded("spend")
    assert not await state.seed("spend", 1.0)  # seeded: nothing changes
    assert await state.counter("spend") == winner
    assert await state.reserve("spend", 5, cap=winner + 5)
    assert not await state.reserve("spend", 1, cap=winner + 5)
    assert await state.settle("spend", reserved=5, actual=2) == winner + 2
    assert await state.incr("spend", 1) == winner + 3


async def test_seed_adds_to_a_counter_already_counting(state: StateBackend) -> None:
    assert await state.reserve("spend", 4, cap=100, ttl_s=60)  # a request came before the seeding
    assert await state.seed("spend", 30, ttl_s=60)
    assert await state.counter("spend") == 34
    assert not await state.seeded("other") and await state.counter("other") == 0


async def test_slots_admit_exactly_the_limit_of_50_concurrent(state: StateBackend) -> None:
    results = await asyncio.gather(*(state.slot_acquire("inflight", f"r{i}", 7, 60) for i in range(50)))
    assert sum(results) == 7
    assert await state.slots_held("inflight") == 7
    assert await state.slots_held("other") == 0


async def test_slot_release_frees_and_reacquiring_renews(state: StateBackend) -> None:
    assert await state.slot_acquire("k", "a", 2, 60)
    assert await state.slot_acquire("k", "b", 2, 60)
    assert not await state.slot_acquire("k", "c", 2, 60)
    assert await state.slot_acquire("k", "a", 2, 60)  # held already: renewed, not a third slot
    assert await state.slots_held("k") == 2
    await state.slot_release("k", "a")
    await state.slot_release("k", "a")  # absent is fine
    await state.slot_release("never-there", "x")
    assert await state.slots_held("k") == 1
    assert await state.slot_acquire("k", "c", 2, 60)
    assert not await state.slot_acquire("k", "d", 2, 60)
    assert not await state.slot_acquire("k", "d", 0, 60)
    with pytest.raises(ValueError):
        await state.slot_acquire("k", "d", 5, 0)


async def test_an_expired_lease_frees_its_slot(state: StateBackend) -> None:
    assert await state.slot_acquire("k", "died", 2, 0.2)  # its holder is gone and never releases
    assert await state.slot_acquire("k", "renewed", 2, 0.2)
    assert await state.slot_acquire("k", "renewed", 2, 60)  # renewing extends the lease
    assert not await state.slot_acquire("k", "new", 2, 60)
    await asyncio.sleep(0.3)
    assert await state.slots_held("k") == 1
    assert await state.slot_acquire("k", "new", 2, 60)
    assert not await state.slot_acquire("k", "more", 2, 60)


# ---------------------------------------------------------------- Redis only: time and processes


@needs_redis
async def test_redis_ttls_are_real() -> None:
    from llmrelay.state.redis import RedisState

    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    state = RedisState(REDIS_URL, prefix=prefix)
    try:
        await state.set("v", "x", ttl_s=0.05)
        await state.incr("c", 1, ttl_s=0.05)
        await state.incr("c", 1, ttl_s=60)  # the TTL is set when created, never extended
        await asyncio.sleep(0.15)
        assert await state.get("v") is None and await state.counter("c") == 0
        assert await state.reserve("s", 1, cap=5, ttl_s=0.05)
        assert await state.settle("s", 1, 2) == 2  # keeps its TTL
        await asyncio.sleep(0.15)
        assert await state.counter("s") == 0
    finally:
        await state.aclose()
        wipe(prefix)


@needs_redis
async def test_redis_seeds_and_slots_expire_with_their_ttls() -> None:
    from llmrelay.state.redis import RedisState

    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    state = RedisState(REDIS_URL, prefix=prefix)
    try:
        assert await state.seed("spend", 3, ttl_s=0.05)
        assert await state.slot_acquire("inflight", "a", 5, 0.05)
        assert await state.slot_acquire("inflight", "b", 5, 0.15)
        assert 50 < await state.redis.pttl(prefix + "inflight") <= 150  # the longest lease
        await asyncio.sleep(0.3)
        assert not await state.seeded("spend") and await state.counter("spend") == 0
        assert await state.redis.exists(prefix + "inflight") == 0  # an abandoned key disappears
        assert await state.seed("spend", 4)  # the period is over: seeded again
        assert await state.counter("spend") == 4 and await state.seeded("spend")
    finally:
        await state.aclose()
        wipe(prefix)


def _acquire_many(prefix: str, count: int, results: multiprocessing.Queue[int]) -> None:
    from llmrelay.state.redis import RedisState

    async def work() -> int:
        state = RedisState(REDIS_URL, prefix=prefix)
        try:
            granted = 0
            for _ in range(count):
                granted += (await state.window_acquire("rpm", 100.0, 60, (150,), (1,))).allowed
            return granted
        finally:
            await state.aclose()

    results.put(asyncio.run(work()))


@needs_redis
def test_redis_limits_are_exact_across_processes() -> None:
    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_acquire_many, args=(prefix, 100, results)) for _ in range(3)]
    try:
        for p in procs:
            p.start()
        granted = [results.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
        wipe(prefix)
    assert sum(granted) == 150  # three processes, 300 tries, a limit of 150: exactly 150


@needs_redis
async def test_a_config_with_redis_state_shares_breakers_between_clients(tmp_path: object) -> None:
    from pathlib import Path

    from llmrelay import AsyncClient, ModelGroup
    from llmrelay.testing import FakeProvider, Reply

    assert isinstance(tmp_path, Path)
    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    config = tmp_path / "llmrelay.yaml"
    config.write_text(f"state: {{backend: redis, url: '{REDIS_URL}', prefix: '{prefix}'}}\n")
    group = ModelGroup("g", ["p/m"])
    try:
        async with AsyncClient(config, env={}, providers=[FakeProvider("p", [Reply("ok")])], models=[group]) as one:
            await one.set_health("p/m", False)
            async with AsyncClient(config, env={}, providers=[FakeProvider("p")], models=[group]) as two:
                assert {h.deployment: h.status for h in await two.health()} == {"p/m": "disabled"}
    finally:
        wipe(prefix)
