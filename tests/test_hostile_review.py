"""Attacks by a hostile tenant and a careless operator found in a review of the
hardened gateway. Each docstring tells what the attack did to a gateway without
the defence; each test asserts that it no longer does. Every test drives a real
gateway over HTTP on 127.0.0.1 (the official SDKs, aiohttp or raw sockets) against
fake upstreams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fakeserver import FakeServer, Reply
from gateways import MASTER, Served, ledger_rows, serve, served_gateway
from llmrelay import AsyncClient, ModelGroup
from llmrelay._http1 import Http1Transport
from llmrelay.cost import Prices
from llmrelay.gateway import Gateway
from llmrelay.gateway.server import ServerLimits
from llmrelay.router import Deployment, RoutingSettings
from llmrelay.state.base import StateBackend
from llmrelay.state.redis import RedisState
from llmrelay.store import Store
from test_gateway_openai import CHAT, answer, sse
from test_gateway_tenants import HI, call, new_key

SHARED = ModelGroup("shared", ["openai/gpt-4o-mini"], coalesce=True)
EMB = ModelGroup("emb", ["openai/text-embedding-3-small"], embed_batch_ms=200)
HOSTED = ModelGroup("hosted", [Deployment("openai", "my-finetune-7", prices=Prices(2.0, 8.0))])


@pytest.fixture
async def gw() -> AsyncIterator[Served]:
    async for served in served_gateway([SHARED, EMB, HOSTED]):
        yield served


async def read_then_leave(gw: Served, key: str, body: dict[str, Any], chunks: int) -> int:
    """Stream ``body``, read ``chunks`` content chunks, then drop the connection; the chunks read."""
    seen = 0
    async with aiohttp.ClientSession() as http:
        r = await http.post(gw.url + CHAT, json=body, headers={"authorization": f"Bearer {key}"})
        async for line in r.content:
            if line.startswith(b"data: {") and b'"content":"w' in line:
                seen += 1
                if seen >= chunks:
                    break
        r.close()
    return seen


@asynccontextmanager
async def gateway_over(
    groups: list[ModelGroup],
    *,
    pool: int = 512,
    routing: RoutingSettings | None = None,
    state: StateBackend | None = None,
) -> AsyncIterator[Served]:
    """A gateway over one fake upstream (as OpenAI's, and as Gemini's), its client's HTTP pool
    holding ``pool`` connections."""
    async with FakeServer() as upstream:
        env = {
            "OPENAI_API_KEY": "sk-upstream-key-123456", "OPENAI_BASE_URL": upstream.url + "/v1",
            "GEMINI_API_KEY": "gm-upstream-key-123456", "GEMINI_BASE_URL": upstream.url,
        }  # fmt: skip
        routing = routing or RoutingSettings(retries=0, cooldowns=False)
        client = AsyncClient(
            env=env, models=groups, routing=routing, state=state, transport=Http1Transport(max_connections=pool)
        )
        folder = Path(tempfile.mkdtemp(prefix="llmrelay-review-"))
        store = Store.open(f"sqlite:///{folder / 'gateway.db'}")
        app = Gateway(client, master_key=MASTER, store=store)
        running = serve(app)
        try:
            served = Served(await anext(running), upstream, upstream, client, app)
            try:
                yield served
            finally:
                for sdk in served.sdks:
                    await sdk.close()
        finally:
            await running.aclose()  # the server stops and the gateway shuts down, even after a failure
            shutil.rmtree(folder, ignore_errors=True)


async def stalled_stream(gw: Served, key: str, body: dict[str, Any]) -> socket.socket:
    """A streaming request from a client with a tiny receive buffer that reads its status line
    and then nothing more (it never drains its socket); the socket, still open."""
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    data = json.dumps(body).encode()
    head = (
        f"POST {CHAT} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    ).encode()
    await loop.sock_sendall(sock, head + data)
    first = await asyncio.wait_for(loop.sock_recv(sock, 64), 5)
    assert first.startswith(b"HTTP/1.1 200"), first
    return sock


async def stall(gw: Served, streams: int) -> tuple[str, list[socket.socket]]:
    """``streams`` stalled streams (``stalled_stream``) of tenant mallory over a big answer
    (about 6.5 MB, sent at once): mallory's key id and the sockets, still open."""
    big = [f"w{i:05d} " + "x" * 16_000 for i in range(400)]
    gw.upstream.on("POST", CHAT, Reply(chunks=sse(*big)))
    key_id, key = await new_key(gw, "mallory")
    body = {"model": "smart", "messages": HI, "stream": True}
    return key_id, [await stalled_stream(gw, key, body) for _ in range(streams)]


