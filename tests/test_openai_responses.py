"""The OpenAI Responses wire format over real HTTP against recorded answers and faults."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fakeserver import FakeServer, Reply, split_every
from llmrelay import errors
from llmrelay._secret import Secret
from llmrelay._sse import encode_sse
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.openai_responses.provider import OpenAIResponsesProvider
from llmrelay.types import (
    ChatRequest,
    EmbeddingRequest,
    Finish,
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
)
from recordings import load_cassette, load_chunks_as_sse
from streams import collect

KEY = "sk-test-SECRETKEY1234567890"
PATH = "/v1/responses"


def provider(fake: FakeServer) -> OpenAIResponsesProvider:
    base = fake.url + "/v1"
    config = ProviderConfig(name="openai-responses", kind="openai-responses", base_url=base, api_key=Secret(KEY))
    return OpenAIResponsesProvider(config)


def ask(text: str = "Hi", **kw: Any) -> ChatRequest:
    return ChatRequest(model="gpt-4o-mini", messages=[Message("user", text)], **kw)


def finished(events: list[StreamEvent]) -> Any:
    last = events[-1]
    assert isinstance(last, Finish)
    return last.response


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(encode_sse(json.dumps(e), e["type"]) for e in events)


def response(output: list[dict[str, Any]], status: str = "completed", **kw: Any) -> dict[str, Any]:
    usage = {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 8},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 32,
    }
    body: dict[str, Any] = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": "gpt-4o-mini-2024-07-18",
        "output": output,
        "usage": usage,
    }
    body.update(kw)
    return body


def message(text: str | None = None, refusal: str | None = None) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if text is not None else []
    if refusal is not None:
        content.append({"type": "refusal", "refusal": refusal})
    return {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": content}


def started(rid: str = "resp_s") -> list[dict[str, Any]]:
    body: dict[str, Any] = {
        "id": rid,
        "status": "in_progress",
        "model": "gpt-4o-2024-08-06",
        "output": [],
        "usage": None,
    }
    return [{"type": "response.created", "response": body}, {"type": "response.in_progress", "response": body}]


def text_deltas(*pieces: str) -> list[dict[str, Any]]:
    return [
        {"type": "response.output_text.delta", "item_id": "msg_s", "output_index": 0, "content_index": 0, "delta": p}
        for p in pieces
    ]


def completed(status: str = "completed", **kw: Any) -> dict[str, Any]:
    return {"type": f"response.{status}", "response": response([], status=status, **kw)}


# ---------------------------------------------------------------- recorded traffic


async def test_stream_function_call_cassette_two_turns(fake: FakeServer) -> None:
    first, second = load_cassette("openai-responses-stream-function-call.cassette.yaml")
    fake.on("POST", PATH, Reply(chunks=[first.body]), Reply(chunks=[second.body]))
    p = provider(fake)
    recorded_tool = first.request_json["tools"][0]
    tools = [ToolSpec("get_capital", "", recorded_tool["parameters"], strict=True)]
    req = ChatRequest("gpt-4o", [Message("user", "What is the capital of France?")], tools=tools, tool_choice="auto")
    events = await collect(p, req)
    r1 = finished(events)
    (call,) = r1.tool_calls
    assert (call.name, call.arguments) == ("get_capital", {"country": "France"})
    assert call.id == "call_kL0PCQV7M2WMoVX8V8OtYSAL"
    assert call.extra == {"item_id": "fc_67e554a1de488191af0831d35cbe082e0794405d35281ae2"}
    assert r1.finish_reason == "tool_calls" and r1.native_finish_reason == "completed"
    assert (r1.usage.prompt_tokens, r1.usage.completion_tokens) == (255, 16)
    assert r1.id == "resp_67e554a155508191900ee113293c4c830794405d35281ae2" and r1.model == "gpt-4o-2024-08-06"
    assert len([e for e in events if isinstance(e, ToolCallDelta)]) == 6  # the added item + 5 fragments
    sent = fake.requests[-1]
    assert sent.path == PATH and sent.headers["Authorization"] == f"Bearer {KEY}"
    _assert_overlaps(sent.json, first.request_json)
    assert sent.json["input"][0] == {
        "role": "user",
        "content": [{"type": "input_text", "text": first.request_json["input"][0]["content"]}],
    }

    req.messages += [r1.message, Message("tool", "Paris", tool_call_id=call.id)]
    r2 = finished(await collect(p, req))
    assert r2.content == "The capital of France is Paris." and r2.finish_reason == "stop"
    assert (r2.usage.prompt_tokens, r2.usage.completion_tokens) == (278, 9)
    sent2 = fake.requests[-1].json
    _assert_overlaps(sent2, second.request_json)
    fn_call, fn_out = sent2["input"][1:]
    recorded_call, recorded_out = second.request_json["input"][1:]
    # the recording's client sent the item id as call_id; the spec (and we) use the model's call_id
    assert fn_call == {**recorded_call, "call_id": call.id}
    assert fn_out == {**recorded_out, "call_id": call.id}


def _assert_overlaps(sent: dict[str, Any], recorded: dict[str, Any]) -> None:
    for key in ("model", "stream", "tool_choice", "tools", "temperature"):
        assert sent.get(key) == recorded.get(key), key
    assert sent["store"] is False  # our default; the recordings stored
    assert "instructions" not in sent  # no system message (the recording sent "")
    assert [i.get("role") or i.get("type") for i in sent["input"]] == [
        i.get("role") or i.get("type") for i in recorded["input"]
    ]


async def test_stream_error_event_fixture_is_rate_limited_not_retryable(fake: FakeServer) -> None:
    raw = load_chunks_as_sse("openai-responses-stream-error-event.chunks.jsonl", with_event_names=True)
    fake.on("POST", PATH, Reply(chunks=split_every(raw, 200)))
    with pytest.raises(errors.RateLimited) as exc:
        await collect(provider(fake), ask())
    assert exc.value.retryable is False and "quota" in str(exc.value)
    assert exc.value.provider == "openai-responses" and not isinstance(exc.value, errors.StreamInterrupted)


async def test_recorded_400_names_the_parameter(fake: FakeServer) -> None:
    (bad,) = load_cassette("openai-responses-400-error.cassette.yaml")
    fake.on("POST", PATH, Reply(status=400, json=bad.response_json))
    p = provider(fake)
    req = ask(bad.request_json["input"][0]["content"], temperature=-1)
    for attempt in (p.chat(req), collect(p, req)):
        with pytest.raises(errors.InvalidRequest) as exc:
            await attempt
        assert "temperature" in str(exc.value) and exc.value.status_code == 400 and not exc.value.retryable
    assert fake.requests[-1].json["temperature"] == bad.request_json["temperature"]


# ---------------------------------------------------------------- non-stream answers


async def test_text_answer_and_wire_request(fake: FakeServer) -> None:
    reasoning = {
        "type": "reasoning",
        "id": "rs_1",
        "encrypted_content": "gAAAA-enc",
        "summary": [{"type": "summary_text", "text": "**Plan**"}, {"type": "summary_text", "text": "Greet."}],
    }
    fake.on("POST", PATH, Reply(json=response([reasoning, message("Hello!")], obfuscation="x")))
    req = ChatRequest(
        "gpt-4o-mini",
        [
            Message("system", "Be brief"),
            Message("system", "Be kind"),
            Message(
                "user",
                [
                    TextPart("What is this?"),
                    ImagePart(data="aGVsbG8=", media_type="image/png", detail="low"),
                    ImagePart(url="https://x.test/a.png"),
                ],
            ),
            Message("assistant", "A picture."),
            Message("user", "More"),
        ],
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        seed=7,
        user="u1",
        extra={"reasoning": {"effort": "low"}},
    )
    r = await provider(fake).chat(req)
    assert (r.content, r.finish_reason, r.id) == ("Hello!", "stop", "resp_1")
    assert r.reasoning == "**Plan**\n\nGreet." and r.extra == {"reasoning_encrypted_content": ["gAAAA-enc"]}
    u = r.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens) == (20, 12, 8, 4)
    assert r.raw["obfuscation"] == "x" and r.cost_usd is not None and r.cost_usd > 0
    sent = fake.requests[-1].json
    assert fake.requests[-1].path == PATH
    assert sent["instructions"] == "Be brief\n\nBe kind" and sent["store"] is False and "stream" not in sent
    assert (sent["max_output_tokens"], sent["temperature"], sent["top_p"], sent["user"]) == (50, 0.2, 0.9, "u1")
    assert sent["reasoning"] == {"effort": "low"} and "seed" not in sent
    assert sent["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,aGVsbG8=", "detail": "low"},
                {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "auto"},
            ],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "A picture."}]},
        {"role": "user", "content": [{"type": "input_text", "text": "More"}]},
    ]


async def test_function_call_answer_and_tool_wire(fake: FakeServer) -> None:
    item = {
        "type": "function_call",
        "id": "fc_9",
        "call_id": "call_9",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    }
    fake.on("POST", PATH, Reply(json=response([message("Let me check."), item])))
    tools = [ToolSpec("get_weather", "Weather now", {"type": "object", "properties": {"city": {"type": "string"}}})]
    r = await provider(fake).chat(ask(tools=tools, tool_choice={"name": "get_weather"}))
    assert r.finish_reason == "tool_calls" and r.content == "Let me check."
    assert r.tool_calls == [
        ToolCall("call_9", "get_weather", {"city": "Paris"}, '{"city":"Paris"}', {"item_id": "fc_9"})
    ]
    sent = fake.requests[-1].json
    assert sent["tools"] == [
        {"type": "function", "name": "get_weather", "description": "Weather now", "parameters": tools[0].parameters}
    ]
    assert sent["tool_choice"] == {"type": "function", "name": "get_weather"}
    # the answer, sent back: its text, then the call, then the result
    from llmrelay.providers.openai_responses.codec import message_items

    assert message_items(r.message) == [
        {"role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]},
        {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": '{"city":"Paris"}'},
    ]
    assert message_items(Message("tool", "18C", tool_call_id="call_9")) == [
        {"type": "function_call_output", "call_id": "call_9", "output": "18C"}
    ]


@pytest.mark.parametrize(
    ("body", "content", "finish", "refusal", "native"),
    [
        (response([message(refusal="I can't help with that.")]), "", "stop", "I can't help with that.", "completed"),
        (
            response([message("The answ")], status="incomplete", incomplete_details={"reason": "max_output_tokens"}),
            "The answ",
            "length",
            None,
            "max_output_tokens",
        ),
        (
            response([], status="incomplete", incomplete_details={"reason": "content_filter"}),
            "",
            "content_filter",
            None,
            "content_filter",
        ),
    ],
)
async def test_refusal_and_incomplete(
    fake: FakeServer, body: dict[str, Any], content: str, finish: str, refusal: str | None, native: str
) -> None:
    fake.on("POST", PATH, Reply(json=body))
    r = await provider(fake).chat(ask())
    assert (r.content, r.finish_reason, r.refusal, r.native_finish_reason) == (content, finish, refusal, native)


@pytest.mark.parametrize(
    ("error", "cls", "retryable"),
    [
        ({"code": "server_error", "message": "The model failed to generate a response."}, errors.ProviderError, True),
        ({"code": "rate_limit_exceeded", "message": "slow down"}, errors.RateLimited, True),
        ({"code": "invalid_image_url", "message": "cannot download"}, errors.InvalidRequest, False),
        ({"code": "bio_policy", "message": "blocked"}, errors.ContentFiltered, False),
    ],
)
async def test_failed_response_raises_mapped_error(
    fake: FakeServer, error: dict[str, str], cls: type[errors.LLMError], retryable: bool
) -> None:
    fake.on(
        "POST",
        PATH,
        Reply(json=response([], status="failed", error=error)),
        Reply(
            chunks=[
                sse(*started(), {"type": "response.failed", "response": response([], status="failed", error=error)})
            ]
        ),
    )
    p = provider(fake)
    with pytest.raises(cls) as exc:
        await p.chat(ask())
    assert exc.value.retryable is retryable and error["message"] in str(exc.value)
    with pytest.raises(cls):
        await collect(p, ask())


async def test_structured_output_json_schema_round(fake: FakeServer) -> None:
    from pydantic import BaseModel

    from llmrelay.structured import to_response_format

    class City(BaseModel):
        name: str
        population: int

    fmt = to_response_format(City)
    assert fmt is not None
    good = '{"name": "Paris", "population": 2100000}'
    fake.on(
        "POST",
        PATH,
        Reply(json=response([message(good)])),
        Reply(json=response([message('{"name": "Paris"}')])),
        Reply(chunks=[sse(*started(), *text_deltas(good[:10], good[10:]), completed())]),
        Reply(json=response([message('{"a": 1}')])),
    )
    p = provider(fake)
    r = await p.chat(ask(response_format=fmt))
    assert r.parsed == City(name="Paris", population=2100000)
    text = fake.requests[-1].json["text"]["format"]
    assert (text["type"], text["name"], text["strict"]) == ("json_schema", fmt.name, True)
    assert text["schema"]["additionalProperties"] is False and text["schema"]["required"] == ["name", "population"]
    with pytest.raises(errors.StructuredOutputError) as exc:
        await p.chat(ask(response_format=fmt))
    assert exc.value.raw_text == '{"name": "Paris"}'
    assert finished(await collect(p, ask(response_format=fmt))).parsed == City(name="Paris", population=2100000)
    r4 = await p.chat(ask(response_format=ResponseFormat("json_object")))
    assert r4.parsed == {"a": 1} and fake.requests[-1].json["text"] == {"format": {"type": "json_object"}}


# ---------------------------------------------------------------- streams


def rich_stream() -> bytes:
    """Reasoning summary (two parts), text with multi-byte characters, a refusal-free
    message, two function calls at output indexes 2 and 3, usage, incomplete."""
    fc = {"type": "function_call", "arguments": "", "status": "in_progress"}
    return sse(
        *started(),
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1"}},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0, "delta": "**Plan**"},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 1, "delta": "Look "},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 1, "delta": "up."},
        {"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "msg_s"}},
        *[{**d, "output_index": 1} for d in text_deltas("Grüße ", "🌍 — ", "ok")],
        {
            "type": "response.output_item.added",
            "output_index": 2,
            "item": {**fc, "id": "fc_a", "call_id": "c_a", "name": "f"},
        },
        {
            "type": "response.output_item.added",
            "output_index": 3,
            "item": {**fc, "id": "fc_b", "call_id": "c_b", "name": "g"},
        },
        {"type": "response.function_call_arguments.delta", "output_index": 3, "item_id": "fc_b", "delta": '{"y":'},
        {"type": "response.function_call_arguments.delta", "output_index": 2, "item_id": "fc_a", "delta": '{"x": 1}'},
        {"type": "response.function_call_arguments.delta", "output_index": 3, "item_id": "fc_b", "delta": " 2}"},
        {"type": "response.some_future_event", "output_index": 9, "delta": "ignored"},
        completed(
            usage={
                "input_tokens": 7,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 30,
                "output_tokens_details": {"reasoning_tokens": 11},
                "total_tokens": 37,
            }
        ),
    )


async def test_stream_reasoning_text_tools_and_split_stability(fake: FakeServer) -> None:
    raw = rich_stream()
    sizes = [1, 5, 64, len(raw)]
    fake.on("POST", PATH, *[Reply(chunks=split_every(raw, n)) for n in sizes])
    p = provider(fake)
    results = []
    for _ in sizes:
        events = await collect(p, ask())
        r = finished(events)
        results.append((r.content, r.reasoning, r.tool_calls, r.usage, r.finish_reason, r.id, r.model))
        assert [e.text for e in events if isinstance(e, TextDelta)] == ["Grüße ", "🌍 — ", "ok"]
        assert len([e for e in events if isinstance(e, ReasoningDelta)]) == 3
    assert all(result == results[0] for result in results)
    content, reasoning, calls, usage, finish, rid, model = results[0]
    assert content == "Grüße 🌍 — ok" and reasoning == "**Plan**\n\nLook up."
    assert [(c.id, c.name, c.arguments, c.extra) for c in calls] == [
        ("c_a", "f", {"x": 1}, {"item_id": "fc_a"}),
        ("c_b", "g", {"y": 2}, {"item_id": "fc_b"}),
    ]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens) == (7, 30, 11)
    assert (finish, rid, model) == ("tool_calls", "resp_1", "gpt-4o-mini-2024-07-18")
    assert fake.requests[-1].json["stream"] is True


async def test_stream_refusal_incomplete_and_items_without_deltas(fake: FakeServer) -> None:
    refusal = sse(
        *started(),
        {"type": "response.refusal.delta", "output_index": 0, "delta": "I can't "},
        {"type": "response.refusal.delta", "output_index": 0, "delta": "help."},
        completed("incomplete", incomplete_details={"reason": "max_output_tokens"}),
    )
    whole_items = sse(  # a compatible server that sends finished items only
        *started(),
        {"type": "response.output_item.done", "output_index": 0, "item": message("Hi there")},
        {
            "type": "response.output_item.done",
            "output_index": 1,
            "item": {"type": "function_call", "id": "fc_1", "call_id": "c_1", "name": "f", "arguments": '{"q": "x"}'},
        },
        {"type": "response.completed", "response": {"id": "resp_w", "status": "completed"}},
    )
    fake.on("POST", PATH, Reply(chunks=[refusal]), Reply(chunks=[whole_items]))
    p = provider(fake)
    r = finished(await collect(p, ask()))
    assert (r.refusal, r.content, r.finish_reason, r.native_finish_reason) == (
        "I can't help.",
        "",
        "length",
        "max_output_tokens",
    )
    r2 = finished(await collect(p, ask()))
    assert (r2.content, r2.id, r2.finish_reason) == ("Hi there", "resp_w", "tool_calls")
    assert [(c.id, c.arguments) for c in r2.tool_calls] == [("c_1", {"q": "x"})]


async def test_stream_faults(fake: FakeServer) -> None:
    hello = sse(*started(), *text_deltas("Hel", "lo"))
    overloaded = {"type": "error", "code": "server_error", "message": "The server is overloaded", "param": None}
    fake.on(
        "POST",
        PATH,
        Reply(chunks=[hello[:40]], cut_after=1),  # cut before any event: plain, retryable
        Reply(chunks=[hello, b'event: response.output_text.delta\ndata: {"ty'], cut_after=1),  # cut after text
        Reply(chunks=[hello]),  # ended cleanly but without response.completed
        Reply(chunks=[hello, sse(overloaded)]),
    )  # error event after text
    p = provider(fake)
    with pytest.raises(errors.LLMError) as first:
        await collect(p, ask())
    assert first.value.retryable and not isinstance(first.value, errors.StreamInterrupted)
    for _ in range(3):
        with pytest.raises(errors.StreamInterrupted) as cut:
            await collect(p, ask())
        assert cut.value.partial is not None and cut.value.partial.content == "Hello"
        assert not cut.value.retryable


async def test_stream_without_any_event_is_interrupted(fake: FakeServer) -> None:
    fake.on("POST", PATH, Reply(chunks=[sse(*started())]))
    with pytest.raises(errors.StreamInterrupted) as exc:
        await collect(provider(fake), ask())
    assert exc.value.retryable and "response.completed" in str(exc.value)


# ---------------------------------------------------------------- errors, secrets, reuse


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            401,
            {"error": {"message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}},
            errors.AuthenticationError,
        ),
        (
            429,
            {"error": {"message": "no credit", "type": "insufficient_quota", "code": "insufficient_quota"}},
            errors.RateLimited,
        ),
        (400, {"error": {"message": "too long", "code": "context_length_exceeded"}}, errors.ContextWindowExceeded),
    ],
)
async def test_http_errors_use_openai_mapping_and_hide_key(
    fake: FakeServer, status: int, body: dict[str, Any], cls: type[errors.LLMError]
) -> None:
    fake.on("POST", PATH, Reply(status=status, json=body))
    p = provider(fake)
    for attempt in (p.chat(ask()), collect(p, ask())):
        with pytest.raises(cls) as exc:
            await attempt
        assert not exc.value.retryable and exc.value.status_code == status
        assert KEY not in str(exc.value) and KEY not in repr(exc.value) and KEY not in repr(p)


async def test_in_stream_error_message_hides_key(fake: FakeServer) -> None:
    event = {"type": "error", "error": {"code": "invalid_api_key", "message": f"bad key {KEY}"}}
    fake.on("POST", PATH, Reply(chunks=[sse(*started(), event)]))
    with pytest.raises(errors.AuthenticationError) as exc:
        await collect(provider(fake), ask())
    assert KEY not in str(exc.value) and KEY not in repr(exc.value)


async def test_unsupported_and_invalid_requests_are_refused_before_sending(fake: FakeServer) -> None:
    p = provider(fake)
    with pytest.raises(errors.InvalidRequest, match="stop"):
        await p.chat(ask(stop=["\n"]))
    with pytest.raises(errors.InvalidRequest, match="tool_call_id"):
        await p.chat(ChatRequest("m", [Message("tool", "x")]))
    with pytest.raises(errors.InvalidRequest, match="tool_choice"):
        await p.chat(ask(tools=[ToolSpec("f")], tool_choice="any"))
    assert fake.count() == 0


async def test_openai_account_reuse_embeddings_and_models(fake: FakeServer) -> None:
    fake.on(
        "POST",
        "/v1/embeddings",
        Reply(json={"data": [{"index": 0, "embedding": [1.0, 0.0]}], "usage": {"prompt_tokens": 2}}),
    )
    fake.on("GET", "/v1/models", Reply(json={"data": [{"id": "gpt-4o-mini"}]}))
    p = provider(fake)
    assert p.kind == "openai-responses" and p.price_provider == "openai"
    assert p.quirks.api_key_env == "OPENAI_API_KEY" and p.quirks.base_url_env == "OPENAI_BASE_URL"
    default = OpenAIResponsesProvider(ProviderConfig("r", "openai-responses", api_key=Secret(KEY)))
    assert default.base_url == "https://api.openai.com/v1"
    r = await p.embed(EmbeddingRequest("text-embedding-3-small", ["hi"]))
    assert r.vectors == [[1.0, 0.0]] and fake.requests[-1].json["encoding_format"] == "base64"
    assert [m.id for m in await p.models()] == ["gpt-4o-mini"]
