"""The gateway's Anthropic Messages API, with the official ``anthropic`` SDK as the
client: an OpenAI deployment (fake upstream) and an Anthropic one (recorded
answers) both answer in Anthropic's format, streams in its exact event order."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import pytest

from fakeserver import Reply
from gateways import MASTER, Served
from recordings import load_sse

CHAT = "/v1/chat/completions"


def answer(text: str, **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text, **message},
             "finish_reason": "tool_calls" if "tool_calls" in message else "stop"}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 3}},
    }  # fmt: skip


def sse(*texts: str, tools: list[dict[str, Any]] = ()) -> list[bytes]:  # type: ignore[assignment]
    events: list[dict[str, Any]] = [
        {"id": "c", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
        for t in texts
    ]
    for tool in tools:
        events.append({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [tool]}, "finish_reason": None}]})
    finish = "tool_calls" if tools else "stop"
    events.append({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    events.append({"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


HI = [{"role": "user", "content": "Hi"}]


async def test_messages_json_from_an_openai_deployment(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("Hello from OpenAI.")))
    msg = await gw.claude().messages.create(
        model="smart",
        max_tokens=50,
        system="Be brief.",
        messages=HI,
        stop_sequences=["END"],  # type: ignore[arg-type]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello from OpenAI."
    assert msg.stop_reason == "end_turn" and msg.model == "gpt-4o-mini-2024-07-18"
    assert (msg.usage.input_tokens, msg.usage.output_tokens, msg.usage.cache_read_input_tokens) == (8, 4, 3)
    sent = gw.upstream.requests[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."} and sent["stop"] == ["END"]


async def test_streams_follow_the_messages_event_sequence(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Hel", "lo")))
    kinds = []
    async with gw.claude().messages.stream(model="smart", max_tokens=50, messages=HI) as stream:  # type: ignore[arg-type]
        async for event in stream:
            kinds.append(event.type)
        final = await stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "Hello"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 7
    raw = [k for k in kinds if k not in ("text",)]  # the SDK adds a "text" event per delta
    assert raw == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip


async def test_tool_use_round_trip_in_both_formats(gw: Served) -> None:
    first = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "weather", "arguments": '{"city": '}}
    rest = {"index": 0, "function": {"arguments": '"Rome"}'}}
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Let me check.", tools=[first, rest])))
    tools = [{"name": "weather", "description": "Weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}]  # fmt: skip
    async with gw.claude().messages.stream(
        model="smart",
        max_tokens=50,
        messages=HI,
        tools=tools,  # type: ignore[arg-type]
    ) as stream:
        kinds = [event.type async for event in stream if event.type.startswith("content_block")]
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"] and final.stop_reason == "tool_use"
    assert final.content[1].input == {"city": "Rome"} and final.content[1].id == "call_9"  # type: ignore[union-attr]
    assert kinds.count("content_block_start") == 2 and kinds.count("content_block_stop") == 2
    done = {"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}
    gw.upstream.on("POST", CHAT, Reply(json=answer("", tool_calls=[done])))
    msg = await gw.claude().messages.create(model="smart", max_tokens=50, messages=HI, tools=tools)  # type: ignore[arg-type]
    use = [b for b in msg.content if b.type == "tool_use"]
    assert use and use[0].name == "weather" and use[0].input == {"city": "Rome"} and msg.stop_reason == "tool_use"
    assert gw.upstream.requests[-1].json["tools"][0]["function"]["name"] == "weather"


async def test_a_recorded_anthropic_stream_passes_through(gw: Served) -> None:
    gw.anthropic.on("POST", "/v1/messages", Reply(chunks=[load_sse("anthropic-stream-basic-text-ping.sse")]))
    async with gw.claude().messages.stream(model="claude", max_tokens=50, messages=HI) as stream:  # type: ignore[arg-type]
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]


async def test_count_tokens(gw: Served) -> None:
    counted = await gw.claude().messages.count_tokens(model="openai/gpt-4o", messages=HI)  # type: ignore[arg-type]
    assert counted.input_tokens > 0
    longer = await gw.claude().messages.count_tokens(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "Hi " * 100}]
    )
    assert longer.input_tokens > counted.input_tokens + 50


async def test_errors_in_the_anthropic_format(gw: Served) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        await gw.claude("wrong").messages.create(model="smart", max_tokens=5, messages=HI)  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError):
        await gw.claude().messages.create(model="nope", max_tokens=5, messages=HI)  # type: ignore[arg-type]
    gw.upstream.on("POST", CHAT, Reply(status=429, headers={"retry-after": "3"}, json={
        "error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}))  # fmt: skip
    with pytest.raises(anthropic.RateLimitError):
        await gw.claude().messages.create(model="smart", max_tokens=5, messages=HI)  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as http:
        for body, needle in (
            ({"model": "smart", "messages": HI}, "max_tokens: Field required"),
            ({"model": "smart", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, "messages.0"),
            ({"model": "smart", "max_tokens": "5", "messages": HI}, "max_tokens: must be an integer"),
            ({"model": "smart", "max_tokens": 5, "messages": HI, "tool_choice": {"type": "x"}}, "tool_choice"),
        ):
            async with http.post(gw.url + "/v1/messages", json=body, headers={"x-api-key": MASTER}) as r:
                data = await r.json()
                assert r.status == 400 and data["type"] == "error", data
                assert data["error"]["type"] == "invalid_request_error" and needle in data["error"]["message"]
