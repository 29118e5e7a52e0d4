"""Anthropic (Messages API): the provider, its error mapping and its stream decoder.

The wire translation itself lives in :mod:`.anthropic_codec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import errors
from .._assemble import StreamAssembler
from .._sse import SSEEvent, event_object
from ..structured import structured_tool_name
from ..types import (
    ChatRequest,
    ChatResponse,
    ModelInfo,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from . import anthropic_codec as codec
from .base import HTTPProvider, WireRequest, build_error, error_body, join_url, unexpected_body_error

# Anthropic error ``type`` -> our class. "prompt is too long" refines invalid_request_error.
ERROR_TYPES: dict[str, type[errors.LLMError]] = {
    "invalid_request_error": errors.InvalidRequest,
    "request_too_large": errors.InvalidRequest,
    "authentication_error": errors.AuthenticationError,
    "permission_error": errors.PermissionDenied,
    "not_found_error": errors.NotFound,
    "rate_limit_error": errors.RateLimited,
    "api_error": errors.ProviderError,
    "overloaded_error": errors.Overloaded,
    "timeout_error": errors.Timeout,
    "billing_error": errors.BudgetExceeded,
}
_CONTEXT_PHRASES = ("prompt is too long", "exceed context limit", "context window")


def error_class(error_type: str, message: str, status: int | None) -> type[errors.LLMError]:
    """The error class of an Anthropic error object (HTTP 529 is always ``Overloaded``)."""
    if status == 529:
        return errors.Overloaded
    cls = ERROR_TYPES.get(error_type)
    if cls is None:
        return errors.class_for_status(status) if status is not None else errors.ProviderError
    if cls is errors.InvalidRequest and any(phrase in message.lower() for phrase in _CONTEXT_PHRASES):
        return errors.ContextWindowExceeded
    return cls


def error_from_payload(
    payload: Any, *, provider: str, status: int | None, headers: Mapping[str, str]
) -> errors.LLMError | None:
    """The error an Anthropic ``{"type": "error", "error": {...}}`` body stands for, if it is one."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None
    error_type = str(error.get("type") or "unknown_error")
    message = str(error.get("message") or "no message")
    cls = error_class(error_type, message, status)
    where = f"HTTP {status} " if status is not None else ""
    return build_error(
        cls,
        f"{where}{error_type}: {message}",
        provider=provider,
        status=status if status is not None else cls.default_status or 502,
        headers=headers,
        body=payload,
    )


class AnthropicProvider(HTTPProvider):
    kind = "anthropic"

    # ---- codec hooks ---------------------------------------------------------------

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        try:
            payload = codec.chat_body(request, stream=stream)
        except errors.LLMError as exc:
            exc.provider = exc.provider or self.name
            raise
        return WireRequest(self._url("v1/messages"), self._headers(), payload)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        if isinstance(data, dict) and data.get("type") == "error":
            exc = error_from_payload(data, provider=self.name, status=None, headers={})
            if exc is not None:
                raise exc
        return codec.parse_message(data, provider=self.name, structured_tool=structured_tool_name(request))

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(assembler, self.name, structured_tool_name(request))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError:
        exc = error_from_payload(error_body(body), provider=self.name, status=status, headers=headers)
        return exc if exc is not None else unexpected_body_error(status, headers, body, self.name)

    def models_request(self) -> WireRequest:
        # One page of up to 1000 (the API maximum) covers every Claude model.
        return WireRequest(self._url("v1/models?limit=1000"), self._headers(), None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        return codec.parse_models(data, provider=self.name)

    # ---- helpers -------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return join_url(self.config.base_url or codec.DEFAULT_BASE_URL, path)

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": codec.API_VERSION, "content-type": "application/json"}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key.get()
        headers.update(self.config.headers)
        return headers


_STRUCTURED = -1  # the ordinal of the forced tool that carries a structured answer


class AnthropicStreamDecoder:
    """Messages API stream events -> canonical events (see ``StreamDecoder``)."""

    def __init__(self, assembler: StreamAssembler, provider: str, structured_tool: str | None = None) -> None:
        self._asm = assembler
        self._provider = provider
        self._structured_tool = structured_tool
        self._tools: dict[int, int] = {}  # Anthropic content index -> tool ordinal (0, 1, ...)
        self._tool_count = 0
        self._usage: dict[str, Any] = {}
        self._stopped = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        data = event_object(event, self._provider)
        if data is None:
            return []
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            return self._delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "message_start":
            return self._message_start(data.get("message") or {})
        if kind == "message_delta":
            return self._message_delta(data)
        if kind == "message_stop":
            self._stopped = True
        elif kind == "error":
            exc = error_from_payload(data, provider=self._provider, status=None, headers={})
            raise exc or errors.ProviderError("anthropic stream sent an error event", provider=self._provider)
        return []  # ping, content_block_stop and event types added later

    def close(self) -> None:
        if not self._stopped:
            raise errors.ProviderError("anthropic stream ended before message_stop", provider=self._provider)

    def _message_start(self, message: dict[str, Any]) -> list[StreamEvent]:
        self._asm.id = message.get("id") or self._asm.id
        self._asm.model = message.get("model") or self._asm.model
        self._usage = dict(message.get("usage") or {})
        return [UsageEvent(codec.usage_from_wire(self._usage))]

    def _block_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        block = data.get("content_block") or {}
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [TextDelta(block["text"])]
        if kind == "thinking" and block.get("thinking"):
            return [ReasoningDelta(block["thinking"])]
        if kind == "redacted_thinking":
            self._asm.extra.setdefault("redacted_thinking", []).append(block.get("data"))
        elif kind == "tool_use":
            index = data.get("index", -1)
            if block.get("name") == self._structured_tool:
                self._tools[index] = _STRUCTURED
                return []
            ordinal = self._tools[index] = self._tool_count
            self._tool_count += 1
            return [ToolCallDelta(ordinal, id=block.get("id"), name=block.get("name"))]
        return []

    def _delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(delta["text"])] if delta.get("text") else []
        if kind == "input_json_delta":
            fragment = delta.get("partial_json") or ""
            ordinal = self._tools.get(data.get("index", -1))
            if not fragment or ordinal is None:
                return []
            if ordinal == _STRUCTURED:
                return [TextDelta(fragment)]  # the structured answer is the text
            return [ToolCallDelta(ordinal, arguments=fragment)]
        if kind == "thinking_delta":
            return [ReasoningDelta(delta["thinking"])] if delta.get("thinking") else []
        if kind == "signature_delta":
            return [ReasoningDelta(signature=delta["signature"])] if delta.get("signature") else []
        return []  # citations_delta and future delta types

    def _message_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        if stop_reason:
            self._asm.native_finish_reason = stop_reason
            self._asm.finish_reason = codec.finish_reason(stop_reason, tool_calls=self._tool_count > 0)
            if stop_reason == "refusal":
                self._asm.refusal = codec.refusal_text(self._asm.text)
        usage = data.get("usage")
        if not isinstance(usage, dict):
            return []
        # Cumulative figures: newer API versions repeat the input counts here too.
        self._usage.update({key: value for key, value in usage.items() if value is not None})
        return [UsageEvent(codec.usage_from_wire(self._usage))]
