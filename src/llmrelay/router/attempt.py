"""``Attempt``: one try at one deployment, for chat, embeddings and streams alike.

An attempt is an async context manager. Entering it counts the attempt, marks
the deployment busy and starts its timers; ``wait`` awaits the provider under
those timers (a limit that runs out becomes ``errors.Timeout``); leaving it
records the outcome exactly once, whatever happened inside:

- ``succeeded(result)`` was called: the breaker, health, rate-limit settlement
  and hooks hear of the success;
- an exception: it becomes an ``LLMError`` (a break after the first token of a
  stream, ``StreamInterrupted`` with the partial answer), is recorded against
  the deployment, and is kept in ``error`` for the router to decide what comes
  next; the ``async with`` block does not raise it;
- cancelled, or the caller stopped reading a stream: the attempt holds nothing
  more (probe slot, rate-limit reservation) and is counted against no one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .. import errors
from ..types import ChatResponse, EmbeddingResponse, Route, StreamEvent, Usage
from .calls import NO_VERDICT, Call, Pick, as_llm_error, interrupted
from .checks import describe
from .records import AttemptRecord, Outcome
from .watch import StreamWatch

if TYPE_CHECKING:
    from .groups import ModelGroup
    from .router import Router

log = logging.getLogger("llmrelay.router")
T = TypeVar("T")


class Attempt:
    """One attempt of ``call`` at ``pick``'s deployment in ``group``."""

    __slots__ = (
        "call", "error", "group", "number", "outcome", "pick", "result", "resumable", "router", "shown", "span",
        "start", "stream", "ttft", "watch",
    )  # fmt: skip

    def __init__(self, router: Router, group: ModelGroup, pick: Pick, call: Call) -> None:
        self.router = router
        self.group = group
        self.pick = pick
        self.call = call
        self.stream = call.op == "stream"
        self.number = 0
        self.start = 0.0
        self.ttft: float | None = None
        self.outcome: Outcome | None = None
        self.error: errors.LLMError | None = None
        self.resumable = False  # a stream cut for a reason worth another attempt (``resume.py``)
        self.shown: list[StreamEvent] = []  # what a stream's caller saw: its partial answer if it breaks
        self.watch: StreamWatch | None = None
        self.result: ChatResponse | EmbeddingResponse | None = None
        self.span: Any = None  # the attempt's trace span, with telemetry on (``router.telemetry``)

    # ---- running ---------------------------------------------------------------------------

    async def __aenter__(self) -> Attempt:
        if self.watch is not None:
            return self  # entered already: a hedged stream's winner, read to its first token elsewhere
        call, dep = self.call, self.pick.deployment
        call.attempts += 1
        self.number = call.attempts
        if call.trace is not None:
            call.trace.deployment = dep
        self.router.monitor.stats(dep.id).in_flight += 1
        settings = self.router.settings
        first = call.deadline.timeout_for(dep.timeout_s or settings.timeout_s)
        self.watch = StreamWatch(first, settings.stream_idle_s if self.stream else None)
        if self.router.telemetry is not None:
            self.span = self.router.telemetry.attempt_start(self)
        self.start = time.perf_counter()
        return self

    async def wait(self, step: Awaitable[T]) -> T:
        """Await the provider under the attempt's time limits."""
        watch = self.watch
        assert watch is not None, "Attempt.wait outside its async with"
        watch.begin()
        try:
            return await step
        except asyncio.CancelledError:
            if not watch.claim():
                raise
            raise self.timeout_error(watch) from None
        finally:
            watch.waiting = False

    def first_token(self) -> None:
        """The stream's first content arrived: from now on a failure interrupts it."""
        self.ttft = time.perf_counter() - self.start
        if self.watch is not None:
            self.watch.first_token()

    @property
    def route(self) -> Route:
        call = self.call
        hedged = tuple(call.hedged) if call.hedged else ()
        return Route(call.requested, self.group.name, self.pick.deployment.id, call.attempts, hedged=hedged)

    async def succeeded(self, result: ChatResponse | EmbeddingResponse) -> None:
        """The answer came: route and cost go on it, and the deployment is credited."""
        dep = self.pick.deployment
        self.outcome = "ok"
        self.result = result
        result.route = self.route
        if dep.prices is not None:
            result.cost_usd = dep.prices.cost(result.usage)
        await self._record_success(result.usage, time.perf_counter() - self.start)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            return await self._end(exc)
        finally:
            if self.span is not None:
                self.router.telemetry.attempt_end(self.span, self)
                self.span = None

    async def _end(self, exc: BaseException | None) -> bool:
        """Record the outcome; ``True`` when ``exc`` was turned into ``self.error`` (swallowed)."""
        latency = time.perf_counter() - self.start
        if self.watch is not None:
            self.watch.close()
        dep = self.pick.deployment
        self.router.monitor.stats(dep.id).in_flight -= 1
        if self.outcome == "ok":
            return False
        if not isinstance(exc, Exception):  # cancelled, or the caller closed the stream
            self.outcome = "cancelled"
            await self._record_cancel(latency)
            return False
        error = as_llm_error(exc, dep)
        if self.ttft is not None:
            error = interrupted(error, self.shown, dep, self.route)
            self.resumable = error.transient
        elif isinstance(error, errors.StreamInterrupted):  # nothing was shown: not an interruption
            error = errors.ProviderError(
                f"stream broke before its first token: {error.message}", provider=error.provider, body=error.body
            )
        if error is not exc:
            error.__cause__ = exc
            error.__suppress_context__ = True
        self.outcome = "interrupted" if isinstance(error, errors.StreamInterrupted) else "error"
        self.error = error
        await self._record_failure(error, latency)
        return True

    # ---- recording -------------------------------------------------------------------------

    async def _record_success(self, usage: Usage, latency: float) -> None:
        router, pick = self.router, self.pick
        dep = pick.deployment
        router.monitor.observe(dep.id, True, latency_s=latency, ttft_s=self.ttft)
        try:
            await router.breaker.record_success(dep.id)
            if pick.ticket is not None and pick.tokens:
                await router.limiter.settle(dep.id, pick.tokens, usage.total_tokens, ticket=pick.ticket)
        except errors.StateUnavailable as exc:  # the answer came: it goes to the caller all the same
            log.warning("%s answered but its state could not be updated: %s", dep.id, exc.message)
        if router.hooks or log.isEnabledFor(logging.DEBUG):
            router.emit(self._record("ok", latency))

    async def _record_failure(self, exc: errors.LLMError, latency: float) -> None:
        router, pick, call = self.router, self.pick, self.call
        dep = pick.deployment
        if isinstance(exc, errors.Timeout) and call.trace is not None:
            call.trace.abandoned.append(dep)  # it had the prompt; it may go on (and bill) without us
        try:
            if isinstance(exc, errors.Timeout) and call.deadline.expired():
                counted = False  # cut short by the call's own budget: says nothing about the deployment
                await self._release_probe()
            else:
                counted = await router.breaker.record_error(dep.id, exc)
            if counted:
                router.monitor.observe(dep.id, False, error=type(exc).__name__)
            if isinstance(exc, errors.RateLimited) and router.settings.cooldowns:
                await router.cooldown.start(dep.id, exc.retry_after or router.settings.cooldown_s)
            if pick.ticket is not None and pick.tokens:
                await router.limiter.settle(dep.id, pick.tokens, 0.0, ticket=pick.ticket)
        except errors.StateUnavailable as down:  # the call's own error is what the caller must see
            log.warning("the failure of %s could not be recorded: %s", dep.id, down.message)
        router.monitor.note_error(dep.id, type(exc).__name__, exc.message)
        call.tried.add(dep.id)
        call.note(dep.id, describe(exc))
        call.errors.append(exc)
        assert self.outcome is not None
        router.emit(self._record(self.outcome, latency, exc))

    async def _record_cancel(self, latency: float) -> None:
        router, pick = self.router, self.pick
        dep = pick.deployment
        try:
            await self._release_probe()
            if pick.ticket is not None and pick.tokens:
                await router.limiter.settle(dep.id, pick.tokens, 0.0, ticket=pick.ticket)
        except errors.StateUnavailable as down:
            log.warning("the cancelled attempt at %s could not be recorded: %s", dep.id, down.message)
        router.emit(self._record("cancelled", latency))

    async def _release_probe(self) -> None:
        """Free a half-open probe slot taken for an attempt that gave no verdict."""
        if self.pick.probe:
            await self.router.breaker.record_error(self.pick.deployment.id, NO_VERDICT)

    def _record(self, outcome: Outcome, latency: float, exc: errors.LLMError | None = None) -> AttemptRecord:
        dep = self.pick.deployment
        ttft = self.ttft if outcome != "cancelled" else None
        if exc is None:
            return AttemptRecord(
                self.group.name, dep.id, dep.provider, dep.model, self.call.op, self.number, outcome, latency, ttft
            )
        return AttemptRecord(
            self.group.name, dep.id, dep.provider, dep.model, self.call.op, self.number, outcome, latency, ttft,
            type(exc).__name__, exc.message[:300], exc.status_code,
        )  # fmt: skip

    # ---- errors ----------------------------------------------------------------------------

    def timeout_error(self, watch: StreamWatch) -> errors.Timeout:
        """The error for a time limit that ran out while waiting on the provider."""
        dep, call = self.pick.deployment, self.call
        started = self.ttft is not None
        if not started and call.deadline.expired():
            budget = call.deadline.budget_s
            return errors.Timeout(
                f"no answer from {dep.id} before the deadline of {budget:g}s (routing.deadline_s) ran out",
                provider=dep.provider, retryable=False,
            )  # fmt: skip
        what = ("next event" if started else "first token") if self.stream else "answer"
        return errors.Timeout(f"no {what} from {dep.id} within {watch.limit_s or 0:g}s", provider=dep.provider)
