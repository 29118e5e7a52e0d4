"""The OpenAI wire format over real HTTP against recorded answers and faults."""

from __future__ import annotations

import json

import pytest

from fakeserver import FakeServer, Reply, split_every
from llmrelay import errors
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.openai.azure import AzureOpenAIProvider
from llmrelay.providers.openai.provider import OpenAIProvider
from llmrelay.types import (
    ChatRequest,
    EmbeddingRequest,
    Finish,
    ImagePart,
    Message,
    ResponseFormat,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolSpec,
)
from recordings import load_cassette, load_chunks_as_sse, load_sse
from streams import collect

KEY = "sk-test-SECRETKEY1234567890"


def provider(fake: FakeServer, kind: str = "openai") -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(name=kind, kind=kind, base_url=fake.url + "/v1", api_key=KEY))


def ask(text: str = "Hi", **kw: object) -> ChatRequest:
    return ChatRequest(model="gpt-4o-mini", messages=[Message("user", text)], **kw)  # type: ignore[arg-type]


async def test_parallel_tool_calls_stream_assembles_by_index(fake: FakeServer) -> None:
    raw = load_sse("openai-chat-stream-parallel-tool-calls-usage.sse")
    fake.on("POST", "/v1/chat/completions", Reply(chunks=split_every(raw, 97)))
    events = await collect(provider(fake), ask())
    finish = events[-1]
    assert isinstance(finish, Finish)
    r = finish.response
    assert r.finish_reason == "tool_calls"
    assert [c.name for c in r.tool_calls] == ["GetWeatherArgs", "get_stock_price"]
    assert r.tool_calls[0].arguments == {"city": "Edinburgh", "country": "GB", "units": "c"}
    assert r.tool_calls[1].arguments == {"ticker": "AAPL", "exchange": "NASDAQ"}
    assert r.tool_calls[0].id == "call_JMW1whyEaYG438VE1OIflxA2"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (149, 60)
    assert r.model == "gpt-4o-2024-08-06"
    # deltas arrive as they came: several fragments per call, never merged into one burst
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len([d for d in deltas if d.index == 1]) > 3
    # the outgoing request asked for usage in the stream
    sent = fake.requests[-1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {KEY}"


async def test_finish_length_stream(fake: FakeServer) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(chunks=[load_sse("openai-chat-stream-finish-length.sse")]))
    events = await collect(provider(fake), ask())
    r = events[-1].response  # type: ignore[union-attr]
    assert r.finish_reason == "length" and r.content == '{"'
    assert r.usage.completion_tokens == 1


async def test_include_usage_cassette_two_turns(fake: FakeServer) -> None:
    first, second = load_cassette("openai-chat-stream-include-usage-tool-call.cassette.yaml")
    fake.on("POST", "/v1/chat/completions", Reply(chunks=[first.body]), Reply(chunks=[second.body]))
    p = provider(fake)
    tools = [ToolSpec("get_capital", "", first.request_json["tools"][0]["function"]["parameters"], strict=True)]
    req = ChatRequest(
        "gpt-4o-mini", [Message("user", first.request_json["messages"][0]["content"])], tools=tools, tool_choice="auto"
    )
    r1 = (await collect(p, req))[-1].response  # type: ignore[union-attr]
    assert r1.tool_calls[0].arguments == {"country": "UK"}
    assert (r1.usage.prompt_tokens, r1.usage.completion_tokens) == (53, 15)
    # the next turn, built from canonical messages, is the same request the SDK sent
    req.messages += [r1.message, Message("tool", "London", tool_call_id=r1.tool_calls[0].id)]
    r2 = (await collect(p, req))[-1].response  # type: ignore[union-attr]
    assert "London" in r2.content and r2.finish_reason == "stop"
    sent = fake.requests[-1].json
    expected = second.request_json
    assert sent["messages"][1]["tool_calls"] == expected["messages"][1]["tool_calls"]
    assert sent["messages"][2] == expected["messages"][2]
    assert sent["tools"] == expected["tools"]


