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
not use it (``Unpriced``).

**After the call** the answer's own cost is settled. When the upstream reported
no usage (a stream without its usage chunk, or one the client left), the tokens
are counted here (``counted_usage``) and priced at the deployment that answered.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from .. import errors
from .._assemble import StreamAssembler
from ..router.groups import Deployment, fallback_chain
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
COUNT_IN_THREAD_CHARS = 64_000
"""Texts longer than this are counted in a worker thread, off the event loop."""
_MAX_GROUPS = 4096


class Unpriced(Exception):
    """Some deployment a call may reach has no known price."""

    def __init__(self, deployments: Sequence[Deployment]) -> None:
        self.deployments = list(deployments)
        names = ", ".join(repr(d.id) for d in deployments)
        super().__init__(
            f"the price of {names} is unknown, so a budget cannot be kept with it: set input_per_mtok and "
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


class PriceBook:
    """Prices of the deployments each model group may reach, remembered per group (bounded)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._groups: OrderedDict[str, list[tuple[Deployment, Rates | None]]] = OrderedDict()

    def reservation(self, group: str, request: ChatRequest | EmbeddingRequest) -> float:
        """The most ``request`` may cost on any deployment ``group`` may reach (its prompt
        counted high, its whole output); ``Unpriced`` when one of them has no known price
        (for a chat request, no known output price either)."""
        chat = isinstance(request, ChatRequest)
        entries = self._rates(group)
        unpriced = [dep for dep, r in entries if r is None or (chat and r.output is None)]
        if unpriced:
            raise Unpriced(unpriced)
        prompt, images = worst_prompt_tokens(request)
        asked = request.max_tokens if isinstance(request, ChatRequest) else 0
        worst = 0.0
        for _, r in entries:
            assert r is not None
            output = 0 if not chat else r.max_output if asked is None else min(asked, r.max_output)
            seen = prompt + sum(_image_tokens(r.kind, r.model, image) for image in images)
            worst = max(worst, r.fixed + seen * r.input + output * (r.output or 0.0))
        return worst

    def cost(self, deployment: Deployment, usage: Usage) -> float | None:
        """What ``usage`` costs at ``deployment`` (``None``: its price is unknown)."""
        if deployment.prices is not None:
            return deployment.prices.cost(usage)
        from ..cost import chat_cost

        try:
            provider = self._client.provider(deployment.provider)
        except errors.LLMError:
            return None
        return chat_cost(provider.price_provider, deployment.model, usage)

    def _rates(self, group: str) -> list[tuple[Deployment, Rates | None]]:
        """Every deployment ``group`` may reach, fallbacks' included, with its rates."""
        found = self._groups.get(group)
        if found is None:
            try:
                chain = fallback_chain(group, self._client.router.groups)
            except KeyError:
                chain = []
            found = self._groups[group] = [(d, self._deployment_rates(d)) for g in chain for d in g.members]
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
        if dep.prices is not None:
            p = dep.prices
            return Rates(p.input_per_mtok / 1e6, p.output_per_mtok / 1e6, 0.0, max_output, kind, dep.model)
        from ..cost import chat_cost

        fixed = chat_cost(provider.price_provider, dep.model, Usage(0, 0))
        per_input = chat_cost(provider.price_provider, dep.model, Usage(1_000_000, 0))
        per_output = chat_cost(provider.price_provider, dep.model, Usage(0, 1_000_000))
        if fixed is None or per_input is None:
            return None
        output = None if per_output is None else (per_output - fixed) / 1e6
        return Rates((per_input - fixed) / 1e6, output, fixed, max_output, kind, dep.model)

    def forget(self) -> None:
        """Drop what is remembered (after the groups changed)."""
        self._groups.clear()


# ---- the worst-case prompt -----------------------------------------------------------------


def worst_prompt_tokens(request: ChatRequest | EmbeddingRequest) -> tuple[float, list[ImagePart]]:
    """More prompt tokens than any provider will count for ``request``'s text (see the
    module docstring), and its images (counted per provider by the caller)."""
    if isinstance(request, EmbeddingRequest):
        return float(sum(_bytes(t) + 1 for t in request.inputs)), []
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


def _json(value: object) -> int:
    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise errors.InvalidRequest(f"the request cannot be encoded as JSON: {exc}") from None


def _bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _image_tokens(kind: str, model: str, image: ImagePart) -> int:
    """The provider's own count of the image, and never less than any major provider's."""
    from ..tokens import image_tokens

    return max(image_tokens(k, model, image) for k in {kind, *IMAGE_KINDS})


# ---- counting what was given -----------------------------------------------------------------


async def counted_usage(
    kind: str, model: str, request: ChatRequest, events: Sequence[StreamEvent] | None, response: ChatResponse | None
) -> Usage:
    """Usage counted here, for an answer the upstream reported none for: the
    prompt, and the output given so far (``events``) or in all (``response``)."""
    from ..tokens import count_text, count_tokens

    key = f"{kind}/{model}"
    answer = response if response is not None else _assembled(kind, model, events or ())
    output = ""
    if answer is not None:
        output = (
            answer.content
            + (answer.reasoning or "")
            + "".join(c.name + (c.raw_arguments or orjson.dumps(c.arguments).decode()) for c in answer.tool_calls)
        )
    size = sum(len(m.text) for m in request.messages) + len(output)

    def count() -> Usage:
        prompt = count_tokens(key, request.messages, request.tools or None)
        return Usage(prompt, count_text(key, output) if output else 0)

    if size > COUNT_IN_THREAD_CHARS:
        return await asyncio.to_thread(count)
    return count()


def _assembled(kind: str, model: str, events: Sequence[StreamEvent]) -> ChatResponse | None:
    assembler = StreamAssembler(kind, model)
    try:
        for event in events:
            assembler.add(event)
        return assembler.response("error")
    except Exception:  # pieces too broken to put together: count nothing of them
        return None


__all__ = ["DEFAULT_MAX_OUTPUT", "PriceBook", "Rates", "Unpriced", "counted_usage", "worst_prompt_tokens"]
