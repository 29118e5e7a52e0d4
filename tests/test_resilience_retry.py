"""RetryPolicy decisions, Deadline, and the small retry_call loop (fake clocks, no real waits)."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from clocks import FakeClock
from llmrelay import errors
from llmrelay.resilience import Deadline, RetryPolicy, retry_call


def policy(**kw: object) -> RetryPolicy:
    kw.setdefault("rng", random.Random(1234))
    return RetryPolicy(**kw)  # type: ignore[arg-type]


RETRYABLE = errors.ProviderError("boom", status_code=500)


# -- Deadline -------------------------------------------------------------------------------------


def test_deadline_counts_down_and_bounds_timeouts() -> None:
    clock = FakeClock(100.0)
    d = Deadline(10.0, clock=clock)
    assert d.remaining() == 10.0 and not d.expired()
    assert d.timeout_for(3.0) == 3.0
    assert d.timeout_for(None) == 10.0
    clock.advance(8.5)
    assert d.timeout_for(3.0) == pytest.approx(1.5)
    assert d.allows(1.0) and not d.allows(1.5)
    d.check()
    clock.advance(1.5)
    assert d.expired() and d.remaining() == 0.0
    with pytest.raises(errors.Timeout):
        d.check()
    with pytest.raises(errors.Timeout) as info:
        d.timeout_for(1.0)
    assert info.value.retryable is False and "10s" in str(info.value)


def test_deadline_never_and_validation() -> None:
    d = Deadline.never()
    assert d.timeout_for(None) is None and d.timeout_for(5.0) == 5.0 and math.isinf(d.remaining())
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError):
            Deadline(bad)


# -- RetryPolicy.decide ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidRequest("bad"),
        errors.AuthenticationError("no"),
        errors.ContextWindowExceeded("long"),
        errors.ContentFiltered("no"),
        errors.StreamInterrupted("half"),
        errors.ProviderError("x-should-retry: false", retryable=False),
    ],
)
def test_non_retryable_errors_stop_at_once(error: errors.LLMError) -> None:
    assert policy().decide(1, error, 0.0, None) is None


def test_retryable_flag_is_what_counts() -> None:
    forced = errors.InvalidRequest("x-should-retry: true", retryable=True)
    assert policy().decide(1, forced, 0.0, None) is not None
    for error in (
        errors.RateLimited("slow"),
        errors.Overloaded("busy"),
        errors.Timeout("t"),
        errors.ConnectionError("c"),
    ):
        assert policy().decide(1, error, 0.0, None) is not None


def test_attempts_are_bounded() -> None:
    p = policy(max_attempts=3)
    assert p.decide(1, RETRYABLE, 0.0, None) is not None
    assert p.decide(2, RETRYABLE, 0.0, None) is not None
    assert p.decide(3, RETRYABLE, 0.0, None) is None
    assert policy(max_attempts=1).decide(1, RETRYABLE, 0.0, None) is None


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 6])
def test_full_jitter_is_uniform_below_the_capped_exponential(attempt: int) -> None:
    p = policy(base_delay_s=0.5, max_delay_s=8.0, max_attempts=100)
    top = min(8.0, 0.5 * 2 ** (attempt - 1))
    samples = [p.decide(attempt, RETRYABLE, 0.0, None) for _ in range(20000)]
    delays = [s for s in samples if s is not None]
    assert len(delays) == len(samples)
    assert all(0.0 <= d <= top for d in delays)
    assert sum(delays) / len(delays) == pytest.approx(top / 2, rel=0.02)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):  # the empirical CDF matches uniform(0, top)
        assert sum(d <= q * top for d in delays) / len(delays) == pytest.approx(q, abs=0.015)
    assert min(delays) < 0.01 * top and max(delays) > 0.99 * top


def test_jitter_is_reproducible_with_a_seed_and_none_is_the_ceiling() -> None:
    a = [policy(rng=random.Random(7)).backoff(n) for n in range(1, 8)]
    b = [policy(rng=random.Random(7)).backoff(n) for n in range(1, 8)]
    assert a == b
    fixed = policy(jitter="none", base_delay_s=1.0, max_delay_s=5.0, max_attempts=99)
    assert [fixed.decide(n, RETRYABLE, 0.0, None) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert fixed.ceiling(10_000) == 5.0  # no overflow on absurd attempt numbers


def test_retry_after_is_honoured_exactly() -> None:
    p = policy(max_delay_s=1.0, max_retry_after_s=60.0)
    for hint in (0.05, 3.0, 42.0, 60.0):  # above the backoff cap too: the server knows best
        assert p.decide(1, errors.RateLimited("429", retry_after=hint), 0.0, None) == hint


def test_retry_after_over_the_cap_gives_up() -> None:
    p = policy(max_retry_after_s=30.0)
    assert p.decide(1, errors.RateLimited("429", retry_after=30.5), 0.0, None) is None
    assert policy(max_retry_after_s=None).decide(1, errors.RateLimited("429", retry_after=3600.0), 0.0, None) == 3600.0


def test_zero_retry_after_falls_back_to_backoff() -> None:
    p = policy(base_delay_s=1.0, jitter="none")
    assert p.decide(1, errors.Overloaded("529", retry_after=0.0), 0.0, None) == 1.0


def test_deadline_is_respected() -> None:
    clock = FakeClock(100.0)
    d = Deadline(10.0, clock=clock)
    hinted = errors.RateLimited("429", retry_after=4.0)
    assert policy().decide(1, hinted, 0.0, d) == 4.0
    clock.advance(6.0)  # 4 s left: waiting 4 s would leave nothing
    assert policy().decide(1, hinted, 6.0, d) is None
    p = policy(jitter="none", base_delay_s=1.0)
    assert p.decide(1, RETRYABLE, 6.0, d) == 1.0
    clock.advance(4.0)
    assert p.decide(1, RETRYABLE, 10.0, d) is None


def test_max_elapsed_bounds_the_total() -> None:
    p = policy(jitter="none", base_delay_s=2.0, max_elapsed_s=10.0, max_attempts=9)
    assert p.decide(1, RETRYABLE, 8.0, None) == 2.0
    assert p.decide(1, RETRYABLE, 8.5, None) is None


def test_policy_is_a_validated_value() -> None:
    assert RetryPolicy() == RetryPolicy(rng=random.Random(1))  # the random source is not part of the value
    with pytest.raises(AttributeError):
        RetryPolicy().max_attempts = 5  # type: ignore[misc]
    for bad in ({"max_attempts": 0}, {"base_delay_s": -1}, {"max_retry_after_s": -1}, {"jitter": "equal"}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


# -- retry_call -----------------------------------------------------------------------------------


class Script:
    """An async callable failing with the given errors, then returning "ok"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_retry_call_retries_then_succeeds() -> None:
    slept: list[float] = []
    seen: list[tuple[int, str, float | None]] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    fn = Script(errors.Overloaded("529"), errors.RateLimited("429", retry_after=2.5))
    out = await retry_call(
        fn,
        policy(max_attempts=3, jitter="none", base_delay_s=0.25),
        sleep=sleep,
        on_attempt=lambda n, e, d: seen.append((n, type(e).__name__, d)),
    )
    assert out == "ok" and fn.calls == 3
    assert slept == [0.25, 2.5]
    assert seen == [(1, "Overloaded", 0.25), (2, "RateLimited", 2.5)]