async def test_ollama_compat_reasoning_field(fake: FakeServer) -> None:
    first, second = load_cassette("ollama-openai-compat-tool-call.cassette.yaml")
    fake.on("POST", "/v1/chat/completions", Reply(json=first.response_json), Reply(json=second.response_json))
    p = provider(fake, "ollama")
    r = await p.chat(ask("What is the capital of France?"))
    assert r.content == "Paris." and r.reasoning and "capital" in r.reasoning
    assert r.cost_usd is None  # self-hosted: unknown price, not a made-up 0
    r2 = await p.chat(ask())
    assert r2.finish_reason == "tool_calls" and r2.tool_calls[0].arguments == {"city": "Paris", "country": "France"}


async def test_chat_json_answer_and_wire_request(fake: FakeServer) -> None:
    fake.on(
        "POST",
        "/v1/chat/completions",
        Reply(
            json=_completion(
                "Hello!",
                usage={
                    "prompt_tokens": 20,
                    "completion_tokens": 5,
                    "prompt_tokens_details": {"cached_tokens": 10},
                    "completion_tokens_details": {"reasoning_tokens": 2},
                },
            )
        ),
    )
    req = ChatRequest(
        "gpt-4o-mini",
        [
            Message("system", "Be brief"),
            Message(
                "user", [TextPart("What is this?"), ImagePart(data="aGVsbG8=", media_type="image/png", detail="low")]
            ),
        ],
        temperature=0.2,
        max_tokens=50,
        stop=["\n"],
        seed=7,
        user="u1",
        extra={"logprobs": True},
    )
    r = await provider(fake).chat(req)
    assert r.content == "Hello!" and r.finish_reason == "stop"
    assert (r.usage.cached_tokens, r.usage.reasoning_tokens) == (10, 2)
    assert r.cost_usd is not None and r.cost_usd > 0
    sent = fake.requests[-1].json
    assert sent["max_completion_tokens"] == 50 and sent["seed"] == 7 and sent["logprobs"] is True
    assert sent["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,aGVsbG8=", "detail": "low"},
    }


