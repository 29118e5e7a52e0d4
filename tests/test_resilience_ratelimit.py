"""RateLimiter (requests and tokens per window) and Cooldown, on MemoryState with fake clocks."""

from __future__ import annotations

import asyncio
import math

import pytest

from clocks import FakeClock
from llmrelay.resilience import Cooldown, RateLimiter, RateLimits
from llmrelay.state import MemoryState


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state() -> MemoryState:
    return MemoryState()


@pytest.fixture
def limiter(state: MemoryState, clock: FakeClock) -> RateLimiter:
    return RateLimiter(state, clock=clock)


async def test_rpm_admits_exactly_the_limit_of_concurrent_requests(limiter: RateLimiter) -> None:
    limits = RateLimits(rpm=25)
    decisions = await asyncio.gather(*(limiter.acquire("dep", 10, limits) for _ in range(200)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 25
    assert sorted(d.remaining_requests for d in allowed) == list(range(25))  # type: ignore[type-var]
    assert all(d.remaining_tokens is None for d in decisions)
    assert all(not d.allowed and d.retry_after_s == 60.0 for d in decisions if d not in allowed)


async def test_the_window_slides(limiter: RateLimiter, clock: FakeClock) -> None:
    limits = RateLimits(rpm=2)
    assert (await limiter.acquire("dep", 0, limits)).allowed
    clock.advance(20)
    assert (await limiter.acquire("dep", 0, limits)).allowed
    refused = await limiter.acquire("dep", 0, limits)
    assert (
        not refused.allowed and refused.retry_after_s == pytest.approx(40.0) and refused.reset_s == pytest.approx(60.0)
    )
    clock.advance(refused.retry_after_s)
    again = await limiter.acquire("dep", 0, limits)
    assert again.allowed and again.remaining_requests == 0


async def test_tpm_and_rpm_are_checked_together(limiter: RateLimiter) -> None:
    limits = RateLimits(rpm=10, tpm=1000)
    first = await limiter.acquire("dep", 800, limits)
    assert (first.allowed, first.remaining_requests, first.remaining_tokens) == (True, 9, 200)
    refused = await limiter.acquire("dep", 300, limits)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(60.0)
    assert refused.remaining_requests == 9  # refused by tokens: the request was not counted
    ok = await limiter.acquire("dep", 200, limits)
    assert (ok.allowed, ok.remaining_requests, ok.remaining_tokens) == (True, 8, 0)


async def test_concurrent_token_reservations_never_exceed_tpm(limiter: RateLimiter) -> None:
    limits = RateLimits(tpm=10_000)
    decisions = await asyncio.gather(*(limiter.acquire("dep", 300 + i % 7, limits) for i in range(100)))
    taken = sum(300 + i % 7 for i, d in enumerate(decisions) if d.allowed)
    assert taken <= 10_000
    assert 10_000 - taken < 300  # and it was filled: nothing else could have fit


async def test_a_request_over_the_limit_never_fits(limiter: RateLimiter) -> None:
    d = await limiter.acquire("dep", 5000, RateLimits(tpm=4000))
    assert not d.allowed and math.isinf(d.retry_after_s)


async def test_settle_with_ticket_gives_back_unused_tokens(limiter: RateLimiter, clock: FakeClock) -> None:
    limits = RateLimits(tpm=1000)
    first = await limiter.acquire("dep", 900, limits)  # estimate: prompt + max_tokens
    assert not (await limiter.acquire("dep", 500, limits)).allowed
    await limiter.settle("dep", 900, 350, ticket=first.ticket)
    second = await limiter.acquire("dep", 500, limits)
    assert second.allowed and second.remaining_tokens == 150
    await limiter.settle("dep", 500, 650, ticket=second.ticket)  # used more than estimated
    check = await limiter.check("dep", 0, limits)
    assert check.remaining_tokens == 0 and check.allowed
    clock.advance(60)
    assert (await limiter.check("dep", 1000, limits)).allowed


async def test_settle_without_ticket(limiter: RateLimiter) -> None:
    limits = RateLimits(tpm=1000)
    await limiter.acquire("dep", 600, limits)
    await limiter.settle("dep", 600, 100)
    assert (await limiter.check("dep", 0, limits)).remaining_tokens == 900
    await limiter.settle("dep", 0, 400)
    assert (await limiter.check("dep", 0, limits)).remaining_tokens == 500
    await limiter.settle("dep", 100, 100)  # no change: no state operation


async def test_check_records_nothing(limiter: RateLimiter) -> None:
    limits = RateLimits(rpm=1, tpm=100)
    peek = await limiter.check("dep", 40, limits)
    assert (peek.allowed, peek.remaining_requests, peek.remaining_tokens, peek.ticket) == (True, 0, 60, None)
    assert (await limiter.acquire("dep", 40, limits)).allowed
    blocked = await limiter.check("dep", 40, limits)
    assert not blocked.allowed and blocked.retry_after_s == pytest.approx(60.0)


async def test_no_limits_touch_no_state(limiter: RateLimiter, state: MemoryState) -> None:
    d = await limiter.acquire("dep", 10**9, RateLimits())
    assert d.allowed and d.remaining_requests is None and d.remaining_tokens is None
    assert state.size() == 0


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    limits = RateLimits(rpm=1)
    assert (await limiter.acquire("a", 0, limits)).allowed
    assert (await limiter.acquire("b", 0, limits)).allowed
    assert not (await limiter.acquire("a", 0, limits)).allowed


async def test_two_limiters_on_one_backend_share_the_limit(state: MemoryState, clock: FakeClock) -> None:
    one, two = RateLimiter(state, clock=clock), RateLimiter(state, clock=clock)  # two processes
    limits = RateLimits(rpm=3)
    results = [await limiter.acquire("dep", 1, limits) for limiter in (one, two, one, two)]
    assert [r.allowed for r in results] == [True, True, True, False]


def test_limits_are_validated() -> None:
    for bad in ({"rpm": 0}, {"tpm": -5}, {"window_s": 0}):
        with pytest.raises(ValueError):
            RateLimits(**bad)


async def test_negative_tokens_are_refused(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError):
        await limiter.acquire("dep", -1, RateLimits(tpm=10))


async def test_cooldown_only_moves_later(state: MemoryState, clock: FakeClock) -> None:
    cool = Cooldown(state, clock=clock)
    assert await cool.remaining("dep") == 0.0
    await cool.start("dep", 10.0)
    await cool.start("dep", 3.0)  # shorter: ignored
    assert await cool.remaining("dep") == pytest.approx(10.0)
    clock.advance(4)
    await cool.start("dep", 20.0)
    assert await cool.remaining("dep") == pytest.approx(20.0)
    clock.advance(20)
    assert await cool.remaining("dep") == 0.0
    await cool.start("dep", 0.0)
    assert await cool.remaining("dep") == 0.0


async def test_cooldown_keys_expire(clock: FakeClock) -> None:
    backend_clock = FakeClock(0.0)
    state = MemoryState(clock=backend_clock)
    cool = Cooldown(state, clock=clock)
    await cool.start("dep", 5.0)
    backend_clock.advance(5.0)
    assert state.purge_expired() == 1 and state.size() == 0
