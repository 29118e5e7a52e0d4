"""Model groups and routing from YAML: what loads, and every mistake named with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrelay import AsyncClient, errors
from llmrelay.config import load_settings
from llmrelay.router import Deployment, ModelGroup

PROVIDERS = """\
providers:
  - {name: a, kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-a}
  - {name: b, kind: anthropic, base_url: "http://127.0.0.1:9", api_key: sk-b}
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "llmrelay.yaml"
    path.write_text(PROVIDERS + text)
    return load_settings(path, env={})


def test_groups_and_routing_load(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """\
models:
  - name: smart
    strategy: least_busy
    fallbacks: [cheap]
    deployments:
      - {provider: a, model: gpt-4o, weight: 3, rpm: 500, tpm: 90000, timeout_s: 20}
      - {provider: b, model: claude-sonnet-4-5}
      - {provider: a, model: gpt-4o}
  - name: cheap
    deployments: [{provider: a, model: gpt-4o-mini}]
routing:
  strategy: latency
  retries: 4
  timeout_s: 30
  deadline_s: 90
  stream_idle_s: 15
  circuit_breaker: {failures: 3, recovery_s: 10, failure_rate: 0.5, min_calls: 10}
  health_check_interval_s: 20
""",
    )
    smart = settings.models["smart"]  # type: ignore[attr-defined]
    assert [d.id for d in smart.members] == ["a/gpt-4o", "b/claude-sonnet-4-5", "a/gpt-4o#2"]
    assert smart.members[0] == Deployment("a", "gpt-4o", 3, 500, 90000, 20)
    assert smart.fallbacks == ("cheap",) and smart.strategy == "least_busy"
    routing = settings.routing  # type: ignore[attr-defined]
    assert (routing.strategy, routing.retries, routing.timeout_s, routing.deadline_s) == ("latency", 4, 30, 90)
    assert routing.circuit_breaker.failure_threshold == 3 and routing.circuit_breaker.failure_rate == 0.5
    assert routing.health_check_interval_s == 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n  - name: g\n    strategy: fastest\n    deployments: [{provider: a, model: m}]\n",
         r":6: models\.g\.strategy: unknown strategy 'fastest' \(known: cost, health"),
        ("models:\n  - name: g\n    deployments: []\n", r"models\.g\.deployments: List should have at least 1 item"),
        ("models:\n  - name: g\n    deployments: [{provider: a, model: m, weight: 0}]\n",
         r":6: models\.g\.deployments\.0\.weight: Input should be greater than 0"),
        ("models:\n  - name: g\n    deployments: [{provider: a, model: m, weight: -2}]\n", "greater than 0"),
        ("models:\n  - name: x\n    fallbacks: [y]\n    deployments: [{provider: a, model: m}]\n"
         "  - name: y\n    fallbacks: [z]\n    deployments: [{provider: a, model: m}]\n"
         "  - name: z\n    fallbacks: [x]\n    deployments: [{provider: a, model: m}]\n",
         "fallbacks form a cycle: x -> y -> z -> x"),
        ("models:\n  - name: g\n    fallbacks: [g]\n    deployments: [{provider: a, model: m}]\n",
         "lists itself as a fallback"),
        ("models:\n  - name: g\n    fallbacks: [nope]\n    deployments: [{provider: a, model: m}]\n",
         r":6: models\.g\.fallbacks\.0: 'nope' is not a model group"),
        ("models:\n  - name: g\n    deployments: [{provider: c, model: m}]\n", "unknown provider 'c'"),
        ("models:\n  - name: g\n    deployments: [{provider: a, model: m}]\n  - name: g\n"
         "    deployments: [{provider: a, model: m}]\n", r":7: models\.g: model group 'g' is defined twice"),
        ("routing: {strategy: magic}\n", r":4: routing\.strategy: unknown strategy 'magic'"),
        ("routing: {retries: -1}\n", r"routing\.retries: Input should be greater than or equal to 0"),
        ("routing: {circuit_breaker: {failures: 0}}\n", r"routing\.circuit_breaker\.failures"),
        ("routing: {retry: 3}\n", r"routing\.retry: unknown key"),
        ("state: {backend: etcd}\n", r"state\.backend: Input should be 'memory' or 'redis'"),
    ],
    ids=[
        "unknown-strategy", "no-deployment", "weight-zero", "weight-negative", "cycle", "self-fallback",
        "unknown-fallback", "unknown-provider", "duplicate-group", "routing-strategy", "negative-retries",
        "breaker-threshold", "routing-typo", "state-backend",
    ],
)  # fmt: skip
def test_config_mistakes_fail_at_load_naming_the_entry(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(errors.ConfigError, match=expected):
        load(tmp_path, text)


def test_groups_from_code_are_checked_too() -> None:
    with pytest.raises(errors.ConfigError, match="has no deployment"):
        ModelGroup("g", [])
    with pytest.raises(errors.ConfigError, match="weight must be a number > 0"):
        Deployment("a", "m", weight=0)
    with pytest.raises(errors.ConfigError, match="must be written PROVIDER/MODEL"):
        ModelGroup("g", ["just-a-model"])
    with pytest.raises(errors.ConfigError, match="fallback 'missing' is not a model group"):
        AsyncClient(env={}, models=[ModelGroup("g", ["openai/m"], fallbacks=["missing"])])
    with pytest.raises(errors.ConfigError, match="unknown strategy 'nope'"):
        AsyncClient(env={}, models=[ModelGroup("g", ["openai/m"], strategy="nope")])
