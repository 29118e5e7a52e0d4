"""The Cohere v2 wire format over real HTTP against recorded answers and faults."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeserver import FakeServer, Reply, split_every
from llmrelay import errors
from llmrelay._assemble import StreamAssembler
from llmrelay._secret import Secret
from llmrelay._sse import SSEDecoder, encode_sse
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.cohere import codec
from llmrelay.providers.cohere.provider import CohereProvider
from llmrelay.providers.cohere.stream import ChatStreamDecoder
from llmrelay.types import (
    ChatRequest,
    ChatResponse,
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
)
from recordings import load_cassette, load_chunks_as_sse
from streams import collect, final

# Cohere keys are 40 plain alphanumerics: no prefix the generic redaction pattern knows.
KEY = "Zq8Xw3Lr7Tn2Vb5Km9Pd4Hs6Jf1Gc0YuEaRoNiWe"
NONSTREAM = "cohere-v2-chat-nonstream.cassette.yaml"
STREAM = "cohere-v2-chat-stream-tool-call.chunks.jsonl"


def provider(fake: FakeServer, **kw: Any) -> CohereProvider:
    return CohereProvider(ProviderConfig(name="cohere", kind="cohere", base_url=fake.url, api_key=Secret(KEY), **kw))


def ask(text: str = "hello", **kw: Any) -> ChatRequest:
    return ChatRequest(model="command-r7b-12-2024", messages=[Message("user", text)], **kw)


def stream_body(*events: dict[str, Any]) -> bytes:
    return b"".join(encode_sse(json.dumps(e, ensure_ascii=False), e["type"]) for e in events)


def run_decoder(pieces: list[bytes]) -> ChatResponse:
    """Bytes as they arrive -> SSE -> Cohere decoder -> assembled response (no HTTP)."""
    assembler = StreamAssembler("cohere", "command-a")
    decoder = ChatStreamDecoder(assembler, "cohere")
    sse = SSEDecoder()
    for piece in [*pieces, None]:
        for frame in sse.feed(piece) if piece is not None else sse.flush():
            for event in decoder.feed(frame):
                assembler.add(event)
    decoder.close()
    return assembler.response()


# ---------------------------------------------------------------- recorded traffic


async def test_nonstream_cassette_replay_and_wire_request(fake: FakeServer) -> None:
    (rec,) = load_cassette(NONSTREAM)
    fake.on("POST", "/v2/chat", Reply(json=rec.response_json))
    r = await provider(fake).chat(ask("hello"))
    assert r.content == "Hello! How can I assist you today?"
    assert (r.finish_reason, r.native_finish_reason) == ("stop", "COMPLETE")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (496, 11)
    assert r.raw["usage"]["billed_units"] == {"input_tokens": 1, "output_tokens": 9}
    assert r.id == "f17a5f6c-1734-4098-bd0d-733ef000ac7b" and r.model == "command-r7b-12-2024"
    assert r.cost_usd is not None and r.cost_usd > 0 and r.tool_calls == [] and r.extra == {}
    sent = fake.requests[-1]
    assert sent.json == rec.request_json  # the same body the official SDK sent
    assert sent.path == "/v2/chat" and rec.uri.endswith(sent.path)
    assert sent.headers["Authorization"] == f"Bearer {KEY}"


async def test_stream_tool_calls_fixture(fake: FakeServer) -> None:
    raw = load_chunks_as_sse(STREAM, with_event_names=True)
    fake.on("POST", "/v2/chat", Reply(chunks=split_every(raw, 113)))
    events = await collect(provider(fake), ask("weather and attractions in SF?"))
    r = final(events)
    assert r.content == "" and not any(isinstance(e, TextDelta | ReasoningDelta) for e in events)
    assert r.extra["tool_plan"].startswith("I will use the weather tool")
    assert r.extra["tool_plan"].endswith("cityAttractions tool to find attractions in San Francisco.")
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("weather_e8p4pn45zt0t", "weather", {"location": "San Francisco"}),
        ("cityAttractions_pyxssbwnq9fq", "cityAttractions", {"city": "San Francisco"}),
    ]
    assert (r.finish_reason, r.native_finish_reason) == ("tool_calls", "TOOL_CALL")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.cached_tokens) == (1549, 95, 1504)
    assert r.id == "2941521a-b87a-45f6-9b0d-235fd66c3025"
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert {d.index for d in deltas} == {0, 1} and len(deltas) == 16  # fragments as they came
    sent = fake.requests[-1]
    assert sent.json["stream"] is True and sent.headers["Accept"] == "text/event-stream"


async def test_tool_turn_round_trip_sends_plan_and_calls_back(fake: FakeServer) -> None:
    raw = load_chunks_as_sse(STREAM, with_event_names=True)
    (rec,) = load_cassette(NONSTREAM)
    fake.on("POST", "/v2/chat", Reply(chunks=[raw]), Reply(json=rec.response_json))
    p = provider(fake)
    req = ask("weather and attractions in SF?", tools=[ToolSpec("weather"), ToolSpec("cityAttractions")])
    first = final(await collect(p, req))
    req.messages.append(first.message)
    req.messages += [Message("tool", '{"sky": "clear"}', tool_call_id=c.id) for c in first.tool_calls]
    await p.chat(req)
    assistant, *results = fake.requests[-1].json["messages"][1:]
    assert assistant["tool_plan"] == first.extra["tool_plan"] and "content" not in assistant
    assert [c["function"] for c in assistant["tool_calls"]] == [
        {"name": "weather", "arguments": '{"location": "San Francisco"}'},
        {"name": "cityAttractions", "arguments": '{"city": "San Francisco"}'},
    ]
    assert [r["tool_call_id"] for r in results] == ["weather_e8p4pn45zt0t", "cityAttractions_pyxssbwnq9fq"]


def test_stream_fixture_split_at_every_byte_boundary() -> None:
    raw = load_chunks_as_sse(STREAM, with_event_names=True)
    whole = run_decoder([raw])
    for cut in range(1, len(raw)):
        r = run_decoder([raw[:cut], raw[cut:]])
        assert r.tool_calls == whole.tool_calls and r.extra == whole.extra and r.usage == whole.usage, cut
    assert run_decoder(split_every(raw, 1)).tool_calls == whole.tool_calls


def test_stream_events_without_event_lines() -> None:
    """``type`` in the data decides, so a proxy that drops ``event:`` lines is harmless."""
    raw = load_chunks_as_sse(STREAM, with_event_names=False)
    assert [c.name for c in run_decoder([raw]).tool_calls] == ["weather", "cityAttractions"]


async def test_stream_text_thinking_and_citations(fake: FakeServer) -> None:
    body = stream_body(
        {"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": "Hmm, "}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": "Paris."}}}},
        {"type": "content-end", "index": 0},
        {"type": "content-start", "index": 1, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        {"type": "content-delta", "index": 1, "delta": {"message": {"content": {"text": "Paris é "}}}},
        {"type": "content-delta", "index": 1, "delta": {"message": {"content": {"text": "🌍"}}}},
        {"type": "citation-start", "index": 0, "delta": {"message": {"citations": {"start": 0, "end": 5}}}},
        {"type": "citation-end", "index": 0},
        {"type": "content-end", "index": 1},
        {"type": "debug", "prompt": "ignored"},
        {"type": "message-end", "delta": {"finish_reason": "MAX_TOKENS", "usage": {"tokens": {"output_tokens": 7}}}},
    )
    events = await collect(provider(fake.on("POST", "/v2/chat", Reply(chunks=split_every(body, 5)))), ask())
    r = final(events)
    assert (r.content, r.reasoning, r.finish_reason) == ("Paris é 🌍", "Hmm, Paris.", "length")
    assert r.usage.completion_tokens == 7 and r.id == "m1"
    assert r.extra["citations"] == [{"start": 0, "end": 5}]


async def test_nonstream_tool_calls_plan_and_thinking(fake: FakeServer) -> None:
    answer = {
        "id": "c1",
        "finish_reason": "TOOL_CALL",
        "message": {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "Need weather."}],
            "tool_plan": "I will look up the weather.",
            "tool_calls": [
                {"id": "w_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
            ],
        },
        "usage": {"tokens": {"input_tokens": 20, "output_tokens": 9}, "cached_tokens": 4},
    }
    fake.on("POST", "/v2/chat", Reply(json=answer))
    r = await provider(fake).chat(ask())
    assert r.content == "" and r.reasoning == "Need weather." and r.finish_reason == "tool_calls"
    assert r.extra["tool_plan"] == "I will look up the weather."
    assert r.tool_calls == [ToolCall("w_1", "weather", {"city": "Oslo"}, '{"city": "Oslo"}')]
    assert (r.usage.prompt_tokens, r.usage.cached_tokens) == (20, 4)


# ---------------------------------------------------------------- canonical -> wire


async def test_wire_request_full_conversation(fake: FakeServer) -> None:
    fake.on("POST", "/v2/chat", Reply(json={"id": "x", "finish_reason": "COMPLETE", "message": {"content": []}}))
    call = ToolCall("w_1", "weather", {"city": "Oslo"})
    messages = [
        Message("system", "Be brief"),
        Message("user", [TextPart("What is this?"), ImagePart(data="aGVsbG8=", media_type="image/png", detail="low")]),
        Message("assistant", tool_calls=[call], extra={"tool_plan": "Check the weather."}),
        Message("tool", '{"temp": 3}', tool_call_id="w_1"),
        Message("tool", "sunny", tool_call_id="w_1"),
        Message("assistant", "It is 3 degrees."),
    ]
    tools = [ToolSpec("weather", "Weather by city", {"type": "object", "properties": {"city": {"type": "string"}}})]
    req = ChatRequest(
        "command-a-03-2025",
        messages,
        tools=tools,
        tool_choice="required",
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["\n\n"],
        seed=7,
        user="ignored",
        extra={"k": 40, "temperature": 0.5},
    )
    await provider(fake).chat(req)
    sent = fake.requests[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8=", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "w_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
            ],
            "tool_plan": "Check the weather.",
        },
        {"role": "tool", "tool_call_id": "w_1", "content": [{"type": "document", "document": {"data": '{"temp": 3}'}}]},
        {"role": "tool", "tool_call_id": "w_1", "content": "sunny"},
        {"role": "assistant", "content": "It is 3 degrees."},
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Weather by city", "parameters": tools[0].parameters},
        }
    ]
    assert sent["tool_choice"] == "REQUIRED" and sent["stream"] is False and "user" not in sent
    assert (sent["p"], sent["max_tokens"], sent["stop_sequences"], sent["seed"], sent["k"]) == (
        0.9,
        50,
        ["\n\n"],
        7,
        40,
    )
    assert sent["temperature"] == 0.2 and sent["k"] == 40  # request.extra adds fields, never replaces the typed ones


@pytest.mark.parametrize(("choice", "wire"), [(None, None), ("auto", None), ("required", "REQUIRED"), ("none", "NONE")])
def test_tool_choice_values(choice: str | None, wire: str | None) -> None:
    body = codec.encode_chat(ask(tools=[ToolSpec("f")], tool_choice=choice), stream=False)
    assert body.get("tool_choice") == wire


async def test_named_tool_choice_is_refused_before_sending(fake: FakeServer) -> None:
    p = provider(fake)
    with pytest.raises(errors.InvalidRequest) as exc:
        await p.chat(ask(tools=[ToolSpec("f")], tool_choice={"name": "f"}))
    assert exc.value.provider == "cohere" and "named tool" in str(exc.value)
    with pytest.raises(errors.InvalidRequest):
        await collect(p, ask(tools=[ToolSpec("f")], tool_choice={"type": "function", "function": {"name": "f"}}))
    assert fake.requests == []


async def test_structured_output_formats(fake: FakeServer) -> None:
    from pydantic import BaseModel

    from llmrelay.structured import to_response_format

    class City(BaseModel):
        name: str

    answer = {
        "id": "s",
        "finish_reason": "COMPLETE",
        "message": {"content": [{"type": "text", "text": '{"name": "Oslo"}'}]},
    }
    fake.on("POST", "/v2/chat", Reply(json=answer))
    p = provider(fake)
    r = await p.chat(ask(response_format=to_response_format(City)))
    assert r.parsed == City(name="Oslo")
    fmt = fake.requests[-1].json["response_format"]
    assert fmt["type"] == "json_object" and fmt["json_schema"]["properties"] == {
        "name": {"title": "Name", "type": "string"}
    }
    await p.chat(ask(response_format=ResponseFormat("json_object")))
    assert fake.requests[-1].json["response_format"] == {"type": "json_object"}
    await p.chat(ask(response_format=ResponseFormat("text")))
    assert "response_format" not in fake.requests[-1].json


async def test_base_url_variants_and_extra_headers() -> None:
    for base in ("https://proxy.example/cohere", "https://proxy.example/cohere/v2/", "https://proxy.example/cohere/v1"):
        p = CohereProvider(ProviderConfig("c", "cohere", base_url=base, headers={"X-Client-Name": "app"}))
        wire = p.chat_request(ask(), False)
        assert wire.url == "https://proxy.example/cohere/v2/chat" and wire.headers["X-Client-Name"] == "app"
        assert "authorization" not in wire.headers  # no key configured: none sent
    default = CohereProvider(ProviderConfig("c", "cohere", api_key=Secret(KEY)))
    assert default.embed_request(EmbeddingRequest("embed-v4.0", ["a"])).url == "https://api.cohere.com/v2/embed"
    assert default.models_request().url == "https://api.cohere.com/v1/models?page_size=1000"
    assert default.kind == default.price_provider == "cohere"


def test_finish_reason_table() -> None:
    table = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls",
             "ERROR": "error", "TIMEOUT": "error", "CONTENT_BLOCKED": "content_filter", "complete": "stop"}  # fmt: skip
    for native, reason in table.items():
        assert codec.finish_reason(native, tool_calls=False) == reason
    assert codec.finish_reason("SOMETHING_NEW", tool_calls=True) == "tool_calls"
    assert codec.finish_reason(None, tool_calls=False) == "stop"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "retryable", "retry_after"),
    [
        (400, {"message": "invalid request: temperature must be between 0 and 1.0 inclusive."}, {},
         errors.InvalidRequest, False, None),
        (400, {"id": "e1", "message": "too many tokens: total number of tokens in the prompt cannot exceed 4081"}, {},
         errors.ContextWindowExceeded, False, None),
        (401, {"message": "invalid api token"}, {}, errors.AuthenticationError, False, None),
        (402, {"message": "please add a payment method"}, {}, errors.RateLimited, False, None),
        (403, {"message": "forbidden"}, {}, errors.PermissionDenied, False, None),
        (404, {"message": "model 'nope' not found"}, {}, errors.NotFound, False, None),
        (422, {"message": "unprocessable"}, {}, errors.InvalidRequest, False, None),
        (429, {"message": "too many requests"}, {"retry-after": "3"}, errors.RateLimited, True, 3.0),
        (429, {"message": "You are using a Trial key, which is limited to 1000 API calls / month."}, {},
         errors.RateLimited, False, None),
        (498, {"message": "invalid token"}, {}, errors.AuthenticationError, False, None),
        (499, {"message": "request cancelled"}, {}, errors.ProviderError, True, None),
        (500, {"message": "internal error"}, {"x-should-retry": "false"}, errors.ProviderError, False, None),
        (501, {"message": "not implemented"}, {}, errors.InvalidRequest, False, None),
        (503, {"message": "service unavailable"}, {"retry-after-ms": "1500"}, errors.Overloaded, True, 1.5),
        (504, {"message": "gateway timeout"}, {}, errors.Timeout, True, None),
    ],
)  # fmt: skip
async def test_http_errors_map_to_classes(
    fake: FakeServer,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    cls: type[errors.LLMError],
    retryable: bool,
    retry_after: float | None,
) -> None:
    fake.on("POST", "/v2/chat", Reply(status=status, json=body, headers=headers))
    with pytest.raises(errors.LLMError) as exc:
        await provider(fake).chat(ask())
    assert type(exc.value) is cls and exc.value.message == body["message"]
    assert exc.value.retryable is retryable and exc.value.retry_after == retry_after
    assert exc.value.provider == "cohere" and exc.value.status_code == status and exc.value.body == body


async def test_non_json_error_bodies(fake: FakeServer) -> None:
    html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    fake.on(
        "POST",
        "/v2/chat",
        Reply(status=502, body=html, content_type="text/html"),
        Reply(status=503, body=""),
        Reply(status=200, body="{truncated"),
    )
    p = provider(fake)
    with pytest.raises(errors.ProviderError) as exc:
        await p.chat(ask())
    assert "HTML page" in str(exc.value) and "502 Bad Gateway" in str(exc.value) and exc.value.retryable
    with pytest.raises(errors.Overloaded) as empty:
        await p.chat(ask())
    assert "empty body" in str(empty.value)
    with pytest.raises(errors.ProviderError, match="expected JSON"):
        await p.chat(ask())


async def test_error_before_stream_starts(fake: FakeServer) -> None:
    fake.on("POST", "/v2/chat", Reply(status=429, json={"message": "slow down"}, headers={"retry-after": "1"}))
    with pytest.raises(errors.RateLimited) as exc:
        await collect(provider(fake), ask())
    assert exc.value.retry_after == 1.0 and exc.value.retryable


async def test_api_key_never_leaks(fake: FakeServer) -> None:
    fake.on(
        "POST",
        "/v2/chat",
        Reply(status=401, json={"message": f"invalid api token: {KEY}"}),
        Reply(status=400, body=f"bad key {KEY}", content_type="text/plain"),
    )
    p = provider(fake)
    for _ in range(2):
        with pytest.raises(errors.LLMError) as exc:
            await p.chat(ask())
        assert KEY not in str(exc.value) and KEY not in repr(exc.value) and KEY not in str(exc.value.body)
    assert KEY not in repr(p) and KEY not in repr(p.config) and KEY not in str(p.config.api_key)
    check = await p.test_connection()  # no /v1/models route: a 404 from the fake
    assert not check.ok and KEY not in check.detail


# ---------------------------------------------------------------- broken streams


async def test_stream_cut_before_message_end(fake: FakeServer) -> None:
    raw = load_chunks_as_sse(STREAM, with_event_names=True)
    text = stream_body(
        {"type": "message-start", "id": "m"},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hel"}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "lo"}}}},
    )
    no_end = raw[: raw.index(b"event: message-end")]
    fake.on(
        "POST",
        "/v2/chat",
        Reply(chunks=[raw[:60]], cut_after=1),  # cut before any event: nothing given, retryable as is
        Reply(chunks=[text, b'event: content-delta\ndata: {"ty'], cut_after=1),  # connection dropped after text
        Reply(chunks=[text]),  # a clean end of body, but no message-end
        Reply(chunks=[no_end]),  # tool calls complete, message-end missing
    )
    p = provider(fake)
    with pytest.raises(errors.LLMError) as first:
        await collect(p, ask())
    assert first.value.retryable and getattr(first.value, "partial", None) is None
    for _ in range(2):
        with pytest.raises(errors.StreamInterrupted) as cut:
            await collect(p, ask())
        assert cut.value.partial is not None and cut.value.partial.content == "Hello"
        assert cut.value.partial.finish_reason == "error" and not cut.value.retryable
    with pytest.raises(errors.StreamInterrupted) as tools:
        await collect(p, ask())
    assert tools.value.partial is not None and len(tools.value.partial.tool_calls) == 2


def test_non_json_stream_event_is_an_error() -> None:
    with pytest.raises(errors.ProviderError, match="non-JSON"):
        run_decoder([b"event: content-delta\ndata: {oops\n\n"])


# ---------------------------------------------------------------- property: tool arguments

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def tool_stream(fragments: list[str]) -> bytes:
    return stream_body(
        {"type": "message-start", "id": "m"},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "Calling é🌍"}}},
        {"type": "tool-call-start", "index": 0,
         "delta": {"message": {"tool_calls": {"id": "f_1", "type": "function",
                                              "function": {"name": "f", "arguments": ""}}}}},
        *({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": f}}}}}
          for f in fragments),
        {"type": "tool-call-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {"tokens": {"output_tokens": 9}}}},
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    st.lists(st.integers(min_value=0), max_size=8),
    st.lists(st.integers(min_value=0), max_size=12),
)
def test_tool_arguments_reassemble_across_any_split(
    args: dict[str, Any], text_cuts: list[int], byte_cuts: list[int]
) -> None:
    text = json.dumps(args, ensure_ascii=False)
    bounds = [0, *sorted({c % (len(text) + 1) for c in text_cuts}), len(text)]
    fragments = [text[a:b] for a, b in itertools.pairwise(bounds)]
    raw = tool_stream(fragments)
    byte_bounds = [0, *sorted({c % (len(raw) + 1) for c in byte_cuts}), len(raw)]
    r = run_decoder([raw[a:b] for a, b in itertools.pairwise(byte_bounds)])
    [call] = r.tool_calls
    assert (call.id, call.name, call.arguments, call.raw_arguments) == ("f_1", "f", args, text)
    assert r.content == "" and r.extra["tool_plan"] == "Calling é🌍" and r.finish_reason == "tool_calls"


# ---------------------------------------------------------------- embeddings and models


async def test_embeddings(fake: FakeServer) -> None:
    answer = {
        "id": "e",
        "embeddings": {"float": [[0.1, 0.2], [0.3, 0.4]]},
        "texts": ["a", "b"],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
        "response_type": "embeddings_by_type",
    }
    fake.on("POST", "/v2/embed", Reply(json=answer))
    p = provider(fake)
    r = await p.embed(EmbeddingRequest("embed-v4.0", ["a", "b"], dimensions=256))
    assert r.vectors == [[0.1, 0.2], [0.3, 0.4]] and r.usage.prompt_tokens == 2 and r.provider == "cohere"
    assert r.cost_usd is not None and "embeddings" not in r.raw and r.raw["meta"]["billed_units"]["input_tokens"] == 2
    assert fake.requests[-1].json == {
        "model": "embed-v4.0",
        "texts": ["a", "b"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 256,
    }
    await p.embed(EmbeddingRequest("embed-v4.0", ["a", "b"], extra={"input_type": "search_query"}))
    assert fake.requests[-1].json["input_type"] == "search_query" and "output_dimension" not in fake.requests[-1].json


async def test_embeddings_other_types_and_bad_answers(fake: FakeServer) -> None:
    fake.on(
        "POST",
        "/v2/embed",
        Reply(json={"embeddings": {"int8": [[1, -2]]}, "meta": {}}),
        Reply(json={"embeddings": {"float": [[0.1]]}}),  # one vector for two texts
        Reply(json={"embeddings": {"base64": ["AAAA"]}}),
    )
    p = provider(fake)
    r = await p.embed(EmbeddingRequest("embed-v4.0", ["a"], extra={"embedding_types": ["int8"]}))
    assert r.vectors == [[1.0, -2.0]] and r.usage.prompt_tokens == 0
    with pytest.raises(errors.ProviderError, match="asked for 2 embeddings, got 1"):
        await p.embed(EmbeddingRequest("embed-v4.0", ["a", "b"]))
    with pytest.raises(errors.ProviderError, match="no float or integer vectors"):
        await p.embed(EmbeddingRequest("embed-v4.0", ["a"]))


async def test_models_and_test_connection(fake: FakeServer) -> None:
    models = {
        "models": [
            {"name": "command-a-03-2025", "endpoints": ["chat"], "context_length": 256000,
             "features": ["tools", "strict_tools", "json_mode", "json_schema"]},
            {"name": "command-a-vision-07-2025", "endpoints": ["chat"], "context_length": 128000,
             "features": ["vision", "json_mode"]},
            {"name": "embed-v4.0", "endpoints": ["embed"], "context_length": 128000},
        ],
        "next_page_token": "",
    }  # fmt: skip
    fake.on("GET", "/v1/models", Reply(json=models))
    p = provider(fake)
    found = await p.models()
    assert [(m.id, m.context_window, m.supports_tools, m.supports_structured_output) for m in found] == [
        ("command-a-03-2025", 256000, True, True),
        ("command-a-vision-07-2025", 128000, False, True),
        ("embed-v4.0", 128000, None, None),  # no features listed: unknown, not False
    ]
    assert found[1].supports_vision and not found[0].supports_vision and found[2].raw["endpoints"] == ["embed"]
    assert fake.requests[-1].query == {"page_size": "1000"}
    check = await p.test_connection()
    assert check.ok and "3 models" in check.detail
    fake.on("GET", "/v1/models", Reply(status=401, json={"message": "invalid api token"}))
    check = await p.test_connection()
    assert not check.ok and check.detail.startswith("authentication failed")


async def test_unexpected_success_shapes(fake: FakeServer) -> None:
    fake.on("POST", "/v2/chat", Reply(json={"id": "x"}))
    fake.on("GET", "/v1/models", Reply(json={"data": []}))
    p = provider(fake)
    with pytest.raises(errors.ProviderError, match="no message object"):
        await p.chat(ask())
    with pytest.raises(errors.ProviderError, match="no models list"):
        await p.models()
