"""Canonical answers -> Gemini API answers, as the ``google-genai`` SDK parses them:
``GenerateContentResponse`` (whole, or as ``streamGenerateContent?alt=sse``
chunks), ``countTokens``, ``embedContent`` / ``batchEmbedContents`` and
``GET models`` bodies, and Google's error body. (The request side is :mod:`.inbound`.)

What :mod:`.codec` decodes from these is what was encoded: the text, reasoning
(``thought`` parts), function calls, finish reason and usage.

- Stream framing is Google's: ``data: <chunk>\\r\\n\\r\\n``, no end marker; text and
  thoughts go out as they come, function calls whole (their argument pieces are
  buffered) in the last chunk, with ``finishReason`` and ``usageMetadata``.
- A stream that fails is ended by a ``{"error": {...}}`` chunk, which the SDK
  raises as ``ClientError`` / ``ServerError``, as it does for an HTTP error.
- A call id the gateway made up (``call_<n>``, for a Gemini call that came
  without one) is not sent: Gemini (Vertex AI) refuses ids it did not issue.
- A thought signature that is not base64 is left out: the SDK holds signatures
  as bytes and refuses the answer otherwise.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Iterable
from typing import Any

from ... import errors
from ..._assemble import StreamAssembler
from ..._ids import new_id
from ..._json import dumps, parse_arguments
from ...types import (
    ChatResponse,
    EmbeddingResponse,
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .codec import _FINISH, CALL_ID, JSON, SIGNATURE, finish_reason

_FINISH_REASONS: dict[FinishReason, str] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",  # Gemini ends a turn of function calls with STOP
    "content_filter": "SAFETY",
    "error": "OTHER",
}
_RPC_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED",
    429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "INTERNAL",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED", 529: "UNAVAILABLE",
}  # fmt: skip
CHAT_METHODS = ("generateContent", "streamGenerateContent", "countTokens")
EMBED_METHODS = ("embedContent", "batchEmbedContents")


def rpc_status(status: int) -> str:
    """The ``google.rpc.Code`` name Google gives an HTTP status."""
    return _RPC_STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")


def error_body(status: int, message: str) -> JSON:
    """Google's error body (a ``google.rpc.Status`` under ``error``)."""
    return {"error": {"code": status, "message": message, "status": rpc_status(status)}}


def finish_reason_to_wire(reason: FinishReason, native: str | None = None, *, tool_calls: bool = False) -> str:
    """Gemini's finish reason: the native one when it is Gemini's and means the same, else the canonical one's."""
    if native in _FINISH and finish_reason(native, tool_calls=tool_calls) == reason:
        return native
    return _FINISH_REASONS.get(reason, "STOP")


def usage_to_wire(usage: Usage) -> JSON:
    """``usageMetadata``; Gemini counts thoughts apart from ``candidatesTokenCount``
    (cache writes have no Gemini field: they stay in the prompt count)."""
    out: JSON = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": max(usage.completion_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    return out


def _base64(signature: str | None) -> str | None:
    if not signature:
        return None
    try:
        base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None
    return signature


def function_call_part(call: ToolCall, index: int) -> JSON:
    function: JSON = {"name": call.name, "args": call.arguments or parse_arguments(call.raw_arguments) or {}}
    wire_id = call.extra.get(CALL_ID) or (call.id if call.id != f"call_{index}" else None)
    if wire_id:
        function["id"] = wire_id
    part: JSON = {"functionCall": function}
    signature = _base64(call.extra.get(SIGNATURE))
    if signature:
        part["thoughtSignature"] = signature
    return part


def _signed(parts: list[JSON], signature: str | None) -> list[JSON]:
    """``parts`` with the reasoning signature on the last one (a text part of its own if none)."""
    signature = _base64(signature)
    if signature:
        if not parts:
            parts.append({"text": ""})
        parts[-1]["thoughtSignature"] = signature
    return parts


def _candidate(parts: list[JSON], finish: str | None, message: Any = None) -> JSON:
    candidate: JSON = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    if message:
        candidate["finishMessage"] = message
    return candidate


