"""What a call cost in USD, from the price data bundled with ``genai-prices``.

``chat_cost`` and ``embedding_cost`` map our ``Usage`` onto genai-prices'
units and price it with the model's catalogue rates:

===========================  ===========================================
our ``Usage``                genai-prices unit (rate used)
===========================  ===========================================
``prompt_tokens``            ``input_tokens``: the total, cache included
``cached_tokens``            ``cache_read_tokens`` (``cache_read_mtok``)
``cache_write_tokens``       ``cache_write_tokens`` (``cache_write_mtok``)
``completion_tokens``        ``output_tokens``: the total, reasoning included
``reasoning_tokens``         ``output_reasoning_tokens`` (if priced apart)
===========================  ===========================================

As in genai-prices, ``input_tokens`` *includes* cache reads and writes, which
are partitions of it: cached tokens are charged at the cache rate only, never
twice and never at the full rate. A partition the model has no separate rate
for stays in its parent and pays the parent's rate (reasoning tokens are
output tokens unless a model prices them apart). Tiered prices ("over 200k
prompt tokens") pick the tier from the whole prompt, cache included, and apply
it to every token, like genai-prices' ``calc_price``.

What is exact and what is not:

* the figures are exact for the catalogue's standard rates (a per-request fee
  included); request-specific variants (batch, flex/priority service tiers)
  and extras we have no usage for (web searches, audio/image tokens counted
  apart) are not included;
* ``None`` means unknown: the provider is unpriced (``price_provider == ""``,
  self-hosted), the model is not in the catalogue, it is priced in units our
  usage does not carry (e.g. per audio hour), or the usage has tokens of a
  kind it has no rate for (output tokens on an embedding model); also when the
  price data cannot be read (logged). A model the catalogue lists with no
  price at all is free and costs ``0.0``.
* unknown ``price_provider`` ids (not in genai-prices) are tried as "any
  provider" matching on the model name alone; a known provider that does not
  list the model gives ``None``.

Only the data snapshot shipped inside the installed ``genai-prices`` is used;
its background auto-updater is never started, so no network I/O happens here.
The model's rates are resolved once per ``(price_provider, model)`` (again when
the UTC day changes, as prices can have start dates; per call for the few
time-of-day prices) and the arithmetic is done here in floats: genai-prices'
own ``calc_price`` takes about 120 us a call, this about 1 us.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from .types import Usage

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo as PriceModel
    from genai_prices.types import ModelPrice, Provider

__all__ = ["Prices", "chat_cost", "embedding_cost"]

log = logging.getLogger("llmrelay.cost")

Rate: TypeAlias = float | tuple[float, tuple[tuple[int, float], ...]]
"""USD per token: flat, or ``(base, ((start, rate), ...))`` with tiers by prompt size, highest start first."""

_MAX_CACHED: Final = 4096
_SECONDS_PER_DAY: Final = 86400


@dataclass(frozen=True, slots=True)
class Rates:
    """One model's per-token rates in USD (``None``: not priced apart)."""

    input: Rate | None
    cache_read: Rate | None
    cache_write: Rate | None
    output: Rate | None
    reasoning: Rate | None
    per_request: float
    free: bool
    """The catalogue lists the model with no price at all."""
    per_search: float = 0.0
    """USD per web search, where the model may search (charged only when it does)."""
    unbilled: frozenset[str] = frozenset()
    """Price units our usage cannot carry (audio hours, image tokens, pages...): calls that
    use them cost more than ``chat_cost`` says."""


@dataclass(slots=True)
class _Entry:
    provider: Provider
    model: PriceModel
    rates: Rates
    day: int
    """UTC day the rates were resolved for; -1 when they never change."""
    time_of_day: bool
    """Some price applies only at certain hours: resolve on every call."""


_cache: dict[tuple[str, str], _Entry | None] = {}
_snapshot_obj: DataSnapshot | None = None


# ---- public ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prices:
    """Prices an operator sets for one deployment (``input_per_mtok`` ... in a model
    group's deployment entry), in USD per million tokens. They win over the
    catalogue: for self-hosted or negotiated models, and models the catalogue lacks.
    ``cached_input_per_mtok`` defaults to the input price (no discount)."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok"):
            value = getattr(self, name)
            if value is None and name == "cached_input_per_mtok":
                continue
            if type(value) not in (int, float) or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")

    def cost(self, usage: Usage) -> float:
        """USD of ``usage`` at these prices (cached tokens at the cached price)."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        total = (
            (usage.prompt_tokens - cached) * self.input_per_mtok
            + cached * cached_rate
            + usage.completion_tokens * self.output_per_mtok
        )
        return round(total / 1_000_000, 12)


def chat_cost(price_provider: str, model: str, usage: Usage) -> float | None:
    """USD cost of a chat call, or ``None`` when the model's price is unknown."""
    rates = model_rates(price_provider, model)
    if rates is None:
        return None
    return _price(rates, usage)


def embedding_cost(price_provider: str, model: str, usage: Usage) -> float | None:
    """USD cost of an embeddings call, or ``None`` when the model's price is unknown."""
    rates = model_rates(price_provider, model)
    if rates is None:
        return None
    return _price(rates, usage)


# ---- lookups (the catalogue uses these too) ------------------------------------------------