class CuttableProxy:
    """A TCP proxy in front of the test Redis, whose link can be cut and restored (a
    network blip between the gateway and Redis; the Redis server itself stays up)."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._links: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.up = True
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def cut(self) -> None:
        self.up = False
        for writer in self._links:
            writer.transport.abort()
        self._links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._links += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


# ---- budgets: answers nobody pays for ---------------------------------------------------------------


async def test_of_two_coalesced_streams_left_before_their_end_the_last_to_leave_pays(gw: Served) -> None:
    """The first caller leaves while an identical request still reads the shared stream: it
    is not charged (the other will pay, says the cache layer). The other then leaves before
    the stream's end: it made no upstream call of its own, so it is not charged either.
    Both got most of an answer; the ledger shows two free requests."""
    words = [f"w{i} " for i in range(60)]
    gw.upstream.on("POST", CHAT, Reply(chunks=sse(*words), chunk_delay_s=0.03))
    key_id, secret = await new_key(gw, "mallory", budget_usd=5)
    body = {"model": "shared", "messages": HI, "stream": True}
    lead = asyncio.create_task(read_then_leave(gw, secret, body, 20))
    await asyncio.sleep(0.1)
    follower = asyncio.create_task(read_then_leave(gw, secret, body, 50))
    got = await asyncio.gather(lead, follower)
    assert got == [20, 50] and gw.upstream.count(CHAT) == 1
    found = await ledger_rows(gw, key_id, 2)
    assert len(found) == 2 and all(r.status == 499 for r in found), found
    charged = sum(r.cost_usd or 0.0 for r in found)
    assert charged > 0, [(r.prompt_tokens, r.completion_tokens, r.cost_usd) for r in found]


async def test_a_client_leaving_while_its_stream_is_being_billed_is_billed_all_the_same() -> None:
    """When the upstream reports no usage, the tokens are counted as the stream ends,
    after the finish chunk went out and before ``[DONE]`` (a long prompt is counted in
    a worker thread). A client that closes the connection as soon as it reads the finish
    chunk cancels that count mid-way; the bill is marked done before it is made, so it
    is not made again, and the whole answer goes unpaid."""
    async with gateway_over([ModelGroup("smart", ["openai/gpt-4o-mini"])]) as gw:
        no_usage = [c for c in sse(*[f"w{i} " for i in range(30)]) if b'"usage"' not in c]
        gw.upstream.on("POST", CHAT, Reply(chunks=no_usage))
        key_id, secret = await new_key(gw, "mallory", budget_usd=5)
        prompt = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 15_000}]  # 400 kB: counted off-loop
        body = {"model": "smart", "messages": prompt, "stream": True}
        async with aiohttp.ClientSession() as http:
            r = await http.post(gw.url + CHAT, json=body, headers={"authorization": f"Bearer {secret}"})
            async for line in r.content:
                if b'"finish_reason":"stop"' in line:
                    break  # the whole answer is in: leave before [DONE]
            r.close()
        [row] = await ledger_rows(gw, key_id)
        assert row.cost_usd is not None and row.cost_usd > 0, (row.status, row.error, row.prompt_tokens, row.cost_usd)


# ---- one tenant hurting the others: breakers, the connection pool, the event loop, memory, bills ----


async def test_clients_that_stop_reading_their_streams_never_open_a_breaker() -> None:
    """A tenant asks for long streams and stops reading them. The relay blocks writing to it
    while it waits for the next upstream event, and the router's idle watch counts that
    time as the upstream's silence: after ``stream_idle_s`` it cuts the attempt as a
    *deployment* timeout, which the breaker counts. Five such streams open the breaker of
    the deployment every tenant shares: another tenant's next call waits out the breaker's
    recovery (30 s) or fails. Each stalled stream also ends in an unhandled CancelledError
    (a traceback in the log) and is recorded as a 200 with no error."""
    group = ModelGroup("smart", ["openai/gpt-4o-mini"])
    routing = RoutingSettings(retries=0, cooldowns=False, stream_idle_s=1.0)
    async with gateway_over([group], routing=routing) as gw:
        _, victim = await new_key(gw, "alice")
        _, held = await stall(gw, 5)
        try:
            await asyncio.sleep(2.5)  # past stream_idle_s: the upstream itself was never idle
        finally:
            for sock in held:
                sock.close()
        [health] = await gw.client.health("smart")
        assert (health.breaker, health.failures) == ("closed", 0), health  # open: alice now waits out its recovery
        gw.upstream.on("POST", CHAT, Reply(json=answer("for alice")))
        begun = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            r = await http.post(
                gw.url + CHAT, json={"model": "smart", "messages": HI}, headers={"authorization": f"Bearer {victim}"}
            )
            status, text = r.status, await r.text()
        assert status == 200 and "for alice" in text and time.monotonic() - begun < 5, (status, text[:300])


async def test_a_stream_nobody_reads_lets_its_upstream_connection_go_after_the_write_timeout() -> None:
    """Nothing bounds how long the relay may wait for a client to take its bytes: with
    the idle watch off (``stream_idle_s: None``, a documented setting), a stream nobody
    reads keeps its upstream connection taken from the shared pool for as long as the
    socket stays open. Two such streams take a pool of two, and another tenant's call
    cannot get a connection at all (it times out)."""
    group = ModelGroup("smart", ["openai/gpt-4o-mini"])
    routing = RoutingSettings(retries=0, cooldowns=False, timeout_s=2.0, stream_idle_s=None)
    async with gateway_over([group], pool=2, routing=routing) as gw:
        gw.app.server_limits = ServerLimits(write_timeout_s=0.5)  # a client that takes nothing for 0.5 s is gone
        _, victim = await new_key(gw, "alice")
        hostile_id, held = await stall(gw, 2)
        try:
            await asyncio.sleep(1.5)  # past the write timeout: both stalled streams let their upstream go
            gw.upstream.on("POST", CHAT, Reply(json=answer("for alice")))
            async with aiohttp.ClientSession() as http:
                r = await http.post(
                    gw.url + CHAT, json={"model": "smart", "messages": HI},
                    headers={"authorization": f"Bearer {victim}"}, timeout=aiohttp.ClientTimeout(total=15),
                )  # fmt: skip
                status, text = r.status, await r.text()
            assert status == 200 and "for alice" in text, (status, text[:300])
            cut = await ledger_rows(gw, hostile_id, 2)
            assert [r.error for r in cut] == ["client_disconnected"] * 2 and all(r.completion_tokens for r in cut)
        finally:
            for sock in held:
                sock.close()


async def test_a_shared_embeddings_batch_never_bills_a_tenant_more_than_its_texts_can_hold(gw: Served) -> None:
    """Embeddings of two tenants go upstream in one batch, and its usage is split by
    *characters*. A tenant whose texts are few characters of many tokens each (4-byte
    characters: 3 or 4 byte-level tokens apiece) hands most of its tokens to the
    other tenant of the batch: the victim is billed for more tokens than its own texts
    could ever make (a token is at least a byte), and the hostile tenant for a fraction."""
    hostile_texts = ["\U00013000" * 4_000]  # 4,000 characters, 16,000 bytes: ~12,000 tokens
    victim_texts = ["hello " * 1_000]  # 6,000 characters, 6,000 bytes: ~1,000 tokens
    usage = {"prompt_tokens": 13_000, "total_tokens": 13_000}  # what the upstream counts for the batch
    vectors = [{"object": "embedding", "index": i, "embedding": [0.1 * i]} for i in range(2)]
    gw.upstream.on("POST", "/v1/embeddings", Reply(json={
        "object": "list", "model": "text-embedding-3-small", "usage": usage, "data": vectors,
    }))  # fmt: skip
    mallory_id, mallory = await new_key(gw, "mallory", budget_usd=1)
    alice_id, alice = await new_key(gw, "alice", budget_usd=1)
    await asyncio.gather(
        gw.sdk(mallory).embeddings.create(model="emb", input=hostile_texts, encoding_format="float"),
        gw.sdk(alice).embeddings.create(model="emb", input=victim_texts, encoding_format="float"),
    )
    assert gw.upstream.count("/v1/embeddings") == 1  # one batch, both tenants in it
    [alice_row] = await ledger_rows(gw, alice_id)
    [mallory_row] = await ledger_rows(gw, mallory_id)
    alice_bound = sum(len(t.encode()) + 1 for t in victim_texts)  # no tokenizer makes more tokens than this
    assert alice_row.prompt_tokens <= alice_bound, (alice_row.prompt_tokens, mallory_row.prompt_tokens)


async def test_a_body_of_many_small_arrays_is_refused_without_holding_the_event_loop() -> None:
    """A body within the size limit made of millions of empty arrays (``[[],[],...]``)
    is decoded on the event loop (orjson: ~25 bytes of Python objects per byte of JSON),
    then walked one element at a time, in Python, on the loop by the nesting check (it
    walks every body with more than 64 brackets), then handled on: every other tenant's
    requests and streams wait. 4 MiB holds the loop for about three seconds here; at
    the default 16 MiB limit, decoding and the walk alone take ~5.5 s and ~770 MB."""
    async with gateway_over([ModelGroup("smart", ["openai/gpt-4o-mini"])]) as gw:
        gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
        _, secret = await new_key(gw, "mallory")
        count = 4 * 1024 * 1024 // 3
        raw = b'{"model":"smart","messages":[{"role":"user","content":"hi"}],"x":[' + b"[]," * count + b"[]]}"
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        try:
            async with aiohttp.ClientSession() as http:
                r = await http.post(
                    gw.url + CHAT, data=raw,
                    headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
                )  # fmt: skip
                await r.read()
        finally:
            done.set()
            await ticking
        assert max(gaps) < 0.25, f"the event loop was held for {max(gaps):.2f}s"


async def test_request_headers_have_a_size_limit(gw: Served) -> None:
    """The body is held to ``max_body`` (64 KiB here), but a request's headers may be any
    size: they are gathered whole in memory before the app sees the request, by anyone
    who can reach the port (no key needed to send them). Within the header deadline a
    client on a fast link sends hundreds of megabytes per connection, on each of
    thousands of connections. An 8 MiB header is answered 200 here."""
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET /health/live HTTP/1.1\r\nhost: x\r\nx-pad: ")
        for _ in range(128):  # 8 MiB, 64 KiB at a time
            writer.write(b"a" * 65536)
            await writer.drain()
        writer.write(b"\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.read(64), 10)
    except ConnectionError:  # refused while sending: what should happen
        return
    finally:
        writer.close()
    assert not head.startswith(b"HTTP/1.1 200"), head


# ---- budgets: answers that cost more than their reservation, costs nobody is charged ----------------


async def test_a_max_tokens_above_the_catalogues_output_limit_is_reserved_whole(gw: Served) -> None:
    """A priced deployment whose model the catalogue does not know (a fine-tune, a
    self-hosted model) is assumed to answer at most DEFAULT_MAX_OUTPUT (32,768) tokens,
    and the reservation takes ``min(max_tokens, that)``. But the request goes upstream
    with the ``max_tokens`` the caller asked for (100,000 here), which a server with a
    long context honours: an answer costs three times its reservation, and concurrent
    requests overshoot the budget by several requests."""
    billed = {**answer("x" * 50, model="my-finetune-7"), "usage": {"prompt_tokens": 9, "completion_tokens": 100_000}}
    gw.upstream.on("POST", CHAT, Reply(json=billed, delay_s=0.2))
    budget = 1.32  # five reservations of 9 + 32,768 tokens
    key_id, secret = await new_key(gw, "mallory", budget_usd=budget)
    body = {"model": "hosted", "max_tokens": 100_000, "messages": HI}

    async def one() -> int:
        async with aiohttp.ClientSession() as http:
            r = await http.post(gw.url + CHAT, json=body, headers={"authorization": f"Bearer {secret}"})
            return r.status

    statuses = await asyncio.gather(*(one() for _ in range(10)))
    assert gw.upstream.requests[-1].json["max_completion_tokens"] == 100_000  # sent as asked
    spent = sum(r.cost_usd or 0.0 for r in await ledger_rows(gw, key_id, len(statuses)))
    one_answer = (9 * 2.0 + 100_000 * 8.0) / 1e6
    assert 429 in statuses and statuses.count(200) >= 1, statuses
    assert spent <= budget + one_answer, (statuses.count(200), spent, budget + one_answer)


async def test_image_urls_reserve_their_dearest_shape(gw: Served) -> None:
    """An image given by URL has no size the gateway can read, so its reservation assumes
    a 2048x2048 square: 4 tiles on OpenAI's tile models. A 768x2048 image is 8 tiles
    (gpt-4o-mini: 2833 + 8 * 5667 = 48,169 prompt tokens, against 25,501 reserved), so
    an answer costs about twice its reservation, and concurrent requests against the
    budget overshoot it by several requests, not at most one."""
    tall = {"type": "image_url", "image_url": {"url": "https://images.example/tall-768x2048.png"}}
    billed = {**answer("ok"), "usage": {"prompt_tokens": 2 * 48_169 + 10, "completion_tokens": 1}}
    gw.upstream.on("POST", CHAT, Reply(json=billed, delay_s=0.2))
    budget = 0.05
    key_id, secret = await new_key(gw, "mallory", budget_usd=budget)
    body = {"model": "smart", "max_tokens": 1, "messages": [{"role": "user", "content": [tall, tall]}]}

    async def one() -> int:
        async with aiohttp.ClientSession() as http:
            r = await http.post(gw.url + CHAT, json=body, headers={"authorization": f"Bearer {secret}"})
            return r.status

    statuses = await asyncio.gather(*(one() for _ in range(20)))
    answered = statuses.count(200)
    spent = sum(r.cost_usd or 0.0 for r in await ledger_rows(gw, key_id, len(statuses)))
    one_answer = (2 * 48_169 + 10) * 0.15 / 1e6 + 0.6 / 1e6
    assert 429 in statuses and answered >= 1
    assert spent <= budget + one_answer, (answered, spent, budget + one_answer)


async def test_tiered_prices_are_reserved_at_their_top_tier() -> None:
    """Gemini 2.5 Pro (like Claude Sonnet 4.5) charges more per *output* token once the
    prompt passes 200k tokens ($15 instead of $10 per million). The reservation prices
    the prompt at its top tier, but the output at the rate of an empty prompt: a prompt of
    characters that are a token per byte (byte fallback: the worst case the reservation
    means to cover) with its whole output costs more than was reserved, and concurrent
    requests overshoot the budget by more than one request."""
    async with gateway_over([ModelGroup("pro", ["gemini/gemini-2.5-pro"])]) as gw:
        prompt = "\U00013000" * 52_000  # 208,000 UTF-8 bytes: 208,000 tokens by byte fallback
        billed = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {"promptTokenCount": 208_000, "candidatesTokenCount": 65_536, "totalTokenCount": 273_536},
        }
        gw.upstream.on("POST", "/v1beta/models/gemini-2.5-pro:generateContent", Reply(json=billed, delay_s=0.3))
        budget = 11.8  # ten reservations of about $1.175
        key_id, secret = await new_key(gw, "mallory", budget_usd=budget)
        body = json.dumps(
            {"model": "pro", "max_tokens": 65_536, "messages": [{"role": "user", "content": prompt}]},
            ensure_ascii=False,
        ).encode()

        async def one() -> int:
            async with aiohttp.ClientSession() as http:
                r = await http.post(
                    gw.url + CHAT, data=body,
                    headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
                )  # fmt: skip
                return r.status

        statuses = await asyncio.gather(*(one() for _ in range(14)))
        answered = statuses.count(200)
        spent = sum(r.cost_usd or 0.0 for r in await ledger_rows(gw, key_id, len(statuses)))
        one_answer = 208_000 * 2.5e-6 + 65_536 * 15e-6
        assert 429 in statuses and answered >= 1, statuses
        assert spent <= budget + one_answer, (answered, spent, budget + one_answer)


async def test_models_with_search_fees_are_refused_to_budgeted_keys(gw: Served) -> None:
    """``PROVIDER/MODEL`` of a configured provider is open to every key, and the price
    book reads only a model's token rates: gpt-4o-mini-search-preview costs $10 per
    thousand web searches on top of its tokens (the catalogue says so), which is neither
    reserved nor charged. Each answer's search costs the operator about a thousand
    times what the tenant's budget is charged. A budget cannot be kept with a price it
    cannot charge: such a model should be refused to budgeted keys, as unpriced ones are."""
    searched = {**answer("Today's weather is sunny.", annotations=[]), "model": "gpt-4o-mini-search-preview"}
    gw.upstream.on("POST", CHAT, Reply(json=searched))
    key_id, secret = await new_key(gw, "mallory", budget_usd=1)
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            gw.url + CHAT, json={"model": "openai/gpt-4o-mini-search-preview", "messages": HI},
            headers={"authorization": f"Bearer {secret}"},
        )  # fmt: skip
        status = r.status
    if status == 403:
        return  # refused as not fully priced: what should happen
    assert status == 200
    [row] = await ledger_rows(gw, key_id)
    assert row.cost_usd is not None and row.cost_usd >= 10 / 1000, row.cost_usd  # one search: $0.01


async def test_attempts_the_gateway_gives_up_on_are_charged_their_prompts() -> None:
    """The gateway sends the prompt, waits ``timeout_s``, gives up, and tries again
    (``retries``): each attempt's prompt was delivered and the upstream goes on
    generating (and billing) after the gateway hangs up. A stream the *client* leaves
    before its first token is charged its prompt; an attempt the *gateway* abandons is
    charged nothing. A slow question (a reasoning model at high effort, a long answer)
    costs the operator three generations and the tenant's budget nothing."""
    routing = RoutingSettings(retries=2, cooldowns=False, timeout_s=0.3, backoff_s=0.01, backoff_max_s=0.01)
    async with gateway_over([ModelGroup("smart", ["openai/gpt-4o-mini"])], routing=routing) as gw:
        gw.upstream.on("POST", CHAT, Reply(json=answer("late"), delay_s=1.0))
        key_id, secret = await new_key(gw, "mallory", budget_usd=1)
        prompt = [{"role": "user", "content": "think hard about this " * 2_000}]
        async with aiohttp.ClientSession() as http:
            r = await http.post(
                gw.url + CHAT,
                json={"model": "smart", "messages": prompt},
                headers={"authorization": f"Bearer {secret}"},
            )
            assert r.status == 504, await r.text()
        assert gw.upstream.count(CHAT) == 3  # three prompts delivered upstream
        [row] = await ledger_rows(gw, key_id)
        assert row.cost_usd is not None and row.cost_usd > 0, row


