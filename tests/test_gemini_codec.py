"""The Gemini codec as pure functions: canonical -> wire, wire -> canonical,
and property tests that the two directions agree (and that streaming agrees
with the whole answer)."""

from __future__ import annotations

import base64
import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import errors
from llmrelay._assemble import StreamAssembler
from llmrelay._json import dumps_str
from llmrelay._sse import SSEEvent
from llmrelay.providers.gemini import codec, partial
from llmrelay.providers.gemini.stream import ChatStreamDecoder
from llmrelay.types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolSpec,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nrest").decode()


def call(call_id: str, name: str, extra: dict[str, Any] | None = None, **args: Any) -> ToolCall:
    return ToolCall(call_id, name, arguments=args, extra=extra or {})


def body(*messages: Message, **kw: Any) -> dict[str, Any]:
    return codec.encode_chat(ChatRequest(model="m", messages=list(messages), **kw), stream=False)


# --------------------------------------------------------------------------- canonical -> wire


def test_system_roles_and_same_role_merging() -> None:
    wire = body(
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("user", [TextPart("there"), TextPart("")]),
        Message("assistant", "Hello"),
        Message("system", [TextPart("Late rule.")]),
        Message("assistant", "again"),
    )
    assert wire["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Late rule."}]}
    assert wire["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}, {"text": "there"}]},
        {"role": "model", "parts": [{"text": "Hello"}, {"text": "again"}]},
    ]


def test_tool_results_fold_into_one_user_turn_with_names() -> None:
    wire = body(
        Message("user", "Weather and time?"),
        Message("assistant", None, tool_calls=[call("a", "weather", city="Paris"), call("b", "clock")]),
        Message("tool", '{"temp": 21}', tool_call_id="a"),
        Message("tool", "12:00", tool_call_id="b"),
        Message("user", "Thanks"),
    )
    assert wire["contents"][1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "clock", "args": {}}},
        ],
    }
    assert wire["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "clock", "response": {"result": "12:00"}}},
            {"text": "Thanks"},
        ],
    }


def test_tool_result_name_comes_from_the_nearest_call_with_that_id() -> None:
    wire = body(
        Message("user", "go"),
        Message("assistant", None, tool_calls=[call("call_0", "first")]),
        Message("tool", "1", tool_call_id="call_0"),
        Message("assistant", None, tool_calls=[call("call_0", "second")]),
        Message("tool", "2", tool_call_id="call_0"),
    )
    assert wire["contents"][-1]["parts"][0]["functionResponse"]["name"] == "second"


def test_tool_result_without_a_call_uses_its_name_or_is_invalid() -> None:
    wire = body(Message("user", "go"), Message("tool", "[1, 2]", name="lookup", tool_call_id="x"))
    assert wire["contents"][0]["parts"][1] == {"functionResponse": {"name": "lookup", "response": {"result": "[1, 2]"}}}
    with pytest.raises(errors.InvalidRequest, match="'nope'"):
        body(Message("user", "go"), Message("tool", "1", tool_call_id="nope"))


def test_signatures_and_gemini_ids_are_sent_back() -> None:
    calls = [call("fc-1", "f", {"thought_signature": "c2ln", "gemini_call_id": "fc-1"}), call("call_1", "g")]
    wire = body(
        Message("user", "go"),
        Message("assistant", [TextPart("a"), TextPart("b")], tool_calls=calls, reasoning_signature="dGV4dA=="),
        Message("tool", "ok", tool_call_id="fc-1"),
        Message("tool", "ok", tool_call_id="call_1"),
    )
    assert wire["contents"][1]["parts"] == [
        {"text": "a"},
        {"text": "b", "thoughtSignature": "dGV4dA=="},
        {"functionCall": {"name": "f", "args": {}, "id": "fc-1"}, "thoughtSignature": "c2ln"},
        {"functionCall": {"name": "g", "args": {}}},
    ]
    results = [p["functionResponse"] for p in wire["contents"][2]["parts"]]
    assert results == [
        {"name": "f", "response": {"result": "ok"}, "id": "fc-1"},
        {"name": "g", "response": {"result": "ok"}},
    ]


