"""The race of a hedged call (``hedge.py``): attempts started one threshold apart, the
first result wins, the rest are cancelled (their upstream connections closed),
recorded as ``cancelled`` and named in ``Route.hedged``, and handed to the gateway to
bill (``CallTrace.abandoned``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from .. import errors
from ..types import ChatRequest, EmbeddingRequest, Finish, StreamEvent
from .attempt import Attempt
from .calls import CONTENT
from .hedge import Hedge, hedgeable

if TYPE_CHECKING:
    from .calls import Call
    from .router import Router

T = TypeVar("T")


def threshold_s(router: Router, call: Call, attempt: Attempt, request: ChatRequest | EmbeddingRequest) -> float | None:
    """Seconds after which ``attempt`` gets a hedge, or ``None`` for no hedge."""
    hedge = attempt.group.hedge
    if not isinstance(hedge, Hedge) or call.op == "embed" or not hedgeable(request):
        return None
    if hedge.after_ms is not None:
        return hedge.after_ms / 1000
    stats = router.monitor.stats(attempt.pick.deployment.id)
    return (stats.first_tokens if call.op == "stream" else stats.answers).p95()


async def race(
    router: Router,
    call: Call,
    request: ChatRequest | EmbeddingRequest,
    first: Attempt,
    after_s: float,
    run: Callable[[Attempt], Awaitable[T | None]],
) -> tuple[T | None, Attempt]:
    """``run`` on ``first``, and on one more deployment each ``after_s`` without a result
    (``hedge.max`` more at most): the first result and its attempt, the others cancelled;
    or ``(None, the last attempt to fail)`` when every attempt failed. ``run`` gives
    ``None`` for an attempt that failed (its outcome recorded), never raises."""
    hedge = first.group.hedge
    assert isinstance(hedge, Hedge)
    running: dict[asyncio.Task[T | None], Attempt] = {asyncio.ensure_future(run(first)): first}
    left, failed = hedge.max, first
    try:
        while running:
            done, _ = await asyncio.wait(
                running, timeout=after_s if left else None, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:  # no first token yet: hedge
                extra = await _another(router, call, request, first, running.values())
                left = left - 1 if extra is not None else 0
                if extra is not None:
                    running[asyncio.ensure_future(run(extra))] = extra
                continue
            for task in done:
                attempt = running.pop(task)
                result = task.result()
                if result is not None:
                    return result, attempt
                failed = attempt
        return None, failed
    finally:
        for task, attempt in running.items():
            task.cancel()
            call.hedged.append(attempt.pick.deployment.id)
            if call.trace is not None:  # the upstream had the prompt: the gateway bills it
                call.trace.abandoned.append(attempt.pick.deployment)
        if running:
            await asyncio.gather(*running, return_exceptions=True)


async def _another(
    router: Router,
    call: Call,
    request: ChatRequest | EmbeddingRequest,
    first: Attempt,
    busy: Iterable[Attempt],
) -> Attempt | None:
    """One more attempt in ``first``'s group, on a deployment none of ``busy`` runs on."""
    taken = {attempt.pick.deployment.id for attempt in busy}
    before = call.skipped
    call.skipped = before | taken  # not these: they are already answering this call
    try:
        pick = await router._pick(first.group, call, request, may_wait=False)
    finally:
        call.skipped = before | (call.skipped - taken)
    if pick is None:
        return None
    call.used += 1
    return Attempt(router, first.group, pick, call)


class Primed:
    """A stream's attempt, entered, read up to its first token in a task of its own
    (``prime``): the events read so far, to be given first, and the rest to come."""

    __slots__ = ("events", "pulled")

    def __init__(self, events: AsyncGenerator[StreamEvent, None], pulled: list[StreamEvent]) -> None:
        self.events = events
        self.pulled = pulled

    def step(self) -> Callable[[], Awaitable[StreamEvent]]:
        """The next event: those already read, then the stream's own."""
        pending, rest = deque(self.pulled), self.events.__anext__

        async def next_event() -> StreamEvent:
            return pending.popleft() if pending else await rest()

        return next_event


async def prime(attempt: Attempt) -> Primed | None:
    """Enter ``attempt`` and read its stream up to the first token (or the finish):
    ``None`` when it failed first (recorded, as any failed attempt). The attempt stays
    entered for the caller's loop, which leaves it."""
    await attempt.__aenter__()
    events = attempt.pick.provider.stream(attempt.pick.request)  # type: ignore[arg-type]
    pulled: list[StreamEvent] = []
    try:
        while True:
            try:
                event = await attempt.wait(events.__anext__())
            except StopAsyncIteration:
                dep = attempt.pick.deployment
                raise errors.ProviderError("the stream ended without finishing", provider=dep.provider) from None
            pulled.append(event)
            if isinstance(event, CONTENT) or type(event) is Finish:
                return Primed(events, pulled)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await events.aclose()
        if await attempt.__aexit__(type(exc), exc, exc.__traceback__):
            return None  # failed: recorded, and kept in attempt.error
        raise


__all__ = ["Primed", "prime", "race", "threshold_s"]