# ---- the operator's parts failing: Redis going away mid-request -------------------------------------


async def test_a_redis_blip_while_a_request_runs_leaks_neither_its_slot_nor_its_reservation(redis_url: str) -> None:
    """Redis is unreachable for a moment while a request waits for its answer: the answer
    still goes (good), but settling it fails and is never tried again. The key's
    ``max_parallel`` slot stays taken for SLOT_LEASE_S (15 minutes), and the request's
    worst-case reservation stays in the month's spend counter for good (the counter is
    seeded, so the ledger never corrects it): with Redis back, both keys are refused."""
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    prefix = f"llmrelay-review-{uuid.uuid4().hex}:"
    async with CuttableProxy(port) as proxy:
        state = RedisState(f"redis://127.0.0.1:{proxy.port}/0", prefix=prefix, timeout_s=0.5)
        try:
            async with gateway_over([ModelGroup("smart", ["openai/gpt-4o-mini"])], state=state) as gw:
                gw.upstream.on("POST", CHAT, Reply(json=answer("ok"), delay_s=0.6))
                _, one_at_a_time = await new_key(gw, "acme", max_parallel=1)
                _, budgeted = await new_key(gw, "acme", budget_usd=0.015)  # ~1.5 worst cases of 16k tokens

                async def ask(key: str) -> tuple[int, str]:
                    async with aiohttp.ClientSession() as http:
                        r = await http.post(
                            gw.url + CHAT, json={"model": "smart", "messages": HI},
                            headers={"authorization": f"Bearer {key}"},
                        )  # fmt: skip
                        return r.status, await r.text()

                first = [asyncio.create_task(ask(k)) for k in (one_at_a_time, budgeted)]
                await asyncio.sleep(0.3)  # admitted, and waiting for the upstream
                proxy.cut()
                assert [s for s, _ in await asyncio.gather(*first)] == [200, 200]  # the answers went all the same
                proxy.up = True  # Redis is back: what failed to settle is settled in the background, soon
                for _ in range(40):  # at most about 10 s
                    again = [await ask(k) for k in (one_at_a_time, budgeted)]
                    if [s for s, _ in again] == [200, 200]:
                        break
                    await asyncio.sleep(0.25)
                assert [s for s, _ in again] == [200, 200], again
        finally:
            async for name in state.redis.scan_iter(match=prefix + "*"):  # leave the shared Redis as it was
                await state.redis.delete(name)
            await state.aclose()


