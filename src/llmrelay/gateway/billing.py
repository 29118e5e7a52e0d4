"""What a request may cost, and what it did cost: the figures budgets are kept with.

**Before the call** a budgeted request reserves the worst case it allows
(``PriceBook.reservation``): its prompt counted high (every UTF-8 byte of text,
tool definitions, schemas and pass-through fields as a token, images by the
providers' formulas, a per-message and a tool-use allowance: a token is never
shorter than a byte) plus its whole output (``max_tokens``, or the most the
model can answer when it sets none), at the dearest deployment the call may
reach, fallbacks included. The answer can then never cost more than was
reserved, so concurrent requests against a nearly spent budget cannot overshoot
it by more than one request.

A deployment with no known price (neither an operator's ``input_per_mtok`` /
``output_per_mtok`` nor the catalogue's) has no worst case: a budgeted key may
not use it (``Unpriced``); nor a model the catalogue prices in units a call's
usage does not carry (images, audio hours, pages), nor web searches (per-search
fees nobody reports: a model that always searches, or a request that asks for
search), unless the operator's own prices cover them. Prices with tiers by prompt
size are reserved at their top tier.

**After the call** the answer's own cost is settled. When the upstream reported
no usage (a stream without its usage chunk, or one the client left), the tokens
are counted here (``counted_usage``) and priced at the deployment that answered.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .. import errors
from .._assemble import partial_answer
from .._json import JSONEncodeError, dumps
from ..router.embed_batch import token_bound
from ..router.groups import Deployment, fallback_chain
from ..router.hedge import Hedge, hedgeable
from ..types import ChatRequest, ChatResponse, EmbeddingRequest, ImagePart, StreamEvent, Usage

if TYPE_CHECKING:
    from ..client import AsyncClient

DEFAULT_MAX_OUTPUT = 32_768
"""Output tokens reserved for a model whose limit neither the catalogue nor the
config (``max_output_tokens``) gives, when the request sets no ``max_tokens``."""
MESSAGE_ALLOWANCE = 8
"""Tokens a provider adds around each message (role markers)."""
TOOLS_ALLOWANCE = 600
"""Tokens a provider adds to a request with tools (Anthropic's tool-use system prompt is about 350)."""
IMAGE_KINDS = ("openai", "anthropic", "gemini")
TOP_TIER = 10_000_000
"""A prompt past every price tier: rates at it are a model's dearest."""
ALWAYS_SEARCHES = re.compile(r"search|sonar|deep-research", re.IGNORECASE)
"""Models that search the web on every call (and charge for it)."""
SEARCH_TOOLS = frozenset(("googleSearch", "google_search", "googleSearchRetrieval", "google_search_retrieval"))
_MAX_GROUPS = 4096
_UNKNOWN = "is unknown"
_SEARCHES = "includes web searches nobody reports a count of"
_UNITS = "is in units a call's usage does not carry"


class Unpriced(Exception):
    """Some deployment a call may reach has no price the gateway can charge."""

    def __init__(self, deployments: Sequence[Deployment], why: str = _UNKNOWN) -> None:
        self.deployments = list(deployments)
        names = ", ".join(repr(d.id) for d in deployments)
        super().__init__(
            f"the price of {names} {why}, so a budget cannot be kept with it: set input_per_mtok and "
            "output_per_mtok (USD per million tokens) on that deployment in the config's models: section"
        )


@dataclass(frozen=True, slots=True)
class Rates:
    """One deployment's worst-case figures: USD per prompt and per output token (``None``:
    unknown, as for embedding models), per request, the most output tokens an answer can
    hold, and its provider kind and model (images are counted by each provider's formula)."""

    input: float
    output: float | None
    fixed: float
    max_output: int
    kind: str
    model: str
    per_search: float = 0.0
    unbilled: bool = False
    """Priced in units a call's usage does not carry."""


class PriceBook:
    """Prices of the deployments each model group may reach, remembered per group (bounded)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._groups: OrderedDict[str, tuple[list[tuple[Deployment, Rates | None]], int]] = OrderedDict()
        """Per group: every deployment it may reach with its rates, and the most hedges a call starts."""

    def reservation(self, group: str, request: ChatRequest | EmbeddingRequest) -> float:
        """The most ``request`` may cost on any deployment ``group`` may reach (its prompt
        counted high, its whole output); ``Unpriced`` when one of them has no known price
        (for a chat request, no known output price either)."""
        chat = isinstance(request, ChatRequest)
        entries = self._rates(group)
        unpriced = [dep for dep, r in entries if r is None or (chat and r.output is None)]
        if unpriced:
            raise Unpriced(unpriced)
        unbilled = [dep for dep, r in entries if r is not None and r.unbilled]
        if unbilled:
            raise Unpriced(unbilled, _UNITS)
        searching = _asks_search(request)
        searches = [d for d, r in entries if r is not None and r.per_search and (searching or _searches(d.model))]
        if searches:
            raise Unpriced(searches, _SEARCHES)
        prompt, images = worst_prompt_tokens(request)
        asked = request.max_tokens if isinstance(request, ChatRequest) else 0
        worst = sent = 0.0
        for _, r in entries:
            assert r is not None
            # what the request allows: its own max_tokens whole (a model may answer more than the
            # catalogue says), else the most the model answers
            output = 0 if not chat else r.max_output if asked is None else asked
            seen = prompt + sum(_image_tokens(r.kind, r.model, image) for image in images)
            worst = max(worst, r.fixed + seen * r.input + output * (r.output or 0.0))
            sent = max(sent, r.fixed + seen * r.input)
        # hedged attempts that lose are cancelled before their first token: each costs its prompt
        return worst + self._hedges(group) * sent if chat and hedgeable(request) else worst

    def dearest(self, group: str) -> Deployment | None:
        """The deployment ``group`` may reach whose answers cost the most (for an answer
        whose deployment is not known: charged high, never low)."""
        priced = [(d, r) for d, r in self._rates(group) if r is not None]
        if not priced:
            return None
        return max(priced, key=lambda p: p[1].input + (p[1].output or 0.0))[0]

    def cost(self, deployment: Deployment, usage: Usage) -> float | None:
        """What ``usage`` costs at ``deployment`` (``None``: its price is unknown)."""
        if deployment.prices is not None:
            return deployment.prices.cost(usage)
        from ..cost import chat_cost

        try:
            provider = self._client.provider(deployment.provider)
        except errors.LLMError:
            return None
        own = provider.own_prices(deployment.model)
        if own is not None:
            return own.cost(usage)
        return chat_cost(provider.price_provider, deployment.model, usage)

    def _hedges(self, group: str) -> int:
        """The most hedged attempts a call to ``group`` may start beside its answer's."""
        return self._reach(group)[1]

    def _rates(self, group: str) -> list[tuple[Deployment, Rates | None]]:
        """Every deployment ``group`` may reach, fallbacks' included, with its rates."""
        return self._reach(group)[0]

    def _reach(self, group: str) -> tuple[list[tuple[Deployment, Rates | None]], int]:
        """What ``group``'s fallback chain holds, worked out once: its deployments with their
        rates, and the most hedges one of its groups starts."""
        found = self._groups.get(group)
        if found is None:
            try:
                chain = fallback_chain(group, self._client.groups)
            except KeyError:
                chain = []
            rates = [(d, self._deployment_rates(d)) for g in chain for d in g.members]
            hedges = max((g.hedge.max for g in chain if isinstance(g.hedge, Hedge)), default=0)
            found = self._groups[group] = (rates, hedges)
            while len(self._groups) > _MAX_GROUPS:
                self._groups.popitem(last=False)
        return found

    def _deployment_rates(self, dep: Deployment) -> Rates | None:
        try:
            provider = self._client.provider(dep.provider)
        except errors.LLMError:
            return None  # not configured: the call cannot reach it either, but nothing is known
        info = provider.model_info(dep.model)
        max_output = dep.max_output_tokens or info.max_output_tokens or info.context_window or DEFAULT_MAX_OUTPUT
        kind = provider.config.kind
        p = dep.prices or provider.own_prices(dep.model)
        if p is not None:
            return Rates(p.input_per_mtok / 1e6, p.output_per_mtok / 1e6, 0.0, max_output, kind, dep.model)
        from ..cost import chat_cost, model_rates

        known = model_rates(provider.price_provider, dep.model)
        if known is None:
            return None
        price = provider.price_provider
        fixed = chat_cost(price, dep.model, Usage(0, 0))
        prompt = chat_cost(price, dep.model, Usage(TOP_TIER, 0))
        both = chat_cost(price, dep.model, Usage(TOP_TIER, 1_000_000))
        if fixed is None or prompt is None:
            return None
        output = None if both is None else (both - prompt) / 1e6  # at the top tier's rate
        return Rates(
            (prompt - fixed) / TOP_TIER, output, fixed, max_output, kind, dep.model, known.per_search,
            bool(known.unbilled),
        )  # fmt: skip


# ---- the worst-case prompt -----------------------------------------------------------------


def worst_prompt_tokens(request: ChatRequest | EmbeddingRequest) -> tuple[float, list[ImagePart]]:
    """More prompt tokens than any provider will count for ``request``'s text (see the
    module docstring), and its images (counted per provider by the caller)."""
    if isinstance(request, EmbeddingRequest):
        return float(token_bound(request.inputs)), []
    total = 0
    images: list[ImagePart] = []
    for message in request.messages:
        total += MESSAGE_ALLOWANCE
        content = message.content
        if isinstance(content, str):
            total += _bytes(content)
        elif content:
            for part in content:
                if isinstance(part, ImagePart):
                    images.append(part)
                else:
                    total += _bytes(part.text)
        for call in message.tool_calls:
            total += _bytes(call.name) + (_bytes(call.raw_arguments) if call.raw_arguments else _json(call.arguments))
        if message.reasoning:
            total += _bytes(message.reasoning)
    if request.tools:
        total += TOOLS_ALLOWANCE
        total += sum(_bytes(t.name) + _bytes(t.description) + _json(t.parameters) for t in request.tools)
    fmt = request.response_format
    if fmt is not None and fmt.schema is not None:
        total += _json(fmt.schema)
    if request.extra:
        total += _json(request.extra)
    return float(total), images


def _searches(model: str) -> bool:
    return ALWAYS_SEARCHES.search(model) is not None


def _asks_search(request: ChatRequest | EmbeddingRequest) -> bool:
    """Whether pass-through fields ask the provider to search the web (billed per search)."""
    extra = request.extra
    if not extra:
        return False
    if "web_search_options" in extra:
        return True
    tools = extra.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict) and (
                SEARCH_TOOLS & tool.keys() or str(tool.get("type", "")).startswith("web_search")
            ):
                return True
    return False


