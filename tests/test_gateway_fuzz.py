"""Fuzzing the gateway's request handling: thousands of generated bodies, from
random JSON to near-valid requests with wrong types in every field, sent to the
ASGI application in process. None may produce a 5xx or a non-JSON answer: bad
input is a 4xx naming the problem, in the format of the route's API."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay import AsyncClient, ModelGroup
from llmrelay.gateway import Gateway
from llmrelay.store import Store
from llmrelay.testing import FakeProvider, Reply

ROUTES = [
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages", "/v1/messages/count_tokens",
    "/v1/responses", "/v1beta/models/g:generateContent", "/v1beta/models/g:countTokens",
    "/v1beta/models/fake/m:embedContent", "/v1beta/models/fake/m:batchEmbedContents",
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "robot", 3, None])
content_parts = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url", "image", "tool_result", "tool_use", "x", 1])},
        optional={
            "text": json_values,
            "image_url": st.one_of(json_values, st.fixed_dictionaries({"url": json_values})),
            "source": json_values,
            "input": json_values,
            "content": json_values,
            "id": json_values,
        },
    ),
    max_size=3,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles},
        optional={
            "content": st.one_of(st.text(max_size=20), content_parts, json_values),
            "tool_calls": json_values,
            "tool_call_id": json_values,
            "name": json_values,
        },
    ),
    max_size=3,
)
gemini_contents = st.lists(
    st.fixed_dictionaries({"role": roles, "parts": st.one_of(content_parts, json_values)}), max_size=2
)
tool_lists = st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": json_values}), max_size=2)
near_valid = st.fixed_dictionaries(
    {"model": st.one_of(st.just("fake/m"), st.just("g"), json_values)},
    optional={
        "messages": st.one_of(messages, json_values),
        "input": json_values,
        "max_tokens": json_values,
        "temperature": json_values,
        "top_p": json_values,
        "stop": json_values,
        "stop_sequences": json_values,
        "seed": json_values,
        "stream": json_values,
        "stream_options": json_values,
        "tools": st.one_of(json_values, tool_lists),
        "tool_choice": json_values,
        "response_format": json_values,
        "system": json_values,
        "user": json_values,
        "encoding_format": json_values,
        "dimensions": json_values,
        "metadata": json_values,
        "prompt": st.one_of(st.text(max_size=12), json_values),
        "echo": json_values,
        "n": json_values,
        "best_of": json_values,
        "logprobs": json_values,
        "suffix": json_values,
        "instructions": json_values,
        "previous_response_id": st.one_of(st.just("resp_unknown"), json_values),
        "store": json_values,
        "text": st.one_of(st.fixed_dictionaries({"format": json_values}), json_values),
        "reasoning": json_values,
        "max_output_tokens": json_values,
        "parallel_tool_calls": json_values,
        "truncation": json_values,
        "include": json_values,
        "contents": st.one_of(gemini_contents, json_values),
        "systemInstruction": json_values,
        "generationConfig": json_values,
        "toolConfig": json_values,
        "safetySettings": json_values,
        "content": json_values,
        "requests": json_values,
    },
)  # fmt: skip
bodies = st.one_of(
    near_valid.map(orjson.dumps),
    json_values.map(orjson.dumps),
    st.binary(max_size=40),
)


async def call(app: Gateway, path: str, body: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http", "method": "POST", "path": path, "headers": [(b"content-type", b"application/json")],
        "query_string": b"", "http_version": "1.1", "scheme": "http",
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), 10)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@functools.cache
def shared_store() -> Store:
    return Store.open("sqlite://")  # in memory: stored responses, conversations


def gateway() -> Gateway:
    fake = FakeProvider("fake", [Reply("ok")])
    client = AsyncClient(env={}, providers=[fake], models=[ModelGroup("g", ["fake/m"])])
    return Gateway(client, open_access=True, store=shared_store())


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(ROUTES), body=bodies)
def test_no_body_makes_the_gateway_fail(path: str, body: bytes) -> None:
    app = gateway()
    status, raw = asyncio.run(call(app, path, body))
    assert status < 500, (status, raw[:500])
    if status >= 400:
        data = orjson.loads(raw)
        message = data["error"]["message"]
        assert isinstance(message, str) and message
        if path.startswith("/v1/messages"):
            assert data["type"] == "error"
    elif b"text/event-stream" not in raw:  # a 200 JSON answer parses
        orjson.loads(raw.split(b"\n\n")[0] if raw.startswith(b"data:") or raw.startswith(b"event:") else raw)


def test_valid_bodies_are_answered() -> None:
    """The fuzzer's target answers well-formed requests (so its 4xx are about the input)."""
    hi = [{"role": "user", "content": "hi"}]
    valid = {
        "/v1/chat/completions": {"model": "g", "messages": hi},
        "/v1/completions": {"model": "g", "prompt": "hi"},
        "/v1/embeddings": {"model": "fake/m", "input": ["a", "b"]},
        "/v1/messages": {"model": "g", "max_tokens": 5, "messages": hi},
        "/v1/messages/count_tokens": {"model": "g", "messages": hi},
        "/v1/responses": {"model": "g", "input": "hi"},
        "/v1beta/models/g:generateContent": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        "/v1beta/models/g:countTokens": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        "/v1beta/models/fake/m:embedContent": {"content": {"parts": [{"text": "hi"}]}},
        "/v1beta/models/fake/m:batchEmbedContents": {"requests": [{"content": {"parts": [{"text": "hi"}]}}]},
    }
    app = gateway()
    for path, body in valid.items():
        status, raw = asyncio.run(call(app, path, orjson.dumps(body)))
        assert status == 200, (path, raw)