def test_raw_arguments_are_used_when_arguments_are_empty() -> None:
    wire = body(
        Message("user", "go"),
        Message(
            "assistant",
            None,
            tool_calls=[ToolCall("1", "f", raw_arguments='{"x": 1}'), ToolCall("2", "g", raw_arguments="{cut")],
        ),
    )
    assert [p["functionCall"]["args"] for p in wire["contents"][1]["parts"]] == [{"x": 1}, {}]


@pytest.mark.parametrize(
    ("image", "wire"),
    [
        (ImagePart(data="AAAA", media_type="image/webp"), {"inlineData": {"mimeType": "image/webp", "data": "AAAA"}}),
        (ImagePart(data=PNG), {"inlineData": {"mimeType": "image/png", "data": PNG}}),
        (ImagePart(url=f"data:image/gif;base64,{PNG}"), {"inlineData": {"mimeType": "image/gif", "data": PNG}}),
        (
            ImagePart(url="https://x.test/cat.png?s=1"),
            {"fileData": {"fileUri": "https://x.test/cat.png?s=1", "mimeType": "image/png"}},
        ),
        (
            ImagePart(url="https://x.test/cat"),
            {"fileData": {"fileUri": "https://x.test/cat", "mimeType": "image/jpeg"}},
        ),
        (
            ImagePart(url="https://x.test/cat", media_type="image/heic"),
            {"fileData": {"fileUri": "https://x.test/cat", "mimeType": "image/heic"}},
        ),
    ],
)
def test_images(image: ImagePart, wire: dict[str, Any]) -> None:
    assert body(Message("user", [TextPart("look"), image]))["contents"][0]["parts"] == [{"text": "look"}, wire]


@pytest.mark.parametrize(
    "message",
    [
        Message("user", [ImagePart(data="AAAA")]),
        Message("user", [ImagePart(url="data:image/png,rawbytes")]),
        Message("system", [ImagePart(url="https://x.test/a.png")]),
    ],
)
def test_invalid_images(message: Message) -> None:
    with pytest.raises(errors.InvalidRequest):
        body(message, Message("user", "hi"))


def test_generation_config_tools_and_extra_passthrough() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string", "format": "uri"}}, "additionalProperties": False}
    wire = body(
        Message("user", "hi"),
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        seed=7,
        user="ignored",
        tools=[ToolSpec("search", "Search the web", schema)],
        tool_choice="required",
        extra={
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "tools": [{"googleSearch": {}}],
        },
    )
    assert wire["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
        "seed": 7,
        "thinkingConfig": {"thinkingBudget": 0},
    }
    assert wire["tools"] == [
        {"functionDeclarations": [{"name": "search", "description": "Search the web", "parametersJsonSchema": schema}]},
        {"googleSearch": {}},
    ]
    assert wire["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert wire["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert "ignored" not in json.dumps(wire)  # Gemini has no end-user field


def test_tool_choice_needs_tools_to_be_sent() -> None:
    assert "toolConfig" not in body(Message("user", "hi"), tool_choice="none")


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ({"type": "tool", "name": "f"}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ({"type": "any"}, {"mode": "ANY"}),
    ],
)
def test_tool_choice_mapping(choice: str | dict[str, Any], wire: dict[str, Any]) -> None:
    assert codec.calling_config(choice) == wire


@pytest.mark.parametrize("choice", ["sometimes", {"type": "function"}])
def test_unknown_tool_choice_is_invalid(choice: str | dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidRequest, match="tool_choice"):
        codec.calling_config(choice)