def _json(value: object) -> int:
    try:
        return len(dumps(value))
    except (TypeError, JSONEncodeError) as exc:
        raise errors.InvalidRequest(f"the request cannot be encoded as JSON: {exc}") from None


def _bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


WORST_SIZES = ((768, 2048), (2048, 768), (2048, 2048), (4096, 4096))
"""Sizes tried for an image whose size is unknown (a URL): tall and wide ones cost
OpenAI more tiles than a square, big ones cost Gemini more."""


def _image_tokens(kind: str, model: str, image: ImagePart) -> int:
    """The provider's own count of the image, and never less than any major provider's;
    for an image of unknown size, its dearest size."""
    from ..tokens import image_tokens
    from ..tokens.images import image_size

    size = image_size(image)  # read once (from the data's header): each formula then takes it as given
    sizes = WORST_SIZES if size is None else (size,)
    shapes = [replace(image, width=w, height=h) for w, h in sizes]
    return max(image_tokens(k, model, shape) for k in {kind, *IMAGE_KINDS} for shape in shapes)


# ---- counting what was given -----------------------------------------------------------------


async def counted_usage(
    kind: str, model: str, request: ChatRequest, events: Sequence[StreamEvent] | None, response: ChatResponse | None
) -> Usage:
    """Usage counted here, for an answer the upstream reported none for: the
    prompt, and the output given so far (``events``) or in all (``response``)."""
    from ..tokens import COUNT_IN_THREAD_CHARS, count_text, count_tokens

    key = f"{kind}/{model}"
    answer = response if response is not None else partial_answer(kind, model, events or ())
    output = ""
    if answer is not None:
        output = (
            answer.content
            + (answer.reasoning or "")
            + "".join(c.name + (c.raw_arguments or dumps(c.arguments).decode()) for c in answer.tool_calls)
        )
    size = sum(len(m.text) for m in request.messages) + len(output)

    def count() -> Usage:
        prompt = count_tokens(key, request.messages, request.tools or None)
        return Usage(prompt, count_text(key, output) if output else 0)

    if size > COUNT_IN_THREAD_CHARS:
        return await asyncio.to_thread(count)
    return count()


__all__ = ["DEFAULT_MAX_OUTPUT", "PriceBook", "Rates", "Unpriced", "counted_usage", "worst_prompt_tokens"]
