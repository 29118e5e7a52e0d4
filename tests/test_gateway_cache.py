"""The response cache and coalescing behind ``llmrelay serve``'s app, with the
official SDKs as clients and fake upstreams counting what reaches them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakeserver import Reply
from gateways import MASTER, Served, served_gateway
from llmrelay import ModelGroup
from test_gateway_openai import CHAT, answer, sse
from test_gateway_tenants import call, new_key

HI = [{"role": "user", "content": "Hi"}]
GROUPS = [
    ModelGroup("faq", ["openai/gpt-4o-mini"], cache=True, coalesce=True),
    ModelGroup("faq-claude", ["anthropic/claude-sonnet-4-5"], cache=True),
    ModelGroup("faq-semantic", ["openai/gpt-4o-mini"], semantic_cache=True),
]


@pytest.fixture
async def gw() -> AsyncIterator[Served]:
    async for served in served_gateway(GROUPS):
        yield served


async def test_a_hit_returns_the_same_body_and_says_so(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("Paris.")))
    sdk = gw.sdk()
    first = await sdk.chat.completions.with_raw_response.create(model="faq", messages=HI, temperature=0)
    await asyncio.sleep(1.1)  # a hit keeps the first answer's `created`, not the time of the hit
    second = await sdk.chat.completions.with_raw_response.create(model="faq", messages=HI, temperature=0)
    assert first.headers["x-llmrelay-cache"] == "miss" and second.headers["x-llmrelay-cache"] == "hit"
    assert json.loads(first.http_response.content) == json.loads(second.http_response.content)
    assert second.parse().choices[0].message.content == "Paris." and gw.upstream.count(CHAT) == 1
    plain = await sdk.chat.completions.with_raw_response.create(model="smart", messages=HI)
    assert "x-llmrelay-cache" not in plain.headers  # a group without the cache


async def test_cache_control_headers(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("a")), Reply(json=answer("b")), Reply(json=answer("c")))
    create = gw.sdk().chat.completions.with_raw_response.create
    await create(model="faq", messages=HI)
    fresh = await create(model="faq", messages=HI, extra_headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-llmrelay-cache"] == "miss" and fresh.parse().choices[0].message.content == "b"
    hit = await create(model="faq", messages=HI)
    assert hit.parse().choices[0].message.content == "b"  # the fresh answer replaced the old entry
    other = [{"role": "user", "content": "other"}]
    await create(model="faq", messages=other, extra_headers={"Cache-Control": "no-store"})
    again = await create(model="faq", messages=other)
    assert again.headers["x-llmrelay-cache"] == "miss" and gw.upstream.count(CHAT) == 4


async def test_a_cached_stream_replays_the_same_chunks(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Hel", "lo", "!")))
    sdk = gw.sdk()

    async def chunks() -> tuple[str, list[dict[str, Any]]]:
        stream = await sdk.chat.completions.create(
            model="faq", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        got = [c.model_dump(exclude={"id", "created"}) async for c in stream]
        return stream.response.headers["x-llmrelay-cache"], got

    (miss, first), (hit, second) = await chunks(), await chunks()
    assert (miss, hit) == ("miss", "hit") and first == second and gw.upstream.count(CHAT) == 1
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in second if c["choices"])
    assert text == "Hello!" and second[-1]["usage"]["completion_tokens"] == 3


async def test_tenants_never_share_entries(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("for a")), Reply(json=answer("for b")))
    _, a = await new_key(gw, "tenant-a")
    _, a2 = await new_key(gw, "tenant-a")
    _, b = await new_key(gw, "tenant-b")
    create = gw.sdk(a).chat.completions.with_raw_response.create
    first = await create(model="faq", messages=HI)
    other = await gw.sdk(b).chat.completions.with_raw_response.create(model="faq", messages=HI)
    same_tenant = await gw.sdk(a2).chat.completions.with_raw_response.create(model="faq", messages=HI)
    assert first.headers["x-llmrelay-cache"] == other.headers["x-llmrelay-cache"] == "miss"
    assert other.parse().choices[0].message.content == "for b"
    assert same_tenant.headers["x-llmrelay-cache"] == "hit"
    assert same_tenant.parse().choices[0].message.content == "for a" and gw.upstream.count(CHAT) == 2


async def test_hits_cost_nothing_in_the_ledger_and_are_counted_in_metrics(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("x")))
    _, secret = await new_key(gw, "acme")
    for _ in range(3):
        await gw.sdk(secret).chat.completions.create(model="faq", messages=HI)
    await gw.app.ledger.flush()  # type: ignore[union-attr]
    status, usage, _ = await call(gw, "GET", "/admin/usage", key=secret)
    assert status == 200 and usage["total_count"] == 3
    miss, *hits = reversed(usage["data"])  # oldest first
    assert miss["cost_usd"] > 0 and miss["prompt_tokens"] == 9 and miss["deployment"] == "openai/gpt-4o-mini"
    assert all(h["cost_usd"] == 0 and h["prompt_tokens"] == h["completion_tokens"] == 0 for h in hits)
    assert all(h["deployment"] == "cache" and h["status"] == 200 and h["cache_hit"] for h in hits)
    assert miss["cache_hit"] is False
    async with aiohttp.ClientSession() as http, http.get(gw.url + "/metrics") as r:
        metrics = await r.text()
    assert 'llmrelay_cache_total{model="faq",result="hit"} 2.0' in metrics
    assert 'llmrelay_cache_total{model="faq",result="miss"} 1.0' in metrics


async def test_identical_requests_in_flight_share_one_upstream_call(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("once"), delay_s=0.3))
    sdk = gw.sdk()
    calls = [sdk.chat.completions.with_raw_response.create(model="faq", messages=HI) for _ in range(20)]
    answers = await asyncio.gather(*calls)
    assert gw.upstream.count(CHAT) == 1
    assert {a.parse().choices[0].message.content for a in answers} == {"once"}
    assert sum(a.headers.get("x-llmrelay-coalesced") == "true" for a in answers) == 19


async def test_the_anthropic_api_is_cached_too(gw: Served) -> None:
    reply = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Bonjour"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 4, "output_tokens": 2},
    }  # fmt: skip
    gw.anthropic.on("POST", "/v1/messages", Reply(json=reply))
    claude = gw.claude()
    first = await claude.messages.with_raw_response.create(model="faq-claude", max_tokens=20, messages=HI)
    second = await claude.messages.with_raw_response.create(model="faq-claude", max_tokens=20, messages=HI)
    assert (first.headers["x-llmrelay-cache"], second.headers["x-llmrelay-cache"]) == ("miss", "hit")
    assert json.loads(first.http_response.content) == json.loads(second.http_response.content)
    assert gw.anthropic.count("/v1/messages") == 1


async def test_master_key_requests_are_cached_apart_from_tenants(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("op")), Reply(json=answer("tenant")))
    _, secret = await new_key(gw, "acme")
    await gw.sdk(MASTER).chat.completions.create(model="faq", messages=HI)
    r = await gw.sdk(secret).chat.completions.with_raw_response.create(model="faq", messages=HI)
    assert r.headers["x-llmrelay-cache"] == "miss" and r.parse().choices[0].message.content == "tenant"


async def test_the_semantic_cache_for_requests_that_ask_for_it(gw: Served) -> None:
    from test_cache_semantic import minilm_reason

    reason = minilm_reason()
    if reason is not None:
        pytest.skip(reason)
    from llmrelay.cache import CacheLayer, CacheSettings

    gw.client.cache = CacheLayer(gw.client.router, CacheSettings(threshold=0.9))
    gw.upstream.on("POST", CHAT, Reply(json=answer("Paris")), Reply(json=answer("again")))
    create = gw.sdk().chat.completions.with_raw_response.create
    semantic = {"x-llmrelay-semantic-cache": "true"}

    def ask(question: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": question}]

    await create(model="faq-semantic", messages=ask("What is the capital of France?"), extra_headers=semantic)
    similar = await create(
        model="faq-semantic", messages=ask("Which city is the capital of France?"), extra_headers=semantic
    )
    assert similar.headers["x-llmrelay-cache"] == "hit" and similar.parse().choices[0].message.content == "Paris"
    plain = await create(model="faq-semantic", messages=ask("Which city is the capital of France?"))
    assert plain.headers["x-llmrelay-cache"] == "miss"  # did not ask for the semantic cache
    assert gw.upstream.count(CHAT) == 2