async def test_refusal_and_unknown_fields_kept(fake: FakeServer) -> None:
    body = _completion(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    body["obfuscation"] = "xyz"
    fake.on("POST", "/v1/chat/completions", Reply(json=body))
    r = await provider(fake).chat(ask())
    assert r.refusal == "I can't help with that." and r.content == ""
    assert r.raw["obfuscation"] == "xyz"


async def test_structured_output_native_json_schema(fake: FakeServer) -> None:
    from pydantic import BaseModel

    from llmrelay.structured import to_response_format

    class City(BaseModel):
        name: str
        population: int

    fmt = to_response_format(City)
    fake.on(
        "POST",
        "/v1/chat/completions",
        Reply(json=_completion('{"name": "Paris", "population": 2100000}')),
        Reply(json=_completion('{"name": "Paris"}')),
        Reply(json=_completion("not json")),
    )
    p = provider(fake)
    r = await p.chat(ask(response_format=fmt))
    assert r.parsed == City(name="Paris", population=2100000)
    schema = fake.requests[-1].json["response_format"]
    assert schema["type"] == "json_schema" and schema["json_schema"]["strict"] is True
    assert schema["json_schema"]["schema"]["additionalProperties"] is False
    with pytest.raises(errors.StructuredOutputError) as exc:
        await p.chat(ask(response_format=fmt))
    assert exc.value.raw_text == '{"name": "Paris"}' and "population" in str(exc.value)
    with pytest.raises(errors.StructuredOutputError) as exc2:
        await p.chat(ask(response_format=fmt))
    assert exc2.value.raw_text == "not json"


async def test_embeddings_base64_and_float(fake: FakeServer) -> None:
    (inter,) = load_cassette("openai-embeddings-base64.cassette.yaml")
    fake.on("POST", "/v1/embeddings", Reply(json=inter.response_json))
    p = provider(fake)
    r = await p.embed(EmbeddingRequest("text-embedding-3-small", ["Hello, world!"]))
    assert fake.requests[-1].json["encoding_format"] == "base64"
    assert len(r.vectors) == 1 and len(r.vectors[0]) == 1536
    assert abs(sum(x * x for x in r.vectors[0]) - 1.0) < 1e-3  # OpenAI vectors are unit length
    assert r.usage.prompt_tokens == 4 and r.cost_usd is not None
    fake.on(
        "POST",
        "/v1/embeddings",
        Reply(
            json={"data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}], "usage": {}}
        ),
    )
    r2 = await provider(fake, "vllm").embed(EmbeddingRequest("m", ["a", "b"]))
    assert r2.vectors == [[1.0, 0.0], [0.0, 1.0]]  # put back in input order
    assert "encoding_format" not in fake.requests[-1].json


async def test_recorded_error_bodies(fake: FakeServer) -> None:
    (not_found,) = load_cassette("openai-embeddings-404-model-not-found.cassette.yaml")
    (bad,) = load_cassette("openai-responses-400-error.cassette.yaml")
    fake.on("POST", "/v1/embeddings", Reply(status=404, json=not_found.response_json))
    fake.on("POST", "/v1/chat/completions", Reply(status=400, json=bad.response_json))
    p = provider(fake)
    with pytest.raises(errors.NotFound) as nf:
        await p.embed(EmbeddingRequest("nonexistent", ["x"]))
    assert "does not exist" in str(nf.value) and not nf.value.retryable and nf.value.status_code == 404
    with pytest.raises(errors.InvalidRequest) as ir:
        await p.chat(ask())
    assert "temperature" in str(ir.value)


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "retryable", "retry_after"),
    [
        (
            429,
            {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
            {"retry-after-ms": "1500", "retry-after": "9"},
            errors.RateLimited,
            True,
            1.5,
        ),
        (
            429,
            {"error": {"message": "no credit", "type": "insufficient_quota", "code": "insufficient_quota"}},
            {},
            errors.RateLimited,
            False,
            None,
        ),
        (
            400,
            {"error": {"message": "too long", "code": "context_length_exceeded"}},
            {},
            errors.ContextWindowExceeded,
            False,
            None,
        ),
        (
            401,
            {"error": {"message": "Incorrect API key provided: sk-test-SECRETKEY1234567890"}},
            {},
            errors.AuthenticationError,
            False,
            None,
        ),
        (500, {"error": {"message": "boom"}}, {"x-should-retry": "false"}, errors.ProviderError, False, None),
        (409, {"error": {"message": "conflict"}}, {"x-should-retry": "true"}, errors.ProviderError, True, None),
        (503, {"message": "busy", "type": "service_unavailable"}, {"retry-after": "2"}, errors.Overloaded, True, 2.0),
        (400, {"error": {"message": "blocked", "code": "content_filter"}}, {}, errors.ContentFiltered, False, None),
    ],
)
async def test_http_errors_map_to_classes(
    fake: FakeServer,
    status: int,
    body: dict[str, object],
    headers: dict[str, str],
    cls: type[errors.LLMError],
    retryable: bool,
    retry_after: float | None,
) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(status=status, json=body, headers=headers))
    with pytest.raises(cls) as exc:
        await provider(fake).chat(ask())
    assert exc.value.retryable is retryable and exc.value.retry_after == retry_after
    assert exc.value.provider == "openai" and exc.value.status_code == status
    assert KEY not in str(exc.value) and KEY not in repr(exc.value)


async def test_html_and_garbage_bodies(fake: FakeServer) -> None:
    html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    fake.on(
        "POST",
        "/v1/chat/completions",
        Reply(status=502, body=html, content_type="text/html"),
        Reply(status=200, body="{truncated", content_type="application/json"),
    )
    p = provider(fake)
    with pytest.raises(errors.ProviderError) as exc:
        await p.chat(ask())
    assert "HTML page" in str(exc.value) and "502 Bad Gateway" in str(exc.value) and exc.value.retryable
    with pytest.raises(errors.ProviderError) as exc2:
        await p.chat(ask())
    assert "expected JSON" in str(exc2.value)


