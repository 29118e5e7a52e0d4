"""Prometheus metrics of the gateway (``GET /metrics``), with prometheus-client.

Per request: count and latency by route, model and status; time to first token
of streams; tokens by kind and cost by model; errors by class; the gateway's own
overhead (request time minus the time spent waiting on upstream attempts). Per
attempt (a router hook): outcome and latency by deployment. At each scrape:
each deployment's health (1 healthy or degraded, 0 otherwise).

With several worker processes (``llmrelay serve --workers N`` sets
``PROMETHEUS_MULTIPROC_DIR``), every worker writes its figures to files in that
directory and a scrape, whichever worker answers it, adds up all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from ..router.health import DeploymentHealth
from ..router.records import AttemptRecord
from ..types import Usage

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)


@dataclass(slots=True)
class RequestFacts:
    """What a handler learned about its request, for the metrics."""

    model: str = ""
    deployment: str = ""
    usage: Usage | None = None
    cost_usd: float | None = None
    upstream_s: float = 0.0
    ttft_s: float | None = None
    error: str | None = None
    """The error class that ended the request (an in-stream one included)."""


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "llmrelay_requests", "Requests answered.", ["route", "model", "status"], registry=registry
        )
        self.latency = Histogram(
            "llmrelay_request_seconds", "Request time.", ["route"], buckets=_SECONDS, registry=registry
        )
        self.ttft = Histogram(
            "llmrelay_time_to_first_token_seconds", "Streams' time to first token.", buckets=_SECONDS,
            registry=registry,
        )  # fmt: skip
        self.overhead = Histogram(
            "llmrelay_gateway_overhead_seconds", "Request time minus upstream wait.", buckets=_OVERHEAD,
            registry=registry,
        )  # fmt: skip
        self.tokens = Counter("llmrelay_tokens", "Tokens by kind.", ["model", "kind"], registry=registry)
        self.cost = Counter("llmrelay_cost_usd", "Cost in USD.", ["model"], registry=registry)
        self.errors = Counter("llmrelay_errors", "Failed requests by error class.", ["error"], registry=registry)
        self.attempts = Counter("llmrelay_attempts", "Upstream attempts.", ["deployment", "outcome"], registry=registry)
        self.attempt_latency = Histogram(
            "llmrelay_attempt_seconds", "Upstream attempt time.", ["deployment"], buckets=_SECONDS, registry=registry
        )
        self.healthy = Gauge(
            "llmrelay_deployment_healthy", "1 when the deployment can serve.", ["group", "deployment"],
            registry=registry, multiprocess_mode="livemostrecent",
        )  # fmt: skip

        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered (looking labels up costs more than counting)."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def attempt(self, record: AttemptRecord) -> None:
        """The router hook."""
        self._child(self.attempts, record.deployment, record.outcome).inc()
        self._child(self.attempt_latency, record.deployment).observe(record.latency_s)

    def request(self, route: str, status: int, seconds: float, facts: RequestFacts, error: str | None) -> None:
        self._child(self.requests, route, facts.model, str(status)).inc()
        self._child(self.latency, route).observe(seconds)
        if error is not None:
            self._child(self.errors, error).inc()
        if facts.upstream_s:
            self.overhead.observe(max(seconds - facts.upstream_s, 0.0))
        if facts.ttft_s is not None:
            self.ttft.observe(facts.ttft_s)
        usage = facts.usage
        if usage is not None:
            for kind, count in (
                ("prompt", usage.prompt_tokens), ("completion", usage.completion_tokens),
                ("cached", usage.cached_tokens), ("reasoning", usage.reasoning_tokens),
            ):  # fmt: skip
                if count:
                    self._child(self.tokens, facts.model, kind).inc(count)
        if facts.cost_usd:
            self._child(self.cost, facts.model).inc(facts.cost_usd)

    def render(self, health: list[DeploymentHealth]) -> bytes:
        for h in health:
            self.healthy.labels(h.group, h.deployment).set(1 if h.status in ("healthy", "degraded") else 0)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            every_worker = CollectorRegistry()
            multiprocess.MultiProcessCollector(every_worker)  # type: ignore[no-untyped-call]
            return generate_latest(every_worker)
        return generate_latest(self.registry)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

__all__ = ["CONTENT_TYPE", "Metrics", "RequestFacts"]
