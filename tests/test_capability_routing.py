"""Capability-aware routing: a request goes only to deployments that can take it.

Mixed groups over fake OpenAI upstreams on 127.0.0.1 (one server per deployment):
assertions are on which deployment answered, how many requests each upstream got
(zero for the one that cannot take the request), the attempt records, and the
error when no deployment of the group or its fallbacks can take the request
(``CapabilityUnavailable``, a 400 through the gateway).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anthropic as anthropic_sdk
import openai as openai_sdk
import pytest

from fakeserver import FakeServer, Reply
from gateways import served_gateway
from llmrelay import AsyncClient, errors
from llmrelay.config import load_settings
from llmrelay.router import AttemptRecord, Deployment, ModelGroup, RoutingSettings, to_deployment
from llmrelay.router.capabilities import (
    UNKNOWN,
    Accepts,
    Needs,
    accepted,
    catalogue_accepts,
    lacking,
    needs,
)
from llmrelay.types import ChatRequest, Message, ResponseFormat, TextDelta, ToolSpec
from test_router import CHAT, answer, openai, sse

ROUTING = RoutingSettings(
    strategy="round_robin", retries=2, timeout_s=2.0, deadline_s=5.0, backoff_s=0.01, backoff_max_s=0.05, seed=1
)
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }
]
TEXT = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "type": "function",
    "function": {"name": "weather", "description": "The weather", "parameters": {"type": "object", "properties": {}}},
}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
CLAUDE_IMAGE: Any = {
    "role": "user",
    "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}],
}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object", "properties": {}}}}


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeServer, FakeServer]]:
    """Two OpenAI-compatible upstreams, answering every chat request (JSON or stream)."""
    async with AsyncExitStack() as stack:
        a, b = [await stack.enter_async_context(FakeServer()) for _ in range(2)]
        a.on("POST", CHAT, Reply(json=answer("from a"), streamed=sse("from a")))
        b.on("POST", CHAT, Reply(json=answer("from b"), streamed=sse("from b")))
        yield a, b


def client_for(
    servers: tuple[FakeServer, FakeServer], groups: list[ModelGroup], records: list[AttemptRecord]
) -> AsyncClient:
    a, b = servers
    providers = [openai("a", a), openai("b", b)]
    return AsyncClient(env={}, providers=providers, models=groups, routing=ROUTING, hooks=[records.append])


async def answered_by(client: AsyncClient, group: str, times: int, messages: Any = TEXT, **params: Any) -> set[str]:
    """The deployments that answered ``times`` calls, each in one attempt."""
    seen = set()
    for _ in range(times):
        r = await client.chat(group, messages, **params)
        assert r.route is not None and r.route.attempts == 1
        seen.add(r.route.deployment)
    return seen


# ---- mixed groups over HTTP ------------------------------------------------------------------------


async def test_image_requests_go_only_to_the_vision_deployment(servers: tuple[FakeServer, FakeServer]) -> None:
    a, b = servers
    records: list[AttemptRecord] = []
    group = ModelGroup("mixed", ["a/gpt-4o-mini", "b/gpt-3.5-turbo"])  # vision | text only (catalogue)
    async with client_for(servers, [group], records) as client:
        assert await answered_by(client, "mixed", 4) == {"a/gpt-4o-mini", "b/gpt-3.5-turbo"}
        a_before, b_before = a.count(CHAT), b.count(CHAT)
        calls_before = {h.deployment: h.calls for h in await client.health()}
        del records[:]
        assert await answered_by(client, "mixed", 6, IMAGE) == {"a/gpt-4o-mini"}
        events = [e async for e in client.stream("mixed", IMAGE)]
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "from a"
        health = {h.deployment: h for h in await client.health()}
    assert b.count(CHAT) == b_before and a.count(CHAT) == a_before + 7  # not one request to the text-only one
    assert {r.deployment for r in records} == {"a/gpt-4o-mini"} and len(records) == 7
    assert a.requests[-1].json["messages"][0]["content"][1]["type"] == "image_url"
    text_only = health["b/gpt-3.5-turbo"]  # nothing recorded against it: no call, no failure
    assert (text_only.calls, text_only.failures, text_only.breaker) == (calls_before["b/gpt-3.5-turbo"], 0, "closed")
    assert health["a/gpt-4o-mini"].calls == calls_before["a/gpt-4o-mini"] + 7


async def test_tool_requests_skip_a_deployment_without_tool_calling(servers: tuple[FakeServer, FakeServer]) -> None:
    a, b = servers
    records: list[AttemptRecord] = []
    group = ModelGroup("mixed", ["a/o1-mini", "b/gpt-4o-mini"])  # o1-mini: no tools (catalogue)
    async with client_for(servers, [group], records) as client:
        assert await answered_by(client, "mixed", 4) == {"a/o1-mini", "b/gpt-4o-mini"}
        a_before = a.count(CHAT)
        assert await answered_by(client, "mixed", 5, tools=[WEATHER]) == {"b/gpt-4o-mini"}
        assert a.count(CHAT) == a_before
        # tool_choice "none" asks for no tool call: anyone may answer
        assert await answered_by(client, "mixed", 4, tools=[WEATHER], tool_choice="none") == {
            "a/o1-mini", "b/gpt-4o-mini",
        }  # fmt: skip
    assert "tools" in b.requests[-5].json


async def test_parallel_tool_calls_only_when_asked_for(servers: tuple[FakeServer, FakeServer]) -> None:
    a, b = servers
    records: list[AttemptRecord] = []
    serial = Deployment("a", "gpt-4o-mini", accepts=Accepts(parallel_tool_calls=False))
    group = ModelGroup("mixed", [serial, "b/gpt-4o-mini"])
    async with client_for(servers, [group], records) as client:
        parallel = {"parallel_tool_calls": True}
        assert await answered_by(client, "mixed", 4, tools=[WEATHER], extra=parallel) == {"b/gpt-4o-mini"}
        assert a.count(CHAT) == 0 and b.requests[-1].json["parallel_tool_calls"] is True
        for extra in ({}, {"parallel_tool_calls": False}):
            assert await answered_by(client, "mixed", 4, tools=[WEATHER], extra=extra) == {
                "a/gpt-4o-mini", "b/gpt-4o-mini",
            }  # fmt: skip


async def test_json_schema_requests_skip_a_deployment_without_structured_output(
    servers: tuple[FakeServer, FakeServer],
) -> None:
    a, b = servers
    records: list[AttemptRecord] = []
    group = ModelGroup("mixed", ["a/gpt-3.5-turbo", "b/gpt-4o-mini"])  # gpt-3.5-turbo: no JSON schema
    async with client_for(servers, [group], records) as client:
        for srv in servers:
            srv.on("POST", CHAT, Reply(json=answer("{}")))
        assert await answered_by(client, "mixed", 4, response_format=SCHEMA) == {"b/gpt-4o-mini"}
        assert a.count(CHAT) == 0
        assert b.requests[-1].json["response_format"]["type"] == "json_schema"
        # JSON mode is no JSON schema: both take it
        assert await answered_by(client, "mixed", 4, response_format={"type": "json_object"}) == {
            "a/gpt-3.5-turbo", "b/gpt-4o-mini",
        }  # fmt: skip


async def test_a_big_prompt_skips_a_small_context_window(servers: tuple[FakeServer, FakeServer]) -> None:
    a = servers[0]
    records: list[AttemptRecord] = []
    small = Deployment("a", "house-model-8k", accepts={"context_window": 8192})  # a model no catalogue knows
    group = ModelGroup("mixed", [small, "b/house-model-128k"])
    big = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 3000}]  # ~30k tokens
    async with client_for(servers, [group], records) as client:
        assert await answered_by(client, "mixed", 4) == {"a/house-model-8k", "b/house-model-128k"}
        a_before = a.count(CHAT)
        assert await answered_by(client, "mixed", 4, big) == {"b/house-model-128k"}
        assert a.count(CHAT) == a_before
        assert {r.deployment for r in records[-4:]} == {"b/house-model-128k"}
        client.check_context_window = False  # the switch for every prompt-size check before sending
        assert await answered_by(client, "mixed", 4, big) == {"a/house-model-8k", "b/house-model-128k"}


async def test_max_tokens_above_a_deployments_output_limit(servers: tuple[FakeServer, FakeServer]) -> None:
    a, b = servers
    records: list[AttemptRecord] = []
    capped = Deployment("b", "house-model", max_output_tokens=2048)  # the deployment's own setting counts too
    group = ModelGroup("mixed", ["a/gpt-3.5-turbo", "b/gpt-4o-mini", capped])  # 4,096 | 16,384 | 2,048
    async with client_for(servers, [group], records) as client:
        assert await answered_by(client, "mixed", 6, max_tokens=1000) == {
            "a/gpt-3.5-turbo", "b/gpt-4o-mini", "b/house-model",
        }  # fmt: skip
        a_before = a.count(CHAT)
        assert await answered_by(client, "mixed", 4, max_tokens=3000) == {"a/gpt-3.5-turbo", "b/gpt-4o-mini"}
        assert await answered_by(client, "mixed", 4, max_tokens=8000) == {"b/gpt-4o-mini"}
        assert a.count(CHAT) == a_before + 2
    assert [json.loads(r.body)["model"] for r in b.requests[-4:]] == ["gpt-4o-mini"] * 4


async def test_a_fallback_group_serves_what_the_first_cannot(servers: tuple[FakeServer, FakeServer]) -> None:
    a, b = servers
    records: list[AttemptRecord] = []
    groups = [ModelGroup("text", ["a/gpt-3.5-turbo"], fallbacks=["vision"]), ModelGroup("vision", ["b/gpt-4o"])]
    async with client_for(servers, groups, records) as client:
        r = await client.chat("text", IMAGE)
        assert r.content == "from b" and r.route is not None and r.route.fallback and r.route.attempts == 1
        assert (await client.chat("text", TEXT)).content == "from a"
    assert (a.count(CHAT), b.count(CHAT)) == (1, 1)


# ---- when no deployment can take the request -----------------------------------------------------------


async def test_no_capable_deployment_names_what_each_lacks(servers: tuple[FakeServer, FakeServer]) -> None:
    a, b = servers
    records: list[AttemptRecord] = []
    groups = [
        ModelGroup("mixed", ["a/gpt-3.5-turbo", "b/o1-mini"], fallbacks=["more"]),
        ModelGroup("more", [Deployment("b", "house-model", accepts={"images": False, "tools": False})]),
    ]
    async with client_for(servers, groups, records) as client:
        with pytest.raises(errors.CapabilityUnavailable) as caught:
            await client.chat("mixed", IMAGE, tools=[WEATHER])
        with pytest.raises(errors.NoHealthyDeployment):  # it is one, for code that catches those
            await client.chat("mixed", IMAGE)
    error = caught.value
    assert str(error) == (
        "no deployment of 'mixed' can take this request: a/gpt-3.5-turbo: no image input; "
        "b/o1-mini: no tool calling, no image input; b/house-model: no tool calling, no image input"
    )
    assert error.tried == [
        ("a/gpt-3.5-turbo", "no image input"),
        ("b/o1-mini", "no tool calling, no image input"),
        ("b/house-model", "no tool calling, no image input"),
    ]
    assert error.status_code == 400 and error.code == "capability_unavailable" and not error.retryable
    assert (a.count(), b.count(), records) == (0, 0, [])


async def test_a_group_of_one_says_what_it_lacks(servers: tuple[FakeServer, FakeServer]) -> None:
    a = servers[0]
    async with client_for(servers, [], []) as client:
        with pytest.raises(errors.CapabilityUnavailable, match=r"^no deployment of 'a/gpt-3.5-turbo' can take"):
            await client.chat("a/gpt-3.5-turbo", IMAGE)
        with pytest.raises(errors.CapabilityUnavailable, match=r"max_tokens 20,000, past its 4,096-token output"):
            await client.chat("a/gpt-3.5-turbo", TEXT, max_tokens=20_000)
    assert a.count() == 0


async def test_an_outage_of_the_capable_deployment_is_no_capability_error(
    servers: tuple[FakeServer, FakeServer],
) -> None:
    a, b = servers
    b.on("POST", CHAT, Reply(status=500, json={"error": {"message": "down", "type": "server_error"}}))
    async with client_for(servers, [ModelGroup("mixed", ["a/gpt-3.5-turbo", "b/gpt-4o-mini"])], []) as client:
        with pytest.raises(errors.NoHealthyDeployment) as caught:
            await client.chat("mixed", IMAGE)
    assert not isinstance(caught.value, errors.CapabilityUnavailable) and caught.value.status_code == 503
    assert "a/gpt-3.5-turbo: no image input" in str(caught.value)
    assert a.count() == 0 and b.count(CHAT) == 3


async def test_every_prompt_too_long_keeps_its_own_error(servers: tuple[FakeServer, FakeServer]) -> None:
    small = Deployment("a", "house-model", accepts={"context_window": 1000})
    group = ModelGroup("g", [small, "b/gpt-4"])  # 1,000 (stated) | 8,192 (the catalogue: counted exactly)
    async with client_for(servers, [group], []) as client:
        with pytest.raises(errors.CapabilityUnavailable) as caught:
            await client.chat("g", "word " * 40_000)
    assert "a/house-model: a prompt of over 33,333 tokens, past its 1,000-token context window" in str(caught.value)
    assert "b/gpt-4: ContextWindowExceeded 400: prompt is 40008 tokens, model gpt-4 allows 8192" in str(caught.value)
    assert servers[0].count() == servers[1].count() == 0


async def test_the_gateway_answers_400_capability_unavailable() -> None:
    extra = [
        ModelGroup("mixed", ["openai/gpt-3.5-turbo", "openai/o1-mini"]),
        ModelGroup("vision", ["openai/gpt-3.5-turbo", "openai/gpt-4o-mini"]),
    ]
    async for gw in served_gateway(extra):
        gw.upstream.on("POST", CHAT, Reply(json=answer("a cat")))
        sdk = gw.sdk()
        with pytest.raises(openai_sdk.BadRequestError) as caught:
            await sdk.chat.completions.create(model="mixed", messages=IMAGE)  # type: ignore[arg-type]
        assert caught.value.status_code == 400
        body = caught.value.body
        assert isinstance(body, dict) and body["code"] == "capability_unavailable"
        assert body["type"] == "invalid_request_error"
        assert body["message"] == (
            "no deployment of 'mixed' can take this request: "
            "openai/gpt-3.5-turbo: no image input; openai/o1-mini: no image input"
        )
        with pytest.raises(anthropic_sdk.BadRequestError) as refused:  # the Messages API's format
            await gw.claude().messages.create(model="mixed", max_tokens=100, messages=[CLAUDE_IMAGE])
        assert refused.value.status_code == 400 and "openai/o1-mini: no image input" in refused.value.message
        assert gw.upstream.count() == 0
        for _ in range(4):
            r = await sdk.chat.completions.create(model="vision", messages=IMAGE)  # type: ignore[arg-type]
            assert r.choices[0].message.content == "a cat"
        assert [rec.json["model"] for rec in gw.upstream.requests] == ["gpt-4o-mini"] * 4


# ---- configuration ----------------------------------------------------------------------------------

PROVIDERS = """\
providers:
  - {name: a, kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-a}
