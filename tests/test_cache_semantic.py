"""The semantic cache: a question meaning the same as an earlier one reuses its
answer, within its tenant, conversation and parameters only."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from fakeserver import FakeServer, Reply
from llmrelay import AsyncClient
from llmrelay.cache import CacheLayer, CacheSettings, MemoryCache
from llmrelay.cache.keys import semantic_parts
from llmrelay.cache.semantic import Vector
from llmrelay.router import Deployment, ModelGroup
from test_router import CHAT, FAST, answer, openai

# A toy embedder: each question is a unit vector chosen by the test, so the
# similarities are exact and known.
ANGLES = {"capital of France?": 0.0, "France's capital?": 0.2, "capital of Germany?": 1.2, "bake bread?": 2.5}


async def toy_embed(text: str) -> Vector:
    angle = ANGLES[text]
    return np.array([np.cos(angle), np.sin(angle), 0.0], dtype=np.float32)


def ask(question: str, before: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    return [*(before or []), {"role": "user", "content": question}]


def semantic_client(fake: FakeServer, threshold: float = 0.95, embed: Any = toy_embed) -> AsyncClient:
    groups = [ModelGroup("faq", [Deployment("up", "m")], cache=True, semantic_cache=True)]
    c = AsyncClient(env={}, providers=[openai("up", fake)], models=groups, routing=FAST)
    c.cache = CacheLayer(c.router, CacheSettings(threshold=threshold), backend=MemoryCache(), embed=embed)
    return c


async def test_a_similar_question_reuses_the_answer(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("Paris")), Reply(json=answer("Berlin")))
    semantic = {"semantic": True}
    async with semantic_client(fake) as c:  # cos(0.2) = 0.980 >= 0.95 > cos(1.2) = 0.362
        first = await c.chat("faq", ask("capital of France?"), cache=semantic)
        similar = await c.chat("faq", ask("France's capital?"), cache=semantic)
        different = await c.chat("faq", ask("capital of Germany?"), cache=semantic)
    assert similar.content == "Paris" and similar.cache is not None and similar.cache.status == "hit"
    assert similar.cache.similarity == pytest.approx(np.cos(0.2), abs=1e-5)
    assert first.cache is not None and first.cache.similarity is None
    assert different.content == "Berlin" and fake.count(CHAT) == 2
    assert c.cache.stats["semantic_hit"] == 1


async def test_only_requests_that_opt_in_and_their_own_namespace_match(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("x")))
    semantic = {"semantic": True}
    async with semantic_client(fake) as c:
        await c.chat("faq", ask("capital of France?"), cache=semantic)
        plain = await c.chat("faq", ask("France's capital?"))  # did not opt in: exact cache only
        other_tenant = await c.chat("faq", ask("France's capital?"), cache={**semantic, "tenant": "t2"})
        other_history = await c.chat(
            "faq", ask("France's capital?", [{"role": "user", "content": "hello"}]), cache=semantic
        )
        other_params = await c.chat("faq", ask("France's capital?"), cache=semantic, temperature=1.0)
    assert all(r.cache is not None and r.cache.status == "miss" for r in (plain, other_tenant, other_history))
    assert other_params.cache is not None and other_params.cache.status == "miss"
    assert fake.count(CHAT) == 5


async def test_the_threshold_decides(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=answer("Paris")), Reply(json=answer("again")))
    async with semantic_client(fake, threshold=0.99) as c:  # cos(0.2) = 0.980 < 0.99
        await c.chat("faq", ask("capital of France?"), cache={"semantic": True})
        near = await c.chat("faq", ask("France's capital?"), cache={"semantic": True})
    assert near.content == "again" and fake.count(CHAT) == 2


async def test_without_an_embedder_the_exact_cache_still_works(fake: FakeServer, caplog: Any) -> None:
    async def broken(text: str) -> Vector:
        raise RuntimeError("no local model here")

    fake.on("POST", CHAT, Reply(json=answer("Paris")))
    async with semantic_client(fake, embed=broken) as c:
        await c.chat("faq", ask("capital of France?"), cache={"semantic": True})
        again = await c.chat("faq", ask("capital of France?"), cache={"semantic": True})
    assert again.cache is not None and again.cache.status == "hit" and fake.count(CHAT) == 1
    assert "semantic lookup unavailable" in caplog.text


def minilm_reason() -> str | None:
    try:
        from llmrelay.local.assets import MINILM

        MINILM.path()
    except Exception as exc:
        return f"the local MiniLM model is not installed ({type(exc).__name__})"
    return None


async def test_with_the_local_minilm_model(fake: FakeServer) -> None:
    reason = minilm_reason()
    if reason is not None:
        pytest.skip(reason)
    from llmrelay.cache.semantic import minilm_embedder

    fake.on("POST", CHAT, Reply(json=answer("Paris")), Reply(json=answer("Berlin")))
    semantic = {"semantic": True}
    async with semantic_client(fake, threshold=0.9, embed=minilm_embedder()) as c:
        await c.chat("faq", ask("What is the capital of France?"), cache=semantic)
        same = await c.chat("faq", ask("Which city is the capital of France?"), cache=semantic)
        other = await c.chat("faq", ask("What is the capital of Germany?"), cache=semantic)
    assert same.content == "Paris" and same.cache is not None and same.cache.similarity is not None
    assert same.cache.similarity >= 0.9 and other.content == "Berlin" and fake.count(CHAT) == 2


async def test_an_expired_nearest_answer_gives_way_to_the_next(fake: FakeServer, redis_url: str) -> None:
    import uuid

    from llmrelay.cache import RedisCache

    angles = {"first?": 0.0, "second?": 0.5, "query?": 0.2}  # cos: first-second 0.88, query-first 0.98, -second 0.96

    async def embed(text: str) -> Vector:
        return np.array([np.cos(angles[text]), np.sin(angles[text]), 0.0], dtype=np.float32)

    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    backend = RedisCache(redis_url, prefix=prefix)
    groups = [ModelGroup("faq", [Deployment("up", "m")], semantic_cache=True)]
    fake.on("POST", CHAT, Reply(json=answer("short-lived")), Reply(json=answer("kept")))
    semantic = {"semantic": True}
    async with AsyncClient(env={}, providers=[openai("up", fake)], models=groups, routing=FAST) as c:
        c.cache = CacheLayer(c.router, CacheSettings(threshold=0.9), backend=backend, embed=embed)
        first = await c.chat("faq", ask("first?"), cache={**semantic, "ttl": 0.2})
        await c.chat("faq", ask("second?"), cache=semantic)
        assert first.cache is not None
        for _ in range(100):  # until Redis has expired the first answer (its vector stays behind)
            if await backend.get(first.cache.key) is None:
                break
            await asyncio.sleep(0.05)
        found = await c.chat("faq", ask("query?"), cache=semantic)
        parts = semantic_parts("chat", "faq", c.build_request(ask("query?")), None)
        assert parts is not None
        left = await backend.vectors(parts[0])
    assert found.content == "kept" and found.cache is not None and found.cache.status == "hit"
    assert found.cache.similarity == pytest.approx(np.cos(0.3), abs=1e-5)
    assert [key for key, _ in left] == [found.cache.key]  # the expired one's vector was dropped
