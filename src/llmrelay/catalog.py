"""What is known about a model: context window, limits, capabilities, prices.

Two sources, both offline:

* the price catalogue bundled with ``genai-prices`` (see ``cost.py``): prices
  (USD per million tokens; the base rate when a model has tiers) and, when our
  table has none, the context window;
* ``CAPABILITIES`` below, a small hand-kept table of facts from the providers'
  public model pages (OpenAI, Anthropic, Google AI for developers, Mistral),
  matched by longest name prefix. Its context windows are the providers' exact
  figures, so they win over the catalogue's (which are sometimes rounded).

Provider names: ``lookup_model`` takes the catalogue's provider id
(genai-prices': ``google``, ``aws``...) and the configured provider's name;
``price_id`` maps a provider kind to that id. ``known_models`` speaks only our
names: its rows carry the kind (``gemini``, ``bedrock``) or provider name you
write in ``PROVIDER/MODEL``, and model names that, written so, price as the
catalogue entry they come from.

Anything neither source knows stays ``None``: unknown, never a guess. An entry
with fewer fields is deliberate: it stops a longer name (say an audio-only
variant) from inheriting its family's facts. ``supports_structured_output``
means native JSON-schema constrained output as the provider documents it.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final, TypedDict

from .types import ModelInfo

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo as PriceModel

__all__ = [
    "CAPABILITIES", "Capabilities", "capabilities", "catalogue_kinds", "known_models", "lookup_model", "price_id",
]  # fmt: skip


class Capabilities(TypedDict, total=False):
    context_window: int
    max_output_tokens: int
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    supports_tools: bool
    supports_structured_output: bool


_TEXT: Final = ("text",)
_VISION: Final = ("text", "image")
_GEMINI_IN: Final = ("text", "image", "audio", "video")
_EMBEDDING: Final = ("embedding",)


def _chat(
    context: int | None, output: int | None, modalities: tuple[str, ...], tools: bool, structured: bool
) -> Capabilities:
    caps = Capabilities(input_modalities=modalities, supports_tools=tools, supports_structured_output=structured)
    if context is not None:
        caps["context_window"] = context
    if output is not None:
        caps["max_output_tokens"] = output
    return caps


def _embedding(context: int) -> Capabilities:
    return Capabilities(
        context_window=context,
        input_modalities=_TEXT,
        output_modalities=_EMBEDDING,
        supports_tools=False,
        supports_structured_output=False,
    )


_UNKNOWN: Final = Capabilities()
"""Blocks inheritance from a shorter prefix; every fact stays unknown."""

CAPABILITIES: Final[dict[str, Capabilities]] = {
    # OpenAI (platform.openai.com/docs/models)
    "gpt-4o": _chat(128_000, 16_384, _VISION, True, True),
    "gpt-4o-2024-05-13": _chat(128_000, 4_096, _VISION, True, False),
    "gpt-4o-mini": _chat(128_000, 16_384, _VISION, True, True),
    "gpt-4o-audio": _UNKNOWN,
    "gpt-4o-mini-audio": _UNKNOWN,
    "gpt-4o-realtime": _UNKNOWN,
    "gpt-4o-mini-realtime": _UNKNOWN,
    "gpt-4o-transcribe": _UNKNOWN,
    "gpt-4o-mini-transcribe": _UNKNOWN,
    "gpt-4o-mini-tts": _UNKNOWN,
    "gpt-4o-search": _UNKNOWN,
    "gpt-4o-mini-search": _UNKNOWN,
    "gpt-4.1": _chat(1_047_576, 32_768, _VISION, True, True),
    "gpt-5": _chat(400_000, 128_000, _VISION, True, True),
    "gpt-5-chat": Capabilities(context_window=128_000, max_output_tokens=16_384, input_modalities=_VISION),
    "gpt-5-pro": _chat(400_000, 272_000, _VISION, True, True),
    "o1": _chat(200_000, 100_000, _VISION, True, True),
    "o1-mini": _chat(128_000, 65_536, _TEXT, False, False),
    "o1-preview": _chat(128_000, 32_768, _TEXT, False, False),
    "o3": _chat(200_000, 100_000, _VISION, True, True),
    "o3-mini": _chat(200_000, 100_000, _TEXT, True, True),
    "o3-deep-research": _UNKNOWN,
    "o4-mini": _chat(200_000, 100_000, _VISION, True, True),
    "o4-mini-deep-research": _UNKNOWN,
    "gpt-3.5-turbo": _chat(16_385, 4_096, _TEXT, True, False),
    "gpt-3.5-turbo-instruct": Capabilities(
        context_window=4_096, supports_tools=False, supports_structured_output=False
    ),
    "text-embedding-3-small": _embedding(8_191),
    "text-embedding-3-large": _embedding(8_191),
    "text-embedding-ada-002": _embedding(8_191),
    # Anthropic (docs.anthropic.com/en/docs/about-claude/models)
    "claude-3-haiku": _chat(200_000, 4_096, _VISION, True, False),
    "claude-3-opus": _chat(200_000, 4_096, _VISION, True, False),
    "claude-3-5-sonnet": _chat(200_000, 8_192, _VISION, True, False),
    "claude-3-5-haiku": _chat(200_000, 8_192, _VISION, True, False),
    "claude-3-7-sonnet": _chat(200_000, 64_000, _VISION, True, False),
    "claude-sonnet-4": _chat(200_000, 64_000, _VISION, True, False),
    "claude-sonnet-4-5": _chat(200_000, 64_000, _VISION, True, True),
    "claude-opus-4": _chat(200_000, 32_000, _VISION, True, False),
    "claude-opus-4-1": _chat(200_000, 32_000, _VISION, True, True),
    "claude-opus-4-5": _chat(200_000, 64_000, _VISION, True, True),
    "claude-haiku-4-5": _chat(200_000, 64_000, _VISION, True, True),
    # Google Gemini (ai.google.dev/gemini-api/docs/models); limits are input tokens
    "gemini-1.5-pro": _chat(2_097_152, 8_192, _GEMINI_IN, True, True),
    "gemini-1.5-flash": _chat(1_048_576, 8_192, _GEMINI_IN, True, True),
    "gemini-2.0-flash": _chat(1_048_576, 8_192, _GEMINI_IN, True, True),
    "gemini-2.5-pro": _chat(1_048_576, 65_536, _GEMINI_IN, True, True),
    "gemini-2.5-flash": _chat(1_048_576, 65_536, _GEMINI_IN, True, True),
    "gemini-2.5-flash-lite": _chat(1_048_576, 65_536, _GEMINI_IN, True, True),
    "gemini-2.5-flash-image": Capabilities(
        context_window=32_768, max_output_tokens=32_768, input_modalities=_VISION, output_modalities=_VISION
    ),
    "gemini-2.5-flash-preview-tts": _UNKNOWN,
    "gemini-2.5-pro-preview-tts": _UNKNOWN,
    "gemini-2.5-flash-native-audio": _UNKNOWN,
    "gemini-3-pro": _chat(1_048_576, 65_536, _GEMINI_IN, True, True),
    "gemini-3-pro-image": Capabilities(input_modalities=_VISION, output_modalities=_VISION),
    "gemini-embedding-001": _embedding(2_048),
    "text-embedding-004": _embedding(2_048),
    # Mistral (docs.mistral.ai/getting-started/models); "-latest" aliases move, so the
    # family entries hold only what every version shares
    "mistral-large": Capabilities(supports_tools=True, supports_structured_output=True),
    "mistral-large-2407": _chat(131_072, None, _TEXT, True, True),
    "mistral-large-2411": _chat(131_072, None, _TEXT, True, True),
    "mistral-small": Capabilities(supports_tools=True, supports_structured_output=True),
    "mistral-small-2402": _chat(32_768, None, _TEXT, True, True),
    "mistral-small-2409": _chat(32_768, None, _TEXT, True, True),
    "mistral-small-2501": _chat(32_768, None, _TEXT, True, True),
    "mistral-small-2503": _chat(131_072, None, _VISION, True, True),
    "mistral-small-2506": _chat(131_072, None, _VISION, True, True),
    "codestral": Capabilities(input_modalities=_TEXT, supports_tools=True),
    "codestral-mamba": _UNKNOWN,
    "codestral-embed": Capabilities(input_modalities=_TEXT, output_modalities=_EMBEDDING, supports_tools=False),
}

log = logging.getLogger("llmrelay.catalog")

_PREFIXES: Final = sorted(CAPABILITIES, key=len, reverse=True)
_BEDROCK_PREFIX: Final = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")
_SECONDS_PER_DAY: Final = 86400

_PRICE_IDS: Final[dict[str, str]] = {"gemini": "google", "bedrock": "aws", "openai-responses": "openai", "local": ""}
"""Kinds whose catalogue id is not their own name ("": none, the local models are free).
OpenAI-compatible kinds say theirs in their quirks row (``providers/openai/compat.py``)."""

_NOT_LISTED: Final[dict[str, re.Pattern[str]]] = {
    # genai-prices' "google" is Vertex AI too; the gemini kind is the Gemini API, which serves
    # Google's own models, not Vertex's partner models (Claude) nor its Model-as-a-Service endpoints.
    "google": re.compile(r"^claude|-maas$"),
    # OpenRouter names every model AUTHOR/SLUG; the catalogue's bare names are not ids it accepts.
    "openrouter": re.compile(r"^[^/]*$"),
    # Fine-tune price buckets, not models: a fine-tune's own id (ft:BASE:ORG::ID) prices as its base.
    "openai": re.compile(r"^ft:|\.ft-$"),
}
"""Catalogue entries (by catalogue id) that are no model the provider's API serves by that name."""

