"""``extra`` never overrides what a codec built, and a request JSON cannot hold is the caller's error.

Every codec merges ``extra`` with one rule (``providers/extra.py``): a field the
codec set stands, and the fields that decide what is generated and billed (each
codec's ``OWNED_FIELDS``) are never taken from ``extra`` at all. Codec tests
need no server; the encoding tests use a fake server only to show that nothing
reached it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeserver import FakeServer, Reply
from llmrelay import errors
from llmrelay._secret import Secret
from llmrelay.providers.anthropic import codec as anthropic_wire
from llmrelay.providers.anthropic.provider import AnthropicProvider
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.bedrock import codec as bedrock_wire
from llmrelay.providers.bedrock.provider import BedrockProvider
from llmrelay.providers.cohere import codec as cohere_wire
from llmrelay.providers.cohere.provider import CohereProvider
from llmrelay.providers.gemini import codec as gemini_wire
from llmrelay.providers.gemini.codec import EMBED_OWNED_FIELDS as GEMINI_EMBED_OWNED
from llmrelay.providers.gemini.provider import GeminiProvider
from llmrelay.providers.http import HTTPProvider
from llmrelay.providers.openai.codec import EMBED_OWNED_FIELDS as OPENAI_EMBED_OWNED
from llmrelay.providers.openai.codec import OWNED_FIELDS as OPENAI_OWNED
from llmrelay.providers.openai.codec import encode_chat
from llmrelay.providers.openai.compat import quirks_for
from llmrelay.providers.openai.provider import OpenAIProvider
from llmrelay.providers.openai_responses import codec as responses_wire
from llmrelay.providers.openai_responses.provider import OpenAIResponsesProvider
from llmrelay.types import ChatRequest, EmbeddingRequest, Message, ToolSpec

Body = dict[str, Any]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
KEY = "sk-test-SECRETKEY1234567890"


def full(model: str = "m", **kw: Any) -> ChatRequest:
    """A request whose typed fields make every codec set most of what it can."""
    return ChatRequest(
        model=model,
        messages=[Message("system", "Be brief"), Message("user", "Weather in Paris?")],
        tools=[ToolSpec("weather", "Weather by city", SCHEMA)],
        tool_choice="required",
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        seed=7,
        user="u1",
        **kw,
    )


def minimal(model: str = "m", **kw: Any) -> ChatRequest:
    """A request that sets nothing optional: an owned field in extra must not fill the gap."""
    return ChatRequest(model=model, messages=[Message("user", "Hi")], **kw)


def provider_config(kind: str, url: str = "http://127.0.0.1:9") -> ProviderConfig:
    return ProviderConfig(name=kind, kind=kind, base_url=url, api_key=Secret(KEY))


# ---------------------------------------------------------------- one row per codec


@dataclass(frozen=True)
class Row:
    """One codec's body builder (``extra`` -> body) and the rule's parameters for it."""

    name: str
    build: Callable[[dict[str, Any]], Body]
    owned: frozenset[str]
    one_level: bool = False
    defaults: frozenset[str] = frozenset()
    """Fields the codec only sends when extra does not choose them."""
    reads: frozenset[str] = frozenset()
    """Extra fields the codec itself consults (Anthropic's ``thinking``)."""
    unowned: dict[str, Any] = field(default_factory=dict)
    """A pass-through field this provider really takes."""


def _chat(encode: Callable[[ChatRequest], Body], make: Callable[..., ChatRequest]) -> Callable[[dict[str, Any]], Body]:
    return lambda extra: encode(make(extra=extra))


def _embed(encode: Callable[[EmbeddingRequest], Body], dimensions: int | None) -> Callable[[dict[str, Any]], Body]:
    return lambda extra: encode(EmbeddingRequest("e", ["a", "b"], dimensions=dimensions, user="u1", extra=extra))


def _openai_embed(request: EmbeddingRequest) -> Body:
    payload = OpenAIProvider(provider_config("openai")).embed_request(request).payload
    assert payload is not None
    return payload


def _gemini_embed_item(request: EmbeddingRequest) -> Body:
    payload = GeminiProvider(provider_config("gemini")).embed_request(request).payload
    assert payload is not None
    items: list[Body] = payload["requests"]
    shared = [{k: v for k, v in item.items() if k != "content"} for item in items]
    assert all(fields == shared[0] for fields in shared)  # extra is merged once, the same into every item
    return items[0]


def _rows(make: Callable[..., ChatRequest], label: str, dimensions: int | None) -> list[Row]:
    openai, mistral = quirks_for("openai"), quirks_for("mistral")
    return [
        Row(f"openai-{label}", _chat(lambda r: encode_chat(r, stream=True, quirks=openai), make), OPENAI_OWNED,
            unowned={"logprobs": True}),
        Row(f"mistral-{label}", _chat(lambda r: encode_chat(r, stream=True, quirks=mistral), make), OPENAI_OWNED,
            unowned={"safe_prompt": True}),
        Row(f"responses-{label}", _chat(lambda r: responses_wire.encode_chat(r, stream=True), make),
            responses_wire.OWNED_FIELDS, defaults=frozenset({"store"}),
            unowned={"reasoning": {"effort": "low"}}),
        Row(f"anthropic-{label}", _chat(lambda r: anthropic_wire.encode_chat(r, stream=True), make),
            anthropic_wire.OWNED_FIELDS, reads=frozenset({"thinking"}), unowned={"top_k": 5}),
        Row(f"gemini-{label}", _chat(lambda r: gemini_wire.encode_chat(r, stream=True), make),
            gemini_wire.OWNED_FIELDS, one_level=True,
            unowned={"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}),
        Row(f"cohere-{label}", _chat(lambda r: cohere_wire.encode_chat(r, stream=True), make),
            cohere_wire.OWNED_FIELDS, unowned={"k": 40}),
        Row(f"bedrock-{label}", _chat(lambda r: bedrock_wire.encode_chat(r, stream=True), make),
            bedrock_wire.OWNED_FIELDS, unowned={"additionalModelRequestFields": {"top_k": 5}}),
        Row(f"cohere-embed-{label}", _embed(cohere_wire.encode_embed, dimensions), cohere_wire.EMBED_OWNED_FIELDS,
            defaults=frozenset({"input_type", "embedding_types"}), unowned={"truncate": "END"}),
        Row(f"openai-embed-{label}", _embed(_openai_embed, dimensions), OPENAI_EMBED_OWNED,
            unowned={"custom_option": 1}),
        Row(f"gemini-embed-{label}", _embed(_gemini_embed_item, dimensions), GEMINI_EMBED_OWNED,
            unowned={"taskType": "RETRIEVAL_QUERY"}),
    ]  # fmt: skip


ROWS = _rows(full, "full", 256) + _rows(minimal, "minimal", None)


def owned_values(body: Body, owned: frozenset[str]) -> dict[str, Any]:
    """What ``body`` holds under each owned name (dotted names one level down); absent is ``...``."""
    out: dict[str, Any] = {}
    for name in owned:
        parent, _, child = name.partition(".")
        value = body.get(parent, ...)
        if child:
            value = value.get(child, ...) if isinstance(value, dict) else ...
        out[name] = value
    return out


def assert_codec_values_stand(body: Body, baseline: Body, row: Row) -> None:
    """Every field the codec built is in ``body`` as built (a one-level codec's
    dicts may gain keys and its lists may be extended); owned fields are as built."""
    assert owned_values(body, row.owned) == owned_values(baseline, row.owned)
    for key, built in baseline.items():
        if key in row.defaults:
            continue
        if row.one_level and isinstance(built, dict):
            assert {k: body[key][k] for k in built} == built, key
        elif row.one_level and isinstance(built, list):
            assert body[key][: len(built)] == built, key
        else:
            assert body[key] == built, key


def attack(row: Row, baseline: Body) -> dict[str, Any]:
    """An extra that tries every owned field and every field the codec set, with other values."""
    extra: dict[str, Any] = {}
    for name in sorted(row.owned):
        parent, _, child = name.partition(".")
        if child:
            extra.setdefault(parent, {})[child] = 999_999
        else:
            extra[name] = {"attacker": name}
    for key, built in baseline.items():
        if key in row.owned or key in row.defaults:
            continue
        if row.one_level and isinstance(built, dict):  # the keys the codec set inside a dict it built
            extra.setdefault(key, {}).update(
                {inner: "replaced" for inner in built if f"{key}.{inner}" not in row.owned}
            )
        else:
            extra.setdefault(key, "replaced")
    return extra


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_owned_and_codec_set_fields_in_extra_never_reach_the_body(row: Row) -> None:
    baseline = row.build({})
    body = row.build({**attack(row, baseline), **row.unowned})
    assert_codec_values_stand(body, baseline, row)
    for key, value in row.unowned.items():  # a field the provider takes still passes through
        assert body[key] == value


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_a_dropped_field_is_logged_by_name_never_by_value(row: Row, caplog: pytest.LogCaptureFixture) -> None:
    name = sorted(n for n in row.owned if "." not in n)[0]
    with caplog.at_level(logging.DEBUG, logger="llmrelay.provider"):
        row.build({name: "SECRET-VALUE-4711"})
    lines = [r.getMessage() for r in caplog.records]
    assert [line for line in lines if repr(name) in line and "dropped" in line]
    assert not any("SECRET-VALUE-4711" in line for line in lines)


# ---------------------------------------------------------------- what each codec owns, spelled out


def test_openai_stream_keeps_its_usage_one_choice_and_the_admitted_limit() -> None:
    extra = {
        "stream": False,
        "stream_options": {"include_usage": False},
        "n": 5,
        "max_completion_tokens": 100_000,
        "max_tokens": 100_000,
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "something else"}],
        "temperature": 2.0,
        "logprobs": True,
        "reasoning_effort": "low",
    }
    body = encode_chat(full("gpt-4o-mini", extra=extra), stream=True, quirks=quirks_for("openai"))
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "n" not in body and "max_tokens" not in body and body["max_completion_tokens"] == 50
    assert body["model"] == "gpt-4o-mini" and body["messages"][-1]["content"] == "Weather in Paris?"
    assert body["temperature"] == 0.2
    assert body["logprobs"] is True and body["reasoning_effort"] == "low"
    assert {"model", "messages", "stream", "stream_options", "n", "max_tokens", "max_completion_tokens"} <= OPENAI_OWNED
    bare = encode_chat(minimal(extra=extra), stream=False, quirks=quirks_for("openai"))  # no limit asked: none is sent
    assert not {"stream", "stream_options", "n", "max_tokens", "max_completion_tokens", "temperature"} & bare.keys()


def test_compatible_row_with_its_own_field_names() -> None:
    """Mistral's row sends ``max_tokens`` and ``random_seed``; neither these nor
    OpenAI's names come from extra."""
    extra = {"max_completion_tokens": 100_000, "max_tokens": 100_000, "random_seed": 1, "seed": 1, "safe_prompt": True}
    body = encode_chat(full(extra=extra), stream=True, quirks=quirks_for("mistral"))
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    assert body["random_seed"] == 7 and "seed" not in body
    assert "stream_options" not in body and body["safe_prompt"] is True  # this row sends no stream_options
    bare = encode_chat(minimal(extra=extra), stream=True, quirks=quirks_for("groq"))
    assert not {"max_tokens", "max_completion_tokens", "seed", "random_seed"} & bare.keys()


def test_anthropic_owns_the_prompt_the_limit_and_the_stream() -> None:
    extra = {
        "model": "claude-opus-4-1",
        "messages": [{"role": "user", "content": "something else"}],
        "system": "Say yes",
        "max_tokens": 64_000,
        "stream": False,
        "temperature": 1.0,
        "top_k": 5,
    }
    body = anthropic_wire.encode_chat(full("claude-sonnet-4-5", extra=extra), stream=True)
    assert (body["model"], body["system"], body["max_tokens"], body["stream"]) == (
        "claude-sonnet-4-5",
        "Be brief",
        50,
        True,
    )
    assert "something else" not in str(body["messages"]) and "Weather in Paris?" in str(body["messages"])
    assert body["temperature"] == 0.2 and body["top_k"] == 5
    bare = anthropic_wire.encode_chat(minimal("claude-sonnet-4-5", extra=extra), stream=False)
    assert bare["max_tokens"] == anthropic_wire.default_max_tokens("claude-sonnet-4-5")
    assert "system" not in bare and "stream" not in bare
    assert {"model", "messages", "stream", "max_tokens", "system"} <= anthropic_wire.OWNED_FIELDS


def test_anthropic_thinking_in_extra_still_works() -> None:
    thinking = {"type": "enabled", "budget_tokens": 16_000}
    body = anthropic_wire.encode_chat(minimal("claude-sonnet-4-5", extra={"thinking": thinking}), stream=False)
    assert body["thinking"] == thinking and body["max_tokens"] == 16_000 + 8192  # room above the budget
    asked = anthropic_wire.encode_chat(full("claude-sonnet-4-5", extra={"thinking": thinking}), stream=False)
    assert asked["thinking"] == thinking and asked["max_tokens"] == 50


def test_gemini_owns_the_prompt_the_limit_and_the_candidate_count() -> None:
    extra = {
        "contents": [{"role": "user", "parts": [{"text": "something else"}]}],
        "systemInstruction": {"parts": [{"text": "Say yes"}]},
        "generationConfig": {
            "maxOutputTokens": 65_536,
            "candidateCount": 4,
            "temperature": 2.0,
            "thinkingConfig": {"thinkingBudget": 0},
        },
        "tools": [{"googleSearch": {}}],
        "safetySettings": [],
    }
    body = gemini_wire.encode_chat(full(extra=extra), stream=False)
    assert "something else" not in str(body["contents"]) and body["systemInstruction"] == {
        "parts": [{"text": "Be brief"}]
    }
    config = body["generationConfig"]
    assert config["maxOutputTokens"] == 50 and config["temperature"] == 0.2 and "candidateCount" not in config
    assert config["thinkingConfig"] == {"thinkingBudget": 0}  # still added to the built config
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "weather" and body["tools"][1] == {"googleSearch": {}}
    assert body["safetySettings"] == []
    # the codec built no config: extra's, less what is owned
    bare = gemini_wire.encode_chat(minimal(extra=extra), stream=False)
    assert bare["generationConfig"] == {"temperature": 2.0, "thinkingConfig": {"thinkingBudget": 0}}
    assert bare["tools"] == [{"googleSearch": {}}] and "systemInstruction" not in bare


def test_cohere_chat_and_embed() -> None:
    extra = {"model": "command-a", "messages": [], "stream": True, "max_tokens": 100_000, "temperature": 1.0, "k": 40}
    body = cohere_wire.encode_chat(full("command-r", extra=extra), stream=False)
    assert (body["model"], body["stream"], body["max_tokens"], body["temperature"], body["k"]) == (
        "command-r",
        False,
        50,
        0.2,
        40,
    )
    assert len(body["messages"]) == 2
    assert "max_tokens" not in cohere_wire.encode_chat(minimal(extra=extra), stream=False)
    asked = {"model": "x", "texts": ["z"] * 9, "inputs": [{"content": []}], "images": ["data:"], "output_dimension": 9}
    embed = cohere_wire.encode_embed(
        EmbeddingRequest("embed-v4.0", ["a"], extra={**asked, "input_type": "search_query"})
    )
    assert embed == {
        "model": "embed-v4.0",
        "texts": ["a"],
        "input_type": "search_query",  # a default here: extra may choose it
        "embedding_types": ["float"],
    }


def test_bedrock_owns_the_prompt_and_inference_config() -> None:
    extra = {
        "messages": [{"role": "user", "content": [{"text": "something else"}]}],
        "system": [{"text": "Say yes"}],
        "inferenceConfig": {"maxTokens": 100_000},
        "additionalModelRequestFields": {"top_k": 5},
    }
    body = bedrock_wire.encode_chat(full(extra=extra), stream=False)
    assert body["system"] == [{"text": "Be brief"}] and "something else" not in str(body["messages"])
    assert body["inferenceConfig"]["maxTokens"] == 50 and body["additionalModelRequestFields"] == {"top_k": 5}
    bare = bedrock_wire.encode_chat(minimal(extra=extra), stream=False)
    assert "inferenceConfig" not in bare and "system" not in bare


def test_responses_store_stays_a_default_the_rest_is_owned() -> None:
    extra = {"store": True, "previous_response_id": "resp_x", "max_output_tokens": 100_000, "stream": False}
    body = responses_wire.encode_chat(minimal(extra={**extra, "include": ["reasoning.encrypted_content"]}), stream=True)
    assert body["store"] is True and body["stream"] is True and body["include"] == ["reasoning.encrypted_content"]
    assert "previous_response_id" not in body and "max_output_tokens" not in body
    assert responses_wire.encode_chat(minimal(), stream=False)["store"] is False


# ---------------------------------------------------------------- the property


NAMES = sorted(
    {name.partition(".")[p] for row in ROWS for name in row.owned | {*row.build({}).keys()} for p in (0, 2)} - {""}
    | {"thinking", "logprobs", "top_k", "safetySettings", "reasoning_effort", "input_type", "taskType"}
)
KEYS = st.sampled_from(NAMES) | st.text(max_size=6)
LEAVES = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8)
JSONISH = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(KEYS, JSONISH, max_size=8))
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_property_owned_fields_are_as_built_without_extra(row: Row, extra: dict[str, Any]) -> None:
    read = {k: v for k, v in extra.items() if k in row.reads}  # what the codec consults (a thinking budget)
    baseline = row.build(read)
    body = row.build(extra)
    assert owned_values(body, row.owned) == owned_values(baseline, row.owned)
    assert_codec_values_stand(body, baseline, row)


