"""The Gemini API of the gateway with Google's own ``google-genai`` SDK over real HTTP:
answers, streams, function calling, token counts, embeddings and errors, backed by an
OpenAI-format and by an Anthropic-format upstream."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from fakeserver import Reply
from gateways import MASTER, Served, ledger_rows
from llmrelay.store import Tenant
from recordings import load_sse
from test_gateway_openai import CHAT, answer, sse
from test_gateway_responses import CALL, claude_answer

genai = pytest.importorskip("google.genai")
types = pytest.importorskip("google.genai.types")
genai_errors = pytest.importorskip("google.genai.errors")

WEATHER = {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
}  # fmt: skip


def google(gw: Served, key: str = MASTER, version: str | None = "v1beta") -> Any:
    options: dict[str, Any] = {"base_url": gw.url}
    if version is not None:
        options["api_version"] = version
    return genai.Client(api_key=key, http_options=types.HttpOptions(**options))


async def test_generate_content_from_an_openai_deployment(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("Paris.")))
    r = await google(gw).aio.models.generate_content(
        model="smart", contents="Capital of France?",
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=20, temperature=0),
    )  # fmt: skip
    assert r.text == "Paris." and r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.usage_metadata.prompt_token_count == 9 and r.usage_metadata.candidates_token_count == 3
    sent = gw.upstream.requests[-1]
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
    ]  # fmt: skip
    assert sent.json["max_completion_tokens"] == 20 and sent.headers["Authorization"] == "Bearer sk-upstream-key-123456"


async def test_the_sdks_default_api_version_works_too(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("Hi.")))
    r = await google(gw, version=None).aio.models.generate_content(model="smart", contents="Hi")
    assert r.text == "Hi."


async def test_a_streamed_answer(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Par", "is", ".")))
    chunks = [c async for c in await google(gw).aio.models.generate_content_stream(model="smart", contents="Capital?")]
    assert "".join(c.text or "" for c in chunks) == "Paris."
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.candidates_token_count == 3


async def test_function_calling_round_trip(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("", tool_calls=[CALL])), Reply(json=answer("Sunny in Paris.")))
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    client = google(gw)
    first = await client.aio.models.generate_content(model="smart", contents="Weather in Paris?", config=config)
    calls = first.function_calls
    assert calls is not None and [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert gw.upstream.requests[-1].json["tools"][0]["function"]["name"] == "get_weather"
    history = [
        types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
        first.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather",
                                                                            response={"sky": "sunny"})]),
    ]  # fmt: skip
    second = await client.aio.models.generate_content(model="smart", contents=history, config=config)
    assert second.text == "Sunny in Paris."
    sent = gw.upstream.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2]["role"] == "tool" and json.loads(sent[2]["content"]) == {"sky": "sunny"}
    assert sent[2]["tool_call_id"] == sent[1]["tool_calls"][0]["id"]


async def test_an_anthropic_deployment_answers_in_geminis_format(gw: Served) -> None:
    gw.anthropic.on("POST", "/v1/messages", Reply(json=claude_answer("Bonjour.")))
    client = google(gw)
    r = await client.aio.models.generate_content(
        model="claude", contents="Hello in French?", config=types.GenerateContentConfig(max_output_tokens=50)
    )
    assert r.text == "Bonjour." and gw.anthropic.requests[-1].json["max_tokens"] == 50
    gw.anthropic.on("POST", "/v1/messages", Reply(chunks=[load_sse("anthropic-stream-basic-text-ping.sse")]))
    chunks = [c async for c in await client.aio.models.generate_content_stream(model="claude", contents="Hi")]
    assert "".join(c.text or "" for c in chunks)
    tool = {"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    gw.anthropic.on("POST", "/v1/messages", Reply(json=claude_answer(tool=tool, stop="tool_use")))
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        safety_settings=[types.SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_NONE")],
    )
    r = await client.aio.models.generate_content(model="claude", contents="Weather?", config=config)
    assert r.function_calls is not None and r.function_calls[0].args == {"city": "Paris"}
    sent = gw.anthropic.requests[-1].json
    assert "safetySettings" not in sent and sent["tools"][0]["name"] == "get_weather"  # Gemini's own: not Anthropic's


async def test_count_tokens_and_embeddings(gw: Served) -> None:
    client = google(gw)
    counted = await client.aio.models.count_tokens(model="smart", contents="How many tokens is this?")
    assert counted.total_tokens is not None and 5 <= counted.total_tokens <= 20
    embedding = {
        "object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 4, "total_tokens": 4},
        "data": [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2]} for i in range(2)],
    }  # fmt: skip
    gw.upstream.on("POST", "/v1/embeddings", Reply(json=embedding))
    r = await client.aio.models.embed_content(
        model="openai/text-embedding-3-small", contents=["first", "second"],
        config=types.EmbedContentConfig(output_dimensionality=2),
    )  # fmt: skip
    assert r.embeddings is not None and [e.values for e in r.embeddings] == [[0.1, 0.2], [0.2, 0.2]]
    sent = gw.upstream.requests[-1].json
    assert sent["input"] == ["first", "second"] and sent["dimensions"] == 2


async def test_models_are_listed_for_googles_sdk_and_openais(gw: Served) -> None:
    names = [m.name async for m in await google(gw).aio.models.list()]
    assert "models/smart" in names and "models/claude" in names
    one = await google(gw).aio.models.get(model="smart")
    assert one.name == "models/smart"
    openai_models = await gw.sdk().models.list()  # the same /v1/models path, OpenAI's answer
    assert {m.id for m in openai_models.data} >= {"smart", "claude"}


async def test_errors_are_googles(gw: Served) -> None:
    client = google(gw)
    with pytest.raises(genai_errors.ClientError) as caught:
        await client.aio.models.generate_content(model="no-such-model", contents="Hi")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND" and "no-such-model" in caught.value.message
    with pytest.raises(genai_errors.ClientError) as caught:
        await google(gw, key="sk-wrong").aio.models.generate_content(model="smart", contents="Hi")
    assert caught.value.code == 401
    with pytest.raises(genai_errors.ClientError) as caught:
        await client.aio.models.generate_content(
            model="smart", contents="Hi", config=types.GenerateContentConfig(candidate_count=3)
        )
    assert caught.value.code == 400 and "candidateCount" in caught.value.message
    gw.upstream.on("POST", CHAT, Reply(status=500, json={"error": {"message": "boom", "type": "server_error"}}))
    with pytest.raises(genai_errors.ServerError) as server:
        await client.aio.models.generate_content(model="smart", contents="Hi")
    assert server.value.code >= 500


async def test_the_key_may_come_in_the_query_string(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    async with aiohttp.ClientSession() as http:
        url = f"{gw.url}/v1beta/models/smart:generateContent"
        body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
        async with http.post(url, params={"key": MASTER}, json=body) as r:
            assert r.status == 200 and (await r.json())["candidates"][0]["content"]["parts"][0]["text"] == "ok"
        async with http.post(url, json=body) as r:
            assert r.status == 401 and (await r.json())["error"]["status"] == "UNAUTHENTICATED"
        async with http.post(url.replace("generateContent", "streamGenerateContent"), params={"key": MASTER},
                             json=body) as r:  # fmt: skip
            assert r.status == 400 and "alt=sse" in (await r.json())["error"]["message"]


async def test_gemini_requests_are_admitted_and_recorded(gw: Served) -> None:
    gw.store.create_tenant(Tenant(id="acme"))
    made, secret = gw.store.create_key("acme", name="g")
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    await google(gw, key=secret).aio.models.generate_content(model="smart", contents="Hi")
    rows = await ledger_rows(gw, made.id)
    assert [(r.route, r.model, r.prompt_tokens) for r in rows] == [("/v1beta/models/smart:generateContent", "smart", 9)]


async def test_the_query_key_works_under_the_sdks_v1_paths_too(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gw.url}/v1/models/smart:generateContent", params={"key": MASTER}, json=body) as r:
            assert r.status == 200
        async with http.get(f"{gw.url}/v1/models", params={"key": MASTER}) as r:
            assert r.status == 200 and "models/smart" in [m["name"] for m in (await r.json())["models"]]
        async with http.get(f"{gw.url}/v1/conversations", params={"key": MASTER}) as r:
            assert r.status == 401  # only the Gemini routes read a key from the URL
