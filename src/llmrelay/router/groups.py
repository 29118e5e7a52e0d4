"""Model groups and routing settings: what the router serves and how.

A model group is one name clients ask for, served by several deployments
(a provider + the model's name there + weight and limits). Groups come from the
YAML ``models:`` section or from code::

    ModelGroup("smart", ["openai/gpt-4o", Deployment("anthropic", "claude-sonnet-4-5", weight=2)],
               fallbacks=["cheap"], strategy="least_busy")
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from .. import errors
from ..cost import Prices
from ..resilience import BreakerConfig, RateLimits
from .capabilities import Accepts
from .hedge import Hedge, to_hedge

if TYPE_CHECKING:
    from .strategies import Strategy


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model group can be served from.

    ``id`` names it in health reports, breakers and responses: ``provider/model``,
    with ``#2``, ``#3``... for repeats within a group. ``timeout_s`` bounds one
    attempt here (the time to the first token, for streams); ``None`` takes the
    routing default. ``prices`` replace the catalogue's for answers from here
    (self-hosted models, negotiated rates, models the catalogue lacks);
    ``max_output_tokens`` is the most an answer from here can hold, where the
    catalogue does not know it (budgets reserve it for requests without
    ``max_tokens``; routing refuses a larger ``max_tokens`` here). ``accepts`` says
    what requests this deployment can take, over the catalogue's facts (an
    ``Accepts`` or a mapping of its fields; YAML ``capabilities:``): a request that
    needs what it lacks goes to another deployment (``capabilities.py``).
    """

    provider: str
    model: str
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    timeout_s: float | None = None
    id: str = ""
    prices: Prices | None = None
    max_output_tokens: int | None = None
    accepts: Accepts | None = None

    def __post_init__(self) -> None:
        where = f"deployment {self.provider}/{self.model}"
        if not self.provider or not self.model:
            raise errors.ConfigError(f"a deployment needs a provider and a model, got {self.provider!r}/{self.model!r}")
        if not (isinstance(self.weight, int | float) and math.isfinite(self.weight) and self.weight > 0):
            raise errors.ConfigError(f"{where}: weight must be a number > 0, not {self.weight!r}")
        for name in ("rpm", "tpm", "timeout_s", "max_output_tokens"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise errors.ConfigError(f"{where}: {name} must be > 0, not {value!r}")
        if not self.id:
            object.__setattr__(self, "id", f"{self.provider}/{self.model}")
        if self.accepts is not None and not isinstance(self.accepts, Accepts):
            try:
                object.__setattr__(self, "accepts", Accepts.of(self.accepts))
            except errors.ConfigError as exc:
                raise errors.ConfigError(f"{where}: {exc.message}") from None

    @property
    def limits(self) -> RateLimits | None:
        return None if self.rpm is None and self.tpm is None else RateLimits(rpm=self.rpm, tpm=self.tpm)


DeploymentLike = Deployment | str | Mapping[str, Any]


def to_deployment(spec: DeploymentLike) -> Deployment:
    """A ``Deployment`` from itself, ``"provider/model"`` or a mapping of its fields."""
    if isinstance(spec, Deployment):
        return spec
    if isinstance(spec, str):
        provider, sep, model = spec.partition("/")
        if not sep:
            raise errors.ConfigError(f"deployment {spec!r} must be written PROVIDER/MODEL")
        return Deployment(provider, model)
    if isinstance(spec, Mapping):
        try:
            return Deployment(**spec)
        except TypeError as exc:
            raise errors.ConfigError(f"deployment {dict(spec)!r}: {exc}") from None
    raise errors.ConfigError(f"a deployment is a Deployment, 'provider/model' or a mapping, not {spec!r}")


MAX_EMBED_BATCH_MS = 1000.0
"""The longest embedding micro-batching window: a few ms is the point; a second already
costs every caller more than it could save."""


@dataclass(slots=True)
class ModelGroup:
    """A model name served by ``deployments``; ``fallbacks`` are tried, in order,
    when no deployment here can answer. ``strategy`` is a registered name or a
    ``Strategy`` object (``None``: the routing default). ``embed_batch_ms``: how long
    an embeddings call waits for others to the same deployment to go upstream with
    (``embed_batch.py``); 0, the default, sends each call on its own. ``stream_resume``:
    a stream cut after its first token goes on from where it stopped on a deployment
    that can continue an answer (``docs/routing.md``), instead of ending with
    ``StreamInterrupted``. ``hedge``: start one more attempt elsewhere when the first
    is slow to its first token (``hedge.py``; ``{"after_ms": 300 | "p95", "max": 1}``)."""

    name: str
    deployments: Sequence[DeploymentLike]
    fallbacks: Sequence[str] = ()
    strategy: str | Strategy | None = None
    cache: bool = False
    semantic_cache: bool = False
    coalesce: bool = False
    embed_batch_ms: float = 0.0
    stream_resume: bool = False
    hedge: Hedge | Mapping[str, Any] | None = None
    members: tuple[Deployment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise errors.ConfigError("a model group needs a name")
        if not self.deployments:
            raise errors.ConfigError(f"model group {self.name!r} has no deployment")
        deployments = [to_deployment(d) for d in self.deployments]
        seen: dict[str, int] = {}
        for i, dep in enumerate(deployments):
            seen[dep.id] = seen.get(dep.id, 0) + 1
            if seen[dep.id] > 1:
                deployments[i] = _with_id(dep, f"{dep.id}#{seen[dep.id]}")
        self.deployments = self.members = tuple(deployments)
        self.fallbacks = tuple(self.fallbacks)
        try:
            self.hedge = to_hedge(self.hedge)
        except errors.ConfigError as exc:
            raise errors.ConfigError(f"model group {self.name!r}: {exc.message}") from None
        if self.name in self.fallbacks:
            raise errors.ConfigError(f"model group {self.name!r} lists itself as a fallback")
        if not (isinstance(self.embed_batch_ms, int | float) and 0 <= self.embed_batch_ms <= MAX_EMBED_BATCH_MS):
            window = self.embed_batch_ms
            raise errors.ConfigError(
                f"model group {self.name!r}: embed_batch_ms must be 0 to {MAX_EMBED_BATCH_MS:g}, not {window!r}"
            )


def _with_id(dep: Deployment, new_id: str) -> Deployment:
    return replace(dep, id=new_id)


def fallback_chain(name: str, groups: Mapping[str, ModelGroup]) -> list[ModelGroup]:
    """``name``'s group, then its fallbacks depth first, each group once (without
    recursion: a config may chain any number of groups)."""
    chain: list[ModelGroup] = []
    seen: set[str] = set()
    stack = [name]
    while stack:
        group_name = stack.pop()
        if group_name in seen:
            continue
        seen.add(group_name)
        group = groups[group_name]
        chain.append(group)
        stack.extend(reversed(group.fallbacks))
    return chain


E = TypeVar("E")


def cycles(graph: Mapping[str, Sequence[tuple[E, str]]]) -> Iterator[tuple[E, list[str]]]:
    """Each edge ``(label, to)`` of ``graph`` that closes a cycle, with the cycle's names
    (a depth-first walk without recursion)."""
    seen: set[str] = set()  # on the current path, or done
    done: set[str] = set()
    for root in graph:
        if root in seen:
            continue
        seen.add(root)
        path, steps = [root], [iter(graph[root])]
        while steps:
            step = next(steps[-1], None)
            if step is None:
                done.add(path.pop())
                steps.pop()
            elif step[1] not in seen:
                seen.add(step[1])
                path.append(step[1])
                steps.append(iter(graph.get(step[1], ())))
            elif step[1] not in done:
                yield step[0], [*path[path.index(step[1]) :], step[1]]


def check_groups(groups: Mapping[str, ModelGroup], strategies: Iterable[str]) -> None:
    """Fallbacks name known groups and form no cycle; strategy names are known."""
    known = set(strategies)
    for group in groups.values():
        if isinstance(group.strategy, str) and group.strategy not in known:
            raise errors.ConfigError(
                f"model group {group.name!r}: unknown strategy {group.strategy!r} (known: {', '.join(sorted(known))})"
            )
        for fallback in group.fallbacks:
            if fallback not in groups:
                raise errors.ConfigError(f"model group {group.name!r}: fallback {fallback!r} is not a model group")
    graph = {name: [(name, f) for f in group.fallbacks] for name, group in groups.items()}
    for _, cycle in cycles(graph):
        raise errors.ConfigError(f"model group fallbacks form a cycle: {' -> '.join(cycle)}")


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """How the router retries, times out and balances (the YAML ``routing:`` section).

    - ``strategy``: the default for groups that name none.
    - ``retries``: further attempts per group after the first (each may go to
      another deployment); fallback groups get their own.
    - ``timeout_s``: one attempt (to the first token, for streams); a
      deployment's ``timeout_s`` overrides it.
    - ``deadline_s``: the whole call: attempts, backoff and waits for capacity.
      Once a stream has begun, only ``stream_idle_s`` bounds it.
    - ``stream_idle_s``: the longest gap between two stream events.
    - ``backoff_s`` / ``backoff_max_s``: full-jitter exponential backoff, used
      when no untried deployment is left.
    - ``max_retry_after_s``: a server asking for a longer wait than this is left
      alone for that long, and the call moves on.
    - ``cooldown_s``: how long a 429 without ``retry-after`` rests a deployment
      (with one, the server's wait); ``cooldowns=False``: 429s rest nothing.
    - ``wait_for_capacity``: when every deployment is cooling down, rate limited
      or has an open breaker, wait (within the deadline) for the earliest.
    - ``health_check_interval_s``: active checks in the background (``None``: off).
    - ``seed``: makes strategy choices and jitter reproducible.
    """

    strategy: str = "health"
    retries: int = 2
    timeout_s: float | None = 120.0
    deadline_s: float | None = 300.0
    stream_idle_s: float | None = 60.0
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    max_retry_after_s: float = 60.0
    cooldown_s: float = 5.0
    cooldowns: bool = True
    wait_for_capacity: bool = True
    health_check_interval_s: float | None = None
    circuit_breaker: BreakerConfig = field(default_factory=BreakerConfig)
    seed: int | None = None

    @classmethod
    def passthrough(cls) -> RoutingSettings:
        """Every router feature off: one attempt, no timeouts of the router's own,
        no waiting, no cooldowns, breakers that never open; round robin. Each call
        sees the provider's own answer or error (benchmarks' baseline, tests)."""
        return cls(
            strategy="round_robin",
            retries=0,
            timeout_s=None,
            deadline_s=None,
            stream_idle_s=None,
            cooldowns=False,
            wait_for_capacity=False,
            circuit_breaker=BreakerConfig(failure_threshold=2**31 - 1),
        )

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise errors.ConfigError(f"routing: retries must be >= 0, not {self.retries!r}")
        for name in ("timeout_s", "deadline_s", "stream_idle_s", "health_check_interval_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise errors.ConfigError(f"routing: {name} must be > 0 (or unset), not {value!r}")
        for name in ("backoff_s", "backoff_max_s", "max_retry_after_s", "cooldown_s"):
            if not getattr(self, name) >= 0:
                raise errors.ConfigError(f"routing: {name} must be >= 0, not {getattr(self, name)!r}")


__all__ = [
    "Deployment",
    "ModelGroup",
    "RoutingSettings",
    "check_groups",
    "fallback_chain",
    "to_deployment",
]
