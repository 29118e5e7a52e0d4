"""The YAML config schema (pydantic; imported only when a config file is read).

Every model forbids unknown keys, so a typo is an error naming the key and line.
``validate`` reports all of pydantic's errors at once; ``check_references`` the
names one entry gives another (providers, fallbacks), which no single entry's
schema can see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from .config_errors import Loc, Problems, closest, did_you_mean
from .router.groups import MAX_EMBED_BATCH_MS, cycles
from .router.hedge import MAX_HEDGES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _known(what: str, value: str, known: Sequence[str]) -> str:
    """``value`` if it is one of ``known``; else a ``ValueError`` listing them."""
    if value not in known:
        raise ValueError(f"unknown {what} {value!r}{did_you_mean(value, known)} (known: {', '.join(known)})")
    return value


def _check_strategy(name: str | None) -> str | None:
    from .router.strategies import strategy_names

    return name if name is None else _known("strategy", name, strategy_names())


class ProviderEntry(_Strict):
    name: str
    kind: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0)
    stream_idle_timeout_s: float | None = Field(None, gt=0)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # may carry credentials
    api_version: str | None = None
    organization: str | None = None
    deployments: dict[str, str] = {}
    quirks: str | None = None
    region: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Kind-specific settings passed to the provider as they are (e.g. Bedrock's
    aws_access_key_id / aws_secret_access_key / aws_session_token)."""

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from .providers import known_kinds

        return _known("kind", kind, known_kinds())

    @field_validator("quirks")
    @classmethod
    def _known_quirks(cls, quirks: str | None) -> str | None:
        from .providers.openai.compat import COMPAT_KINDS

        return quirks if quirks is None else _known("quirks", quirks, list(COMPAT_KINDS))


class CapabilitiesEntry(_Strict):
    """What a deployment accepts, over the catalogue's facts (``router/capabilities.py``);
    an unset key stays the catalogue's (unknown: accepted)."""

    tools: bool | None = None
    parallel_tool_calls: bool | None = None
    images: bool | None = None
    audio: bool | None = None
    json_schema: bool | None = None
    context_window: int | None = Field(None, gt=0)
    max_output_tokens: int | None = Field(None, gt=0)


class DeploymentEntry(_Strict):
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)
    input_per_mtok: float | None = Field(None, ge=0, allow_inf_nan=False)
    """USD per million prompt tokens (with ``output_per_mtok``): wins over the catalogue's price."""
    output_per_mtok: float | None = Field(None, ge=0, allow_inf_nan=False)
    cached_input_per_mtok: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_output_tokens: int | None = Field(None, gt=0)
    """The most tokens an answer from here holds, where the catalogue does not know it."""
    capabilities: CapabilitiesEntry | None = None
    """What requests this deployment can take (tools, images, context window...): wins over the catalogue."""

    @model_validator(mode="after")
    def _both_prices(self) -> DeploymentEntry:
        prices = (self.input_per_mtok, self.output_per_mtok, self.cached_input_per_mtok)
        if any(p is not None for p in prices) and None in prices[:2]:
            raise ValueError("set both input_per_mtok and output_per_mtok (USD per million tokens; 0 for free)")
        return self


class HedgeEntry(_Strict):
    after_ms: float | Literal["p95"] = Field(union_mode="left_to_right")
    """Milliseconds without a first token before one more attempt starts, or "p95": the deployment's own."""
    max: int = Field(1, ge=1, le=MAX_HEDGES)

    @field_validator("after_ms")
    @classmethod
    def _positive(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not (math.isfinite(value) and value > 0):
            raise ValueError('after_ms must be a number of milliseconds > 0, or "p95"')
        return value


class ModelGroupEntry(_Strict):
    name: str = Field(min_length=1)
    deployments: list[DeploymentEntry] = Field(min_length=1)
    fallbacks: list[str] = []
    strategy: str | None = None
    cache: bool = False
    semantic_cache: bool = False
    coalesce: bool = False
    embed_batch_ms: float = Field(0, ge=0, le=MAX_EMBED_BATCH_MS)
    stream_resume: bool = False
    """A stream cut after its first token goes on where it stopped, on a deployment that can continue it."""
    hedge: HedgeEntry | None = None
    """One more attempt elsewhere when the first is slow to its first token."""

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str | None) -> str | None:
        return _check_strategy(name)


