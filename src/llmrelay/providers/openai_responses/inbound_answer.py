"""Canonical answers -> the Responses API's ``response`` object, and canonical stream
events -> its event sequence, as the official SDK parses it: ``response.created``,
``response.in_progress``; per output item ``response.output_item.added``, its
content events and ``response.output_item.done``; then ``response.completed`` (or
``response.incomplete``) with the whole response. A failure is an ``error`` event,
then ``response.failed``. Every event has its ``type`` as the SSE ``event:`` name
and a ``sequence_number`` counted from 0. (The request side is :mod:`.inbound`.)

Items follow one another as OpenAI sends them: an item is done when the next one
begins. (A piece of a tool call that comes after its item is done, which no
provider sends, still reaches the final response, not the item's events.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ... import errors
from ..._ids import new_id
from ..._json import dumps, dumps_str
from ..._sse import encode_sse
from ...types import (
    ChatResponse,
    ErrorEvent,
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .codec import function_call_item


def status_of(reason: FinishReason) -> tuple[str, str | None]:
    """(``status``, ``incomplete_details.reason``) of an answer that ended for ``reason``."""
    if reason == "length":
        return "incomplete", "max_output_tokens"
    if reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None  # an answer cut by an error is what was given


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def reasoning_item(item_id: str, texts: Sequence[str]) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": t} for t in texts]}


def call_item(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {"id": item_id, **function_call_item(call), "status": status}


def output_items(response: ChatResponse) -> list[dict[str, Any]]:
    """The ``output`` of an answer, with new item ids: its reasoning (one summary part),
    its message (text, then any refusal), its function calls. The last item of an
    incomplete answer is ``incomplete``."""
    items: list[dict[str, Any]] = []
    if response.reasoning:
        items.append(reasoning_item(f"rs_{new_id()}", [response.reasoning]))
    content = [text_part(response.content)] if response.content else []
    if response.refusal:
        content.append({"type": "refusal", "refusal": response.refusal})
    if content or not (response.tool_calls or response.reasoning):  # an empty answer is an empty message
        items.append(message_item(f"msg_{new_id()}", content or [text_part("")], "completed"))
    items.extend(call_item(f"fc_{new_id()}", call, "completed") for call in response.tool_calls)
    if status_of(response.finish_reason)[0] == "incomplete" and "status" in items[-1]:
        items[-1]["status"] = "incomplete"
    return items


def response_object(
    request: dict[str, Any], response_id: str, created_at: int, *, status: str, model: str,
    output: list[dict[str, Any]], usage: dict[str, Any] | None = None, error: dict[str, Any] | None = None,
    incomplete: str | None = None, completed_at: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ``response`` object: the answer's part as given, the request's fields echoed
    (defaults filled in as OpenAI does; ``None`` where the answering provider's default is unknown)."""

    def echo(key: str, default: Any = None) -> Any:
        value = request.get(key)
        return default if value is None else value

    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": status,
        "completed_at": completed_at, "background": False, "error": error,
        "incomplete_details": None if incomplete is None else {"reason": incomplete},
        "instructions": echo("instructions"), "max_output_tokens": echo("max_output_tokens"),
        "metadata": echo("metadata", {}), "model": model, "output": output,
        "parallel_tool_calls": echo("parallel_tool_calls", True), "previous_response_id": echo("previous_response_id"),
        "reasoning": echo("reasoning"), "store": echo("store", True), "temperature": echo("temperature"),
        "text": echo("text", {"format": {"type": "text"}}), "tool_choice": echo("tool_choice", "auto"),
        "tools": echo("tools", []), "top_p": echo("top_p"), "truncation": echo("truncation", "disabled"),
        "usage": usage, "user": echo("user"),
    }  # fmt: skip


