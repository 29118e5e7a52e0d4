"""Cache keys: a request, normalised, hashed, scoped by tenant.

Two requests share a key when they would ask the upstream the same thing: the
same model group, messages, tools, tool choice, response format and generation
parameters (temperature, top_p, max_tokens, stop, seed, provider extras), and
the same kind of answer (JSON or stream). ``user`` (an end-user id for abuse
monitoring) does not change the answer and is left out. The tenant is part of
the key, so tenants never share entries.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from .._json import dumps_canonical
from ..types import ChatRequest, ImagePart, Message, TextPart, ToolCall

Kind = Literal["chat", "stream"]
_VERSION = b"2"  # bump when the normal form changes: old entries then simply miss


def request_key(kind: Kind, group: str, request: ChatRequest, tenant: str | None) -> str:
    """The key of ``request`` sent to ``group`` (a hex SHA-256, prefixed by its tenant)."""
    normal = {
        "kind": kind,
        "group": group,
        "messages": [_message(m) for m in request.messages],
        **_parameters(request),
    }
    return f"{tenant or '-'}:{_digest(normal)}"


def semantic_parts(kind: Kind, group: str, request: ChatRequest, tenant: str | None) -> tuple[str, str] | None:
    """``(namespace, question)`` for the semantic cache, or ``None`` when the request
    has no text question to compare. Everything but the last user message's text
    must match exactly (the namespace); only that text is compared by meaning."""
    messages = request.messages
    if not messages or messages[-1].role != "user" or not isinstance(messages[-1].content, str):
        return None
    question = messages[-1].content.strip()
    if not question:
        return None
    normal = {"kind": kind, "group": group, "before": [_message(m) for m in messages[:-1]], **_parameters(request)}
    return f"{tenant or '-'}:{_digest(normal)}", question


def _parameters(request: ChatRequest) -> dict[str, Any]:
    fmt = request.response_format
    return {
        "tools": [[t.name, t.description, t.parameters, t.strict] for t in request.tools],
        "tool_choice": request.tool_choice,
        "format": None if fmt is None else [fmt.type, fmt.schema, fmt.name, fmt.strict],
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "stop": request.stop,
        "seed": request.seed,
        "extra": request.extra,
    }


def _message(message: Message) -> list[Any]:
    content: Any = message.content
    if isinstance(content, list):
        content = [_part(p) for p in content]
    return [
        message.role, content, message.name, [_call(c) for c in message.tool_calls], message.tool_call_id,
        message.reasoning, message.reasoning_signature, message.extra or None,
    ]  # fmt: skip


def _part(part: TextPart | ImagePart) -> list[Any]:
    if isinstance(part, TextPart):
        return ["text", part.text]
    return ["image", part.url, part.data, part.media_type, part.detail]


def _call(call: ToolCall) -> list[Any]:
    return [call.id, call.name, call.arguments, call.raw_arguments, call.extra or None]  # extra: sent back (Gemini)


def _digest(normal: dict[str, Any]) -> str:
    data = dumps_canonical(normal, repr)
    return hashlib.sha256(_VERSION + data).hexdigest()


__all__ = ["Kind", "request_key", "semantic_parts"]
