"""Bad provider bodies, echoed keys, odd streams and misuse: always a clear LLMError."""

from __future__ import annotations

import gc
import json
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from fakeserver import FakeServer, Reply
from llmrelay import Client, errors
from llmrelay.providers.anthropic.provider import AnthropicProvider
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.cohere.provider import CohereProvider
from llmrelay.providers.gemini.provider import GeminiProvider
from llmrelay.providers.openai.azure import AzureOpenAIProvider
from llmrelay.providers.openai.provider import OpenAIProvider
from llmrelay.testing import FakeProvider
from llmrelay.testing import Reply as Script
from llmrelay.types import ChatRequest, EmbeddingRequest, Message, ToolCall
from streams import collect, final

HEX_KEY = "0123456789abcdef0123456789abcdef"  # no known key shape: only the provider knows it is a key


def ask(model: str = "gpt-4o-mini") -> ChatRequest:
    return ChatRequest(model, [Message("user", "Hi")])


def openai(fake: FakeServer, key: str = HEX_KEY) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig("openai", "openai", base_url=fake.url + "/v1", api_key=key))


def _completion(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "c",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    body.update(changes)
    return body


MALFORMED_OPENAI = [
    _completion(choices={"0": {}}),
    _completion(choices=["text"]),
    _completion(usage="lots"),
    _completion(usage={"prompt_tokens": "5", "completion_tokens": 1}),
    _completion(usage={"prompt_tokens": 5, "prompt_tokens_details": "x"}),
    {"choices": [{"index": 0, "message": "hello", "finish_reason": "stop"}]},
    {"choices": [{"index": 0, "message": {"content": 42}, "finish_reason": "stop"}]},
    {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": ["stop"]}]},
    {"choices": [{"index": 0, "message": {"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": 7}}]}}]},
    [1, 2, 3],
    None,
]


@pytest.mark.parametrize("body", MALFORMED_OPENAI)
async def test_malformed_openai_answers_are_provider_errors(fake: FakeServer, body: Any) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(body=json.dumps(body)))
    with pytest.raises(errors.ProviderError) as exc:
        await openai(fake).chat(ask())
    assert exc.value.provider == "openai"


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": [{"index": 0, "delta": "text"}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": {"0": {}}}}]},
        {"choices": [{"index": 0, "delta": {"refusal": 5}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 9}}]}}]},
    ],
)
async def test_malformed_stream_chunks_are_provider_errors(fake: FakeServer, chunk: dict[str, Any]) -> None:
    body = b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"
    fake.on("POST", "/v1/chat/completions", Reply(chunks=[body]))
    with pytest.raises(errors.ProviderError):
        await collect(openai(fake), ask())


@pytest.mark.parametrize(
    ("make", "path", "body"),
    [
        (lambda url: AnthropicProvider(ProviderConfig("a", "anthropic", base_url=url, api_key=HEX_KEY)),
         "/v1/messages", {"content": [{"type": "text", "text": 5}], "usage": "x", "stop_reason": ["x"]}),
        (lambda url: GeminiProvider(ProviderConfig("g", "gemini", base_url=url, api_key=HEX_KEY)),
         "/v1beta/models/m:generateContent", {"candidates": [{"content": {"parts": "x"}, "finishReason": ["STOP"]}]}),
        (lambda url: CohereProvider(ProviderConfig("c", "cohere", base_url=url, api_key=HEX_KEY)),
         "/v2/chat", {"message": {"content": [{"type": "text", "text": "x"}]}, "finish_reason": 3,
                      "usage": {"tokens": {"input_tokens": "abc"}}}),
    ],
)  # fmt: skip
async def test_malformed_answers_of_other_providers(fake: FakeServer, make: Any, path: str, body: Any) -> None:
    fake.on("POST", path, Reply(json=body))
    with pytest.raises(errors.ProviderError):
        await make(fake.url).chat(ask("m"))


async def test_key_echoed_in_a_2xx_body_is_masked(fake: FakeServer) -> None:
    fake.on(
        "POST",
        "/v1/chat/completions",
        Reply(body=f"bad key {HEX_KEY}", content_type="text/plain"),
        Reply(json={"error": {"message": f"key {HEX_KEY} is bad"}}),
        Reply(status=401, json={"error": {"message": f"Incorrect API key provided: {HEX_KEY}"}}),
    )
    provider = openai(fake)
    for _ in range(3):
        with pytest.raises(errors.LLMError) as exc:
            await provider.chat(ask())
        assert HEX_KEY not in str(exc.value) and HEX_KEY not in json.dumps(exc.value.body, default=str)


async def test_empty_data_keepalives_are_ignored(fake: FakeServer) -> None:
    chunks = [
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "x", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}},
    ]
    body = b"data:\n\ndata: \n\n" + b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    fake.on("POST", "/v1/chat/completions", Reply(chunks=[body + b'data: [DONE]\n\ndata: {"late": 1}\n\n']))
    r = final(await collect(openai(fake), ask()))
    assert r.content == "Hi" and r.usage.completion_tokens == 1


