"""The Anthropic provider over real HTTP (fake server): recorded replays, the
wire request it sends, and the faults it must map."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakeserver import FakeServer, Reply, split_every
from llmrelay import errors
from llmrelay._http1 import default_transport
from llmrelay._json import loads
from llmrelay._sse import encode_sse
from llmrelay.providers import provider_class
from llmrelay.providers.anthropic import codec
from llmrelay.providers.anthropic.provider import AnthropicProvider
from llmrelay.providers.base import ProviderConfig
from llmrelay.types import (
    ChatRequest,
    EmbeddingRequest,
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseFormat,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    UsageEvent,
)
from recordings import load_cassette, load_sse
from streams import collect, final

KEY = "sk-ant-test-secret-123456"
PATH = "/v1/messages"
WEATHER = ToolSpec(
    "get_weather", "Weather in a city", {"type": "object", "properties": {"location": {"type": "string"}}}
)


@pytest.fixture(autouse=True)
async def _close_transport() -> AsyncIterator[None]:
    yield
    await default_transport().aclose()


def make(fake: FakeServer, **config: Any) -> AnthropicProvider:
    return AnthropicProvider(
        ProviderConfig(name="anthropic", kind="anthropic", base_url=fake.url, api_key=KEY, **config)
    )


def ask(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model=kw.pop("model", "claude-sonnet-4-5"), messages=list(messages) or [user("Hi")], **kw)


def user(text: str) -> Message:
    return Message(role="user", content=text)


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(encode_sse(json.dumps(event), event["type"]) for event in events)


def message_body(*content: dict[str, Any], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": list(content) or [{"type": "text", "text": "ok"}],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def error_json(kind: str, message: str = "boom") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}


START = {"type": "message_start", "message": {"id": "msg_s", "model": "claude-x", "usage": {"input_tokens": 5}}}
TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
STOP = {"type": "message_stop"}


def text_delta(text: str, index: int = 0) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}


def json_delta(fragment: str, index: int) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "input_json_delta", "partial_json": fragment},
    }


def tool_start(index: int, name: str, call_id: str) -> dict[str, Any]:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    return {"type": "content_block_start", "index": index, "content_block": block}


def finish_delta(stop_reason: str, **usage: int) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": usage}


async def chat_wire(fake: FakeServer, request: ChatRequest, reply: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body the provider sent for ``request``."""
    fake.on("POST", PATH, Reply(json=reply or message_body()))
    await make(fake).chat(request)
    body: dict[str, Any] = fake.requests[-1].json
    return body


# --------------------------------------------------------------------------- recorded replays


async def test_replay_basic_text_stream_with_ping(fake: FakeServer) -> None:
    fake.on("POST", PATH, Reply(chunks=split_every(load_sse("anthropic-stream-basic-text-ping.sse"), 37)))
    events = await collect(make(fake), ask())
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello there!"
    usages = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert (usages[0].prompt_tokens, usages[0].completion_tokens) == (11, 1)
    response = final(events)
    assert (response.content, response.finish_reason, response.native_finish_reason) == (
        "Hello there!",
        "stop",
        "end_turn",
    )
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (11, 6)
    assert response.id == "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK"
    assert response.model == "claude-3-opus-latest"
    sent = fake.requests[-1]
    assert sent.json["stream"] is True
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["Content-Type"] == "application/json"


async def test_replay_tool_use_stream(fake: FakeServer) -> None:
    fake.on("POST", PATH, Reply(chunks=split_every(load_sse("anthropic-stream-tool-use-input-json-delta.sse"), 64)))
    events = await collect(make(fake), ask(tools=[WEATHER]))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert {d.index for d in deltas} == {0}  # the tool ordinal, not Anthropic's content index 1
    assert (deltas[0].id, deltas[0].name) == ("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather")
    assert "" not in [d.arguments for d in deltas[1:]]
    response = final(events)
    assert response.content == "I'll check the current weather in Paris for you."
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "toolu_01NRLabsLyVHZPKxbKvkfSMn",
        "get_weather",
        {"location": "Paris"},
    )
    assert call.raw_arguments == '{"location": "Paris"}'
    assert (response.finish_reason, response.native_finish_reason) == ("tool_calls", "tool_use")
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (377, 65)


