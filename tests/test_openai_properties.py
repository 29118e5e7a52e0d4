"""Property tests: the OpenAI codec round-trips, and streamed tool-call
arguments reassemble whatever the network splits."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay._assemble import StreamAssembler
from llmrelay._sse import SSEDecoder
from llmrelay.providers.openai.codec import decode_chat, encode_chat, message_to_wire
from llmrelay.providers.openai.compat import quirks_for
from llmrelay.providers.openai.inbound import request_from_wire, response_to_wire
from llmrelay.providers.openai.stream import ChatStreamDecoder
from llmrelay.types import ChatRequest, ChatResponse, ImagePart, Message, TextPart, ToolCall, Usage

text = st.text(min_size=1, max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=4)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=4, max_size=12)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    msgs = []
    if draw(st.booleans()):
        msgs.append(Message("system", draw(text)))
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            parts: list[Any] = [TextPart(draw(text))]
            if draw(st.booleans()):
                parts.append(ImagePart(url="https://example.com/" + draw(ids) + ".png", detail="high"))
            msgs.append(Message("user", parts))
        else:
            msgs.append(Message("user", draw(text)))
        calls = [
            ToolCall(id=draw(ids) + str(i), name=draw(ids), arguments=draw(arguments))
            for i in range(draw(st.integers(0, 2)))
        ]
        for c in calls:
            c.raw_arguments = json.dumps(c.arguments)
        msgs.append(Message("assistant", draw(text) if not calls or draw(st.booleans()) else None, tool_calls=calls))
        for c in calls:
            msgs.append(Message("tool", draw(text), tool_call_id=c.id))
    return msgs


@settings(max_examples=60, deadline=None)
@given(conversations(), st.one_of(st.none(), st.floats(0, 2)), st.one_of(st.none(), st.integers(1, 4096)))
def test_request_round_trip(messages: list[Message], temperature: float | None, max_tokens: int | None) -> None:
    req = ChatRequest("gpt-4o", messages, temperature=temperature, max_tokens=max_tokens, seed=1, stop=["END"])
    wire = json.loads(json.dumps(encode_chat(req, stream=False, quirks=quirks_for("openai"))))
    back = request_from_wire(wire)
    assert back.model == req.model and back.temperature == temperature and back.max_tokens == max_tokens
    assert back.seed == 1 and back.stop == ["END"]
    assert [message_to_wire(m) for m in back.messages] == [message_to_wire(m) for m in messages]
    for got, want in zip(back.messages, messages, strict=True):
        assert [(c.id, c.name, c.arguments) for c in got.tool_calls] == [
            (c.id, c.name, c.arguments) for c in want.tool_calls
        ]


@settings(max_examples=60, deadline=None)
@given(
    st.text(max_size=60),
    st.lists(st.tuples(ids, ids, arguments), max_size=3),
    st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)
def test_response_round_trip(
    content: str, calls: list[tuple[str, str, dict[str, Any]]], finish: Any, prompt: int, completion: int
) -> None:
    tool_calls = [ToolCall(f"{i}{cid}", name, args, json.dumps(args)) for i, (cid, name, args) in enumerate(calls)]
    original = ChatResponse(
        content,
        finish,
        Usage(prompt, completion, cached_tokens=min(prompt, 3)),
        "gpt-4o",
        "openai",
        tool_calls=tool_calls,
        id="chatcmpl-x",
    )
    wire = json.loads(json.dumps(response_to_wire(original, created=1)))
    back = decode_chat(wire, provider="openai", model="gpt-4o")
    assert back.content == content and back.finish_reason == finish and back.id == "chatcmpl-x"
    assert back.usage == original.usage
    assert [(c.id, c.name, c.arguments) for c in back.tool_calls] == [(c.id, c.name, c.arguments) for c in tool_calls]


def _tool_stream(calls: list[tuple[str, str, dict[str, Any]]], piece: int) -> bytes:
    out = []
    for index, (cid, name, args) in enumerate(calls):
        text_args = json.dumps(args)
        first = {"index": index, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
        out.append({"choices": [{"index": 0, "delta": {"tool_calls": [first]}}]})
        for i in range(0, len(text_args), piece):
            frag = {"index": index, "function": {"arguments": text_args[i : i + piece]}}
            out.append({"choices": [{"index": 0, "delta": {"tool_calls": [frag]}}]})
    out.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in out) + b"data: [DONE]\n\n"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(ids, ids, arguments), min_size=1, max_size=3), st.integers(1, 7), st.data())
def test_tool_call_arguments_survive_any_byte_split(
    calls: list[tuple[str, str, dict[str, Any]]], piece: int, data: st.DataObject
) -> None:
    calls = [(f"{i}{cid}", name, args) for i, (cid, name, args) in enumerate(calls)]
    wire = _tool_stream(calls, piece)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    asm = StreamAssembler("openai", "gpt-4o")
    decoder = ChatStreamDecoder(asm, "openai")
    sse = SSEDecoder()
    for chunk in pieces:
        for frame in sse.feed(chunk):
            for event in decoder.feed(frame):
                asm.add(event)
    for frame in sse.flush():
        for event in decoder.feed(frame):
            asm.add(event)
    decoder.close()
    got = asm.response()
    assert [(c.id, c.name, c.arguments) for c in got.tool_calls] == calls
    assert got.finish_reason == "tool_calls"


def test_every_byte_boundary_of_recorded_parallel_calls() -> None:
    from recordings import load_sse

    raw = load_sse("openai-chat-stream-parallel-tool-calls-usage.sse")
    results = set()
    for cut in range(1, len(raw), 3):
        asm = StreamAssembler("openai", "gpt-4o")
        decoder = ChatStreamDecoder(asm, "openai")
        sse = SSEDecoder()
        for chunk in (raw[:cut], raw[cut:]):
            for frame in sse.feed(chunk):
                for event in decoder.feed(frame):
                    asm.add(event)
        decoder.close()
        results.add(json.dumps([(c.name, c.arguments) for c in asm.response().tool_calls]))
    assert len(results) == 1