def model_rates(price_provider: str, model: str) -> Rates | None:
    """The model's current rates (memoized), or ``None`` when it is not in the catalogue."""
    key = (price_provider, model)
    try:
        entry = _cache[key]
    except KeyError:
        entry = _load(price_provider, model)
    if entry is None:
        return None
    if entry.day >= 0:
        if entry.time_of_day:
            entry.rates = _rates(entry.model.get_prices(datetime.now(tz=UTC)))
        else:
            day = int(time.time()) // _SECONDS_PER_DAY
            if day != entry.day:
                entry.rates = _rates(entry.model.get_prices(datetime.now(tz=UTC)))
                entry.day = day
    return entry.rates


def find_price_model(price_provider: str, model: str) -> tuple[Provider, PriceModel] | None:
    """The catalogue's provider and model for ``model`` (see the module docstring for the rules)."""
    if not price_provider or not model:
        return None
    snapshot = price_snapshot()
    try:
        return snapshot.find_provider_model(model, None, price_provider, None)
    except LookupError:
        pass
    from genai_prices.data_snapshot import find_provider_by_id

    if find_provider_by_id(snapshot.providers, price_provider) is not None:
        return None  # a known provider that does not list this model
    try:
        return snapshot.find_provider_model(model, None, None, None)
    except LookupError:
        return None


def price_snapshot() -> DataSnapshot:
    """The price data bundled with genai-prices (never an auto-updated one)."""
    global _snapshot_obj
    if _snapshot_obj is None:
        from genai_prices.data import providers
        from genai_prices.data_snapshot import DataSnapshot

        _snapshot_obj = DataSnapshot(providers=providers, from_auto_update=False)
    return _snapshot_obj


# ---- internals -----------------------------------------------------------------------------


def _load(price_provider: str, model: str) -> _Entry | None:
    entry: _Entry | None = None
    try:
        found = find_price_model(price_provider, model)
        if found is not None:
            provider, price_model = found
            rates = _rates(price_model.get_prices(datetime.now(tz=UTC)))
            if _token_priced(rates):
                day, time_of_day = _validity(price_model)
                entry = _Entry(provider, price_model, rates, day, time_of_day)
    except Exception:  # price data we cannot read must not fail the call: the cost is unknown
        log.warning("cannot read the price of %s/%s; cost unknown", price_provider, model, exc_info=True)
    if len(_cache) >= _MAX_CACHED:
        _cache.clear()
    _cache[(price_provider, model)] = entry
    return entry


def _validity(price_model: PriceModel) -> tuple[int, bool]:
    from genai_prices.types import TimeOfDateConstraint

    prices = price_model.prices
    if not isinstance(prices, list):
        return -1, False
    time_of_day = any(isinstance(c.constraint, TimeOfDateConstraint) for c in prices)
    return int(time.time()) // _SECONDS_PER_DAY, time_of_day


def _token_priced(rates: Rates) -> bool:
    """Whether our token usage can be priced: free, or it has a token rate."""
    return rates.free or rates.input is not None or rates.output is not None


_BILLED_UNITS = frozenset((
    "input_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok", "output_mtok",
    "output_reasoning_mtok", "requests_kcount", "web_searches_kcount", "storage_searches_kcount",
))  # fmt: skip


def _rates(price: ModelPrice) -> Rates:
    values: dict[str, Any] = {k: v for k, v in vars(price).items() if v is not None and not k.startswith("_")}
    per_request = values.get("requests_kcount")
    per_search = values.get("web_searches_kcount")
    return Rates(
        input=_rate(values.get("input_mtok")),
        cache_read=_rate(values.get("cache_read_mtok")),
        cache_write=_rate(values.get("cache_write_mtok")),
        output=_rate(values.get("output_mtok")),
        reasoning=_rate(values.get("output_reasoning_mtok")),
        per_request=float(per_request) / 1000 if isinstance(per_request, Decimal) else 0.0,
        free=not values,
        per_search=float(per_search) / 1000 if isinstance(per_search, Decimal) else 0.0,
        unbilled=frozenset(values) - _BILLED_UNITS,
    )


def _rate(value: object) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value) / 1_000_000
    from genai_prices.types import TieredPrices

    if isinstance(value, TieredPrices):
        tiers = tuple((t.start, float(t.price) / 1_000_000) for t in sorted(value.tiers, key=lambda t: -t.start))
        return (float(value.base) / 1_000_000, tiers)
    raise TypeError(f"unexpected price value {value!r}")


def _at(rate: Rate, prompt_tokens: int) -> float:
    if isinstance(rate, float):
        return rate
    base, tiers = rate
    for start, tier_rate in tiers:
        if prompt_tokens > start:
            return tier_rate
    return base


def _price(rates: Rates, usage: Usage) -> float | None:
    if rates.free:
        return 0.0
    prompt = usage.prompt_tokens
    if (prompt and rates.input is None) or (usage.completion_tokens and rates.output is None):
        return None  # tokens the catalogue gives no rate for: unknown, not free
    uncached = prompt
    total = rates.per_request
    if rates.cache_read is not None and usage.cached_tokens:
        total += usage.cached_tokens * _at(rates.cache_read, prompt)
        uncached -= usage.cached_tokens
    if rates.cache_write is not None and usage.cache_write_tokens:
        total += usage.cache_write_tokens * _at(rates.cache_write, prompt)
        uncached -= usage.cache_write_tokens
    if rates.input is not None and uncached > 0:
        total += uncached * _at(rates.input, prompt)
    output = usage.completion_tokens
    if rates.reasoning is not None and usage.reasoning_tokens:
        total += usage.reasoning_tokens * _at(rates.reasoning, prompt)
        output -= usage.reasoning_tokens
    if rates.output is not None and output > 0:
        total += output * _at(rates.output, prompt)
    return round(total, 12)
