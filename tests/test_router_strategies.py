"""Each balancing strategy's choices, statistically with fixed seeds, plus the
distribution a whole router produces over in-process fake providers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay import AsyncClient
from llmrelay.router import Candidate, Deployment, ModelGroup, RoutingSettings, register_strategy, strategy_names
from llmrelay.router.strategies import make_strategy, weighted_order
from llmrelay.testing import FakeProvider, Reply

N = 6000


def cands(*weights: float, **kw: list[object]) -> list[Candidate]:
    out = []
    for i, w in enumerate(weights):
        extra = {k: v[i] for k, v in kw.items()}
        out.append(Candidate(Deployment(f"p{i}", "m", weight=w), **extra))  # type: ignore[arg-type]
    return out


def firsts(name: str, candidates: list[Candidate], n: int = N, seed: int = 7) -> Counter[str]:
    strategy, rng = make_strategy(name), random.Random(seed)
    return Counter(strategy.order("g", candidates, rng)[0].deployment.provider for _ in range(n))


def share(counts: Counter[str], key: str) -> float:
    return counts[key] / sum(counts.values())


def test_round_robin_takes_turns_exactly() -> None:
    counts = firsts("round_robin", cands(1, 5, 1), n=300)
    assert counts == Counter({"p0": 100, "p1": 100, "p2": 100})  # weights do not matter


def test_random_is_uniform() -> None:
    counts = firsts("random", cands(1, 5, 1))
    for key in ("p0", "p1", "p2"):
        assert abs(share(counts, key) - 1 / 3) < 0.03


def test_weighted_follows_the_weights() -> None:
    counts = firsts("weighted", cands(3, 1, 6))
    assert abs(share(counts, "p0") - 0.3) < 0.03
    assert abs(share(counts, "p1") - 0.1) < 0.02
    assert abs(share(counts, "p2") - 0.6) < 0.03


def test_health_prefers_the_healthiest_tier_and_ranks_the_rest() -> None:
    pool = cands(1, 1, 1, 1, health=[1.0, 0.95, 0.7, 0.2])
    counts = firsts("health", pool)
    assert set(counts) == {"p0", "p1"} and abs(share(counts, "p0") - 0.5) < 0.03
    order = make_strategy("health").order("g", pool, random.Random(1))
    assert [c.deployment.provider for c in order[2:]] == ["p2", "p3"]


def test_latency_explores_unmeasured_then_prefers_the_fastest() -> None:
    measured = cands(1, 1, 1, latency_s=[0.5, 0.1, 0.11])
    counts = firsts("latency", measured)
    assert set(counts) == {"p1", "p2"}  # both within the slack of the fastest
    order = make_strategy("latency").order("g", measured, random.Random(3))
    assert order[-1].deployment.provider == "p0"
    fresh = cands(1, 1, latency_s=[0.1, None])
    assert firsts("latency", fresh, n=50) == Counter({"p1": 50})


def test_least_busy_picks_the_fewest_in_flight() -> None:
    assert firsts("least_busy", cands(1, 1, 1, in_flight=[4, 1, 2]), n=100) == Counter({"p1": 100})
    tie = firsts("least_busy", cands(1, 3, in_flight=[0, 0]))
    assert abs(share(tie, "p1") - 0.75) < 0.03  # ties go by weight


def test_cost_picks_the_cheapest_and_unknown_prices_last() -> None:
    pool = cands(1, 1, 1, price=[None, 2.5, 0.15])
    order = make_strategy("cost").order("g", pool, random.Random(1))
    assert [c.deployment.provider for c in order] == ["p2", "p1", "p0"]


@given(st.lists(st.floats(min_value=0.01, max_value=100), min_size=0, max_size=8), st.integers(0, 2**32))
def test_every_strategy_orders_each_candidate_exactly_once(weights: list[float], seed: int) -> None:
    pool = cands(*weights, in_flight=list(range(len(weights))), health=[1.0] * len(weights))
    for name in strategy_names():
        order = make_strategy(name).order("g", pool, random.Random(seed))
        assert sorted(id(c) for c in order) == sorted(id(c) for c in pool)
    assert len(weighted_order(pool, random.Random(seed))) == len(pool)


def test_a_custom_strategy_can_be_registered() -> None:
    class Last:
        def order(self, group: str, candidates: list[Candidate], rng: random.Random) -> list[Candidate]:
            return list(reversed(candidates))

    register_strategy("last_first", Last)
    assert firsts("last_first", cands(1, 1, 1), n=10) == Counter({"p2": 10})


async def test_a_router_spreads_calls_by_weight() -> None:
    providers = [FakeProvider(f"p{i}", [Reply(f"from p{i}")]) for i in range(3)]
    group = ModelGroup("g", [Deployment("p0", "m", weight=1), Deployment("p1", "m", weight=2), "p2/m"])
    routing = RoutingSettings(strategy="weighted", seed=11)
    async with AsyncClient(env={}, providers=providers, models=[group], routing=routing) as client:
        answers = Counter([(await client.chat("g", "hi")).content for _ in range(2000)])
    assert abs(answers["from p1"] / 2000 - 0.5) < 0.04
    assert abs(answers["from p0"] / 2000 - 0.25) < 0.04


async def test_least_busy_spreads_concurrent_calls() -> None:
    providers = [FakeProvider(f"p{i}", [Reply("ok", latency_s=0.05)]) for i in range(2)]
    group = ModelGroup("g", ["p0/m", "p1/m"], strategy="least_busy")
    async with AsyncClient(env={}, providers=providers, models=[group]) as client:
        await asyncio.gather(*(client.chat("g", "hi") for _ in range(10)))
    assert [len(p.requests) for p in providers] == [5, 5]


@pytest.mark.parametrize("name", ["health", "latency", "cost", "round_robin", "random", "weighted", "least_busy"])
def test_the_seven_strategies_are_registered(name: str) -> None:
    assert name in strategy_names()