# ---------------------------------------------------------------- a body JSON cannot hold


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


PROVIDERS: dict[str, tuple[Callable[[str], HTTPProvider], str]] = {
    "openai": (lambda url: OpenAIProvider(provider_config("openai", url + "/v1")), "/v1/chat/completions"),
    "responses": (
        lambda url: OpenAIResponsesProvider(provider_config("openai-responses", url + "/v1")),
        "/v1/responses",
    ),
    "anthropic": (lambda url: AnthropicProvider(provider_config("anthropic", url)), "/v1/messages"),
    "gemini": (lambda url: GeminiProvider(provider_config("gemini", url)), "/v1beta/models/m:generateContent"),
    "cohere": (lambda url: CohereProvider(provider_config("cohere", url)), "/v2/chat"),
    "bedrock": (lambda url: BedrockProvider(provider_config("bedrock", url)), "/model/m/converse"),
}
UNENCODABLE: dict[str, Callable[[], ChatRequest]] = {
    "deep-extra": lambda: minimal(extra={"metadata_x": nested(300)}),
    "deep-tool-schema": lambda: minimal(
        tools=[ToolSpec("f", "deep", {"type": "object", "properties": {"x": nested(300)}})]
    ),
    "set-in-extra": lambda: minimal(extra={"tags": {"a", "b"}}),
}