# ---- another tenant's data --------------------------------------------------------------------------


async def test_no_tenant_may_be_named_like_the_operators_own(gw: Served) -> None:
    """Conversations kept with the master key (and in open mode) are filed under the
    tenant ``default``, a name the admin API lets any tenant have: a virtual key of a
    tenant called ``default`` reads (and deletes) what the operator kept."""
    gw.upstream.on("POST", CHAT, Reply(json=answer("noted")))
    secret_note = [{"role": "user", "content": "the root password is hunter2"}]
    await gw.sdk().chat.completions.create(
        model="smart",
        messages=secret_note,
        extra_body={"conversation_id": "ops-notes"},  # type: ignore[arg-type]
    )
    for path, body in (("/admin/keys", {"tenant": "default"}), ("/admin/tenants", {"id": "default"})):
        status, err, _ = await call(gw, "POST", path, body)
        assert status == 400 and "reserved" in err["error"]["message"], (path, status, err)
    with pytest.raises(ValueError, match="reserved"):
        gw.store.create_key("default")  # nor through the CLI's store


# ---- bad input: a clear 4xx, never a 500 or a misleading 503 ----------------------------------------


ASKED = {"role": "user", "content": "hi"}
BAD_BLOCKS = {
    "text is a number": [{"role": "user", "content": [{"type": "text", "text": 12345}]}],
    "text is an object": [{"role": "user", "content": [{"type": "text", "text": {"a": 1}}]}],
    "text among others is a number": [
        {"role": "user", "content": [{"type": "text", "text": 5}, {"type": "text", "text": "x"}]}
    ],
    "thinking is a number": [ASKED, {"role": "assistant", "content": [{"type": "thinking", "thinking": 5}]}, ASKED],
    "image data is a number": [
        {
            "role": "user",
            "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": 5}}],
        }
    ],
    "image url is a number": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": 5}}]}],
    "tool_use name is a number": [
        ASKED,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": 5, "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
    ],
}


