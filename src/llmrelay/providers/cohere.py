"""Cohere (API v2): the provider, its error mapping and its stream decoder.

Chat is ``POST /v2/chat`` (``stream: true`` for SSE), embeddings ``POST
/v2/embed``, the model list ``GET /v1/models``; auth is ``Authorization:
Bearer <key>``. ``base_url`` is the host root (``https://api.cohere.com``); a
trailing ``/v1`` or ``/v2`` on it is tolerated. The wire translation lives in
:mod:`.cohere_codec`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .. import errors
from .._assemble import StreamAssembler
from .._secret import Secret
from .._sse import SSEEvent, event_object
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from . import cohere_codec as codec
from .base import HTTPProvider, WireRequest, build_error, error_body, join_url, unexpected_body_error

_STATUS_CLASSES: dict[int, type[errors.LLMError]] = {
    400: errors.InvalidRequest,
    401: errors.AuthenticationError,
    402: errors.RateLimited,  # payment required: made non-retryable below
    403: errors.PermissionDenied,
    404: errors.NotFound,
    422: errors.InvalidRequest,
    429: errors.RateLimited,
    498: errors.AuthenticationError,  # Cohere's "invalid token"
    499: errors.ProviderError,  # the request was cancelled upstream
    500: errors.ProviderError,
    501: errors.InvalidRequest,  # feature not implemented for this model
    503: errors.Overloaded,
    504: errors.Timeout,
}
_VERSION_SUFFIX = re.compile(r"/v[12]/?$")


def error_class(status: int, message: str) -> type[errors.LLMError]:
    """The class of a Cohere error; "too many tokens" refines a 400."""
    cls = _STATUS_CLASSES.get(status) or errors.class_for_status(status)
    if cls is errors.InvalidRequest and "too many tokens" in message.lower():
        return errors.ContextWindowExceeded
    return cls


def is_final_limit(status: int, message: str) -> bool:
    """A limit that waiting does not lift: no payment (402) or a trial key's
    monthly call quota (429 "... limited to 1000 API calls / month")."""
    return status == 402 or (status == 429 and "/ month" in message.lower())


def map_cohere_error(
    status: int, headers: Mapping[str, str], body: bytes, provider: str, secret: Secret | None = None
) -> errors.LLMError:
    """HTTP status + Cohere's ``{"message": ...}`` (sometimes with ``id``) -> ``LLMError``."""
    body = _without_secret(body, secret)
    data = error_body(body)
    if not isinstance(data, dict):
        return unexpected_body_error(status, headers, body, provider)
    message = str(data.get("message") or data.get("detail") or f"HTTP {status}")
    exc = build_error(
        error_class(status, message), message, provider=provider, status=status, headers=headers, body=data
    )
    if is_final_limit(status, message):
        exc.retryable = False
    return exc


def _without_secret(body: bytes, secret: Secret | None) -> bytes:
    """The body with the API key masked: Cohere keys have no prefix the generic
    redaction recognises, so an echoed key is removed here, before parsing."""
    key = secret.get().encode() if secret else b""
    return body.replace(key, b"****") if len(key) >= 4 and key in body else body