_memo: dict[tuple[str, str, str], tuple[ModelInfo, int]] = {}
_known: dict[tuple[str | None, str | None], tuple[list[ModelInfo], int]] = {}
_MAX_MEMO: Final = 4096
_MAX_KNOWN: Final = 64


# ---- public ----------------------------------------------------------------------------------


def lookup_model(price_provider: str, model: str, *, provider: str) -> ModelInfo:
    """Everything known about ``model``; ``provider`` is the configured provider name.

    ``price_provider`` is the genai-prices provider id ("" for unpriced,
    self-hosted services: then only the capability table is used).
    """
    key = (price_provider, model, provider)
    day = _today()
    hit = _memo.get(key)
    if hit is not None and hit[1] == day:
        info = hit[0]
    else:
        info, stable = _build(price_provider, model, provider)
        if len(_memo) >= _MAX_MEMO:
            _memo.clear()
        if stable:
            _memo[key] = (info, day)
    return replace(info, raw=dict(info.raw))


def known_models(provider: str | None = None, *, price_provider: str | None = None) -> list[ModelInfo]:
    """Every catalogue model as you name it, sorted by provider and id.

    ``provider`` is a provider kind (its catalogue: ``price_id(kind)``) or, with
    ``price_provider`` (a catalogue id), any provider name, such as a configured
    one; ``None``: every kind of ``catalogue_kinds()``. Each row's
    ``ModelInfo.provider`` is that kind or name, and ``PROVIDER/MODEL`` of a row
    prices as the catalogue entry it comes from (``raw["catalog_id"]``).
    Entries no model name reaches (a match rule of prefixes only) and those
    that are no model the provider serves by that name (``_NOT_LISTED``) are left out.
    """
    day = _today()
    key = (provider, price_provider)
    hit = _known.get(key)
    if hit is None or hit[1] != day:
        if provider is None:
            rows = [info for kind in catalogue_kinds() for info in _catalogue_models(kind, price_id(kind))]
        else:
            rows = _catalogue_models(provider, price_id(provider) if price_provider is None else price_provider)
        if len(_known) >= _MAX_KNOWN:
            _known.clear()
        hit = _known[key] = (rows, day)
    return [replace(info, raw=dict(info.raw)) for info in hit[0]]