async def test_retry_call_gives_up() -> None:
    async def sleep(s: float) -> None:
        return None

    fn = Script(errors.InvalidRequest("bad"))
    with pytest.raises(errors.InvalidRequest):
        await retry_call(fn, policy(), sleep=sleep)
    assert fn.calls == 1
    last = errors.ProviderError("third")
    fn = Script(errors.ProviderError("1"), errors.ProviderError("2"), last)
    seen: list[float | None] = []
    with pytest.raises(errors.ProviderError) as info:
        await retry_call(fn, policy(max_attempts=3), sleep=sleep, on_attempt=lambda n, e, d: seen.append(d))
    assert info.value is last and fn.calls == 3 and seen[-1] is None
    fn = Script(KeyError("a bug"))
    with pytest.raises(KeyError):
        await retry_call(fn, policy(), sleep=sleep)
    assert fn.calls == 1


async def test_retry_call_stops_at_the_deadline() -> None:
    clock = FakeClock(100.0)
    d = Deadline(5.0, clock=clock)

    async def sleep(s: float) -> None:
        clock.advance(s)

    fn = Script(*(errors.ProviderError(str(i)) for i in range(10)))
    with pytest.raises(errors.ProviderError):
        await retry_call(
            fn, policy(max_attempts=99, jitter="none", base_delay_s=1.0), deadline=d, sleep=sleep, clock=clock
        )
    assert fn.calls == 3  # waits 1 + 2, then 4 would pass the 5 s deadline
    clock.advance(10)
    with pytest.raises(errors.Timeout):  # already spent: no attempt at all
        await retry_call(Script(), policy(), deadline=d)


async def test_retry_call_cuts_a_hanging_attempt_at_the_deadline() -> None:
    never = asyncio.Event()

    async def hang() -> str:
        await never.wait()
        return "late"

    with pytest.raises(errors.Timeout) as info:
        await retry_call(hang, policy(), deadline=Deadline(0.005))
    assert info.value.retryable is False


async def test_retry_call_propagates_cancellation() -> None:
    started = asyncio.Event()

    async def hang() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(retry_call(hang, policy()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
