"""The inverse of the Anthropic codec: Messages API requests -> canonical
requests, canonical answers -> Messages API answers and their exact stream
event sequence. The gateway's ``/v1/messages`` speaks through it, whatever
provider serves the call.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ... import errors
from ..._ids import new_id
from ..._json import dumps
from ..._sse import encode_sse
from ...tools import to_tools
from ...types import (
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .codec import messages_from_wire

_STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}
_KNOWN = frozenset(
    {
        "model", "messages", "system", "max_tokens", "temperature", "top_p", "stop_sequences", "stream", "tools",
        "tool_choice", "metadata",
    }
)  # fmt: skip


def _field(body: dict[str, Any], name: str, kind: type, what: str, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.InvalidRequest(f"{name}: Field required")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise errors.InvalidRequest(f"{name}: must be {what}")
    return value


def request_from_wire(body: dict[str, Any]) -> ChatRequest:
    """A canonical request from a Messages API body; the message names the field at fault."""
    model = _field(body, "model", str, "a string", required=True)
    max_tokens = _field(body, "max_tokens", int, "an integer", required=True)
    if max_tokens < 1:
        raise errors.InvalidRequest("max_tokens: must be at least 1")
    messages = _field(body, "messages", list, "a list", required=True)
    for i, turn in enumerate(messages):
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise errors.InvalidRequest(f"messages.{i}: must be an object with role 'user' or 'assistant'")
        content = turn.get("content")
        if not isinstance(content, str) and not (
            isinstance(content, list) and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content)
        ):
            raise errors.InvalidRequest(f"messages.{i}.content: must be a string or a list of content blocks")
    for i, turn in enumerate(messages):
        if isinstance(turn["content"], list):
            for j, block in enumerate(turn["content"]):
                _check_block(block, f"messages.{i}.content.{j}")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise errors.InvalidRequest("system: must be a string or a list of text blocks")
    if isinstance(system, list) and not all(isinstance(b, dict) for b in system):
        raise errors.InvalidRequest("system: must be a string or a list of text blocks")
    stop = _field(body, "stop_sequences", list, "a list of strings")
    if stop is not None and not all(isinstance(s, str) for s in stop):
        raise errors.InvalidRequest("stop_sequences: must be a list of strings")
    tools = _field(body, "tools", list, "a list of tools")
    metadata = _field(body, "metadata", dict, "an object") or {}
    try:
        converted = messages_from_wire(messages, system)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise errors.InvalidRequest(f"messages: not valid Messages API content ({type(exc).__name__}: {exc})") from None
    return ChatRequest(
        model=model,
        messages=converted,
        tools=to_tools(tools),
        tool_choice=_tool_choice(body.get("tool_choice")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=max_tokens,
        stop=stop,
        user=metadata.get("user_id") if isinstance(metadata.get("user_id"), str) else None,
        extra={k: v for k, v in body.items() if k not in _KNOWN},
    )


_BLOCK_FIELDS: dict[str, tuple[tuple[str, type, bool], ...]] = {
    # block type: (field, type, required)
    "text": (("text", str, True),),
    "thinking": (("thinking", str, True), ("signature", str, False)),
    "redacted_thinking": (("data", str, True),),
    "image": (("source", dict, True),),
    "document": (("source", dict, True),),
    "tool_use": (("id", str, True), ("name", str, True), ("input", dict, False)),
    "tool_result": (("tool_use_id", str, True), ("is_error", bool, False)),
}
_SOURCE_FIELDS: dict[str, tuple[tuple[str, type, bool], ...]] = {
    "base64": (("data", str, True), ("media_type", str, True)),
    "url": (("url", str, True),),
    "text": (("data", str, True),),
}


def _check_block(block: dict[str, Any], where: str) -> None:
    """The fields of a known content block have their types (``InvalidRequest`` naming the first that does not)."""
    _check_fields(block, _BLOCK_FIELDS.get(block["type"], ()), where)
    source = block.get("source")
    if isinstance(source, dict):
        _check_fields(source, _SOURCE_FIELDS.get(str(source.get("type")), ()), f"{where}.source")
    result = block.get("content") if block["type"] == "tool_result" else None
    if isinstance(result, list):
        for k, inner in enumerate(result):
            if not isinstance(inner, dict) or not isinstance(inner.get("type"), str):
                raise errors.InvalidRequest(f"{where}.content.{k}: must be a content block")
            _check_block(inner, f"{where}.content.{k}")
    elif result is not None and not isinstance(result, str):
        raise errors.InvalidRequest(f"{where}.content: must be a string or a list of content blocks")


def _check_fields(obj: dict[str, Any], fields: tuple[tuple[str, type, bool], ...], where: str) -> None:
    for name, kind, required in fields:
        value = obj.get(name)
        if value is None:
            if required:
                raise errors.InvalidRequest(f"{where}.{name}: Field required")
        elif not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise errors.InvalidRequest(f"{where}.{name}: must be {'an object' if kind is dict else kind.__name__}")


def _tool_choice(choice: Any) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise errors.InvalidRequest("tool_choice: must be {'type': 'auto' | 'any' | 'tool' | 'none'}")
    kind = choice["type"]
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise errors.InvalidRequest("tool_choice.name: required when type is 'tool'")
        return {"name": choice["name"]}
    return {"auto": "auto", "any": "required", "none": "none"}[kind]


def stop_reason(reason: FinishReason) -> str:
    return _STOP_REASONS.get(reason, "end_turn")


def usage_to_wire(usage: Usage) -> dict[str, int]:
    """Anthropic counts cache reads and writes apart from ``input_tokens``."""
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def message_id(response: ChatResponse | None = None) -> str:
    """A new message id; for a cached answer, one that stays the same on every hit."""
    info = response.cache if response is not None else None
    if info is not None:
        return "msg_" + hashlib.sha256(f"{info.key}@{info.stored_at!r}".encode()).hexdigest()[:24]
    return f"msg_{new_id()}"


def response_to_wire(response: ChatResponse) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if response.reasoning:
        content.append(
            {"type": "thinking", "thinking": response.reasoning, "signature": response.reasoning_signature or ""}
        )
    if response.content:
        content.append({"type": "text", "text": response.content})
    for call in response.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
    return {
        "id": message_id(response),
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": stop_reason(response.finish_reason),
        "stop_sequence": None,
        "usage": usage_to_wire(response.usage),
    }


def _sse(name: str, payload: dict[str, Any]) -> bytes:
    return encode_sse(dumps(payload), name)


class StreamEncoder:
    """Canonical stream events -> the Messages API event sequence: ``message_start``,
    then per content block ``content_block_start`` / ``_delta`` / ``_stop``, then
    ``message_delta`` (stop reason, usage) and ``message_stop``."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._index = -1
        self._open: tuple[str, int] | None = None  # (block kind, tool call index)

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": message_id(), "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0},
        }  # fmt: skip
        return _sse("message_start", {"type": "message_start", "message": message})

    def feed(self, event: StreamEvent) -> bytes:
        if type(event) is TextDelta:
            return self._block(("text", 0), {"type": "text", "text": ""}) + self._delta(
                {"type": "text_delta", "text": event.text}
            )
        if type(event) is ReasoningDelta:
            out = self._block(("thinking", 0), {"type": "thinking", "thinking": ""})
            if event.text:
                out += self._delta({"type": "thinking_delta", "thinking": event.text})
            if event.signature:
                out += self._delta({"type": "signature_delta", "signature": event.signature})
            return out
        if type(event) is ToolCallDelta:
            block = {"type": "tool_use", "id": event.id or "", "name": event.name or "", "input": {}}
            out = self._block(("tool", event.index), block)
            if event.arguments:
                out += self._delta({"type": "input_json_delta", "partial_json": event.arguments})
            return out
        if type(event) is Finish:
            delta = {"stop_reason": stop_reason(event.reason), "stop_sequence": None}
            usage = usage_to_wire(event.response.usage)
            return (
                self._close()
                + _sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
                + _sse("message_stop", {"type": "message_stop"})
            )
        return b""  # usage arrives with the finish

    def error(self, exc: errors.LLMError) -> bytes:
        return _sse(
            "error", {"type": "error", "error": {"type": error_type(exc.status_code or 500), "message": str(exc)}}
        )

    def end(self) -> bytes:
        return b""

    def _block(self, key: tuple[str, int], start: dict[str, Any]) -> bytes:
        if self._open == key:
            return b""
        out = self._close()
        self._index += 1
        self._open = key
        return out + _sse(
            "content_block_start", {"type": "content_block_start", "index": self._index, "content_block": start}
        )

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _sse("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _sse("content_block_stop", {"type": "content_block_stop", "index": self._index})


_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    405: "invalid_request_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error",
}  # fmt: skip


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str) -> dict[str, Any]:
    """The Messages API error body."""
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


__all__ = [
    "StreamEncoder", "error_body", "error_type", "message_id", "request_from_wire", "response_to_wire", "stop_reason",
    "usage_to_wire",
]  # fmt: skip
