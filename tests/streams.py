"""Helpers shared by the provider tests."""

from __future__ import annotations

from llmrelay.providers.base import Provider
from llmrelay.types import ChatRequest, ChatResponse, Finish, StreamEvent


async def collect(provider: Provider, request: ChatRequest) -> list[StreamEvent]:
    """Every event of one stream."""
    return [event async for event in provider.stream(request)]


def final(events: list[StreamEvent]) -> ChatResponse:
    """The whole answer carried by the stream's last event (which must be ``Finish``)."""
    finish = events[-1]
    assert isinstance(finish, Finish), f"stream ended with {finish!r}"
    return finish.response
