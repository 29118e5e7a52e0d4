"""ConverseStream event-stream frames -> canonical events."""

from __future__ import annotations

from typing import Any

from ... import errors
from ..._assemble import StreamAssembler
from ..._eventstream import Frame
from ..._json import JSONDecodeError, loads
from ...types import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, UsageEvent
from ..wire_errors import build_error
from . import codec
from .errors import error_class, error_message


class ChatStreamDecoder:
    """ConverseStream frames -> canonical events (see ``StreamDecoder``)."""

    def __init__(self, assembler: StreamAssembler, provider: str, structured_tool: str | None = None) -> None:
        self._asm = assembler
        self._provider = provider
        self._structured_tool = structured_tool
        self._tools: dict[int, int | None] = {}  # content block index -> tool ordinal (None: structured answer)
        self._stopped = False

    def feed(self, frame: Frame) -> list[StreamEvent]:
        kind = frame.header(":message-type")
        if kind == "exception":
            raise self._exception(frame)
        if kind == "error":
            message = frame.header(":error-message") or frame.header(":error-code") or "unknown error"
            raise errors.ProviderError(f"bedrock stream error: {message}", provider=self._provider)
        if kind != "event":
            return []
        data = self._json(frame)
        event = frame.header(":event-type")
        if event == "contentBlockDelta":
            return self._delta(data)
        if event == "contentBlockStart":
            return self._block_start(data)
        if event == "messageStop":
            self._message_stop(data)
        elif event == "metadata":
            return self._metadata(data)
        return []  # messageStart, contentBlockStop and event types added later

    def close(self) -> None:
        if not self._stopped:
            raise errors.ProviderError("bedrock stream ended before messageStop", provider=self._provider)

    def _json(self, frame: Frame) -> dict[str, Any]:
        try:
            data = loads(frame.payload) if frame.payload else {}
        except JSONDecodeError:
            raise errors.ProviderError(
                f"bedrock stream sent a non-JSON {frame.header(':event-type') or 'event'}", provider=self._provider
            ) from None
        return data if isinstance(data, dict) else {}

    def _exception(self, frame: Frame) -> errors.LLMError:
        kind = frame.header(":exception-type") or "unknownException"
        try:
            body: Any = loads(frame.payload)
        except JSONDecodeError:
            body = frame.payload[:2000].decode("utf-8", "replace")
        message = error_message(body, None)
        cls = error_class(kind, message, None)
        status = cls.default_status or 502
        return build_error(cls, f"{kind}: {message}", provider=self._provider, status=status, headers={}, body=body)

    def _block_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        tool = (data.get("start") or {}).get("toolUse")
        if not isinstance(tool, dict):
            return []
        index = int(data.get("contentBlockIndex") or 0)
        if tool.get("name") == self._structured_tool:
            self._tools[index] = None
            return []
        ordinal = self._tools[index] = self._tool_count()
        return [ToolCallDelta(ordinal, id=tool.get("toolUseId"), name=tool.get("name"))]

    def _delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta") or {}
        text = delta.get("text")
        if isinstance(text, str):
            return [TextDelta(text)] if text else []
        tool = delta.get("toolUse")
        if isinstance(tool, dict):
            return self._tool_input(int(data.get("contentBlockIndex") or 0), tool.get("input") or "")
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            return self._reasoning(reasoning)
        return []  # citations and future delta types

    def _tool_input(self, index: int, fragment: str) -> list[StreamEvent]:
        if index not in self._tools:  # a delta without its start: still a call
            self._tools[index] = self._tool_count()
        ordinal = self._tools[index]
        if not fragment:
            return []
        if ordinal is None:
            return [TextDelta(fragment)]  # the structured answer is the text
        return [ToolCallDelta(ordinal, arguments=fragment)]

    def _reasoning(self, reasoning: dict[str, Any]) -> list[StreamEvent]:
        if reasoning.get("text"):
            return [ReasoningDelta(reasoning["text"])]
        if reasoning.get("signature"):
            return [ReasoningDelta(signature=reasoning["signature"])]
        if reasoning.get("redactedContent"):
            self._asm.extra.setdefault("redacted_thinking", []).append(reasoning["redactedContent"])
        return []

    def _message_stop(self, data: dict[str, Any]) -> None:
        self._stopped = True
        stop_reason = data.get("stopReason")
        self._asm.native_finish_reason = stop_reason
        self._asm.finish_reason = codec.finish_reason(stop_reason, tool_calls=self._tool_count() > 0)
        if isinstance(data.get("additionalModelResponseFields"), dict):
            self._asm.extra["additional_model_response_fields"] = data["additionalModelResponseFields"]

    def _metadata(self, data: dict[str, Any]) -> list[StreamEvent]:
        if isinstance(data.get("metrics"), dict):
            self._asm.extra["metrics"] = data["metrics"]
        usage = data.get("usage")
        return [UsageEvent(codec.usage_from_wire(usage))] if isinstance(usage, dict) else []

    def _tool_count(self) -> int:
        return sum(1 for ordinal in self._tools.values() if ordinal is not None)
