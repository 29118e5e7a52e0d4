"""``HealthChecks``: the router's health report, active checks and manual overrides.

A mixin of ``Router`` (kept apart so the routing loop stays readable): it reads
the breakers, cooldowns and the ``HealthMonitor`` the router keeps, and runs a
cheap authenticated call per provider (``test_connection``) for active checks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import errors
from ..resilience import CircuitBreaker, Cooldown
from ..state.base import StateBackend
from .groups import Deployment, ModelGroup, RoutingSettings
from .health import CheckResult, DeploymentHealth, HealthMonitor, status_of

if TYPE_CHECKING:
    from ..providers.base import Provider

log = logging.getLogger("llmrelay.router")


class HealthChecks:
    """What ``Router`` provides to these methods."""

    groups: dict[str, ModelGroup]
    settings: RoutingSettings
    state: StateBackend
    breaker: CircuitBreaker
    cooldown: Cooldown
    monitor: HealthMonitor
    _provider_for: Callable[[str], Provider]
    _checker: asyncio.Task[None] | None

    def deployments(self, group: str | None = None) -> list[tuple[str, Deployment]]:
        """``(group name, deployment)`` pairs, for one group or all."""
        names = [group] if group is not None else list(self.groups)
        for name in names:
            if name not in self.groups:
                raise errors.NotFound(f"unknown model group {name!r}")
        return [(name, dep) for name in names for dep in self.groups[name].members]

    async def health(self, group: str | None = None) -> list[DeploymentHealth]:
        """Every deployment's health, as the CLI and the gateway show it."""
        report = []
        for name, dep in self.deployments(group):
            stats = self.monitor.stats(dep.id)
            manual, check = await self.monitor.shared(dep.id)
            breaker = (await self.breaker.state_of(dep.id)).state.value
            cooling = await self.cooldown.remaining(dep.id)
            score = self.monitor.score(dep.id)
            status, reason = status_of(score, breaker, cooling, manual, check)
            try:
                self._provider_for(dep.provider)
            except errors.LLMError as exc:  # no key, unknown provider: it cannot answer at all
                status, reason = "unhealthy", f"not usable: {exc.message}"
            report.append(
                DeploymentHealth(
                    name,
                    dep.id,
                    status,
                    reason,
                    round(score, 3),
                    breaker,
                    round(cooling, 3),
                    stats.in_flight,
                    stats.calls,
                    stats.failures,
                    _ms(stats.latency_s),
                    _ms(stats.ttft_s),
                    stats.last_error,
                    check,
                    manual,
                    tuple(stats.errors),
                )
            )
        return report

    async def check_now(self, group: str | None = None) -> list[DeploymentHealth]:
        """Run an active check of every deployment now (one ``test_connection``
        per provider) and return the health report (which says what failed: the
        background checker logs it, a caller of this shows the report)."""
        return await self._check(group, warn=False)

    async def _check(self, group: str | None, *, warn: bool) -> list[DeploymentHealth]:
        pairs = self.deployments(group)
        by_provider: dict[str, list[Deployment]] = {}
        for _, dep in pairs:
            by_provider.setdefault(dep.provider, []).append(dep)
        interval = self.settings.health_check_interval_s
        ttl = 3 * interval if interval else None
        results = await asyncio.gather(*(self._check_provider(name) for name in by_provider))
        for (name, deps), result in zip(by_provider.items(), results, strict=True):
            for dep in deps:
                await self.monitor.set_check(dep.id, result, ttl)
            if warn and not result.ok:
                log.warning("health check of provider %s failed: %s", name, result.error)
        return await self.health(group)

    async def _check_provider(self, name: str) -> CheckResult:
        try:
            provider = self._provider_for(name)
            async with asyncio.timeout(self.settings.timeout_s or 30.0):
                check = await provider.test_connection()
        except errors.LLMError as exc:
            return CheckResult(False, time.time(), describe(exc))
        except TimeoutError:
            return CheckResult(False, time.time(), "no answer to the health check in time")
        return CheckResult(check.ok, time.time(), None if check.ok else check.detail)

    async def set_health(self, deployment: str, healthy: bool | None) -> None:
        """``False``: take ``deployment`` (its id, ``provider/model``) out of service;
        ``True``: force it in (breaker and cooldown cleared); ``None``: back to automatic."""
        if not any(dep.id == deployment for _, dep in self.deployments()):
            known = ", ".join(sorted({dep.id for _, dep in self.deployments()}))
            raise errors.NotFound(f"unknown deployment {deployment!r} (known: {known})")
        await self.monitor.set_manual(deployment, healthy)
        if healthy:
            await self.breaker.reset(deployment)
            await self.state.delete(f"cooldown:{deployment}")
            self.monitor.forget(deployment)

    def _ensure_checker(self) -> None:
        interval = self.settings.health_check_interval_s
        if interval is None or (self._checker is not None and not self._checker.done()):
            return
        self._checker = asyncio.get_running_loop().create_task(self._check_forever(interval))

    async def _check_forever(self, interval: float) -> None:
        while True:
            try:
                await self._check(None, warn=True)
            except Exception:
                log.exception("background health check failed")
            await asyncio.sleep(interval)


def describe(exc: errors.LLMError) -> str:
    """One line for an error: class, status and the start of its message."""
    status = f" {exc.status_code}" if exc.status_code else ""
    return f"{type(exc).__name__}{status}: {exc.message[:160]}"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


__all__ = ["HealthChecks", "describe"]
