"""Hedged requests (``hedge`` on a group): when an attempt has given no first token
(streams) or no answer (chat) after a threshold, one more attempt starts on another
deployment of the group; the first to give one wins, and the other is cancelled at
once (its upstream connection closed). Every attempt started is recorded (the losers
as ``cancelled``) and, through the gateway, billed: the upstream had the prompt.

The threshold is fixed (``after_ms``) or the first deployment's own observed p95
time to first token (to the whole answer, for chat): ``"p95"``, which hedges about
one call in twenty once ``health.MIN_SAMPLES`` calls were seen, and none before.

A hedge is an attempt like any other: it goes through the deployment choice, its
breaker and its rate limits (a deployment at its limit is not hedged to), and counts
against the group's retries. Requests with effects beyond their answer are never
hedged (``hedgeable``): two attempts would do them twice. The race itself is in
``race.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import errors
from ..types import ChatRequest, EmbeddingRequest

MAX_HEDGES = 3
SIDE_EFFECTS = ("store", "background", "previous_response_id", "conversation")
"""Request fields (``extra``) that make the provider keep or change something: a stored
response, a background job, a conversation it appends to."""
CLIENT_TOOL_TYPES = ("function", "custom")
"""Tool types the caller runs itself; any other (web search, code interpreter, a
computer, a remote MCP server) runs at the provider, with effects of its own."""


@dataclass(frozen=True, slots=True)
class Hedge:
    """``after_ms``: a fixed threshold; ``p95``: the deployment's own p95 instead;
    ``max``: how many more attempts may run beside the first (1 to ``MAX_HEDGES``)."""

    after_ms: float | None = None
    p95: bool = False
    max: int = 1

    def __post_init__(self) -> None:
        if (self.after_ms is None) != self.p95:
            raise errors.ConfigError('hedge needs after_ms: a number of milliseconds > 0, or "p95"')
        if self.after_ms is not None and not (
            isinstance(self.after_ms, int | float) and math.isfinite(self.after_ms) and self.after_ms > 0
        ):
            raise errors.ConfigError(
                f'hedge.after_ms must be a number of milliseconds > 0 or "p95", not {self.after_ms!r}'
            )
        if type(self.max) is not int or not 1 <= self.max <= MAX_HEDGES:
            raise errors.ConfigError(f"hedge.max must be a whole number from 1 to {MAX_HEDGES}, not {self.max!r}")


def to_hedge(spec: Hedge | Mapping[str, Any] | None) -> Hedge | None:
    """A ``Hedge`` from itself or ``{"after_ms": 300 | "p95", "max": 1}``."""
    if spec is None or isinstance(spec, Hedge):
        return spec
    if not isinstance(spec, Mapping):
        raise errors.ConfigError(f"hedge must be a mapping like {{after_ms: 300, max: 1}}, not {spec!r}")
    unknown = set(spec) - {"after_ms", "max"}
    if unknown:
        raise errors.ConfigError(f"hedge: unknown field(s) {', '.join(sorted(unknown))} (known: after_ms, max)")
    after = spec.get("after_ms")
    p95 = after == "p95"
    return Hedge(None if p95 else after, p95, spec.get("max", 1))


def hedgeable(request: ChatRequest | EmbeddingRequest) -> bool:
    """Whether running the request twice is safe for the caller (see ``SIDE_EFFECTS``)."""
    if not isinstance(request, ChatRequest):
        return False
    extra = request.extra
    if not extra:
        return True
    if any(extra.get(name) for name in SIDE_EFFECTS):
        return False
    tools = extra.get("tools")
    return not (isinstance(tools, list) and any(_provider_tool(tool) for tool in tools))


def _provider_tool(tool: object) -> bool:
    if not isinstance(tool, dict):
        return False
    kind = tool.get("type")
    if kind is None:  # Gemini's shape: function declarations are the caller's, the rest (search, code) is not
        return not tool.keys() <= {"functionDeclarations", "function_declarations"}
    return kind not in CLIENT_TOOL_TYPES


__all__ = ["CLIENT_TOOL_TYPES", "MAX_HEDGES", "SIDE_EFFECTS", "Hedge", "hedgeable", "to_hedge"]