class BreakerEntry(_Strict):
    failures: int = Field(default=5, ge=1)
    recovery_s: float = Field(default=30.0, ge=0)
    failure_rate: float | None = Field(default=None, gt=0, le=1)
    min_calls: int = Field(default=20, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)
    count_rate_limits: bool = False


class RoutingEntry(_Strict):
    strategy: str = "health"
    retries: int = Field(default=2, ge=0, le=100)
    timeout_s: float | None = Field(default=120.0, gt=0)
    deadline_s: float | None = Field(default=300.0, gt=0)
    stream_idle_s: float | None = Field(default=60.0, gt=0)
    backoff_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    max_retry_after_s: float = Field(default=60.0, ge=0)
    cooldown_s: float = Field(default=5.0, ge=0)
    cooldowns: bool = True
    wait_for_capacity: bool = True
    health_check_interval_s: float | None = Field(default=None, gt=0)
    circuit_breaker: BreakerEntry = BreakerEntry()
    seed: int | None = None

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str | None) -> str | None:
        return _check_strategy(name)


class StateEntry(_Strict):
    backend: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "llmrelay:"
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    """How long one operation may wait for Redis: a silent Redis fails fast (503), never hangs."""


class SemanticEntry(_Strict):
    threshold: float = Field(default=0.95, gt=0, le=1)
    """Cosine similarity (of local MiniLM embeddings) at or above which a cached answer is reused."""
    max_entries: int = Field(default=1000, ge=1)
    """Entries kept per namespace (tenant, group, conversation so far, parameters)."""


class CacheEntry(_Strict):
    backend: Literal["memory", "redis"] = "memory"
    url: str = Field(default="redis://127.0.0.1:6379/0", repr=False)  # may carry a password
    prefix: str = "llmrelay:cache:"
    ttl_s: float = Field(default=300, gt=0)
    max_bytes: int = Field(default=64_000_000, ge=1)
    """Size cap of the in-memory backend (LRU); Redis bounds itself (maxmemory)."""
    semantic: SemanticEntry = SemanticEntry()


class StoreEntry(_Strict):
    url: str | None = Field(default=None, repr=False)  # may carry a password
    """Database URL (``sqlite:///path`` or ``postgresql://...``); ``None``: SQLite next to the config file."""
    spool_dir: str | None = None
    """Where the gateway keeps usage records it cannot queue (Redis down) until they are written;
    relative to the config file. ``None``: ``llmrelay-spool`` beside the SQLite store or the config."""


class AuthEntry(_Strict):
    master_key: SecretStr | None = None
    """The operator's key (``LLMRELAY_MASTER_KEY`` when unset)."""
    open: bool = False
    """Serve without any key when there is no master key (local use only)."""


class ServerEntry(_Strict):
    """Limits of the gateway's HTTP server (per worker process)."""

    header_timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    body_timeout_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    max_connections: int = Field(default=2048, gt=0)
    max_body_mb: float = Field(default=16.0, gt=0)
    write_timeout_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    max_header_kb: int = Field(default=64, gt=0)
    dashboard: bool = True
    """Serve the dashboard at ``/ui`` (the admin API serves its data either way)."""


class TelemetryEntry(_Strict):
    """OpenTelemetry traces (the ``otel`` extra): see llmrelay/telemetry."""

    enabled: bool = False
    service_name: str | None = None
    endpoint: str | None = None
    """The OTLP/HTTP traces URL; unset: ``OTEL_EXPORTER_OTLP_*``, else http://localhost:4318/v1/traces."""
    headers: dict[str, str] = {}
    capture_content: bool = False


class ConfigFile(_Strict):
    providers: list[ProviderEntry] = []
    models: list[ModelGroupEntry] = []
    routing: RoutingEntry = RoutingEntry()
    cache: CacheEntry = CacheEntry()
    state: StateEntry = StateEntry()
    store: StoreEntry = StoreEntry()
    auth: AuthEntry = AuthEntry()
    server: ServerEntry = ServerEntry()
    telemetry: TelemetryEntry = TelemetryEntry()
    default_model: str | None = None
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)

    @property
    def lines(self) -> dict[tuple[Any, ...], int]:
        """Where each entry is in the file (filled by the loader, for error messages)."""
        return self._lines


# ---------------------------------------------------------------- reporting every mistake


