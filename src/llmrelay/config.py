"""Configuration: the environment variables users of the official SDKs already
set, and the YAML file of DESIGN.md (``LLMRELAY_CONFIG``).

YAML is validated strictly: an unknown key or a wrong type is a ``ConfigError``
naming the entry and its line. ``${VAR}`` reads the environment (an unset
variable is an error; ``${VAR:-default}`` gives a default). Every mistake in a
file is reported at once, in one ``ConfigError`` (``config_errors.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import errors
from ._http import Timeouts
from ._secret import Secret
from .cache.options import CacheSettings
from .providers.base import ProviderConfig

if TYPE_CHECKING:
    from .config_schema import ConfigFile, DeploymentEntry, ProviderEntry, RoutingEntry
    from .router.groups import Deployment, ModelGroup, RoutingSettings

# ---------------------------------------------------------------- loaded settings


@dataclass(slots=True)
class Settings:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: dict[str, ModelGroup] = field(default_factory=dict)
    routing: RoutingSettings | None = None
    state_url: str | None = field(default=None, repr=False)  # a Redis URL may carry a password
    """Redis URL of the shared state (``state: {backend: redis}``); ``None``: in memory."""
    state_prefix: str = "llmrelay:"
    state_timeout_s: float = 2.0
    """How long a state operation may wait for Redis before it fails (``StateUnavailable``)."""
    store_url: str | None = field(default=None, repr=False)  # a database URL may carry a password
    """Database URL of the store (``store: {url: ...}``, relative SQLite paths made
    absolute against the config file's directory); ``None``: the default, see
    ``llmrelay.store.default_store_url``."""
    spool_dir: str | None = None
    """The gateway ledger's spool (``store: {spool_dir: ...}``); ``None``: see ``store.default_spool_dir``."""
    file: ConfigFile | None = field(default=None, repr=False)
    path: Path | None = None
    default_model: str | None = None
    cache: CacheSettings = field(default_factory=CacheSettings)
    """The config's ``cache:`` section (backend, ttl_s, max_bytes, semantic)."""


SECRET_OPTIONS = frozenset(("aws_secret_access_key", "aws_session_token", "azure_ad_token"))
"""Provider options that are credentials (held as ``Secret``)."""


def provider_config(entry: ProviderEntry) -> ProviderConfig:
    options: dict[str, Any] = {
        k: Secret(v) if k in SECRET_OPTIONS and isinstance(v, str) else v for k, v in entry.options.items()
    }
    for key in ("api_version", "organization", "quirks", "region"):
        value = getattr(entry, key)
        if value is not None:
            options[key] = value
    if entry.deployments:
        options["deployments"] = dict(entry.deployments)
    return ProviderConfig(
        name=entry.name,
        kind=entry.kind,
        base_url=entry.base_url,
        api_key=Secret(entry.api_key.get_secret_value()) if entry.api_key else None,
        timeouts=Timeouts(
            connect=entry.connect_timeout_s,
            read=entry.read_timeout_s,
            total=entry.timeout_s,
            stream_idle=entry.stream_idle_timeout_s,
        ),
        headers=dict(entry.headers),
        options=options,
    )


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` (or ``LLMRELAY_CONFIG``) on top of the environment."""
    env = os.environ if env is None else env
    settings = Settings(providers=providers_from_env(env), default_model=env.get("LLMRELAY_DEFAULT_MODEL") or None)
    path = path or env.get("LLMRELAY_CONFIG") or None
    if path is None:
        return settings
    from .providers import known_kinds

    file = load_file(Path(path), env, set(settings.providers) | set(known_kinds()))
    for entry in file.providers:
        settings.providers[entry.name] = provider_config(entry)
    settings.models = model_groups(file, path)
    settings.routing = routing_settings(file.routing)
    if file.state.backend == "redis":
        settings.state_url, settings.state_prefix = file.state.url, file.state.prefix
        settings.state_timeout_s = file.state.timeout_s
    c = file.cache
    settings.cache = CacheSettings(
        c.backend, c.url, c.prefix, c.ttl_s, c.max_bytes, c.semantic.threshold, c.semantic.max_entries
    )
    if file.store.url:
        from .store.location import resolve_sqlite_path

        settings.store_url = resolve_sqlite_path(file.store.url, Path(path).resolve().parent)
    if file.store.spool_dir:
        settings.spool_dir = str(Path(path).resolve().parent / Path(file.store.spool_dir).expanduser())
    settings.file = file
    settings.path = Path(path)
    settings.default_model = settings.default_model or file.default_model
    return settings


def model_groups(file: ConfigFile, path: str | os.PathLike[str]) -> dict[str, ModelGroup]:
    """The ``models:`` entries (checked by ``load_file``: strategies, fallbacks and
    their cycles included) as ``ModelGroup``s."""
    from .config_errors import Problems
    from .router.groups import ModelGroup

    groups: dict[str, ModelGroup] = {}
    problems = Problems(path, file.lines, file)  # what the groups' own checks may still find
    for i, entry in enumerate(file.models):
        try:
            groups[entry.name] = ModelGroup(
                entry.name,
                [_deployment(dep) for dep in entry.deployments],
                entry.fallbacks,
                entry.strategy,
                entry.cache,
                entry.semantic_cache,
                entry.coalesce,
                entry.embed_batch_ms,
                entry.stream_resume,
                entry.hedge.model_dump() if entry.hedge is not None else None,
            )
        except errors.ConfigError as exc:
            problems.add(("models", i), exc.message)
    problems.raise_if_any()
    return groups


def _deployment(entry: DeploymentEntry) -> Deployment:
    from .cost import Prices
    from .router.capabilities import Accepts
    from .router.groups import Deployment

    fields = entry.model_dump()
    priced = {k: fields.pop(k) for k in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok")}
    prices = Prices(**priced) if any(v is not None for v in priced.values()) else None  # both, says the schema
    stated = {k: v for k, v in (fields.pop("capabilities") or {}).items() if v is not None}
    return Deployment(**fields, prices=prices, accepts=Accepts(**stated) if stated else None)


def routing_settings(entry: RoutingEntry) -> RoutingSettings:
    """The ``routing:`` section (checked by ``load_file``) as ``RoutingSettings``."""
    from .resilience import BreakerConfig
    from .router.groups import RoutingSettings

    cb = entry.circuit_breaker
    return RoutingSettings(
        strategy=entry.strategy,
        retries=entry.retries,
        timeout_s=entry.timeout_s,
        deadline_s=entry.deadline_s,
        stream_idle_s=entry.stream_idle_s,
        backoff_s=entry.backoff_s,
        backoff_max_s=entry.backoff_max_s,
        max_retry_after_s=entry.max_retry_after_s,
        cooldown_s=entry.cooldown_s,
        cooldowns=entry.cooldowns,
        wait_for_capacity=entry.wait_for_capacity,
        health_check_interval_s=entry.health_check_interval_s,
        circuit_breaker=BreakerConfig(
            failure_threshold=cb.failures,
            recovery_s=cb.recovery_s,
            half_open_probes=cb.half_open_probes,
            failure_rate=cb.failure_rate,
            rate_window_s=cb.window_s,
            rate_min_calls=cb.min_calls,
            count_rate_limits=cb.count_rate_limits,
        ),
        seed=entry.seed,
    )


def load_file(path: Path, env: Mapping[str, str], providers: AbstractSet[str] = frozenset()) -> ConfigFile:
    """The file at ``path``, checked whole: every mistake in it is in the one
    ``ConfigError`` raised. ``providers``: the names a deployment may use besides
    the file's own (the environment's providers and the known kinds)."""
    from .config_errors import Problems
    from .config_schema import ConfigFile, check_references, validate
    from .config_yaml import read_config

    problems = Problems(path)
    data = read_config(path, env, problems)
    if data is None:
        return ConfigFile()
    if not isinstance(data, dict):
        problems.at(1, "the top level must be a mapping (providers:, models:, ...)")
        raise problems.error()
    file = validate(data, problems)
    check_references(data, providers, problems)
    if file is None or problems:
        raise problems.error()
    file.lines.update(problems.lines)
    return file


# ---------------------------------------------------------------- environment


ENV_VARS: dict[str, tuple[tuple[str, ...], str]] = {
    "anthropic": (("ANTHROPIC_API_KEY",), "ANTHROPIC_BASE_URL"),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), "GEMINI_BASE_URL"),
    "cohere": (("COHERE_API_KEY", "CO_API_KEY"), "COHERE_BASE_URL"),
}
"""Kinds outside the OpenAI-compatible table: (key variables, first wins; base URL variable)."""


def key_variable(kind: str) -> str | None:
    """What to set to configure ``kind`` from the environment (for error messages)."""
    from .providers.openai.compat import COMPAT_KINDS

    special = {
        "azure": "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY",
        "bedrock": "AWS_BEARER_TOKEN_BEDROCK or AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY + AWS_REGION",
        "openai-responses": "OPENAI_API_KEY",
    }
    if kind in special:
        return special[kind]
    if kind in ENV_VARS:
        return ENV_VARS[kind][0][0]
    quirks = COMPAT_KINDS.get(kind)
    return quirks.api_key_env if quirks else None


def providers_from_env(env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    """A provider for each kind whose standard environment variables are set."""
    from .providers.openai.compat import COMPAT_KINDS

    out: dict[str, ProviderConfig] = {}
    for kind, quirks in COMPAT_KINDS.items():
        key = env.get(quirks.api_key_env or "") or None
        base = env.get(quirks.base_url_env or "") or None
        if key or base:
            out[kind] = ProviderConfig(kind, kind, base_url=base, api_key=Secret(key) if key else None)
    if "openai" in out:  # the same account speaks both OpenAI APIs
        openai = out["openai"]
        out["openai-responses"] = ProviderConfig(
            "openai-responses", "openai-responses", base_url=openai.base_url, api_key=openai.api_key
        )
    for kind, (key_vars, base_var) in ENV_VARS.items():
        key = next((env[v] for v in key_vars if env.get(v)), None)
        base = env.get(base_var) or None
        if key or base:
            out[kind] = ProviderConfig(kind, kind, base_url=base, api_key=Secret(key) if key else None)
    bedrock = _bedrock_from_env(env)
    if bedrock is not None:
        out["bedrock"] = bedrock
    azure_endpoint = env.get("AZURE_OPENAI_ENDPOINT")
    if azure_endpoint:
        key = env.get("AZURE_OPENAI_API_KEY")
        options: dict[str, Any] = {}
        version = env.get("AZURE_OPENAI_API_VERSION") or env.get("OPENAI_API_VERSION")
        if version:
            options["api_version"] = version
        token = env.get("AZURE_OPENAI_AD_TOKEN")
        if token:
            options["azure_ad_token"] = Secret(token)
        out["azure"] = ProviderConfig(
            "azure", "azure", base_url=azure_endpoint, api_key=Secret(key) if key else None, options=options
        )
    return out


def _bedrock_from_env(env: Mapping[str, str]) -> ProviderConfig | None:
    """Bedrock from the AWS SDKs' variables: a Bedrock API key or an access key pair."""
    token = env.get("AWS_BEARER_TOKEN_BEDROCK")
    access_key = env.get("AWS_ACCESS_KEY_ID")
    if not token and not access_key:
        return None
    options: dict[str, Any] = {}
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    if access_key:
        options["aws_access_key_id"] = access_key
        for name in ("aws_secret_access_key", "aws_session_token"):
            value = env.get(name.upper())
            if value:
                options[name] = Secret(value)
    return ProviderConfig(
        "bedrock",
        "bedrock",
        base_url=env.get("BEDROCK_BASE_URL") or None,
        api_key=Secret(token) if token else None,
        options=options,
    )


def implicit_provider(kind: str, env: Mapping[str, str]) -> ProviderConfig | None:
    """A provider for a known kind with nothing configured (keyless local servers)."""
    from .providers.openai.compat import COMPAT_KINDS

    quirks = COMPAT_KINDS.get(kind)
    if kind == "local" or (quirks is not None and not quirks.requires_key):
        return ProviderConfig(kind, kind)
    return None