async def test_replay_thinking_stream_and_its_recorded_request(fake: FakeServer) -> None:
    [rec] = load_cassette("anthropic-stream-thinking-signature.cassette.yaml")
    fake.on("POST", PATH, Reply(chunks=split_every(rec.body, 100), content_type="text/event-stream"))
    thinking = {"type": "enabled", "budget_tokens": 1024}
    request = ask(
        user("How do I cross the street?"), model="claude-sonnet-4-0", max_tokens=4096, extra={"thinking": thinking}
    )
    events = await collect(make(fake), request)
    assert fake.requests[-1].json == rec.request_json
    signatures = [e.signature for e in events if isinstance(e, ReasoningDelta) and e.signature]
    assert len(signatures) == 1 and signatures[0].startswith("EvMCCkYICxgCKkCHP2cSuEdcJK")
    response = final(events)
    assert response.reasoning is not None
    assert response.reasoning.startswith("This is a straightforward question about pedestrian safety.")
    assert response.reasoning.endswith("help prevent accidents.")
    assert response.reasoning_signature == signatures[0]
    assert response.content.startswith("Here are the basic steps for safely crossing the street:\n\n**At")
    assert response.content.endswith("Always prioritize safety over speed when crossing streets.")
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (43, 282)
    assert response.finish_reason == "stop"
    assert response.message.reasoning_signature == signatures[0]


async def test_replay_nonstream_message_and_its_recorded_request(fake: FakeServer) -> None:
    [rec] = load_cassette("anthropic-message-nonstream-retry-after-header.cassette.yaml")
    fake.on("POST", PATH, Reply(status=rec.status, json=rec.response_json, headers={"retry-after": "55"}))
    request = ask(user("Tell me a brief fact about Paris"), max_tokens=4096)
    response = await make(fake).chat(request)
    recorded = dict(rec.request_json)
    assert recorded.pop("stream") is False  # we leave stream out unless it is true
    assert fake.requests[-1].json == recorded
    assert response.content.startswith('Paris is known as the "City of Light"')
    assert (response.id, response.model) == ("msg_01FHKyT8ANtS9RRAo7Kf37i7", "claude-sonnet-4-5-20250929")
    assert (response.finish_reason, response.native_finish_reason) == ("stop", "end_turn")
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.cached_tokens) == (14, 65, 0)
    assert response.raw == rec.response_json
    assert response.provider == "anthropic"
    assert response.cost_usd == pytest.approx(14 * 3e-6 + 65 * 15e-6)  # priced as anthropic's Sonnet 4.5


# --------------------------------------------------------------------------- the wire request


async def test_system_messages_go_top_level_and_same_role_turns_merge(fake: FakeServer) -> None:
    body = await chat_wire(
        fake,
        ask(
            Message(role="system", content="Be brief."),
            user("one"),
            user("two"),
            Message(role="system", content="Answer in French."),
            Message(role="assistant", content="un"),
            Message(role="assistant", content="deux"),
        ),
    )
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "un"}, {"type": "text", "text": "deux"}]},
    ]
    assert body["max_tokens"] == 8192
    assert "seed" not in body and "stream" not in body


async def test_tool_results_fold_into_one_user_turn(fake: FakeServer) -> None:
    calls = [
        ToolCall("toolu_a", "get_weather", {"location": "Paris"}),
        ToolCall("toolu_b", "get_weather", {"location": "Oslo"}),
    ]
    body = await chat_wire(
        fake,
        ask(
            user("Weather in Paris and Oslo?"),
            Message(
                role="assistant", content="Checking.", tool_calls=calls, reasoning="think", reasoning_signature="sig=="
            ),
            Message(role="tool", content="18C", tool_call_id="toolu_a"),
            Message(role="tool", content=[TextPart("-3C")], tool_call_id="toolu_b", extra={"is_error": True}),
            user("Thanks, and?"),
            tools=[WEATHER],
        ),
    )
    assistant, results = body["messages"][1:]
    assert assistant["content"] == [
        {"type": "thinking", "thinking": "think", "signature": "sig=="},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"location": "Oslo"}},
    ]
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": "-3C", "is_error": True},
            {"type": "text", "text": "Thanks, and?"},
        ],
    }
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER.parameters}
    ]
    assert "tool_choice" not in body


