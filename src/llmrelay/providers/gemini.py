"""Google Gemini API (``generativelanguage.googleapis.com``, v1beta).

The key goes in the ``x-goog-api-key`` header, never in the URL. Endpoints:
``models/{model}:generateContent``, ``:streamGenerateContent?alt=sse`` (SSE
with CRLF framing and no end marker: the chunk carrying ``finishReason`` is
the last), ``:batchEmbedContents`` and ``GET models``.

Provider-specific settings go in ``ChatRequest.extra`` and are merged into the
body last, never over what the typed fields set (see ``gemini_codec.encode_chat``
and :mod:`.extra`), e.g.::

    extra={"safetySettings": [...],
           "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}}

``EmbeddingRequest.extra`` is added to every item of ``requests`` (e.g.
``{"taskType": "RETRIEVAL_QUERY"}``), never replacing the item's model, text or
``outputDimensionality``. Embedding usage is Gemini's
``usageMetadata.promptTokenCount`` when sent, else zero (older deployments
send none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import urlencode

from .. import errors
from .._assemble import StreamAssembler
from .._headers import parse_duration_s
from .._json import dumps_str
from .._secret import redact
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
from .base import HTTPProvider, StreamDecoder, WireRequest, build_error, error_body, join_url, unexpected_body_error
from .extra import merge_extra
from .gemini_codec import (
    CALL_ID,
    JSON,
    SIGNATURE,
    candidate_extra,
    candidate_parts,
    check_prompt_blocked,
    encode_chat,
    finish_reason,
    first_candidate,
    model_path,
    parse_chat_response,
    usage_from_wire,
)
from .gemini_partial import apply_partial_arg

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_MAX_MODEL_PAGES = 20

_BY_RPC_STATUS: dict[str, type[errors.LLMError]] = {
    "INVALID_ARGUMENT": errors.InvalidRequest,
    "FAILED_PRECONDITION": errors.InvalidRequest,
    "OUT_OF_RANGE": errors.InvalidRequest,
    "UNAUTHENTICATED": errors.AuthenticationError,
    "PERMISSION_DENIED": errors.PermissionDenied,
    "NOT_FOUND": errors.NotFound,
    "RESOURCE_EXHAUSTED": errors.RateLimited,
    "INTERNAL": errors.ProviderError,
    "UNKNOWN": errors.ProviderError,
    "UNAVAILABLE": errors.Overloaded,
    "DEADLINE_EXCEEDED": errors.Timeout,
}
_BAD_KEY_REASONS = frozenset(("API_KEY_INVALID", "API_KEY_EXPIRED"))
EMBED_OWNED_FIELDS = frozenset(("model", "content"))
"""Fields of a ``batchEmbedContents`` item never taken from ``extra``: the model
and the text (what is billed, one vector per item)."""


class GeminiProvider(HTTPProvider):
    kind = "gemini"
    window_includes_output = False  # inputTokenLimit bounds the prompt alone
    max_embed_inputs = 100  # batchEmbedContents: "at most 100 requests can be in one batch" (HTTP 400 past it)

    @property
    def price_provider(self) -> str:
        return "google"

    # ---- requests ------------------------------------------------------------------

    def _root(self) -> str:
        """The versioned API root; a base URL that already ends in a version is kept."""
        base = (self.config.base_url or DEFAULT_BASE_URL).rstrip("/")
        if base.rsplit("/", 1)[-1] in ("v1", "v1beta", "v1alpha"):
            return base
        return f"{base}/{self.config.options.get('api_version', 'v1beta')}"

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.config.api_key:
            headers["x-goog-api-key"] = self.config.api_key.get()
        headers.update(self.config.headers)
        return headers

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        try:
            body = encode_chat(request)
        except errors.LLMError as exc:
            exc.provider = exc.provider or self.name
            raise
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return WireRequest(join_url(self._root(), f"{model_path(request.model)}:{action}"), self._headers(), body)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        if isinstance(data, dict) and "error" in data:  # an error status object under HTTP 200
            raise self._payload_error(data)
        return parse_chat_response(data, request.model, self.name)

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> StreamDecoder:
        return GeminiStreamDecoder(assembler, self.name, self._payload_error)

    def embed_request(self, request: EmbeddingRequest) -> WireRequest:
        name = model_path(request.model)
        shared: JSON = {"model": name}
        if request.dimensions is not None:
            shared["outputDimensionality"] = request.dimensions
        merge_extra(shared, request.extra, EMBED_OWNED_FIELDS)  # once, not once per text
        items = [{**shared, "content": {"parts": [{"text": text}]}} for text in request.inputs]
        url = join_url(self._root(), f"{name}:batchEmbedContents")
        return WireRequest(url, self._headers(), {"requests": items})

    def parse_embed(self, data: Any, request: EmbeddingRequest) -> EmbeddingResponse:
        embeddings = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(embeddings, list):
            raise errors.ProviderError("Gemini embeddings answer has no embeddings list", provider=self.name, body=data)
        vectors = [(e.get("values") or []) if isinstance(e, dict) else [] for e in embeddings]
        meta = data.get("usageMetadata")
        prompt = meta.get("promptTokenCount") if isinstance(meta, dict) else None
        usage = Usage(prompt_tokens=prompt if isinstance(prompt, int) else 0)
        return EmbeddingResponse(vectors, usage, request.model, self.name, raw=data)

    def models_request(self) -> WireRequest:
        return self._models_page(None)

    def _models_page(self, token: str | None) -> WireRequest:
        query: dict[str, str | int] = {"pageSize": 1000}
        if token:
            query["pageToken"] = token
        url = join_url(self._root(), "models") + "?" + urlencode(query)
        return WireRequest(url, self._headers(), None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        found = data.get("models") if isinstance(data, dict) else None
        return [self._model_info(m) for m in found or [] if isinstance(m, dict) and m.get("name")]

    def _model_info(self, model: JSON) -> ModelInfo:
        name = str(model["name"])
        methods = model.get("supportedGenerationMethods") or []
        return ModelInfo(
            id=name.removeprefix("models/"),
            provider=self.name,
            context_window=model.get("inputTokenLimit"),
            max_output_tokens=model.get("outputTokenLimit"),
            supports_streaming="streamGenerateContent" in methods,
            raw=model,
        )

    async def models(self) -> list[ModelInfo]:
        """Every page of ``GET models`` (one page of 1000 covers today's list)."""
        found: list[ModelInfo] = []
        token: str | None = None
        for _ in range(_MAX_MODEL_PAGES):
            page = partial(self._models_page, token)
            models, token = await self._call(page, self._models_and_token, "models list")
            found.extend(models)
            if not token:
                break
        return found

    def _models_and_token(self, data: Any) -> tuple[list[ModelInfo], str | None]:
        token = data.get("nextPageToken") if isinstance(data, dict) else None
        return self.parse_models(data), token if isinstance(token, str) else None

    # ---- errors --------------------------------------------------------------------

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError:
        payload = error_body(body)
        status_obj = _status_object(payload)
        if status_obj is None:
            return unexpected_body_error(status, headers, body, self.name)
        return self._error(status, headers, status_obj, payload)

    def _payload_error(self, payload: JSON) -> errors.LLMError:
        status_obj = _status_object(payload) or {}
        code = status_obj.get("code")
        return self._error(code if isinstance(code, int) and code >= 400 else 500, {}, status_obj, payload)

    def _error(self, status: int, headers: Mapping[str, str], status_obj: JSON, payload: Any) -> errors.LLMError:
        rpc = str(status_obj.get("status") or "")
        text = str(status_obj.get("message") or "no message")
        message = f"{text} ({rpc or f'HTTP {status}'})"
        cls = error_class(status, rpc, text, status_obj.get("details"))
        exc = build_error(
            cls, redact(message, self.config.api_key), provider=self.name, status=status, headers=headers, body=payload
        )
        if exc.retry_after is None:
            exc.retry_after = retry_delay_s(status_obj.get("details"))
        return exc


def _status_object(payload: Any) -> JSON | None:
    """The ``google.rpc.Status`` in ``{"error": {...}}`` (or ``[{"error": ...}]``)."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else None


def error_class(status: int, rpc: str, message: str, details: Any) -> type[errors.LLMError]:
    lowered = message.lower()
    if _detail_reasons(details) & _BAD_KEY_REASONS or "api key not valid" in lowered:
        return errors.AuthenticationError
    cls = _BY_RPC_STATUS.get(rpc) or errors.class_for_status(status)
    if cls is errors.InvalidRequest and "token count" in lowered and "exceed" in lowered:
        return errors.ContextWindowExceeded
    return cls


def _detail_reasons(details: Any) -> set[str]:
    items = details if isinstance(details, list) else []
    return {str(d["reason"]) for d in items if isinstance(d, dict) and d.get("reason")}


def retry_delay_s(details: Any) -> float | None:
    """``RetryInfo.retryDelay`` (``"34.4s"``) from an error's details."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str):
                return parse_duration_s(delay)
    return None


# ---- streaming ------------------------------------------------------------------------


class _PendingCall:
    """A Vertex function call streamed with ``willContinue`` / ``partialArgs``."""

    __slots__ = ("args", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.args: JSON = {}

    def apply(self, function: JSON) -> None:
        if isinstance(function.get("args"), dict):
            self.args.update(function["args"])
        for item in function.get("partialArgs") or []:
            apply_partial_arg(self.args, item)


class GeminiStreamDecoder:
    """Each SSE event is a whole ``GenerateContentResponse`` chunk. Gemini sends a
    function call whole, in one part (one ``ToolCallDelta``); Vertex may stream
    its arguments as ``partialArgs``, which are assembled here and emitted as
    one JSON text when the call ends."""

    def __init__(self, assembler: StreamAssembler, provider: str, on_error: Callable[[JSON], errors.LLMError]) -> None:
        self._asm = assembler
        self._provider = provider
        self._on_error = on_error
        self._calls = 0
        self._pending: _PendingCall | None = None
        self._usage = Usage()
        self._finished = False
        self._signed = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        if not event.data.strip():
            return []
        chunk = event_object(event, self._provider)
        if chunk is None:
            raise errors.ProviderError("Gemini stream sent an event that is not an object", provider=self._provider)
        if "error" in chunk:
            raise self._on_error(chunk)
        check_prompt_blocked(chunk, self._provider)
        out: list[StreamEvent] = []
        self._metadata(chunk)
        candidate = first_candidate(chunk)
        if candidate is not None:
            self._candidate(candidate, out)
        if "usageMetadata" in chunk:
            usage = usage_from_wire(chunk["usageMetadata"])
            if usage != self._usage:
                self._usage = usage
                out.append(UsageEvent(usage))
        return out

    def close(self) -> None:
        if not self._finished:
            # ProviderError: the flow turns it into StreamInterrupted (with the partial answer) once text arrived.
            raise errors.ProviderError("Gemini stream ended without a finishReason (cut off?)", provider=self._provider)

    def _metadata(self, chunk: JSON) -> None:
        if chunk.get("responseId"):
            self._asm.id = str(chunk["responseId"])
        if chunk.get("modelVersion"):
            self._asm.model = str(chunk["modelVersion"])

    def _candidate(self, candidate: JSON, out: list[StreamEvent]) -> None:
        for part in candidate_parts(candidate):
            if "functionCall" in part:
                self._function_call(part, out)
            else:
                self._flush_pending(out)
                self._text(part, out)
        native = candidate.get("finishReason")
        if native:
            self._flush_pending(out)
            self._asm.native_finish_reason = str(native)
            self._asm.finish_reason = finish_reason(str(native), self._calls > 0)
            self._asm.extra.update(candidate_extra(candidate))
            self._finished = True

    def _text(self, part: JSON, out: list[StreamEvent]) -> None:
        text = part.get("text")
        if isinstance(text, str) and text:
            out.append(ReasoningDelta(text) if part.get("thought") else TextDelta(text))
        signature = part.get("thoughtSignature")
        if signature and not self._signed:  # the first one only: the assembler joins signature pieces
            self._signed = True
            out.append(ReasoningDelta(signature=str(signature)))

    def _function_call(self, part: JSON, out: list[StreamEvent]) -> None:
        function = part.get("functionCall")
        function = function if isinstance(function, dict) else {}
        signature = part.get("thoughtSignature")
        pending = self._pending
        if pending is not None and not function.get("name"):
            pending.apply(function)
            if signature:
                out.append(ToolCallDelta(pending.index, extra={SIGNATURE: signature}))
            if not function.get("willContinue"):
                self._flush_pending(out)
            return
        self._flush_pending(out)
        if not (function.get("name") or function.get("args") or function.get("partialArgs")):
            return  # an empty end-of-call marker with nothing open
        index = self._calls
        self._calls += 1
        extra: JSON = {SIGNATURE: signature} if signature else {}
        if function.get("id"):
            extra[CALL_ID] = function["id"]
        call_id = str(function.get("id") or f"call_{index}")
        name = str(function.get("name") or "")
        if function.get("willContinue"):
            out.append(ToolCallDelta(index, id=call_id, name=name, extra=extra or None))
            self._pending = _PendingCall(index)
            self._pending.apply(function)
            return
        args = function.get("args")
        arguments = dumps_str(args if isinstance(args, dict) else {})
        out.append(ToolCallDelta(index, id=call_id, name=name, arguments=arguments, extra=extra or None))

    def _flush_pending(self, out: list[StreamEvent]) -> None:
        if self._pending is not None:
            out.append(ToolCallDelta(self._pending.index, arguments=dumps_str(self._pending.args)))
            self._pending = None
