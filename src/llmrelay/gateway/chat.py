"""The flows every model route shares. Chat: admit, ask (through the cache and the
router), bill, settle; the routes (OpenAI chat completions, completions and
Responses, Anthropic Messages, Gemini generateContent) decode their wire format
into a ``ChatRequest`` and give their answer's encoder; this module decides what
the request holds and what it is charged. Embeddings and token counts have their
shorter flows here too (``serve_embedding``, ``serve_count``).

What is charged is what the upstream will charge: the answer's usage at the
price of the deployment that gave it. Where the upstream reported no usage (a
stream cut short, one the client left, a server that sends none), the tokens are
counted here (billing.counted_usage) from the prompt and what was given, so a
client leaving mid-answer pays for the answer so far, and no answer is free
because its usage went missing. Attempts the router gave up on (timed out) add
their prompts. Answers the cache gave (hits, shared flights) cost nothing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from .. import errors
from ..cache import DEFAULT_OPTIONS
from ..router.records import CallTrace
from ..types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Finish, Route, StreamEvent, Usage
from .billing import counted_usage
from .caching import announce, note_answer, options_for
from .exchange import Exchange
from .http import HTTPError
from .metrics import RequestFacts
from .streaming import Encoder, relay

if TYPE_CHECKING:
    from .app import Gateway

Events = AsyncGenerator[StreamEvent, None]
PRICED_TIERS = frozenset(("auto", "default", "standard_only", "flex", "standard", "service_tier_unspecified"))
"""``service_tier`` (``serviceTier``) values billed at (or below) the rates the gateway
charges, in any case; others (``priority``, ``scale``) cost more upstream than the
gateway would charge."""


async def serve_chat(
    gw: Gateway,
    ex: Exchange,
    request: ChatRequest,
    *,
    stream: bool,
    encoder: Callable[[], Encoder],
    to_wire: Callable[[ChatResponse], Awaitable[dict[str, Any]]],
    on_finish: Callable[[ChatResponse], Awaitable[None]] | None = None,
) -> None:
    """Answer ``request`` as JSON (``to_wire`` builds the body) or as a stream
    (``encoder`` makes its encoder; ``on_finish(answer)`` runs as the whole answer
    comes, before the stream's last event goes out: to keep it where the next request
    finds it)."""
    for field in ("service_tier", "serviceTier"):  # OpenAI's and Anthropic's; Gemini's
        tier = request.extra.get(field)
        if tier is not None and (not isinstance(tier, str) or tier.lower() not in PRICED_TIERS):
            raise HTTPError(
                400, f"'{field}' {repr(tier)[:40]} is not served here: it is billed at other rates than the "
                f"gateway's (use one of {', '.join(sorted(PRICED_TIERS))})", param=field,
            )  # fmt: skip
    group = gw.group_for(request.model)
    facts = ex.facts
    facts.model, facts.group = request.model, group
    ticket = await gw.admit(ex, group, request, request.model)
    cache = options_for(ex) if gw.client.caches(group) else DEFAULT_OPTIONS
    trace = CallTrace()
    try:
        if stream:  # (inline, not a coroutine of its own: every event of the stream resumes this frame)
            given: list[StreamEvent] = []
            billed = False

            async def bill() -> None:
                """What was given is charged before the stream's last bytes, or as soon as it
                ends short (the client left, the upstream broke); once made, never again."""
                nonlocal billed
                if not billed:
                    await charge(gw, facts, request, trace, given)
                    await charge_abandoned(gw, facts, request, trace)
                    billed = True  # only once made: a client leaving mid-count has it made again, whole

            events = gw.client.send_stream(group, request, cache=cache, trace=trace)
            if on_finish is not None:
                events = _before_finish(events, on_finish)
            try:
                await relay(
                    events, encoder(), ex.receive, ex.send, facts, given, bill, gw.scrub.error,
                    gw.server_limits.write_timeout_s,
                )  # fmt: skip
            finally:
                await bill()
            return
        try:
            response = await gw.client.send(group, request, cache=cache, trace=trace)
        except errors.LLMError:
            await charge_abandoned(gw, facts, request, trace)
            raise
        note_answer(facts, response)
        facts.upstream_s = response.latency_s
        if _unreported(facts):
            await charge(gw, facts, request, trace, [Finish(response.finish_reason, response)])
        await charge_abandoned(gw, facts, request, trace)
        payload = await to_wire(response)
        if response.cache is not None:
            announce(ex, response.cache)
        await ex.reply(200, payload, route_headers(response.route))
    finally:
        await gw.settle(ticket, facts)


async def serve_embedding(gw: Gateway, ex: Exchange, request: EmbeddingRequest) -> EmbeddingResponse:
    """The embeddings flow every embeddings route shares: admit, send, note, settle; the
    route encodes the answer in its format."""
    group = gw.group_for(request.model)
    facts = ex.facts
    facts.model, facts.group = request.model, group
    ticket = await gw.admit(ex, group, request, request.model)
    try:
        response = await gw.client.send(group, request)
        facts.answered(response.usage, response.cost_usd, response.route)
        facts.upstream_s = response.latency_s
    finally:
        await gw.settle(ticket, facts)
    return response


async def serve_count(gw: Gateway, ex: Exchange, request: ChatRequest) -> int:
    """The token-count flow (Anthropic's and Gemini's count routes): admitted against rate
    limits and recorded with no tokens and no cost like the model routes; a long prompt is
    counted in a worker thread, off the event loop."""
    group = gw.group_for(request.model)  # unknown models are a 404 here too
    ex.facts.model, ex.facts.group = request.model, group
    ticket = await gw.admit(ex, group, request, request.model, tokens=0.0)
    try:
        return await gw.count_tokens(request)
    finally:
        await gw.settle(ticket, ex.facts)


async def _before_finish(events: Events, action: Callable[[ChatResponse], Awaitable[None]]) -> Events:
    """``events``, running ``action`` on the answer before its ``Finish`` goes on."""
    async with aclosing(events):
        async for event in events:
            if type(event) is Finish:
                await action(event.response)
            yield event


def _unreported(facts: RequestFacts) -> bool:
    """The answer came without usage (its tokens must be counted here)."""
    usage = facts.usage
    return usage is None or not (usage.prompt_tokens or usage.completion_tokens)


async def charge_abandoned(gw: Gateway, facts: RequestFacts, request: ChatRequest, trace: CallTrace) -> None:
    """Add the prompts of the attempts the router gave up on (timed out) to what the
    request is charged: each upstream had the prompt and bills it."""
    abandoned = trace.abandoned
    if not abandoned:
        return
    usage = facts.usage
    prompt = usage.prompt_tokens if usage is not None and usage.prompt_tokens else 0
    if not prompt:
        try:
            kind = gw.client.provider(abandoned[0].provider).config.kind
        except errors.LLMError:
            return
        prompt = (await counted_usage(kind, abandoned[0].model, request, None, None)).prompt_tokens
    extra = Usage(prompt * len(abandoned), 0)
    costs = [gw.prices.cost(dep, Usage(prompt, 0)) for dep in abandoned]
    trace.abandoned = []  # charged once (only now: a count cut short is made again)
    facts.usage = extra if usage is None else usage + extra
    known = [c for c in costs if c is not None]
    if known:
        facts.cost_usd = (facts.cost_usd or 0.0) + sum(known)


def route_headers(route: Route | None) -> dict[str, str]:
    """Which deployment and group answered, after how many attempts."""
    if route is None:
        return {}
    return {
        "x-llmrelay-deployment": route.deployment,
        "x-llmrelay-group": route.group,
        "x-llmrelay-attempts": str(route.attempts),
    }


async def charge(
    gw: Gateway, facts: RequestFacts, request: ChatRequest, trace: CallTrace, given: list[StreamEvent]
) -> None:
    """Make ``facts`` hold what the upstream charges for this request (see the module
    docstring); nothing to do when the answer came with its usage, or from the cache."""
    last = given[-1] if given else None
    response = last.response if type(last) is Finish else None
    if response is not None and response.cache is not None and response.cache.free:
        return  # a cache hit or a shared flight: nothing was spent for this caller
    if not _unreported(facts):
        return  # the upstream's own figures
    if trace.handed_over or facts.cache in ("hit", "semantic_hit"):
        return  # another caller of a shared stream pays for it, or the cache answered
    if response is None and not facts.disconnected and not given:
        return  # failed before it began: the error, not an answer, is what the caller got
    shared = trace.deployment is None  # given by a shared stream its starter left: the last caller to leave pays
    if shared and not given:
        return  # no attempt was made (refused before it)
    dep = gw.prices.dearest(facts.group) if shared else trace.deployment
    if dep is None:
        return
    try:
        kind = gw.client.provider(dep.provider).config.kind
    except errors.LLMError:
        return
    counted = await counted_usage(kind, dep.model, request, None if response is not None else given, response)
    facts.usage = counted
    facts.cost_usd = gw.prices.cost(dep, counted)
    if not shared:
        facts.deployment = facts.deployment or dep.id
    if facts.disconnected:
        facts.error = "client_disconnected"


__all__ = ["charge", "route_headers", "serve_chat", "serve_count", "serve_embedding"]