async def test_images_by_data_url_and_data_url(fake: FakeServer) -> None:
    png = "iVBORw0KGgoAAAANSUhEUg=="
    parts: list[TextPart | ImagePart] = [
        TextPart("What is in these?"),
        ImagePart(data=png, media_type="image/png"),
        ImagePart(url="https://example.com/cat.jpg"),
        ImagePart(url=f"data:image/webp;base64,{png}"),
        ImagePart(data=png),  # media type read from the data
    ]
    body = await chat_wire(fake, ask(Message(role="user", content=parts)))
    blocks = body["messages"][0]["content"]
    assert blocks[0] == {"type": "text", "text": "What is in these?"}
    assert [b["source"] for b in blocks[1:]] == [
        {"type": "base64", "media_type": "image/png", "data": png},
        {"type": "url", "url": "https://example.com/cat.jpg"},
        {"type": "base64", "media_type": "image/webp", "data": png},
        {"type": "base64", "media_type": "image/png", "data": png},
    ]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"name": "get_weather"}, {"type": "tool", "name": "get_weather"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
        ({"type": "any", "disable_parallel_tool_use": True}, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice_mapping(choice: str | dict[str, Any], wire: dict[str, Any]) -> None:
    body = codec.encode_chat(ask(tools=[WEATHER], tool_choice=choice), stream=False)
    assert body["tool_choice"] == wire


def test_unknown_tool_choice_is_invalid() -> None:
    with pytest.raises(errors.InvalidRequest, match="tool_choice"):
        codec.encode_chat(ask(tools=[WEATHER], tool_choice="sometimes"), stream=False)


async def test_sampling_params_metadata_and_extra_passthrough(fake: FakeServer) -> None:
    request = ask(
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        seed=42,
        user="user-123",
        tool_choice="auto",
        extra={"top_k": 5, "max_tokens": 99},
    )
    body = await chat_wire(fake, request)
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-123"}
    assert body["top_k"] == 5  # extra adds fields...
    assert body["max_tokens"] == codec.default_max_tokens(request.model)  # ...never replaces the codec's
    assert "seed" not in body and "tool_choice" not in body  # no tools: no tool_choice


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-3-haiku-20240307", 4096),
        ("claude-3-opus-latest", 4096),
        ("claude-3-5-sonnet-20241022", 8192),
        ("claude-3-7-sonnet-latest", 8192),
        ("claude-sonnet-4-20250514", 8192),
        ("claude-opus-4-1", 8192),
        ("claude-2.1", 4096),
        ("my-finetune", 4096),
    ],
)
def test_default_max_tokens(model: str, expected: int) -> None:
    assert codec.default_max_tokens(model) == expected


def test_default_max_tokens_leaves_room_above_a_thinking_budget() -> None:
    request = ask(extra={"thinking": {"type": "enabled", "budget_tokens": 16000}})
    assert codec.encode_chat(request, stream=False)["max_tokens"] == 16000 + 8192


async def test_structured_output_uses_a_forced_tool(fake: FakeServer) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    answer = {"type": "tool_use", "id": "toolu_s", "name": "city_answer", "input": {"city": "Paris"}}
    request = ask(
        response_format=ResponseFormat(schema=schema, name="city_answer"), tools=[WEATHER], tool_choice="auto"
    )
    fake.on("POST", PATH, Reply(json=message_body(answer, stop_reason="tool_use")))
    response = await make(fake).chat(request)
    body = fake.requests[-1].json
    assert body["tools"][-1]["name"] == "city_answer" and body["tools"][-1]["input_schema"] == schema
    assert body["tool_choice"] == {"type": "tool", "name": "city_answer"}
    assert loads(response.content) == {"city": "Paris"}
    assert response.tool_calls == []
    assert (response.finish_reason, response.native_finish_reason) == ("stop", "tool_use")
    assert response.parsed == {"city": "Paris"}


