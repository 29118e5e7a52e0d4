"""Resilience building blocks, each a plain value or a small object over a
``StateBackend``, none knowing about HTTP:

- ``RetryPolicy`` / ``retry_call``: when to retry and how long to wait;
- ``Deadline``: one total time budget;
- ``CircuitBreaker``: closed / open / half-open per key;
- ``RateLimiter`` / ``Cooldown``: requests and tokens per window, 429 cooldowns.
"""

from __future__ import annotations

from .breaker import BreakerConfig, BreakerState, CircuitBreaker, CircuitState, counts_as_failure
from .deadline import Deadline
from .ratelimit import Cooldown, Decision, RateLimiter, RateLimits
from .retry import RetryPolicy, retry_call

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "CircuitState",
    "Cooldown",
    "Deadline",
    "Decision",
    "RateLimiter",
    "RateLimits",
    "RetryPolicy",
    "counts_as_failure",
    "retry_call",
]
