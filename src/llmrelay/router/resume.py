"""Stream continuation (``stream_resume`` on a group): a stream cut after its first
token goes on from where it stopped, on a deployment that can continue an answer.

The caller sees one stream: the text already shown is sent again only as the
beginning of the answer the next deployment continues (``Provider.continuation``),
never to the caller; what that deployment writes first again of it (``echo``: white
space a prefill cannot end with) is dropped once. The ``Finish`` carries the whole
text, the usage and cost of every attempt (a cut one is counted here: its prompt and
the text it gave), and the deployments whose streams were cut (``Route.resumed``).

Only text is continued: a cut after tool-call arguments or reasoning began, a cut
whose cause would not be retried (a content filter, say), or a request for
structured output ends with ``StreamInterrupted``, as without ``stream_resume``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import errors
from ..types import ChatRequest, ChatResponse, TextDelta, Usage, UsageEvent

if TYPE_CHECKING:
    from ..providers.base import Provider
    from ..providers.prefill import Continuation
    from .attempt import Attempt
    from .groups import Deployment
    from .records import CallTrace

_RESUMABLE_EVENTS = (TextDelta, UsageEvent)


class Resume:
    """What a resumed stream has given so far, across its cut attempts."""

    __slots__ = ("cost_usd", "deployments", "interruption", "text", "usage")

    def __init__(self) -> None:
        self.text = ""
        """Every piece of text the caller was shown."""
        self.usage = Usage()
        """Of the cut attempts."""
        self.cost_usd: float | None = 0.0
        self.deployments: list[str] = []
        self.interruption: errors.StreamInterrupted | None = None
        """The last cut, raised when no deployment can go on."""

    def going_on(self, provider: Provider, request: ChatRequest) -> Continuation | None:
        """The request that makes ``provider`` continue the text shown (``None``: it cannot),
        with ``max_tokens`` less what was given."""
        offered = provider.continuation(request, self.text)
        if offered is None or request.max_tokens is None:
            return offered
        left = max(request.max_tokens - self.usage.completion_tokens, 1)
        return replace(offered, request=replace(offered.request, max_tokens=left))

    async def cut(self, attempt: Attempt) -> bool:
        """Take in a cut attempt: whether the stream may go on elsewhere (else it ends
        with the attempt's ``StreamInterrupted``)."""
        error = attempt.error
        if not isinstance(error, errors.StreamInterrupted):
            return False
        self.interruption = error
        text = _shown_text(attempt)
        if self.deployments and error.partial is not None:  # a continuation: the caller saw more than it gave
            error.partial.content = text
        if not (attempt.group.stream_resume and attempt.resumable):
            return False
        if any(not isinstance(event, _RESUMABLE_EVENTS) for event in attempt.shown):
            return False  # a tool call or reasoning had begun: not continued as text
        given, self.text = text[len(self.text) :], text
        usage = await _attempt_usage(attempt, given)
        dep = attempt.pick.deployment
        self.usage = self.usage + usage
        self.deployments.append(dep.id)
        self.cost_usd = _plus(self.cost_usd, _cost(attempt, usage))
        trace = attempt.call.trace
        if trace is not None:  # billed by the gateway if the caller leaves before the finish
            trace.abandoned.append(dep)
        # the cut is the deployment's failure (recorded as such); for what comes next it
        # is one more retryable failure of the group
        attempt.error = errors.ProviderError(f"stream cut: {error.message}", provider=error.provider)
        return True

    async def finish(self, attempt: Attempt, response: ChatResponse) -> None:
        """Make the last attempt's answer the whole answer: all the text shown, and the usage
        and cost of every attempt (the last one's counted here when it reported none)."""
        text = _shown_text(attempt)
        own, cost = response.usage, response.cost_usd
        if not (own.prompt_tokens or own.completion_tokens):
            own = await _attempt_usage(attempt, text[len(self.text) :])
            cost = _cost(attempt, own)
        response.content = text
        response.usage = self.usage + own
        response.cost_usd = _plus(self.cost_usd, cost)
        trace = attempt.call.trace
        if trace is not None:  # the cut attempts are in the answer's usage now: billed once
            _unlist(trace.abandoned, self.deployments)
        if response.route is not None:
            response.route = replace(response.route, resumed=tuple(self.deployments))

    def give_up(self, call_trace: CallTrace | None) -> errors.StreamInterrupted:
        """The interruption to raise when no deployment can go on. The gateway bills the text
        shown at the deployment of the last attempt (the trace's) and the other cut attempts'
        prompts (its ``abandoned``): the last one is not listed twice."""
        assert self.interruption is not None
        last = call_trace.deployment if call_trace is not None else None
        if call_trace is not None and self.deployments and last is not None and last.id == self.deployments[-1]:
            _unlist(call_trace.abandoned, self.deployments[-1:])
        return self.interruption


def _shown_text(attempt: Attempt) -> str:
    """All the text the caller saw (a continuation's ``shown`` begins with what came before)."""
    return "".join(event.text for event in attempt.shown if type(event) is TextDelta)


def _unlist(abandoned: list[Deployment], ids: list[str]) -> None:
    for dep_id in ids:
        found = next((d for d in reversed(abandoned) if d.id == dep_id), None)
        if found is not None:
            abandoned.remove(found)


def trim_echo(text: str, echo: str) -> tuple[str, str]:
    """``text`` without what it repeats of ``echo`` at its start, and the echo left to expect."""
    n = 0
    limit = min(len(text), len(echo))
    while n < limit and text[n] == echo[n]:
        n += 1
    if n == len(text):  # all of it was echo: more may come in the next piece
        return "", echo[n:]
    return text[n:], ""


async def _attempt_usage(attempt: Attempt, given: str) -> Usage:
    """The attempt's usage: as reported after its last text (Anthropic reports one at the
    start of a message too, before any text: not the output's), else counted here."""
    for event in reversed(attempt.shown):
        if type(event) is UsageEvent:
            return event.usage
        if type(event) is TextDelta:
            break
    pick = attempt.pick
    request = pick.request
    assert isinstance(request, ChatRequest)
    provider, model = pick.provider, pick.deployment.model

    def count() -> Usage:
        from ..tokens import count_text

        prompt = provider.count_prompt(model, request.messages, request.tools or None)
        return Usage(prompt, count_text(f"{provider.config.kind}/{model}", given) if given else 0)

    try:
        return await asyncio.to_thread(count)
    except Exception:  # a count that fails must not cost the caller the answer
        return Usage()


def _cost(attempt: Attempt, usage: Usage) -> float | None:
    dep = attempt.pick.deployment
    if dep.prices is not None:
        return dep.prices.cost(usage)
    from ..cost import chat_cost

    return chat_cost(attempt.pick.provider.price_provider, dep.model, usage)


def _plus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


__all__ = ["Resume", "trim_echo"]