async def test_structured_output_stream_emits_the_json_as_text(fake: FakeServer) -> None:
    stream = sse(
        START,
        tool_start(0, "city_answer", "toolu_s"),
        json_delta("", 0),
        json_delta('{"city": "Pa', 0),
        json_delta('ris"}', 0),
        finish_delta("tool_use", output_tokens=9),
        STOP,
    )
    fake.on("POST", PATH, Reply(chunks=[stream]))
    request = ask(response_format=ResponseFormat(schema={"type": "object"}, name="city_answer"))
    events = await collect(make(fake), request)
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ['{"city": "Pa', 'ris"}']
    response = final(events)
    assert (response.content, response.finish_reason, response.tool_calls) == ('{"city": "Paris"}', "stop", [])
    assert response.parsed == {"city": "Paris"}


def test_json_object_format_adds_a_system_instruction() -> None:
    request = ask(
        Message(role="system", content="Be terse."), user("Hi"), response_format=ResponseFormat(type="json_object")
    )
    body = codec.encode_chat(request, stream=False)
    assert body["system"] == f"Be terse.\n\n{codec.JSON_OBJECT_INSTRUCTION}"
    assert "tools" not in body


def test_structured_tool_name_clashing_with_a_tool_is_invalid() -> None:
    request = ask(tools=[WEATHER], response_format=ResponseFormat(schema={"type": "object"}, name="get_weather"))
    with pytest.raises(errors.InvalidRequest, match="get_weather"):
        codec.encode_chat(request, stream=False)


async def test_only_system_messages_is_invalid_and_nothing_is_sent(fake: FakeServer) -> None:
    with pytest.raises(errors.InvalidRequest, match="user or assistant") as info:
        await make(fake).chat(ask(Message(role="system", content="alone")))
    assert info.value.provider == "anthropic"
    assert fake.count() == 0


def test_tool_message_needs_its_call_id() -> None:
    with pytest.raises(errors.InvalidRequest, match="tool_call_id"):
        codec.encode_chat(ask(user("x"), Message(role="tool", content="r")), stream=False)


def test_default_base_url_and_config_headers() -> None:
    config = ProviderConfig(name="a", kind="anthropic", api_key=KEY, headers={"anthropic-beta": "x-2025"})
    wire = AnthropicProvider(config).chat_request(ask(), stream=False)
    assert wire.url == "https://api.anthropic.com/v1/messages"
    assert wire.headers["anthropic-beta"] == "x-2025" and wire.headers["x-api-key"] == KEY


def test_kind_registry_and_price_provider() -> None:
    assert provider_class("anthropic") is AnthropicProvider
    provider = AnthropicProvider(ProviderConfig(name="work", kind="anthropic", api_key=KEY))
    assert (provider.kind, provider.price_provider, provider.name) == ("anthropic", "anthropic", "work")
    assert KEY not in repr(provider)


async def test_no_embeddings(fake: FakeServer) -> None:
    with pytest.raises(errors.InvalidRequest, match="embeddings"):
        await make(fake).embed(EmbeddingRequest(model="x", inputs=["a"]))


# --------------------------------------------------------------------------- responses


async def test_nonstream_thinking_tools_and_cache_usage(fake: FakeServer) -> None:
    body = message_body(
        {"type": "thinking", "thinking": "Let me", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "opaque=="},
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
        stop_reason="tool_use",
        cache_read_input_tokens=100,
        cache_creation_input_tokens=20,
    )
    fake.on("POST", PATH, Reply(json=body))
    response = await make(fake).chat(ask(tools=[WEATHER]))
    assert (response.content, response.reasoning, response.reasoning_signature) == ("Calling.", "Let me", "sig1")
    assert response.extra["redacted_thinking"] == ["opaque=="]
    [call] = response.tool_calls
    assert (call.id, call.arguments, loads(call.raw_arguments)) == (
        "toolu_1",
        {"location": "Paris"},
        {"location": "Paris"},
    )
    assert response.finish_reason == "tool_calls"
    usage = response.usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.completion_tokens) == (
        130,
        100,
        20,
        5,
    )


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(stop_reason: str, expected: str) -> None:
    response = codec.decode_chat(message_body(stop_reason=stop_reason), provider="p")
    assert (response.finish_reason, response.native_finish_reason) == (expected, stop_reason)


