"""The gateway's stream relay on its own: events that are ready together go out in
one write, nothing waits behind a quiet upstream, and a client that leaves
unwinds the upstream generator wherever it stood."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from llmrelay import errors
from llmrelay.gateway.streaming import relay
from llmrelay.types import StreamEvent, TextDelta


class Plain:
    """An encoder writing each text as ``<text>|``."""

    def start(self) -> bytes:
        return b"<"

    def feed(self, event: StreamEvent) -> bytes:
        assert isinstance(event, TextDelta)
        return event.text.encode() + b"|"

    def error(self, exc: errors.LLMError) -> bytes:
        return b"!" + type(exc).__name__.encode()

    def end(self) -> bytes:
        return b">"


async def never_leaves() -> dict[str, Any]:
    await asyncio.sleep(3600)
    return {"type": "http.disconnect"}


async def bodies(events: AsyncGenerator[StreamEvent, None], receive: Any = never_leaves) -> list[bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await relay(events, Plain(), receive, send)
    assert sent[0]["type"] == "http.response.start" and not sent[-1].get("more_body")
    return [m["body"] for m in sent[1:]]


async def test_ready_events_share_a_write_and_quiet_gaps_flush_first() -> None:
    async def events() -> AsyncGenerator[StreamEvent, None]:
        for text in ("a", "b", "c"):  # one upstream read brought three events
            yield TextDelta(text)
        await asyncio.sleep(0.02)  # the upstream is quiet: what came before must be out already
        yield TextDelta("d")
        await asyncio.sleep(0)
        yield TextDelta("e")

    assert await bodies(events()) == [b"<a|", b"b|c|", b"d|", b"e|", b">"]


async def test_an_error_after_ready_events_follows_them() -> None:
    async def events() -> AsyncGenerator[StreamEvent, None]:
        yield TextDelta("a")
        yield TextDelta("b")
        raise errors.StreamInterrupted("cut", provider="p")

    assert await bodies(events()) == [b"<a|", b"b|!StreamInterrupted", b">"]


def upstream_then_quiet(texts: tuple[str, ...], closed: asyncio.Event) -> AsyncGenerator[StreamEvent, None]:
    """``texts`` at once, then waiting on the upstream for ever; ``closed`` is set when unwound."""

    async def events() -> AsyncGenerator[StreamEvent, None]:
        try:
            for text in texts:
                yield TextDelta(text)
            await asyncio.sleep(3600)
            yield TextDelta("never")
        finally:
            closed.set()

    return events()


def leaves_when(left: asyncio.Event) -> Any:
    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    return receive


async def test_a_client_leaving_unwinds_the_waiting_generator() -> None:
    closed, left = asyncio.Event(), asyncio.Event()

    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message.get("body", b""))
        if message.get("body") == b"b|":
            left.set()

    await asyncio.wait_for(relay(upstream_then_quiet(("a", "b"), closed), Plain(), leaves_when(left), send), 5)
    assert closed.is_set() and sent[-1] == b"b|"


async def test_a_client_leaving_while_gathered_bytes_go_out_unwinds_the_generator() -> None:
    """The generator is part-way through a step (waiting on the upstream) while the
    relay writes what it gathered; the client leaves during that write."""
    closed, left = asyncio.Event(), asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message.get("body") == b"b|c|":
            left.set()
            await asyncio.sleep(3600)  # a slow client: the write is still going when it leaves

    await asyncio.wait_for(relay(upstream_then_quiet(("a", "b", "c"), closed), Plain(), leaves_when(left), send), 5)
    assert closed.is_set()
