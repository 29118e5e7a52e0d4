"""Hedged requests (``hedge`` on a group) over real HTTP on 127.0.0.1: a slow first
attempt gets a second one elsewhere, the first to answer wins, the other is cancelled
at once (its upstream connection closed), and both are recorded and billed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import openai
import pytest

from fakeserver import FakeServer, Reply
from gateways import MASTER, serve
from llmrelay import AsyncClient, errors
from llmrelay.gateway import Gateway
from llmrelay.providers.base import Provider, ProviderConfig
from llmrelay.providers.openai.provider import OpenAIProvider
from llmrelay.router import AttemptRecord, Deployment, ModelGroup, RoutingSettings
from llmrelay.router.health import MIN_SAMPLES, Recent
from llmrelay.router.hedge import Hedge, hedgeable, to_hedge
from llmrelay.store import Store, UsageQuery
from llmrelay.testing import FakeProvider
from llmrelay.types import ChatRequest, ChatResponse, EmbeddingRequest, Finish, Message, TextDelta, Usage

CHAT = "/v1/chat/completions"
ROUTING = RoutingSettings(
    strategy="round_robin", retries=2, timeout_s=5.0, deadline_s=10.0, stream_idle_s=5.0,
    backoff_s=0.01, backoff_max_s=0.05, cooldowns=False, seed=1,
)  # fmt: skip
ASK = [{"role": "user", "content": "hi"}]
SLOW_S = 1.0


def answer(text: str, prompt_tokens: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 2, "total_tokens": prompt_tokens + 2},
    }  # fmt: skip


def sse(text: str) -> list[bytes]:
    def chunk(body: dict[str, Any]) -> bytes:
        return (
            b"data: "
            + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m", **body}).encode()
            + b"\n\n"
        )

    words = text.split(" ")
    out = [chunk({"choices": [{"index": 0, "delta": {"content": w + (" " if i < len(words) - 1 else "")},
                               "finish_reason": None}]}) for i, w in enumerate(words)]  # fmt: skip
    out.append(chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    out.append(chunk({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}))
    return [*out, b"data: [DONE]\n\n"]


def slow(text: str) -> Reply:
    return Reply(json=answer(text), streamed=sse(text), delay_s=SLOW_S)


def fast(text: str) -> Reply:
    return Reply(json=answer(text), streamed=sse(text))


def provider(name: str, srv: FakeServer) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(name=name, kind="openai", base_url=srv.url + "/v1", api_key="sk-test-1"))


def client_for(
    providers: list[Provider], hedge: Any = None, deployments: list[Deployment] | None = None, **kw: Any
) -> AsyncClient:
    deps = deployments or [Deployment(p.name, "m") for p in providers]
    group = ModelGroup("g", deps, hedge=hedge if hedge is not None else {"after_ms": 100})
    return AsyncClient(env={}, providers=providers, models=[group], routing=ROUTING, **kw)


@pytest.fixture
async def servers() -> AsyncIterator[list[FakeServer]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(FakeServer()) for _ in range(3)]


async def test_a_slow_answer_is_hedged_and_the_faster_one_wins(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, slow("from a"))
    b.on("POST", CHAT, fast("from b"))
    records: list[AttemptRecord] = []
    async with client_for([provider("a", a), provider("b", b)], hooks=[records.append]) as client:
        begun = time.monotonic()
        r = await client.chat("g", ASK)
        took = time.monotonic() - begun
    assert r.content == "from b" and took < SLOW_S / 2
    assert r.route is not None and r.route.deployment == "b/m" and r.route.hedged == ("a/m",)
    assert a.count(CHAT) == 1 and b.count(CHAT) == 1
    assert sorted((x.deployment, x.outcome) for x in records) == [("a/m", "cancelled"), ("b/m", "ok")]


async def test_a_slow_stream_is_hedged_and_the_first_token_wins(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, slow("from a, late"))
    b.on("POST", CHAT, fast("from b, on time"))
    async with client_for([provider("a", a), provider("b", b)]) as client:
        begun = time.monotonic()
        events = [e async for e in client.stream("g", ASK)]
        took = time.monotonic() - begun
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "from b, on time"
    done = events[-1]
    assert isinstance(done, Finish) and done.response.route is not None
    assert done.response.route.deployment == "b/m" and done.response.route.hedged == ("a/m",)
    assert took < SLOW_S / 2 and sum(isinstance(e, Finish) for e in events) == 1


async def test_an_answer_within_the_threshold_is_not_hedged(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, fast("from a"))
    b.on("POST", CHAT, fast("from b"))
    async with client_for([provider("a", a), provider("b", b)], hedge={"after_ms": 2000}) as client:
        results = [await client.chat("g", ASK) for _ in range(4)]
    assert a.count(CHAT) + b.count(CHAT) == 4  # one upstream call per request
    assert all(r.route is not None and r.route.hedged == () for r in results)


async def test_the_loser_upstream_connection_is_closed_at_once() -> None:
    closed: list[float] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(1 << 16)  # the body, and then: nothing more until the client leaves
        rest = await asyncio.wait_for(reader.read(), 10)
        closed.append(time.monotonic())
        assert rest == b""
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, FakeServer() as b:
        b.on("POST", CHAT, fast("from b"))
        silent = OpenAIProvider(ProviderConfig("a", "openai", base_url=f"http://127.0.0.1:{port}/v1", api_key="k"))
        async with client_for([silent, provider("b", b)]) as client:
            r = await client.chat("g", ASK)
            answered = time.monotonic()
            for _ in range(100):
                if closed:
                    break
                await asyncio.sleep(0.01)
    assert r.content == "from b" and closed and closed[0] - answered < 0.5


async def test_a_request_with_effects_is_never_hedged(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(json=answer("from a"), delay_s=0.4))
    b.on("POST", CHAT, fast("from b"))
    async with client_for([provider("a", a), provider("b", b)]) as client:
        r = await client.chat("g", ASK, extra={"store": True})
    assert r.content == "from a" and b.count(CHAT) == 0


def test_what_may_be_hedged() -> None:
    ask = [Message(role="user", content="hi")]
    assert hedgeable(ChatRequest("m", ask))
    assert hedgeable(ChatRequest("m", ask, extra={"tools": [{"type": "function", "function": {"name": "f"}}]}))
    assert hedgeable(ChatRequest("m", ask, extra={"tools": [{"functionDeclarations": []}]}))
    for effect in ({"store": True}, {"background": True}, {"previous_response_id": "resp_1"},
                   {"conversation": "conv_1"}, {"tools": [{"type": "web_search"}]}, {"tools": [{"googleSearch": {}}]},
                   {"tools": [{"type": "mcp", "server_url": "https://x"}]}):  # fmt: skip
        assert not hedgeable(ChatRequest("m", ask, extra=effect)), effect
    assert not hedgeable(EmbeddingRequest("m", ["a"]))


async def test_a_deployment_at_its_rate_limit_is_not_hedged_to(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(json=answer("from a"), delay_s=0.4))
    b.on("POST", CHAT, fast("from b"))
    limited = Deployment("b", "m", rpm=1)
    groups = [
        ModelGroup("g", [Deployment("a", "m"), limited], hedge={"after_ms": 100}),
        ModelGroup("only-b", [limited]),
    ]
    async with AsyncClient(env={}, providers=[provider("a", a), provider("b", b)], models=groups,
                           routing=ROUTING) as client:  # fmt: skip
        await client.chat("only-b", ASK)  # b's one request of the minute
        r = await client.chat("g", ASK)
    assert r.content == "from a" and b.count(CHAT) == 1


async def test_a_failing_hedge_leaves_the_first_attempt_to_answer(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, Reply(json=answer("from a"), delay_s=0.4))
    b.on("POST", CHAT, Reply(status=500, json={"error": {"message": "down", "type": "server_error"}}))
    async with client_for([provider("a", a), provider("b", b)]) as client:
        r = await client.chat("g", ASK)
    assert r.content == "from a" and b.count(CHAT) == 1


def test_the_p95_needs_enough_samples_and_follows_them() -> None:
    recent = Recent()
    for i in range(MIN_SAMPLES - 1):
        recent.add(0.01 * (i + 1))
    assert recent.p95() is None
    for _ in range(200):
        recent.add(0.1)
    for _ in range(10):
        recent.add(5.0)  # 10 of the latest 200: the 95th percentile is still 0.1
    assert recent.p95() == pytest.approx(0.1)
    for _ in range(20):
        recent.add(5.0)
    assert recent.p95() == 5.0


async def test_p95_hedges_only_the_calls_slower_than_usual(servers: list[FakeServer]) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, *[fast("from a")] * (MIN_SAMPLES + 5), slow("from a"))
    b.on("POST", CHAT, fast("from b"))
    deps = [Deployment("a", "m"), Deployment("b", "m", weight=0.001)]
    group = ModelGroup("g", deps, strategy="weighted", hedge={"after_ms": "p95"})
    async with AsyncClient(env={}, providers=[provider("a", a), provider("b", b)], models=[group],
                           routing=ROUTING) as client:  # fmt: skip
        routes = [(await client.chat("g", ASK)).route for _ in range(MIN_SAMPLES + 6)]
    assert all(r is not None and not r.hedged for r in routes[:MIN_SAMPLES])  # no p95 yet: no hedge
    slowest = routes[-1]
    assert slowest is not None and slowest.deployment == "b/m" and slowest.hedged == ("a/m",)
    assert sum(1 for r in routes if r is not None and r.hedged) <= 4  # about one call in twenty, by design


def test_hedge_settings_are_checked() -> None:
    assert to_hedge({"after_ms": "p95"}) == Hedge(None, True, 1)
    assert to_hedge({"after_ms": 250, "max": 2}) == Hedge(250, False, 2)
    for bad in ({}, {"after_ms": 0}, {"after_ms": "soon"}, {"after_ms": 10, "max": 0}, {"after_ms": 10, "max": 9},
                {"after_ms": 10, "wait": 1}, {"after_ms": float("nan")}):  # fmt: skip
        with pytest.raises(errors.ConfigError, match="hedge"):
            ModelGroup("g", ["openai/m"], hedge=bad)


# ---- through the gateway: the loser is billed ---------------------------------------------------


@pytest.fixture
async def gateway(servers: list[FakeServer]) -> AsyncIterator[tuple[str, Gateway]]:
    a, b, _ = servers
    providers: list[Provider] = [provider("a", a), provider("b", b)]
    deps = [Deployment("a", "gpt-4o-mini"), Deployment("b", "gpt-4o-mini")]
    groups = [ModelGroup("g", deps, hedge={"after_ms": 100})]
    client = AsyncClient(env={}, providers=providers, models=groups, routing=ROUTING)
    client.settings.models.update({g.name: g for g in groups})
    app = Gateway(client, master_key=MASTER, store=Store.open("sqlite://"))
    async for url in serve(app):
        yield url, app


async def test_the_gateway_bills_the_hedged_attempt_too(
    servers: list[FakeServer], gateway: tuple[str, Gateway]
) -> None:
    a, b, _ = servers
    a.on("POST", CHAT, slow("from a"))
    b.on("POST", CHAT, fast("from b"))
    url, app = gateway
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0) as sdk:
        r = await sdk.chat.completions.create(model="g", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "from b" and r.usage is not None and r.usage.prompt_tokens == 7
    assert app.ledger is not None and app.store is not None
    await app.ledger.flush()
    rows = app.store.usage(UsageQuery())
    assert len(rows) == 1 and rows[0].prompt_tokens == 14  # b's prompt, and a's, which a was sent too
    assert rows[0].cost_usd is not None and rows[0].cost_usd > 0


def test_a_budget_reserves_the_prompts_of_the_hedges_too() -> None:
    from llmrelay.gateway.billing import PriceBook

    deps = [Deployment("openai", "gpt-4o-mini"), Deployment("openai", "gpt-4o-mini")]
    groups = [ModelGroup("plain", deps), ModelGroup("hedged", deps, hedge={"after_ms": 100, "max": 2})]
    client = AsyncClient(env={"OPENAI_API_KEY": "sk-test-1"}, models=groups)
    book = PriceBook(client)
    request = ChatRequest("gpt-4o-mini", [Message(role="user", content="hello " * 200)], max_tokens=10)
    plain, hedged = book.reservation("plain", request), book.reservation("hedged", request)
    prompt_only = book.reservation("plain", ChatRequest("gpt-4o-mini", request.messages, max_tokens=0))
    assert hedged == pytest.approx(plain + 2 * prompt_only)
    effects = ChatRequest("gpt-4o-mini", request.messages, max_tokens=10, extra={"store": True})
    assert book.reservation("hedged", effects) == pytest.approx(book.reservation("plain", effects))  # never hedged


# ---- the race's edges, with in-process providers whose timing the test controls -----------------


class Timed(FakeProvider):
    """Streams ``from <name>`` once ``gate`` opens (or after ``first_s``); notes when closed."""

    def __init__(self, name: str, gate: asyncio.Event | None = None, first_s: float = 0.0) -> None:
        super().__init__(name)
        self.gate, self.first_s = gate, first_s
        self.closed: list[str] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[Any]:  # type: ignore[override]
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(self.first_s)
            yield TextDelta(f"from {self.name}")
            done = ChatResponse(content=f"from {self.name}", finish_reason="stop", usage=Usage(3, 2),
                                model=request.model, provider=self.name)  # fmt: skip
            yield Finish("stop", done)
        finally:
            self.closed.append(self.name)


def timed_client(a: Timed, b: Timed, records: list[AttemptRecord]) -> AsyncClient:
    group = ModelGroup("g", [Deployment("a", "m", rpm=100), Deployment("b", "m", rpm=100)], hedge={"after_ms": 50})
    return AsyncClient(env={}, providers=[a, b], models=[group], routing=ROUTING, hooks=[records.append])


async def test_two_first_tokens_in_the_same_step_leave_nothing_open() -> None:
    gate = asyncio.Event()
    a, b = Timed("a", gate), Timed("b", gate)
    records: list[AttemptRecord] = []
    async with timed_client(a, b, records) as client:
        asyncio.get_running_loop().call_later(0.15, gate.set)  # after the hedge started: both at once
        events = [e async for e in client.stream("g", ASK)]
        assert isinstance(events[-1], Finish) and sum(isinstance(e, TextDelta) for e in events) == 1
        for dep in ("a/m", "b/m"):
            assert client.router.monitor.stats(dep).in_flight == 0
    assert sorted(x.outcome for x in records) == ["cancelled", "ok"]
    assert a.closed == ["a"] and b.closed == ["b"]  # both streams closed: the loser's too


async def test_a_caller_leaving_as_the_race_ends_leaves_nothing_open() -> None:
    a, b = Timed("a", first_s=5.0), Timed("b", first_s=0.2)
    records: list[AttemptRecord] = []
    async with timed_client(a, b, records) as client:
        reading = asyncio.ensure_future(client.stream("g", ASK).__anext__())
        await asyncio.sleep(0.1)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        await asyncio.sleep(0.3)
        for dep in ("a/m", "b/m"):
            assert client.router.monitor.stats(dep).in_flight == 0
    assert sorted(x.outcome for x in records) == ["cancelled", "cancelled"]
