"""Gemini ``streamGenerateContent?alt=sse`` chunks -> canonical events."""

from __future__ import annotations

from collections.abc import Callable

from ... import errors
from ..._assemble import StreamAssembler
from ..._json import dumps_str
from ..._sse import SSEEvent, event_object
from ...types import ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, Usage, UsageEvent
from .codec import (
    CALL_ID,
    JSON,
    SIGNATURE,
    candidate_extra,
    candidate_parts,
    check_prompt_blocked,
    finish_reason,
    first_candidate,
    usage_from_wire,
)
from .partial import apply_partial_arg


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


class ChatStreamDecoder:
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
            self._asm.finish_reason = finish_reason(str(native), tool_calls=self._calls > 0)
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