async def test_refusal_is_reported_and_not_parsed_as_json(fake: FakeServer) -> None:
    refused = message_body({"type": "text", "text": "I can't help with that."}, stop_reason="refusal")
    fake.on(
        "POST", PATH, Reply(json=refused), Reply(chunks=[sse(START, finish_delta("refusal", output_tokens=1), STOP)])
    )
    request = ask(response_format=ResponseFormat(schema={"type": "object"}, name="answer"))
    response = await make(fake).chat(request)
    assert (response.finish_reason, response.refusal, response.parsed) == (
        "content_filter",
        "I can't help with that.",
        None,
    )
    streamed = final(await collect(make(fake), request))
    assert streamed.finish_reason == "content_filter" and streamed.parsed is None
    assert streamed.refusal is not None and "refusal" in streamed.refusal


async def test_stream_redacted_thinking_is_kept_and_can_be_sent_back(fake: FakeServer) -> None:
    redacted = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "redacted_thinking", "data": "x=="},
    }
    fake.on("POST", PATH, Reply(chunks=[sse(START, redacted, text_delta("ok", 1), finish_delta("end_turn"), STOP)]))
    response = final(await collect(make(fake), ask()))
    assert (response.content, response.extra["redacted_thinking"]) == ("ok", ["x=="])
    message = Message("assistant", "ok", reasoning_signature="s", extra={"redacted_thinking": ["x=="]})
    blocks = codec.wire_messages([user("q"), message])[1]["content"]
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "text"]


async def test_stream_cut_by_max_tokens_inside_tool_json(fake: FakeServer) -> None:
    stream = sse(
        START,
        tool_start(0, "get_weather", "toolu_1"),
        json_delta('{"location": "Pa', 0),
        finish_delta("max_tokens", output_tokens=3),
        STOP,
    )
    fake.on("POST", PATH, Reply(chunks=[stream]))
    response = final(await collect(make(fake), ask(tools=[WEATHER])))
    [call] = response.tool_calls
    assert (call.arguments, call.raw_arguments, call.name) == ({}, '{"location": "Pa', "get_weather")
    assert response.finish_reason == "length"


async def test_stream_usage_is_cumulative_and_prefers_message_delta_inputs(fake: FakeServer) -> None:
    start = {
        "type": "message_start",
        "message": {"id": "m", "model": "c", "usage": {"input_tokens": 5, "output_tokens": 1}},
    }
    stream = sse(
        start,
        TEXT_START,
        text_delta("a"),
        finish_delta("end_turn", output_tokens=4),
        finish_delta("end_turn", output_tokens=7, input_tokens=6, cache_read_input_tokens=50),
        STOP,
    )
    fake.on("POST", PATH, Reply(chunks=[stream]))
    usage = final(await collect(make(fake), ask())).usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (56, 50, 7)


async def test_parallel_tool_calls_are_numbered_in_order(fake: FakeServer) -> None:
    stream = sse(
        START,
        TEXT_START,
        text_delta("Both."),
        tool_start(1, "get_weather", "toolu_a"),
        tool_start(2, "get_weather", "toolu_b"),
        json_delta('{"location": "Oslo"}', 2),
        json_delta('{"location": "Paris"}', 1),
        finish_delta("tool_use", output_tokens=20),
        STOP,
    )
    fake.on("POST", PATH, Reply(chunks=[stream]))
    response = final(await collect(make(fake), ask(tools=[WEATHER])))
    assert [(c.id, c.arguments["location"]) for c in response.tool_calls] == [("toolu_a", "Paris"), ("toolu_b", "Oslo")]


