"""Cohere v2 chat stream events -> canonical events."""

from __future__ import annotations

from typing import Any

from ... import errors
from ..._assemble import StreamAssembler
from ..._sse import SSEEvent, event_object
from ...types import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, UsageEvent
from . import codec


class ChatStreamDecoder:
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
