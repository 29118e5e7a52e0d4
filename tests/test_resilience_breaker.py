"""Circuit breakers: transitions on a fake clock, failure classification, shared and concurrent state."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from clocks import FakeClock
from llmrelay import errors
from llmrelay.resilience import BreakerConfig, CircuitBreaker, CircuitState, counts_as_failure
from llmrelay.state import MemoryState, WindowResult


class YieldingState(MemoryState):
    """Lets other tasks run before every operation, as a network backend would,
    so read-modify-write races actually happen."""

    async def get(self, key: str) -> str | None:
        await asyncio.sleep(0)
        return await super().get(key)

    async def compare_and_set(
        self, key: str, expected: str | None, value: str | None, ttl_s: float | None = None
    ) -> bool:
        await asyncio.sleep(0)
        return await super().compare_and_set(key, expected, value, ttl_s)

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
        await asyncio.sleep(0)
        return await super().window_acquire(key, now, window_s, limits, costs, reserve=reserve)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker(clock: FakeClock, state: MemoryState | None = None, **kw: object) -> CircuitBreaker:
    config = BreakerConfig(**{"failure_threshold": 3, "recovery_s": 30.0, **kw})  # type: ignore[arg-type]
    return CircuitBreaker(config, MemoryState() if state is None else state, clock)


async def trip(b: CircuitBreaker, key: str = "d1") -> None:
    for _ in range(b.config.failure_threshold):
        assert await b.allow(key)
        await b.record_failure(key)


async def test_opens_after_consecutive_failures(clock: FakeClock) -> None:
    b = breaker(clock)
    await b.record_failure("d1")
    await b.record_failure("d1")
    await b.record_success("d1")  # a success breaks the streak
    await b.record_failure("d1")
    await b.record_failure("d1")
    assert (await b.state_of("d1")).state is CircuitState.CLOSED
    await b.record_failure("d1")
    s = await b.state_of("d1")
    assert (s.state, s.failures, s.opened_at) == (CircuitState.OPEN, 3, clock.now)
    assert not await b.allow("d1")
    assert await b.allow("d2")  # per key


async def test_half_open_probe_success_closes(clock: FakeClock) -> None:
    state = MemoryState()
    b = breaker(clock, state)
    await trip(b)
    clock.advance(29.9)
    assert not await b.allow("d1")
    assert await b.available_in("d1") == pytest.approx(0.1)
    clock.advance(0.1)
    assert (await b.state_of("d1")).state is CircuitState.HALF_OPEN
    assert await b.available_in("d1") == 0.0
    assert await b.allow("d1")  # the probe
    assert not await b.allow("d1")  # only one at a time
    await b.record_success("d1")
    s = await b.state_of("d1")
    assert (s.state, s.failures) == (CircuitState.CLOSED, 0)
    assert await b.allow("d1")
    assert state.size() == 0  # a closed breaker keeps no record


async def test_half_open_probe_failure_reopens_with_timer_reset(clock: FakeClock) -> None:
    b = breaker(clock)
    await trip(b)
    clock.advance(30)
    assert await b.allow("d1")
    clock.advance(5)
    await b.record_failure("d1")
    s = await b.state_of("d1")
    assert s.state is CircuitState.OPEN and s.opened_at == clock.now
    clock.advance(29)
    assert not await b.allow("d1")
    clock.advance(1)
    assert await b.allow("d1")


async def test_several_probes(clock: FakeClock) -> None:
    b = breaker(clock, half_open_probes=3)
    await trip(b)
    clock.advance(30)
    assert [await b.allow("d1") for _ in range(5)] == [True, True, True, False, False]
    await b.record_error("d1", errors.InvalidRequest("bad input"))  # neutral: frees one slot
    assert (await b.state_of("d1")).state is CircuitState.HALF_OPEN
    assert await b.allow("d1")
    assert not await b.allow("d1")
    await b.record_success("d1")
    assert (await b.state_of("d1")).state is CircuitState.CLOSED


async def test_a_lost_probe_frees_its_slot_after_the_probe_timeout(clock: FakeClock) -> None:
    b = breaker(clock, probe_timeout_s=10.0)
    await trip(b)
    clock.advance(30)
    assert await b.allow("d1")  # this probe never reports (cancelled, crashed...)
    clock.advance(9)
    assert not await b.allow("d1")
    assert await b.available_in("d1") == pytest.approx(1.0)
    clock.advance(1)
    assert await b.allow("d1")


async def test_late_results_while_open_are_ignored(clock: FakeClock) -> None:
    b = breaker(clock)
    await trip(b)
    opened = await b.state_of("d1")
    await b.record_success("d1")  # a call let through before it opened
    await b.record_failure("d1")
    assert await b.state_of("d1") == opened


@pytest.mark.parametrize(
    ("error", "counted"),
    [
        (errors.ProviderError("500"), True),
        (errors.Overloaded("529"), True),
        (errors.Timeout("read"), True),
        (errors.ConnectionError("reset"), True),
        (errors.StreamInterrupted("cut"), True),
        (RuntimeError("unclassified"), True),
        (errors.RateLimited("429"), False),
        (errors.InvalidRequest("400"), False),
        (errors.ContextWindowExceeded("long"), False),
        (errors.ContentFiltered("no"), False),
        (errors.AuthenticationError("401"), False),
        (errors.NotFound("404"), False),
        (errors.CircuitOpen("ours"), False),
        (errors.BudgetExceeded("ours"), False),
    ],
)
def test_which_errors_count(error: BaseException, counted: bool) -> None:
    assert counts_as_failure(error) is counted


async def test_rate_limits_cool_down_unless_configured(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(10):
        assert not await b.record_error("d1", errors.RateLimited("429", retry_after=1))
    assert (await b.state_of("d1")).state is CircuitState.CLOSED
    strict = breaker(clock, count_rate_limits=True)
    for _ in range(3):
        assert await strict.record_error("d1", errors.RateLimited("429"))
    assert (await strict.state_of("d1")).state is CircuitState.OPEN


async def test_client_errors_neither_count_nor_break_a_streak(clock: FakeClock) -> None:
    b = breaker(clock)
    await b.record_error("d1", errors.ProviderError("500"))
    await b.record_error("d1", errors.InvalidRequest("400"))
    await b.record_error("d1", errors.ProviderError("502"))
    assert (await b.state_of("d1")).failures == 2


async def test_failure_rate_over_a_window(clock: FakeClock) -> None:
    b = breaker(clock, failure_threshold=1000, failure_rate=0.5, rate_window_s=60.0, rate_min_calls=10)
    for i in range(9):  # 5 failures in 9 calls: too few calls to judge
        await (b.record_failure("d1") if i % 2 == 0 else b.record_success("d1"))
    assert (await b.state_of("d1")).state is CircuitState.CLOSED
    await b.record_success("d1")  # 10 calls, 5 failures, but the last was a success
    assert (await b.state_of("d1")).state is CircuitState.CLOSED
    await b.record_failure("d1")  # 6 of 11 failed
    assert (await b.state_of("d1")).state is CircuitState.OPEN


async def test_failure_rate_forgets_old_calls(clock: FakeClock) -> None:
    b = breaker(clock, failure_threshold=1000, failure_rate=0.5, rate_window_s=60.0, rate_min_calls=4)
    for _ in range(3):
        await b.record_failure("d1")
    clock.advance(70)  # those left the window
    await b.record_success("d1")
    await b.record_success("d1")
    await b.record_success("d1")
    await b.record_failure("d1")
    assert (await b.state_of("d1")).state is CircuitState.CLOSED  # 1 of 4


async def test_failure_rate_restarts_when_the_breaker_closes(clock: FakeClock) -> None:
    b = breaker(clock, failure_threshold=1000, failure_rate=0.5, rate_window_s=60.0, rate_min_calls=4)
    for _ in range(4):
        await b.record_failure("d1")
    assert (await b.state_of("d1")).state is CircuitState.OPEN
    clock.advance(30)
    assert await b.allow("d1")
    await b.record_success("d1")
    await b.record_failure("d1")  # the failures from before it opened no longer count
    assert (await b.state_of("d1")).state is CircuitState.CLOSED


async def test_state_is_shared_through_the_backend(clock: FakeClock) -> None:
    shared = MemoryState()
    here, there = breaker(clock, shared), breaker(clock, shared)  # two processes on one backend
    await trip(here)
    assert not await there.allow("d1")
    clock.advance(30)
    assert await there.allow("d1")
    assert not await here.allow("d1")  # the probe slot was taken over there
    await there.record_success("d1")
    assert await here.allow("d1")
    await trip(here)
    await there.reset("d1")
    assert await here.allow("d1")


async def test_concurrent_allows_admit_exactly_the_probes(clock: FakeClock) -> None:
    b = breaker(clock, YieldingState(), half_open_probes=2)
    await trip(b)
    clock.advance(30)
    admitted = await asyncio.gather(*(b.allow("d1") for _ in range(100)))
    assert sum(admitted) == 2


async def test_concurrent_failures_are_all_counted(clock: FakeClock) -> None:
    b = breaker(clock, YieldingState(), failure_threshold=1000)
    await asyncio.gather(*(b.record_failure("d1") for _ in range(150)))
    assert (await b.state_of("d1")).failures == 150


def test_config_is_validated() -> None:
    for bad in ({"failure_threshold": 0}, {"half_open_probes": 0}, {"recovery_s": -1}, {"failure_rate": 1.5}):
        with pytest.raises(ValueError):
            BreakerConfig(**bad)
