"""The gateway's OpenAI API, with the official ``openai`` SDK as the client.

The gateway runs on uvicorn on 127.0.0.1 in the test's loop; upstream is a fake
OpenAI server (also on 127.0.0.1), or a recorded Anthropic answer, so the SDK
sees an Anthropic deployment answer in OpenAI's format.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import openai
import pytest

from fakeserver import Reply
from gateways import MASTER, Served
from recordings import load_cassette, load_sse

CHAT = "/v1/chat/completions"


def answer(text: str, **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text, **message}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }


def sse(*texts: str) -> list[bytes]:
    events: list[dict[str, Any]] = [
        {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [
            {"index": 0, "delta": {"content": t}, "finish_reason": None}]}
        for t in texts
    ]  # fmt: skip
    events.append({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(texts)}})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


async def test_chat_completion_json(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("Paris.")))
    raw = await gw.sdk().chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": "Capital of France?"}], max_tokens=20, temperature=0
    )
    r = raw.parse()
    assert r.choices[0].message.content == "Paris." and r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (9, 3)
    assert r.model == "gpt-4o-mini-2024-07-18"  # the model that answered, not the alias
    assert raw.headers["x-llmrelay-deployment"] == "openai/gpt-4o-mini" and raw.headers["x-llmrelay-group"] == "smart"
    sent = gw.upstream.requests[-1]
    assert sent.json["model"] == "gpt-4o-mini" and sent.json.get("max_completion_tokens") == 20
    assert sent.headers["Authorization"] == "Bearer sk-upstream-key-123456"  # the gateway's key, not the caller's


async def test_an_anthropic_deployment_answers_in_openai_format(gw: Served) -> None:
    recorded = load_cassette("anthropic-message-nonstream-retry-after-header.cassette.yaml")[0]
    gw.anthropic.on("POST", "/v1/messages", Reply(json=recorded.response_json))
    r = await gw.sdk().chat.completions.create(model="claude", messages=[{"role": "user", "content": "Paris?"}])
    assert r.choices[0].message.content and r.choices[0].message.content.startswith("Paris is known as")
    assert r.model.startswith("claude-sonnet-4-5")
    gw.anthropic.on("POST", "/v1/messages", Reply(chunks=[load_sse("anthropic-stream-basic-text-ping.sse")]))
    stream = await gw.sdk().chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text


async def test_streaming_with_usage(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Hel", "lo", "!")))
    stream = await gw.sdk().chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "Hi"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello!"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3 and not chunks[-1].choices


async def test_streams_give_their_upstream_connection_back_to_the_pool(gw: Served) -> None:
    """The provider reads each stream's body to its end, so the next call reuses the connection."""
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Hel", "lo")))
    for _ in range(3):
        stream = await gw.sdk().chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hello"
    peers = {r.peer for r in gw.upstream.requests}
    assert len(gw.upstream.requests) == 3 and len(peers) == 1, peers


async def test_tool_calls_round_trip(gw: Served) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}
    gw.upstream.on("POST", CHAT, Reply(json=answer("", tool_calls=[call])))
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip
    r = await gw.sdk().chat.completions.create(
        model="smart",
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=tools,  # type: ignore[arg-type]
    )
    calls = r.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Rome"}  # type: ignore[union-attr]
    assert gw.upstream.requests[-1].json["tools"][0]["function"]["name"] == "weather"


async def test_embeddings_float_and_base64(gw: Served) -> None:
    vectors = [[0.25, -0.5, 1.0], [0.125, 0.0, -1.0]]

    def reply(vecs: list[list[float]]) -> Reply:
        return Reply(json={
            "object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 4, "total_tokens": 4},
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)],
        })  # fmt: skip

    gw.upstream.on("POST", "/v1/embeddings", reply(vectors), reply(vectors[:1]))
    sdk = gw.sdk()
    as_b64 = await sdk.embeddings.create(model="openai/text-embedding-3-small", input=["a", "b"])  # SDK asks base64
    assert [d.embedding for d in as_b64.data] == vectors
    as_float = await sdk.embeddings.create(model="openai/text-embedding-3-small", input="a", encoding_format="float")
    assert as_float.data[0].embedding == vectors[0] and as_float.usage.prompt_tokens == 4


