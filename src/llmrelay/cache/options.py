"""What the cache is told: process-wide settings (the config's ``cache:``) and the
options of one call. What an answer says about the cache (``CacheInfo``) is in
``types``, beside the ``ChatResponse`` that carries it, and re-exported here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import errors
from ..types import CacheInfo, CacheStatus  # defined with ChatResponse, which carries one


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """The config's ``cache:`` section (see docs/caching.md)."""

    backend: Literal["memory", "redis"] = "memory"
    url: str = field(default="redis://127.0.0.1:6379/0", repr=False)  # may carry a password
    prefix: str = "llmrelay:cache:"
    ttl_s: float = 300.0
    max_bytes: int = 64_000_000
    threshold: float = 0.95
    """Semantic cache: the cosine similarity at or above which an answer is reused."""
    max_entries: int = 1000
    """Semantic cache: entries kept per namespace."""


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """One call's wishes. ``enabled``: cache this call even when its model group
    does not (``None``: as the group says); ``no_cache``: do not answer from the
    cache (the answer is still stored); ``no_store``: do not store the answer;
    ``ttl_s``: how long to keep it (``None``: the configured ``ttl_s``);
    ``semantic``: also look for a similar earlier question (the group must have
    ``semantic_cache: true``); ``tenant``: the namespace entries are kept in
    (the gateway sets the caller's tenant; tenants never share entries);
    ``report``: told the cache's verdict of a stream before its first event."""

    enabled: bool | None = None
    no_cache: bool = False
    no_store: bool = False
    ttl_s: float | None = None
    semantic: bool = False
    tenant: str | None = None
    report: Callable[[CacheInfo], None] | None = field(default=None, compare=False)


DEFAULT_OPTIONS = CacheOptions()


def cache_options(value: Any) -> CacheOptions:
    """``cache=`` as the library takes it: ``True``/``False``, a ``CacheOptions``,
    or a dict with ``ttl``/``ttl_s``, ``no_cache``, ``no_store``, ``semantic``, ``tenant``."""
    if value is None:
        return DEFAULT_OPTIONS
    if isinstance(value, CacheOptions):
        return value
    if isinstance(value, bool):
        return CacheOptions(enabled=value)
    if not isinstance(value, dict):
        raise errors.InvalidRequest(f"cache must be true, false or a dict, not {type(value).__name__}")
    known = {"ttl", "ttl_s", "no_cache", "no_store", "semantic", "tenant", "enabled"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise errors.InvalidRequest(f"cache: unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})")
    ttl = value.get("ttl_s", value.get("ttl"))
    if ttl is not None and (type(ttl) not in (int, float) or not 0 < ttl < math.inf):  # NaN fails too
        raise errors.InvalidRequest(f"cache: ttl must be a number of seconds > 0, not {ttl!r}")
    for flag in ("no_cache", "no_store", "semantic", "enabled"):
        if flag in value and not isinstance(value[flag], bool):
            raise errors.InvalidRequest(f"cache: {flag} must be true or false, not {value[flag]!r}")
    tenant = value.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise errors.InvalidRequest(f"cache: tenant must be a string, not {tenant!r}")
    return CacheOptions(
        enabled=value.get("enabled", True),
        no_cache=value.get("no_cache", False),
        no_store=value.get("no_store", False),
        ttl_s=None if ttl is None else float(ttl),
        semantic=value.get("semantic", False),
        tenant=tenant,
    )


__all__ = ["DEFAULT_OPTIONS", "CacheInfo", "CacheOptions", "CacheSettings", "CacheStatus", "cache_options"]
