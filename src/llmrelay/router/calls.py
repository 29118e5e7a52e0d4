"""The pieces of one routed call: what a failure means (``verdict``), the call's
bookkeeping across attempts (``Call``), a claimed deployment (``Pick``), and the
small steps the router's loop is made of."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .. import errors
from .._assemble import partial_answer
from ..resilience import Deadline
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ReasoningDelta,
    Route,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
)
from .capabilities import refusal
from .groups import Deployment, ModelGroup
from .records import CallTrace, Operation
from .resume import Resume

if TYPE_CHECKING:
    from ..providers.base import Provider

CONTENT = (TextDelta, ToolCallDelta, ReasoningDelta)
_SKIP = (
    errors.ContextWindowExceeded,
    errors.ContentFiltered,
    errors.AuthenticationError,
    errors.PermissionDenied,
    errors.NotFound,
    errors.ProviderNotConfigured,
)
Verdict = Literal["raise", "skip", "retry"]
SKIPPED = -1.0  # "moved on without a retry": the attempt does not count against retries
PROBE_RECHECK_S = 0.1  # while another call probes a half-open breaker, look again this often
NO_VERDICT = errors.LLMError("the attempt ended without a verdict on the deployment")


def verdict(exc: errors.LLMError) -> Verdict:
    """What a failed attempt means for the call (see the module docstring)."""
    if isinstance(exc, errors.StreamInterrupted):
        return "raise"
    if isinstance(exc, _SKIP):
        return "skip"
    return "retry" if exc.retryable else "raise"


@dataclass(slots=True)
class Pick:
    deployment: Deployment
    provider: Provider
    request: ChatRequest | EmbeddingRequest
    ticket: str | None
    tokens: float
    probe: bool
    echo: str = ""
    """Text a continuation is expected to write again first (``resume.py``)."""


class Call:
    """One caller's call across attempts and groups: where it is in the chain, what
    each deployment said, and the errors seen."""

    __slots__ = (
        "attempts", "chain", "deadline", "earliest", "errors", "hedged", "notes", "op", "requested", "resume",
        "skipped", "stage", "start", "trace", "tried", "used",
    )  # fmt: skip

    def __init__(
        self, op: Operation, requested: str, deadline: Deadline, chain: list[ModelGroup], trace: CallTrace | None = None
    ) -> None:
        self.op = op
        self.trace = trace
        self.chain = chain
        self.requested = requested
        self.deadline = deadline
        self.start = time.monotonic()
        self.attempts = 0
        self.stage = 0  # the group of the chain being tried
        self.used = 0  # attempts in that group that count against its retries
        self.tried: set[str] = set()
        self.skipped: set[str] = set()
        self.notes: dict[str, str] = {}
        self.errors: list[errors.LLMError] = []
        self.earliest: float | None = None
        self.resume: Resume | None = None  # a stream going on after a cut (``resume.py``)
        self.hedged: list[str] = []  # deployments of attempts that lost a hedged race (``race.py``)

    @property
    def last_error(self) -> errors.LLMError | None:
        return self.errors[-1] if self.errors else None

    def note(self, deployment: str, why: str) -> None:
        self.notes[deployment] = why


async def pause(step: float, used: int) -> int:
    """Wait ``step`` seconds before the next attempt; returns the attempts that
    count against the group's retries (a skipped deployment is not one)."""
    if step == SKIPPED:
        return used - 1
    if step > 0:
        await asyncio.sleep(step)
    return used


async def send_chat(provider: Provider, request: ChatRequest) -> ChatResponse:
    return await provider.chat(request)


async def send_embed(provider: Provider, request: EmbeddingRequest) -> EmbeddingResponse:
    return await provider.embed(request)


def interrupted(
    exc: errors.LLMError, shown: list[StreamEvent], dep: Deployment, route: Route
) -> errors.StreamInterrupted:
    """A failure after the first token, as ``StreamInterrupted`` with the partial answer."""
    if isinstance(exc, errors.StreamInterrupted):
        failure = exc
        failure.transient = failure.transient or failure.retryable
    else:
        failure = errors.StreamInterrupted(
            f"stream broke after it began: {exc.message}", provider=exc.provider, body=exc.body, transient=exc.retryable
        )
    failure.retryable = False
    if failure.partial is None:
        failure.partial = partial_answer(dep.provider, dep.model, shown)
    if failure.partial is not None:
        failure.partial.route = route
    return failure


def ended_early(dep: Deployment) -> errors.ProviderError:
    """A stream that ended without its finish."""
    return errors.ProviderError("the stream ended without finishing", provider=dep.provider)


def as_llm_error(exc: Exception, dep: Deployment) -> errors.LLMError:
    """Anything a provider raises, as an ``LLMError`` (unknown failures are the
    provider's, and worth another deployment)."""
    if isinstance(exc, errors.LLMError):
        return exc
    return errors.ProviderError(f"{dep.id} failed: {type(exc).__name__}: {str(exc)[:200]}", provider=dep.provider)


def exhausted(call: Call) -> errors.LLMError:
    """The error for a call no deployment answered."""
    refused = refusal(call)
    if refused is not None:
        return refused  # no deployment can take this request: a 400 saying what each lacks
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


OUTPUT_ESTIMATE = 256
"""Completion tokens assumed for a request that sets no ``max_tokens``."""


def estimate_tokens(request: ChatRequest | EmbeddingRequest) -> float:
    """A quick upper-ish estimate for rate limiting (settled with the real usage)."""
    if isinstance(request, EmbeddingRequest):
        return sum(len(t) for t in request.inputs) / 4 + 1
    chars = sum(len(m.text) for m in request.messages)
    return chars / 4 + (request.max_tokens or OUTPUT_ESTIMATE)
