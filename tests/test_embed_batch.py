"""Embedding micro-batching over real HTTP on 127.0.0.1.

The fake upstream answers each input text with a vector derived from that text (and
the asked dimensions), so a vector handed to the wrong caller shows; each answer has
an id, so callers can be grouped by the upstream call that served them. Assertions are
on upstream request counts and contents, vectors, usage and cost shares, and errors;
never on timings.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeserver import FakeServer, Recorded, Reply
from llmrelay import AsyncClient, errors
from llmrelay.cost import embedding_cost
from llmrelay.providers import provider_class
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.openai.provider import OpenAIProvider
from llmrelay.router import AttemptRecord, Deployment, ModelGroup, RoutingSettings
from llmrelay.router.embed_batch import apportion, split_usage, token_bound
from llmrelay.testing import fake_vector
from llmrelay.types import EmbeddingRequest, EmbeddingResponse, Usage

EMB = "/v1/embeddings"
COHERE_EMB = "/v2/embed"
MODEL = "text-embedding-3-small"  # priced in the catalogue: costs can be checked
DIMS = 8
FAST = RoutingSettings(
    strategy="round_robin", retries=2, timeout_s=5.0, deadline_s=20.0, backoff_s=0.01, backoff_max_s=0.05, seed=1
)
ONE_TRY = replace(FAST, retries=0)


def tokens(texts: Sequence[str]) -> int:
    """What the fake upstream bills: words, plus one per text."""
    return sum(len(t.split()) + 1 for t in texts)


class EmbedServer(FakeServer):
    """A ``FakeServer`` whose unscripted embeddings routes (OpenAI's and Cohere's) answer
    one vector per input, derived from the text, after ``delay_s``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self._ids = itertools.count()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if (request.method, request.path) in self._routes or request.path not in (EMB, COHERE_EMB):
            return await super()._handle(request)
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.query), dict(request.headers), body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        payload = json.loads(body)
        answer_id = f"batch-{next(self._ids)}"
        if request.path == COHERE_EMB:
            texts, dims = payload["texts"], payload.get("output_dimension") or DIMS
            vectors = [fake_vector(t, dims) for t in texts]
            billed = {"input_tokens": tokens(texts)}
            return web.json_response(
                {"id": answer_id, "embeddings": {"float": vectors}, "meta": {"billed_units": billed}}
            )
        texts, dims = payload["input"], payload.get("dimensions") or DIMS
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(t, dims)} for i, t in enumerate(texts)]
        data.reverse()  # the index, not the order, says whose vector it is
        usage = {"prompt_tokens": tokens(texts), "total_tokens": tokens(texts)}
        return web.json_response({"id": answer_id, "object": "list", "data": data, "model": MODEL, "usage": usage})

    def sent(self, path: str = EMB) -> list[dict[str, Any]]:
        return [r.json for r in self.requests if r.path == path]


@pytest.fixture
async def upstreams() -> AsyncIterator[list[EmbedServer]]:
    servers = [EmbedServer(), EmbedServer()]
    for srv in servers:
        await srv.__aenter__()
    try:
        yield servers
    finally:
        for srv in servers:
            await srv.__aexit__()


def openai(name: str, srv: FakeServer, max_inputs: int = 100) -> OpenAIProvider:
    provider = OpenAIProvider(
        ProviderConfig(name=name, kind="openai", base_url=srv.url + "/v1", api_key="sk-test-1234")
    )
    provider.max_embed_inputs = max_inputs  # OpenAI's own 2048 would hold all 1,000 callers in one batch
    return provider


def client_for(
    providers: Sequence[OpenAIProvider],
    window_ms: float = 5.0,
    routing: RoutingSettings = FAST,
    records: list[AttemptRecord] | None = None,
) -> AsyncClient:
    group = ModelGroup("emb", [Deployment(p.name, MODEL) for p in providers], embed_batch_ms=window_ms)
    hooks = [records.append] if records is not None else []
    return AsyncClient(env={}, providers=providers, models=[group], routing=routing, hooks=hooks)


