"""``StreamWatch``: the time limits of one attempt, at almost no cost per event.

Two limits: the wait for the first token (the attempt's timeout, counted from
the start of the attempt, whatever arrives before the first token) and, for
streams, the gap between events after it (``stream_idle_s``). After the first
token only time spent waiting on the provider counts, never time the caller
spends between events. One timer per limit period, not one per event: the timer
wakes, and if the wait in progress has lasted too long it cancels the waiting
task; ``claim`` then tells whether the cancellation was the watch's own (to be
turned into ``errors.Timeout``) or also someone else's (to be let through).
"""

from __future__ import annotations

import asyncio
from asyncio import current_task


class StreamWatch:
    __slots__ = (
        "_cancelling", "_handle", "_idle_s", "_loop", "_started", "_task", "expired", "limit_s", "since", "waiting",
    )  # fmt: skip

    def __init__(self, first_s: float | None, idle_s: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._idle_s = idle_s
        self._started = False
        self.limit_s = first_s
        self.since = self._loop.time()
        self.waiting = False
        self.expired = False
        self._handle: asyncio.TimerHandle | None = None
        if first_s is not None:  # waking at the sooner limit lets first_token keep this timer
            soonest = first_s if idle_s is None else min(first_s, idle_s)
            self._handle = self._loop.call_at(self.since + soonest, self._wake)

    def begin(self) -> None:
        """A wait on the provider starts now, in the current task (a consumer may
        step a stream from a different task each time)."""
        task = current_task(self._loop)  # given the loop: no look-up of the running one
        assert task is not None, "StreamWatch waits inside a task"
        self._task = task
        self._cancelling = task.cancelling()
        if self._started:
            self.since = self._loop.time()
        self.waiting = True

    def first_token(self) -> None:
        """From now on the idle limit applies."""
        self._started = True
        self.limit_s = idle = self._idle_s
        handle = self._handle
        if handle is not None:
            if idle is not None and handle.when() <= self._loop.time() + idle:
                return  # it wakes before the idle limit could pass: it goes on as the idle timer
            handle.cancel()  # it was set for a later first-token limit
            self._handle = None
        if idle is not None:
            self._handle = self._loop.call_at(self._loop.time() + idle, self._wake)

    def _wake(self) -> None:
        self._handle = None
        limit = self.limit_s
        if limit is None or self.expired:
            return
        now = self._loop.time()
        if self.waiting and self._task is not None and now >= self.since + limit:
            self.expired = True
            self._task.cancel()
            return
        due = self.since + limit
        if not self.waiting and (self._started or now >= due):  # a wait starts later: a limit from now
            due = now + limit
        self._handle = self._loop.call_at(max(due, now), self._wake)

    def claim(self) -> bool:
        """After a ``CancelledError``: True (and the cancellation undone) when it
        was only the watch's doing; False when the task was cancelled by someone
        else too, so the ``CancelledError`` must go on."""
        if not self.expired or self._task is None:
            return False
        return self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
