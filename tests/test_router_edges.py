"""Router edge cases with in-process scripted providers: cancellation racing a
timeout, probes, the first-token limit, streams stepped from several tasks,
empty answers, providers raising something unexpected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import pytest

from clocks import FakeClock
from llmrelay import Client, errors
from llmrelay.resilience import BreakerConfig
from llmrelay.resilience.breaker import CircuitState
from llmrelay.router import AttemptRecord, Deployment, ModelGroup, Router, RoutingSettings
from llmrelay.router import router as router_module
from llmrelay.testing import FakeProvider, Reply
from llmrelay.types import ChatRequest, ChatResponse, Finish, Message, StreamEvent, TextDelta, Usage, UsageEvent

ChatFn = Callable[[ChatRequest], Awaitable[ChatResponse]]
StreamFn = Callable[[ChatRequest], AsyncGenerator[StreamEvent, None]]


class Scripted(FakeProvider):
    """A fake whose chat or stream runs a given coroutine / generator."""

    def __init__(self, name: str, chat: ChatFn | None = None, stream: StreamFn | None = None) -> None:
        super().__init__(name, [Reply(f"from {name}")])
        self._chat, self._stream = chat, stream

    async def chat(self, request: ChatRequest) -> ChatResponse:
        if self._chat is None:
            return await super().chat(request)
        self.requests.append(request)
        return await self._chat(request)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        source = self._stream(request) if self._stream is not None else super().stream(request)
        async for event in source:
            yield event


def ask(text: str = "hi") -> ChatRequest:
    return ChatRequest(model="", messages=[Message(role="user", content=text)])


def router(providers: list[FakeProvider], deployments: list[Any], **settings: Any) -> Router:
    by_name = {p.name: p for p in providers}
    group = ModelGroup("g", deployments, strategy=settings.pop("strategy", "round_robin"))
    hooks, clock = settings.pop("hooks", ()), settings.pop("clock", None)
    return Router({"g": group}, by_name.__getitem__, settings=RoutingSettings(**settings), hooks=hooks, clock=clock)


async def hang(request: ChatRequest) -> ChatResponse:
    await asyncio.sleep(60)
    raise AssertionError("unreachable")


async def test_a_caller_cancelling_as_the_attempt_times_out_is_not_retried() -> None:
    a, b = Scripted("a", chat=hang), Scripted("b")
    records: list[AttemptRecord] = []
    r = router([a, b], ["a/m", "b/m"], timeout_s=0.2, hooks=[records.append])

    async def busy_loop() -> None:
        await asyncio.sleep(0.05)
        time.sleep(0.4)  # both timers become due in the same loop iteration

    blocker = asyncio.create_task(busy_loop())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await r.chat("g", ask())
    await blocker
    assert [x.outcome for x in records] == ["cancelled"] and not b.requests
    assert (await r.breaker.state_of("a/m")).failures == 0


async def test_callers_behind_a_half_open_probe_go_as_soon_as_it_closes() -> None:
    async def slow_ok(request: ChatRequest) -> ChatResponse:
        await asyncio.sleep(0.1)
        return await FakeProvider.chat(a, request)

    a = Scripted("a", chat=slow_ok)
    breaker = BreakerConfig(failure_threshold=1, recovery_s=0.2, probe_timeout_s=30.0)
    clock = FakeClock()
    r = router([a], ["a/m"], circuit_breaker=breaker, deadline_s=3.0, clock=clock)
    await r.breaker.record_failure("a/m")  # open
    clock.advance(0.25)  # recovered: the next call is the probe
    answers = await asyncio.gather(*(r.chat("g", ask()) for _ in range(4)))
    assert [x.content for x in answers] == ["from a"] * 4  # none waited for the 30 s probe timeout
    assert (await r.breaker.state_of("a/m")).state is CircuitState.CLOSED


async def test_the_first_token_limit_counts_from_the_start_of_the_attempt() -> None:
    async def trickle(request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        for _ in range(30):  # usage but no content, for 3 s
            await asyncio.sleep(0.1)
            yield UsageEvent(Usage(1, 0))
        yield TextDelta("late")

    p = Scripted("p", stream=trickle)
    r = router([p], ["p/m"], timeout_s=0.5, retries=0)
    with pytest.raises(errors.Timeout, match="no first token"):
        async for _ in r.stream("g", ask()):
            pass


async def test_a_first_token_limit_longer_than_the_idle_limit_holds_as_set() -> None:
    """With the idle limit the shorter (0.15 s), a first token at 0.3 s is in time (limit
    0.5 s), a first token that never comes times out at 0.5 s, not at 0.15, and once the
    stream has begun a 0.3 s gap is past the idle limit."""

    async def first_at(delay: float, gap: float) -> AsyncGenerator[StreamEvent, None]:
        await asyncio.sleep(delay)
        yield TextDelta("first")
        await asyncio.sleep(gap)
        yield TextDelta(" second")
        yield Finish("stop", ChatResponse("first second", "stop", Usage(1, 2), "m", "p"))

    def scripted(delay: float, gap: float) -> Router:
        provider = Scripted("p", stream=lambda _: first_at(delay, gap))
        return router([provider], ["p/m"], timeout_s=0.5, stream_idle_s=0.15, retries=0)

    def texts(events: list[StreamEvent]) -> str:
        return "".join(e.text for e in events if isinstance(e, TextDelta))

    r = scripted(0.3, 0.05)
    assert texts([e async for e in r.stream("g", ask())]) == "first second"
    r = scripted(5, 0)
    started = time.monotonic()
    with pytest.raises(errors.Timeout, match="no first token"):
        async for _ in r.stream("g", ask()):
            pass
    assert 0.45 <= time.monotonic() - started < 1.5
    r = scripted(0.01, 0.3)
    with pytest.raises(errors.StreamInterrupted, match="no next event"):
        async for _ in r.stream("g", ask()):
            pass


def test_the_idle_limit_holds_in_the_sync_client_too() -> None:
    async def stall(request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        yield TextDelta("hello")
        await asyncio.sleep(3)
        yield TextDelta(" never")

    p = Scripted("p", stream=stall)
    routing = RoutingSettings(stream_idle_s=0.2, retries=0)
    with Client(env={}, providers=[p], routing=routing) as client:
        seen = []
        with pytest.raises(errors.StreamInterrupted, match="no next event") as caught:
            for event in client.stream("p/m", "hi"):
                seen.append(event)
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["hello"]
    assert caught.value.partial is not None and caught.value.partial.content == "hello"


async def test_an_answer_with_no_content_keeps_its_other_events() -> None:
    p = FakeProvider("p", [Reply("", usage=Usage(7, 0))])
    direct = [type(e).__name__ async for e in p.stream(ask())]
    r = router([p], ["p/m"])
    routed = [type(e).__name__ async for e in r.stream("g", ask())]
    assert routed == direct and "UsageEvent" in routed and routed[-1] == "Finish"


async def test_something_unexpected_from_a_provider_fails_over_as_a_provider_error() -> None:
    async def broken(request: ChatRequest) -> ChatResponse:
        raise RuntimeError("a bug in a custom provider")

    async def broken_stream(request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        raise KeyError("choices")
        yield TextDelta("")  # pragma: no cover

    a, b = Scripted("a", chat=broken, stream=broken_stream), Scripted("b")
    records: list[AttemptRecord] = []
    r = router([a, b], ["a/m", "b/m"], hooks=[records.append])
    assert (await r.chat("g", ask())).content == "from b"
    events = [e async for e in r.stream("g", ask())]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "from b"
    failed = [x for x in records if x.outcome == "error"]
    assert [x.error for x in failed] == ["ProviderError", "ProviderError"]
    assert "RuntimeError: a bug in a custom provider" in (failed[0].message or "")


async def test_a_retry_backs_off_when_the_untried_deployment_cannot_take_calls(monkeypatch: Any) -> None:
    async def fail(request: ChatRequest) -> ChatResponse:
        raise errors.ProviderError("boom", status_code=500)

    pauses: list[float] = []
    real_pause = router_module.pause

    async def spy(step: float, used: int) -> int:
        pauses.append(step)
        return await real_pause(0.0 if step > 0 else step, used)

    monkeypatch.setattr(router_module, "pause", spy)  # the name the routing loop calls
    for how in ("disabled", "rpm"):
        pauses.clear()
        a, b = Scripted("a", chat=fail), Scripted("b")
        deployments = ["a/m", Deployment("b", "m", rpm=1) if how == "rpm" else "b/m"]
        r = router([a, b], deployments, backoff_s=1.0, retries=2, wait_for_capacity=False, seed=3)
        if how == "disabled":
            await r.set_health("b/m", False)
        else:
            limits = Deployment("b", "m", rpm=1).limits
            assert limits is not None
            await r.limiter.acquire("b/m", 0, limits)  # b's minute is used up
        with pytest.raises(errors.NoHealthyDeployment, match="a/m: ProviderError 500"):
            await r.chat("g", ask())
        assert len(pauses) == 2 and all(p > 0 for p in pauses), (how, pauses)  # backoff, not "go at once"


async def test_a_group_removed_during_a_call_does_not_change_its_error() -> None:
    async def fail_later(request: ChatRequest) -> ChatResponse:
        await asyncio.sleep(0.05)
        raise errors.ProviderError("boom", status_code=500)

    a = Scripted("a", chat=fail_later)
    r = router([a], ["a/m"], retries=0)
    task = asyncio.create_task(r.chat("g", ask()))
    await asyncio.sleep(0.01)
    r.remove_group("g")
    with pytest.raises(errors.ProviderError, match="boom"):
        await task


async def test_many_one_off_model_names_keep_memory_bounded(monkeypatch: Any) -> None:
    from llmrelay import AsyncClient
    from llmrelay import client as client_module

    monkeypatch.setattr(client_module, "_IMPLICIT_GROUPS_MAX", 50)
    fake = FakeProvider("p", [Reply("ok")])
    async with AsyncClient(env={}, providers=[fake]) as c:
        for i in range(200):
            await c.chat(f"p/model-{i}", "hi")
        r = c.router
        assert len(r.groups) == 50 and len(r.monitor._stats) == 50 and len(r._prices) <= 50
        assert "p/model-199" in r.groups and "p/model-0" not in r.groups
