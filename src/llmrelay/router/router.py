"""The ``Router``: one call to a model group becomes attempts at its deployments.

For each call: walk the group, then its fallbacks. In each group, pick a
deployment (strategy order, untried ones first, skipping open breakers,
cooldowns, rate-limited and disabled ones; waiting within the deadline when
all are busy), attempt it under its timeout, and on a failure decide:

- the request's own fault (``InvalidRequest``, ...): raise it at once;
- this deployment can't (context window, content filter, auth, not found):
  skip it for this call, move on without counting against its health;
- transient (5xx, 429, timeouts, resets): record it (breaker, health,
  cooldown), then retry, on an untried deployment at once or else after the
  backoff, up to ``retries`` more attempts per group, then the fallbacks.

One loop (``_next``) serves chat, embeddings and streams; each attempt is an
``Attempt`` (attempt.py), which counts it, times it and records its outcome.
Streams follow the same path until their first token; events before it are
held back, so a failed attempt leaves no trace. After the first token a
failure ends the stream with ``StreamInterrupted`` and is never retried.
A cancelled caller stops the upstream request at once and nothing is retried
or counted against the deployment.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .. import errors
from ..resilience import CircuitBreaker, CircuitState, Cooldown, Deadline, RateLimiter, RetryPolicy
from ..state.base import StateBackend
from ..state.memory import MemoryState
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
    StreamEvent,
    TextDelta,
    Usage,
)
from ..validation import check_fits
from .attempt import Attempt
from .calls import (
    CONTENT,
    PROBE_RECHECK_S,
    SKIPPED,
    Call,
    Pick,
    ended_early,
    estimate_tokens,
    exhausted,
    pause,
    send_chat,
    send_embed,
    verdict,
)
from .capabilities import skip_unfit
from .checks import HealthChecks, describe
from .embed_batch import EmbedBatcher
from .groups import Deployment, ModelGroup, RoutingSettings, check_groups, fallback_chain
from .health import HealthMonitor
from .race import prime, race, threshold_s, unprime
from .records import AttemptRecord, CallTrace, Hook, Operation
from .resume import Resume, trim_echo
from .strategies import Candidate, Strategy, make_strategy, strategy_names

if TYPE_CHECKING:
    from ..providers.base import Provider

log = logging.getLogger("llmrelay.router")
R = TypeVar("R", ChatResponse, EmbeddingResponse)
Req = TypeVar("Req", ChatRequest, EmbeddingRequest)
ProviderFor = Callable[[str], "Provider"]


class Router(HealthChecks):
    """Routes calls to model groups. Made by ``AsyncClient`` from the config; the
    gateway shares one. ``provider_for(name)`` returns the provider instance
    a deployment names (``ProviderRegistry.get``); with ``check_context_window`` a
    prompt a deployment's model cannot take is refused before sending, and the call
    moves on to a deployment that can take it. ``clock``: the clock of breakers,
    cooldowns, rate windows and health (their own defaults when ``None``)."""

    def __init__(
        self,
        groups: Mapping[str, ModelGroup],
        provider_for: ProviderFor,
        *,
        settings: RoutingSettings | None = None,
        state: StateBackend | None = None,
        hooks: Iterable[Hook] = (),
        check_context_window: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings = settings or RoutingSettings()
        self.groups: dict[str, ModelGroup] = dict(groups)
        if settings.strategy not in strategy_names():
            raise errors.ConfigError(
                f"routing: unknown strategy {settings.strategy!r} (known: {', '.join(strategy_names())})"
            )
        check_groups(self.groups, strategy_names())
        self.state = state if state is not None else MemoryState()
        wall, steady = clock or time.time, clock or time.monotonic  # tests move a fake one instead of sleeping
        self.breaker = CircuitBreaker(settings.circuit_breaker, self.state, wall)
        self.cooldown = Cooldown(self.state, clock=wall)
        self.limiter = RateLimiter(self.state, clock=wall)
        self.monitor = HealthMonitor(self.state, clock=steady)
        self._provider_for = provider_for
        self.check_context_window = check_context_window
        self._rng = random.Random(settings.seed)
        self._policy = RetryPolicy(
            max_attempts=settings.retries + 1,
            base_delay_s=settings.backoff_s,
            max_delay_s=settings.backoff_max_s,
            max_retry_after_s=settings.max_retry_after_s,
            rng=self._rng,
        )
        self._strategies: dict[str, Strategy] = {}
        self._chains: dict[str, list[ModelGroup]] = {}
        self._prices: dict[str, float | None] = {}
        self.hooks: list[Hook] = list(hooks)
        self.telemetry: Any = None
        """Spans for attempts (``telemetry.spans.Telemetry``), set by the client when tracing is on."""
        self._checker: asyncio.Task[None] | None = None
        self._embed_batches = EmbedBatcher()

    # ---- groups and hooks -------------------------------------------------------------------

    def add_group(self, group: ModelGroup, *, check: bool = True) -> None:
        """Add (or replace) a group; its fallbacks must already be known."""
        if check:
            check_groups({**self.groups, group.name: group}, strategy_names())
        self.groups[group.name] = group
        self._chains.clear()

    def remove_group(self, name: str) -> None:
        """Forget a group, and what this process kept about deployments no other group has."""
        group = self.groups.pop(name, None)
        self._strategies.pop(name, None)
        self._chains.clear()
        if group is None:
            return
        still_used = {dep.id for other in self.groups.values() for dep in other.members}
        for dep in group.members:
            if dep.id not in still_used:
                self.monitor.drop(dep.id)
                self._prices.pop(dep.id, None)

    def add_hook(self, hook: Hook) -> None:
        """``hook(record)`` after every attempt (keep it quick; it runs inline)."""
        self.hooks.append(hook)

    def chain(self, name: str) -> list[ModelGroup]:
        found = self._chains.get(name)
        if found is None:
            if name not in self.groups:
                raise errors.NotFound(f"unknown model group {name!r}")
            found = self._chains[name] = fallback_chain(name, self.groups)
        return found

    # ---- calls ------------------------------------------------------------------------------

    async def chat(self, group: str, request: ChatRequest, trace: CallTrace | None = None) -> ChatResponse:
        """``trace``, when given, follows the deployment of the attempt under way."""
        return await self._run(Call("chat", group, self._deadline(), self.chain(group), trace), request, send_chat)

    async def embed(self, group: str, request: EmbeddingRequest, trace: CallTrace | None = None) -> EmbeddingResponse:
        call = Call("embed", group, self._deadline(), self.chain(group), trace)
        return await self._run(call, request, send_embed)

    async def _run(self, call: Call, request: Req, send: Callable[[Provider, Req], Awaitable[R]]) -> R:
        attempt = None
        while (attempt := await self._next(call, request, attempt)) is not None:
            after = threshold_s(self, call, attempt, request) if attempt.group.hedge is not None else None
            if after is None:
                result = await self._complete(attempt, send)
            else:
                result, attempt = await race(self, call, request, attempt, after, partial(self._complete, send=send))
                if result is not None and call.hedged:
                    result.route = attempt.route  # now with the attempts it raced
            if result is not None:
                return result
        raise exhausted(call)

    async def _complete(self, attempt: Attempt, send: Callable[[Provider, Req], Awaitable[R]]) -> R | None:
        """``attempt`` to its answer; ``None`` when it failed (recorded, in ``attempt.error``)."""
        async with attempt:
            sender = self._embed_batches.sender(attempt.group, send) if attempt.call.op == "embed" else send
            result = await attempt.wait(sender(attempt.pick.provider, attempt.pick.request))  # type: ignore[arg-type]
            await attempt.succeeded(result)
            return result
        return None

    async def stream(
        self, name: str, request: ChatRequest, trace: CallTrace | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Events of one answer. Before the first token a failed attempt is
        retried elsewhere unseen; after it, a failure raises ``StreamInterrupted``,
        or, in a group with ``stream_resume``, the answer goes on where it stopped on
        a deployment that can continue it (``resume.py``). ``trace``, when given,
        follows the deployment of the attempt under way."""
        call = Call("stream", name, self._deadline(), self.chain(name), trace)
        attempt = None
        while (attempt := await self._next(call, request, attempt)) is not None:
            after = threshold_s(self, call, attempt, request) if attempt.group.hedge is not None else None
            primed = None
            if after is not None:  # a hedged call: the first attempt to its first token goes on
                primed, attempt = await race(self, call, request, attempt, after, prime, unprime)
                if primed is None:
                    continue
            resume, echo = call.resume, attempt.pick.echo
            if resume is not None:  # what the caller has seen is this attempt's beginning
                attempt.shown.append(TextDelta(resume.text))
            pick = attempt.pick
            async with attempt, aclosing(primed.events if primed else pick.provider.stream(pick.request)) as events:  # type: ignore[arg-type]
                step = events.__anext__ if primed is None else primed.step()
                held, shown, watch = [], attempt.shown, attempt.watch
                assert watch is not None
                finished = False
                while True:
                    watch.begin()  # Attempt.wait, inline: this runs for every event
                    try:
                        event = await step()
                    except StopAsyncIteration:
                        if finished:
                            return
                        raise ended_early(attempt.pick.deployment) from None
                    except asyncio.CancelledError:
                        if not watch.claim():
                            raise
                        if finished:  # the answer is whole; its provider was slow to end the stream
                            return
                        raise attempt.timeout_error(watch) from None
                    finally:
                        watch.waiting = False
                    if finished:
                        continue  # nothing follows a finish
                    if echo and type(event) is TextDelta:
                        text, echo = trim_echo(event.text, echo)
                        if not text:
                            continue
                        event = TextDelta(text)
                    if attempt.ttft is None:  # events before the first token are held back
                        if isinstance(event, CONTENT):
                            attempt.first_token()
                        elif type(event) is not Finish:
                            held.append(event)
                            continue
                        for early in held:
                            shown.append(early)
                            yield early
                    if type(event) is Finish:
                        await attempt.succeeded(event.response)
                        if resume is not None:
                            await resume.finish(attempt, event.response)
                        finished = True
                        yield event
                        continue  # the provider reads its body to the end: its connection goes back to the pool
                    shown.append(event)
                    yield event
            if attempt.ttft is not None and isinstance(attempt.error, errors.StreamInterrupted):
                call.resume = call.resume or Resume()
                if not await call.resume.cut(attempt):
                    raise attempt.error
        if call.resume is not None and call.resume.interruption is not None:
            raise call.resume.give_up(call.trace)  # no deployment could go on: the caller keeps what it saw
        raise exhausted(call)

    async def _next(self, call: Call, request: ChatRequest | EmbeddingRequest, last: Attempt | None) -> Attempt | None:
        """The call's next attempt after ``last`` (which failed), or ``None`` when none is
        left; raises the failure itself when no other attempt can help it."""
        chain = call.chain
        if last is None:
            self._ensure_checker()
        elif last.error is not None:
            if call.resume is not None and verdict(last.error) == "raise":  # refused the continuation
                call.skipped.add(last.pick.deployment.id)
                step: float | None = SKIPPED
            else:
                step = await self._after_failure(last.group, call, last.pick, last.error, call.used)
            if step is None:
                call.stage += 1
                call.used = 0
            else:
                call.used = await pause(step, call.used)
        while call.stage < len(chain):
            group = chain[call.stage]
            if call.used <= self.settings.retries and (call.resume is None or group.stream_resume):
                pick = await self.pick(group, call, request, may_wait=call.stage == len(chain) - 1)
                if pick is not None:
                    call.used += 1
                    return Attempt(self, group, pick, call)
            call.stage += 1
            call.used = 0
        return None

    # ---- choosing a deployment ---------------------------------------------------------------

    async def pick(
        self,
        group: ModelGroup,
        call: Call,
        request: ChatRequest | EmbeddingRequest,
        *,
        may_wait: bool,
        busy: frozenset[str] = frozenset(),
    ) -> Pick | None:
        """The next deployment to attempt, or ``None`` when the group has none left.
        With ``may_wait`` (the last group of the chain: no fallback is left to try),
        waits within the deadline for the earliest deployment to come back. Deployments
        that lack something a chat request needs are left out first (``capabilities.py``),
        and those in ``busy`` (answering this call already: a hedge goes elsewhere)."""
        if isinstance(request, ChatRequest):
            skip_unfit(group.members, call, request, self._provider_for, windows=self.check_context_window)
        for _ in range(100_000):  # each round returns or sleeps until something changes (>= 1 ms)
            if call.deadline.expired():
                return None
            ready: list[Deployment] = []
            checked_bad: list[Deployment] = []
            trusted: set[str] = set()  # forced by hand, or breaker seen closed: no need to ask it
            earliest = math.inf
            for dep in group.members:
                if dep.id in call.skipped or dep.id in busy:
                    continue
                manual, check = await self.monitor.shared(dep.id)
                if manual is False:
                    call.note(dep.id, "taken out of service by hand")
                    continue
                if manual is True:
                    trusted.add(dep.id)
                else:
                    wait, closed = await self._resting(dep, call)
                    if wait > 0:
                        earliest = min(earliest, wait)
                        continue
                    if closed:
                        trusted.add(dep.id)
                (checked_bad if check is not None and not check.ok else ready).append(dep)
            if len(ready) > 1:  # only a choice needs the strategy (and what it looks at)
                candidates = [self._candidate(dep, call.op) for dep in ready]
                ready = [c.deployment for c in self._strategy(group).order(group.name, candidates, self._rng)]
            ordered = [*ready, *checked_bad]
            if call.tried:
                ordered.sort(key=lambda d: d.id in call.tried)  # stable: untried first
            for dep in ordered:
                pick = await self._take(dep, call, request, dep.id in trusted)
                if isinstance(pick, Pick):
                    return pick
                earliest = min(earliest, pick)
            if not math.isinf(earliest):
                call.earliest = earliest
            waiting = may_wait and self.settings.wait_for_capacity and earliest <= self.settings.max_retry_after_s
            if math.isinf(earliest) or not waiting or not call.deadline.allows(earliest):
                return None
            await asyncio.sleep(earliest + 0.001)
        return None

    async def _resting(self, dep: Deployment, call: Call) -> tuple[float, bool]:
        """Seconds until the deployment takes calls again (open breaker, cooldown),
        and whether its breaker is closed."""
        breaker, state = await self.breaker.peek(dep.id)
        if breaker > 0 and state is CircuitState.HALF_OPEN:  # a probe is out: look again soon
            breaker = min(breaker, PROBE_RECHECK_S)
            call.note(dep.id, "circuit breaker half-open: a probe is running")
        elif breaker > 0:
            call.note(dep.id, f"circuit breaker open (retry in {breaker:.1f}s)")
        cooling = await self.cooldown.remaining(dep.id) if self.settings.cooldowns else 0.0
        if cooling > 0:
            call.note(dep.id, f"cooling down after a rate limit ({cooling:.1f}s left)")
        return max(breaker, cooling), state is CircuitState.CLOSED

    async def _take(
        self, dep: Deployment, call: Call, request: ChatRequest | EmbeddingRequest, trusted: bool
    ) -> Pick | float:
        """Claim ``dep`` for an attempt: the pick, or seconds until it could be claimed
        (``inf``: not for this call). ``trusted``: no need to ask the breaker (it was
        just seen closed, or the deployment is forced in service)."""
        try:
            provider = self._provider_for(dep.provider)
            prepared = replace(request, model=dep.model)
            echo = ""
            if call.resume is not None:  # a cut stream, to go on with
                assert isinstance(prepared, ChatRequest)
                going_on = call.resume.going_on(provider, prepared)
                if going_on is None:
                    call.skipped.add(dep.id)
                    call.note(dep.id, f"cannot continue a cut stream (provider kind {provider.kind!r})")
                    return math.inf
                prepared, echo = going_on.request, going_on.echo
            if self.check_context_window and isinstance(prepared, ChatRequest):
                deferred = check_fits(provider, prepared)
                if deferred is not None:
                    await asyncio.to_thread(deferred)
        except errors.LLMError as exc:  # not configured, or the prompt cannot fit here
            call.skipped.add(dep.id)
            call.note(dep.id, describe(exc))
            call.errors.append(exc)
            return math.inf
        tokens, ticket = 0.0, None
        limits = dep.limits
        if limits is not None:
            tokens = estimate_tokens(prepared) if limits.tpm is not None else 0.0
            decision = await self.limiter.acquire(dep.id, tokens, limits)
            if not decision.allowed:
                call.note(dep.id, f"at its rpm/tpm limit (room in {decision.retry_after_s:.1f}s)")
                return decision.retry_after_s
            ticket = decision.ticket
        if not trusted and not await self.breaker.allow(dep.id):
            if ticket is not None:
                await self.limiter.release(dep.id, ticket, tokens)
            call.note(dep.id, "circuit breaker half-open: a probe is running")
            return min(await self.breaker.available_in(dep.id), PROBE_RECHECK_S) or PROBE_RECHECK_S
        return Pick(dep, provider, prepared, ticket, tokens, not trusted, echo)

    def _candidate(self, dep: Deployment, op: Operation) -> Candidate:
        stats = self.monitor.stats(dep.id)
        return Candidate(
            dep,
            self.monitor.score(dep.id),
            stats.ttft_s if op == "stream" else stats.latency_s,
            stats.in_flight,
            self._price(dep),
        )

    def _strategy(self, group: ModelGroup) -> Strategy:
        found = self._strategies.get(group.name)
        if found is None:
            chosen = group.strategy or self.settings.strategy
            found = self._strategies[group.name] = make_strategy(chosen) if isinstance(chosen, str) else chosen
        return found

    def _price(self, dep: Deployment) -> float | None:
        if dep.prices is not None:
            return (dep.prices.input_per_mtok + dep.prices.output_per_mtok) / 2
        if dep.id not in self._prices:
            from ..cost import chat_cost

            try:
                provider = self._provider_for(dep.provider)
                cost = chat_cost(provider.price_provider, dep.model, Usage(1_000_000, 1_000_000))
            except errors.LLMError:
                cost = None
            self._prices[dep.id] = None if cost is None else cost / 2
        return self._prices[dep.id]

    def _deadline(self) -> Deadline:
        budget = self.settings.deadline_s
        return Deadline(budget) if budget is not None else Deadline.never()

    # ---- after a failure ----------------------------------------------------------------

    async def _after_failure(
        self, group: ModelGroup, call: Call, pick: Pick, exc: errors.LLMError, used: int
    ) -> float | None:
        """Seconds to wait before the next attempt in this group, or ``None`` to
        leave the group; raises ``exc`` when no other attempt can help."""
        kind = verdict(exc)
        if kind == "raise":
            raise exc
        if kind == "skip":
            call.skipped.add(pick.deployment.id)
            return SKIPPED
        if call.deadline.expired():
            return None
        for dep in group.members:  # an untried deployment that can take a call now: go at once
            if dep.id not in call.tried and dep.id not in call.skipped and await self._ready_now(dep):
                return 0.0
        return self._policy.decide(used, exc, time.monotonic() - call.start, call.deadline)

    async def _ready_now(self, dep: Deployment) -> bool:
        """Whether ``dep`` could take a call right now (changes nothing)."""
        manual, _ = await self.monitor.shared(dep.id)
        if manual is not None:
            return manual
        wait, _ = await self.breaker.peek(dep.id)
        if wait > 0 or (self.settings.cooldowns and await self.cooldown.remaining(dep.id) > 0):
            return False
        limits = dep.limits
        return limits is None or (await self.limiter.check(dep.id, 0.0, limits)).allowed

    def emit(self, record: AttemptRecord) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "attempt group=%s deployment=%s op=%s n=%d outcome=%s latency_ms=%.1f error=%s",
                record.group, record.deployment, record.operation, record.number, record.outcome,
                record.latency_s * 1000, record.error or "-",
            )  # fmt: skip
        for hook in self.hooks:
            try:
                hook(record)
            except Exception:
                log.exception("attempt hook %r failed", hook)

    async def aclose(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            try:
                await self._checker
            except (asyncio.CancelledError, RuntimeError):
                pass
            self._checker = None


__all__ = ["Router", "verdict"]
