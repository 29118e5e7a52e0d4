"""What the store keeps, as plain values: tenants, virtual keys, usage records,
conversations, and the store's errors.

These are frozen dataclasses that check themselves on construction, so a bad
value is a ``ValueError`` naming the field before it reaches the database. This
module needs no database driver.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

Period = Literal["day", "month", "total"]
PERIODS: tuple[str, ...] = get_args(Period)

SECRET_PREFIX = "sk-relay-"
PREFIX_CHARS = 14
"""How much of a secret is kept for display (``sk-relay-`` and five random characters)."""

_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY_ID = re.compile(r"key_[0-9a-f]{16}")


class StoreError(Exception):
    """The store could not do what was asked (database unreachable, schema too new, ...)."""


class StoreUnavailable(StoreError):
    """The database did not answer or failed (down, unreachable, broken): worth a retry."""


class Conflict(StoreError):
    """The record already exists."""


class NotFoundError(StoreError):
    """The record does not exist."""


def new_secret() -> str:
    """A fresh virtual-key secret: ``sk-relay-`` and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The SHA-256 of ``secret``, hex: what the store keeps instead of the secret.

    A fast hash is the right tool here, unlike for passwords: secrets come from
    ``new_secret`` (256 random bits), so there is no dictionary to try and no
    brute force within reach, salted or not. A slow hash (bcrypt, scrypt) would
    only add its cost to every authenticated request, and an unsalted digest lets
    the store find a key by its hash with one indexed lookup.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


RESERVED_TENANTS = frozenset(("default",))
"""Tenant ids no tenant may take: ``default`` files the operator's own conversations."""


def check_new_tenant(value: object) -> str:
    """``check_slug``, and not a reserved id (for tenants and keys being made)."""
    check_slug(value)
    if value in RESERVED_TENANTS:
        raise ValueError(f"tenant id {value!r} is reserved (the gateway operator's own data is kept under it)")
    return str(value)