def price_id(kind: str) -> str:
    """The price catalogue's (genai-prices') provider id for a provider kind: ``gemini`` ->
    ``google``, ``bedrock`` -> ``aws``...; ``""`` when the kind has no catalogue prices
    (self-hosted servers, whose cost is unknown, and the local models)."""
    found = _PRICE_IDS.get(kind)
    if found is not None:
        return found
    from .providers.openai.compat import COMPAT_KINDS

    quirks = COMPAT_KINDS.get(kind)
    return kind if quirks is None else quirks.price_provider


def catalogue_kinds() -> list[str]:
    """The provider kinds whose models the catalogue lists: one per catalogue provider
    (``openai-responses`` shares ``openai``'s, which is listed as ``openai``)."""
    from .cost import price_snapshot
    from .providers import known_kinds

    listed = {p.id for p in price_snapshot().providers}
    chosen: dict[str, str] = {}
    for kind in known_kinds():
        pid = price_id(kind)
        if pid in listed and (pid not in chosen or kind == pid):
            chosen[pid] = kind
    return sorted(chosen.values())


def capabilities(model: str) -> Capabilities:
    """The capability-table entry for ``model`` (longest matching prefix), or an empty one."""
    name = _normalize(model)
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return CAPABILITIES[prefix]
    return _UNKNOWN


