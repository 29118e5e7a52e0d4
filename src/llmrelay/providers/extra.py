"""How ``ChatRequest.extra`` / ``EmbeddingRequest.extra`` reach a wire body: one rule for every codec.

``extra`` holds pass-through fields: request fields a gateway client sent that
have no canonical home, or a library user's provider-specific options
(Anthropic's ``thinking``, Gemini's ``safetySettings``, Bedrock's
``additionalModelRequestFields``...). A codec first builds its body from the
typed fields, then calls :func:`merge_extra`, which adds what ``extra`` holds
under two rules:

- **extra never replaces a field the codec set.** The codec's value stands and
  the extra's is dropped. With ``one_level=True`` (Gemini) a dict the codec
  built is merged one level instead, the codec's keys still winning, and a list
  the codec built is extended (e.g. extra Gemini ``tools`` after the function
  declarations);
- **owned fields are never taken from extra at all**, set or not: the fields
  that decide what is generated and billed (the model, the prompt, the stream
  flags, the output limit, the number of answers...). Each codec declares its
  own set; a dotted name (``"generationConfig.candidateCount"``) owns a key
  inside a dict the extra gives.

A third rule keeps one wire format's own fields away from another: the
fields in ``FORMAT_FIELDS`` exist in one API only (Gemini's ``safetySettings``,
Anthropic's ``thinking``, OpenAI's ``frequency_penalty``...). A codec names its
format, and the fields of the other formats that are not also its own are
dropped: a Gemini SDK's safety settings do not make an OpenAI deployment refuse
the request, and a group mixing providers fails over without tripping on them.

Without these rules a gateway client could send ``"stream_options":
{"include_usage": false}`` and be billed nothing, ``"n": 5`` and pay for one
answer, or ``"max_completion_tokens"`` above what it was admitted for.

A dropped field is logged once at DEBUG, by name: its value may be anything
a client sent, so it is never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

log = logging.getLogger("llmrelay.provider")

OWNED = "it decides what is generated and billed"
SET_BY_CODEC = "the codec set it from the request"


FORMAT_FIELDS: dict[str, frozenset[str]] = {
    "openai": frozenset({
        "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs", "reasoning_effort",
        "parallel_tool_calls", "service_tier", "verbosity", "prediction", "modalities", "audio",
        "web_search_options", "store", "metadata", "prompt_cache_key", "safety_identifier",
    }),
    "openai-responses": frozenset({
        "reasoning", "parallel_tool_calls", "include", "text", "truncation", "store", "metadata", "service_tier",
        "prompt_cache_key", "safety_identifier", "max_tool_calls", "top_logprobs",
    }),
    "anthropic": frozenset({"thinking", "top_k", "metadata", "service_tier", "container", "mcp_servers"}),
    "gemini": frozenset({
        "safetySettings", "generationConfig", "toolConfig", "cachedContent", "serviceTier", "labels", "topK",
        "thinkingConfig", "safety_settings", "generation_config", "tool_config", "cached_content",
        "thinking_config",
    }),
    "cohere": frozenset({
        "safety_mode", "documents", "citation_options", "strict_tools", "frequency_penalty", "presence_penalty",
        "logprobs", "thinking",
    }),
    "bedrock": frozenset({
        "additionalModelRequestFields", "additionalModelResponseFieldPaths", "guardrailConfig",
        "performanceConfig", "promptVariables", "requestMetadata",
    }),
}  # fmt: skip
"""Fields that exist in one wire format's API only (a name two formats share is in both)."""

COMPATIBLE_EXTRAS = frozenset({"thinking", "reasoning", "top_k", "documents", "text", "include"})
"""Other formats' names that OpenAI-compatible servers (vLLM, Ollama, OpenRouter, ...) also take:
never dropped on the way to the ``openai`` format."""

_FOREIGN: dict[str, frozenset[str]] = {
    wire: frozenset().union(*(f for other, f in FORMAT_FIELDS.items() if other != wire))
    - own
    - (COMPATIBLE_EXTRAS if wire == "openai" else frozenset())
    for wire, own in FORMAT_FIELDS.items()
}
FOREIGN = "it belongs to another API's wire format"


def merge_extra(
    body: dict[str, Any],
    extra: Mapping[str, Any],
    owned: Collection[str],
    *,
    one_level: bool = False,
    wire: str | None = None,
) -> None:
    """Add ``extra`` to ``body`` in place: owned fields, fields already in ``body``
    and (given the codec's ``wire`` format) other formats' own fields are dropped
    (see the module docstring); ``one_level`` merges a dict into the dict the codec
    built and extends a list the codec built."""
    foreign = _FOREIGN.get(wire, frozenset()) if wire is not None else frozenset()
    for key, value in extra.items():
        if key in owned:
            _dropped(key, OWNED)
        elif key in foreign:
            _dropped(key, FOREIGN)
        elif key not in body:
            body[key] = _without_owned(key, value, owned)
        elif one_level and isinstance(body[key], dict) and isinstance(value, dict):
            body[key] = _merged(key, body[key], value, owned)
        elif one_level and isinstance(body[key], list) and isinstance(value, list):
            body[key] = body[key] + value
        else:
            _dropped(key, SET_BY_CODEC)


def _merged(key: str, built: dict[str, Any], value: dict[str, Any], owned: Collection[str]) -> dict[str, Any]:
    """A dict of extra merged under one the codec built: the codec's keys win."""
    for inner in value.keys() & built.keys():
        if f"{key}.{inner}" not in owned:
            _dropped(f"{key}.{inner}", SET_BY_CODEC)
    return {**_without_owned(key, value, owned), **built}


def _without_owned(key: str, value: Any, owned: Collection[str]) -> Any:
    """``value`` without the keys owned under ``key`` (``"key.inner"``), when it is a dict."""
    if not isinstance(value, dict):
        return value
    kept: dict[str, Any] = {}
    for inner, item in value.items():
        if f"{key}.{inner}" in owned:
            _dropped(f"{key}.{inner}", OWNED)
        else:
            kept[inner] = item
    return kept


def _dropped(name: str, reason: str) -> None:
    log.debug("extra field %.80r dropped: %s", name, reason)


__all__ = ["FORMAT_FIELDS", "merge_extra"]
