"""Property tests for the Anthropic codec: streamed tool arguments survive any
framing, and canonical messages survive a trip through the wire format."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay._assemble import StreamAssembler
from llmrelay._sse import SSEDecoder, encode_sse
from llmrelay.providers.anthropic import codec
from llmrelay.providers.anthropic.stream import ChatStreamDecoder
from llmrelay.types import ChatRequest, ChatResponse, ImagePart, Message, TextPart, ToolCall
from recordings import load_sse


def run_stream(pieces: list[bytes]) -> ChatResponse:
    """Bytes as they arrive -> SSE -> Anthropic decoder -> assembled response."""
    assembler = StreamAssembler("anthropic", "claude")
    decoder = ChatStreamDecoder(assembler, "anthropic")
    sse = SSEDecoder()
    for piece in [*pieces, None]:
        frames = sse.feed(piece) if piece is not None else sse.flush()
        for frame in frames:
            for event in decoder.feed(frame):
                assembler.add(event)
    decoder.close()
    return assembler.response()


def tool_stream(fragments: list[str]) -> bytes:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Calling é🌍"}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "f"}},
        *(
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": f}}
            for f in fragments
        ),
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    # ensure_ascii=False keeps multi-byte characters, so byte splits can fall inside them
    return b"".join(encode_sse(json.dumps(e, ensure_ascii=False), e["type"]) for e in events)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=4)


@settings(max_examples=60, deadline=None)
@given(arguments, st.lists(st.integers(min_value=0), max_size=8), st.lists(st.integers(min_value=0), max_size=12))
def test_tool_arguments_reassemble_across_any_split(
    args: dict[str, Any], text_cuts: list[int], byte_cuts: list[int]
) -> None:
    text = json.dumps(args, ensure_ascii=False)
    bounds = [0, *sorted({c % (len(text) + 1) for c in text_cuts}), len(text)]
    fragments = ["", *(text[a:b] for a, b in itertools.pairwise(bounds))]  # Anthropic opens with ""
    response = run_stream(split_at(tool_stream(fragments), byte_cuts))
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments, call.raw_arguments) == ("t1", "f", args, text)
    assert response.content == "Calling é🌍" and response.finish_reason == "tool_calls"


def test_recorded_tool_stream_split_at_every_byte() -> None:
    raw = load_sse("anthropic-stream-tool-use-input-json-delta.sse")
    whole = run_stream([raw])
    assert whole.tool_calls[0].arguments == {"location": "Paris"}
    for cut in range(len(raw) + 1):
        response = run_stream([raw[:cut], raw[cut:]])
        assert response.tool_calls == whole.tool_calls and response.content == whole.content


# --------------------------------------------------------------------------- round trip

texts = st.text(min_size=1, max_size=12)
images = st.one_of(
    st.builds(ImagePart, url=st.just("https://example.com/a.png")),
    st.builds(ImagePart, data=st.sampled_from(["iVBORw0KGgo=", "/9j/4AAQ"]), media_type=st.just("image/png")),
)
user_messages = st.builds(
    Message,
    role=st.just("user"),
    content=texts | st.lists(st.one_of(st.builds(TextPart, texts), images), min_size=1, max_size=3),
)
tool_calls = st.builds(
    ToolCall,
    id=st.sampled_from(["toolu_1", "toolu_2", "toolu_3"]),
    name=st.sampled_from(["f", "g"]),
    arguments=arguments,
)


@st.composite
def assistant_turns(draw: st.DrawFn) -> list[Message]:
    """An assistant message, followed by one tool message per tool call it made."""
    calls = draw(st.lists(tool_calls, max_size=3))
    content = draw(st.none() | texts) if calls else draw(texts)
    signature = draw(st.none() | st.text("abcXYZ=", min_size=1, max_size=8))
    reasoning = draw(texts) if signature else None
    message = Message("assistant", content, tool_calls=calls, reasoning=reasoning, reasoning_signature=signature)
    results = [Message("tool", draw(texts), tool_call_id=call.id) for call in calls]
    return [message, *results]


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Alternating user / assistant turns (the shape that round-trips unchanged)."""
    out: list[Message] = []
    if draw(st.booleans()):
        out.append(Message("system", draw(texts)))
    for i in range(draw(st.integers(min_value=1, max_value=5))):
        if i % 2 == 0:
            out.append(draw(user_messages))
        else:
            out.extend(draw(assistant_turns()))
    return out


def normal(message: Message) -> tuple[Any, ...]:
    """What must survive: roles, parts, tool calls, reasoning, tool answers."""
    parts = [p.text if isinstance(p, TextPart) else p.data_url for p in message.parts]
    calls = [(c.id, c.name, c.arguments) for c in message.tool_calls]
    return (message.role, parts, calls, message.reasoning, message.reasoning_signature, message.tool_call_id)


@settings(max_examples=80, deadline=None)
@given(conversations())
def test_messages_round_trip_through_the_wire(messages: list[Message]) -> None:
    body = codec.encode_chat(ChatRequest(model="claude-sonnet-4-5", messages=messages), stream=False)
    roles = [turn["role"] for turn in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # turns alternate
    back = codec.messages_from_wire(body["messages"], body.get("system"))
    assert [normal(m) for m in back] == [normal(m) for m in messages]
