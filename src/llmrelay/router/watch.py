"""``StreamWatch``: the time limits of one streamed attempt, at almost no cost per event.

Two limits: the wait for the first token (the attempt's timeout) and the gap
between events after it (``stream_idle_s``). Only time spent waiting on the
provider counts, never time the caller spends between events. One timer per
limit period, not one per event: the timer wakes, and if the wait in progress
has lasted too long it cancels the task; ``expired`` then tells the caller the
cancellation was ours, to turn it into ``errors.Timeout``.
"""

from __future__ import annotations

import asyncio


class StreamWatch:
    __slots__ = ("_handle", "_idle_s", "_loop", "_task", "expired", "limit_s", "since", "waiting")

    def __init__(self, first_s: float | None, idle_s: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "StreamWatch runs inside a task"
        self._task = task
        self._idle_s = idle_s
        self.limit_s = first_s
        self.since = self._loop.time()
        self.waiting = False
        self.expired = False
        self._handle: asyncio.TimerHandle | None = None
        if first_s is not None:
            self._handle = self._loop.call_at(self.since + first_s, self._wake)

    def begin(self) -> None:
        """A wait on the provider starts now."""
        self.since = self._loop.time()
        self.waiting = True

    def first_token(self) -> None:
        """From now on the idle limit applies."""
        self.limit_s = self._idle_s
        if self._handle is not None:  # it was set for the first-token limit, which may be later
            self._handle.cancel()
            self._handle = None
        if self._idle_s is not None:
            self._handle = self._loop.call_at(self._loop.time() + self._idle_s, self._wake)

    def _wake(self) -> None:
        self._handle = None
        limit = self.limit_s
        if limit is None or self.expired:
            return
        now = self._loop.time()
        if self.waiting and now >= self.since + limit:
            self.expired = True
            self._task.cancel()
            return
        due = self.since + limit if self.waiting else now + limit
        self._handle = self._loop.call_at(due, self._wake)

    def claim(self) -> bool:
        """After a ``CancelledError``: True (and the cancellation undone) when it
        was this watch's doing, False when someone else cancelled the task."""
        if not self.expired:
            return False
        self._task.uncancel()
        return True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