async def test_stream_cut_between_finish_and_usage_is_not_a_free_answer(fake: FakeServer) -> None:
    chunks = [
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    fake.on("POST", "/v1/chat/completions", Reply(chunks=[body]))
    with pytest.raises(errors.StreamInterrupted) as exc:
        await collect(openai(fake), ask())
    assert exc.value.partial is not None and exc.value.partial.content == "Hi"


async def test_missing_usage_means_unknown_cost(fake: FakeServer) -> None:
    body = _completion()
    del body["usage"]
    fake.on("POST", "/v1/chat/completions", Reply(json=body))
    r = await openai(fake).chat(ask())
    assert r.cost_usd is None


async def test_a_json_or_html_answer_to_a_stream_request_says_so(fake: FakeServer) -> None:
    fake.on(
        "POST",
        "/v1/chat/completions",
        Reply(json=_completion()),
        Reply(body="<html><title>Login required</title></html>", content_type="text/html"),
        Reply(json={"error": {"message": "model is overloaded", "type": "server_error"}}),
    )
    provider = openai(fake)
    with pytest.raises(errors.ProviderError, match="got a JSON answer"):
        await collect(provider, ask())
    with pytest.raises(errors.ProviderError, match="HTML page"):
        await collect(provider, ask())
    with pytest.raises(errors.ProviderError, match="overloaded"):
        await collect(provider, ask())


async def test_azure_v1_sends_the_deployment_as_model(fake: FakeServer) -> None:
    fake.on("POST", "/openai/v1/chat/completions", Reply(json=_completion()))
    config = ProviderConfig("az", "azure", base_url=fake.url, api_key=HEX_KEY,
                            options={"api_version": "v1", "deployments": {"gpt-4o": "prod-4o"}})  # fmt: skip
    await AzureOpenAIProvider(config).chat(ask("gpt-4o"))
    assert fake.requests[-1].json["model"] == "prod-4o"


def test_reprs_hide_credentials(tmp_path: Any) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "providers:\n  - name: p\n    kind: openai\n    api_key: sk-proj-REALSECRETKEY123\n"
        "    headers: {Authorization: Bearer sk-proj-HEADERSECRET999}\n"
        "  - name: b\n    kind: bedrock\n    options: {aws_access_key_id: AKID, aws_secret_access_key: SECRET-AWS-1}\n"
    )
    client = Client(cfg, env={})
    try:
        text = repr(client.settings) + repr(client.settings.file) + repr(list(client.settings.providers.values()))
    finally:
        client.close()
    for secret in ("REALSECRETKEY123", "HEADERSECRET999", "SECRET-AWS-1"):
        assert secret not in text


class City(BaseModel):
    name: str


def test_structured_output_is_not_parsed_on_tool_turns() -> None:
    call = ToolCall("c1", "lookup", {"q": "x"})
    fake = FakeProvider("fake", [Script(tool_calls=[call]), Script('{"name": "Paris"}')])

    def lookup(q: str) -> str:
        return "Paris"

    with Client(providers=[fake], env={}) as client:
        r = client.run_tools("fake/m", "Capital of France?", [lookup], response_format=City)
    assert r.parsed == City(name="Paris")


def test_bad_config_leaves_no_thread_and_dropped_clients_stop_theirs(tmp_path: Any) -> None:
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(errors.ConfigError):
        Client(tmp_path / "missing.yaml", env={})
    client = Client(providers=[FakeProvider("fake")], env={})
    assert client.chat("fake/m", "Hi").content == "echo: Hi"
    del client
    gc.collect()
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name == "llmrelay-client"]
    for t in leftover:
        t.join(timeout=5)
    assert not [t for t in leftover if t.is_alive()]


def test_misuse_gets_clear_errors() -> None:
    with Client(providers=[FakeProvider("fake")], env={}) as client:
        for bad in ({"stop": 5}, {"max_tokens": True}, {"temperature": True}, {"top_p": -1}, {"seed": "7"}):
            with pytest.raises(errors.InvalidRequest):
                client.chat("fake/m", "Hi", **bad)
        with pytest.raises(errors.InvalidRequest, match="max_rounds"):
            client.run_tools("fake/m", "Hi", [len], max_rounds=-1)
    with pytest.raises(errors.InvalidRequest, match="closed"):
        client.chat("fake/m", "Hi")
    with pytest.raises(errors.ConfigError, match="LLMRELAY_LOG_LEVEL"):
        _fresh_logging({"LLMRELAY_LOG_LEVEL": "verbose"})


def _fresh_logging(env: dict[str, str]) -> None:
    from llmrelay import client as client_module

    saved = client_module._logging_configured
    client_module._logging_configured = False
    try:
        client_module._configure_logging(env)
    finally:
        client_module._logging_configured = saved


def test_unserialisable_tool_results_still_count_as_run() -> None:
    call = ToolCall("c1", "tags", {})
    fake = FakeProvider("fake", [Script(tool_calls=[call]), Script("done")])

    def tags() -> set[str]:
        return {"a"}

    with Client(providers=[fake], env={}) as client:
        client.run_tools("fake/m", "Hi", [tags])
    assert fake.requests[1].messages[-1].content == "{'a'}"


async def test_embeddings_with_bad_base64_are_provider_errors(fake: FakeServer) -> None:
    fake.on("POST", "/v1/embeddings", Reply(json={"data": [{"index": 0, "embedding": "!!notbase64"}], "usage": {}}))
    with pytest.raises(errors.ProviderError):
        await openai(fake).embed(EmbeddingRequest("text-embedding-3-small", ["x"]))


@pytest.mark.parametrize("role", [[], {}, ["user"], {"a": 1}])
def test_an_unhashable_role_is_a_clear_error(role: object) -> None:
    from llmrelay._messages import to_messages
    from llmrelay.providers.openai.inbound import request_from_wire

    with pytest.raises(errors.InvalidRequest, match=r"messages\[0\]\.role"):
        to_messages([{"role": role, "content": "hi"}])
    with pytest.raises(errors.InvalidRequest, match=r"messages\[0\]\.role"):
        request_from_wire({"model": "m", "messages": [{"role": role}]})
