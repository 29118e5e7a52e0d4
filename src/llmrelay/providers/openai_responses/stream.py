"""Responses API stream events (typed ``event:`` lines) -> canonical events."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ... import errors
from ..._assemble import StreamAssembler
from ..._sse import SSEEvent, event_object
from ...types import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, UsageEvent
from .codec import REASONING_SEPARATOR, finish_reason, message_texts, tool_call_from_item, usage_from_wire
from .errors import error_event_payload, failure_error


def _output_index(obj: dict[str, Any]) -> int:
    index = obj.get("output_index")
    return index if isinstance(index, int) else -1


Handler = Callable[["ChatStreamDecoder", dict[str, Any]], Iterable[StreamEvent]]


class ChatStreamDecoder:
    """Responses stream events -> canonical events.

    Function calls are numbered in order of appearance (``ToolCallDelta.index``)
    whatever their ``output_index``. Items completed without deltas (as some
    compatible servers send them) are taken from ``response.output_item.done``.
    """

    __slots__ = ("_asm", "_calls", "_provider", "_reasoning_at", "_streamed", "done")

    def __init__(self, assembler: StreamAssembler, provider: str) -> None:
        self._asm = assembler
        self._provider = provider
        self._calls: dict[int, int] = {}  # output_index -> tool call ordinal
        self._streamed: set[int] = set()  # output indexes that had deltas
        self._reasoning_at: tuple[Any, ...] | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> Iterable[StreamEvent]:
        if event.data == "[DONE]":
            return ()
        obj = event_object(event, self._provider)
        if obj is None:
            return ()
        handler = _HANDLERS.get(str(obj.get("type") or event.event))
        return handler(self, obj) if handler is not None else ()

    def close(self) -> None:
        if not self.done:
            raise errors.StreamInterrupted(
                "stream ended before response.completed", provider=self._provider, retryable=True
            )

    # ---- helpers

    def _ordinal(self, index: int) -> int:
        found = self._calls.get(index)
        if found is None:
            found = self._calls[index] = len(self._calls)
        return found

    def _take_response(self, response: Any) -> dict[str, Any]:
        if not isinstance(response, dict):
            return {}
        if response.get("id"):
            self._asm.id = response["id"]
        if response.get("model"):
            self._asm.model = response["model"]
        return response

    # ---- handlers

    def on_started(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        self._take_response(obj.get("response"))
        return ()

    def on_item_added(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        item = obj.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return ()
        index = _output_index(obj)
        arguments = item.get("arguments") or ""
        if arguments:
            self._streamed.add(index)
        extra = {"item_id": item["id"]} if item.get("id") else None
        ordinal = self._ordinal(index)
        return (ToolCallDelta(ordinal, item.get("call_id"), item.get("name"), arguments, extra),)

    def on_item_done(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        item = obj.get("item")
        if not isinstance(item, dict):
            return ()
        index = _output_index(obj)
        kind = item.get("type")
        if kind == "reasoning" and item.get("encrypted_content"):
            self._asm.extra.setdefault("reasoning_encrypted_content", []).append(item["encrypted_content"])
        if index in self._streamed:
            return ()
        if kind == "function_call":
            call = tool_call_from_item(item, 0)
            return (ToolCallDelta(self._ordinal(index), call.id, call.name, call.raw_arguments),)
        if kind == "message":
            text, refusal = message_texts(item)
            if refusal:
                self._asm.refusal = (self._asm.refusal or "") + refusal
            return (TextDelta(text),) if text else ()
        return ()

    def on_text(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        self._streamed.add(_output_index(obj))
        delta = obj.get("delta") or ""
        return (TextDelta(delta),) if delta else ()

    def on_refusal(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        self._streamed.add(_output_index(obj))
        self._asm.refusal = (self._asm.refusal or "") + (obj.get("delta") or "")
        return ()

    def on_arguments(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        index = _output_index(obj)
        self._streamed.add(index)
        return (ToolCallDelta(self._ordinal(index), arguments=obj.get("delta") or ""),)

    def on_reasoning(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        delta = obj.get("delta") or ""
        if not delta:
            return ()
        where = (_output_index(obj), obj.get("summary_index", obj.get("content_index")))
        if self._reasoning_at is not None and where != self._reasoning_at:
            delta = REASONING_SEPARATOR + delta
        self._reasoning_at = where
        return (ReasoningDelta(delta),)

    def on_finished(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        response = self._take_response(obj.get("response"))
        if not response:  # an end marker without its response: still the end
            response = {"status": "incomplete" if obj.get("type") == "response.incomplete" else "completed"}
        self.done = True
        finish, native = finish_reason(response, tool_calls=bool(self._calls))
        self._asm.finish_reason = finish
        self._asm.native_finish_reason = native
        usage = response.get("usage")
        return (UsageEvent(usage_from_wire(usage)),) if usage else ()

    def on_failed(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        response = self._take_response(obj.get("response"))
        raise failure_error(response.get("error"), self._provider)

    def on_error(self, obj: dict[str, Any]) -> Iterable[StreamEvent]:
        raise failure_error(error_event_payload(obj), self._provider)


_HANDLERS: dict[str, Handler] = {
    "response.created": ChatStreamDecoder.on_started,
    "response.in_progress": ChatStreamDecoder.on_started,
    "response.queued": ChatStreamDecoder.on_started,
    "response.output_item.added": ChatStreamDecoder.on_item_added,
    "response.output_item.done": ChatStreamDecoder.on_item_done,
    "response.output_text.delta": ChatStreamDecoder.on_text,
    "response.refusal.delta": ChatStreamDecoder.on_refusal,
    "response.function_call_arguments.delta": ChatStreamDecoder.on_arguments,
    "response.reasoning_summary_text.delta": ChatStreamDecoder.on_reasoning,
    "response.reasoning_text.delta": ChatStreamDecoder.on_reasoning,
    "response.completed": ChatStreamDecoder.on_finished,
    "response.incomplete": ChatStreamDecoder.on_finished,
    "response.failed": ChatStreamDecoder.on_failed,
    "error": ChatStreamDecoder.on_error,
}