def by_batch(answers: Sequence[EmbeddingResponse]) -> dict[str, list[int]]:
    """Callers' indexes, by the upstream answer that served them."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, answer in enumerate(answers):
        groups[answer.raw["id"]].append(i)
    return groups


async def wait_until(condition: Any, what: str) -> None:
    for _ in range(500):  # 5 s at most
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


# ---------------------------------------------------------------- batching


async def test_a_thousand_single_text_calls_go_up_in_full_batches(upstreams: list[EmbedServer]) -> None:
    srv = upstreams[0]
    texts = [f"text number {i} " + "x" * (i % 13) for i in range(1000)]
    async with client_for([openai("a", srv)]) as client:
        answers = await asyncio.gather(*(client.embed("emb", t) for t in texts))
    sent = srv.sent()
    assert len(sent) <= math.ceil(1000 / 100)
    assert all(len(body["input"]) <= 100 for body in sent)
    assert sorted(t for body in sent for t in body["input"]) == sorted(texts)  # each text went up once
    for text, answer in zip(texts, answers, strict=True):
        assert answer.vectors == [fake_vector(text, DIMS)]
        assert answer.route is not None and answer.route.deployment == f"a/{MODEL}"
    assert len({id(a.route) for a in answers}) == 1000  # each caller its own answer
    assert sum(a.usage.prompt_tokens for a in answers) == sum(tokens(body["input"]) for body in sent)
    total_cost = sum(embedding_cost("openai", MODEL, Usage(tokens(body["input"]))) or 0.0 for body in sent)
    assert math.isclose(sum(a.cost_usd or 0.0 for a in answers), total_cost, rel_tol=1e-9)


async def test_callers_of_many_texts_get_their_own_in_order_and_a_fair_share(upstreams: list[EmbedServer]) -> None:
    srv = upstreams[0]
    calls = [[f"c{i} t{j} " + "w " * ((i * 7 + j) % 9) for j in range(1 + i % 7)] for i in range(200)]
    async with client_for([openai("a", srv, max_inputs=16)]) as client:
        answers = await asyncio.gather(*(client.embed("emb", texts) for texts in calls))
    assert all(len(body["input"]) <= 16 for body in srv.sent())
    for texts, answer in zip(calls, answers, strict=True):
        assert answer.vectors == [fake_vector(t, DIMS) for t in texts]
    batches = by_batch(answers)
    assert len(batches) == len(srv.sent()) < len(calls)
    for members in batches.values():
        total = tokens([t for i in members for t in calls[i]])
        shares = [answers[i].usage.prompt_tokens for i in members]
        assert sum(shares) == total
        chars = [sum(len(t) for t in calls[i]) for i in members]
        for share, weight in zip(shares, chars, strict=True):
            assert abs(share * sum(chars) - total * weight) < sum(chars)  # within one token of its part


async def test_a_full_batch_goes_without_waiting_for_the_window(upstreams: list[EmbedServer]) -> None:
    srv = upstreams[0]
    routing = replace(ONE_TRY, timeout_s=0.5)
    async with client_for([openai("a", srv, max_inputs=50)], window_ms=1000, routing=routing) as client:
        # 1 s window, 0.5 s per attempt: only batches sent as they fill can answer in time
        answers = await asyncio.gather(*(client.embed("emb", f"text {i}") for i in range(100)))
    assert [len(body["input"]) for body in srv.sent()] == [50, 50]
    assert [x.vectors for x in answers] == [[fake_vector(f"text {i}", DIMS)] for i in range(100)]


async def test_a_caller_at_the_limit_goes_alone(upstreams: list[EmbedServer]) -> None:
    srv = upstreams[0]
    big = [f"big {i}" for i in range(10)]
    async with client_for([openai("a", srv, max_inputs=10)]) as client:
        answers = await asyncio.gather(client.embed("emb", big), *(client.embed("emb", f"small {i}") for i in range(5)))
    assert answers[0].vectors == [fake_vector(t, DIMS) for t in big]
    assert answers[0].usage.prompt_tokens == tokens(big)
    assert big in [body["input"] for body in srv.sent()]  # its own request, nobody else's texts in it
    assert sorted(t for body in srv.sent() for t in body["input"] if t.startswith("small")) == [
        f"small {i}" for i in range(5)
    ]


async def test_a_batch_stays_under_the_provider_s_token_cap(upstreams: list[EmbedServer]) -> None:
    srv = upstreams[0]
    provider = openai("a", srv)
    provider.max_embed_tokens = 100
    texts = [f"text é {i:03}" for i in range(60)]  # 11 bytes: at most 12 tokens each, so 8 fit under 100
    async with client_for([provider]) as client:
        answers = await asyncio.gather(*(client.embed("emb", t) for t in texts))
    sent = [body["input"] for body in srv.sent()]
    assert all(token_bound(batch) <= 100 for batch in sent) and len(sent) >= math.ceil(60 / 8)
    assert sorted(t for batch in sent for t in batch) == texts
    assert [x.vectors for x in answers] == [[fake_vector(t, DIMS)] for t in texts]


@pytest.mark.parametrize("field", ["dimensions", "user"])
async def test_different_parameters_never_share_a_batch(upstreams: list[EmbedServer], field: str) -> None:
    srv = upstreams[0]
    values: list[Any] = [4, 6, 8] if field == "dimensions" else ["u1", "u2", "u3"]
    calls = [(f"text {i}", values[i % 3]) for i in range(300)]
    async with client_for([openai("a", srv)]) as client:
        answers = await asyncio.gather(*(client.embed("emb", t, **{field: v}) for t, v in calls))
    asked = dict(calls)
    for body in srv.sent():
        assert {asked[t] for t in body["input"]} == {body[field]}
    assert len(srv.sent()) >= 3
    for (text, value), answer in zip(calls, answers, strict=True):
        assert answer.vectors == [fake_vector(text, value if field == "dimensions" else DIMS)]


async def test_window_zero_sends_each_call_on_its_own(upstreams: list[EmbedServer]) -> None:
    srv = upstreams[0]
    async with client_for([openai("a", srv)], window_ms=0) as client:
        answers = await asyncio.gather(*(client.embed("emb", f"text {i}") for i in range(50)))
    assert sorted(len(body["input"]) for body in srv.sent()) == [1] * 50
    assert [a.vectors for a in answers] == [[fake_vector(f"text {i}", DIMS)] for i in range(50)]


async def test_a_yaml_configured_cohere_group_batches_by_cohere_s_limit(
    upstreams: list[EmbedServer], tmp_path: Path
) -> None:
    srv = upstreams[0]
    config = tmp_path / "llmrelay.yaml"
    config.write_text(
        f"""
