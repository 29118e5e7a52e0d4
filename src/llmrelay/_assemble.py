"""Assembling a stream of canonical events into the final ``ChatResponse``.

Tool-call fragments are grouped by ``index`` (ids and names arrive once, the
argument text in pieces, parallel calls interleave), texts are joined once at
the end, and usage is replaced, never added (providers send running totals).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._json import parse_arguments
from .types import (
    ChatResponse,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
)


class _PendingCall:
    __slots__ = ("args", "extra", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.args: list[str] = []
        self.extra: dict[str, Any] = {}


class StreamAssembler:
    """Collects events; decoders also set ``id``, ``model``, ``finish_reason``,
    ``native_finish_reason``, ``refusal`` and ``extra`` directly."""

    __slots__ = (
        "_calls",
        "_reasoning",
        "_text",
        "extra",
        "finish_reason",
        "id",
        "model",
        "native_finish_reason",
        "provider",
        "reasoning_signature",
        "refusal",
        "started",
        "usage",
    )

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.id = ""
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, _PendingCall] = {}
        self.usage = Usage()
        self.finish_reason: FinishReason | None = None
        self.native_finish_reason: str | None = None
        self.refusal: str | None = None
        self.reasoning_signature: str | None = None
        self.extra: dict[str, Any] = {}
        self.started = False

    def add(self, event: StreamEvent) -> None:
        if type(event) is TextDelta:
            self._text.append(event.text)
            self.started = True
        elif type(event) is ToolCallDelta:
            call = self._calls.get(event.index)
            if call is None:
                call = self._calls[event.index] = _PendingCall()
            if event.id:
                call.id = event.id
            if event.name:
                call.name = event.name
            if event.arguments:
                call.args.append(event.arguments)
            if event.extra:
                call.extra.update(event.extra)
            self.started = True
        elif type(event) is ReasoningDelta:
            if event.text:
                self._reasoning.append(event.text)
            if event.signature:
                self.reasoning_signature = (self.reasoning_signature or "") + event.signature
            self.started = True
        elif type(event) is UsageEvent:
            self.usage = event.usage

    @property
    def text(self) -> str:
        return "".join(self._text)

    def tool_calls(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self._calls):
            pending = self._calls[index]
            raw = "".join(pending.args)
            parsed = parse_arguments(raw)
            calls.append(
                ToolCall(
                    id=pending.id or f"call_{index}",
                    name=pending.name,
                    arguments=parsed if parsed is not None else {},
                    raw_arguments=raw,
                    extra=pending.extra,
                )
            )
        return calls

    def response(self, finish_reason: FinishReason | None = None) -> ChatResponse:
        calls = self.tool_calls()
        reason = finish_reason or self.finish_reason or ("tool_calls" if calls else "stop")
        return ChatResponse(
            content=self.text,
            finish_reason=reason,
            usage=self.usage,
            model=self.model,
            provider=self.provider,
            tool_calls=calls,
            id=self.id,
            refusal=self.refusal,
            reasoning="".join(self._reasoning) or None,
            reasoning_signature=self.reasoning_signature,
            native_finish_reason=self.native_finish_reason,
            extra=self.extra,
        )


def partial_answer(provider: str, model: str, events: Iterable[StreamEvent]) -> ChatResponse | None:
    """The answer the events given so far make (finish reason ``error``: it was cut
    short), or ``None`` when its pieces are too broken to put together."""
    assembler = StreamAssembler(provider, model)
    try:
        for event in events:
            assembler.add(event)
        return assembler.response("error")
    except Exception:
        return None
