"""The Gemini provider over real HTTP (fake server): recorded replays, the wire
requests it sends, and the faults it must map. The pure tests and property tests
of ``providers/gemini/`` (codec, stream, partial) are in the codec test module beside this one."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakeserver import FakeServer, Reply, split_every
from llmrelay import errors
from llmrelay._assemble import StreamAssembler
from llmrelay._http1 import default_transport
from llmrelay._secret import Secret
from llmrelay._sse import SSEDecoder
from llmrelay.providers import provider_class
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.gemini.provider import GeminiProvider
from llmrelay.providers.gemini.stream import ChatStreamDecoder
from llmrelay.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    Message,
    TextDelta,
    ToolCallDelta,
    ToolSpec,
    Usage,
    UsageEvent,
)
from recordings import load_cassette, load_chunks_as_sse, load_json
from streams import collect, final

KEY = "AIzaTESTKEY-secret-123456789"
MODEL = "gemini-2.5-flash"


def route(model: str = MODEL, action: str = "generateContent") -> str:
    return f"/v1beta/models/{model}:{action}"


STREAM = route(action="streamGenerateContent")


@pytest.fixture(autouse=True)
async def _close_transport() -> AsyncIterator[None]:
    yield
    await default_transport().aclose()


def make(fake: FakeServer, **config: Any) -> GeminiProvider:
    return GeminiProvider(
        ProviderConfig(name="gemini", kind="gemini", base_url=fake.url, api_key=Secret(KEY), **config)
    )


def user(text: str) -> Message:
    return Message(role="user", content=text)


def ask(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model=kw.pop("model", MODEL), messages=list(messages) or [user("Hi")], **kw)


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


def answer(*parts: dict[str, Any], finish: str | None = "STOP", **usage: int) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash-001"}


def status_error(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": list(details)}}


def assert_key_only_in_header(fake: FakeServer) -> None:
    assert fake.requests
    for request in fake.requests:
        assert request.headers.get("x-goog-api-key") == KEY
        assert KEY not in request.path and KEY not in json.dumps(request.query)
        assert "key" not in request.query


def assert_no_key(exc: BaseException) -> None:
    assert isinstance(exc, errors.LLMError)
    for text in (str(exc), repr(exc), exc.message):
        assert KEY not in text


def same_signature(ours: str, recorded: str) -> bool:
    """Gemini sends standard base64; the recording re-encoded it URL-safe. Compare the bytes."""
    return base64.b64decode(ours) == base64.urlsafe_b64decode(recorded)


# --------------------------------------------------------------------------- recorded replays


async def test_replay_crlf_stream_and_its_recorded_request(fake: FakeServer) -> None:
    [recorded] = load_cassette("gemini-streamGenerateContent-alt-sse-crlf.cassette.yaml")
    model = "gemini-2.0-flash-exp"
    fake.on("POST", route(model, "streamGenerateContent"), Reply(chunks=[recorded.body]))
    request = ChatRequest(
        model=model,
        messages=[Message("system", "You are a helpful chatbot."), user("What is the capital of France?")],
        temperature=0.0,
    )
    events = await collect(make(fake), request)
    response = final(events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The capital of France is Paris.\n"
    assert response.content == "The capital of France is Paris.\n"
    assert response.finish_reason == "stop" and response.native_finish_reason == "STOP"
    assert response.id == "w1peaMz6INOvnvgPgYfPiQY" and response.model == "gemini-2.0-flash-exp"
    # usage changes on every chunk (prompt 15 -> 13): the last one wins
    assert response.usage == Usage(prompt_tokens=13, completion_tokens=8)
    assert [e.usage for e in events if isinstance(e, UsageEvent)][-1] == response.usage

    sent = fake.requests[-1]
    assert sent.query == {"alt": "sse"}
    assert sent.json["contents"] == recorded.request_json["contents"]
    assert sent.json["generationConfig"] == recorded.request_json["generationConfig"]
    assert sent.json["systemInstruction"]["parts"] == recorded.request_json["systemInstruction"]["parts"]
    assert_key_only_in_header(fake)


async def test_replay_tool_call_with_thought_signature_then_answer(fake: FakeServer) -> None:
    first, second = load_cassette("gemini-stream-tool-call-thought-signature.cassette.yaml")
    model = "gemini-3-pro-preview"
    fake.on("POST", route(model, "streamGenerateContent"), Reply(chunks=[first.body]), Reply(chunks=[second.body]))
    provider = make(fake)
    tool = ToolSpec("get_country", "", {"additionalProperties": False, "properties": {}, "type": "object"})
    question = user("What is the capital of the user country? Call the tool")

    events = await collect(provider, ChatRequest(model=model, messages=[question], tools=[tool]))
    turn = final(events)
    [call] = turn.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_0", "get_country", {})
    signature = call.extra["thought_signature"]
    assert signature.startswith("EpwICpkIAXLI2nxl")
    assert turn.finish_reason == "tool_calls" and turn.native_finish_reason == "STOP"
    assert turn.usage == Usage(prompt_tokens=29, completion_tokens=212, reasoning_tokens=202)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas == [ToolCallDelta(0, "call_0", "get_country", "{}", {"thought_signature": signature})]

    result = Message("tool", json.dumps({"return_value": "Mexico"}), tool_call_id=call.id)
    events = await collect(provider, ChatRequest(model=model, messages=[question, turn.message, result], tools=[tool]))
    done = final(events)
    assert done.content == "The capital of Mexico is Mexico City."
    assert done.finish_reason == "stop" and done.tool_calls == []
    assert done.usage == Usage(prompt_tokens=257, completion_tokens=8)

    ours = fake.requests[-1].json
    theirs = second.request_json
    assert [c["role"] for c in ours["contents"]] == [c["role"] for c in theirs["contents"]] == ["user", "model", "user"]
    assert ours["contents"][0] == theirs["contents"][0]
    [our_call], [their_call] = ours["contents"][1]["parts"], theirs["contents"][1]["parts"]
    assert same_signature(our_call["thoughtSignature"], their_call["thoughtSignature"])
    # the recording's client sent its own ids; we send none (Gemini gave none, and Vertex rejects them)
    their_call["functionCall"].pop("id")
    assert our_call["functionCall"] == their_call["functionCall"]
    their_result = theirs["contents"][2]["parts"][0]["functionResponse"]
    their_result.pop("id")
    assert ours["contents"][2]["parts"] == [{"functionResponse": their_result}]
    [declarations] = ours["tools"]
    assert (
        declarations["functionDeclarations"][0]["parametersJsonSchema"]
        == (theirs["tools"][0]["functionDeclarations"][0]["parameters_json_schema"])
    )


async def test_replay_429_with_retry_info(fake: FakeServer) -> None:
    fake.on("POST", route(), Reply(status=429, json=load_json("gemini-429-retryinfo-error.json")))
    with pytest.raises(errors.RateLimited) as info:
        await make(fake).chat(ask())
    assert info.value.retry_after == pytest.approx(34.4)
    assert info.value.retryable and info.value.status_code == 429 and info.value.provider == "gemini"
    assert "quota" in info.value.message and "RESOURCE_EXHAUSTED" in info.value.message
    assert_no_key(info.value)


async def test_retry_after_header_wins_over_retry_info(fake: FakeServer) -> None:
    body = load_json("gemini-429-retryinfo-error.json")
    fake.on("POST", route(), Reply(status=429, json=body, headers={"retry-after": "7"}))
    with pytest.raises(errors.RateLimited) as info:
        await make(fake).chat(ask())
    assert info.value.retry_after == 7.0


async def test_replay_vertex_partial_function_args(fake: FakeServer) -> None:
    fake.on(
        "POST", STREAM, Reply(chunks=[load_chunks_as_sse("gemini-vertex-stream-partial-function-args.chunks.jsonl")])
    )
    events = await collect(make(fake), ask())
    response = final(events)
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_0", "getWeather", {"location": "Boston"}),
        ("call_1", "getWeather", {"location": "San Francisco"}),
    ]
    assert response.tool_calls[0].extra["thought_signature"].startswith("CiMBjz1r")
    assert response.tool_calls[1].extra == {}
    assert response.finish_reason == "tool_calls" and response.native_finish_reason == "STOP"
    assert response.usage == Usage(prompt_tokens=26, completion_tokens=155, reasoning_tokens=132)
    assert response.model == "gemini-3.1-pro-preview" and response.id == "dqHOab6xGLzWodAPkPuViA4"
    first = next(e for e in events if isinstance(e, ToolCallDelta))
    assert (first.index, first.name, first.arguments) == (0, "getWeather", "")


def decode_whole(pieces: list[bytes]) -> ChatResponse:
    """Run bytes through the SSE and stream decoders as the provider does."""
    assembler = StreamAssembler("gemini", "m")
    decoder = ChatStreamDecoder(assembler, "gemini", lambda payload: errors.ProviderError("in-stream error"))
    sse_decoder = SSEDecoder()
    frames = [frame for piece in pieces for frame in sse_decoder.feed(piece)] + sse_decoder.flush()
    for frame in frames:
        for event in decoder.feed(frame):
            assembler.add(event)
    decoder.close()
    return assembler.response()


def test_crlf_framing_split_at_every_byte_gives_the_same_answer() -> None:
    for name in (
        "gemini-streamGenerateContent-alt-sse-crlf.cassette.yaml",
        "gemini-stream-tool-call-thought-signature.cassette.yaml",
    ):
        raw = load_cassette(name)[0].body
        whole = decode_whole([raw])
        for cut in range(len(raw) + 1):
            assert decode_whole([raw[:cut], raw[cut:]]) == whole, cut


async def test_crlf_stream_one_byte_per_write(fake: FakeServer) -> None:
    raw = load_cassette("gemini-streamGenerateContent-alt-sse-crlf.cassette.yaml")[0].body
    fake.on("POST", STREAM, Reply(chunks=split_every(raw, 1)))
    response = final(await collect(make(fake), ask()))
    assert response.content == "The capital of France is Paris.\n" and response.usage.completion_tokens == 8


# --------------------------------------------------------------------------- answers


async def test_nonstream_text_thoughts_calls_and_usage(fake: FakeServer) -> None:
    body = answer(
        {"text": "Let me think", "thought": True},
        {"text": "Calling", "thoughtSignature": "c2lnLXRleHQ="},
        {"functionCall": {"name": "lookup", "args": {"q": "x"}}, "thoughtSignature": "c2lnLWNhbGw="},
        {"functionCall": {"name": "lookup", "args": {"q": "y"}, "id": "fc-9"}},
        promptTokenCount=100,
        cachedContentTokenCount=40,
        toolUsePromptTokenCount=5,
        candidatesTokenCount=20,
        thoughtsTokenCount=7,
    )
    body["responseId"] = "resp-1"
    fake.on("POST", route(), Reply(json=body))
    response = await make(fake).chat(ask())
    assert response.content == "Calling" and response.reasoning == "Let me think"
    assert response.reasoning_signature == "c2lnLXRleHQ="
    assert [(c.id, c.arguments, c.extra) for c in response.tool_calls] == [
        ("call_0", {"q": "x"}, {"thought_signature": "c2lnLWNhbGw="}),
        ("fc-9", {"q": "y"}, {"gemini_call_id": "fc-9"}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(prompt_tokens=105, completion_tokens=27, cached_tokens=40, reasoning_tokens=7)
    assert (response.id, response.model, response.provider) == ("resp-1", "gemini-2.5-flash-001", "gemini")
    assert response.raw == body
    assert_key_only_in_header(fake)


async def test_model_falls_back_to_the_request_model(fake: FakeServer) -> None:
    body = answer({"text": "ok"})
    del body["modelVersion"]
    fake.on("POST", route(), Reply(json=body))
    assert (await make(fake).chat(ask())).model == MODEL


@pytest.mark.parametrize(
    "candidate",
    [
        {"finishReason": "SAFETY", "index": 0},
        {"content": {"role": "model"}, "finishReason": "SAFETY"},
        {"content": {"role": "model", "parts": []}, "finishReason": "SAFETY", "finishMessage": "blocked"},
    ],
)
async def test_candidate_without_parts(fake: FakeServer, candidate: dict[str, Any]) -> None:
    fake.on("POST", route(), Reply(json={"candidates": [candidate]}))
    response = await make(fake).chat(ask())
    assert response.content == "" and response.tool_calls == []
    assert response.finish_reason == "content_filter" and response.native_finish_reason == "SAFETY"
    fake.on("POST", STREAM, Reply(chunks=[sse({"candidates": [candidate]})]))
    streamed = final(await collect(make(fake), ask()))
    assert streamed.content == "" and streamed.finish_reason == "content_filter"


@pytest.mark.parametrize(("reason", "expected"), [("SAFETY", "SAFETY"), ("", "prompt blocked")])
async def test_blocked_prompt(fake: FakeServer, reason: str, expected: str) -> None:
    body = {"promptFeedback": {"blockReason": reason, "safetyRatings": []}, "usageMetadata": {"promptTokenCount": 9}}
    fake.on("POST", route(), Reply(json=body))
    with pytest.raises(errors.ContentFiltered, match=expected) as info:
        await make(fake).chat(ask())
    assert info.value.provider == "gemini" and info.value.body == body
    fake.on("POST", STREAM, Reply(chunks=[sse(body)]))
    with pytest.raises(errors.ContentFiltered, match=expected):
        await collect(make(fake), ask())


async def test_max_tokens_finish(fake: FakeServer) -> None:
    fake.on(
        "POST",
        STREAM,
        Reply(chunks=[sse(answer({"text": "Once upon"}, finish=None), answer({"text": " a"}, finish="MAX_TOKENS"))]),
    )
    response = final(await collect(make(fake), ask()))
    assert response.content == "Once upon a" and response.finish_reason == "length"


async def test_stream_reasoning_text_and_signature(fake: FakeServer) -> None:
    chunks = [
        answer({"text": "hmm", "thought": True}, finish=None),
        answer({"text": "Hi"}, finish=None),
        answer({"text": "", "thoughtSignature": "c2ln"}, finish="STOP", candidatesTokenCount=3),
    ]
    fake.on("POST", STREAM, Reply(chunks=[sse(*chunks)]))
    response = final(await collect(make(fake), ask()))
    assert (response.content, response.reasoning, response.reasoning_signature) == ("Hi", "hmm", "c2ln")
    assert response.message.reasoning_signature == "c2ln"


# --------------------------------------------------------------------------- stream faults


async def test_stream_cut_before_finish_reason(fake: FakeServer) -> None:
    raw = load_cassette("gemini-streamGenerateContent-alt-sse-crlf.cassette.yaml")[0].body
    cut = raw[: raw.index(b'"finishReason"')].rsplit(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    fake.on("POST", STREAM, Reply(chunks=[cut]))
    with pytest.raises(errors.StreamInterrupted, match="finishReason") as info:
        await collect(make(fake), ask())
    assert info.value.partial is not None and info.value.partial.content == "The capital of France"
    assert not info.value.retryable


async def test_stream_with_nothing_is_a_retryable_provider_error(fake: FakeServer) -> None:
    fake.on("POST", STREAM, Reply(chunks=[b": keep-alive\r\n\r\n"]))
    with pytest.raises(errors.ProviderError, match="finishReason") as info:
        await collect(make(fake), ask())
    assert info.value.retryable and not isinstance(info.value, errors.StreamInterrupted)


async def test_stream_connection_cut_after_text(fake: FakeServer) -> None:
    chunks = [
        sse(answer({"text": "Hel"}, finish=None)),
        sse(answer({"text": "lo"}, finish=None)),
        sse(answer({"text": "!"})),
    ]
    fake.on("POST", STREAM, Reply(chunks=chunks, cut_after=2))
    with pytest.raises(errors.StreamInterrupted) as info:
        await collect(make(fake), ask())
    assert info.value.partial is not None and info.value.partial.content == "Hello"


async def test_in_stream_error_before_text(fake: FakeServer) -> None:
    fake.on("POST", STREAM, Reply(chunks=[sse(status_error(503, "UNAVAILABLE", "The model is overloaded."))]))
    with pytest.raises(errors.Overloaded) as info:
        await collect(make(fake), ask())
    assert info.value.retryable and info.value.status_code == 503


async def test_in_stream_error_after_text(fake: FakeServer) -> None:
    error = status_error(500, "INTERNAL", "An internal error has occurred.")
    fake.on("POST", STREAM, Reply(chunks=[sse(answer({"text": "Par"}, finish=None), error)]))
    with pytest.raises(errors.StreamInterrupted) as info:
        await collect(make(fake), ask())
    assert "internal error" in info.value.message and not info.value.retryable
    assert type(info.value.__cause__) is errors.ProviderError
    assert info.value.partial is not None and info.value.partial.content == "Par"


async def test_error_status_on_a_stream_request(fake: FakeServer) -> None:
    fake.on("POST", STREAM, Reply(status=429, json=load_json("gemini-429-retryinfo-error.json")))
    with pytest.raises(errors.RateLimited) as info:
        await collect(make(fake), ask())
    assert info.value.retry_after == pytest.approx(34.4)


# --------------------------------------------------------------------------- errors


BAD_KEY = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}


@pytest.mark.parametrize(
    ("status", "rpc", "message", "details", "cls"),
    [
        (
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            [BAD_KEY],
            errors.AuthenticationError,
        ),
        (400, "INVALID_ARGUMENT", "Invalid value at 'contents[0]'", [], errors.InvalidRequest),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            [],
            errors.ContextWindowExceeded,
        ),
        (400, "FAILED_PRECONDITION", "User location is not supported for the API use.", [], errors.InvalidRequest),
        (401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", [], errors.AuthenticationError),
        (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.", [], errors.PermissionDenied),
        (404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta", [], errors.NotFound),
        (500, "INTERNAL", "An internal error has occurred.", [], errors.ProviderError),
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", [], errors.Overloaded),
        (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.", [], errors.Timeout),
        (418, "", "odd", [], errors.InvalidRequest),
    ],
)
async def test_error_mapping(
    fake: FakeServer, status: int, rpc: str, message: str, details: list[dict[str, Any]], cls: type[errors.LLMError]
) -> None:
    fake.on("POST", route(), Reply(status=status, json=status_error(status, rpc, message, *details)))
    with pytest.raises(errors.LLMError) as info:
        await make(fake).chat(ask())
    assert type(info.value) is cls
    assert info.value.status_code == status and message in info.value.message
    assert_no_key(info.value)


async def test_503_is_overloaded_and_retryable(fake: FakeServer) -> None:
    fake.on("POST", route(), Reply(status=503, json=status_error(503, "UNAVAILABLE", "overloaded")))
    with pytest.raises(errors.Overloaded) as info:
        await make(fake).chat(ask())
    assert info.value.retryable


async def test_error_in_a_json_array(fake: FakeServer) -> None:
    fake.on("POST", route(), Reply(status=404, json=[status_error(404, "NOT_FOUND", "no such model")]))
    with pytest.raises(errors.NotFound, match="no such model"):
        await make(fake).chat(ask())


async def test_html_502_is_a_provider_error(fake: FakeServer) -> None:
    page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    fake.on("POST", route(), Reply(status=502, body=page, content_type="text/html"))
    with pytest.raises(errors.ProviderError, match="HTML") as info:
        await make(fake).chat(ask())
    assert info.value.status_code == 502 and "502 Bad Gateway" in info.value.message


async def test_error_object_under_http_200(fake: FakeServer) -> None:
    fake.on("POST", route(), Reply(json=status_error(503, "UNAVAILABLE", "overloaded")))
    with pytest.raises(errors.Overloaded):
        await make(fake).chat(ask())


async def test_api_key_never_in_url_or_error_text(fake: FakeServer) -> None:
    fake.on("POST", route(), Reply(status=400, json=status_error(400, "INVALID_ARGUMENT", f"API key not valid: {KEY}")))
    with pytest.raises(errors.AuthenticationError) as info:
        await make(fake).chat(ask())
    assert_no_key(info.value)
    fake.on("POST", route(), Reply(status=502, body=f"upstream said key={KEY}", content_type="text/plain"))
    with pytest.raises(errors.ProviderError) as info2:
        await make(fake).chat(ask())
    assert_no_key(info2.value)
    fake.on("POST", STREAM, Reply(chunks=[sse(status_error(400, "INVALID_ARGUMENT", f"bad key {KEY}"))]))
    with pytest.raises(errors.InvalidRequest) as info3:
        await collect(make(fake), ask())
    assert_no_key(info3.value)
    assert_key_only_in_header(fake)


# --------------------------------------------------------------------------- embeddings, models, config


async def test_embeddings(fake: FakeServer) -> None:
    reply = {"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}
    fake.on("POST", "/v1beta/models/gemini-embedding-001:batchEmbedContents", Reply(json=reply))
    request = EmbeddingRequest("gemini-embedding-001", ["a", "b"], dimensions=2, extra={"taskType": "RETRIEVAL_QUERY"})
    response = await make(fake).embed(request)
    assert response.vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert response.usage == Usage() and response.provider == "gemini"
    assert fake.requests[-1].json == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": text}]},
                "outputDimensionality": 2,
                "taskType": "RETRIEVAL_QUERY",
            }
            for text in ("a", "b")
        ]
    }
    assert_key_only_in_header(fake)


async def test_embeddings_usage_when_sent_and_count_mismatch(fake: FakeServer) -> None:
    path = "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    reply = {"embeddings": [{"values": [1.0]}], "usageMetadata": {"promptTokenCount": 3}}
    fake.on("POST", path, Reply(json=reply))
    response = await make(fake).embed(EmbeddingRequest("models/gemini-embedding-001", ["a"]))
    assert response.usage.prompt_tokens == 3 and "outputDimensionality" not in fake.requests[-1].json["requests"][0]
    with pytest.raises(errors.ProviderError, match="asked for 2"):
        await make(fake).embed(EmbeddingRequest("gemini-embedding-001", ["a", "b"]))


async def test_list_models_follows_pages(fake: FakeServer) -> None:
    flash = {
        "name": "models/gemini-2.5-flash",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "streamGenerateContent"],
    }
    embedding = {
        "name": "models/gemini-embedding-001",
        "inputTokenLimit": 2048,
        "supportedGenerationMethods": ["embedContent"],
    }
    fake.on(
        "GET",
        "/v1beta/models",
        Reply(json={"models": [flash], "nextPageToken": "p2"}),
        Reply(json={"models": [embedding]}),
    )
    models = await make(fake).models()
    assert [(m.id, m.context_window, m.max_output_tokens, m.supports_streaming) for m in models] == [
        ("gemini-2.5-flash", 1048576, 65536, True),
        ("gemini-embedding-001", 2048, None, False),
    ]
    assert models[0].raw == flash and models[0].provider == "gemini"
    assert [r.query for r in fake.requests] == [{"pageSize": "1000"}, {"pageSize": "1000", "pageToken": "p2"}]
    assert_key_only_in_header(fake)


async def test_connection_check_with_a_bad_key(fake: FakeServer) -> None:
    fake.on(
        "GET",
        "/v1beta/models",
        Reply(status=400, json=status_error(400, "INVALID_ARGUMENT", "API key not valid.", BAD_KEY)),
    )
    check = await make(fake).test_connection()
    assert not check.ok and check.detail.startswith("authentication failed")


async def test_config_headers_and_versioned_base_url(fake: FakeServer) -> None:
    fake.on("POST", route(), Reply(json=answer({"text": "ok"})))
    provider = GeminiProvider(
        ProviderConfig("g", "gemini", base_url=fake.url + "/v1beta/", api_key=Secret(KEY), headers={"x-extra": "1"})
    )
    assert (await provider.chat(ask())).content == "ok"
    assert fake.requests[-1].path == route() and fake.requests[-1].headers["x-extra"] == "1"


def test_defaults_registry_and_price_provider() -> None:
    provider = GeminiProvider(ProviderConfig("g", "gemini", api_key=Secret(KEY)))
    wire = provider.chat_request(ask(), stream=True)
    assert wire.url == f"https://generativelanguage.googleapis.com/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert wire.headers["x-goog-api-key"] == KEY and KEY not in wire.url
    assert provider_class("gemini") is GeminiProvider
    assert provider.price_provider == "google" and provider.kind == "gemini"
    assert KEY not in repr(provider)


async def test_only_system_messages_is_invalid_and_nothing_is_sent(fake: FakeServer) -> None:
    with pytest.raises(errors.InvalidRequest, match="at least one") as info:
        await make(fake).chat(ask(Message("system", "be brief")))
    assert info.value.provider == "gemini" and fake.requests == []


async def test_unknown_tool_call_id_is_invalid(fake: FakeServer) -> None:
    with pytest.raises(errors.InvalidRequest, match="'call_missing'"):
        await make(fake).chat(ask(user("hi"), Message("tool", "42", tool_call_id="call_missing")))
    assert fake.requests == []
