"""Balancing strategies: in which order to try a group's deployments.

A strategy sees the deployments that can take a call now (breaker not open,
not cooling down, not disabled), each with what the router knows of it, and
returns all of them in order of preference; the router tries them in that
order, untried ones before those that already failed this call.

Built in (the names used in config):

- ``round_robin``: each call starts one further along the list.
- ``random``: uniform.
- ``weighted``: random, in proportion to ``weight``.
- ``health``: the healthiest tier (success score within ``HEALTH_MARGIN`` of the
  best) by weight, then the rest, healthiest first.
- ``latency``: deployments not yet measured first (so they get measured), then
  those within ``LATENCY_SLACK`` of the fastest moving average by weight, then
  the rest, fastest first. Streams are ranked by time to first token.
- ``least_busy``: fewest calls in flight from this process; ties by weight.
- ``cost``: cheapest price per token first (unknown prices last); ties by weight.

Add one with ``register_strategy(name, factory)``: any object with an
``order(group, candidates, rng)`` method.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .groups import Deployment

HEALTH_MARGIN = 0.1
LATENCY_SLACK = 1.2


@dataclass(slots=True)
class Candidate:
    """A deployment as a strategy sees it.

    ``health``: success score in [0, 1] (1 when unknown; recent outcomes weigh
    most, and it recovers toward 1 while no call is made). ``latency_s``: moving
    average for this kind of call (``None`` until measured). ``in_flight``: calls
    now running from this process. ``price``: USD per million tokens, input and
    output averaged (``None`` when unknown).
    """

    deployment: Deployment
    health: float = 1.0
    latency_s: float | None = None
    in_flight: int = 0
    price: float | None = None

    @property
    def weight(self) -> float:
        return self.deployment.weight


@runtime_checkable
class Strategy(Protocol):
    def order(self, group: str, candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
        """Every candidate once, most preferred first."""
        ...


def weighted_order(candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """A random order where each position is drawn in proportion to weight among
    those left (the first is ``weight / total`` likely)."""
    if len(candidates) < 2:
        return list(candidates)
    keyed = [(rng.random() ** (1.0 / c.weight), i) for i, c in enumerate(candidates)]
    keyed.sort(reverse=True)
    return [candidates[i] for _, i in keyed]


class RoundRobin:
    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def order(self, group: str, candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
        if not candidates:
            return []
        start = self._next.get(group, 0)
        self._next[group] = start + 1
        k = start % len(candidates)
        return [*candidates[k:], *candidates[:k]]


class Uniform:
    def order(self, group: str, candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
        shuffled = list(candidates)
        rng.shuffle(shuffled)
        return shuffled


class Weighted:
    def order(self, group: str, candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
        return weighted_order(candidates, rng)


class HealthBased:
    def order(self, group: str, candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
        if not candidates:
            return []
        best = max(c.health for c in candidates)
        top = [c for c in candidates if c.health >= best - HEALTH_MARGIN]
        rest = sorted((c for c in candidates if c.health < best - HEALTH_MARGIN), key=lambda c: -c.health)
        return [*weighted_order(top, rng), *rest]


class LatencyBased:
    def order(self, group: str, candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
        unmeasured = [c for c in candidates if c.latency_s is None]
        measured = sorted((c for c in candidates if c.latency_s is not None), key=lambda c: c.latency_s or 0.0)
        if not measured:
            return weighted_order(unmeasured, rng)
        bound = (measured[0].latency_s or 0.0) * LATENCY_SLACK
        fast = [c for c in measured if (c.latency_s or 0.0) <= bound]
        return [*weighted_order(unmeasured, rng), *weighted_order(fast, rng), *measured[len(fast) :]]


class LeastBusy:
    def order(self, group: str, candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
        shuffled = weighted_order(candidates, rng)
        return sorted(shuffled, key=lambda c: c.in_flight)  # stable: ties keep the weighted order


class CostBased:
    def order(self, group: str, candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
        shuffled = weighted_order(candidates, rng)
        return sorted(shuffled, key=lambda c: (c.price is None, c.price or 0.0))


_FACTORIES: dict[str, Callable[[], Strategy]] = {
    "round_robin": RoundRobin,
    "random": Uniform,
    "weighted": Weighted,
    "health": HealthBased,
    "latency": LatencyBased,
    "least_busy": LeastBusy,
    "cost": CostBased,
}


def register_strategy(name: str, factory: Callable[[], Strategy]) -> None:
    """Make ``name`` usable as ``strategy:`` in config and code; ``factory()``
    is called once per router (keep per-group state inside the object)."""
    _FACTORIES[name] = factory


def strategy_names() -> list[str]:
    return sorted(_FACTORIES)


def make_strategy(name: str) -> Strategy:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise KeyError(f"unknown strategy {name!r} (known: {', '.join(strategy_names())})") from None


__all__ = [
    "Candidate",
    "CostBased",
    "HealthBased",
    "LatencyBased",
    "LeastBusy",
    "RoundRobin",
    "Strategy",
    "Uniform",
    "Weighted",
    "make_strategy",
    "register_strategy",
    "strategy_names",
    "weighted_order",
]
