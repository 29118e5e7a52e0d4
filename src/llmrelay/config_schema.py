"""The YAML config schema (pydantic; imported only when a config file is read).

Every model forbids unknown keys, so a typo is an error naming the key and line.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class DeploymentEntry(_Strict):
    provider: str
    model: str
    weight: float = Field(1.0, gt=0)
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)
    input_per_mtok: float | None = Field(None, ge=0)
    """USD per million prompt tokens (with ``output_per_mtok``): wins over the catalogue's price."""
    output_per_mtok: float | None = Field(None, ge=0)
    cached_input_per_mtok: float | None = Field(None, ge=0)
    max_output_tokens: int | None = Field(None, gt=0)
    """The most tokens an answer from here holds, where the catalogue does not know it."""


class ModelGroupEntry(_Strict):
    name: str
    deployments: list[DeploymentEntry] = Field(min_length=1)
    fallbacks: list[str] = []
    strategy: str | None = None
    cache: bool = False
    semantic_cache: bool = False
    coalesce: bool = False
    embed_batch_ms: float = Field(0, ge=0)


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


class ConfigFile(_Strict):
    providers: list[ProviderEntry] = []
    models: list[ModelGroupEntry] = []
    routing: RoutingEntry = RoutingEntry()
    cache: CacheEntry = CacheEntry()
    state: StateEntry = StateEntry()
    store: StoreEntry = StoreEntry()
    auth: AuthEntry = AuthEntry()
    server: ServerEntry = ServerEntry()
    default_model: str | None = None
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)

    @property
    def lines(self) -> dict[tuple[Any, ...], int]:
        """Where each entry is in the file (filled by the loader, for error messages)."""
        return self._lines
