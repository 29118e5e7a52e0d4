"""The response cache and in-flight coalescing through ``AsyncClient``, over real
HTTP: a fake OpenAI upstream on 127.0.0.1 counts what reaches it."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from fakeserver import FakeServer, Reply
from llmrelay import AsyncClient, errors
from llmrelay.cache import CacheOptions, MemoryCache, RedisCache
from llmrelay.router import Deployment, ModelGroup
from llmrelay.types import Finish, StreamEvent, TextDelta
from test_router import CHAT, FAST, answer, openai, sse

HI = [{"role": "user", "content": "hi"}]


def client(fake: FakeServer, *, backend: Any = None, **group: Any) -> AsyncClient:
    groups = [ModelGroup("g", [Deployment("up", "m")], **group)]
    return AsyncClient(env={}, providers=[openai("up", fake)], models=groups, routing=FAST, cache=backend)


def texts(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def collect(c: AsyncClient, *args: Any, **kwargs: Any) -> list[StreamEvent]:
    return [e async for e in c.stream(*args, **kwargs)]


# ---------------------------------------------------------------- the exact cache


async def test_a_repeated_question_is_answered_from_the_cache(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("first")), Reply(json=answer("second")))
    async with client(fake, cache=True) as c:
        miss = await c.chat("g", HI, temperature=0.2)
        hit = await c.chat("g", HI, temperature=0.2)
        other = await c.chat("g", HI, temperature=0.3)  # another parameter: another key
    assert fake.count(CHAT) == 2
    assert miss.cache is not None and miss.cache.status == "miss" and not miss.cache.free
    assert hit.cache is not None and hit.cache.status == "hit" and hit.cache.free
    assert (hit.content, hit.usage, hit.id, hit.model) == (miss.content, miss.usage, miss.id, miss.model)
    assert hit.cost_usd == 0.0 and hit.route is not None and hit.route.attempts == 0
    assert hit.cache.stored_at == miss.cache.stored_at and hit.cache.key == miss.cache.key
    assert other.content == "second" and other.cache is not None and other.cache.status == "miss"


async def test_groups_without_cache_and_calls_that_say_no_never_use_it(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("x")))
    async with client(fake) as c:  # cache off for the group
        first = await c.chat("g", HI)
        await c.chat("g", HI)
        assert fake.count(CHAT) == 2 and first.cache is None
        await c.chat("g", HI, cache=True)  # opted in per call: stored
        assert (await c.chat("g", HI, cache=True)).cache.status == "hit"  # type: ignore[union-attr]
        assert (await c.chat("g", HI, cache=False)).cache is None
        assert fake.count(CHAT) == 4
    async with client(fake, cache=True) as c:
        await c.chat("g", HI)
        fresh = await c.chat("g", HI, cache={"no_cache": True})  # asked again, and stored
        assert fresh.cache is not None and fresh.cache.status == "miss"
        unstored = await c.chat("g", [{"role": "user", "content": "other"}], cache={"no_store": True})
        again = await c.chat("g", [{"role": "user", "content": "other"}])
        assert unstored.cache.status == again.cache.status == "miss"  # type: ignore[union-attr]
    assert fake.count(CHAT) == 4 + 4


async def test_entries_expire_after_their_ttl(fake: FakeServer) -> None:
    now = [1000.0]
    fake.on("POST", CHAT, Reply(json=answer("x")))
    async with client(fake, backend=MemoryCache(clock=lambda: now[0]), cache=True) as c:
        await c.chat("g", HI, cache={"ttl": 10})
        now[0] += 9
        assert (await c.chat("g", HI)).cache.status == "hit"  # type: ignore[union-attr]
        now[0] += 2
        assert (await c.chat("g", HI)).cache.status == "miss"  # type: ignore[union-attr]
    assert fake.count(CHAT) == 2


async def test_tenants_never_share_entries(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("for a")), Reply(json=answer("for b")))
    async with client(fake, cache=True) as c:
        a = await c.chat("g", HI, cache={"tenant": "a"})
        b = await c.chat("g", HI, cache={"tenant": "b"})
        a_again = await c.chat("g", HI, cache={"tenant": "a"})
    assert (a.content, b.content, a_again.content) == ("for a", "for b", "for a")
    assert b.cache is not None and b.cache.status == "miss" and fake.count(CHAT) == 2


async def test_a_cached_stream_is_replayed_with_the_same_events(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(chunks=sse("Hello there, friend", pieces=5)), Reply(json=answer("as JSON")))
    async with client(fake, cache=True) as c:
        first = await collect(c, "g", HI)
        second = await collect(c, "g", HI)
        json_answer = await c.chat("g", HI, cache={"no_store": True})  # JSON and streams are cached apart
    assert fake.count(CHAT) == 2 and json_answer.content == "as JSON"
    assert [type(e) for e in first] == [type(e) for e in second]
    assert [e for e in first if not isinstance(e, Finish)] == [e for e in second if not isinstance(e, Finish)]
    end1, end2 = first[-1], second[-1]
    assert isinstance(end1, Finish) and isinstance(end2, Finish)
    assert end1.response.cache is not None and end1.response.cache.status == "miss"
    assert end2.response.cache is not None and end2.response.cache.status == "hit"
    assert end2.response.content == end1.response.content == texts(second) == "Hello there, friend"


async def test_an_unreadable_entry_is_a_miss_and_is_replaced(fake: FakeServer, caplog: Any) -> None:
    backend = MemoryCache()
    fake.on("POST", CHAT, Reply(json=answer("fresh")))
    async with client(fake, backend=backend, cache=True) as c:
        first = await c.chat("g", HI)
        assert first.cache is not None
        await backend.set(first.cache.key, b'{"v": 1, "at": 1, "response": {"content": 3', 60)
        with caplog.at_level(logging.WARNING, logger="llmrelay.cache"):
            second = await c.chat("g", HI)
        third = await c.chat("g", HI)
    assert second.content == "fresh" and second.cache is not None and second.cache.status == "miss"
    assert third.cache is not None and third.cache.status == "hit"
    assert "unreadable entry" in caplog.text and c.cache.stats["corrupt"] == 1 and fake.count(CHAT) == 2


async def test_errors_and_content_filtered_answers_are_not_cached(fake: FakeServer) -> None:
    filtered = answer("")
    filtered["choices"][0]["finish_reason"] = "content_filter"
    bad = Reply(status=400, json={"error": {"message": "bad", "type": "invalid_request_error"}})
    fake.on("POST", CHAT, bad, Reply(json=filtered), Reply(json=answer("ok")))
    async with client(fake, cache=True) as c:
        with pytest.raises(errors.InvalidRequest):
            await c.chat("g", HI)
        assert (await c.chat("g", HI)).finish_reason == "content_filter"
        assert (await c.chat("g", HI)).content == "ok"
        assert (await c.chat("g", HI)).cache.status == "hit"  # type: ignore[union-attr]
    assert fake.count(CHAT) == 3


class City(BaseModel):
    name: str


async def test_a_hit_validates_structured_output_again(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer('{"name": "Paris"}')))
    async with client(fake, cache=True) as c:
        miss = await c.chat("g", HI, response_format=City)
        hit = await c.chat("g", HI, response_format=City)
    assert hit.cache is not None and hit.cache.status == "hit"
    assert isinstance(hit.parsed, City) and hit.parsed == miss.parsed == City(name="Paris")


def test_cache_options_are_checked() -> None:
    from llmrelay.cache import cache_options

    assert cache_options({"ttl": 5, "no_store": True}) == CacheOptions(enabled=True, no_store=True, ttl_s=5.0)
    for bad, word in (
        ({"ttl": 0}, "ttl"),
        ({"nocache": True}, "nocache"),
        ({"semantic": "yes"}, "semantic"),
        (3, "cache must be"),
    ):
        with pytest.raises(errors.InvalidRequest, match=word):
            cache_options(bad)


# ---------------------------------------------------------------- Redis


async def test_redis_entries_are_shared_by_clients(fake: FakeServer, redis_url: str) -> None:
    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    fake.on("POST", CHAT, Reply(json=answer("shared")), Reply(chunks=sse("streamed")), Reply(json=answer("t2")))
    async with client(fake, backend=RedisCache(redis_url, prefix=prefix), cache=True) as one:
        first = await one.chat("g", HI)
        first_stream = await collect(one, "g", HI)
    async with client(fake, backend=RedisCache(redis_url, prefix=prefix), cache=True) as two:
        second = await two.chat("g", HI)
        second_stream = await collect(two, "g", HI)
        other_tenant = await two.chat("g", HI, cache={"tenant": "t2"})
    assert fake.count(CHAT) == 3  # one JSON, one stream, one for the other tenant
    assert second.cache is not None and second.cache.status == "hit" and second.content == first.content
    assert texts(second_stream) == texts(first_stream) and other_tenant.cache.status == "miss"  # type: ignore[union-attr]


async def test_redis_going_away_serves_without_the_cache_and_says_so_once(fake: FakeServer, caplog: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on: every Redis call fails at once
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    fake.on("POST", CHAT, *[Reply(json=answer("still served"))] * 5, Reply(chunks=sse("still served")))
    with caplog.at_level(logging.WARNING, logger="llmrelay.cache"):
        async with client(fake, backend=RedisCache(dead), cache=True) as c:
            answers = [await c.chat("g", HI) for _ in range(5)]
            streamed = await collect(c, "g", HI)
    assert [a.content for a in answers] == ["still served"] * 5 and texts(streamed) == "still served"
    assert all(a.cache is not None and a.cache.status == "miss" for a in answers)
    assert caplog.text.count("Redis unavailable") == 1 and fake.count(CHAT) == 6


# ---------------------------------------------------------------- coalescing


async def test_identical_concurrent_requests_share_one_upstream_call(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("together"), delay_s=0.3))
    async with client(fake, coalesce=True) as c:
        answers = await asyncio.gather(*(c.chat("g", HI) for _ in range(100)))
        alone = await c.chat("g", HI)  # after the flight: a call of its own (no cache here)
    assert fake.count(CHAT) == 2
    assert {a.content for a in answers} == {"together"}
    shared = [a for a in answers if a.cache is not None and a.cache.coalesced]
    assert len(shared) == 99 and all(a.cost_usd == 0.0 for a in shared)
    assert len({id(a) for a in answers}) == 100  # each caller has its own object
    assert alone.cache is not None and not alone.cache.coalesced and c.cache.stats["coalesced"] == 99


async def test_a_stream_fans_out_to_every_waiter_from_its_first_event(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(chunks=sse("one two three four", pieces=4), chunk_delay_s=0.05))
    async with client(fake, coalesce=True) as c:
        first = asyncio.create_task(collect(c, "g", HI))
        await asyncio.sleep(0.12)  # the stream is under way: late joiners replay what was given
        late = await asyncio.gather(*(collect(c, "g", HI) for _ in range(19)))
        early = await first
    assert fake.count(CHAT) == 1
    assert all(texts(events) == "one two three four" for events in [early, *late])
    assert [type(e) for e in late[0]] == [type(e) for e in early]


async def test_one_waiter_leaving_never_cancels_the_others(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("kept"), delay_s=0.3))
    async with client(fake, coalesce=True) as c:
        tasks = [asyncio.create_task(c.chat("g", HI)) for _ in range(5)]
        await asyncio.sleep(0.1)
        tasks[0].cancel()  # the one whose request went upstream
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert [r.content for r in results[1:]] == ["kept"] * 4  # type: ignore[union-attr]
    assert fake.count(CHAT) == 1


async def test_a_stream_waiter_leaving_never_cuts_the_others(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(chunks=sse("a b c d e f", pieces=6), chunk_delay_s=0.05))
    async with client(fake, coalesce=True) as c:
        quitter = c.stream("g", HI)
        first = await quitter.__anext__()  # the leader: it started the upstream stream
        others = [asyncio.create_task(collect(c, "g", HI)) for _ in range(3)]
        await asyncio.sleep(0.05)
        await quitter.aclose()
        done = await asyncio.gather(*others)
    assert first is not None and all(texts(events) == "a b c d e f" for events in done)
    assert fake.count(CHAT) == 1


async def test_a_failure_reaches_every_waiter_and_is_not_kept(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(status=400, json={"error": {"message": "nope"}}, delay_s=0.2), Reply(json=answer("ok")))
    async with client(fake, coalesce=True, cache=True) as c:
        results = await asyncio.gather(*(c.chat("g", HI) for _ in range(10)), return_exceptions=True)
        after = await c.chat("g", HI)
    assert all(isinstance(r, errors.InvalidRequest) and "nope" in str(r) for r in results)
    assert after.content == "ok" and fake.count(CHAT) == 2


async def test_coalescing_is_per_tenant(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("x"), delay_s=0.2))
    async with client(fake, coalesce=True) as c:
        calls = [c.chat("g", HI, cache=CacheOptions(enabled=False, tenant=t)) for t in ("a", "b", "a", "b")]
        await asyncio.gather(*calls)
    assert fake.count(CHAT) == 2


# ---------------------------------------------------------------- configuration


def test_the_cache_section_is_read_and_checked(tmp_path: Any) -> None:
    from llmrelay.config import load_settings

    path = tmp_path / "llmrelay.yaml"
    path.write_text(
        "cache: {backend: redis, url: 'redis://127.0.0.1:6379/3', ttl_s: 60, semantic: {threshold: 0.9}}\n"
        "models:\n  - {name: faq, deployments: [{provider: openai, model: gpt-4o-mini}], cache: true, coalesce: true}\n"
    )
    settings = load_settings(path, {})
    assert (settings.cache.backend, settings.cache.url, settings.cache.ttl_s) == (
        "redis",
        "redis://127.0.0.1:6379/3",
        60,
    )
    assert settings.cache.threshold == 0.9 and settings.cache.max_bytes == 64_000_000
    group = settings.models["faq"]
    assert group.cache and group.coalesce and not group.semantic_cache
    for bad, words in (
        ("cache: {backend: disk}", "cache.backend"),
        ("cache: {ttl_s: 0}", "cache.ttl_s"),
        ("cache: {semantic: {threshold: 1.5}}", "cache.semantic.threshold"),
        ("cache: {max_byte: 5}", "cache.max_byte"),
    ):
        path.write_text(bad + "\n")
        with pytest.raises(errors.ConfigError, match=words.replace(".", r"\.")) as caught:
            load_settings(path, {})
        assert "llmrelay.yaml:1" in str(caught.value)
    path.write_text("cache: {backend: redis, url: 'localhost:6379'}\n")  # no scheme: refused at start-up
    with pytest.raises(errors.ConfigError, match=r"cache\.url"):
        AsyncClient(load_settings(path, {}))


# ---------------------------------------------------------------- Redis going away mid-run


class Relay:
    """A TCP relay to Redis that the test can cut and restore: Redis 'going away'."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_redis_going_away_mid_run_and_coming_back(fake: FakeServer, redis_url: str, caplog: Any) -> None:
    from urllib.parse import urlsplit

    relay = Relay(urlsplit(redis_url).port or 6379)
    await relay.start()
    backend = RedisCache(f"redis://127.0.0.1:{relay.port}/0", prefix=f"llmrelay-test:{uuid.uuid4().hex}:")
    backend.RETRY_S = 0.2
    fake.on("POST", CHAT, Reply(json=answer("fine")))
    with caplog.at_level(logging.WARNING, logger="llmrelay.cache"):
        async with client(fake, backend=backend, cache=True) as c:
            await c.chat("g", HI)
            assert (await c.chat("g", HI)).cache.status == "hit"  # type: ignore[union-attr]
            await relay.cut()
            during = [await c.chat("g", HI) for _ in range(4)]
            await relay.start()  # same port: Redis is reachable again
            for _ in range(50):  # the cache tries Redis again after RETRY_S
                await asyncio.sleep(0.05)
                if (await c.chat("g", HI)).cache.status == "hit":  # type: ignore[union-attr]
                    break
            else:
                raise AssertionError("the cache never came back")
            await relay.cut()
    assert [r.content for r in during] == ["fine"] * 4
    assert all(r.cache is not None and r.cache.status == "miss" for r in during)
    assert caplog.text.count("Redis unavailable") == 1 and "Redis is back" in caplog.text
