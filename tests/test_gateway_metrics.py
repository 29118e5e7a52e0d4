"""The gateway's metrics fold many requests into prometheus-client at once; what a
scrape shows must be exactly what one ``observe``/``inc`` per value would show."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from llmrelay.gateway.metrics import _SECONDS, Metrics, RequestFacts, _observe_all
from llmrelay.types import Usage

durations = st.lists(st.floats(min_value=0, max_value=500, allow_nan=False), max_size=200)


@settings(max_examples=200, deadline=None)
@given(values=durations)
def test_folded_histogram_equals_one_observe_per_value(values: list[float]) -> None:
    one_by_one, folded = CollectorRegistry(), CollectorRegistry()
    each = Histogram("h", "x", ["r"], buckets=_SECONDS, registry=one_by_one).labels("a")
    for value in values:
        each.observe(value)
    _observe_all(Histogram("h", "x", ["r"], buckets=_SECONDS, registry=folded).labels("a"), values)
    assert _samples(folded) == _samples(one_by_one)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    out = {}
    for family in registry.collect():
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                out[(sample.name, str(sorted(sample.labels.items())))] = round(sample.value, 9)
    return out


def test_requests_noted_are_in_the_next_scrape() -> None:
    metrics = Metrics()
    facts = RequestFacts(model="smart", group="smart", usage=Usage(9, 3), cost_usd=0.25, upstream_s=0.010)
    for _ in range(3):
        metrics.request("/v1/chat/completions", 200, 0.012, facts, None)  # no loop: folded at once
    metrics.request("/v1/chat/completions", 502, 0.5, RequestFacts(model="smart", group="smart"), "ProviderError")
    text = metrics.render([]).decode()
    assert 'llmrelay_requests_total{model="smart",route="/v1/chat/completions",status="200"} 3.0' in text
    assert 'llmrelay_errors_total{error="ProviderError"} 1.0' in text
    assert 'llmrelay_tokens_total{kind="prompt",model="smart"} 27.0' in text
    assert 'llmrelay_cost_usd_total{model="smart"} 0.75' in text
    assert 'llmrelay_request_seconds_count{route="/v1/chat/completions"} 4.0' in text
    assert "llmrelay_gateway_overhead_seconds_count 3.0" in text
    assert generate_latest(metrics.registry) == metrics.render([])
