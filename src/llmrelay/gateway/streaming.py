"""Relaying a routed stream to an HTTP client as server-sent events, in any
API's format (the encoder decides the bytes).

The first event is awaited before the status line: a call that fails before its
first token is an ordinary error answer (right status, the SDK's own exception);
after it, a failure becomes the format's in-stream error event. A client that
disconnects cancels the relay, which closes the upstream stream at once (and
says so in ``facts.disconnected``, for billing what was given).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import aclosing
from typing import Any, Protocol

from .. import errors
from ..types import Finish, StreamEvent
from .caching import note_answer
from .http import Message, Receive, Send
from .metrics import RequestFacts

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


class Encoder(Protocol):
    def start(self) -> bytes:
        """What opens the stream (sent with the status line's first body)."""
        ...

    def feed(self, event: StreamEvent) -> bytes:
        """The bytes for one event (may be empty)."""
        ...

    def error(self, exc: errors.LLMError) -> bytes:
        """The in-stream error event."""
        ...

    def end(self) -> bytes:
        """What closes the stream."""
        ...


WRITE_TIMEOUT_S = 30.0
"""How long a client may leave the stream's bytes untaken before it is taken for gone."""
HOLD_MAX = 1 << 20
"""Bytes held for a client that is not taking them, before the relay waits for it."""


async def relay(
    events: AsyncGenerator[StreamEvent, None],
    encoder: Encoder,
    receive: Receive,
    send: Send,
    facts: RequestFacts | None = None,
    given: list[StreamEvent] | None = None,
    before_end: Callable[[], Awaitable[None]] | None = None,
    public: Callable[[errors.LLMError], errors.LLMError] | None = None,
    write_timeout_s: float = WRITE_TIMEOUT_S,
) -> None:
    """Send ``events`` as ``encoder`` writes them; ``facts`` learns the time to
    the first event, the stream's duration, usage and cost; ``given`` collects
    every event sent; ``before_end`` runs after the last event, before the stream's
    last bytes (the answer's record must be complete when it ends); ``public``
    makes an in-stream error fit for the client's eyes. A client that takes no
    bytes for ``write_timeout_s`` is taken for gone, as one that disconnects."""
    begun = time.perf_counter()
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.Event()
    watcher = asyncio.create_task(cancel_on_disconnect(receive, task, gone))
    writer = _Writer(send, write_timeout_s, lambda: _leave(task, gone))
    try:
        async with aclosing(events):
            try:
                first = await events.__anext__()
            except StopAsyncIteration:
                raise errors.ProviderError("the stream ended before any event") from None
            if facts is not None:
                facts.ttft_s = time.perf_counter() - begun
            if given is not None:
                given.append(first)
            await writer.send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await writer.write(encoder.start() + encoder.feed(first))
            _learn(facts, first)
            gathered: list[bytes] = []
            try:
                while True:
                    try:
                        event = await _next_event(events, gathered, writer)
                    except StopAsyncIteration:
                        break
                    if given is not None:
                        given.append(event)
                    gathered.append(encoder.feed(event))
                    _learn(facts, event)
            except errors.LLMError as exc:
                if facts is not None:
                    facts.error = type(exc).__name__
                gathered.append(encoder.error(exc if public is None else public(exc)))
            await writer.write(b"".join(gathered))
            if facts is not None:
                facts.upstream_s = time.perf_counter() - begun
            if before_end is not None:
                await before_end()
            await writer.send({"type": "http.response.body", "body": encoder.end(), "more_body": False})
    except asyncio.CancelledError:
        if not gone.is_set():
            raise
        task.uncancel()  # the client left: the upstream stream is closed, nothing more to do
        if facts is not None:
            facts.disconnected = True
    finally:
        watcher.cancel()
        writer.close()
        if facts is not None and not facts.upstream_s:
            facts.upstream_s = time.perf_counter() - begun


def _leave(task: asyncio.Task[Any], gone: asyncio.Event) -> None:
    """The client stopped taking bytes: end the relay as if it had left."""
    if not gone.is_set():
        gone.set()
        task.cancel()


class _Writer:
    """Writes to the client. A write the client takes at once (nearly all: the
    transport buffers them) costs nothing more; one it does not take goes on in a
    task of its own, so the relay goes on reading the upstream meanwhile (time a
    slow client costs is never the upstream's: the router's idle watch only counts
    waits on the upstream), and one it does not take within ``timeout_s`` ends the
    relay through ``stuck``."""

    __slots__ = ("_send", "_stuck", "_timeout_s", "pending")

    def __init__(self, send: Send, timeout_s: float, stuck: Callable[[], None]) -> None:
        self._send, self._timeout_s, self._stuck = send, timeout_s, stuck
        self.pending: asyncio.Task[None] | None = None

    def begin(self, message: Message) -> None:
        """Start sending ``message`` (call only with no write pending)."""
        step = self._send(message).__await__()
        try:
            waiting_on = step.send(None)  # runs the write until it finishes or must wait for the client
        except StopIteration:
            return
        self.pending = asyncio.ensure_future(self._rest(step, waiting_on))

    async def _rest(self, step: Any, waiting_on: Any) -> None:
        try:
            await asyncio.wait_for(_Resumed(step, waiting_on), self._timeout_s)
        except TimeoutError:
            self._stuck()
        finally:
            self.pending = None

    async def wait(self) -> None:
        """Until no write is pending (bounded: a stuck client ends the relay)."""
        pending = self.pending
        if pending is not None:
            await asyncio.shield(pending)

    async def send(self, message: Message) -> None:
        if self.pending is not None:
            await asyncio.shield(self.pending)
        self.begin(message)
        if self.pending is not None:
            await asyncio.shield(self.pending)

    async def write(self, chunk: bytes) -> None:
        if chunk:
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()


async def _next_event(events: AsyncGenerator[StreamEvent, None], gathered: list[bytes], writer: _Writer) -> StreamEvent:
    """The next event. Events that are ready at once (an upstream read often brings
    several) are gathered into one write; before waiting for one that is not, the
    gathered bytes go out, so nothing is held back while the upstream is quiet. A
    client still taking an earlier write is not waited for while the upstream is
    (its bytes are held, up to ``HOLD_MAX``, then waited for between two events)."""
    if writer.pending is not None and sum(map(len, gathered)) > HOLD_MAX:
        await writer.wait()
    step = events.__anext__()
    try:
        waiting_on = step.send(None)  # runs the generator until it finishes or must wait
    except StopIteration as ready:
        return ready.value  # type: ignore[no-any-return]
    if gathered and writer.pending is None:
        try:
            writer.begin({"type": "http.response.body", "body": b"".join(gathered), "more_body": True})
        except BaseException as exc:  # the write failed: unwind the waiting generator
            if isinstance(waiting_on, asyncio.Future):
                waiting_on.cancel()
            with contextlib.suppress(BaseException):
                step.throw(exc)
            raise
        gathered.clear()
    return await _Resumed(step, waiting_on)


class _Resumed:
    """Awaiting the rest of a generator step that was started by hand: what it waits
    on is handed to the running task, as ``await`` would have done."""

    __slots__ = ("_first", "_step")

    def __init__(self, step: Any, first: Any) -> None:
        self._step, self._first = step, first

    def __await__(self) -> Generator[Any, Any, StreamEvent]:
        step, waiting_on = self._step, self._first
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # cancellation (or anything thrown in) goes to the step
                try:
                    waiting_on = step.throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                continue
            try:
                waiting_on = step.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


def _learn(facts: RequestFacts | None, event: StreamEvent) -> None:
    if facts is not None and type(event) is Finish:
        note_answer(facts, event.response)


async def cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any], gone: asyncio.Event) -> None:
    """Cancel the relaying task as soon as the client goes away."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            task.cancel()
            return


__all__ = ["SSE_HEADERS", "Encoder", "cancel_on_disconnect", "relay"]