def test_structured_output() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    strict = body(Message("user", "hi"), response_format=ResponseFormat("json_schema", schema))
    assert strict["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    loose = body(Message("user", "hi"), response_format=ResponseFormat("json_object"))
    assert loose["generationConfig"] == {"responseMimeType": "application/json"}
    assert "generationConfig" not in body(Message("user", "hi"), response_format=ResponseFormat("text"))


def test_model_path() -> None:
    assert codec.model_path("gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert codec.model_path("models/gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert codec.model_path("tunedModels/my-model") == "tunedModels/my-model"
    assert codec.model_path("a b?c") == "models/a%20b%3Fc"


# --------------------------------------------------------------------------- wire -> canonical


@pytest.mark.parametrize(
    ("native", "calls", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", True, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("IMAGE_SAFETY", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "error"),
        ("OTHER", False, "error"),
        ("SOMETHING_NEW", False, "stop"),
        (None, False, "stop"),
    ],
)
def test_finish_reasons(native: str | None, calls: bool, expected: str) -> None:
    assert codec.finish_reason(native, tool_calls=calls) == expected


def test_a_function_call_with_a_safety_finish_keeps_the_call() -> None:
    data = {
        "candidates": [
            {"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]}, "finishReason": "SAFETY"}
        ]
    }
    response = codec.decode_chat(data, provider="gemini", model="m")
    assert response.finish_reason == "content_filter" and response.tool_calls[0].arguments == {"a": 1}


@pytest.mark.parametrize("data", [[], {"candidates": []}, {"candidates": ["x"]}, {}])
def test_answers_without_candidates_are_provider_errors(data: Any) -> None:
    with pytest.raises(errors.ProviderError):
        codec.decode_chat(data, provider="gemini", model="m")


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$.location", ["location"]),
        ("$.a.b[2]", ["a", "b", 2]),
        ("$['odd key'].x", ["odd key", "x"]),
        ('$["q"]', ["q"]),
        ("$", []),
        ("location", None),
        ("$.a[", None),
    ],
)
def test_parse_json_path(path: str, steps: list[str | int] | None) -> None:
    assert partial.parse_json_path(path) == steps


def test_partial_args_build_nested_values() -> None:
    args: dict[str, Any] = {}
    for item in [
        {"jsonPath": "$.city", "stringValue": "San ", "willContinue": True},
        {"jsonPath": "$.city", "stringValue": "Francisco"},
        {"jsonPath": "$.days[1]", "numberValue": 3},
        {"jsonPath": "$.opts.metric", "boolValue": True},
        {"jsonPath": "$.opts.note", "nullValue": None},
        {"jsonPath": "$.ignored"},
        {"jsonPath": "bad", "stringValue": "x"},
        "not an object",
    ]:
        partial.apply_partial_arg(args, item)
    assert args == {"city": "San Francisco", "days": [None, 3], "opts": {"metric": True, "note": None}}


# --------------------------------------------------------------------------- properties

texts = st.text(min_size=1, max_size=12)
names = st.sampled_from(["f", "g", "lookup"])
signatures = st.binary(min_size=1, max_size=12).map(lambda b: base64.b64encode(b).decode())
scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
arguments = st.dictionaries(st.text(max_size=5), json_values, max_size=3)
images = st.one_of(
    st.binary(max_size=9).map(lambda b: ImagePart(data=base64.b64encode(b).decode(), media_type="image/png")),
    st.integers(0, 99).map(lambda n: ImagePart(url=f"https://x.test/{n}.webp", media_type="image/webp")),
)
user_content = texts | st.lists(st.one_of(texts.map(TextPart), images), min_size=1, max_size=3)
tool_content = st.one_of(
    st.text(max_size=12).filter(lambda t: not t.lstrip().startswith("{")),
    arguments.filter(lambda d: set(d) != {"result"}).map(dumps_str),
)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Conversations in Gemini's normal form (no two user or two assistant
    messages in a row; tool results answer the calls right before them, in order)."""
    messages: list[Message] = []
    if draw(st.booleans()):
        lines = draw(st.lists(texts, min_size=1, max_size=2))
        one_string = len(lines) == 1 and draw(st.booleans())
        system: str | list[ContentPart] = lines[0] if one_string else [TextPart(t) for t in lines]
        messages.append(Message("system", system))
    counter = 0
    rounds = draw(st.integers(1, 3))
    for round_ in range(rounds):
        messages.append(Message("user", draw(user_content)))
        if round_ == rounds - 1 and draw(st.booleans()):
            break
        for _ in range(draw(st.integers(1, 2))):
            calls = []
            for _ in range(draw(st.integers(0, 3))):
                extra = {"thought_signature": draw(signatures)} if draw(st.booleans()) else {}
                calls.append(ToolCall(f"id-{counter}", draw(names), draw(arguments), extra=extra))
                counter += 1
            text = draw(st.none() | texts) if calls else draw(texts)
            signature = draw(st.none() | signatures) if text else None
            messages.append(Message("assistant", text, tool_calls=calls, reasoning_signature=signature))
            messages.extend(Message("tool", draw(tool_content), tool_call_id=c.id) for c in calls)
            if not calls:
                break
    return messages


@st.composite
def any_messages(draw: st.DrawFn) -> list[Message]:
    """Any valid sequence: repeated roles, unanswered calls, results out of order."""
    messages: list[Message] = [Message("user", draw(user_content))]
    calls: list[ToolCall] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(
            st.sampled_from(["system", "user", "assistant", "tool"] if calls else ["system", "user", "assistant"])
        )
        if kind == "tool":
            answered = draw(st.sampled_from(calls))
            messages.append(Message("tool", draw(tool_content), tool_call_id=answered.id))
        elif kind == "assistant":
            new = [
                ToolCall(f"id-{len(calls) + i}", draw(names), draw(arguments)) for i in range(draw(st.integers(0, 2)))
            ]
            calls.extend(new)
            messages.append(Message("assistant", draw(st.none() | texts), tool_calls=new))
        else:
            messages.append(Message(kind, draw(texts)))  # type: ignore[arg-type]
    return messages


def expected_wire(messages: list[Message]) -> tuple[list[tuple[str, Any]], list[str]]:
    """What ``contents_to_wire`` must send, worked out from the messages one by one:
    each part with the role of its turn, in order, and the system texts."""
    parts: list[tuple[str, Any]] = []
    system: list[str] = []
    names_by_id: dict[str, str] = {}
    for m in messages:
        if m.role == "system":
            system.extend(p.text for p in m.parts if isinstance(p, TextPart) and p.text)
            continue
        if m.role == "tool":
            response = json.loads(m.text) if m.text.lstrip().startswith("{") else {"result": m.text}
            name = names_by_id[m.tool_call_id or ""]
            parts.append(("user", {"functionResponse": {"name": name, "response": response}}))
            continue
        content: list[dict[str, Any]] = []
        for part in m.parts:
            if isinstance(part, TextPart):
                content += [{"text": part.text}] if part.text else []
            elif part.data is not None:
                content.append({"inlineData": {"mimeType": part.media_type, "data": part.data}})
            else:
                content.append({"fileData": {"fileUri": part.url, "mimeType": part.media_type}})
        texts = [c for c in content if "text" in c]
        if m.reasoning_signature and texts:
            texts[-1]["thoughtSignature"] = m.reasoning_signature
        for c in m.tool_calls:
            names_by_id[c.id] = c.name
            wire_call: dict[str, Any] = {"functionCall": {"name": c.name, "args": c.arguments}}
            if "thought_signature" in c.extra:
                wire_call["thoughtSignature"] = c.extra["thought_signature"]
            content.append(wire_call)
        role = "model" if m.role == "assistant" else "user"
        parts.extend((role, c) for c in content)
    return parts, system


@settings(max_examples=120, deadline=None)
@given(st.one_of(conversations(), any_messages()))
def test_wire_contents_keep_every_part_in_order(messages: list[Message]) -> None:
    contents, system = codec.contents_to_wire(messages)
    parts, system_texts = expected_wire(messages)
    assert [(turn["role"], part) for turn in contents for part in turn["parts"]] == parts
    assert all(a["role"] != b["role"] for a, b in pairwise(contents))  # same-role turns are merged
    assert system == ({"parts": [{"text": t} for t in system_texts]} if system_texts else None)


@st.composite
def answer_parts(draw: st.DrawFn) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if draw(st.booleans()):
        part: dict[str, Any] = {"text": draw(texts)}
        if draw(st.booleans()):
            part["thoughtSignature"] = draw(signatures)
        parts.append(part)
    for i in range(draw(st.integers(0 if parts else 1, 3))):
        part = {"functionCall": {"name": draw(names), "args": draw(arguments)}}
        if draw(st.booleans()):
            part["functionCall"]["id"] = f"fc-{i}"
        if draw(st.booleans()):
            part["thoughtSignature"] = draw(signatures)
        parts.append(part)
    return parts


@settings(max_examples=60, deadline=None)
@given(answer_parts())
def test_an_answer_replays_as_the_parts_it_came_with(parts: list[dict[str, Any]]) -> None:
    data = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}
    response = codec.decode_chat(data, provider="gemini", model="m")
    assert codec.contents_to_wire([response.message]) == ([{"role": "model", "parts": parts}], None)


stream_parts = st.lists(
    st.one_of(
        st.text(max_size=6).map(lambda t: {"text": t}),
        st.text(min_size=1, max_size=6).map(lambda t: {"text": t, "thought": True}),
        st.tuples(st.text(max_size=4), signatures).map(lambda p: {"text": p[0], "thoughtSignature": p[1]}),
        st.tuples(names, arguments).map(lambda p: {"functionCall": {"name": p[0], "args": p[1]}}),
    ),
    max_size=8,
)


def stream_chunks(
    parts: list[dict[str, Any]], cuts: list[int], finish: str, usage: dict[str, int]
) -> list[dict[str, Any]]:
    bounds = sorted({0, len(parts), *(c % (len(parts) + 1) for c in cuts)})
    chunks = []
    for start, end in pairwise(bounds):
        chunks.append(
            {
                "candidates": [{"content": {"role": "model", "parts": parts[start:end]}}],
                "usageMetadata": {"promptTokenCount": 1},
            }
        )
    last = {"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": finish}], "usageMetadata": usage}
    return [*chunks, {**last, "responseId": "r", "modelVersion": "v"}]


@settings(max_examples=60, deadline=None)
@given(
    stream_parts,
    st.lists(st.integers(0, 20), max_size=4),
    st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "OTHER"]),
    st.fixed_dictionaries(
        {
            "promptTokenCount": st.integers(0, 99),
            "candidatesTokenCount": st.integers(0, 99),
            "thoughtsTokenCount": st.integers(0, 9),
        }
    ),
)
def test_streaming_gives_the_same_answer_as_one_response(
    parts: list[dict[str, Any]], cuts: list[int], finish: str, usage: dict[str, int]
) -> None:
    whole = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
        "usageMetadata": usage,
        "responseId": "r",
        "modelVersion": "v",
    }
    expected = codec.decode_chat(whole, provider="gemini", model="m")
    streamed = run_stream(stream_chunks(parts, cuts, finish, usage))
    for field in ("content", "reasoning", "reasoning_signature", "tool_calls", "finish_reason", "usage", "id", "model"):
        assert getattr(streamed, field) == getattr(expected, field), field


def run_stream(chunks: list[dict[str, Any]]) -> ChatResponse:
    assembler = StreamAssembler("gemini", "m")
    decoder = ChatStreamDecoder(assembler, "gemini", lambda payload: errors.ProviderError("error"))
    for chunk in chunks:
        for event in decoder.feed(SSEEvent(json.dumps(chunk))):
            assembler.add(event)
    decoder.close()
    return assembler.response()


keys = st.text(alphabet="abcxyz_", min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(keys, st.text(max_size=10) | st.integers(-(2**53), 2**53) | st.booleans() | st.none(), max_size=4),
    st.data(),
)
def test_partial_args_stream_assembles_the_arguments(args: dict[str, Any], data: st.DataObject) -> None:
    parts: list[dict[str, Any]] = [{"functionCall": {"name": "f", "willContinue": True}}]
    for key, value in args.items():
        if isinstance(value, str):
            cut = data.draw(st.integers(0, len(value)))
            pieces = [
                {"jsonPath": f"$.{key}", "stringValue": s, "willContinue": True} for s in (value[:cut], value[cut:])
            ]
        elif value is None:
            pieces = [{"jsonPath": f"$.{key}", "nullValue": None}]
        else:
            pieces = [{"jsonPath": f"$.{key}", "boolValue" if isinstance(value, bool) else "numberValue": value}]
        parts.extend({"functionCall": {"partialArgs": [p], "willContinue": True}} for p in pieces)
    parts.append({"functionCall": {}})
    chunks: list[dict[str, Any]] = [{"candidates": [{"content": {"parts": [p]}}]} for p in parts]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    response = run_stream(chunks)
    [only] = response.tool_calls
    assert (only.name, only.arguments, response.finish_reason) == ("f", args, "tool_calls")