def validate(data: dict[str, Any], problems: Problems) -> ConfigFile | None:
    """``data`` as a ``ConfigFile``; ``None`` with every schema error added to ``problems``."""
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        found = exc.errors(include_url=False)
        misspelt = _misspelt(found)
        for err in found:
            loc = tuple(err["loc"])
            if err["type"] == "missing" and loc in misspelt:
                continue  # said once, as the misspelt key's "did you mean"
            if loc not in problems.unread or err["type"] == "extra_forbidden":  # a bad key, whatever its value
                problems.add(loc, "" if problems.full else _explain(err))
        return None


def _misspelt(found: list[ErrorDetails]) -> set[Loc]:
    """Required keys missing because they were misspelt: an unknown key beside them is close."""
    out: set[Loc] = set()
    for err in found:
        if err["type"] == "extra_forbidden":
            loc = tuple(err["loc"])
            close = closest(str(loc[-1]), keys_at(loc[:-1]))
            if close is not None:
                out.add((*loc[:-1], close))
    return out


def _explain(err: ErrorDetails) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        return "unknown key" + did_you_mean(str(loc[-1]), keys_at(loc[:-1]))
    if err["type"] == "value_error":  # our validators' messages, without pydantic's "Value error, "
        return str(err.get("ctx", {}).get("error", err["msg"]))
    return err["msg"]


def keys_at(loc: Loc) -> list[str]:
    """The keys the schema allows in the mapping at ``loc`` (none for free-form ones like ``headers``)."""
    model: type[BaseModel] | None = ConfigFile
    for part in loc:
        if isinstance(part, str) and model is not None:
            info = model.model_fields.get(part)
            model = _model_in(info.annotation) if info else None
    return list(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model in an annotation: ``ProviderEntry`` in ``list[ProviderEntry]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def check_references(data: dict[str, Any], providers: AbstractSet[str], problems: Problems) -> None:
    """Names one entry gives another: a deployment's provider (one of ``providers:``
    or of ``providers``, the environment's and the known kinds), a group's fallbacks,
    group names used twice, fallback cycles. Reads the parsed data, so it runs even
    when some entries are invalid (the schema reports those). Values that could not
    be read (an unset variable) are left to the problem already said about them."""
    declared = _unique_names("providers", "provider", data, problems)
    known = {*providers, *declared}
    groups = _items(data.get("models"))
    names = _unique_names("models", "model group", data, problems)
    for i, group in groups:
        for j, dep in _items(group.get("deployments")):
            provider, loc = dep.get("provider"), ("models", i, "deployments", j, "provider")
            if loc in problems.unread:
                continue
            if isinstance(provider, str) and provider and provider not in known:
                message = f"unknown provider {provider!r}{did_you_mean(provider, sorted(known))}"
                problems.add(loc, message)
    _check_fallbacks(groups, names, problems)


def _unique_names(section: str, what: str, data: dict[str, Any], problems: Problems) -> list[str]:
    """The ``name:``s of a section's entries, each once; one given twice is a problem."""
    first: dict[str, int] = {}
    for i, entry in _items(data.get(section)):
        name = entry.get("name")
        if not isinstance(name, str) or (section, i, "name") in problems.unread:
            continue
        if name in first:
            problems.add((section, i), f"{what} {name!r} is defined twice (first at line {first[name]})")
        else:
            first[name] = problems.lines.get((section, i), 1)
    return list(first)


def _check_fallbacks(groups: list[tuple[int, dict[str, Any]]], names: list[str], problems: Problems) -> None:
    graph: dict[str, list[tuple[Loc, str]]] = {name: [] for name in names}
    for i, group in groups:
        fallbacks, name = group.get("fallbacks"), group.get("name")
        for k, fallback in enumerate(fallbacks if isinstance(fallbacks, list) else []):
            loc = ("models", i, "fallbacks", k)
            if not isinstance(fallback, str) or loc in problems.unread:
                continue  # the schema's to report, or already said
            if fallback == name:
                problems.add(loc, f"model group {name!r} lists itself as a fallback")
            elif fallback not in graph:
                suggestion = did_you_mean(fallback, names)
                problems.add(loc, f"{fallback!r} is not a model group{suggestion} (groups: {', '.join(names)})")
            elif isinstance(name, str):
                graph[name].append((loc, fallback))
    for loc, cycle in cycles(graph):
        problems.add(loc, f"fallbacks form a cycle: {' -> '.join(cycle)}")


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The mappings in a parsed list, with their indexes (anything else is the schema's to report)."""
    return [(i, x) for i, x in enumerate(value) if isinstance(x, dict)] if isinstance(value, list) else []
