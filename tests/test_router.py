"""The router over real HTTP: fake upstreams on 127.0.0.1 injecting faults.

Each deployment is an OpenAI-compatible fake server (or one replaying a recorded
Anthropic / Gemini answer); assertions are on which deployment served, how many
requests each upstream got, the texts the caller saw, and the attempt records.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, aclosing
from typing import Any

import pytest

from fakeserver import FakeServer, Reply
from llmrelay import AsyncClient, errors
from llmrelay.providers.anthropic.provider import AnthropicProvider
from llmrelay.providers.base import Provider, ProviderConfig
from llmrelay.providers.gemini.provider import GeminiProvider
from llmrelay.providers.openai.provider import OpenAIProvider
from llmrelay.resilience import BreakerConfig
from llmrelay.router import AttemptRecord, Deployment, ModelGroup, RoutingSettings
from llmrelay.types import ErrorEvent, Finish, StreamEvent, TextDelta
from recordings import load_cassette, load_json, load_sse

CHAT = "/v1/chat/completions"
FAST = RoutingSettings(
    strategy="round_robin", retries=2, timeout_s=2.0, deadline_s=10.0, stream_idle_s=2.0,
    backoff_s=0.01, backoff_max_s=0.05, cooldown_s=30.0, seed=1,
)  # fmt: skip


def answer(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def sse(text: str, pieces: int = 4) -> list[bytes]:
    """``text`` as an OpenAI stream of ``pieces`` content chunks, finish and usage."""
    size = -(-len(text) // pieces)
    parts = [text[i : i + size] for i in range(0, len(text), size)]

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
        body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": choices}
        if usage:
            body["usage"] = usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    out = [chunk({"role": "assistant", "content": p} if i == 0 else {"content": p}) for i, p in enumerate(parts)]
    out.append(chunk({}, "stop"))
    out.append(chunk({}, usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}))
    out.append(b"data: [DONE]\n\n")
    return out


def error_reply(status: int, message: str = "boom", **headers: str) -> Reply:
    """An OpenAI error answer, typed as OpenAI types it for that status."""
    kind = {429: ("requests", "rate_limit_exceeded")}.get(status, ("server_error", None))
    body = {"error": {"message": message, "type": kind[0], "code": kind[1]}}
    return Reply(status=status, json=body, headers=headers)


def openai(name: str, srv: FakeServer) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(name=name, kind="openai", base_url=srv.url + "/v1", api_key="sk-test-1234"))


@pytest.fixture
async def servers() -> AsyncIterator[list[FakeServer]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(FakeServer()) for _ in range(3)]


def client_for(
    providers: Sequence[Provider],
    groups: Sequence[ModelGroup] | None = None,
    routing: RoutingSettings = FAST,
    records: list[AttemptRecord] | None = None,
) -> AsyncClient:
    if groups is None:
        groups = [ModelGroup("g", [Deployment(p.name, "m") for p in providers])]
    hooks = [records.append] if records is not None else []
    return AsyncClient(env={}, providers=providers, models=groups, routing=routing, hooks=hooks)


def texts(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


HI = [{"role": "user", "content": "hi"}]


# ---------------------------------------------------------------- failover on each fault


@pytest.mark.parametrize(
    "fault",
    [
        error_reply(500),
        error_reply(503),
        Reply(reset=True),
        Reply(body=b"<html>bad gateway</html>", status=502, content_type="text/html"),
    ],
    ids=["500", "503", "reset", "html-502"],
)
async def test_a_failed_attempt_moves_to_the_next_deployment(servers: list[FakeServer], fault: Reply) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, fault)
    b.on("POST", CHAT, Reply(json=answer("from b")))
    records: list[AttemptRecord] = []
    async with client_for([openai("a", a), openai("b", b)], records=records) as client:
        r = await client.chat("g", HI)
    assert r.content == "from b"
    assert r.route is not None and (r.route.deployment, r.route.attempts, r.route.group) == ("b/m", 2, "g")
    assert (a.count(CHAT), b.count(CHAT)) == (1, 1)
    assert [(x.deployment, x.outcome, x.number) for x in records] == [("a/m", "error", 1), ("b/m", "ok", 2)]


async def test_a_hang_times_out_and_moves_on(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(hang_s=30))
    b.on("POST", CHAT, Reply(json=answer("from b")))
    records: list[AttemptRecord] = []
    routing = RoutingSettings(**{**_fields(FAST), "timeout_s": 0.3})
    async with client_for([openai("a", a), openai("b", b)], routing=routing, records=records) as client:
        r = await client.chat("g", HI)
    assert r.content == "from b" and r.route is not None and r.route.attempts == 2
    assert records[0].error == "Timeout" and records[0].outcome == "error"


async def test_a_slow_first_byte_within_the_timeout_is_served(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(json=answer("from a"), delay_s=0.2))
    b.on("POST", CHAT, Reply(json=answer("from b")))
    async with client_for([openai("a", a), openai("b", b)]) as client:
        r = await client.chat("g", HI)
    assert r.content == "from a" and b.count(CHAT) == 0


async def test_429_cools_the_deployment_down_for_its_retry_after(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, error_reply(429, "slow down", **{"retry-after": "20"}))
    b.on("POST", CHAT, Reply(json=answer("from b")))
    async with client_for([openai("a", a), openai("b", b)]) as client:
        first = await client.chat("g", HI)
        second = await client.chat("g", HI)  # round robin would start at b anyway; a third call would try a
        third = await client.chat("g", HI)
        health = {h.deployment: h for h in await client.health("g")}
    assert [x.content for x in (first, second, third)] == ["from b"] * 3
    assert a.count(CHAT) == 1  # cooling down: never called again
    assert health["a/m"].status == "degraded" and 19 < health["a/m"].cooldown_s <= 20
    assert health["a/m"].breaker == "closed"  # a 429 is a cooldown, not a failure


async def test_gemini_retry_info_then_a_recorded_anthropic_answer(servers: list[FakeServer]) -> None:
    g, an, _ = servers
    g.on("POST", "/v1beta/models/gemini-2.5-flash:generateContent",
         Reply(status=429, json=load_json("gemini-429-retryinfo-error.json")))  # fmt: skip
    recorded = load_cassette("anthropic-message-nonstream-retry-after-header.cassette.yaml")[0]
    an.on("POST", "/v1/messages", Reply(json=recorded.response_json))
    gemini = GeminiProvider(ProviderConfig("gem", "gemini", base_url=g.url, api_key="AIza-test-123456"))
    anthropic = AnthropicProvider(ProviderConfig("ant", "anthropic", base_url=an.url, api_key="sk-ant-test-1"))
    group = ModelGroup("smart", [Deployment("gem", "gemini-2.5-flash"), Deployment("ant", "claude-sonnet-4-5")])
    async with client_for([gemini, anthropic], [group]) as client:
        r = await client.chat("smart", HI, max_tokens=100)
        cooling = await client.router.cooldown.remaining("gem/gemini-2.5-flash")
    assert r.content.startswith("Paris is known as the") and r.provider == "ant"
    assert r.route is not None and r.route.deployment == "ant/claude-sonnet-4-5"
    assert 33 < cooling <= 34.4  # RetryInfo's retryDelay


async def test_client_errors_are_raised_at_once_without_retry(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(status=400, json={"error": {"message": "bad field", "type": "invalid_request_error"}}))
    b.on("POST", CHAT, Reply(json=answer("from b")))
    async with client_for([openai("a", a), openai("b", b)]) as client:
        with pytest.raises(errors.InvalidRequest, match="bad field"):
            await client.chat("g", HI)
    assert (a.count(CHAT), b.count(CHAT)) == (1, 0)


async def test_a_single_deployment_retries_with_backoff_and_keeps_its_own_error(fake: FakeServer) -> None:
    fake.on("POST", CHAT, error_reply(500), error_reply(502), Reply(json=answer("third time")))
    async with client_for([openai("solo", fake)], groups=[]) as client:
        r = await client.chat("solo/m", HI)
        assert r.content == "third time" and r.route is not None and r.route.attempts == 3
        fake.on("POST", CHAT, error_reply(500, "still down"))
        with pytest.raises(errors.ProviderError, match="still down"):
            await client.chat("solo/m", HI)
    assert fake.count(CHAT) == 3 + 3  # retries=2: three attempts each


async def test_no_healthy_deployment_lists_what_was_tried_and_why(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, error_reply(500, "a is down"))
    b.on("POST", CHAT, Reply(reset=True))
    async with client_for([openai("a", a), openai("b", b)]) as client:
        with pytest.raises(errors.NoHealthyDeployment) as caught:
            await client.chat("g", HI)
    err = caught.value
    tried = dict(err.tried)
    assert set(tried) == {"a/m", "b/m"}
    assert "ProviderError 500" in tried["a/m"] and "a is down" in tried["a/m"]
    assert "ConnectionError" in tried["b/m"]
    assert "3 attempt(s)" in str(err) and isinstance(err.last_error, errors.LLMError)
    assert a.count(CHAT) + b.count(CHAT) == 3


# ---------------------------------------------------------------- streams


async def test_a_stream_failing_before_its_first_token_is_retried_unseen(servers: list[FakeServer]) -> None:
    a, b, c = servers
    a.on("POST", CHAT, error_reply(500))
    in_stream_error = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    b.on("POST", CHAT, Reply(chunks=[in_stream_error]))
    c.on("POST", CHAT, Reply(chunks=sse("the whole answer from c")))
    providers = [openai("a", a), openai("b", b), openai("c", c)]
    async with client_for(providers) as client:
        events = [e async for e in client.stream("g", HI)]
    assert texts(events) == "the whole answer from c"
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.response.content == "the whole answer from c"
    assert finish.response.route is not None and finish.response.route.deployment == "c/m"
    assert finish.response.route.attempts == 3
    assert not any(isinstance(e, ErrorEvent) for e in events)


async def test_a_stream_cut_after_its_first_token_ends_cleanly_and_is_never_restarted(
    servers: list[FakeServer],
) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(chunks=sse("one two three four", pieces=4), cut_after=2))
    b.on("POST", CHAT, Reply(chunks=sse("from b")))
    records: list[AttemptRecord] = []
    async with client_for([openai("a", a), openai("b", b)], records=records) as client:
        events = [e async for e in client.stream("g", HI, raise_errors=False)]
    seen = texts(events)
    assert seen and "one two three four".startswith(seen) and seen != "one two three four"
    last = events[-1]
    assert isinstance(last, ErrorEvent) and isinstance(last.error, errors.StreamInterrupted)
    assert last.partial is not None and last.partial.content == seen  # exactly what was shown, once
    assert b.count(CHAT) == 0
    assert [x.outcome for x in records] == ["interrupted"]


async def test_an_in_stream_error_after_content_interrupts(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    chunks = sse("alpha beta gamma", pieces=3)
    err = b'data: {"error": {"message": "server melted", "type": "server_error"}}\n\n'
    a.on("POST", CHAT, Reply(chunks=[*chunks[:2], err]))
    b.on("POST", CHAT, Reply(chunks=sse("from b")))
    async with client_for([openai("a", a), openai("b", b)]) as client:
        with pytest.raises(errors.StreamInterrupted, match="server melted") as caught:
            async for _ in client.stream("g", HI):
                pass
    partial = caught.value.partial
    assert partial is not None and partial.content == "alpha beta gamma"[: len(partial.content)]
    assert partial.route is not None and partial.route.deployment == "a/m"
    assert b.count(CHAT) == 0


async def test_a_stream_that_stalls_after_its_first_token_is_ended_by_the_idle_limit(
    servers: list[FakeServer],
) -> None:
    a, b, _ = servers
    chunks = sse("slow and then nothing", pieces=2)
    a.on("POST", CHAT, Reply(chunks=[chunks[0], b": keepalive\n\n", *chunks[1:]], chunk_delay_s=5))
    b.on("POST", CHAT, Reply(chunks=sse("from b")))
    routing = RoutingSettings(**{**_fields(FAST), "stream_idle_s": 0.3})
    async with client_for([openai("a", a), openai("b", b)], routing=routing) as client:
        events = [e async for e in client.stream("g", HI, raise_errors=False)]
    last = events[-1]
    assert isinstance(last, ErrorEvent) and isinstance(last.error, errors.StreamInterrupted)
    assert "next event" in str(last.error) and last.partial is not None
    assert last.partial.content == texts(events) == chunks_text(chunks[:1])
    assert b.count(CHAT) == 0


async def test_a_slow_first_token_beyond_the_timeout_fails_over(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(chunks=sse("late"), delay_s=5))
    b.on("POST", CHAT, Reply(chunks=sse("on time")))
    routing = RoutingSettings(**{**_fields(FAST), "timeout_s": 0.3})
    async with client_for([openai("a", a), openai("b", b)], routing=routing) as client:
        events = [e async for e in client.stream("g", HI)]
    assert texts(events) == "on time"


def chunks_text(chunks: list[bytes]) -> str:
    out = ""
    for raw in chunks:
        body = json.loads(raw[len(b"data: ") :])
        for choice in body["choices"]:
            out += choice["delta"].get("content") or ""
    return out


# ---------------------------------------------------------------- cancellation


async def test_a_cancelled_call_stops_upstream_at_once_and_is_not_retried(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(hang_s=30))
    b.on("POST", CHAT, Reply(json=answer("from b")))
    records: list[AttemptRecord] = []
    async with client_for([openai("a", a), openai("b", b)], records=records) as client:
        task = asyncio.create_task(client.chat("g", HI))
        for _ in range(200):
            if a.count(CHAT):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        breaker = await client.router.breaker.state_of("a/m")
        in_flight = client.router.monitor.stats("a/m").in_flight
    assert (a.count(CHAT), b.count(CHAT)) == (1, 0)
    assert [x.outcome for x in records] == ["cancelled"]
    assert breaker.failures == 0 and in_flight == 0


async def test_a_reader_that_stops_a_stream_closes_it_without_retry(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(chunks=sse("many words in this answer", pieces=5), chunk_delay_s=0.05))
    b.on("POST", CHAT, Reply(chunks=sse("from b")))
    records: list[AttemptRecord] = []
    async with client_for([openai("a", a), openai("b", b)], records=records) as client:
        async with aclosing(client.stream("g", HI)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    break
        assert [x.outcome for x in records] == ["cancelled"]
        # and a task cancelled while it waits on a stream
        for srv in (a, b):
            srv.on("POST", CHAT, Reply(chunks=sse("never ends", pieces=2), chunk_delay_s=30))

        async def read_all() -> str:
            return texts([e async for e in client.stream("g", HI)])

        task = asyncio.create_task(read_all())
        for _ in range(200):
            if a.count(CHAT) + b.count(CHAT) == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.router.monitor.stats("a/m").in_flight == client.router.monitor.stats("b/m").in_flight == 0
    assert a.count(CHAT) + b.count(CHAT) == 2  # one call each, nothing retried
    assert [x.outcome for x in records] == ["cancelled", "cancelled"]


# ---------------------------------------------------------------- breakers and health


async def test_the_breaker_opens_removes_the_deployment_and_recovers_with_a_probe(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, error_reply(500))
    b.on("POST", CHAT, Reply(json=answer("from b")))
    routing = RoutingSettings(
        **{**_fields(FAST), "circuit_breaker": BreakerConfig(failure_threshold=2, recovery_s=0.3), "retries": 1}
    )
    async with client_for([openai("a", a), openai("b", b)], routing=routing) as client:
        for _ in range(4):  # round robin: calls 1 and 3 start at a
            assert (await client.chat("g", HI)).content == "from b"
        assert a.count(CHAT) == 2
        report = {h.deployment: h for h in await client.health()}
        assert report["a/m"].breaker == "open" and report["a/m"].status == "unhealthy"
        for _ in range(4):
            await client.chat("g", HI)
        assert a.count(CHAT) == 2  # open: never selected
        await asyncio.sleep(0.35)
        a.on("POST", CHAT, Reply(json=answer("a is back")))
        results = {(await client.chat("g", HI)).content for _ in range(2)}
        assert "a is back" in results and a.count(CHAT) == 3  # one probe, which closed it
        assert (await client.router.breaker.state_of("a/m")).state.value == "closed"


async def test_manual_health_and_active_checks(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(json=answer("from a")))
    b.on("POST", CHAT, Reply(json=answer("from b")))
    a.on("GET", "/v1/models", Reply(json={"object": "list", "data": [{"id": "m", "object": "model"}]}))
    b.on("GET", "/v1/models", error_reply(500, "models down"))
    async with client_for([openai("a", a), openai("b", b)]) as client:
        await client.set_health("a/m", False)
        assert {(await client.chat("g", HI)).content for _ in range(4)} == {"from b"}
        assert {h.deployment: h.status for h in await client.health()}["a/m"] == "disabled"
        await client.set_health("a/m", None)
        report = {h.deployment: h for h in await client.check_now()}
        assert report["a/m"].status == "healthy" and report["b/m"].status == "unhealthy"
        assert report["b/m"].check is not None and "models down" in (report["b/m"].check.error or "")
        # a failed check puts the deployment last, whatever the strategy
        assert {(await client.chat("g", HI)).content for _ in range(4)} == {"from a"}
        with pytest.raises(errors.NotFound, match="unknown deployment"):
            await client.set_health("nope/m", False)


async def test_background_checks_run_at_their_interval(servers: list[FakeServer]) -> None:
    a, _, _ = servers
    a.on("GET", "/v1/models", Reply(json={"object": "list", "data": []}))
    a.on("POST", CHAT, Reply(json=answer("from a")))
    routing = RoutingSettings(**{**_fields(FAST), "health_check_interval_s": 0.05})
    async with client_for([openai("a", a)], routing=routing) as client:
        await client.chat("g", HI)  # starts the checker on this loop
        for _ in range(100):
            if a.count("/v1/models") >= 3:
                break
            await asyncio.sleep(0.02)
    assert a.count("/v1/models") >= 3


# ---------------------------------------------------------------- fallbacks, limits, capacity


async def test_context_window_and_content_filter_fall_back_to_another_group(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    too_long = {"error": {"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"}}
    a.on("POST", CHAT, Reply(status=400, json=too_long))
    b.on("POST", CHAT, Reply(json=answer("big model answered")))
    groups = [ModelGroup("small", ["a/m"], fallbacks=["big"]), ModelGroup("big", ["b/m"])]
    async with client_for([openai("a", a), openai("b", b)], groups) as client:
        r = await client.chat("small", HI)
        assert r.content == "big model answered"
        assert r.route is not None and r.route.fallback and (r.route.requested, r.route.group) == ("small", "big")
        filtered = {"error": {"message": "filtered", "type": "invalid_request_error", "code": "content_filter"}}
        a.on("POST", CHAT, Reply(status=400, json=filtered))
        r = await client.chat("small", HI)
        assert r.route is not None and r.route.group == "big"
        # a prompt that fits no deployment at all keeps its own error
        a.on("POST", CHAT, Reply(status=400, json=too_long))
        b.on("POST", CHAT, Reply(status=400, json=too_long))
        with pytest.raises(errors.ContextWindowExceeded):
            await client.chat("small", HI)


async def test_the_context_window_is_checked_before_sending(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    b.on("POST", CHAT, Reply(json=answer("bigger window")))
    groups = [ModelGroup("g", [Deployment("a", "gpt-4"), Deployment("b", "gpt-4.1")])]  # 8k and 1M windows
    async with client_for([openai("a", a), openai("b", b)], groups) as client:
        r = await client.chat("g", [{"role": "user", "content": "word " * 20000}])
    assert r.content == "bigger window" and a.count(CHAT) == 0


async def test_rpm_limits_move_calls_elsewhere_then_wait_for_capacity(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(json=answer("from a")))
    b.on("POST", CHAT, Reply(json=answer("from b")))
    group = ModelGroup("g", [Deployment("a", "m", rpm=2), Deployment("b", "m", rpm=1)])
    async with client_for([openai("a", a), openai("b", b)], [group]) as client:
        served = [(await client.chat("g", HI)).content for _ in range(3)]
        assert sorted(served) == ["from a", "from a", "from b"]
        fast_fail = RoutingSettings(**{**_fields(FAST), "deadline_s": 1.0})
        client.router.settings = fast_fail
        with pytest.raises(errors.NoHealthyDeployment, match="rpm/tpm limit") as caught:
            await client.chat("g", HI)  # the window frees in ~60 s, past the deadline: no wait
        assert caught.value.retry_after is not None and 50 < caught.value.retry_after <= 60


async def test_all_deployments_cooling_down_waits_for_the_earliest(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, error_reply(429, "later", **{"retry-after-ms": "5000"}), Reply(json=answer("a")))
    b.on("POST", CHAT, error_reply(429, "soon", **{"retry-after-ms": "300"}), Reply(json=answer("b again")))
    routing = RoutingSettings(**{**_fields(FAST), "retries": 3})
    async with client_for([openai("a", a), openai("b", b)], routing=routing) as client:
        r = await client.chat("g", HI)
    assert r.content == "b again" and r.route is not None and r.route.attempts == 3
    assert (a.count(CHAT), b.count(CHAT)) == (1, 2)


async def test_a_deadline_bounds_retries_and_waits(fake: FakeServer) -> None:
    fake.on("POST", CHAT, error_reply(429, "wait a minute", **{"retry-after": "30"}))
    routing = RoutingSettings(**{**_fields(FAST), "deadline_s": 0.5, "max_retry_after_s": 60})
    async with client_for([openai("solo", fake)], routing=routing) as client:
        with pytest.raises(errors.RateLimited):
            await client.chat("g", HI)
    assert fake.count(CHAT) == 1


async def test_embeddings_fail_over_too(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", "/v1/embeddings", error_reply(503))
    b.on("POST", "/v1/embeddings", Reply(json={
        "object": "list", "model": "m", "usage": {"prompt_tokens": 2, "total_tokens": 2},
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
    }))  # fmt: skip
    async with client_for([openai("a", a), openai("b", b)]) as client:
        r = await client.embed("g", "hello")
    assert r.vectors == [[0.1, 0.2]] and r.route is not None and r.route.deployment == "b/m"


async def test_a_hook_that_raises_never_breaks_a_call(servers: list[FakeServer]) -> None:
    a, _, _ = servers
    a.on("POST", CHAT, Reply(json=answer("fine")))

    def broken(record: AttemptRecord) -> None:
        raise RuntimeError("hook bug")

    async with client_for([openai("a", a)]) as client:
        client.router.add_hook(broken)
        assert (await client.chat("g", HI)).content == "fine"


def _fields(settings: RoutingSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


async def test_a_stream_fails_over_to_a_recorded_anthropic_stream(servers: list[FakeServer]) -> None:
    a, an, _ = servers
    a.on("POST", CHAT, Reply(reset=True))
    an.on("POST", "/v1/messages", Reply(chunks=[load_sse("anthropic-stream-basic-text-ping.sse")]))
    anthropic = AnthropicProvider(ProviderConfig("ant", "anthropic", base_url=an.url, api_key="sk-ant-test-1"))
    group = ModelGroup("g", [Deployment("a", "gpt-4o"), Deployment("ant", "claude-sonnet-4-5")])
    async with client_for([openai("a", a), anthropic], [group]) as client:
        events = [e async for e in client.stream("g", HI, max_tokens=100)]
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.response.provider == "ant"
    assert texts(events) == finish.response.content and finish.response.content
    assert finish.response.route is not None and finish.response.route.attempts == 2


async def test_a_deployment_without_a_configured_provider_is_reported_and_skipped(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("configured one")))
    group = ModelGroup("g", [Deployment("anthropic", "claude-sonnet-4-5"), Deployment("a", "m")])
    async with client_for([openai("a", fake)], [group]) as client:
        r = await client.chat("g", HI)
        report = {h.deployment: h for h in await client.health()}
    assert r.content == "configured one" and r.route is not None and r.route.attempts == 1
    missing = report["anthropic/claude-sonnet-4-5"]
    assert missing.status == "unhealthy" and "ANTHROPIC_API_KEY" in missing.reason
