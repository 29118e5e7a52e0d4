"""In-flight coalescing: identical requests share one upstream call.

The first request of a key starts the call in a task of its own; identical
requests arriving while it runs wait for that task instead of sending their
own. The task belongs to no caller: one caller leaving (cancelled, disconnected)
never cancels it for the others; when every caller has left, it is cancelled
(and forgotten at once: a request arriving then starts afresh). A failure
reaches every waiter, each raising its own copy, and nothing is kept after the
call ends (the cache, when on, keeps successes). A stream fans out: each waiter
gets every event from the first one, late joiners replaying what was already
given.

One caller takes the answer as its own (it carries the cost; the others are
``shared``): the one whose request went upstream or, when it left before the
answer came, the first other caller to get it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Generic, TypeVar

from .._error_copy import own_copy
from ..types import ChatResponse, Finish, StreamEvent

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("claimed", "task", "waiters")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.waiters = 0
        self.claimed = False  # a caller took the answer as its own


class _Stream:
    __slots__ = ("changed", "done", "error", "events", "lead_here", "paid", "task", "waiters")

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self.done = False
        self.error: BaseException | None = None
        self.changed = asyncio.Event()
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None
        self.lead_here = True  # the caller that started the stream has not left
        self.paid = False  # a caller took the answer (its Finish) as its own

    def wake(self) -> None:
        self.changed.set()  # wakes every waiter now waiting...
        self.changed.clear()  # ...and later waits block again


class Flights:
    """The calls in flight, by key."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call[ChatResponse]] = {}
        self._streams: dict[str, _Stream] = {}

    async def call(self, key: str, start: Callable[[], Awaitable[ChatResponse]]) -> tuple[ChatResponse, bool]:
        """``(answer, shared)``: ``shared`` is False for the one caller that takes the answer as its own."""
        flight = self._calls.get(key)
        if flight is None:
            flight = _Call(asyncio.ensure_future(start()))
            self._calls[key] = flight
            flight.task.add_done_callback(lambda _: self._forget(self._calls, key, flight))
        flight.waiters += 1
        try:
            answer = await asyncio.shield(flight.task)
        except Exception as exc:
            failure = own_copy(exc, keep_traceback=True)  # raised below, outside this handler: not chained
        else:
            shared, flight.claimed = flight.claimed, True
            return answer, shared
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                self._forget(self._calls, key, flight)  # a request arriving from now on starts afresh
                flight.task.cancel()  # every caller has gone
        raise failure

    async def stream(
        self, key: str, start: Callable[[], AsyncGenerator[StreamEvent, None]]
    ) -> AsyncGenerator[tuple[StreamEvent, bool], None]:
        """``(event, shared)`` pairs of the one upstream stream for ``key``; ``shared`` is
        False for the caller that started it, and for its ``Finish``, for the one caller
        that takes the answer as its own."""
        flight = self._streams.get(key)
        lead = flight is None
        if flight is None:
            flight = self._streams[key] = _Stream()
            flight.task = asyncio.ensure_future(self._pump(key, flight, start()))
        flight.waiters += 1
        given = 0
        try:
            while True:
                while given < len(flight.events):
                    event = flight.events[given]
                    given += 1
                    if type(event) is Finish and not flight.paid and (lead or not flight.lead_here):
                        flight.paid = True
                        yield event, False
                    else:
                        yield event, not lead
                if flight.done:
                    if flight.error is not None:
                        raise own_copy(flight.error, keep_traceback=True)
                    return
                await flight.changed.wait()
        finally:
            if lead:
                flight.lead_here = False
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.done and flight.task is not None:
                self._forget(self._streams, key, flight)  # a request arriving from now on starts afresh
                flight.task.cancel()

    async def _pump(self, key: str, flight: _Stream, events: AsyncGenerator[StreamEvent, None]) -> None:
        try:
            async with aclosing(events):
                async for event in events:
                    flight.events.append(event)
                    flight.wake()
        except asyncio.CancelledError:
            flight.error = asyncio.CancelledError()
            raise
        except BaseException as exc:  # every waiter gets it
            flight.error = exc
        finally:
            flight.done = True
            self._forget(self._streams, key, flight)
            flight.wake()

    def streaming(self, key: str) -> bool:
        """Whether a shared stream for ``key`` is still under way (someone still reads it)."""
        flight = self._streams.get(key)
        return flight is not None and not flight.done

    @staticmethod
    def _forget(table: dict[str, T], key: str, flight: T) -> None:
        if table.get(key) is flight:
            del table[key]


__all__ = ["Flights"]
