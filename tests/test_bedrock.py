"""The Bedrock Converse provider over real HTTP: recorded event streams, framing
faults, in-stream exceptions, SigV4 and bearer auth, and the request wire shape."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import AsyncIterator
from importlib.util import find_spec
from typing import Any

import pytest
from aiohttp import web

from fakeserver import FakeServer, Recorded, Reply, split_every
from llmrelay import errors
from llmrelay._eventstream import EventStreamParser, parse_headers
from llmrelay._install import install_hint
from llmrelay._json import dumps
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.bedrock.codec import decode_chat, usage_from_wire
from llmrelay.providers.bedrock.provider import BedrockProvider
from llmrelay.types import (
    ChatRequest,
    Finish,
    ImagePart,
    Message,
    ResponseFormat,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
)
from recordings import load_cassette
from streams import collect

needs_botocore = pytest.mark.skipif(find_spec("botocore") is None, reason="SigV4 needs llmrelay[bedrock]")

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
API_KEY = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlLWtleQ=="
NOVA = "us.amazon.nova-micro-v1:0"
STREAM_PATH = f"/model/{NOVA}/converse-stream"
CHAT_PATH = f"/model/{NOVA}/converse"
EVENT_STREAM = "application/vnd.amazon.eventstream"


class AWSFake(FakeServer):
    """The fake server, also keeping each request's raw (undecoded) path, as AWS
    computes the signature from the path it received."""

    def __init__(self) -> None:
        super().__init__()
        self.raw_paths: list[str] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.raw_paths.append(request.raw_path)
        return await super()._handle(request)


@pytest.fixture
async def aws() -> AsyncIterator[AWSFake]:
    async with AWSFake() as server:
        yield server


def sigv4(fake: FakeServer, *, token: str | None = TOKEN) -> BedrockProvider:
    opts = {"region": "us-east-1", "aws_access_key_id": AKID, "aws_secret_access_key": SECRET}
    opts["models_base_url"] = fake.url
    if token:
        opts["aws_session_token"] = token
    return BedrockProvider(ProviderConfig("bedrock", "bedrock", base_url=fake.url, options=opts))


def bearer(fake: FakeServer) -> BedrockProvider:
    return BedrockProvider(ProviderConfig("bedrock", "bedrock", base_url=fake.url, api_key=API_KEY))


def ask(text: str = "Hi", model: str = NOVA, **kw: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message("user", text)], **kw)


async def final(p: BedrockProvider, req: ChatRequest) -> Any:
    finish = (await collect(p, req))[-1]
    assert isinstance(finish, Finish)
    return finish.response


def recorded_stream() -> bytes:
    (interaction,) = load_cassette("bedrock-converse-stream-binary-eventstream.cassette.yaml")
    return interaction.body


# ---- event-stream frames built here, with the same framing as AWS ------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + len(v.encode()).to_bytes(2, "big") + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(raw_headers) + len(payload), len(raw_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, body: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps({**body, "p": "abcdef"}).encode())


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"message": message}).encode())


def text_events(*words: str) -> bytes:
    deltas = [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}) for w in words]
    return event("messageStart", {"role": "assistant"}) + b"".join(deltas)


def end_events(stop: str = "end_turn", usage: dict[str, int] | None = None) -> bytes:
    usage = usage or {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}
    return event("messageStop", {"stopReason": stop}) + event("metadata", {"usage": usage, "metrics": {"latencyMs": 9}})


def converse_answer(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": usage or {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
        "metrics": {"latencyMs": 100},
    }


# ---- recorded stream ------------------------------------------------------------------------


async def test_recorded_stream_text_usage_and_request(aws: AWSFake) -> None:
    (interaction,) = load_cassette("bedrock-converse-stream-binary-eventstream.cassette.yaml")
    aws.on("POST", STREAM_PATH, Reply(chunks=split_every(interaction.body, 97), content_type=EVENT_STREAM))
    req = ChatRequest(
        NOVA,
        [Message("system", "You are a helpful chatbot."), Message("user", "What is the capital of France?")],
        temperature=0.0,
    )
    events = await collect(bearer(aws), req)
    r = events[-1].response  # type: ignore[union-attr]
    assert r.content.startswith("The capital of France is Paris. Paris is not only")
    assert r.content.endswith('"The City of Love."')
    assert (r.finish_reason, r.native_finish_reason) == ("stop", "end_turn")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (13, 82)
    assert r.extra["metrics"] == {"latencyMs": 522}
    assert r.cost_usd is not None and r.cost_usd > 0  # priced from the "aws" catalogue
    assert len([e for e in events if isinstance(e, TextDelta)]) == 29
    # the body the AWS SDK sent, on its route (the ':' left as HTTP clients normalise it)
    sent = aws.requests[-1].json
    assert sent == {
        "messages": [{"role": "user", "content": [{"text": "What is the capital of France?"}]}],
        "system": [{"text": "You are a helpful chatbot."}],
        "inferenceConfig": {"temperature": 0.0},
    }
    assert aws.raw_paths[-1] == "/model/us.amazon.nova-micro-v1:0/converse-stream"


@pytest.mark.parametrize("size", [1, 7, 12, 13, 500, 100_000])
async def test_recorded_stream_any_network_split(aws: AWSFake, size: int) -> None:
    aws.on("POST", STREAM_PATH, Reply(chunks=split_every(recorded_stream(), size), content_type=EVENT_STREAM))
    r = await final(bearer(aws), ask())
    assert r.content.startswith("The capital of France is Paris.") and r.usage.total_tokens == 95


def test_parser_every_byte_boundary() -> None:
    body = recorded_stream()
    reference = EventStreamParser("t").feed(body)
    assert len(reference) == 33 and {f.header(":message-type") for f in reference} == {"event"}
    one_by_one = EventStreamParser("t")  # one read per byte: every boundary at once
    assert [f for i in range(len(body)) for f in one_by_one.feed(body[i : i + 1])] == reference
    one_by_one.close()
    for cut in range(1, 600):  # two reads, the cut anywhere in the first frames
        parser = EventStreamParser("t")
        assert parser.feed(body[:cut]) + parser.feed(body[cut:]) == reference


@needs_botocore
def test_parser_agrees_with_botocore() -> None:
    from botocore.eventstream import EventStreamBuffer

    body = recorded_stream() + exception("throttlingException", "slow down")
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    expected = [(m.headers, m.payload) for m in buffer]
    assert [(f.headers, f.payload) for f in EventStreamParser("t").feed(body)] == expected


def test_header_value_types() -> None:
    raw = (
        b"\x01a\x00"
        + b"\x01b\x01"
        + b"\x01c\x02\xff"
        + b"\x01d\x03\x01\x00"
        + b"\x01e\x04\x00\x00\x00\x05"
        + b"\x01f\x05"
        + (7).to_bytes(8, "big")
        + b"\x01g\x06\x00\x02xy"
        + b"\x01h\x08"
        + (9).to_bytes(8, "big")
        + b"\x01i\x09"
        + bytes(range(16))
    )
    assert parse_headers(raw) == {
        "a": True,
        "b": False,
        "c": -1,
        "d": 256,
        "e": 5,
        "f": 7,
        "g": b"xy",
        "h": 9,
        "i": bytes(range(16)),
    }
    with pytest.raises(ValueError):
        parse_headers(b"\x01a\x0c")
    with pytest.raises(ValueError):
        parse_headers(b"\x01a\x07\x00\x09abc")


# ---- framing faults ---------------------------------------------------------------------------


async def test_corrupted_crc_is_an_error(aws: AWSFake) -> None:
    body = recorded_stream()
    starts = frame_starts(body)
    late = bytearray(body)
    late[starts[3] + 60] ^= 0x01  # a payload byte of the 4th frame: the message CRC catches it
    early = bytearray(body)
    early[1] ^= 0x01  # the first frame's length: the prelude CRC catches it
    aws.on(
        "POST",
        STREAM_PATH,
        Reply(chunks=[bytes(late)], content_type=EVENT_STREAM),
        Reply(chunks=[bytes(early)], content_type=EVENT_STREAM),
    )
    p = bearer(aws)
    with pytest.raises(errors.StreamInterrupted) as cut:  # the frames before the bad one still count
        await collect(p, ask())
    assert "message CRC mismatch" in str(cut.value) and cut.value.partial is not None
    assert cut.value.partial.content == "The capital of France is Paris."
    with pytest.raises(errors.ProviderError) as bad:
        await collect(p, ask())
    assert "prelude CRC mismatch" in str(bad.value) and bad.value.retryable


def frame_starts(body: bytes) -> list[int]:
    starts, pos = [], 0
    while pos < len(body):
        starts.append(pos)
        pos += struct.unpack_from(">I", body, pos)[0]
    return starts


async def test_cut_streams(aws: AWSFake) -> None:
    body = text_events("Hel", "lo")
    done = end_events()
    metadata_start = len(body) + len(event("messageStop", {"stopReason": "end_turn"}))
    aws.on(
        "POST",
        STREAM_PATH,
        Reply(chunks=[b""], content_type=EVENT_STREAM),  # nothing at all: plain and retryable
        Reply(chunks=[body], content_type=EVENT_STREAM),  # no messageStop
        Reply(chunks=[body + done[: metadata_start - len(body) + 20]], content_type=EVENT_STREAM),  # cut in a frame
        Reply(chunks=[body, done[:30]], cut_after=1, content_type=EVENT_STREAM),  # connection closed
        Reply(chunks=[body + event("messageStop", {"stopReason": "max_tokens"})], content_type=EVENT_STREAM),
    )
    p = bearer(aws)
    with pytest.raises(errors.ProviderError) as empty:
        await collect(p, ask())
    assert "before messageStop" in str(empty.value) and empty.value.retryable
    for expected in ("before messageStop", "inside a frame", ""):
        with pytest.raises(errors.StreamInterrupted) as cut:
            await collect(p, ask())
        assert expected in str(cut.value) and cut.value.partial.content == "Hello"  # type: ignore[union-attr]
    r = await final(p, ask())  # ended after messageStop without metadata: complete, usage unknown
    assert (r.content, r.finish_reason, r.usage.total_tokens) == ("Hello", "length", 0)


async def test_non_event_stream_200(aws: AWSFake) -> None:
    aws.on("POST", STREAM_PATH, Reply(body='{"message": "hi"}', content_type="application/json"))
    with pytest.raises(errors.ProviderError) as exc:
        await collect(bearer(aws), ask())
    assert "expected an event stream" in str(exc.value)


# ---- exceptions inside a 200 stream -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message", "cls"),
    [
        ("throttlingException", "Too many requests, please wait before trying again.", errors.RateLimited),
        ("serviceUnavailableException", "Bedrock is unable to process your request.", errors.Overloaded),
        ("modelStreamErrorException", "The model stream failed.", errors.ProviderError),
        ("validationException", "Input is too long for requested model.", errors.ContextWindowExceeded),
        ("validationException", "Malformed input request", errors.InvalidRequest),
        ("internalServerException", "oops", errors.ProviderError),
        ("modelTimeoutException", "took too long", errors.Timeout),
    ],
)
async def test_exception_frames(aws: AWSFake, kind: str, message: str, cls: type[errors.LLMError]) -> None:
    aws.on(
        "POST",
        STREAM_PATH,
        Reply(
            chunks=[event("messageStart", {"role": "assistant"}) + exception(kind, message)], content_type=EVENT_STREAM
        ),
        Reply(chunks=[text_events("Hel"), exception(kind, message)], content_type=EVENT_STREAM),
    )
    p = bearer(aws)
    with pytest.raises(cls) as before:  # nothing given yet: the mapped error, retryable as its class says
        await collect(p, ask())
    assert type(before.value) is cls and message in str(before.value) and kind in str(before.value)
    assert before.value.retryable is cls.retryable
    with pytest.raises(errors.StreamInterrupted) as after:  # after text: never retried, partial kept
        await collect(p, ask())
    assert type(after.value.__cause__) is cls and after.value.partial.content == "Hel"  # type: ignore[union-attr]


# ---- streamed tool calls, reasoning and structured output -----------------------------------


async def test_stream_tool_calls_and_reasoning(aws: AWSFake) -> None:
    body = (
        event("messageStart", {"role": "assistant"})
        + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Weather?"}}})
        + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "c2ln"}}})
        + event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Let me look."}})
        + event(
            "contentBlockStart",
            {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather"}}},
        )
        + event("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"city": '}}})
        + event("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '"Paris"}'}}})
        + event("contentBlockStop", {"contentBlockIndex": 2})
        + event(
            "contentBlockStart",
            {"contentBlockIndex": 3, "start": {"toolUse": {"toolUseId": "tooluse_b", "name": "get_time"}}},
        )
        + event("contentBlockDelta", {"contentBlockIndex": 3, "delta": {"toolUse": {"input": ""}}})
        + end_events(
            "tool_use",
            {
                "inputTokens": 20,
                "outputTokens": 30,
                "totalTokens": 150,
                "cacheReadInputTokens": 100,
                "cacheWriteInputTokens": 0,
            },
        )
    )
    aws.on("POST", STREAM_PATH, Reply(chunks=split_every(body, 50), content_type=EVENT_STREAM))
    events = await collect(bearer(aws), ask())
    r = events[-1].response  # type: ignore[union-attr]
    assert r.finish_reason == "tool_calls" and r.content == "Let me look."
    assert (r.reasoning, r.reasoning_signature) == ("Weather?", "c2ln")
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("tooluse_a", "get_weather", {"city": "Paris"}),
        ("tooluse_b", "get_time", {}),
    ]
    assert [d.index for d in events if isinstance(d, ToolCallDelta)] == [0, 0, 0, 1]
    assert (r.usage.prompt_tokens, r.usage.cached_tokens, r.usage.completion_tokens) == (120, 100, 30)
    assert r.message.reasoning_signature == "c2ln"


async def test_structured_output_forced_tool(aws: AWSFake) -> None:
    from pydantic import BaseModel

    from llmrelay.structured import to_response_format

    class City(BaseModel):
        name: str
        population: int

    fmt = to_response_format(City)
    answer = converse_answer(
        [{"toolUse": {"toolUseId": "t1", "name": fmt.name, "input": {"name": "Paris", "population": 2100000}}}],
        "tool_use",
    )
    streamed = (
        event("messageStart", {"role": "assistant"})
        + event(
            "contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t2", "name": fmt.name}}}
        )
        + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"name": "Paris", '}}})
        + event(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '"population": 2100000}'}}}
        )
        + end_events("tool_use")
    )
    aws.on("POST", CHAT_PATH, Reply(json=answer), Reply(json=converse_answer([{"text": '{"a": 1}'}])))
    aws.on("POST", STREAM_PATH, Reply(chunks=[streamed], content_type=EVENT_STREAM))
    p = bearer(aws)
    tools = [ToolSpec("lookup", "Look a city up", {"type": "object", "properties": {"q": {"type": "string"}}})]
    r = await p.chat(ask(response_format=fmt, tools=tools, tool_choice="auto"))
    assert r.parsed == City(name="Paris", population=2100000)
    assert (r.finish_reason, r.tool_calls, json.loads(r.content)) == (
        "stop",
        [],
        {"name": "Paris", "population": 2100000},
    )
    config = aws.requests[-1].json["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": "City"}}
    assert [t["toolSpec"]["name"] for t in config["tools"]] == ["lookup", "City"]
    assert config["tools"][1]["toolSpec"]["inputSchema"] == {"json": fmt.schema}
    s = await final(p, ask(response_format=fmt))
    assert s.parsed == City(name="Paris", population=2100000) and s.finish_reason == "stop" and not s.tool_calls
    with pytest.raises(errors.InvalidRequest, match="also the name of a tool"):
        await p.chat(ask(response_format=fmt, tools=[ToolSpec("City")]))
    assert (await p.chat(ask(response_format=ResponseFormat("json_object")))).parsed == {"a": 1}
    assert aws.requests[-1].json["system"] == [{"text": "Respond with a single JSON object only."}]


# ---- request wire shape and non-stream answers ----------------------------------------------

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


async def test_request_wire_shape_and_answer(aws: AWSFake) -> None:
    answer = converse_answer(
        [
            {"reasoningContent": {"reasoningText": {"text": "Hmm.", "signature": "c2ln"}}},
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_9", "name": "get_weather", "input": {"city": "Rome"}}},
        ],
        "tool_use",
        inputTokens=10,
        outputTokens=20,
        totalTokens=150,
        cacheReadInputTokens=100,
        cacheWriteInputTokens=20,
    )
    answer["additionalModelResponseFields"] = {"stop_sequence": None}
    aws.on("POST", CHAT_PATH, Reply(json=answer))
    messages = [
        Message("system", "Be brief"),
        Message(
            "user",
            [
                TextPart("What is in this image?"),
                ImagePart(data=PNG, media_type="image/png"),
                ImagePart(url="data:image/jpeg;base64,/9j/4AAQ"),
            ],
        ),
        Message(
            "assistant",
            "Let me check.",
            reasoning="think",
            reasoning_signature="sig",
            tool_calls=[ToolCall("tu_1", "get_weather", {"city": "Paris"}), ToolCall("tu_2", "get_time", {})],
        ),
        Message("tool", '{"temp": 21}', tool_call_id="tu_1"),
        Message("tool", "12:00", tool_call_id="tu_2", extra={"is_error": True}),
        Message("user", "Thanks"),
        Message("user", [TextPart(""), TextPart("And Rome?")]),
    ]
    req = ChatRequest(
        NOVA,
        messages,
        tools=[ToolSpec("get_weather", "Weather now", WEATHER), ToolSpec("get_time")],
        tool_choice="required",
        max_tokens=100,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        seed=3,
        extra={"additionalModelRequestFields": {"top_k": 5}},
    )
    r = await bearer(aws).chat(req)
    assert aws.requests[-1].json == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is in this image?"},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                    {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}},
                    {"text": "Let me check."},
                    {"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tu_2", "name": "get_time", "input": {}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "tu_1", "content": [{"json": {"temp": 21}}]}},
                    {"toolResult": {"toolUseId": "tu_2", "content": [{"text": "12:00"}], "status": "error"}},
                    {"text": "Thanks"},
                    {"text": "And Rome?"},
                ],
            },
        ],
        "system": [{"text": "Be brief"}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "get_weather", "description": "Weather now", "inputSchema": {"json": WEATHER}}},
                {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
            ],
            "toolChoice": {"any": {}},
        },
        "additionalModelRequestFields": {"top_k": 5},
    }
    assert (r.finish_reason, r.native_finish_reason, r.content) == ("tool_calls", "tool_use", "Checking.")
    assert (r.reasoning, r.reasoning_signature) == ("Hmm.", "c2ln")
    assert r.tool_calls[0].id == "tooluse_9" and r.tool_calls[0].arguments == {"city": "Rome"}
    assert (r.usage.prompt_tokens, r.usage.cached_tokens, r.usage.cache_write_tokens) == (130, 100, 20)
    assert r.extra["additional_model_response_fields"] == {"stop_sequence": None} and r.model == NOVA


async def test_tool_choice_none_and_named(aws: AWSFake) -> None:
    aws.on("POST", CHAT_PATH, Reply(json=converse_answer([{"text": "ok"}])))
    p = bearer(aws)
    tools = [ToolSpec("get_weather", "", WEATHER)]
    await p.chat(ask(tools=tools, tool_choice="none"))
    assert "toolConfig" not in aws.requests[-1].json
    history = [
        Message("user", "Hi"),
        Message("assistant", None, tool_calls=[ToolCall("t", "get_weather")]),
        Message("tool", "sunny", tool_call_id="t"),
    ]
    await p.chat(ChatRequest(NOVA, history, tools=tools, tool_choice="none"))
    assert aws.requests[-1].json["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER}}}]
    }
    await p.chat(ask(tools=tools, tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    assert aws.requests[-1].json["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    await p.chat(ask(tools=tools, tool_choice="auto"))
    assert aws.requests[-1].json["toolConfig"]["toolChoice"] == {"auto": {}}


@pytest.mark.parametrize(
    ("part", "match"),
    [
        (ImagePart(url="https://example.com/cat.png"), r"messages\[1\]: Bedrock Converse does not take image URLs"),
        (ImagePart(data=PNG, media_type="image/bmp"), r"messages\[1\]: .*png, jpeg, gif or webp"),
        (ImagePart(data="AAAA"), r"messages\[1\]: .*needs media_type"),
    ],
)
async def test_unsupported_images(aws: AWSFake, part: ImagePart, match: str) -> None:
    req = ChatRequest(NOVA, [Message("system", "s"), Message("user", [TextPart("look"), part])])
    with pytest.raises(errors.InvalidRequest, match=match) as exc:
        await bearer(aws).chat(req)
    assert exc.value.provider == "bedrock" and aws.count() == 0


# ---- auth ---------------------------------------------------------------------------------------

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\d{8}/us-east-1/bedrock/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)


def verify_signature(rec: Recorded, raw_path: str) -> list[str]:
    """Recompute the signature as AWS does (from the path and body it received) and
    compare; returns the signed header names."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    match = _AUTH.match(rec.headers["Authorization"])
    assert match is not None, rec.headers["Authorization"]
    signed = match.group(1).split(";")
    lower = {k.lower(): v for k, v in rec.headers.items()}
    request = AWSRequest(
        method=rec.method,
        url=f"http://{lower['host']}{raw_path}",
        data=rec.body,
        headers={name: lower[name] for name in signed},
    )
    request.context["timestamp"] = lower["x-amz-date"]
    auth = SigV4Auth(Credentials(AKID, SECRET, TOKEN), "bedrock", "us-east-1")
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    assert match.group(2) == expected
    return signed


