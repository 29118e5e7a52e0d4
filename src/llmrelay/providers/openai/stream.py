"""OpenAI chat completions stream (``chat.completion.chunk`` events) -> canonical events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ... import errors
from ..._assemble import StreamAssembler
from ..._json import dumps_str
from ..._sse import SSEEvent, event_object
from ...types import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, UsageEvent
from .codec import content_and_reasoning, finish_reason, usage_from_wire
from .errors import in_stream_error


class ChatStreamDecoder:
    """``chat.completion.chunk`` events -> canonical events (choice 0 only)."""

    __slots__ = ("_asm", "_expect_usage", "_ids", "_provider", "_usage_seen", "done")

    def __init__(self, assembler: StreamAssembler, provider: str, expect_usage: bool = False) -> None:
        self._asm = assembler
        self._provider = provider
        self._expect_usage = expect_usage
        self._usage_seen = False
        self._ids: dict[str, int] = {}
        self.done = False

    def feed(self, event: SSEEvent) -> Iterable[StreamEvent]:
        if self.done:  # nothing after the end marker belongs to the answer
            return ()
        if event.data == "[DONE]":
            self.done = True
            return ()
        obj = event_object(event, self._provider)
        if obj is None:
            return ()
        if obj.get("error"):
            raise in_stream_error(obj["error"], self._provider)
        asm = self._asm
        out: list[StreamEvent] = []
        if not asm.id and obj.get("id"):
            asm.id = obj["id"]
            asm.model = obj.get("model") or asm.model
        for choice in obj.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    if type(content) is str:
                        out.append(TextDelta(content))
                    else:
                        text, thinking = content_and_reasoning(content)
                        if thinking:
                            out.append(ReasoningDelta(thinking))
                        if text:
                            out.append(TextDelta(text))
                if content is None or len(delta) > 1:  # more than text (most chunks are text alone)
                    self._rest_of(delta, out)
            native = choice.get("finish_reason")
            if native:
                asm.native_finish_reason = native
                asm.finish_reason = finish_reason(native, tool_calls=False)
        usage = obj.get("usage")
        if not usage and "x_groq" in obj:
            usage = (obj["x_groq"] or {}).get("usage")
        if usage:
            self._usage_seen = True
            out.append(UsageEvent(usage_from_wire(usage)))
        return out

    def _rest_of(self, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        """A delta's reasoning, refusal and tool calls."""
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            out.append(ReasoningDelta(reasoning))
        refusal = delta.get("refusal")
        if refusal:
            asm = self._asm
            asm.refusal = (asm.refusal or "") + refusal
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            out.extend(self._tool_deltas(tool_calls))

    def _tool_deltas(self, raw_calls: list[dict[str, Any]]) -> Iterable[ToolCallDelta]:
        for raw in raw_calls:
            fn = raw.get("function") or {}
            call_id = raw.get("id")
            index = raw.get("index")
            if index is None:  # some compatible servers omit it: whole calls, one id each
                index = self._ids.setdefault(call_id or "", len(self._ids))
            args = fn.get("arguments")
            if isinstance(args, dict):
                args = dumps_str(args)
            elif args is not None and not isinstance(args, str):
                raise TypeError(f"tool call arguments are {type(args).__name__}, not JSON text")
            yield ToolCallDelta(index=index, id=call_id, name=fn.get("name"), arguments=args or "")

    def close(self) -> None:
        """Without ``[DONE]`` the stream counts as complete only if the finish reason
        and (when it was asked for) the usage chunk arrived."""
        if self.done:
            return
        if self._asm.finish_reason is None or (self._expect_usage and not self._usage_seen):
            raise errors.StreamInterrupted(
                "stream ended before its end marker ([DONE])", provider=self._provider, retryable=True
            )
