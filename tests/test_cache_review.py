"""Review of the response cache, coalescing and embedding micro-batching: each test
pins a bug that was found (and fixed), over real HTTP with fake upstreams. Assertions
are on answers, errors, counts and records; never on timings."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from pydantic import BaseModel

from fakeserver import FakeServer, Recorded, Reply
from gateways import Served, served_gateway
from llmrelay import AsyncClient, errors
from llmrelay.cache import CacheLayer, CacheSettings, MemoryCache, RedisCache
from llmrelay.cache.keys import semantic_parts
from llmrelay.cache.semantic import Vector
from llmrelay.router import Deployment, ModelGroup
from llmrelay.types import ChatResponse, Finish, StreamEvent
from test_cache import HI, client, collect, texts
from test_embed_batch import EMB, MODEL, ONE_TRY
from test_embed_batch import openai as embed_provider
from test_gateway_openai import sse as gateway_sse
from test_router import CHAT, FAST, answer, openai, sse


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


# ---------------------------------------------------------------- coalescing: a flight being cancelled


async def test_a_call_arriving_as_the_last_caller_leaves_is_answered_not_cancelled(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("abandoned"), delay_s=0.5), Reply(json=answer("fresh")))
    async with client(fake, coalesce=True) as c:
        leader = asyncio.create_task(c.chat("g", HI))
        await until(lambda: fake.count(CHAT) == 1)
        leader.cancel()  # at its next step it leaves, the last caller: its flight is cancelled...
        late = asyncio.create_task(c.chat("g", HI))  # ...and this identical call arrives right then
        results = await asyncio.gather(leader, late, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert isinstance(results[1], ChatResponse) and results[1].content == "fresh"
    assert fake.count(CHAT) == 2


async def test_a_stream_arriving_as_the_last_reader_leaves_is_streamed_not_cancelled(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(chunks=sse("a b c d e f", pieces=6), chunk_delay_s=0.2), Reply(chunks=sse("fresh")))
    async with client(fake, coalesce=True) as c:
        leader = c.stream("g", HI)
        await leader.__anext__()
        await leader.aclose()  # the last reader leaves: the upstream stream is cancelled...
        try:
            late = await collect(c, "g", HI)  # ...as this identical stream arrives, in the same step
        except asyncio.CancelledError:  # not cancelled itself: it joined the cancelled flight
            late = []
    assert texts(late) == "fresh"
    assert fake.count(CHAT) == 2


# ---------------------------------------------------------------- coalescing: a shared failure


async def test_every_stream_waiter_raises_its_own_error(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(chunks=sse("one two three four", pieces=4), cut_after=2, chunk_delay_s=0.05))

    async def failure(c: AsyncClient) -> BaseException:
        with pytest.raises(errors.LLMError) as caught:
            await collect(c, "g", HI)
        return caught.value

    async with client(fake, coalesce=True) as c:
        failures = await asyncio.gather(*(failure(c) for _ in range(5)))
    assert fake.count(CHAT) == 1
    assert len({id(e) for e in failures}) == 5  # not one object raised (and its traceback grown) in every task
    assert {(type(e), str(e)) for e in failures} == {(type(failures[0]), str(failures[0]))}
    depths = {len(traceback.extract_tb(e.__traceback__)) for e in failures}
    assert len(depths) == 1  # no waiter's traceback carries the frames of the others


async def test_every_waiter_raises_its_own_error(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(status=400, json={"error": {"message": "nope"}}, delay_s=0.2))
    async with client(fake, coalesce=True) as c:
        failures = await asyncio.gather(*(c.chat("g", HI) for _ in range(5)), return_exceptions=True)
    assert fake.count(CHAT) == 1 and all(isinstance(e, errors.InvalidRequest) for e in failures)
    assert len({id(e) for e in failures}) == 5 and {str(e) for e in failures} == {str(failures[0])}


# ---------------------------------------------------------------- coalescing: each caller's own answer


async def test_a_coalesced_answer_shares_nothing_with_the_others(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("together"), delay_s=0.2))

    async def careless(c: AsyncClient) -> ChatResponse:
        r = await c.chat("g", HI)
        r.usage.prompt_tokens = 0  # a caller changes its answer as soon as it has it
        r.raw["mine"] = True
        return r

    async with client(fake, coalesce=True) as c:
        first, *others = await asyncio.gather(careless(c), c.chat("g", HI), c.chat("g", HI))
    assert fake.count(CHAT) == 1 and first.usage.prompt_tokens == 0
    assert all(r.usage.prompt_tokens == 5 and "mine" not in r.raw for r in others)


async def test_a_stream_waiter_gets_a_finish_of_its_own(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(chunks=sse("one two", pieces=2), chunk_delay_s=0.05))

    async def careless(c: AsyncClient) -> list[StreamEvent]:
        got: list[StreamEvent] = []
        async for event in c.stream("g", HI):
            if isinstance(event, Finish):
                event.response.usage.completion_tokens = 0
                event.response.extra["mine"] = True
            got.append(event)
        return got

    async with client(fake, coalesce=True) as c:
        _, *others = await asyncio.gather(careless(c), collect(c, "g", HI), collect(c, "g", HI))
    assert fake.count(CHAT) == 1
    for events in others:
        end = events[-1]
        assert isinstance(end, Finish) and end.response.usage.completion_tokens == 3
        assert "mine" not in end.response.extra


def city_model() -> type[BaseModel]:
    class City(BaseModel):  # one class per call: same name, same schema, another class
        name: str

    return City


async def test_a_coalesced_structured_answer_is_validated_into_each_callers_model(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer('{"name": "Paris"}'), delay_s=0.2))
    mine, theirs = city_model(), city_model()
    async with client(fake, coalesce=True) as c:
        a, b = await asyncio.gather(c.chat("g", HI, response_format=mine), c.chat("g", HI, response_format=theirs))
    assert fake.count(CHAT) == 1 and b.cache is not None and b.cache.coalesced
    assert type(a.parsed) is mine and type(b.parsed) is theirs


# ---------------------------------------------------------------- coalescing at the gateway: who pays


Gated = tuple[Served, asyncio.Event]


@pytest.fixture
async def gated(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gated]:
    """A gateway whose upstream chat streams send their first chunk at once and the
    rest once the test opens the gate."""
    gate = asyncio.Event()
    plain = FakeServer._handle

    async def handle(self: FakeServer, request: web.Request) -> web.StreamResponse:
        if request.path != CHAT:
            return await plain(self, request)
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.query), dict(request.headers), body))
        resp = web.StreamResponse()
        resp.content_type = "text/event-stream"
        await resp.prepare(request)
        chunks = gateway_sse("shared ", "answer")
        await resp.write(chunks[0])
        await gate.wait()
        for chunk in chunks[1:]:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    monkeypatch.setattr(FakeServer, "_handle", handle)
    async for served in served_gateway([ModelGroup("shared", ["openai/gpt-4o-mini"], coalesce=True)]):
        yield served, gate
        gate.set()


async def _first_event(resp: aiohttp.ClientResponse) -> None:
    for _ in range(100):
        line = await resp.content.readline()
        if line.startswith(b"data: ") and b'"content"' in line:
            return
    raise AssertionError("no event came")


async def test_a_shared_stream_is_paid_for_when_the_caller_that_started_it_leaves(gated: Gated) -> None:
    from test_gateway_tenants import call, new_key

    gw, gate = gated
    _, secret = await new_key(gw, "acme")
    body = {"model": "shared", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    headers = {"authorization": f"Bearer {secret}"}
    flights = gw.client.cache.flights
    async with aiohttp.ClientSession() as leaving, aiohttp.ClientSession() as staying:
        leader = await leaving.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
        await _first_event(leader)
        waiter = await staying.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
        await _first_event(waiter)  # it joined the flight: the events given so far were replayed
        leader.close()  # the caller whose request went upstream leaves before the answer is complete
        await until(lambda: [f.waiters for f in flights._streams.values()] == [1])
        gate.set()
        rest = await waiter.read()
    assert b"[DONE]" in rest and gw.upstream.count("/v1/chat/completions") == 1
    await gw.app.ledger.flush()  # type: ignore[union-attr]
    # the gateway records no stream its client cut: the waiter's record is there, the leader's may not be
    status, usage, _ = await call(gw, "GET", "/admin/usage", key=secret)
    assert status == 200 and usage["total_count"] >= 1
    assert sum(r["prompt_tokens"] for r in usage["data"]) == 5  # the one upstream answer is in the ledger once
    assert sum(r["cost_usd"] or 0 for r in usage["data"]) > 0


# ---------------------------------------------------------------- keys


@pytest.fixture
async def claude_gw() -> AsyncIterator[Served]:
    async for served in served_gateway([ModelGroup("cached-claude", ["anthropic/claude-sonnet-4-5"], cache=True)]):
        yield served


def claude_reply(text: str) -> dict[str, Any]:
    return {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 4, "output_tokens": 2},
    }  # fmt: skip


async def test_requests_that_send_other_thinking_signatures_upstream_are_cached_apart(claude_gw: Served) -> None:
    claude_gw.anthropic.on("POST", "/v1/messages", Reply(json=claude_reply("one")), Reply(json=claude_reply("two")))

    def conversation(signature: str | None) -> list[dict[str, Any]]:
        thinking = {"type": "thinking", "thinking": "They greet me.", "signature": signature}
        said = [thinking] if signature is not None else []
        return [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [*said, {"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": "And now?"},
        ]

    claude = claude_gw.claude()
    answers = [
        await claude.messages.create(model="cached-claude", max_tokens=20, messages=conversation(s))  # type: ignore[arg-type]
        for s in ("sig-a", "sig-b", None, "sig-a")
    ]
    sent = [r.json["messages"][1]["content"] for r in claude_gw.anthropic.requests]
    assert len(sent) == 3 and sent[0] != sent[1] != sent[2]  # three different requests went upstream...
    replies = [block.text for a in answers for block in a.content if block.type == "text"]
    assert replies == ["one", "two", "two", "one"]  # ...each answered apart


# ---------------------------------------------------------------- the semantic cache's vectors


def hashed_embed(dims: int = 64) -> Callable[[str], Any]:
    async def embed(text: str) -> Vector:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
        vector = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
        return vector / np.linalg.norm(vector)

    return embed


def semantic_client(fake: FakeServer, backend: Any, embed: Any = None) -> AsyncClient:
    groups = [ModelGroup("faq", [Deployment("up", "m")], cache=True, semantic_cache=True)]
    c = AsyncClient(env={}, providers=[openai("up", fake)], models=groups, routing=FAST)
    c.cache = CacheLayer(c.router, CacheSettings(threshold=0.95), backend=backend, embed=embed or hashed_embed())
    return c


async def test_question_vectors_go_with_their_answers_in_the_memory_cache(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("an answer")))
    backend = MemoryCache(max_bytes=6000)
    conversations = [[{"role": "system", "content": f"conversation {i}"}, *HI] for i in range(40)]
    async with semantic_client(fake, backend) as c:
        for messages in conversations:
            await c.chat("faq", messages, cache={"semantic": True})
        namespaces = [semantic_parts("chat", "faq", c.build_request(m), None) for m in conversations]
        kept = [len(await backend.vectors(parts[0])) for parts in namespaces if parts is not None]
        assert sum(kept) <= len(backend) < 40  # the answers the LRU dropped took their vectors along
        assert kept[-1] == 1  # the newest question is still there to be found
        assert backend.bytes <= backend.max_bytes
        again = await c.chat("faq", conversations[-1], cache={"semantic": True})
    assert again.cache is not None and again.cache.status == "hit"


async def test_the_semantic_cache_works_with_a_redis_client_that_decodes_answers(
    fake: FakeServer, redis_url: str, caplog: Any
) -> None:
    from redis.asyncio import Redis

    from test_cache_semantic import ask, toy_embed

    fake.on("POST", CHAT, Reply(json=answer("Paris")), Reply(json=answer("again")))
    decoding = Redis.from_url(redis_url, decode_responses=True)  # answers str, not bytes
    backend = RedisCache(client=decoding, prefix=f"llmrelay-test:{uuid.uuid4().hex}:")
    with caplog.at_level(logging.WARNING, logger="llmrelay.cache"):
        async with semantic_client(fake, backend, toy_embed) as c:
            await c.chat("faq", ask("capital of France?"), cache={"semantic": True})
            near = await c.chat("faq", ask("France's capital?"), cache={"semantic": True})
            exact = await c.chat("faq", ask("capital of France?"))
    assert near.cache is not None and near.cache.status == "hit" and near.content == "Paris"
    assert exact.cache is not None and exact.cache.status == "hit"
    assert "Redis unavailable" not in caplog.text and fake.count(CHAT) == 1


async def test_a_ttl_that_redis_cannot_take_is_refused_not_a_redis_outage(
    fake: FakeServer, redis_url: str, caplog: Any
) -> None:
    fake.on("POST", CHAT, Reply(json=answer("x")))
    backend = RedisCache(redis_url, prefix=f"llmrelay-test:{uuid.uuid4().hex}:")
    with caplog.at_level(logging.WARNING, logger="llmrelay.cache"):
        async with client(fake, backend=backend, cache=True) as c:
            for ttl in (float("inf"), float("nan")):
                with pytest.raises(errors.InvalidRequest, match="ttl"):
                    await c.chat("g", HI, cache={"ttl": ttl})
            await c.chat("g", HI, cache={"ttl": 1e20})  # "forever": more milliseconds than Redis takes
            assert (await c.chat("g", HI)).cache.status == "hit"  # type: ignore[union-attr]
    assert "Redis unavailable" not in caplog.text


# ---------------------------------------------------------------- embedding micro-batching


async def test_a_batch_whose_answer_cannot_be_split_as_it_came_still_answers_its_callers(fake: FakeServer) -> None:
    data = [{"object": "embedding", "index": i, "embedding": [float(i), 1.0]} for i in range(2)]
    usage = {"prompt_tokens": 12.0, "total_tokens": 12.0}  # a server that counts in floats
    fake.on("POST", EMB, Reply(json={"object": "list", "data": data, "model": MODEL, "usage": usage}))
    provider = embed_provider("up", fake, max_inputs=2)  # two callers fill a batch: it goes at once
    group = ModelGroup("emb", [Deployment("up", MODEL)], embed_batch_ms=1000)
    routing = replace(ONE_TRY, timeout_s=2.0)
    async with AsyncClient(env={}, providers=[provider], models=[group], routing=routing) as c:
        a, b = await asyncio.gather(c.embed("emb", "first"), c.embed("emb", "other"))
    assert fake.count(EMB) == 1 and json.loads(fake.requests[0].body)["input"] == ["first", "other"]
    assert (a.vectors, b.vectors) == ([[0.0, 1.0]], [[1.0, 1.0]])
    assert a.usage.prompt_tokens + b.usage.prompt_tokens == 12
    assert all(type(r.usage.prompt_tokens) is int for r in (a, b))