async def test_stream_faults(fake: FakeServer) -> None:
    raw = load_sse("openai-chat-stream-parallel-tool-calls-usage.sse")
    text_stream = b"".join(
        b"data: " + json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": w}}]}).encode() + b"\n\n"
        for w in ["Hel", "lo"]
    )
    fake.on(
        "POST",
        "/v1/chat/completions",
        Reply(chunks=[raw[:40]], cut_after=1),  # cut before any event: plain, retryable
        Reply(chunks=[text_stream, b'data: {"id"'], cut_after=1),  # cut after text
        Reply(chunks=[text_stream]),  # ended without finish or [DONE]
        Reply(chunks=[text_stream, b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n']),
    )
    p = provider(fake)
    with pytest.raises(errors.LLMError) as first:
        await collect(p, ask())
    assert first.value.retryable and not isinstance(first.value, errors.StreamInterrupted)
    for _ in range(3):
        with pytest.raises(errors.StreamInterrupted) as cut:
            await collect(p, ask())
        assert cut.value.partial is not None and cut.value.partial.content == "Hello"


async def test_mistral_parts_and_quirks(fake: FakeServer) -> None:
    chunks = [
        {
            "id": "m1",
            "model": "magistral",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Let me think."}]}]
                    },
                }
            ],
        },
        {"id": "m1", "choices": [{"index": 0, "delta": {"content": [{"type": "text", "text": "Paris"}]}}]},
        {
            "id": "m1",
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4},
        },
    ]
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    fake.on("POST", "/v1/chat/completions", Reply(chunks=[body]))
    p = provider(fake, "mistral")
    events = await collect(p, ask(seed=3, tools=[ToolSpec("f")], tool_choice="required"))
    r = events[-1].response  # type: ignore[union-attr]
    assert r.content == "Paris" and r.reasoning == "Let me think." and r.usage.prompt_tokens == 10
    sent = fake.requests[-1].json
    assert sent["random_seed"] == 3 and sent["tool_choice"] == "any" and "stream_options" not in sent