async def test_list_models(fake: FakeServer) -> None:
    model = {
        "type": "model",
        "id": "claude-sonnet-4-5",
        "display_name": "Claude Sonnet 4.5",
        "created_at": "2025-09-29T00:00:00Z",
        "max_input_tokens": 200000,
        "max_tokens": 64000,
        "capabilities": {"image_input": {"supported": True}},
    }
    page = {"data": [model, {"type": "model", "id": "claude-3-haiku-20240307"}], "has_more": False}
    fake.on("GET", "/v1/models", Reply(json=page))
    provider = make(fake)
    found = await provider.models()
    assert [m.id for m in found] == ["claude-sonnet-4-5", "claude-3-haiku-20240307"]
    assert found[0].raw["display_name"] == "Claude Sonnet 4.5" and found[0].provider == "anthropic"
    assert (found[0].context_window, found[0].max_output_tokens, found[0].supports_vision) == (200000, 64000, True)
    assert (found[1].context_window, found[1].supports_vision) == (None, False)
    sent = fake.requests[-1]
    assert sent.query == {"limit": "1000"} and sent.headers["x-api-key"] == KEY
    assert (await provider.test_connection()).ok


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("status", "kind", "message", "cls"),
    [
        (400, "invalid_request_error", "messages: text content blocks must be non-empty", errors.InvalidRequest),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            errors.ContextWindowExceeded,
        ),
        (401, "authentication_error", "invalid x-api-key", errors.AuthenticationError),
        (403, "permission_error", "no access", errors.PermissionDenied),
        (404, "not_found_error", "model: claude-9", errors.NotFound),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", errors.InvalidRequest),
        (429, "rate_limit_error", "slow down", errors.RateLimited),
        (500, "api_error", "Internal server error", errors.ProviderError),
        (529, "overloaded_error", "Overloaded", errors.Overloaded),
        (529, "api_error", "odd", errors.Overloaded),
        (504, "timeout_error", "Request timeout", errors.Timeout),
    ],
)
async def test_error_mapping(
    fake: FakeServer, status: int, kind: str, message: str, cls: type[errors.LLMError]
) -> None:
    fake.on("POST", PATH, Reply(status=status, json=error_json(kind, message)))
    with pytest.raises(errors.LLMError) as info:
        await make(fake).chat(ask())
    assert type(info.value) is cls
    assert info.value.status_code == status and info.value.provider == "anthropic"
    assert message in info.value.message and kind in info.value.message
    assert info.value.body == error_json(kind, message)


async def test_overloaded_529_is_retryable(fake: FakeServer) -> None:
    fake.on("POST", PATH, Reply(status=529, json=error_json("overloaded_error", "Overloaded")))
    with pytest.raises(errors.Overloaded) as info:
        await make(fake).chat(ask())
    assert info.value.retryable