@pytest.mark.parametrize("messages", list(BAD_BLOCKS.values()), ids=list(BAD_BLOCKS))
async def test_messages_api_blocks_with_fields_of_the_wrong_type_are_a_400_not_a_500(
    gw: Served, messages: list[dict[str, Any]]
) -> None:
    """The Messages API decoder checks each turn's role and that its blocks have a type,
    but not the types of the blocks' own fields: a number where text goes reaches the
    token counting, which raises, and the caller gets a 500 and the log a traceback."""
    _, secret = await new_key(gw, "mallory", budget_usd=1)
    for path, body in [
        ("/v1/messages", {"model": "claude", "max_tokens": 5, "messages": messages}),
        ("/v1/messages", {"model": "smart", "max_tokens": 5, "messages": messages}),
        ("/v1/messages/count_tokens", {"model": "claude", "messages": messages}),
    ]:
        async with aiohttp.ClientSession() as http:
            r = await http.post(gw.url + path, json=body, headers={"x-api-key": secret})
            status, err = r.status, await r.json()
        assert status == 400 and err["type"] == "error", (path, body["model"], status, err)
    assert gw.upstream.count() == 0 and gw.anthropic.count() == 0


async def test_error_messages_about_the_request_are_not_mangled_by_the_address_scrubber(gw: Served) -> None:
    """The scrubber that keeps upstream addresses out of answers also runs over the
    caller's own request errors, and takes ``[0]`` (an index) for an IPv6 address:
    'messages[0].content' comes back as 'messages<upstream>.content'."""
    _, secret = await new_key(gw, "mallory")
    body = {"model": "smart", "messages": [{"role": "user", "content": {"not": "a string"}}]}
    async with aiohttp.ClientSession() as http:
        r = await http.post(gw.url + CHAT, json=body, headers={"authorization": f"Bearer {secret}"})
        status, err = r.status, await r.json()
    assert status == 400
    assert "<upstream>" not in err["error"]["message"] and "messages[0]" in err["error"]["message"], err


async def test_an_admin_value_the_database_cannot_hold_is_a_400_not_store_unavailable(gw: Served) -> None:
    """``tpm: 10**19`` passes the admin API's checks (a positive int) and SQLite cannot
    store it (past 2**63 - 1); the store turns every driver error of a write into
    ``StoreUnavailable``, so the operator is told the store is down (503, retry) for a
    value that will never fit. (On PostgreSQL a key ``name`` holding a NUL does the same.)"""
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            gw.url + "/admin/keys",
            json={"tenant": "acme", "tpm": 10**19},
            headers={"authorization": f"Bearer {MASTER}"},
        )
        status, err = r.status, await r.json()
    assert status == 400 and err["error"]["param"] == "tpm", (status, err)