class CohereProvider(HTTPProvider):
    kind = "cohere"
    max_embed_inputs = 96  # v2/embed: "texts" takes at most 96 (Cohere's API reference)

    @property
    def price_provider(self) -> str:
        return "cohere"

    # ---- codec hooks ---------------------------------------------------------------

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        try:
            payload = codec.chat_body(request, stream=stream)
        except errors.LLMError as exc:
            exc.provider = exc.provider or self.name
            raise
        accept = "text/event-stream" if stream else "application/json"
        return WireRequest(self._url("v2/chat"), self._headers(accept), payload)

    def billed_usage(self, response: ChatResponse) -> Usage | None:
        """Cohere bills ``billed_units``, which leave out its own prompt scaffolding."""
        billed = response.extra.get("billed_units") or (response.raw.get("usage") or {}).get("billed_units")
        if not isinstance(billed, dict):
            return None
        return Usage(
            prompt_tokens=int(billed.get("input_tokens") or 0), completion_tokens=int(billed.get("output_tokens") or 0)
        )

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        return codec.parse_chat(data, provider=self.name, model=request.model)

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> CohereStreamDecoder:
        return CohereStreamDecoder(assembler, self.name)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError:
        return map_cohere_error(status, headers, body, self.name, self.config.api_key)

    def embed_request(self, request: EmbeddingRequest) -> WireRequest:
        return WireRequest(self._url("v2/embed"), self._headers(), codec.embed_body(request))

    def parse_embed(self, data: Any, request: EmbeddingRequest) -> EmbeddingResponse:
        return codec.parse_embed(data, provider=self.name, model=request.model)

    def models_request(self) -> WireRequest:
        # One page of up to 1000 (the API maximum) covers every model an account sees.
        return WireRequest(self._url("v1/models?page_size=1000"), self._headers(), None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        return codec.parse_models(data, provider=self.name)

    # ---- helpers -------------------------------------------------------------------

    def _url(self, path: str) -> str:
        base = _VERSION_SUFFIX.sub("", (self.config.base_url or codec.DEFAULT_BASE_URL).rstrip("/"))
        return join_url(base, path)

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": accept}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key.get()}"
        headers.update(self.config.headers)
        return headers


class CohereStreamDecoder:
    """Cohere v2 chat stream events -> canonical events (see ``StreamDecoder``).

    Text and thinking come as ``content-delta``; the tool plan
    (``tool-plan-delta``) is collected in ``assembler.extra["tool_plan"]``;
    tool calls are numbered 0, 1, ... in the order they start; ``message-end``
    carries the finish reason and usage and is the end marker."""

    def __init__(self, assembler: StreamAssembler, provider: str) -> None:
        self._asm = assembler
        self._provider = provider
        self._content_kinds: dict[Any, str] = {}  # wire content index -> "text" / "thinking"
        self._tools: dict[Any, int] = {}  # wire tool index -> ordinal (0, 1, ...)
        self._ended = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        data = event_object(event, self._provider)
        if data is None:
            return []
        kind = data.get("type") or event.event
        handler = self._HANDLERS.get(str(kind))
        return handler(self, data) if handler is not None else []  # citations, debug, later types

    def close(self) -> None:
        if not self._ended:
            raise errors.StreamInterrupted(
                "cohere stream ended before message-end", provider=self._provider, retryable=True
            )

    # ---- one method per event type -------------------------------------------------

    def _message_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        self._asm.id = str(data.get("id") or self._asm.id)
        return []

    def _content_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        content = _delta_message(data).get("content") or {}
        kind = "thinking" if content.get("type") == "thinking" else "text"
        self._content_kinds[data.get("index")] = kind
        return self._content_events(content, kind)

    def _content_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        content = _delta_message(data).get("content") or {}
        return self._content_events(content, self._content_kinds.get(data.get("index"), "text"))

    @staticmethod
    def _content_events(content: dict[str, Any], kind: str) -> list[StreamEvent]:
        thinking = content.get("thinking")
        if isinstance(thinking, str) and thinking:
            return [ReasoningDelta(thinking)]
        text = content.get("text")
        if not isinstance(text, str) or not text:
            return []
        return [ReasoningDelta(text) if kind == "thinking" else TextDelta(text)]

    def _tool_plan_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        piece = _delta_message(data).get("tool_plan")
        if isinstance(piece, str) and piece:
            self._asm.extra["tool_plan"] = self._asm.extra.get("tool_plan", "") + piece
        return []

    def _tool_call_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        call = _tool_call_of(data)
        ordinal = self._tools[data.get("index")] = len(self._tools)
        fn = call.get("function") or {}
        return [
            ToolCallDelta(
                ordinal,
                id=call.get("id") or None,
                name=fn.get("name") or None,
                arguments=codec.arguments_text(fn.get("arguments")),
            )
        ]

    def _tool_call_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        ordinal = self._tools.get(data.get("index"), len(self._tools) - 1)
        fragment = codec.arguments_text((_tool_call_of(data).get("function") or {}).get("arguments"))
        if ordinal < 0 or not fragment:
            return []
        return [ToolCallDelta(ordinal, arguments=fragment)]

    def _citation_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        citations = _delta_message(data).get("citations")
        if citations:
            self._asm.extra.setdefault("citations", []).append(citations)
        return []

    def _message_end(self, data: dict[str, Any]) -> list[StreamEvent]:
        self._ended = True
        delta = data.get("delta") or {}
        native = delta.get("finish_reason")
        if native:
            self._asm.native_finish_reason = native
            self._asm.finish_reason = codec.finish_reason(native, tool_calls=bool(self._tools))
        usage = delta.get("usage")
        if not isinstance(usage, dict):
            return []
        if isinstance(usage.get("billed_units"), dict):
            self._asm.extra["billed_units"] = usage["billed_units"]
        return [UsageEvent(codec.usage_from_wire(usage))]

    _HANDLERS = {
        "message-start": _message_start,
        "content-start": _content_start,
        "content-delta": _content_delta,
        "tool-plan-delta": _tool_plan_delta,
        "tool-call-start": _tool_call_start,
        "tool-call-delta": _tool_call_delta,
        "citation-start": _citation_start,
        "message-end": _message_end,
    }


def _delta_message(data: dict[str, Any]) -> dict[str, Any]:
    message = (data.get("delta") or {}).get("message")
    return message if isinstance(message, dict) else {}


def _tool_call_of(data: dict[str, Any]) -> dict[str, Any]:
    call = _delta_message(data).get("tool_calls")
    return call if isinstance(call, dict) else {}