@pytest.mark.parametrize("how", sorted(UNENCODABLE))
@pytest.mark.parametrize("kind", sorted(PROVIDERS))
async def test_a_request_json_cannot_hold_is_invalid_and_never_sent(fake: FakeServer, kind: str, how: str) -> None:
    make, path = PROVIDERS[kind]
    fake.on("POST", path, Reply(json={}))
    provider = make(fake.url)
    with pytest.raises(errors.InvalidRequest, match="cannot be encoded") as chat:
        await provider.chat(UNENCODABLE[how]())
    with pytest.raises(errors.InvalidRequest, match="cannot be encoded") as stream:
        async for _ in provider.stream(UNENCODABLE[how]()):
            pass
    assert chat.value.provider == stream.value.provider == kind.replace("responses", "openai-responses")
    assert not chat.value.retryable and chat.value.status_code == 400
    assert fake.requests == []


@pytest.mark.parametrize(
    "make",
    [
        lambda url: OpenAIProvider(provider_config("openai", url + "/v1")),
        lambda url: CohereProvider(provider_config("cohere", url)),
        lambda url: GeminiProvider(provider_config("gemini", url)),
    ],
    ids=["openai", "cohere", "gemini"],
)
async def test_an_embed_request_json_cannot_hold_is_invalid_and_never_sent(
    fake: FakeServer, make: Callable[[str], HTTPProvider]
) -> None:
    with pytest.raises(errors.InvalidRequest, match="cannot be encoded as JSON: Recursion limit"):
        await make(fake.url).embed(EmbeddingRequest("e", ["a"], extra={"options_x": nested(300)}))
    assert fake.requests == []


