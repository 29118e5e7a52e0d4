"""Cache entries: answers as bytes and back.

An entry is JSON: ``{"v": 1, "at": <stored at>, "response": {...}}`` for a
JSON answer, plus ``"events": [...]`` for a stream (every event as it was
given, so a replay is the same stream). ``parsed`` (structured output) is not
kept: it is validated again from the text on the way out. Anything that does
not decode exactly is a ``CorruptEntry`` (the caller treats it as a miss).
"""

from __future__ import annotations

from typing import Any

from .._json import JSONDecodeError, dumps, loads
from ..types import (
    ChatResponse,
    Finish,
    ReasoningDelta,
    Route,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
)

_VERSION = 1


class CorruptEntry(ValueError):
    """An entry that cannot be read back (truncated, foreign, or from another version)."""


def encode(response: ChatResponse, stored_at: float, events: list[StreamEvent] | None = None) -> bytes:
    entry: dict[str, Any] = {"v": _VERSION, "at": stored_at, "response": _response(response)}
    if events is not None:
        entry["events"] = [_event(e) for e in events]
    return dumps(entry)


def decode(data: bytes) -> tuple[ChatResponse, float, list[StreamEvent] | None]:
    """``(response, stored_at, events or None)``; raises ``CorruptEntry``."""
    try:
        entry = loads(data)
        if entry["v"] != _VERSION:
            raise CorruptEntry(f"entry version {entry['v']!r}, expected {_VERSION}")
        response = _response_from(entry["response"])
        raw_events = entry.get("events")
        events = None if raw_events is None else [_event_from(e, response) for e in raw_events]
        stored_at = float(entry["at"])
    except CorruptEntry:
        raise
    except (JSONDecodeError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CorruptEntry(f"{type(exc).__name__}: {exc}") from None
    return response, stored_at, events


def _usage(usage: Usage) -> list[int]:
    return [usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_write_tokens,
            usage.reasoning_tokens]  # fmt: skip


def _usage_from(raw: list[int]) -> Usage:
    if len(raw) != 5 or not all(type(n) is int for n in raw):
        raise CorruptEntry("usage must be five integers")
    return Usage(*raw)


def _response(r: ChatResponse) -> dict[str, Any]:
    route = r.route
    return {
        "content": r.content, "finish_reason": r.finish_reason, "usage": _usage(r.usage), "model": r.model,
        "provider": r.provider, "tool_calls": [[c.id, c.name, c.arguments, c.raw_arguments, c.extra]
                                               for c in r.tool_calls],
        "id": r.id, "refusal": r.refusal, "reasoning": r.reasoning, "reasoning_signature": r.reasoning_signature,
        "native_finish_reason": r.native_finish_reason, "cost_usd": r.cost_usd, "latency_s": r.latency_s,
        "route": None if route is None else [route.requested, route.group, route.deployment, route.attempts],
        "raw": r.raw, "extra": r.extra,
    }  # fmt: skip


def _response_from(d: dict[str, Any]) -> ChatResponse:
    route = d["route"]
    content = d["content"]
    if not isinstance(content, str):
        raise CorruptEntry("content must be a string")
    return ChatResponse(
        content=content,
        finish_reason=d["finish_reason"],
        usage=_usage_from(d["usage"]),
        model=d["model"],
        provider=d["provider"],
        tool_calls=[ToolCall(c[0], c[1], c[2], c[3], c[4]) for c in d["tool_calls"]],
        id=d["id"],
        refusal=d["refusal"],
        reasoning=d["reasoning"],
        reasoning_signature=d["reasoning_signature"],
        native_finish_reason=d["native_finish_reason"],
        cost_usd=d["cost_usd"],
        latency_s=d["latency_s"],
        route=None if route is None else Route(route[0], route[1], route[2], route[3]),
        raw=d["raw"],
        extra=d["extra"],
    )


def _event(e: StreamEvent) -> list[Any]:
    if type(e) is TextDelta:
        return ["t", e.text]
    if type(e) is ReasoningDelta:
        return ["r", e.text, e.signature]
    if type(e) is ToolCallDelta:
        return ["c", e.index, e.id, e.name, e.arguments, e.extra]
    if type(e) is UsageEvent:
        return ["u", _usage(e.usage)]
    if type(e) is Finish:
        return ["f", e.reason]  # its response is the entry's response
    raise ValueError(f"a {type(e).__name__} is not stored in the cache")


def _event_from(raw: list[Any], response: ChatResponse) -> StreamEvent:
    tag = raw[0]
    if tag == "t":
        return TextDelta(raw[1])
    if tag == "r":
        return ReasoningDelta(raw[1], raw[2])
    if tag == "c":
        return ToolCallDelta(raw[1], raw[2], raw[3], raw[4], raw[5])
    if tag == "u":
        return UsageEvent(_usage_from(raw[1]))
    if tag == "f":
        return Finish(raw[1], response)
    raise CorruptEntry(f"unknown event tag {tag!r}")


__all__ = ["CorruptEntry", "decode", "encode"]