def response_to_wire(response: ChatResponse) -> JSON:
    """A ``GenerateContentResponse``: thought part, text part, function call parts."""
    parts: list[JSON] = []
    if response.reasoning:
        parts.append({"text": response.reasoning, "thought": True})
    text = response.content or response.refusal  # Gemini has no refusal of its own
    if text:
        parts.append({"text": text})
    _signed(parts, response.reasoning_signature)
    parts.extend(function_call_part(call, i) for i, call in enumerate(response.tool_calls))
    finish = finish_reason_to_wire(
        response.finish_reason, response.native_finish_reason, tool_calls=bool(response.tool_calls)
    )
    return {
        "candidates": [_candidate(parts, finish, response.extra.get("finish_message"))],
        "usageMetadata": usage_to_wire(response.usage),
        "modelVersion": response.model,
        "responseId": response.id or new_id(),
    }


def _frame(payload: JSON) -> bytes:
    return b"data: " + dumps(payload) + b"\r\n\r\n"


class StreamEncoder:
    """Canonical stream events -> ``streamGenerateContent?alt=sse`` chunks."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.response_id = new_id()
        self._held = StreamAssembler("", model)  # call pieces and signature pieces, held to the end

    def start(self) -> bytes:
        return b""

    def feed(self, event: StreamEvent) -> bytes:
        if type(event) is TextDelta:
            return self._chunk([{"text": event.text}]) if event.text else b""
        if type(event) is ReasoningDelta:
            if event.signature:
                self._held.add(ReasoningDelta(signature=event.signature))
            return self._chunk([{"text": event.text, "thought": True}]) if event.text else b""
        if type(event) is ToolCallDelta:
            self._held.add(event)
            return b""
        if type(event) is Finish:
            calls = self._held.tool_calls()
            parts = _signed([], self._held.reasoning_signature)
            parts.extend(function_call_part(call, i) for i, call in enumerate(calls))
            response = event.response
            finish = finish_reason_to_wire(event.reason, response.native_finish_reason, tool_calls=bool(calls))
            candidate = _candidate(parts, finish, response.extra.get("finish_message"))
            if not parts:
                del candidate["content"]
            return _frame({**self._chunk_head([candidate]), "usageMetadata": usage_to_wire(response.usage)})
        return b""  # usage comes with the finish

    def error(self, exc: errors.LLMError) -> bytes:
        return _frame(error_body(exc.status_code or 500, str(exc)))

    def end(self) -> bytes:
        return b""

    def _chunk(self, parts: list[JSON]) -> bytes:
        return _frame(self._chunk_head([_candidate(parts, None)]))

    def _chunk_head(self, candidates: list[JSON]) -> JSON:
        return {"candidates": candidates, "modelVersion": self.model, "responseId": self.response_id}


def count_tokens_to_wire(total: int) -> JSON:
    return {"totalTokens": total}


def embed_response_to_wire(response: EmbeddingResponse) -> JSON:
    """The ``embedContent`` answer (one vector)."""
    return {
        "embedding": {"values": response.vectors[0] if response.vectors else []},
        "usageMetadata": {"promptTokenCount": response.usage.prompt_tokens},
    }


def batch_embed_response_to_wire(response: EmbeddingResponse) -> JSON:
    """The ``batchEmbedContents`` answer, in the order of the requests."""
    return {
        "embeddings": [{"values": vector} for vector in response.vectors],
        "usageMetadata": {"promptTokenCount": response.usage.prompt_tokens},
    }


def model_to_wire(name: str, *, embedding: bool = False) -> JSON:
    """A ``Model`` of ``GET models``; a gateway model answers chat methods, or embedding ones."""
    model_id = name.removeprefix("models/")
    return {
        "name": f"models/{model_id}",
        "baseModelId": model_id,
        "displayName": model_id,
        "supportedGenerationMethods": list(EMBED_METHODS if embedding else CHAT_METHODS),
    }


def models_to_wire(names: Iterable[str], *, embedding: Collection[str] = ()) -> JSON:
    """The ``GET models`` answer (one page); ``embedding`` names the embedding models."""
    return {"models": [model_to_wire(name, embedding=name in embedding) for name in names]}


__all__ = [
    "CHAT_METHODS", "EMBED_METHODS", "StreamEncoder", "batch_embed_response_to_wire", "count_tokens_to_wire",
    "embed_response_to_wire", "error_body", "finish_reason_to_wire", "function_call_part", "model_to_wire",
    "models_to_wire", "response_to_wire", "rpc_status", "usage_to_wire",
]  # fmt: skip
