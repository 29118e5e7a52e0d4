"""Messages API stream events -> canonical events."""

from __future__ import annotations

from typing import Any

from ... import errors
from ..._assemble import StreamAssembler
from ..._sse import SSEEvent, event_object
from ...types import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, UsageEvent
from . import codec
from .errors import error_from_payload

_STRUCTURED = -1  # the ordinal of the forced tool that carries a structured answer


class ChatStreamDecoder:
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
