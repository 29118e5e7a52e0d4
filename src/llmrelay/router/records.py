"""What the router tells the outside: one ``AttemptRecord`` per attempt.

Hooks (``Router.add_hook``) receive every record as it ends, for metrics and
logs; a hook that raises is logged and never breaks a call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .groups import Deployment

Operation = Literal["chat", "stream", "embed"]
Outcome = Literal["ok", "error", "cancelled", "interrupted"]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt at one deployment.

    ``outcome``: ``ok``; ``error`` (failed, may be retried); ``interrupted`` (a
    stream broke after its first token: ended, never retried); ``cancelled``
    (the caller went away). ``error`` is the error's class name; ``ttft_s`` the
    time to the first token of a stream; ``number`` counts attempts within the
    call, from 1.
    """

    group: str
    deployment: str
    provider: str
    model: str
    operation: Operation
    number: int
    outcome: Outcome
    latency_s: float
    ttft_s: float | None = None
    error: str | None = None
    message: str | None = None
    status_code: int | None = None


Hook = Callable[[AttemptRecord], None]


class CallTrace:
    """What one caller follows of its own call while it runs: the deployment of
    the attempt under way (set as each attempt starts), the deployments of attempts
    that timed out (``abandoned``: each had the prompt, and may have gone on
    generating after the router gave up on it), and whether another caller took
    its answer over (``handed_over``: it left a shared stream that goes on for
    others, one of whom pays for it). The gateway reads it to bill what the
    upstream charges: a stream its client left, the prompts of abandoned attempts."""

    __slots__ = ("abandoned", "deployment", "handed_over")

    def __init__(self) -> None:
        self.deployment: Deployment | None = None
        self.abandoned: list[Deployment] = []
        self.handed_over = False


__all__ = ["AttemptRecord", "CallTrace", "Hook", "Operation", "Outcome"]
