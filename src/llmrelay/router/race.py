"""The race of a hedged call (``hedge.py``): attempts started one threshold apart, the
first result wins, the rest are cancelled (their upstream connections closed),
recorded as ``cancelled`` and named in ``Route.hedged``, and handed to the gateway to
bill (``CallTrace.abandoned``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from ..types import ChatRequest, EmbeddingRequest, Finish, StreamEvent
from .attempt import Attempt
from .calls import CONTENT, ended_early, verdict
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
    dispose: Callable[[T, Attempt], Awaitable[None]] | None = None,
) -> tuple[T | None, Attempt]:
    """``run`` on ``first``, and on one more deployment each ``after_s`` without a result
    (``hedge.max`` more at most): the first result and its attempt, the others cancelled;
    or ``(None, the attempt whose failure decides what comes next)`` when every attempt
    failed. ``run`` gives ``None`` for an attempt that failed (its outcome recorded), never
    raises. ``dispose`` ends a result that is not taken after all (an attempt that got its
    first token in the same step as the winner, or the winner when the caller leaves
    while the race ends): a stream's attempt is left entered by ``run``."""
    hedge = first.group.hedge
    assert isinstance(hedge, Hedge)
    running: dict[asyncio.Task[T | None], Attempt] = {asyncio.ensure_future(run(first)): first}
    left, failed = hedge.max, first
    won: tuple[T, Attempt] | None = None
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
                    won = (result, attempt)
                    return won
                failed = _deciding(call, failed, attempt)
        return None, failed
    finally:
        await _end_losers(router, call, first, running, won, dispose)


def _deciding(call: Call, failed: Attempt, attempt: Attempt) -> Attempt:
    """Of two failed attempts of a race, the one whose failure decides what comes next: a
    failure no retry can help wins over one that can; a refusal (``skip``) of one
    deployment keeps it out of the call's later attempts."""
    error = attempt.error
    if error is None:
        return failed
    kind = verdict(error)
    if kind == "skip":
        call.skipped.add(attempt.pick.deployment.id)
    if failed.error is not None and verdict(failed.error) == "raise" and failed is not attempt:
        return failed
    return attempt


async def _end_losers(
    router: Router,
    call: Call,
    first: Attempt,
    running: dict[asyncio.Task[T | None], Attempt],
    won: tuple[T, Attempt] | None,
    dispose: Callable[[T, Attempt], Awaitable[None]] | None,
) -> None:
    """Cancel the attempts still running, note them (``Route.hedged``, the gateway's bill,
    the p95 they were slower than), and end those with a result nobody takes."""
    answering = won[1] if won is not None else first
    trace = call.trace
    if trace is not None:
        trace.deployment = answering.pick.deployment  # the gateway counts what this one gave
    now = time.perf_counter()
    for task, attempt in running.items():
        task.cancel()
        dep = attempt.pick.deployment
        call.hedged.append(dep.id)
        if trace is not None and attempt is not answering:  # the upstream had the prompt: it bills it
            trace.abandoned.append(dep)
        if attempt.start:  # at least this slow: a sample for the deployment's p95
            stats = router.monitor.stats(dep.id)
            (stats.first_tokens if call.op == "stream" else stats.answers).add(now - attempt.start)
    try:
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    except BaseException:  # the caller left while the losers were ending: the winner ends too
        if won is not None and dispose is not None:
            await dispose(*won)
        raise
    finally:
        if dispose is not None:
            for task, attempt in running.items():  # got a result in the same step as the winner
                if task.done() and not task.cancelled() and task.exception() is None:
                    result = task.result()
                    if result is not None:
                        await dispose(result, attempt)


async def _another(
    router: Router,
    call: Call,
    request: ChatRequest | EmbeddingRequest,
    first: Attempt,
    busy: Iterable[Attempt],
) -> Attempt | None:
    """One more attempt in ``first``'s group, on a deployment none of ``busy`` runs on,
    within the group's retries."""
    if call.used > router.settings.retries:
        return None
    taken = frozenset(attempt.pick.deployment.id for attempt in busy)
    pick = await router.pick(first.group, call, request, may_wait=False, busy=taken)
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
    events: AsyncGenerator[StreamEvent, None] | None = None
    pulled: list[StreamEvent] = []
    try:
        events = attempt.pick.provider.stream(attempt.pick.request)  # type: ignore[arg-type]
        while True:
            try:
                event = await attempt.wait(events.__anext__())
            except StopAsyncIteration:
                raise ended_early(attempt.pick.deployment) from None
            pulled.append(event)
            if isinstance(event, CONTENT) or type(event) is Finish:
                return Primed(events, pulled)
    except BaseException as exc:
        if events is not None:
            with contextlib.suppress(Exception):
                await events.aclose()
        if await attempt.__aexit__(type(exc), exc, exc.__traceback__):
            return None  # failed: recorded, and kept in attempt.error
        raise


async def unprime(primed: Primed | None, attempt: Attempt) -> None:
    """End a primed stream nobody reads (``race``'s ``dispose``): its upstream closed, the
    attempt left as cancelled."""
    if primed is None:
        return
    with contextlib.suppress(Exception):
        await primed.events.aclose()
    gone = asyncio.CancelledError()
    await attempt.__aexit__(type(gone), gone, None)


__all__ = ["Primed", "prime", "race", "threshold_s", "unprime"]