def response_to_wire(
    response: ChatResponse,
    *,
    response_id: str,
    created_at: int,
    request: dict[str, Any],
    output: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``response`` object of an answer to ``request`` (the body it answers);
    ``output`` replaces the items :func:`output_items` would make (a stream's own)."""
    status, reason = status_of(response.finish_reason)
    return response_object(
        request, response_id, created_at, status=status, model=response.model,
        output=output_items(response) if output is None else output, usage=usage_to_wire(response.usage),
        incomplete=reason, completed_at=created_at + round(response.latency_s) if status == "completed" else None,
    )  # fmt: skip


# ---------------------------------------------------------------- the stream

_ERROR_CODES: tuple[tuple[type[errors.LLMError], str, str], ...] = (
    # error class, the ``error`` event's code, the failed response's ``error.code`` (an enum in the spec)
    (errors.ContextWindowExceeded, "context_length_exceeded", "invalid_prompt"),
    (errors.ContentFiltered, "content_filter", "invalid_prompt"),
    (errors.InvalidRequest, "invalid_prompt", "invalid_prompt"),
    (errors.BudgetExceeded, "insufficient_quota", "rate_limit_exceeded"),
    (errors.RateLimited, "rate_limit_exceeded", "rate_limit_exceeded"),
    (errors.Overloaded, "overloaded_error", "server_error"),
)


def error_codes(exc: errors.LLMError) -> tuple[str, str]:
    """(``error`` event code, failed response ``error.code``) of an error: codes the
    Responses decoder (:mod:`.errors`) maps back to the same kind of error."""
    for cls, code, failure in _ERROR_CODES:
        if isinstance(exc, cls):
            return code, failure
    return "server_error", "server_error"


class _Item:
    """An output item being streamed: its content parts as (part type, text pieces)."""

    __slots__ = ("call_id", "id", "index", "kind", "name", "part_open", "parts", "status")

    def __init__(self, kind: str, index: int, call_id: str = "", name: str = "") -> None:
        prefix = {"message": "msg", "reasoning": "rs", "function_call": "fc"}[kind]
        self.kind, self.id, self.index = kind, f"{prefix}_{new_id()}", index
        self.call_id, self.name = call_id, name
        self.parts: list[tuple[str, list[str]]] = [("arguments", [])] if kind == "function_call" else []
        self.part_open = False
        self.status = "in_progress"

    def text(self, part: int = -1) -> str:
        return "".join(self.parts[part][1])

    @property
    def arguments(self) -> str:
        text = self.text(0)
        return text if self.status == "in_progress" else text or "{}"  # as an answer's calls are sent

    def wire(self) -> dict[str, Any]:
        if self.kind == "message":
            return message_item(self.id, [_part(kind, "".join(p)) for kind, p in self.parts], self.status)
        if self.kind == "reasoning":
            return reasoning_item(self.id, ["".join(p) for _, p in self.parts])
        return {
            "id": self.id, "type": "function_call", "status": self.status, "call_id": self.call_id,
            "name": self.name, "arguments": self.arguments,
        }  # fmt: skip


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "refusal":
        return {"type": "refusal", "refusal": text}
    if kind == "summary_text":
        return {"type": "summary_text", "text": text}
    return text_part(text)


class StreamEncoder:
    """Canonical stream events -> Responses API server-sent events. ``response``
    holds the last event's response object (completed, incomplete or failed), for
    the gateway to store; its output items have the ids the stream gave them."""

    __slots__ = (
        "_calls", "_ending", "_items", "_open", "_sequence", "_started", "_text_seen", "created_at", "request",
        "response", "response_id",
    )  # fmt: skip

    def __init__(self, response_id: str, created_at: int, request: dict[str, Any]) -> None:
        self.response_id, self.created_at, self.request = response_id, created_at, request
        self.response: dict[str, Any] | None = None
        self._sequence = 0
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._calls: dict[int, _Item] = {}  # canonical tool call index -> its item
        self._text_seen = False
        self._ending = b""  # the last events, made by ``final`` before the finish is fed
        self._started = False

    def start(self) -> bytes:
        if self._started:  # ``final`` came first (an answer whose first event is its finish)
            return b""
        self._started = True
        return self._event("response.created", response=self._snapshot()) + self._event(
            "response.in_progress", response=self._snapshot()
        )

    def feed(self, event: StreamEvent) -> bytes:
        if type(event) is Finish:
            if self.response is None:
                return self._finish(event.response)
            ending, self._ending = self._ending, b""  # made by ``final`` (nothing after an error)
            return ending
        if self.response is not None:
            return b""
        if type(event) is TextDelta:
            return self._text(event.text) if event.text else b""
        if type(event) is ReasoningDelta:
            return self._reasoning(event.text) if event.text else b""
        if type(event) is ToolCallDelta:
            return self._call(event)
        if type(event) is ErrorEvent:
            return self.error(event.error)
        return b""  # usage comes with the finish

    def final(self, response: ChatResponse) -> dict[str, Any]:
        """The response object the stream ends with for ``response`` (a ``Finish``'s),
        known before the finish is fed (its events are made now, ``feed`` sends them):
        to store an answer as the stream shows it before the stream's last bytes go."""
        if self.response is None:
            opening = self.start()  # numbered first, sent first (with the rest, by ``feed``)
            self._ending = opening + self._finish(response)
        assert self.response is not None  # _finish sets it
        return self.response

    def error(self, exc: errors.LLMError) -> bytes:
        if self.response is not None:
            return b""
        code, failure = error_codes(exc)
        message = str(exc)
        out = self._event("error", code=code, message=message, param=None)
        self.response = self._snapshot("failed", error={"code": failure, "message": message})
        return out + self._event("response.failed", response=self.response)

    def end(self) -> bytes:
        if self.response is not None:
            return b""
        return self.error(errors.StreamInterrupted("the stream ended before the answer was complete"))

    # ---- items

    def _text(self, text: str) -> bytes:
        item, out = self._item("message")
        if not item.parts or item.parts[-1][0] != "output_text":
            out += self._open_part(item, "output_text")
        self._text_seen = True
        return out + self._delta(item, text)

    def _reasoning(self, text: str) -> bytes:
        item, out = self._item("reasoning")
        if not item.parts:
            out += self._open_part(item, "summary_text")
        return out + self._delta(item, text)

    def _call(self, event: ToolCallDelta) -> bytes:
        item = self._calls.get(event.index)
        out = b""
        if item is None:
            item, out = self._item("function_call", event.id or f"call_{event.index}", event.name or "")
            self._calls[event.index] = item
        if not event.arguments:
            return out
        if item is not self._open:
            item.parts[0][1].append(event.arguments)
            return out
        return out + self._delta(item, event.arguments)

    def _finish(self, response: ChatResponse) -> bytes:
        """What the answer holds that no event carried (a refusal; anything a replay
        left out) is sent first, then the open item is done, then the response."""
        out = b""
        if response.reasoning and not any(i.kind == "reasoning" for i in self._items):
            out += self._reasoning(response.reasoning)
        if response.content and not self._text_seen:
            out += self._text(response.content)
        for position, call in enumerate(response.tool_calls[len(self._calls) :], start=len(self._calls)):
            arguments = call.raw_arguments or dumps_str(call.arguments)
            out += self._call(ToolCallDelta(-1 - position, call.id, call.name, arguments))
        if response.refusal or not self._items:
            item, opened = self._item("message")
            out += opened + self._open_part(item, "refusal" if response.refusal else "output_text")
            if response.refusal:
                out += self._delta(item, response.refusal)
        status, _ = status_of(response.finish_reason)
        out += self._close("incomplete" if status == "incomplete" else "completed")
        output = [item.wire() for item in self._items]
        self.response = response_to_wire(
            response, response_id=self.response_id, created_at=self.created_at, request=self.request, output=output
        )
        return out + self._event(f"response.{status}", response=self.response)

    def _item(self, kind: str, call_id: str = "", name: str = "") -> tuple[_Item, bytes]:
        """The open item if it is a ``kind`` one (never for a function call), else a new one."""
        if self._open is not None and self._open.kind == kind != "function_call":
            return self._open, b""
        out = self._close()
        item = self._open = _Item(kind, len(self._items), call_id, name)
        self._items.append(item)
        return item, out + self._event("response.output_item.added", output_index=item.index, item=item.wire())

    def _open_part(self, item: _Item, kind: str) -> bytes:
        out = self._close_part(item)
        item.parts.append((kind, []))
        item.part_open = True
        where = self._where(item)
        if item.kind == "reasoning":
            return out + self._event("response.reasoning_summary_part.added", **where, part=_part(kind, ""))
        return out + self._event("response.content_part.added", **where, part=_part(kind, ""))

    def _delta(self, item: _Item, text: str) -> bytes:
        kind, pieces = item.parts[-1]
        pieces.append(text)
        where = self._where(item)
        if kind == "output_text":
            return self._event("response.output_text.delta", **where, delta=text, logprobs=[])
        if kind == "refusal":
            return self._event("response.refusal.delta", **where, delta=text)
        if kind == "summary_text":
            return self._event("response.reasoning_summary_text.delta", **where, delta=text)
        return self._event("response.function_call_arguments.delta", **where, delta=text)

    def _close_part(self, item: _Item) -> bytes:
        if not item.part_open:
            return b""
        item.part_open = False
        kind, where, text = item.parts[-1][0], self._where(item), item.text()
        if kind == "summary_text":
            return self._event("response.reasoning_summary_text.done", **where, text=text) + self._event(
                "response.reasoning_summary_part.done", **where, part=_part(kind, text)
            )
        if kind == "refusal":
            done = self._event("response.refusal.done", **where, refusal=text)
        else:
            done = self._event("response.output_text.done", **where, text=text, logprobs=[])
        return done + self._event("response.content_part.done", **where, part=_part(kind, text))

    def _close(self, status: str = "completed") -> bytes:
        item = self._open
        if item is None:
            return b""
        self._open = None
        item.status = status
        if item.kind == "function_call":
            out = self._event(
                "response.function_call_arguments.done", **self._where(item), name=item.name, arguments=item.arguments
            )
        else:
            out = self._close_part(item)
        return out + self._event("response.output_item.done", output_index=item.index, item=item.wire())

    # ---- events

    def _where(self, item: _Item) -> dict[str, Any]:
        """The fields that place a content event: its item, and its part in the item."""
        where: dict[str, Any] = {"item_id": item.id, "output_index": item.index}
        if item.kind == "message":
            where["content_index"] = len(item.parts) - 1
        elif item.kind == "reasoning":
            where["summary_index"] = len(item.parts) - 1
        return where

    def _snapshot(self, status: str = "in_progress", error: dict[str, Any] | None = None) -> dict[str, Any]:
        model = self.request.get("model")
        return response_object(
            self.request, self.response_id, self.created_at, status=status,
            model=model if isinstance(model, str) else "", output=[item.wire() for item in self._items], error=error,
        )  # fmt: skip

    def _event(self, kind: str, /, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        return encode_sse(dumps(payload), kind)


__all__ = [
    "StreamEncoder", "call_item", "error_codes", "message_item", "output_items", "reasoning_item", "response_object",
    "response_to_wire", "status_of", "text_part", "usage_to_wire",
]  # fmt: skip
