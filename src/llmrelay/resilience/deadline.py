"""``Deadline``: one total time budget that bounds every attempt, wait and retry.

    deadline = Deadline(30.0)
    async with asyncio.timeout(deadline.timeout_for(read_timeout_s)): ...

The clock is injectable (``time.monotonic`` by default) so tests run on fake time.
A spent deadline raises ``errors.Timeout`` marked not retryable: once the budget
is gone, no retry can help.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..errors import Timeout

Clock = Callable[[], float]


class Deadline:
    """A point in time ``budget_s`` seconds after creation (``math.inf``: never)."""

    __slots__ = ("_clock", "_expires_at", "budget_s")

    def __init__(self, budget_s: float, *, clock: Clock = time.monotonic) -> None:
        if math.isnan(budget_s) or budget_s < 0:
            raise ValueError(f"a deadline budget must be >= 0 seconds, not {budget_s!r}")
        self.budget_s = budget_s
        self._clock = clock
        self._expires_at = clock() + budget_s

    @classmethod
    def never(cls, *, clock: Clock = time.monotonic) -> Deadline:
        """A deadline that never expires (for code paths that always take one)."""
        return cls(math.inf, clock=clock)

    @property
    def expires_at(self) -> float:
        """When the budget runs out, on the deadline's clock."""
        return self._expires_at

    def remaining(self) -> float:
        """Seconds left (0.0 once spent; ``inf`` for ``never()``)."""
        return max(self._expires_at - self._clock(), 0.0)

    def expired(self) -> bool:
        return self._clock() >= self._expires_at

    def allows(self, delay_s: float) -> bool:
        """Whether waiting ``delay_s`` still leaves time for something to run."""
        return delay_s < self.remaining()

    def check(self) -> None:
        """Raise ``errors.Timeout`` when the budget is spent."""
        if self.expired():
            raise self.error()

    def timeout_for(self, timeout_s: float | None) -> float | None:
        """The timeout to give one step: ``min(timeout_s, remaining)``.

        ``timeout_s=None`` means the step has no timeout of its own, so it gets
        what remains (``None`` when that is unbounded too). Raises
        ``errors.Timeout`` when the budget is already spent.
        """
        left = self.remaining()
        if left <= 0:
            raise self.error()
        if timeout_s is None:
            return None if math.isinf(left) else left
        return min(timeout_s, left)

    def error(self) -> Timeout:
        """The error for a spent budget (not retryable)."""
        return Timeout(f"deadline of {self.budget_s:g}s exceeded", retryable=False)

    def __repr__(self) -> str:
        return f"Deadline(budget_s={self.budget_s!r}, remaining={self.remaining():.3f})"
