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
from typing import TYPE_CHECKING, TypeVar

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
    Route,
    StreamEvent,
    Usage,
)
from .calls import (
    CONTENT,
    NO_VERDICT,
    PROBE_RECHECK_S,
    SKIPPED,
    Call,
    Pick,
    as_llm_error,
    estimate_tokens,
    interrupted,
    pause,
    send_chat,
    send_embed,
    verdict,
)
from .checks import HealthChecks, describe
from .embed_batch import EmbedBatcher
from .groups import Deployment, ModelGroup, RoutingSettings, check_groups, fallback_chain
from .health import HealthMonitor
from .records import AttemptRecord, CallTrace, Hook, Operation, Outcome
from .strategies import Candidate, Strategy, make_strategy, strategy_names
from .watch import StreamWatch

if TYPE_CHECKING:
    from ..providers.base import Provider

log = logging.getLogger("llmrelay.router")
R = TypeVar("R", ChatResponse, EmbeddingResponse)
Req = TypeVar("Req", ChatRequest, EmbeddingRequest)
ProviderFor = Callable[[str], "Provider"]
FitCheck = Callable[["Provider", ChatRequest], Callable[[], None] | None]
"""Raises ``ContextWindowExceeded`` for a request that cannot fit, or returns the count
that decides it for a prompt too long to count on the event loop (run in a thread)."""