@needs_botocore
@pytest.mark.parametrize("token", [TOKEN, None])
@pytest.mark.parametrize(
    "model", [NOVA, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x:0"]
)
async def test_sigv4_signs_exactly_what_is_sent(aws: AWSFake, model: str, token: str | None) -> None:
    path = "/model/" + model + "/converse"  # the server sees the decoded path
    aws.on("POST", path, Reply(json=converse_answer([{"text": "Hi!"}])))
    aws.on("POST", path + "-stream", Reply(chunks=[text_events("Hi") + end_events()], content_type=EVENT_STREAM))
    p = sigv4(aws, token=token)
    req = ask("héllo ✓", model=model, temperature=0.1, max_tokens=5)
    assert (await p.chat(req)).content == "Hi!"
    assert (await final(p, req)).content == "Hi"
    for rec, raw_path in zip(aws.requests, aws.raw_paths, strict=True):
        signed = verify_signature(rec, raw_path)
        assert signed == ["content-type", "host", "x-amz-date"] + (["x-amz-security-token"] if token else [])
        assert rec.headers.get("X-Amz-Security-Token") == token
        assert rec.body == dumps(p.chat_request(req, False).payload)  # the bytes signed are the bytes sent
    assert ("%2F" in aws.raw_paths[0]) == ("/" in model)  # a slash in an ARN stays inside one path segment


@needs_botocore
async def test_secrets_never_shown(aws: AWSFake) -> None:
    aws.on(
        "POST",
        CHAT_PATH,
        Reply(
            status=403,
            headers={"x-amzn-ErrorType": "InvalidSignatureException"},
            json={"message": f"signature for {SECRET} / {TOKEN} does not match"},
        ),
    )
    config = ProviderConfig(
        "bedrock",
        "bedrock",
        base_url=aws.url,
        options={
            "region": "us-east-1",
            "aws_access_key_id": AKID,
            "aws_secret_access_key": SECRET,
            "aws_session_token": TOKEN,
        },
    )
    p = BedrockProvider(config)
    with pytest.raises(errors.AuthenticationError) as exc:
        await p.chat(ask())
    shown = [str(exc.value), repr(exc.value), repr(p), repr(config), str(config.options), repr(p._auth)]
    assert not any(SECRET in s or TOKEN in s for s in shown)
    rec = aws.requests[-1]
    assert SECRET not in json.dumps(rec.headers) and SECRET.encode() not in rec.body
    config.options["models_base_url"] = aws.url  # no such route on the fake: NotFound
    check = await p.test_connection()
    assert not check.ok and SECRET not in check.detail and SECRET not in repr(check)


async def test_bearer_token(aws: AWSFake, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmrelay.providers.bedrock.auth as module

    monkeypatch.setattr(module, "find_spec", lambda name: None)  # no botocore needed for a Bedrock API key
    aws.on("POST", CHAT_PATH, Reply(json=converse_answer([{"text": "Hi!"}])))
    p = bearer(aws)  # no region either: base_url is enough
    assert (await p.chat(ask())).content == "Hi!"
    headers = aws.requests[-1].headers
    assert headers["Authorization"] == f"Bearer {API_KEY}" and "X-Amz-Date" not in headers
    assert API_KEY not in repr(p) and API_KEY not in repr(p.config)
    both = ProviderConfig(
        "b",
        "bedrock",
        api_key=API_KEY,
        options={"region": "eu-west-1", "aws_access_key_id": AKID, "aws_secret_access_key": SECRET},
    )
    assert isinstance(BedrockProvider(both)._auth, module._BearerAuth)  # the API key wins, as in the AWS SDKs
    assert BedrockProvider(both).model_url(NOVA, "converse") == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/us.amazon.nova-micro-v1:0/converse"
    )


def test_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmrelay.providers.bedrock.auth as module

    def make(**options: Any) -> BedrockProvider:
        return BedrockProvider(ProviderConfig("b", "bedrock", options=options))

    with pytest.raises(errors.ConfigError, match="api_key"):
        make(region="us-east-1")
    with pytest.raises(errors.ConfigError, match="aws_secret_access_key is missing"):
        make(region="us-east-1", aws_access_key_id=AKID)
    with pytest.raises(errors.ConfigError, match="region"):
        make(aws_access_key_id=AKID, aws_secret_access_key=SECRET)
    monkeypatch.setattr(module, "find_spec", lambda name: None)
    with pytest.raises(errors.ConfigError) as missing:
        make(region="us-east-1", aws_access_key_id=AKID, aws_secret_access_key=SECRET)
    assert install_hint("bedrock") in str(missing.value) and SECRET not in str(missing.value)
    vpce = ProviderConfig(
        "b", "bedrock", base_url="https://vpce-0a1b.bedrock-runtime.us-gov-west-1.vpce.amazonaws.com", api_key=API_KEY
    )
    assert BedrockProvider(vpce).region == "us-gov-west-1"


def test_model_ids_survive_url_normalisation() -> None:
    import yarl

    p = BedrockProvider(ProviderConfig("b", "bedrock", api_key=API_KEY, options={"region": "us-west-2"}))
    for model in [
        NOVA,
        "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/a1b2c3",
        "weird model+id%/é",
        "a!b$c&d'e(f)g*h,i;j=k:l@m+n/o%p q~r_s.t-u[]{}|^`\"<>#?",
    ]:
        url = p.model_url(model, "converse")
        assert str(yarl.URL(url)) == url  # what the HTTP client sends is what was signed
        assert yarl.URL(url).path == f"/model/{model}/converse"


# ---- errors -------------------------------------------------------------------------------------


async def test_recorded_400_error(aws: AWSFake) -> None:
    (interaction,) = load_cassette("bedrock-converse-stream-400-error.cassette.yaml")
    model = "us.does-not-exist-model-v1:0"
    aws.on("POST", f"/model/{model}/converse-stream", Reply(status=400, json=interaction.response_json))
    aws.on("POST", f"/model/{model}/converse", Reply(status=400, json=interaction.response_json))
    p = bearer(aws)
    for call in (collect, BedrockProvider.chat):
        with pytest.raises(errors.InvalidRequest) as exc:
            await call(p, ask("hello", model))
        assert type(exc.value) is errors.InvalidRequest and exc.value.status_code == 400
        assert str(exc.value) == "bedrock: The provided model identifier is invalid." and not exc.value.retryable


@pytest.mark.parametrize(
    ("status", "kind", "message", "cls", "retryable"),
    [
        (400, "ValidationException", "Input is too long for requested model.", errors.ContextWindowExceeded, False),
        (
            400,
            "ValidationException",
            "The model returned the following errors: prompt is too long: 210000 tokens",
            errors.ContextWindowExceeded,
            False,
        ),
        (400, "ValidationException", "Malformed input request", errors.InvalidRequest, False),
        (403, "AccessDeniedException", "You don't have access to the model", errors.PermissionDenied, False),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            errors.AuthenticationError,
            False,
        ),
        (
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
            errors.AuthenticationError,
            False,
        ),
        (404, "ResourceNotFoundException", "Model not found", errors.NotFound, False),
        (429, "ThrottlingException", "Too many requests", errors.RateLimited, True),
        (503, "ServiceUnavailableException", "unavailable", errors.Overloaded, True),
        (429, "ModelNotReadyException", "not ready", errors.Overloaded, True),
        (500, "InternalServerException", "internal", errors.ProviderError, True),
        (424, "ModelErrorException", "model failed", errors.ProviderError, True),
        (408, "ModelTimeoutException", "timeout", errors.Timeout, True),
    ],
)
async def test_http_errors_map_to_classes(
    aws: AWSFake, status: int, kind: str, message: str, cls: type[errors.LLMError], retryable: bool
) -> None:
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"}
    aws.on("POST", CHAT_PATH, Reply(status=status, json={"message": message}, headers=headers))
    with pytest.raises(cls) as exc:
        await bearer(aws).chat(ask())
    assert type(exc.value) is cls and exc.value.retryable is retryable and exc.value.status_code == status
    assert str(exc.value) == f"bedrock: {kind}: {message}"