async def test_deepseek_reasoning_and_groq_usage(fake: FakeServer) -> None:
    chunks = [
        {"id": "d", "choices": [{"index": 0, "delta": {"reasoning_content": "Hmm."}}]},
        {
            "id": "d",
            "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}],
            "x_groq": {"usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        },
    ]
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    fake.on("POST", "/v1/chat/completions", Reply(chunks=[body]))
    r = (await collect(provider(fake, "groq"), ask()))[-1].response  # type: ignore[union-attr]
    assert (r.reasoning, r.content, r.usage.completion_tokens) == ("Hmm.", "Hi", 2)


async def test_azure_urls_auth_and_prompt_filter_chunk(fake: FakeServer) -> None:
    chunks = [
        {"id": "", "choices": [], "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
        {"id": "a", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"id": "a", "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]},
    ]
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    path = "/openai/deployments/my-gpt4o/chat/completions"
    fake.on("POST", path, Reply(chunks=[body]))
    p = AzureOpenAIProvider(
        ProviderConfig("az", "azure", base_url=fake.url, api_key=KEY, options={"deployments": {"gpt-4o": "my-gpt4o"}})
    )
    events = await collect(p, ChatRequest("gpt-4o", [Message("user", "Hi")]))
    assert events[-1].response.finish_reason == "content_filter"  # type: ignore[union-attr]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hi"]
    sent = fake.requests[-1]
    assert sent.path == path and sent.query["api-version"] and sent.headers["api-key"] == KEY
    assert "Authorization" not in sent.headers
    fake.on("POST", path, Reply(status=400, json={"error": {"code": "content_filter", "message": "filtered"}}))
    with pytest.raises(errors.ContentFiltered):
        await p.chat(ChatRequest("gpt-4o", [Message("user", "Hi")]))


async def test_models_and_test_connection(fake: FakeServer) -> None:
    fake.on("GET", "/v1/models", Reply(json={"data": [{"id": "gpt-4o-mini", "owned_by": "openai"}]}))
    p = provider(fake)
    assert [m.id for m in await p.models()] == ["gpt-4o-mini"]
    check = await p.test_connection()
    assert check.ok and check.detail == "1 model listed"
    fake.on("GET", "/v1/models", Reply(status=401, json={"error": {"message": "bad key"}}))
    check = await p.test_connection()
    assert not check.ok and check.detail.startswith("authentication failed")


async def test_unreachable_and_hanging_upstream(fake: FakeServer) -> None:
    from llmrelay._http import Timeouts

    dead = OpenAIProvider(ProviderConfig("openai", "openai", base_url="http://127.0.0.1:9/v1", api_key=KEY))
    with pytest.raises(errors.ConnectionError) as exc:
        await dead.chat(ask())
    assert exc.value.retryable and "127.0.0.1:9" in str(exc.value)
    fake.on("POST", "/v1/chat/completions", Reply(hang_s=2.0))
    slow = OpenAIProvider(
        ProviderConfig("openai", "openai", base_url=fake.url + "/v1", api_key=KEY, timeouts=Timeouts(read=5, total=0.3))
    )
    with pytest.raises(errors.Timeout):
        await slow.chat(ask())
    fake.on("POST", "/v1/chat/completions", Reply(reset=True))
    with pytest.raises(errors.ConnectionError):
        await provider(fake).chat(ask())


async def test_responses_api_error_event_maps(fake: FakeServer) -> None:
    """An OpenAI ``error`` object inside a 200 stream maps like an HTTP error would."""
    raw = load_chunks_as_sse("openai-responses-stream-error-event.chunks.jsonl")
    from llmrelay._sse import SSEDecoder
    from llmrelay.providers.openai.errors import in_stream_error

    events = [json.loads(e.data) for e in SSEDecoder().feed(raw)]
    err = next(e["error"] for e in events if e["type"] == "error")
    exc = in_stream_error(err, "openai")
    assert isinstance(exc, errors.RateLimited) and not exc.retryable and "quota" in exc.message


def _completion(content: str | None, usage: dict[str, object] | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": usage or {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def test_response_format_from_dict_forms() -> None:
    from llmrelay.structured import to_response_format

    fmt = to_response_format({"type": "json_schema", "json_schema": {"name": "x y", "schema": {"type": "object"}}})
    assert fmt == ResponseFormat("json_schema", schema={"type": "object"}, name="x_y", strict=False)
    assert to_response_format({"type": "json_object"}) == ResponseFormat("json_object")
    # strict schemas are made acceptable to strict mode: closed objects, all required, no defaults,
    # $ref alone; property names (even "default") are left alone
    schema = {
        "type": "object",
        "properties": {
            "default": {"type": "string", "default": "x"},
            "city": {"$ref": "#/$defs/C", "description": "d"},
        },
        "$defs": {"C": {"type": "object", "properties": {"n": {"type": "integer"}}}},
    }
    strict = to_response_format({"type": "json_schema", "json_schema": {"name": "s", "schema": schema, "strict": True}})
    assert (
        strict is not None
        and strict.strict
        and strict.schema
        == {
            "type": "object",
            "properties": {"default": {"type": "string"}, "city": {"$ref": "#/$defs/C"}},
            "$defs": {
                "C": {
                    "type": "object",
                    "properties": {"n": {"type": "integer"}},
                    "additionalProperties": False,
                    "required": ["n"],
                }
            },
            "additionalProperties": False,
            "required": ["default", "city"],
        }
    )
    assert schema["properties"]["default"] == {"type": "string", "default": "x"}  # the caller's copy is untouched
    bare = to_response_format({"type": "object", "properties": {"a": {"type": "string"}}})
    assert bare is not None and bare.strict is False and "additionalProperties" not in (bare.schema or {})
    with pytest.raises(errors.InvalidRequest):
        to_response_format(42)
