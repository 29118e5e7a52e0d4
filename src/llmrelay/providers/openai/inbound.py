"""The inverse of the OpenAI codec: OpenAI wire requests -> canonical requests,
canonical answers -> OpenAI wire answers and stream chunks.

The gateway uses it to accept requests from the official ``openai`` SDK and to
answer in its format, whatever provider served the call; tests use it for
round trips (canonical -> wire -> canonical).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from ... import errors
from ..._ids import new_id
from ..._messages import to_messages
from ...structured import to_response_format
from ...tools import to_tools
from ...types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .codec import tool_call_to_wire

_KNOWN = frozenset(
    {
        "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
        "user", "tools", "tool_choice", "response_format", "stream", "stream_options",
    }
)  # fmt: skip


ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    """The OpenAI error body; ``kind`` overrides the type the status implies (e.g. ``insufficient_quota``)."""
    kind = kind or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def _model_of(body: Any) -> str:
    """The ``model`` of a request body (which must be a JSON object), or ``InvalidRequest``."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise errors.InvalidRequest("'model' is required and must be a string")
    return model


def request_from_wire(body: Any) -> ChatRequest:
    """A canonical request from an OpenAI chat completions body; unknown fields go to ``extra``."""
    model = _model_of(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise errors.InvalidRequest("'messages' is required and must be a list")
    stop = body.get("stop")
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if not isinstance(name, str) or not name:
            raise errors.InvalidRequest(
                "'tool_choice' names no function: use {'type': 'function', 'function': {'name': ...}}"
            )
        choice = {"name": name}
    elif choice is not None and choice not in ("auto", "none", "required"):
        raise errors.InvalidRequest(f"'tool_choice' must be 'auto', 'none', 'required' or a function, not {choice!r}")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return ChatRequest(
        model=model,
        messages=to_messages(messages),
        tools=to_tools(body.get("tools")),
        tool_choice=choice,
        response_format=to_response_format(body.get("response_format")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=max_tokens,
        stop=[stop] if isinstance(stop, str) else stop,
        seed=body.get("seed"),
        user=body.get("user"),
        extra={k: v for k, v in body.items() if k not in _KNOWN},
    )


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def response_to_wire(response: ChatResponse, created: int, model: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": response.content if response.content or not response.tool_calls else None,
        "refusal": response.refusal,
    }
    if response.tool_calls:
        message["tool_calls"] = [tool_call_to_wire(c) for c in response.tool_calls]
    if response.reasoning:
        message["reasoning_content"] = response.reasoning
    finish = "stop" if response.finish_reason == "error" else response.finish_reason
    return {
        "id": response.id or f"chatcmpl-{new_id()}",  # the local model gives none
        "object": "chat.completion",
        "created": created,
        "model": model or response.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage_to_wire(response.usage),
    }


def chunk_to_wire(event: StreamEvent, chunk_id: str, created: int, model: str) -> dict[str, Any] | None:
    """The ``chat.completion.chunk`` for one content event (``None`` for events
    that have no chunk of their own: usage and finish are sent by the caller)."""
    delta: dict[str, Any]
    if type(event) is TextDelta:
        delta = {"content": event.text}
    elif type(event) is ToolCallDelta:
        call: dict[str, Any] = {"index": event.index, "function": {"arguments": event.arguments}}
        if event.id:
            call["id"] = event.id
            call["type"] = "function"
        if event.name:
            call["function"]["name"] = event.name
        delta = {"tool_calls": [call]}
    elif event.type == "reasoning" and event.text:
        delta = {"reasoning_content": event.text}
    else:
        return None
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


def embedding_request_from_wire(body: Any) -> tuple[EmbeddingRequest, str]:
    """``(request, encoding_format)`` from an OpenAI embeddings body, checked as the
    gateway checks it; the request's model is the body's (the router sets each
    deployment's own). Raises ``InvalidRequest`` naming the faulty field."""
    model = _model_of(body)
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise errors.InvalidRequest("'input' must be a string or a non-empty list of strings")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise errors.InvalidRequest("'encoding_format' must be 'float' or 'base64'")
    dimensions = body.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise errors.InvalidRequest("'dimensions' must be a positive integer")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise errors.InvalidRequest("'user' must be a string")
    return EmbeddingRequest(model, texts, dimensions, user, {}), encoding


def embedding_response_to_wire(response: EmbeddingResponse, encoding: str = "float") -> dict[str, Any]:
    """The OpenAI embeddings answer (``object: list``); ``base64`` packs each vector
    as little-endian float32, as OpenAI does."""
    data = [
        {"object": "embedding", "index": i, "embedding": _b64(vector) if encoding == "base64" else vector}
        for i, vector in enumerate(response.vectors)
    ]
    usage = response.usage
    return {
        "object": "list",
        "data": data,
        "model": response.model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
    }


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