async def test_rate_limit_retry_after_headers(fake: FakeServer) -> None:
    limited = error_json("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
    fake.on(
        "POST",
        PATH,
        Reply(status=429, json=limited, headers={"retry-after": "7"}),
        Reply(status=429, json=limited, headers={"retry-after": "7", "retry-after-ms": "1500"}),
    )
    provider = make(fake)
    with pytest.raises(errors.RateLimited) as info:
        await provider.chat(ask())
    assert (info.value.retry_after, info.value.retryable) == (7.0, True)
    with pytest.raises(errors.RateLimited) as info:
        await provider.chat(ask())
    assert info.value.retry_after == 1.5


async def test_x_should_retry_overrides(fake: FakeServer) -> None:
    fake.on("POST", PATH, Reply(status=500, json=error_json("api_error"), headers={"x-should-retry": "false"}))
    with pytest.raises(errors.ProviderError) as info:
        await make(fake).chat(ask())
    assert not info.value.retryable


async def test_error_status_on_a_stream_request(fake: FakeServer) -> None:
    fake.on("POST", PATH, Reply(status=529, json=error_json("overloaded_error", "Overloaded")))
    with pytest.raises(errors.Overloaded):
        await collect(make(fake), ask())


async def test_in_stream_overloaded_error_before_any_text(fake: FakeServer) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake.on("POST", PATH, Reply(chunks=[sse(START, error)]))
    with pytest.raises(errors.Overloaded) as info:
        await collect(make(fake), ask())
    assert info.value.retryable and info.value.status_code == 529 and info.value.provider == "anthropic"


@pytest.mark.parametrize(
    ("kind", "cls"), [("overloaded_error", errors.Overloaded), ("rate_limit_error", errors.RateLimited)]
)
async def test_in_stream_error_after_text_is_interrupted(
    fake: FakeServer, kind: str, cls: type[errors.LLMError]
) -> None:
    error = {"type": "error", "error": {"type": kind, "message": "try later"}}
    fake.on("POST", PATH, Reply(chunks=[sse(START, TEXT_START, text_delta("Hel"), text_delta("lo")), sse(error)]))
    seen: list[str] = []
    with pytest.raises(errors.StreamInterrupted) as info:
        async for event in make(fake).stream(ask()):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert seen == ["Hel", "lo"]
    assert kind in info.value.message and not info.value.retryable
    assert type(info.value.__context__) is cls
    assert info.value.partial is not None and info.value.partial.content == "Hello"
    assert info.value.partial.finish_reason == "error"


async def test_stream_without_message_stop_is_an_error(fake: FakeServer) -> None:
    body = load_sse("anthropic-stream-basic-text-ping.sse")
    fake.on("POST", PATH, Reply(chunks=[body[: body.index(b"event: message_stop")]]))
    with pytest.raises(errors.StreamInterrupted, match="message_stop") as info:
        await collect(make(fake), ask())
    assert info.value.partial is not None and info.value.partial.content == "Hello there!"


async def test_stream_ending_before_any_content_is_a_provider_error(fake: FakeServer) -> None:
    fake.on("POST", PATH, Reply(chunks=[sse(START)]))
    with pytest.raises(errors.ProviderError, match="message_stop") as info:
        await collect(make(fake), ask())
    assert info.value.retryable


@pytest.mark.parametrize(("cut_after", "cls"), [(1, errors.ConnectionError), (7, errors.StreamInterrupted)])
async def test_stream_connection_cut(fake: FakeServer, cut_after: int, cls: type[errors.LLMError]) -> None:
    chunks = split_every(load_sse("anthropic-stream-basic-text-ping.sse"), 80)  # 13 chunks; "Hello" is complete after 7
    fake.on("POST", PATH, Reply(chunks=chunks, cut_after=cut_after))
    with pytest.raises(errors.LLMError) as info:
        await collect(make(fake), ask())
    assert type(info.value) is cls


async def test_html_error_page(fake: FakeServer) -> None:
    page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    fake.on("POST", PATH, Reply(status=502, body=page, content_type="text/html"))
    with pytest.raises(errors.ProviderError, match="HTML") as info:
        await make(fake).chat(ask())
    assert info.value.status_code == 502 and "502 Bad Gateway" in info.value.message


async def test_error_body_in_a_200_answer(fake: FakeServer) -> None:
    fake.on("POST", PATH, Reply(json=error_json("overloaded_error", "Overloaded")))
    with pytest.raises(errors.Overloaded):
        await make(fake).chat(ask())


async def test_api_key_never_in_error_text(fake: FakeServer) -> None:
    echo = error_json("authentication_error", f"invalid x-api-key: {KEY}")
    fake.on("POST", PATH, Reply(status=401, json=echo))
    with pytest.raises(errors.AuthenticationError) as info:
        await make(fake).chat(ask())
    for text in (str(info.value), repr(info.value), info.value.message):
        assert KEY not in text
    fake.on("POST", PATH, Reply(status=502, body=f"upstream said key={KEY}", content_type="text/plain"))
    with pytest.raises(errors.ProviderError) as info2:
        await make(fake).chat(ask())
    assert KEY not in str(info2.value) and KEY not in repr(info2.value)


# --------------------------------------------------------------------------- inbound (gateway) requests


def test_messages_from_wire_reads_an_anthropic_request() -> None:
    wire = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                {"type": "text", "text": "And tomorrow?"},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            ],
        },
    ]
    system = [{"type": "text", "text": "Be brief."}]
    got = codec.messages_from_wire(wire, system)
    assert [m.role for m in got] == ["system", "user", "assistant", "tool", "user"]
    assert got[0].content == "Be brief." and got[1].content == "Weather in Paris?"
    assert (got[2].content, got[2].reasoning, got[2].reasoning_signature) == ("Checking.", "hmm", "s")
    assert got[2].tool_calls[0].arguments == {"location": "Paris"}
    assert (got[3].tool_call_id, got[3].content) == ("toolu_1", "18C")
    assert got[4].content == [TextPart("And tomorrow?"), ImagePart(url="https://x/y.png")]


def test_messages_from_wire_rejects_unknown_blocks() -> None:
    with pytest.raises(errors.InvalidRequest, match="document"):
        codec.messages_from_wire([{"role": "user", "content": [{"type": "document", "source": {}}]}])
