"""The provider contract: what the router and the clients call.

``Provider`` is the ABC every provider kind implements (``LocalProvider``
directly; the HTTP wire formats through ``http.HTTPProvider``, which runs their
codecs over the transport). ``ProviderConfig`` says how to reach one account;
``WireRequest`` and the ``StreamDecoder`` protocol are what a format's codec
hands to that flow; ``finish_response`` attaches cost and the parsed
structured value to any answer.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from .. import errors
from .._http import Timeouts, Transport
from .._http1 import default_transport
from .._secret import Secret
from ..cost import Prices, chat_cost
from ..structured import structured_value
from ..types import (
    ChatRequest,
    ChatResponse,
    ConnectionCheck,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    ModelInfo,
    StreamEvent,
    ToolSpec,
    Usage,
)
from .prefill import Continuation

_MAX_REMEMBERED = 4096


@dataclass(slots=True)
class ProviderConfig:
    """How to reach one provider account. ``options`` holds kind-specific
    settings (e.g. Azure's ``api_version``, an OpenAI-compatible ``quirks`` name)."""

    name: str
    kind: str
    base_url: str | None = None
    api_key: Secret | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    headers: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.api_key, str):
            self.api_key = Secret(self.api_key)

    def __repr__(self) -> str:  # headers and options may hold credentials: never shown
        return f"ProviderConfig(name={self.name!r}, kind={self.kind!r}, base_url={self.base_url!r})"


@dataclass(slots=True)
class WireRequest:
    url: str
    headers: dict[str, str] = field(repr=False)
    payload: dict[str, Any] | None = None
    method: str = "POST"
    body: bytes | None = field(default=None, repr=False)
    """``payload`` already encoded (with :func:`encode_json`), when the provider
    needed the bytes itself (Bedrock signs them); the flow then sends these."""


class StreamDecoder(Protocol):
    """Turns one provider's stream frames into canonical events.

    It sets metadata (id, model, finish reason, refusal) on the assembler it was
    given, raises the mapped ``LLMError`` on an in-stream error event, and
    ``close()`` raises when the stream ended without its end marker."""

    def feed(self, event: Any) -> Iterable[StreamEvent]: ...

    def close(self) -> None: ...


class Provider(ABC):
    """What the router and the clients call. One instance per configured account."""

    kind: ClassVar[str] = ""
    window_includes_output: ClassVar[bool] = True
    """Whether the context window bounds prompt + output (False: input only, as Gemini's)."""
    max_embed_inputs: int = 1
    """The most texts one embeddings request may carry (the API's documented limit).
    The router's micro-batcher (``embed_batch_ms``) never joins callers past it. A plain
    attribute, not a ``ClassVar``: OpenAI-compatible kinds share one class and differ
    (set from their quirks row). 1, for kinds that do not say: no batching at all."""
    max_embed_tokens: int | None = None
    """The most tokens all texts of one embeddings request may add up to, when the API caps
    the sum (OpenAI: 300,000); ``None``: no cap beyond ``max_embed_inputs``."""

    def __init__(self, config: ProviderConfig, transport: Transport | None = None) -> None:
        self.config = config
        self.transport: Transport = transport or default_transport()
        self._windows: dict[str, int | None] = {}

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.config.name!r}, base_url={self.config.base_url!r})"

    @abstractmethod
    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]: ...

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise errors.InvalidRequest(f"provider kind {self.kind!r} has no embeddings API", provider=self.name)

    @abstractmethod
    async def models(self) -> list[ModelInfo]: ...

    def count_prompt(self, model: str, messages: list[Message], tools: list[ToolSpec] | None) -> int:
        """The prompt's tokens before sending (``tokens``: exact where the tokenizer is
        known, else an estimate on the high side). A provider that knows better says so
        here (the local model, with its configured system prompt)."""
        from ..tokens import count_tokens

        return count_tokens(f"{self.config.kind}/{model}", messages, tools)

    def continuation(self, request: ChatRequest, text: str) -> Continuation | None:
        """The request that makes this deployment go on with an answer that begins with
        ``text`` (a stream cut short elsewhere), or ``None`` when it cannot continue an
        answer (``prefill.py``; the router's ``stream_resume``)."""
        return None

    def own_prices(self, model: str) -> Prices | None:
        """Prices the provider knows itself, ahead of the catalogue (the local models: 0)."""
        return None

    def model_info(self, model: str) -> ModelInfo:
        from ..catalog import lookup_model

        return lookup_model(self.price_provider, model, provider=self.name)

    def context_window(self, model: str) -> int | None:
        """The model's context window in tokens (cached: this is on every request's path)."""
        try:
            return self._windows[model]
        except KeyError:
            if len(self._windows) >= _MAX_REMEMBERED:  # clients may name any model: keep it bounded
                self._windows.clear()
            window = self._windows[model] = self.model_info(model).context_window
            return window

    @property
    def price_provider(self) -> str:
        """The provider id in the price catalogue (genai-prices)."""
        return self.kind

    async def test_connection(self) -> ConnectionCheck:
        """A cheap authenticated call (list models) and a one-line verdict."""
        start = time.perf_counter()
        try:
            found = await self.models()
        except errors.LLMError as exc:
            return ConnectionCheck(self.name, False, _verdict(exc), time.perf_counter() - start, exc)
        elapsed = time.perf_counter() - start
        return ConnectionCheck(self.name, True, f"{len(found)} model{'' if len(found) == 1 else 's'} listed", elapsed)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the provider holds (the client closes the shared transport)."""


def _verdict(exc: errors.LLMError) -> str:
    if isinstance(exc, errors.AuthenticationError):
        return f"authentication failed: {exc.message}"
    if isinstance(exc, errors.ConnectionError | errors.Timeout):
        return f"unreachable: {exc.message}"
    return f"{type(exc).__name__}: {exc.message}"


def finish_response(
    response: ChatResponse, request: ChatRequest, price_provider: str, billed: Usage | None = None
) -> None:
    """Attach cost (of ``billed`` usage when the provider bills other counts than it
    reports) and, for structured output, the parsed value."""
    usage = billed or response.usage
    if usage.prompt_tokens or usage.completion_tokens:  # no usage reported: the cost is unknown, not 0
        response.cost_usd = chat_cost(price_provider, response.model or request.model, usage)
    response.parsed = structured_value(response, request.response_format)


__all__ = [
    "Provider",
    "ProviderConfig",
    "StreamDecoder",
    "WireRequest",
    "finish_response",
]
