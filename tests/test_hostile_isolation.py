"""A hostile tenant against the other tenants: request errors that must not trip
breakers, models the config never named, names with control characters, made-up
model names by the hundred, heavy counting, many requests at once. Over real HTTP
against fake upstreams; each test would fail on a gateway without the defence."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from fakeserver import FakeServer, Reply
from gateways import MASTER, Served, serve
from llmrelay import AsyncClient
from llmrelay.gateway import Gateway
from llmrelay.gateway.metrics import MAX_OTHER_LABELS
from llmrelay.gateway.server import ServerLimits
from llmrelay.store import Store, UsageQuery
from test_gateway_openai import CHAT, answer
from test_gateway_tenants import HI, call, new_key


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


async def raw_post(gw: Served, path: str, body: Any, key: str = MASTER) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + path, json=body, headers={"authorization": f"Bearer {key}"}) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_request_errors_never_open_a_breaker_for_the_other_tenants(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("fine")))
    _, hostile = await new_key(gw, "mallory")
    _, victim = await new_key(gw, "alice")
    deep = {"model": "smart", "messages": HI, "evil": nested(300)}
    deep_tool = {
        "model": "smart", "messages": HI,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": nested(300)}}],
    }  # fmt: skip
    for body in [deep, deep_tool] * 4:
        status, err = await raw_post(gw, CHAT, body, hostile)
        assert status == 400 and "nested deeper" in err["error"]["message"], err
    assert gw.upstream.count(CHAT) == 0
    r = await gw.sdk(victim).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "fine"
    [health] = await gw.client.health("smart")
    assert health.breaker == "closed" and health.failures == 0


@pytest.fixture
async def configured(tmp_path: Path) -> AsyncIterator[tuple[Served, FakeServer]]:
    """A gateway whose client comes from a config file naming one provider, with a
    keyless local server (vLLM) also reachable through the environment."""
    async with FakeServer() as upstream, FakeServer() as local, FakeServer() as unused:
        config = tmp_path / "llmrelay.yaml"
        config.write_text(
            "providers:\n"
            f"  - {{name: main, kind: openai, base_url: '{upstream.url}/v1', api_key: sk-up-123456}}\n"
            "models:\n  - {name: smart, deployments: [{provider: main, model: gpt-4o-mini}]}\n"
            "routing: {retries: 0, cooldowns: false}\n"
        )
        env = {"VLLM_BASE_URL": local.url + "/v1", "OLLAMA_BASE_URL": local.url}
        client = AsyncClient(config, env=env)
        folder = Path(tempfile.mkdtemp(prefix="llmrelay-cfg-"))
        store = Store.open(f"sqlite:///{folder / 'gateway.db'}")
        app = Gateway(client, master_key=MASTER, store=store)
        try:
            async for url in serve(app):
                yield Served(url, upstream, unused, client, app), local
        finally:
            shutil.rmtree(folder, ignore_errors=True)


async def test_only_the_configs_providers_and_groups_are_reachable(configured: tuple[Served, FakeServer]) -> None:
    gw, local = configured
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    local.on("POST", CHAT, Reply(json=answer("from a local server")))
    for model in ("vllm/any", "ollama/llama3", "lmstudio/x", "llamacpp/x", "local/smollm2", "openai/gpt-4o"):
        with pytest.raises(openai.NotFoundError, match="serves the model groups of its config"):
            await gw.sdk().chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]
    assert local.count() == 0 and "local" not in gw.client.router.groups
    assert (await gw.sdk().chat.completions.create(model="smart", messages=HI)).choices  # type: ignore[arg-type]
    assert (await gw.sdk().chat.completions.create(model="main/gpt-4o-mini", messages=HI)).choices  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "model",
    ["openai/gpt-4o-mini\r\nX-Injected: yes", "openai/gpt-4o-mini\x00", "smart\x7f", "openai/" + "m" * 300],
)
async def test_model_names_with_control_characters_or_too_long_are_a_400(gw: Served, model: str) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    key_id, secret = await new_key(gw, "mallory")
    status, err = await raw_post(gw, CHAT, {"model": model, "messages": HI}, secret)
    assert status == 400 and err["error"]["param"] == "model", err
    status, err = await raw_post(gw, "/v1/messages", {"model": model, "max_tokens": 5, "messages": HI}, secret)
    assert status == 400 and err["type"] == "error", err
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            gw.url + "/v1/models/" + model.replace("\r\n", "%0D%0A").replace("\x00", "%00").replace("\x7f", "%7F"),
            headers={"authorization": f"Bearer {secret}"},
        ) as r,
    ):
        assert r.status == 400
    assert gw.upstream.count(CHAT) == 0
    assert gw.app.ledger is not None
    await gw.app.ledger.flush()  # the refusals are in the ledger, and the ledger still writes
    assert len(gw.store.usage(UsageQuery(key_id=key_id))) == 2


async def test_made_up_model_names_cannot_grow_the_metrics(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(status=404, json={"error": {"message": "no such model", "type": "x"}}))
    _, secret = await new_key(gw, "mallory")
    sdk = gw.sdk(secret)

    async def one(i: int) -> None:
        with pytest.raises(openai.NotFoundError):
            await sdk.chat.completions.create(model=f"openai/made-up-{i}", messages=HI)  # type: ignore[arg-type]

    for start in range(0, 300, 50):
        await asyncio.gather(*(one(i) for i in range(start, start + 50)))
    async with aiohttp.ClientSession() as http, http.get(gw.url + "/metrics") as r:
        text = await r.text()
    models = set(re.findall(r'model="([^"]*)"', text))
    deployments = set(re.findall(r'deployment="([^"]*)"', text))
    assert len(models) <= MAX_OTHER_LABELS + 3 and "other" in models, len(models)
    assert len(deployments) <= MAX_OTHER_LABELS + 3 and "other" in deployments, len(deployments)
    assert len(text.splitlines()) < 3000


async def test_counting_a_huge_prompt_leaves_the_gateway_responsive_and_is_limited(gw: Served) -> None:
    """The gateway runs on this test's event loop: a ticker on it sees how long the loop
    was held while a 4 MiB prompt was counted (in a worker thread, it is not)."""
    gw.app.max_body = 16 * 1024 * 1024
    text = "lorem ipsum dolor " * 800_000  # 14 MB: long enough to count on any machine to stand out
    huge = {"model": "claude", "max_tokens": 1, "messages": [{"role": "user", "content": text}]}
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set() and len(gaps) < 100_000:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    begun = time.perf_counter()
    try:
        status, body = await raw_post(gw, "/v1/messages/count_tokens", huge)
    finally:
        took = time.perf_counter() - begun
        done.set()
        await ticking
    assert status == 200 and body["input_tokens"] > 2_000_000
    assert took > 0.15 and max(gaps) < took / 2, (max(gaps), took)  # the loop went on meanwhile

    key_id, secret = await new_key(gw, "mallory", rpm=2)
    small = {"model": "claude", "messages": HI}
    statuses = [(await raw_post(gw, "/v1/messages/count_tokens", small, secret))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert gw.app.ledger is not None
    await gw.app.ledger.flush()
    recorded = gw.store.usage(UsageQuery(key_id=key_id))
    assert sorted(r.status for r in recorded) == [200, 200, 429]
    assert {r.route for r in recorded} == {"/v1/messages/count_tokens"}


async def test_max_parallel_bounds_a_keys_requests_in_flight(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("slow"), delay_s=0.4))
    _, secret = await new_key(gw, "mallory", max_parallel=2)
    status, tenant, _ = await call(gw, "POST", "/admin/tenants", {"id": "crowd", "max_parallel": 1})
    assert status == 201 and tenant["max_parallel"] == 1
    sdk = gw.sdk(secret)

    async def one() -> str:
        try:
            await sdk.chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
            return "ok"
        except openai.RateLimitError as exc:
            assert exc.code == "too_many_parallel_requests" and "max_parallel" in str(exc)
            return "busy"

    outcomes = await asyncio.gather(*(one() for _ in range(5)))
    assert sorted(outcomes) == ["busy"] * 3 + ["ok"] * 2
    assert await one() == "ok"  # the slots were given back

    _, first = await new_key(gw, "crowd")
    _, second = await new_key(gw, "crowd")
    results = await asyncio.gather(
        gw.sdk(first).chat.completions.create(model="smart", messages=HI),  # type: ignore[arg-type]
        gw.sdk(second).chat.completions.create(model="smart", messages=HI),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert sum(isinstance(r, openai.RateLimitError) for r in results) == 1  # the tenant's one slot


async def test_clients_that_never_finish_their_headers_or_body_are_cut(gw: Served) -> None:
    gw.app.server_limits = ServerLimits(header_timeout_s=0.3, body_timeout_s=0.3, max_connections=50)
    host, port = gw.url.removeprefix("http://").split(":")
    partial_headers = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer " + MASTER.encode()
    partial_body = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + MASTER.encode() + b'\r\ncontent-length: 100\r\n\r\n{"model": '
    )
    for sent in (b"", partial_headers, partial_body):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(sent)
        await writer.drain()
        answer_ = await asyncio.wait_for(reader.read(), 5)  # read() returns when the server closes
        writer.close()
        assert answer_.startswith(b"HTTP/1.1 408"), answer_[:80]
        assert b"request_timeout" in answer_
