"""``RetryPolicy``: when to try again and how long to wait, as a plain value.

The policy never sleeps and never calls anything: ``decide`` looks at the failed
attempt and answers with a delay or ``None`` (stop). Loops (``retry_call`` here,
the router's own) do the waiting. What the server asked for wins, the way the
official SDKs do it: the providers already parsed ``retry-after-ms``,
``retry-after`` (seconds or HTTP date), Gemini's ``RetryInfo`` into
``error.retry_after`` and applied ``x-should-retry`` to ``error.retryable``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from ..errors import LLMError
from .deadline import Clock, Deadline

T = TypeVar("T")
Jitter = Literal["full", "none"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with AWS "full jitter", a cap, and server hints honoured.

    - ``max_attempts``: attempts in all, the first included (1 = never retry).
    - backoff before retry ``n`` (n = 1 after the first failure):
      ``uniform(0, min(max_delay_s, base_delay_s * 2**(n-1)))`` with ``jitter="full"``,
      the upper bound itself with ``jitter="none"``.
    - ``error.retry_after`` (when > 0) is the delay, never shortened; when it is
      over ``max_retry_after_s`` the policy gives up (``None``: no cap).
    - ``max_elapsed_s``: stop when the wait would end later than this after the start.
    - a ``Deadline``: stop when the wait would use up what remains.
    - ``rng``: inject a seeded ``random.Random`` for reproducible delays.

    ``decide`` returning ``None`` because the server asked for a wait over
    ``max_retry_after_s`` means "not here": a router should try another deployment.
    """

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float | None = 60.0
    max_elapsed_s: float | None = None
    jitter: Jitter = "full"
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("retry delays must be >= 0")
        if self.max_retry_after_s is not None and self.max_retry_after_s < 0:
            raise ValueError("max_retry_after_s must be >= 0 or None")
        if self.jitter not in ("full", "none"):
            raise ValueError(f"unknown jitter {self.jitter!r} (use 'full' or 'none')")

    def ceiling(self, retry: int) -> float:
        """The backoff's upper bound before retry number ``retry`` (1-based)."""
        exponent = min(max(retry - 1, 0), 64)  # 2**64 * base is past any cap; avoids overflow
        return min(self.max_delay_s, self.base_delay_s * 2.0**exponent)

    def backoff(self, retry: int) -> float:
        """The jittered backoff before retry number ``retry`` (1-based), ignoring server hints."""
        top = self.ceiling(retry)
        return self.rng.uniform(0.0, top) if self.jitter == "full" else top

    def decide(self, attempt: int, error: LLMError, elapsed_s: float, deadline: Deadline | None) -> float | None:
        """The delay before the next attempt, or ``None`` to stop.

        ``attempt`` is how many attempts have been made (the one that just
        failed included); ``elapsed_s`` is the time since the first one began.
        """
        if not error.retryable or attempt >= self.max_attempts:
            return None
        hint = error.retry_after
        if hint is not None and hint > 0:
            if self.max_retry_after_s is not None and hint > self.max_retry_after_s:
                return None
            delay = hint
        else:
            delay = self.backoff(attempt)
        if self.max_elapsed_s is not None and elapsed_s + delay > self.max_elapsed_s:
            return None
        if deadline is not None and not deadline.allows(delay):
            return None
        return delay


OnAttempt = Callable[[int, LLMError, float | None], None]


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: Deadline | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_attempt: OnAttempt | None = None,
    clock: Clock = time.monotonic,
) -> T:
    """Await ``fn()`` until it succeeds or ``policy`` says stop; then raise the last error.

    Only ``LLMError`` is considered; anything else (cancellation included)
    propagates at once. Each attempt runs under what remains of ``deadline``; a
    spent deadline raises ``errors.Timeout`` (not retryable). ``on_attempt(attempt,
    error, delay)`` is called after every failure, with ``delay=None`` on the last.
    """
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        limit = deadline.timeout_for(None) if deadline is not None else None
        try:
            if limit is None:
                return await fn()
            scope = asyncio.timeout(limit)
            try:
                async with scope:
                    return await fn()
            except TimeoutError as exc:
                if scope.expired() and deadline is not None:
                    raise deadline.error() from exc
                raise
        except LLMError as error:
            delay = policy.decide(attempt, error, clock() - start, deadline)
            if on_attempt is not None:
                on_attempt(attempt, error, delay)
            if delay is None:
                raise
        await sleep(delay)