def check_slug(value: object) -> str:
    """``value`` when it is a valid tenant id (``^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$``), else ``ValueError``."""
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise ValueError(
            f"tenant id {value!r} is not valid: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


MAX_LIMIT = 2**31 - 1
"""The largest limit a column holds on every database (PostgreSQL's INTEGER)."""


def _check_positive_int(owner: str, name: str, value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_LIMIT):
        raise ValueError(f"{owner}: {name} must be a whole number from 1 to {MAX_LIMIT} or None, not {value!r}")


def _check_limits(owner: str, obj: Any) -> None:
    _check_positive_int(owner, "rpm", obj.rpm)
    _check_positive_int(owner, "tpm", obj.tpm)
    _check_positive_int(owner, "max_parallel", obj.max_parallel)
    budget = obj.budget_usd
    if budget is not None and (
        not isinstance(budget, int | float) or isinstance(budget, bool) or not math.isfinite(budget) or budget < 0
    ):
        raise ValueError(f"{owner}: budget_usd must be a non-negative number or None, not {budget!r}")
    if obj.budget_period not in PERIODS:
        raise ValueError(f"{owner}: budget_period must be one of {', '.join(PERIODS)}, not {obj.budget_period!r}")
    if not isinstance(obj.model_limits, Mapping):
        raise ValueError(f"{owner}: model_limits must be a mapping of model name to Limits")
    for model, limits in obj.model_limits.items():
        if not isinstance(model, str) or not model:
            raise ValueError(f"{owner}: model_limits keys must be model names, not {model!r}")
        if not isinstance(limits, Limits):
            raise ValueError(f"{owner}: model_limits[{model!r}] must be a Limits, not {type(limits).__name__}")
    # a private copy: the record stays frozen even if the caller's dict changes
    object.__setattr__(obj, "model_limits", dict(obj.model_limits))


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests and tokens per minute (``None``: no limit)."""

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        _check_positive_int("limits", "rpm", self.rpm)
        _check_positive_int("limits", "tpm", self.tpm)


def limits_to_json(limits: Mapping[str, Limits]) -> dict[str, dict[str, int | None]]:
    """``model_limits`` as JSON-safe data."""
    return {model: {"rpm": lim.rpm, "tpm": lim.tpm} for model, lim in limits.items()}


def limits_from_json(data: Mapping[str, Any]) -> dict[str, Limits]:
    """The inverse of ``limits_to_json``."""
    return {model: Limits(rpm=value.get("rpm"), tpm=value.get("tpm")) for model, value in data.items()}


@dataclass(frozen=True, slots=True)
class Tenant:
    """Who a key belongs to, with the tenant-wide limits and budget. ``max_parallel``:
    requests of all its keys in flight at once (``None``: no limit). ``self_keys``: its
    own keys may create, change, rotate and revoke its keys (never another tenant's)."""

    id: str
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: Period = "month"
    model_limits: Mapping[str, Limits] = field(default_factory=dict)
    created_at: float = 0.0
    max_parallel: int | None = None
    self_keys: bool = False

    def __post_init__(self) -> None:
        check_slug(self.id)
        _check_limits(f"tenant {self.id!r}", self)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A virtual key. The secret itself is never kept: only its hash, and its
    first ``PREFIX_CHARS`` characters so people can tell keys apart. ``max_parallel``:
    its requests in flight at once (``None``: no limit)."""

    id: str
    tenant: str
    name: str = ""
    prefix: str = ""
    models: tuple[str, ...] = ()
    expires_at: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: Period = "month"
    model_limits: Mapping[str, Limits] = field(default_factory=dict)
    created_at: float = 0.0
    revoked_at: float | None = None
    rotated_at: float | None = None
    max_parallel: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _KEY_ID.fullmatch(self.id):
            raise ValueError(f"key id {self.id!r} is not valid: expected 'key_' and 16 hex digits")
        check_slug(self.tenant)
        owner = f"key {self.id}"
        if not isinstance(self.name, str):
            raise ValueError(f"{owner}: name must be a string, not {type(self.name).__name__}")
        if isinstance(self.models, str) or not all(isinstance(m, str) and m for m in self.models):
            raise ValueError(f"{owner}: models must be a list of model names, not {self.models!r}")
        object.__setattr__(self, "models", tuple(self.models))
        if self.expires_at is not None and (
            not isinstance(self.expires_at, int | float) or not math.isfinite(self.expires_at)
        ):
            raise ValueError(f"{owner}: expires_at must be epoch seconds or None, not {self.expires_at!r}")
        _check_limits(owner, self)

    def usable(self, now: float) -> str | None:
        """``None`` when the key may be used at ``now``, else why not: ``'revoked'`` or ``'expired'``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One request in the usage ledger. ``id`` makes writing it idempotent: the
    store keeps one row per id however often the record is sent."""

    id: str
    request_id: str
    tenant: str | None
    key_id: str | None
    route: str
    model: str
    deployment: str | None = None
    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    upstream_ms: float = 0.0
    cache_hit: bool = False
    error: str | None = None
    created_at: float = 0.0
    ttft_ms: float | None = None
    """A stream's time to its first token (``None``: not a stream, or no token came)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or len(self.id) > 64:
            raise ValueError(f"usage record id must be 1 to 64 characters, not {self.id!r}")
        if type(self.model) is not str or type(self.route) is not str or type(self.request_id) is not str:
            raise ValueError(f"usage record {self.id}: request_id, route and model must be strings")
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"usage record {self.id}: {name} must be a non-negative integer, not {value!r}")
        if self.cost_usd is not None and not math.isfinite(self.cost_usd):
            raise ValueError(f"usage record {self.id}: cost_usd must be finite, not {self.cost_usd!r}")
        for name in ("latency_ms", "upstream_ms", "ttft_ms"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or not 0 <= value < math.inf):
                raise ValueError(f"usage record {self.id}: {name} must be a finite number >= 0, not {value!r}")

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-safe data (``from_json`` reads it back)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageRecord:
        """The record ``to_json`` wrote; unknown keys are ignored (written by a newer version)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Which usage records: every filter left ``None`` matches all;
    ``created_at`` in ``[since, until)``; ``limit``/``offset`` page ``Store.usage``."""

    tenant: str | None = None
    key_id: str | None = None
    model: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    offset: int = 0
    request_id: str | None = None
    """One request's records (give ``since`` too on a big ledger: ``request_id`` has no index)."""

    def __post_init__(self) -> None:
        if self.limit < 0 or self.offset < 0:
            raise ValueError(f"usage query: limit and offset must be >= 0, not {self.limit} and {self.offset}")


BUCKETS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
"""A usage series' bucket sizes, in seconds."""
Bucket = Literal["minute", "hour", "day"]
Split = Literal["model", "tenant", "key", "deployment", "status"]
SPLITS: tuple[str, ...] = get_args(Split)
MAX_BUCKETS = 2000
"""The most buckets a usage series has."""
MAX_TOP = 50
"""The most series a split gives (besides ``other``)."""
LAST_TIME = 253402300799.0
"""9999-12-31T23:59:59Z: the latest time a series may reach (its buckets are written as ISO 8601)."""


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """A usage time series: the ``bucket`` buckets (UTC, aligned on the epoch) that hold the
    time from ``since`` to just before ``until``, each counted whole, one series per ``split`` value
    (the ``top`` most requested, the rest summed as ``other``) or one for all;
    ``tenant``, ``key_id`` and ``model`` filter as in ``UsageQuery``."""

    bucket: Bucket
    since: float
    until: float
    split: Split | None = None
    top: int = 10
    tenant: str | None = None
    key_id: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if self.bucket not in BUCKETS:
            raise ValueError(f"series: bucket must be one of {', '.join(BUCKETS)}, not {self.bucket!r}")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"series: split must be one of {', '.join(SPLITS)}, not {self.split!r}")
        if not isinstance(self.top, int) or isinstance(self.top, bool) or not 1 <= self.top <= MAX_TOP:
            raise ValueError(f"series: top must be a whole number from 1 to {MAX_TOP}, not {self.top!r}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= LAST_TIME:
                raise ValueError(f"series: {name} must be epoch seconds from 0 to {LAST_TIME:.0f}, not {value!r}")
        if self.since >= self.until:
            raise ValueError(f"series: since ({self.since:g}) must be before until ({self.until:g})")
        if self.buckets > MAX_BUCKETS:
            raise ValueError(
                f"series: {self.buckets} {self.bucket} buckets from since to until, over the limit of {MAX_BUCKETS}: "
                "choose a larger bucket or a shorter range"
            )

    @property
    def first_bucket(self) -> int:
        """The number of the first bucket (its start is this times the bucket's seconds)."""
        return math.floor(self.since / BUCKETS[self.bucket])

    @property
    def buckets(self) -> int:
        """How many buckets cover ``[since, until)`` (the last holds the time just before ``until``)."""
        last = math.floor(math.nextafter(self.until, 0.0) / BUCKETS[self.bucket])
        return last - self.first_bucket + 1


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """A conversation without its messages (for listings)."""

    id: str
    tenant: str
    created_at: float
    updated_at: float
    messages: int


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A Responses API answer kept for ``previous_response_id`` and ``GET /v1/responses/{id}``:
    the request's new input items, the answer's output items and its whole body."""

    id: str
    tenant: str
    created_at: float
    model: str
    previous_id: str | None
    input_items: list[dict[str, Any]]
    output_items: list[dict[str, Any]]
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation and its messages (OpenAI-wire message dicts), in order."""

    id: str
    tenant: str
    created_at: float
    updated_at: float
    messages: list[dict[str, Any]]
