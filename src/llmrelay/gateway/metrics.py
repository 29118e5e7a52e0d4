"""Prometheus metrics of the gateway (``GET /metrics``), with prometheus-client.

Per request: count and latency by route, model and status; time to first token
of streams; tokens by kind and cost by model; what the response cache did;
errors by class; the gateway's own
overhead (request time minus the time spent waiting on upstream attempts). Per
attempt (a router hook): outcome and latency by deployment. At each scrape:
each deployment's health (1 healthy or degraded, 0 otherwise).

The ``model`` label is the model group that served the request and
``deployment`` the deployment; configured ones are always labelled by name, and
at most ``MAX_OTHER_LABELS`` other names each (``PROVIDER/MODEL`` names clients
made up); past that they count as ``other``, so no client can grow the metrics
without bound. Requests that named no model the gateway serves have the model
``""``.

With several worker processes (``llmrelay serve --workers N`` sets
``PROMETHEUS_MULTIPROC_DIR``), every worker writes its figures to files in that
directory and a scrape, whichever worker answers it, adds up all of them
(another worker's as of at most ``FOLD_S`` ago).
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from ..router.health import DeploymentHealth
from ..router.records import AttemptRecord
from ..types import Route, Usage

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FOLD_S = 0.5
"""How often noted requests reach the metrics (and, with several workers, the shared files)."""
_OVERHEAD = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
MAX_OTHER_LABELS = 25
OTHER = "other"


class Labels:
    """Label values from clients' words, bounded: the ``known`` names, then the first
    ``limit`` others, then ``other``."""

    __slots__ = ("_known", "_limit", "_seen")

    def __init__(self, known: Iterable[str] = (), limit: int = MAX_OTHER_LABELS) -> None:
        self._known = set(known)
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self._known or name in self._seen or not name:
            return name
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(name)
        return name


@dataclass(slots=True)
class RequestFacts:
    """What a handler learned about its request, for the metrics."""

    model: str = ""
    """The model the request asked for (the ledger's ``model``)."""
    group: str = ""
    """The model group that served it (the metrics' ``model`` label)."""
    deployment: str = ""
    usage: Usage | None = None
    cost_usd: float | None = None
    upstream_s: float = 0.0
    ttft_s: float | None = None
    error: str | None = None
    """The error class that ended the request (an in-stream one included)."""
    cache: str | None = None
    """``hit``, ``semantic_hit``, ``coalesced`` or ``miss`` when the response cache was asked."""
    disconnected: bool = False
    """The client left before the answer was complete."""

    def answered(self, usage: Usage, cost_usd: float | None, route: Route | None) -> None:
        """What an answer tells: its usage, its cost and the deployment that gave it."""
        self.usage, self.cost_usd = usage, cost_usd
        if route is not None:
            self.deployment = route.deployment


class Metrics:
    def __init__(self, groups: Iterable[str] = (), deployments: Iterable[str] = ()) -> None:
        """``groups`` and ``deployments``: the configured ones, always labelled by name."""
        self.group_label = Labels(groups)
        self.deployment_label = Labels(deployments)
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
        self.cache = Counter(
            "llmrelay_cache", "Answers by what the response cache did (hit, semantic_hit, coalesced, miss).",
            ["model", "result"], registry=registry,
        )  # fmt: skip
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
        self._requests: list[tuple[str, int, float, RequestFacts, str | None]] = []
        self._attempts: list[tuple[str, str, float]] = []
        self._timer: asyncio.TimerHandle | None = None

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered (looking labels up costs more than counting)."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    # Requests and attempts are noted in plain lists (a list append per request) and
    # folded into the Prometheus metrics at each scrape and every FOLD_S seconds: one
    # counter increment per label set, and histogram buckets counted with bisect, cost
    # far less than a locked prometheus-client update per value per request.

    def attempt(self, record: AttemptRecord) -> None:
        """The router hook."""
        self._attempts.append((record.deployment, record.outcome, record.latency_s))
        self._soon()

    def request(self, route: str, status: int, seconds: float, facts: RequestFacts, error: str | None) -> None:
        self._requests.append((route, status, seconds, facts, error))
        self._soon()

    def _soon(self) -> None:
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FOLD_S, self.fold)
            except RuntimeError:  # no loop (a synchronous caller): fold at once
                self.fold()

    def fold(self) -> None:
        """Move what was noted into the Prometheus metrics."""
        self._timer = None
        requests, self._requests = self._requests, []
        attempts, self._attempts = self._attempts, []
        counts: dict[tuple[Any, ...], float] = defaultdict(float)
        values: dict[tuple[Any, ...], list[float]] = defaultdict(list)
        for route, status, seconds, facts, error in requests:
            model = self.group_label(facts.group)
            counts[(self.requests, route, model, str(status))] += 1
            values[(self.latency, route)].append(seconds)
            if error is not None:
                counts[(self.errors, error)] += 1
            if facts.upstream_s:
                values[(self.overhead,)].append(max(seconds - facts.upstream_s, 0.0))
            if facts.ttft_s is not None:
                values[(self.ttft,)].append(facts.ttft_s)
            usage = facts.usage
            if usage is not None:
                for kind, count in (
                    ("prompt", usage.prompt_tokens), ("completion", usage.completion_tokens),
                    ("cached", usage.cached_tokens), ("reasoning", usage.reasoning_tokens),
                ):  # fmt: skip
                    if count:
                        counts[(self.tokens, model, kind)] += count
            if facts.cost_usd:
                counts[(self.cost, model)] += facts.cost_usd
            if facts.cache is not None:
                counts[(self.cache, model, facts.cache)] += 1
        for name, outcome, latency in attempts:
            deployment = self.deployment_label(name)
            counts[(self.attempts, deployment, outcome)] += 1
            values[(self.attempt_latency, deployment)].append(latency)
        for (metric, *labels), amount in counts.items():
            self._child(metric, *labels).inc(amount)
        for (metric, *labels), observed in values.items():
            _observe_all(self._child(metric, *labels) if labels else metric, observed)

    def render(self, health: list[DeploymentHealth]) -> bytes:
        self.fold()
        for h in health:
            group, deployment = self.group_label(h.group), self.deployment_label(h.deployment)
            if OTHER not in (group, deployment):
                self.healthy.labels(group, deployment).set(1 if h.status in ("healthy", "degraded") else 0)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            every_worker = CollectorRegistry()
            multiprocess.MultiProcessCollector(every_worker)  # type: ignore[no-untyped-call]
            return generate_latest(every_worker)
        return generate_latest(self.registry)


def _observe_all(histogram: Any, observed: list[float]) -> None:
    """``histogram.observe(v)`` for every value: per bucket at once where the
    histogram's parts are as prometheus-client lays them out, else one by one."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in observed:
            histogram.observe(value)
        return
    per_bucket = [0] * len(bounds)
    for value in observed:
        per_bucket[bisect_left(bounds, value)] += 1  # the first bound >= value, as observe() does
    for index, count in enumerate(per_bucket):
        if count:
            buckets[index].inc(count)
    total.inc(sum(observed))


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

__all__ = ["CONTENT_TYPE", "Metrics", "RequestFacts"]
