"""Routing: model groups of deployments, balancing strategies, retries,
timeouts, circuit breakers, health, fallbacks, stream failover and continuation,
hedged requests and capability-aware routing.

``AsyncClient`` builds a ``Router`` from the config (``models:`` and
``routing:``) and sends every call through it; a ``PROVIDER/MODEL`` name is a
group of one deployment.
"""

from __future__ import annotations

from .capabilities import Accepts
from .groups import Deployment, ModelGroup, RoutingSettings, fallback_chain, to_deployment
from .health import CheckResult, DeploymentHealth, HealthStatus
from .hedge import Hedge
from .records import AttemptRecord, CallTrace, Hook
from .router import Router, verdict
from .strategies import Candidate, Strategy, register_strategy, strategy_names

__all__ = [
    "Accepts",
    "AttemptRecord",
    "CallTrace",
    "Candidate",
    "CheckResult",
    "Deployment",
    "DeploymentHealth",
    "HealthStatus",
    "Hedge",
    "Hook",
    "ModelGroup",
    "Router",
    "RoutingSettings",
    "Strategy",
    "fallback_chain",
    "register_strategy",
    "strategy_names",
    "to_deployment",
    "verdict",
]