class Router(HealthChecks):
    """Routes calls to model groups. Made by ``AsyncClient`` from the config; the
    gateway shares one. ``provider_for(name)`` returns the provider instance
    a deployment names; ``check_fits`` raises ``ContextWindowExceeded`` for a
    request a deployment's model cannot take (checked before sending)."""

    def __init__(
        self,
        groups: Mapping[str, ModelGroup],
        provider_for: ProviderFor,
        *,
        settings: RoutingSettings | None = None,
        state: StateBackend | None = None,
        hooks: Iterable[Hook] = (),
        check_fits: FitCheck | None = None,
    ) -> None:
        self.settings = settings = settings or RoutingSettings()
        self.groups: dict[str, ModelGroup] = dict(groups)
        if settings.strategy not in strategy_names():
            raise errors.ConfigError(
                f"routing: unknown strategy {settings.strategy!r} (known: {', '.join(strategy_names())})"
            )
        check_groups(self.groups, strategy_names())
        self.state = state if state is not None else MemoryState()
        self.breaker = CircuitBreaker(settings.circuit_breaker, self.state)
        self.cooldown = Cooldown(self.state)
        self.limiter = RateLimiter(self.state)
        self.monitor = HealthMonitor(self.state)
        self._provider_for = provider_for
        self._check_fits = check_fits
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
        self._hooks: list[Hook] = list(hooks)
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
        self._hooks.append(hook)

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
        return await self._run("chat", group, request, send_chat, trace)

    async def embed(self, group: str, request: EmbeddingRequest, trace: CallTrace | None = None) -> EmbeddingResponse:
        return await self._run("embed", group, request, send_embed, trace)

    async def _run(
        self,
        op: Operation,
        name: str,
        request: Req,
        send: Callable[[Provider, Req], Awaitable[R]],
        trace: CallTrace | None,
    ) -> R:
        self._ensure_checker()
        chain = self.chain(name)
        call = Call(op, name, self._deadline(), chain, trace)
        for group in chain:
            used = 0
            group_send = self._embed_batches.sender(group, send) if op == "embed" else send
            while used <= self.settings.retries:
                pick = await self._pick(group, call, request, may_wait=group is chain[-1])
                if pick is None:
                    break
                used += 1
                try:
                    result = await self._attempt(group, pick, call, group_send)
                except errors.LLMError as exc:
                    step = await self._after_failure(group, call, pick, exc, used)
                    if step is None:
                        break
                    used = await pause(step, used)
                    continue
                result.route = Route(name, group.name, pick.deployment.id, call.attempts)
                return result
        raise self._exhausted(call)

    async def _attempt(
        self, group: ModelGroup, pick: Pick, call: Call, send: Callable[[Provider, Req], Awaitable[R]]
    ) -> R:
        dep = pick.deployment
        stats = self.monitor.stats(dep.id)
        call.attempts += 1
        number = call.attempts
        stats.in_flight += 1
        start = time.perf_counter()
        try:
            limit = call.deadline.timeout_for(dep.timeout_s or self.settings.timeout_s)
            watch = StreamWatch(limit, None)  # one timer, cheaper than asyncio.timeout
            try:
                watch.begin()
                result = await send(pick.provider, pick.request)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                if not watch.claim():
                    raise
                raise self._timeout_error(dep, call, limit) from None
            finally:
                watch.close()
        except asyncio.CancelledError:
            await self._cancelled(group, pick, call, time.perf_counter() - start, number)
            raise
        except Exception as raw:
            exc = as_llm_error(raw, dep)
            await self._failed(group, pick, call, exc, time.perf_counter() - start, number)
            if exc is raw:
                raise
            raise exc from raw
        finally:
            stats.in_flight -= 1
        if dep.prices is not None:
            result.cost_usd = dep.prices.cost(result.usage)
        await self._succeeded(group, pick, call, result.usage, time.perf_counter() - start, None, number)
        return result

    async def stream(
        self, name: str, request: ChatRequest, trace: CallTrace | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Events of one answer. Before the first token a failed attempt is
        retried elsewhere unseen; after it, a failure raises ``StreamInterrupted``.
        ``trace``, when given, follows the deployment of the attempt under way."""
        self._ensure_checker()
        chain = self.chain(name)
        call = Call("stream", name, self._deadline(), chain, trace)
        for group in chain:
            used = 0
            while used <= self.settings.retries:
                pick = await self._pick(group, call, request, may_wait=group is chain[-1])
                if pick is None:
                    break
                used += 1
                dep = pick.deployment
                stats = self.monitor.stats(dep.id)
                call.attempts += 1
                number = call.attempts
                start = time.perf_counter()
                ttft: float | None = None
                held: list[StreamEvent] = []
                shown: list[StreamEvent] = []  # assembled only if the stream breaks
                outcome: Outcome | None = None
                wait_s: float | None = None
                stats.in_flight += 1
                watch: StreamWatch | None = None
                try:
                    first = call.deadline.timeout_for(dep.timeout_s or self.settings.timeout_s)
                    watch = StreamWatch(first, self.settings.stream_idle_s)
                    async with aclosing(pick.provider.stream(pick.request)) as events:  # type: ignore[arg-type]
                        step = events.__anext__
                        while True:
                            watch.begin()
                            try:
                                event = await step()
                            except StopAsyncIteration:
                                break
                            except asyncio.CancelledError:
                                if not watch.claim():
                                    raise
                                raise self._idle_error(dep, call, watch, ttft is not None) from None
                            finally:
                                watch.waiting = False
                            if ttft is None:
                                if isinstance(event, CONTENT):
                                    ttft = time.perf_counter() - start
                                    watch.first_token()
                                    for early in held:
                                        shown.append(early)
                                        yield early
                                    held.clear()
                                elif type(event) is not Finish:
                                    held.append(event)
                                    continue
                                else:  # an answer with no content at all: what was held goes first
                                    for early in held:
                                        yield early
                            if type(event) is Finish:
                                outcome = "ok"
                                event.response.route = Route(name, group.name, dep.id, call.attempts)
                                if dep.prices is not None:
                                    event.response.cost_usd = dep.prices.cost(event.response.usage)
                                await self._succeeded(
                                    group, pick, call, event.response.usage, time.perf_counter() - start, ttft, number
                                )
                            else:
                                shown.append(event)
                            yield event
                    if outcome is None:  # the provider ended without a Finish: not an answer
                        raise errors.ProviderError("the stream ended without finishing", provider=dep.provider)
                    return
                except Exception as raw:
                    outcome = "error"
                    exc = as_llm_error(raw, dep)
                    latency = time.perf_counter() - start
                    if ttft is not None:
                        failure = interrupted(exc, shown, dep, Route(name, group.name, dep.id, call.attempts))
                        await self._failed(group, pick, call, failure, latency, number, ttft)
                        raise failure from (None if failure is raw else raw)
                    if isinstance(exc, errors.StreamInterrupted):  # nothing was shown: not an interruption
                        exc = errors.ProviderError(f"stream broke before its first token: {exc.message}",
                                                   provider=exc.provider, body=exc.body)  # fmt: skip
                    await self._failed(group, pick, call, exc, latency, number)
                    wait_s = await self._after_failure(group, call, pick, exc, used)
                finally:
                    if watch is not None:
                        watch.close()
                    stats.in_flight -= 1
                    if outcome is None:  # the caller cancelled or stopped reading
                        await self._cancelled(group, pick, call, time.perf_counter() - start, number)
                # only a failure before the first token gets here: the stream may go on elsewhere
                if wait_s is None:
                    break
                used = await pause(wait_s, used)
        raise self._exhausted(call)

    # ---- choosing a deployment ---------------------------------------------------------------

    async def _pick(
        self, group: ModelGroup, call: Call, request: ChatRequest | EmbeddingRequest, *, may_wait: bool
    ) -> Pick | None:
        """The next deployment to attempt, or ``None`` when the group has none left.
        With ``may_wait`` (the last group of the chain: no fallback is left to try),
        waits within the deadline for the earliest deployment to come back."""
        for _ in range(100_000):  # each round returns or sleeps until something changes (>= 1 ms)
            if call.deadline.expired():
                return None
            ready: list[Deployment] = []
            checked_bad: list[Deployment] = []
            trusted: set[str] = set()  # forced by hand, or breaker seen closed: no need to ask it
            earliest = math.inf
            for dep in group.members:
                if dep.id in call.skipped:
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
            if self._check_fits is not None and isinstance(prepared, ChatRequest):
                deferred = self._check_fits(provider, prepared)
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
        if call.trace is not None:
            call.trace.deployment = dep
        return Pick(dep, provider, prepared, ticket, tokens, not trusted)

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

    # ---- outcomes ---------------------------------------------------------------------------

    async def _succeeded(
        self,
        group: ModelGroup,
        pick: Pick,
        call: Call,
        usage: Usage,
        latency: float,
        ttft: float | None,
        number: int,
    ) -> None:
        dep = pick.deployment
        self.monitor.observe(dep.id, True, latency_s=latency, ttft_s=ttft)
        try:
            await self.breaker.record_success(dep.id)
            if pick.ticket is not None and pick.tokens:
                await self.limiter.settle(dep.id, pick.tokens, usage.total_tokens, ticket=pick.ticket)
        except errors.StateUnavailable as exc:  # the answer came: it goes to the caller all the same
            log.warning("%s answered but its state could not be updated: %s", dep.id, exc.message)
        if self._hooks or log.isEnabledFor(logging.DEBUG):
            self._emit(AttemptRecord(group.name, dep.id, dep.provider, dep.model, call.op, number, "ok", latency, ttft))

    async def _failed(
        self,
        group: ModelGroup,
        pick: Pick,
        call: Call,
        exc: BaseException,
        latency: float,
        number: int,
        ttft: float | None = None,
    ) -> None:
        dep = pick.deployment
        if isinstance(exc, errors.Timeout) and call.trace is not None:
            call.trace.abandoned.append(dep)  # it had the prompt; it may go on (and bill) without us
        try:
            if isinstance(exc, errors.Timeout) and call.deadline.expired():
                counted = False  # cut short by the call's own budget: says nothing about the deployment
                await self._release_probe(pick)
            else:
                counted = await self.breaker.record_error(dep.id, exc)
            if counted:
                self.monitor.observe(dep.id, False, error=type(exc).__name__)
            if isinstance(exc, errors.RateLimited) and self.settings.cooldowns:
                await self.cooldown.start(dep.id, exc.retry_after or self.settings.cooldown_s)
            if pick.ticket is not None and pick.tokens:
                await self.limiter.settle(dep.id, pick.tokens, 0.0, ticket=pick.ticket)
        except errors.StateUnavailable as down:  # the call's own error is what the caller must see
            log.warning("the failure of %s could not be recorded: %s", dep.id, down.message)
        call.tried.add(dep.id)
        if isinstance(exc, errors.LLMError):
            call.note(dep.id, describe(exc))
            call.errors.append(exc)
        outcome: Outcome = "interrupted" if isinstance(exc, errors.StreamInterrupted) else "error"
        status = exc.status_code if isinstance(exc, errors.LLMError) else None
        message = exc.message if isinstance(exc, errors.LLMError) else str(exc)
        record = AttemptRecord(
            group.name, dep.id, dep.provider, dep.model, call.op, number, outcome, latency, ttft,
            type(exc).__name__, message[:300], status,
        )  # fmt: skip
        self._emit(record)

    async def _cancelled(self, group: ModelGroup, pick: Pick, call: Call, latency: float, number: int) -> None:
        dep = pick.deployment
        try:
            await self._release_probe(pick)
            if pick.ticket is not None and pick.tokens:
                await self.limiter.settle(dep.id, pick.tokens, 0.0, ticket=pick.ticket)
        except errors.StateUnavailable as down:
            log.warning("the cancelled attempt at %s could not be recorded: %s", dep.id, down.message)
        self._emit(AttemptRecord(group.name, dep.id, dep.provider, dep.model, call.op, number, "cancelled", latency))

    async def _release_probe(self, pick: Pick) -> None:
        """Free a half-open probe slot taken for an attempt that gave no verdict."""
        if pick.probe:
            await self.breaker.record_error(pick.deployment.id, NO_VERDICT)

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

    def _exhausted(self, call: Call) -> errors.LLMError:
        """The error for a call no deployment answered."""
        last = call.last_error
        members = {dep.id for group in call.chain for dep in group.members}
        if last is not None and len(members) == 1:
            return last  # one deployment only: its own error says it best
        tried = list(call.notes.items())
        listing = "; ".join(f"{dep}: {why}" for dep, why in tried) or "no deployment"
        if call.deadline.expired():
            return errors.Timeout(
                f"model group {call.requested!r}: deadline of {call.deadline.budget_s:g}s spent after "
                f"{call.attempts} attempt(s): {listing}",
                retryable=False,
            )
        if (
            last is not None
            and verdict(last) == "skip"
            and members <= call.skipped
            and all(type(e) is type(last) for e in call.errors)
        ):
            return last  # every deployment refused the request for the same reason (e.g. it is too long)
        error = errors.NoHealthyDeployment(
            f"model group {call.requested!r}: no deployment could answer after {call.attempts} attempt(s): {listing}",
            tried=tried,
            last_error=last,
            body=last.body if last is not None else None,
            retry_after=call.earliest,
        )
        error.__cause__ = last
        return error

    def _timeout_error(self, dep: Deployment, call: Call, limit: float | None) -> errors.Timeout:
        if call.deadline.expired():
            return self._deadline_error(dep, call)
        return errors.Timeout(f"no answer from {dep.id} within {limit or 0:g}s", provider=dep.provider)

    def _idle_error(self, dep: Deployment, call: Call, watch: StreamWatch, started: bool) -> errors.Timeout:
        if not started and call.deadline.expired():
            return self._deadline_error(dep, call)
        what = "next event" if started else "first token"
        return errors.Timeout(f"no {what} from {dep.id} within {watch.limit_s or 0:g}s", provider=dep.provider)

    @staticmethod
    def _deadline_error(dep: Deployment, call: Call) -> errors.Timeout:
        budget = call.deadline.budget_s
        return errors.Timeout(
            f"no answer from {dep.id} before the deadline of {budget:g}s (routing.deadline_s) ran out",
            provider=dep.provider, retryable=False,
        )  # fmt: skip

    def _emit(self, record: AttemptRecord) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "attempt group=%s deployment=%s op=%s n=%d outcome=%s latency_ms=%.1f error=%s",
                record.group, record.deployment, record.operation, record.number, record.outcome,
                record.latency_s * 1000, record.error or "-",
            )  # fmt: skip
        for hook in self._hooks:
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