"""


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "llmrelay.yaml"
    path.write_text(PROVIDERS + text)
    return load_settings(path, env={})


def test_the_override_is_read_from_the_config(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """\
models:
  - name: g
    deployments:
      - provider: a
        model: gpt-3.5-turbo
        capabilities: {tools: false, parallel_tool_calls: true, images: true, audio: false, json_schema: true,
                       context_window: 8192, max_output_tokens: 4096}
      - {provider: a, model: gpt-4o, capabilities: {images: false}}
      - {provider: a, model: gpt-4o-mini}
""",
    )
    first, second, third = settings.models["g"].members
    assert first.accepts == Accepts(
        tools=False, parallel_tool_calls=True, images=True, audio=False, json_schema=True,
        context_window=8192, max_output_tokens=4096,
    )  # fmt: skip
    assert second.accepts == Accepts(images=False) and third.accepts is None


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{imagez: true}", r":6: models\.g\.deployments\.0\.capabilities\.imagez: unknown key \(did you mean 'images'"),
        ("{context_window: 0}", r"deployments\.0\.capabilities\.context_window: Input should be greater than 0"),
        ("{tools: maybe}", r"deployments\.0\.capabilities\.tools: Input should be a valid boolean"),
        ("[tools]", r"deployments\.0\.capabilities: Input should be a valid dictionary"),
    ],
    ids=["unknown-key", "zero-window", "not-a-boolean", "not-a-mapping"],
)  # fmt: skip
def test_config_mistakes_in_the_override(tmp_path: Path, entry: str, expected: str) -> None:
    with pytest.raises(errors.ConfigError, match=expected):
        load(
            tmp_path,
            f"models:\n  - name: g\n    deployments:\n      - {{provider: a, model: m, capabilities: {entry}}}\n",
        )


def test_the_override_from_code() -> None:
    dep = to_deployment({"provider": "a", "model": "m", "accepts": {"images": True, "context_window": 4096}})
    assert dep.accepts == Accepts(images=True, context_window=4096)
    assert Deployment("a", "m", accepts=Accepts(tools=False)).accepts == Accepts(tools=False)
    with pytest.raises(errors.ConfigError, match=r"deployment a/m: capabilities: unknown key 'vision' \(known: tools"):
        Deployment("a", "m", accepts={"vision": True})
    with pytest.raises(errors.ConfigError, match="context_window must be a whole number > 0"):
        Accepts(context_window=-1)
    with pytest.raises(errors.ConfigError, match="images must be true or false"):
        Accepts(images="yes")  # type: ignore[arg-type]


def test_the_override_wins_over_the_catalogue() -> None:
    assert catalogue_accepts("gpt-3.5-turbo").images is False
    told = Deployment("a", "gpt-3.5-turbo", accepts={"images": True, "max_output_tokens": 8000})
    assert accepted(told, "openai") == Accepts(
        tools=True, images=True, audio=False, json_schema=False, max_output_tokens=8000
    )
    withdrawn = Deployment("a", "gpt-4o", accepts={"tools": False})
    assert accepted(withdrawn, "openai").tools is False
    # an explicit override also wins over the deployment's max_output_tokens
    both = Deployment("a", "gpt-4o", max_output_tokens=1000, accepts={"max_output_tokens": 2000})
    assert accepted(both, "openai").max_output_tokens == 2000


async def test_an_override_makes_a_text_model_take_images(servers: tuple[FakeServer, FakeServer]) -> None:
    b = servers[1]
    group = ModelGroup("g", [Deployment("a", "gpt-3.5-turbo", accepts={"images": True}), "b/o1-mini"])
    async with client_for(servers, [group], []) as client:
        assert await answered_by(client, "g", 3, IMAGE) == {"a/gpt-3.5-turbo"}
    assert b.count() == 0


def test_unknown_models_count_as_capable() -> None:
    for model in ("my-self-hosted-llama", "ft:gpt-4o-mini:acme::abc123", "gpt-4o-audio-preview"):
        assert catalogue_accepts(model) == UNKNOWN
        assert accepted(Deployment("a", model), "vllm") is UNKNOWN
    every_need = Needs(True, True, True, True, True, prompt_tokens=10**9, max_tokens=10**9)
    assert lacking(UNKNOWN, every_need) == []


async def test_an_unknown_model_takes_every_request(servers: tuple[FakeServer, FakeServer]) -> None:
    a, b = servers
    group = ModelGroup("g", ["a/my-self-hosted-llama", "b/o1-mini"])
    a.on("POST", CHAT, Reply(json=answer("{}")))
    async with client_for(servers, [group], []) as client:
        params = {"tools": [WEATHER], "response_format": SCHEMA, "max_tokens": 500_000}
        assert await answered_by(client, "g", 3, IMAGE, **params) == {"a/my-self-hosted-llama"}
    assert b.count() == 0


# ---- what a request needs ------------------------------------------------------------------------------


def request(**fields: Any) -> ChatRequest:
    return ChatRequest("m", [Message("user", "Hi")], **fields)


@dataclass
class AudioPart:
    """An audio content part as a wire format may one day carry it (none decodes it yet)."""

    data: str = ""
    type: Literal["input_audio"] = "input_audio"


def test_what_a_request_needs() -> None:
    tool = ToolSpec("weather")
    assert needs(request()) == Needs(prompt_tokens=0)
    assert needs(request(tools=[tool])).tools
    assert not needs(request(tools=[tool], tool_choice="none")).tools
    assert not needs(request(tools=[tool])).parallel_tool_calls
    assert needs(request(tools=[tool], extra={"parallel_tool_calls": True})).parallel_tool_calls
    assert not needs(request(extra={"parallel_tool_calls": True})).parallel_tool_calls  # no tools, no calls
    assert needs(request(response_format=ResponseFormat("json_schema", schema={}))).json_schema
    assert not needs(request(response_format=ResponseFormat("json_object"))).json_schema
    assert needs(request(max_tokens=77)).max_tokens == 77
    heard = ChatRequest("m", [Message("user", [AudioPart()])])  # type: ignore[list-item]
    assert needs(heard).audio and not needs(heard).images
    long = ChatRequest("m", [Message("system", "x" * 600), Message("user", "y" * 600)])
    assert needs(long).prompt_tokens == 200  # a low estimate: six characters a token


def test_what_each_provider_kind_accepts_for_json_schema() -> None:
    """Anthropic and Bedrock are asked for a JSON schema through a forced tool call."""
    assert catalogue_accepts("claude-3-5-sonnet-20241022", "openrouter").json_schema is False
    assert catalogue_accepts("claude-3-5-sonnet-20241022", "anthropic").json_schema is True
    assert catalogue_accepts("gemini-2.5-flash", "gemini") == Accepts(
        tools=True, images=True, audio=True, json_schema=True, max_output_tokens=65_536
    )


async def test_embeddings_need_nothing(fake: FakeServer) -> None:
    vectors = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}],
               "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}  # fmt: skip
    fake.on("POST", "/v1/embeddings", Reply(json=vectors))
    nothing = Accepts(False, False, False, False, False, context_window=1, max_output_tokens=1)
    group = ModelGroup("e", [Deployment("a", "text-embedding-3-small", accepts=nothing)])
    async with AsyncClient(env={}, providers=[openai("a", fake)], models=[group], routing=ROUTING) as client:
        r = await client.embed("e", ["a long enough text " * 10])
    assert r.vectors == [[0.5, 0.5]] and fake.count() == 1
