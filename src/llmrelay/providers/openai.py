"""OpenAI chat completions, embeddings and models, and every OpenAI-compatible
service (see ``openai_compat.py`` for their quirks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import errors
from .._assemble import StreamAssembler
from .._http import Transport
from ..types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo
from . import openai_codec as codec
from .base import (
    HTTPProvider,
    ProviderConfig,
    StreamDecoder,
    WireRequest,
    build_error,
    error_body,
    join_url,
    unexpected_body_error,
)
from .extra import merge_extra
from .openai_compat import quirks_for

EMBED_OWNED_FIELDS = frozenset(("model", "input", "dimensions", "user"))
"""Embeddings body fields never taken from ``extra``: the model, the texts (what is
billed and how many vectors come back) and the typed fields."""


class OpenAIProvider(HTTPProvider):
    kind = "openai"

    def __init__(self, config: ProviderConfig, transport: Transport | None = None) -> None:
        super().__init__(config, transport)
        self.quirks = quirks_for(str(config.options.get("quirks", config.kind)))
        self.base_url = (config.base_url or self.quirks.base_url).rstrip("/")
        self.max_embed_inputs = self.quirks.max_embed_inputs
        self.max_embed_tokens = self.quirks.max_embed_tokens
        self.headers = self.auth_headers()

    def auth_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key.get()}"
        organization = self.config.options.get("organization")
        if organization:
            headers["openai-organization"] = str(organization)
        headers.update(self.config.headers)
        return headers

    @property
    def price_provider(self) -> str:
        return self.quirks.price_provider

    def url(self, path: str, model: str | None = None) -> str:
        return join_url(self.base_url, path)

    # ---- codec hooks ------------------------------------------------------------------

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        payload = codec.request_to_wire(request, stream, self.quirks)
        return WireRequest(self.url("chat/completions", request.model), self.headers, payload)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        return codec.response_from_wire(data, self.name, request.model)

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> StreamDecoder:
        return codec.ChatStreamDecoder(assembler, self.name, expect_usage=self.quirks.stream_usage_option)

    def embed_request(self, request: EmbeddingRequest) -> WireRequest:
        """The embeddings body; ``request.extra`` adds fields (see :mod:`.extra`)."""
        payload: dict[str, Any] = {"model": request.model, "input": request.inputs}
        if self.quirks.embed_base64:
            payload["encoding_format"] = "base64"
        if request.dimensions is not None:
            payload["dimensions"] = request.dimensions
        if request.user is not None and self.quirks.send_user:
            payload["user"] = request.user
        merge_extra(payload, request.extra, EMBED_OWNED_FIELDS)
        return WireRequest(self.url("embeddings", request.model), self.headers, payload)

    def parse_embed(self, data: Any, request: EmbeddingRequest) -> EmbeddingResponse:
        return codec.embeddings_from_wire(data, self.name, request.model)

    def models_request(self) -> WireRequest:
        return WireRequest(self.url("models"), self.headers, None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        return codec.models_from_wire(data, self.name)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError:
        return map_openai_error(status, headers, body, self.name)


def map_openai_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> errors.LLMError:
    """HTTP status + OpenAI-style error body -> ``LLMError``.

    Accepts the shapes compatible servers use too: ``{"error": {...}}``,
    ``{"error": "text"}``, ``{"message": ...}`` (Mistral) and ``{"detail": ...}``.
    """
    data = error_body(body)
    if not isinstance(data, dict):
        return unexpected_body_error(status, headers, body, provider)
    err = data.get("error", data)
    if isinstance(err, dict):
        message = err.get("message") or data.get("detail") or err.get("code") or f"HTTP {status}"
    else:
        message = str(err)
    cls = codec.error_class(status, err)
    exc = build_error(cls, str(message), provider=provider, status=status, headers=headers, body=data)
    if codec.is_out_of_credit(err):
        exc.retryable = False
    return exc