# ---- internals ---------------------------------------------------------------------------------


def _today() -> int:
    return int(time.time()) // _SECONDS_PER_DAY


def _normalize(model: str) -> str:
    """``openrouter/anthropic/claude-3.5-sonnet`` -> ``claude-3-5-sonnet`` (and Bedrock ids)."""
    name = model.lower().rsplit("/", 1)[-1]
    name = _BEDROCK_PREFIX.sub("", name)
    if name.startswith("claude"):
        name = name.replace(".", "-")
    return name


def _build(price_provider: str, model: str, provider: str) -> tuple[ModelInfo, bool]:
    """The model's info and whether it may be memoized for the day."""
    from .cost import find_price_model

    caps = capabilities(model)
    try:
        found = find_price_model(price_provider, model)
        if found is not None:
            price_provider_obj, price_model = found
            if caps is _UNKNOWN and _normalize(model) != price_model.id:
                caps = capabilities(price_model.id)
            info = _info(model, provider, caps, price_model)
            info.raw["catalog_provider"] = price_provider_obj.id
            return info, not _time_of_day(price_model)
    except Exception:  # unreadable price data: fall back to the capability table alone
        log.warning("cannot read the catalogue entry of %s/%s", price_provider, model, exc_info=True)
    return _info(model, provider, caps, None), True


def _catalogue_models(provider: str, price_provider: str) -> list[ModelInfo]:
    from .cost import price_snapshot

    catalogue = next((p for p in price_snapshot().providers if p.id == price_provider), None)
    if catalogue is None:
        return []
    skip = _NOT_LISTED.get(price_provider)
    found: list[ModelInfo] = []
    for price_model in catalogue.models:
        if skip is not None and skip.search(price_model.id):
            continue
        for name in _names(price_model):
            info, _ = _build(price_provider, name, provider)
            if info.raw.get("catalog_id") == price_model.id and info.raw.get("catalog_provider") == price_provider:
                found.append(info)
                break
    found.sort(key=lambda info: info.id)
    return found


def _names(price_model: PriceModel) -> list[str]:
    """Names to try for a catalogue entry: its id (without genai-prices' ``regional.``
    placeholder, which no Bedrock id has), then the exact names its match rule lists."""
    from genai_prices.types import ClauseEquals, ClauseOr

    names = [price_model.id.removeprefix("regional."), price_model.id]
    clauses: list[object] = [price_model.match]
    while clauses:
        clause = clauses.pop(0)
        if isinstance(clause, ClauseEquals):
            names.append(clause.equals)
        elif isinstance(clause, ClauseOr):
            clauses.extend(clause.or_)
    return list(dict.fromkeys(names))


def _info(model: str, provider: str, caps: Capabilities, price_model: PriceModel | None) -> ModelInfo:
    context = caps.get("context_window")
    info = ModelInfo(
        id=model,
        provider=provider,
        context_window=context,
        max_output_tokens=caps.get("max_output_tokens"),
        input_modalities=caps.get("input_modalities", _TEXT),
        output_modalities=caps.get("output_modalities", _TEXT),
        supports_tools=caps.get("supports_tools"),
        supports_structured_output=caps.get("supports_structured_output"),
    )
    if price_model is None:
        return info
    if context is None:
        info.context_window = price_model.context_window
    prices = vars(price_model.get_prices(datetime.now(tz=UTC)))
    info.input_price_per_mtok = _per_mtok(prices.get("input_mtok"))
    info.output_price_per_mtok = _per_mtok(prices.get("output_mtok"))
    info.cached_input_price_per_mtok = _per_mtok(prices.get("cache_read_mtok"))
    info.raw = {
        "catalog_id": price_model.id,
        "catalog_name": price_model.name,
        "tiered_prices": any(not isinstance(v, Decimal) for v in prices.values() if v is not None),
        "deprecated": bool(price_model.deprecated),
    }
    if price_model.price_comments:
        info.raw["price_comments"] = price_model.price_comments
    return info


def _per_mtok(value: object) -> float | None:
    """USD per million tokens (the base rate of tiered prices)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    base = getattr(value, "base", None)
    return float(base) if isinstance(base, Decimal) else None


def _time_of_day(price_model: PriceModel) -> bool:
    from genai_prices.types import TimeOfDateConstraint

    prices = price_model.prices
    return isinstance(prices, list) and any(isinstance(c.constraint, TimeOfDateConstraint) for c in prices)