async def test_models(gw: Served) -> None:
    sdk = gw.sdk()
    names = [m.id async for m in sdk.models.list()]
    assert {"smart", "claude"} <= set(names)
    assert (await sdk.models.retrieve("smart")).id == "smart"
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("no-such-model")


async def test_errors_come_as_the_sdk_expects(gw: Served) -> None:
    sdk = gw.sdk()
    msgs = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.AuthenticationError):
        await gw.sdk("wrong-key").chat.completions.create(model="smart", messages=msgs)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        await sdk.chat.completions.create(model="nope", messages=msgs)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="max_tokens must be a positive integer"):
        await sdk.chat.completions.create(model="smart", messages=msgs, max_tokens=-3)  # type: ignore[arg-type]
    gw.upstream.on("POST", CHAT, Reply(status=429, headers={"retry-after": "7"}, json={
        "error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}))  # fmt: skip
    with pytest.raises(openai.RateLimitError) as limited:
        await sdk.chat.completions.create(model="smart", messages=msgs)  # type: ignore[arg-type]
    assert limited.value.response.headers["retry-after"] == "7"
    gw.upstream.on("POST", CHAT, Reply(status=401, json={"error": {"message": "bad key", "type": "auth"}}))
    with pytest.raises(openai.APIStatusError) as upstream_auth:
        await sdk.chat.completions.create(model="smart", messages=msgs)  # type: ignore[arg-type]
    assert upstream_auth.value.status_code == 502  # the gateway's upstream key, not the caller's fault
    gw.upstream.on("POST", CHAT, Reply(status=500, json={"error": {"message": "upstream melted"}}))
    with pytest.raises(openai.InternalServerError):
        await sdk.chat.completions.create(model="smart", messages=msgs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "body is empty"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"model": "smart"}', 400, "'messages' is required"),
        (b'{"model": 5, "messages": []}', 400, "'model' is required and must be a string"),
        (b'{"model": "smart", "messages": [], "stream": "yes"}', 400, "'stream' must be true or false"),
        (b'{"model": "smart", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400,
         "temperature must be a number"),
        (b'{"model": "smart", "messages": "' + b"x" * 70000 + b'"}', 413, "over the 65536 byte limit"),
    ],
    ids=["malformed", "empty", "array", "no-messages", "model-type", "stream-type", "temperature-type", "too-big"],
)  # fmt: skip
async def test_bad_requests_are_4xx_in_the_openai_format(gw: Served, body: bytes, status: int, needle: str) -> None:
    headers = {"authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession() as http, http.post(gw.url + CHAT, data=body, headers=headers) as r:
        error = (await r.json())["error"]
        assert r.status == status, error
    assert needle in error["message"] and error["type"] == "invalid_request_error"


async def test_routes_and_health(gw: Served) -> None:
    auth = {"authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(gw.url + "/health/live") as r:
            assert await r.json() == {"status": "ok"}
        async with http.get(gw.url + "/health/ready") as r:
            assert r.status == 200 and (await r.json())["status"] == "ready"
        async with http.get(gw.url + "/v2/nothing") as r:
            assert r.status == 404 and "no route" in (await r.json())["error"]["message"]
        async with http.get(gw.url + CHAT, headers=auth) as r:
            assert r.status == 405
        async with http.get(gw.url + "/v1/models", headers={"x-api-key": MASTER}) as r:
            assert r.status == 200


async def test_a_client_leaving_mid_stream_stops_the_upstream_call(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse(*[f"w{i} " for i in range(50)]), chunk_delay_s=0.05))
    body = {"model": "smart", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    headers = {"authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession() as http, http.post(gw.url + CHAT, json=body, headers=headers) as r:
        assert r.status == 200
        async for line in r.content:
            if b"w1" in line:
                break
    stats = gw.client.router.monitor.stats("openai/gpt-4o-mini")
    for _ in range(100):  # the gateway notices the disconnect and closes its upstream stream
        if stats.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert stats.in_flight == 0
    assert gw.upstream.count(CHAT) == 1


async def test_metrics_count_requests_tokens_attempts_and_health(gw: Served) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    gw.upstream.on("POST", CHAT, Reply(json=answer("one")), Reply(chunks=sse("t", "wo")))
    sdk = gw.sdk()
    await sdk.chat.completions.create(model="smart", messages=[{"role": "user", "content": "Hi"}])
    stream = await sdk.chat.completions.create(model="smart", messages=[{"role": "user", "content": "Hi"}], stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "two"
    with pytest.raises(openai.NotFoundError):
        await sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    async with aiohttp.ClientSession() as http, http.get(gw.url + "/metrics") as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
        text = await r.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("llmrelay_requests_total", route=CHAT, model="smart", status="200") == 2
    assert value("llmrelay_requests_total", route=CHAT, model="", status="404") == 1
    assert value("llmrelay_errors_total", error="NotFound") == 1
    assert value("llmrelay_tokens_total", model="smart", kind="completion") == 3 + 2
    assert value("llmrelay_attempts_total", deployment="openai/gpt-4o-mini", outcome="ok") == 2
    assert value("llmrelay_time_to_first_token_seconds_count") == 1
    assert value("llmrelay_gateway_overhead_seconds_count") == 2
    assert value("llmrelay_deployment_healthy", group="smart", deployment="openai/gpt-4o-mini") == 1


async def test_request_ids_and_access_logs(gw: Served, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from llmrelay.gateway.logs import JsonFormatter

    gw.upstream.on("POST", CHAT, Reply(json=answer("logged")))
    caplog.set_level(logging.INFO, logger="llmrelay.gateway.access")
    sdk = gw.sdk()
    raw = await sdk.chat.completions.with_raw_response.create(
        model="smart",
        messages=[{"role": "user", "content": "a secret prompt"}],
        extra_headers={"x-request-id": "abc-123"},
    )
    assert raw.headers["x-request-id"] == "abc-123"
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    generated = missing.value.response.headers["x-request-id"]
    assert generated.startswith("req_") and generated != "abc-123"
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "llmrelay.gateway.access"]
    ok = next(line for line in lines if line["request_id"] == "abc-123")
    assert (ok["status"], ok["model"], ok["deployment"], ok["completion_tokens"]) == (
        200,
        "smart",
        "openai/gpt-4o-mini",
        3,
    )
    failed = next(line for line in lines if line["request_id"] == generated)
    assert failed["status"] == 404 and failed["error"] == "NotFound"
    text = caplog.text + "".join(JsonFormatter().format(r) for r in caplog.records)
    assert MASTER not in text and "sk-upstream-key" not in text and "a secret prompt" not in text


async def test_the_openapi_document_and_docs_page_cover_every_route(gw: Served) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(gw.url + "/openapi.json") as r:
            assert r.status == 200
            doc = await r.json()
        async with http.get(gw.url + "/docs") as r:
            assert r.status == 200 and r.headers["content-type"].startswith("text/html")
            page = await r.text()
    served = {(method.lower(), path) for (method, path) in gw.app.routes.endpoints()} - {
        ("get", "/metrics"), ("get", "/openapi.json"), ("get", "/docs"),
        ("get", "/ui"), ("get", "/ui/"), ("get", "/ui/assets/{name}"),  # the dashboard's page, not an API
    }  # fmt: skip
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert documented == served
    assert doc["openapi"].startswith("3.1") and all(path in page for _, path in documented)
    chat = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert chat["required"] == ["model", "messages"]