async def test_error_type_in_body_and_html(aws: AWSFake) -> None:
    html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    aws.on(
        "POST",
        CHAT_PATH,
        Reply(status=400, json={"__type": "com.amazon.coral.service#ThrottlingException", "Message": "slow"}),
        Reply(status=502, body=html, content_type="text/html"),
    )
    p = bearer(aws)
    with pytest.raises(errors.RateLimited, match="ThrottlingException: slow"):
        await p.chat(ask())
    with pytest.raises(errors.ProviderError, match="HTML page") as exc:
        await p.chat(ask())
    assert "502 Bad Gateway" in str(exc.value)


# ---- models and test_connection ---------------------------------------------------------------


@needs_botocore
async def test_models_and_test_connection(aws: AWSFake) -> None:
    summaries = [
        {
            "modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0",
            "modelId": "amazon.nova-micro-v1:0",
            "modelName": "Nova Micro",
            "providerName": "Amazon",
            "inputModalities": ["TEXT"],
            "outputModalities": ["TEXT"],
            "responseStreamingSupported": True,
            "modelLifecycle": {"status": "ACTIVE"},
        },
        {
            "modelId": "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "inputModalities": ["TEXT", "IMAGE"],
            "outputModalities": ["TEXT"],
            "responseStreamingSupported": True,
        },
        {
            "modelId": "amazon.titan-embed-text-v2:0",
            "inputModalities": ["TEXT"],
            "outputModalities": ["EMBEDDING"],
            "responseStreamingSupported": False,
        },
    ]
    aws.on(
        "GET",
        "/foundation-models",
        Reply(json={"modelSummaries": summaries}),
        Reply(json={"modelSummaries": summaries}),
        Reply(status=403, json={"message": "not allowed"}, headers={"x-amzn-ErrorType": "AccessDeniedException"}),
    )
    p = sigv4(aws)
    models = await p.models()
    assert [m.id for m in models] == [s["modelId"] for s in summaries]
    nova, claude, titan = models
    assert nova.input_price_per_mtok is not None and nova.raw["modelName"] == "Nova Micro"
    assert claude.supports_vision and claude.context_window == 200_000
    assert titan.output_modalities == ("embedding",) and not titan.supports_streaming
    assert verify_signature(aws.requests[-1], aws.raw_paths[-1]) == ["host", "x-amz-date", "x-amz-security-token"]
    check = await p.test_connection()
    assert check.ok and check.detail == "3 models listed"
    check = await p.test_connection()
    assert not check.ok and check.detail.startswith("PermissionDenied: AccessDeniedException")
    no_region = bearer(aws)
    with pytest.raises(errors.ConfigError, match="models_base_url"):
        await no_region.models()


def test_usage_normalisation() -> None:
    assert usage_from_wire({"inputTokens": 5, "outputTokens": 7, "totalTokens": 12}).prompt_tokens == 5
    u = usage_from_wire(
        {
            "inputTokens": 5,
            "outputTokens": 7,
            "totalTokens": 132,
            "cacheReadInputTokens": 100,
            "cacheWriteInputTokens": 20,
        }
    )
    assert (u.prompt_tokens, u.cached_tokens, u.cache_write_tokens, u.total_tokens) == (125, 100, 20, 132)
    inclusive = usage_from_wire(
        {"inputTokens": 125, "outputTokens": 7, "totalTokens": 132, "cacheReadInputTokens": 100}
    )
    assert inclusive.prompt_tokens == 125  # never counted twice


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_tool_use", "error"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(stop: str, reason: str) -> None:
    calls = [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}] if stop == "tool_use" else []
    r = decode_chat(converse_answer([{"text": "x"}, *calls], stop), provider="b", model=NOVA)
    assert (r.finish_reason, r.native_finish_reason) == (reason, stop)


def test_malformed_answer() -> None:
    with pytest.raises(errors.ProviderError, match=r"no output\.message\.content"):
        decode_chat({"output": {}}, provider="b", model=NOVA)