def test_answers_without_an_upstream_id_get_a_unique_one() -> None:
    """The local model gives no id: each answer the gateway sends still has its own."""
    from llmrelay.providers.openai.inbound import response_to_wire
    from llmrelay.types import ChatResponse, Usage

    answer = ChatResponse(content="Paris.", model="smollm2", finish_reason="stop", usage=Usage(), provider="local")
    ids = {response_to_wire(answer, 0)["id"] for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("chatcmpl-") for i in ids)
    given = replace(answer, id="chatcmpl-upstream-1")
    assert response_to_wire(given, 0)["id"] == "chatcmpl-upstream-1"  # an upstream's own id is kept


def test_one_formats_own_fields_never_reach_another_format() -> None:
    """A Gemini SDK's safety settings or an OpenAI client's penalties in ``extra`` reach
    their own API and are dropped on the way to another (which would refuse them)."""
    extra = {
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
        "frequency_penalty": 0.5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "custom_knob": 1,  # nobody's own field: passed on everywhere, as before
    }
    request = ChatRequest("m", [Message("user", "hi")], max_tokens=2048, extra=extra)
    bodies = {
        "openai": encode_chat(request, stream=False, quirks=quirks_for("openai")),
        "anthropic": anthropic_wire.encode_chat(request, stream=False),
        "gemini": gemini_wire.encode_chat(request, stream=False),
        "cohere": cohere_wire.encode_chat(request, stream=False),
        "bedrock": bedrock_wire.encode_chat(request, stream=False),
        "responses": responses_wire.encode_chat(request, stream=False),
    }
    camel = {"custom_knob": "customKnob"}  # Google's JSON takes camelCase: the Gemini codec writes it so
    kept = {name: sorted(k for k in extra if k in body or camel.get(k) in body) for name, body in bodies.items()}
    assert kept == {
        "openai": ["custom_knob", "frequency_penalty", "thinking"],  # OpenAI-compatible servers take thinking
        "anthropic": ["custom_knob", "thinking"],
        "gemini": ["custom_knob", "safetySettings"],
        "cohere": ["custom_knob", "frequency_penalty", "thinking"],  # Cohere v2 takes these
        "bedrock": ["custom_knob"],
        "responses": ["custom_knob"],
    }


def test_googles_snake_case_spellings_cannot_slip_past_the_owned_fields() -> None:
    extra = {"generation_config": {"candidate_count": 4, "max_output_tokens": 60_000, "top_k": 5}, "labels": {"a_b": 1}}
    body = gemini_wire.encode_chat(ChatRequest("m", [Message("user", "hi")], max_tokens=100, extra=extra), stream=False)
    assert body["generationConfig"] == {"maxOutputTokens": 100, "topK": 5}  # one candidate, the admitted limit
    assert body["labels"] == {"a_b": 1}  # the caller's own keys are left as they are
    assert "generation_config" not in body