providers:
  - {{name: co, kind: cohere, base_url: "{srv.url}", api_key: co-test-1234}}
models:
  - name: emb
    deployments: [{{provider: co, model: embed-v4.0}}]
    embed_batch_ms: 5
routing: {{retries: 0, timeout_s: 5, deadline_s: 20}}
"""
    )
    texts = [f"cohere text {i}" for i in range(1000)]
    async with AsyncClient(str(config), env={}) as client:
        answers = await asyncio.gather(*(client.embed("emb", t) for t in texts))
    sent = srv.sent(COHERE_EMB)
    assert len(sent) <= math.ceil(1000 / 96) and all(len(body["texts"]) <= 96 for body in sent)
    assert [a.vectors for a in answers] == [[fake_vector(t, DIMS)] for t in texts]
    assert sum(a.usage.prompt_tokens for a in answers) == sum(tokens(body["texts"]) for body in sent)


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("fault", ["500", "hang"])
async def test_a_failed_batch_fails_every_caller_alike(upstreams: list[EmbedServer], fault: str) -> None:
    srv = upstreams[0]
    if fault == "500":
        body = {"error": {"message": "boom", "type": "server_error", "code": None}}
        srv.on("POST", EMB, Reply(status=500, json=body))
        routing = ONE_TRY
    else:
        srv.on("POST", EMB, Reply(hang_s=30))
        routing = replace(ONE_TRY, timeout_s=0.3)
    async with client_for([openai("a", srv)], routing=routing) as client:
        outcomes = await asyncio.gather(*(client.embed("emb", f"text {i}") for i in range(60)), return_exceptions=True)
    assert len(srv.sent()) == 1
    assert all(isinstance(o, errors.LLMError) for o in outcomes)
    assert len({(type(o), str(o)) for o in outcomes}) == 1
    assert isinstance(outcomes[0], errors.ProviderError if fault == "500" else errors.Timeout)
    assert len({id(o) for o in outcomes}) == 60  # each caller raises its own copy


async def test_callers_of_a_failed_batch_fail_over_to_another_deployment(upstreams: list[EmbedServer]) -> None:
    a, b = upstreams
    a.on("POST", EMB, Reply(status=503, json={"error": {"message": "overloaded", "type": "server_error"}}))
    records: list[AttemptRecord] = []
    texts = [f"text {i}" for i in range(200)]
    async with client_for([openai("a", a), openai("b", b)], records=records) as client:
        answers = await asyncio.gather(*(client.embed("emb", t) for t in texts))
    assert [x.vectors for x in answers] == [[fake_vector(t, DIMS)] for t in texts]
    assert {x.route.deployment for x in answers if x.route} == {f"b/{MODEL}"}
    failed_over = [x for x in answers if x.route and x.route.attempts == 2]
    assert failed_over and len(a.sent()) <= math.ceil(len(failed_over) / 100)
    assert len(b.sent()) <= math.ceil(200 / 100) + 1
    assert sum(r.outcome == "error" for r in records) == len(failed_over)


# ---------------------------------------------------------------- cancellation


async def test_a_caller_leaving_a_sent_batch_leaves_the_others_their_answers() -> None:
    async with EmbedServer(delay_s=0.3) as srv:
        records: list[AttemptRecord] = []
        async with client_for([openai("a", srv)], records=records) as client:
            tasks = [asyncio.create_task(client.embed("emb", f"text {i}")) for i in range(20)]
            await wait_until(lambda: len(srv.sent()) == 1, "the batch reached the upstream")
            tasks[0].cancel()
            answers = await asyncio.gather(*tasks[1:])
            with pytest.raises(asyncio.CancelledError):
                await tasks[0]
    assert [x.vectors for x in answers] == [[fake_vector(f"text {i}", DIMS)] for i in range(1, 20)]
    assert len(srv.sent()) == 1
    assert sorted(r.outcome for r in records) == ["cancelled"] + ["ok"] * 19


async def test_a_caller_leaving_before_the_batch_goes_is_not_sent(upstreams: list[EmbedServer]) -> None:
    srv = upstreams[0]
    async with client_for([openai("a", srv)], window_ms=300) as client:
        tasks = [asyncio.create_task(client.embed("emb", f"text {i}")) for i in range(10)]
        await asyncio.sleep(0.05)  # all are waiting in the window
        tasks[0].cancel()
        answers = await asyncio.gather(*tasks[1:])
    assert [body["input"] for body in srv.sent()] == [[f"text {i}" for i in range(1, 10)]]
    assert [x.vectors for x in answers] == [[fake_vector(f"text {i}", DIMS)] for i in range(1, 10)]


class Watched(OpenAIProvider):
    """Counts upstream embeddings calls that were cancelled."""

    cancelled = 0

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        try:
            return await super().embed(request)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def test_the_upstream_call_is_cancelled_once_every_caller_has_gone(upstreams: list[EmbedServer]) -> None:
    srv = upstreams[0]
    srv.on("POST", EMB, Reply(hang_s=30))
    provider = Watched(ProviderConfig(name="a", kind="openai", base_url=srv.url + "/v1", api_key="sk-test-1234"))
    async with client_for([provider]) as client:
        tasks = [asyncio.create_task(client.embed("emb", f"text {i}")) for i in range(5)]
        await wait_until(lambda: len(srv.sent()) == 1, "the batch reached the upstream")
        for task in tasks[:4]:
            task.cancel()
        await asyncio.gather(*tasks[:4], return_exceptions=True)
        await asyncio.sleep(0.05)
        assert provider.cancelled == 0 and not tasks[4].done()  # one caller still waits for it
        tasks[4].cancel()
        await wait_until(lambda: provider.cancelled == 1, "the upstream call was cancelled")
    assert len(srv.sent()) == 1


# ---------------------------------------------------------------- limits and the split


@pytest.mark.parametrize(
    ("kind", "inputs", "tokens_cap"),
    [
        ("openai", 2048, 300_000),
        ("azure", 2048, 300_000),
        ("mistral", 128, 16_000),
        ("ollama", 32, None),
        ("cohere", 96, None),
        ("gemini", 100, None),
        ("bedrock", 1, None),
        ("anthropic", 1, None),
        ("local", 128, None),
    ],
)
def test_each_provider_kind_declares_its_batch_limit(kind: str, inputs: int, tokens_cap: int | None) -> None:
    options = {"region": "us-east-1", "api_version": "2024-10-21"}
    provider = provider_class(kind)(
        ProviderConfig(name=kind, kind=kind, base_url="http://127.0.0.1:9", api_key="k-1234", options=options)
    )
    assert (provider.max_embed_inputs, provider.max_embed_tokens) == (inputs, tokens_cap)


def test_the_window_is_bounded() -> None:
    for bad in (-1, 1001, float("nan"), float("inf")):
        with pytest.raises(errors.ConfigError, match="embed_batch_ms"):
            ModelGroup("emb", ["a/m"], embed_batch_ms=bad)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=60))
def test_shares_add_up_and_each_is_within_one_token_of_its_part(total: int, weights: list[int]) -> None:
    shares = apportion(total, weights)
    assert sum(shares) == total and all(s >= 0 for s in shares)
    used = weights if sum(weights) else [1] * len(weights)
    mass = sum(used)
    for share, weight in zip(shares, used, strict=True):
        assert abs(share * mass - total * weight) < mass  # |share - total * weight / mass| < 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=5, max_size=5), st.lists(st.integers(0, 5000), min_size=1, max_size=20))
def test_every_usage_count_is_split_exactly(counts: list[int], weights: list[int]) -> None:
    usage = Usage(*counts)
    shares = split_usage(usage, weights)
    assert len(shares) == len(weights)
    for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert sum(getattr(s, name) for s in shares) == getattr(usage, name)
