"""OpenAI chat completions, embeddings and models, and every OpenAI-compatible
service (see :mod:`.compat` for their quirks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import errors
from ..._assemble import StreamAssembler
from ..._http import Transport
from ...types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo
from ..base import ProviderConfig, StreamDecoder, WireRequest
from ..http import HTTPProvider, join_url
from ..prefill import Continuation, prefilled
from . import codec
from .compat import CONTINUE_FINAL_MESSAGE, quirks_for
from .errors import map_error
from .stream import ChatStreamDecoder


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
        payload = codec.encode_chat(request, stream=stream, quirks=self.quirks)
        return WireRequest(self.url("chat/completions", request.model), self.headers, payload)

    def continuation(self, request: ChatRequest, text: str) -> Continuation | None:
        """Servers that continue a last assistant message when asked to (``Quirks.continues``)."""
        if not self.quirks.continues:
            return None
        asked = request.extra.get("continue_final_message") is True  # the caller's own prefill
        return prefilled(request, text, extra=CONTINUE_FINAL_MESSAGE, prefilled_by_caller=asked)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        return codec.decode_chat(data, provider=self.name, model=request.model)

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> StreamDecoder:
        return ChatStreamDecoder(assembler, self.name, expect_usage=self.quirks.stream_usage_option)

    def embed_request(self, request: EmbeddingRequest) -> WireRequest:
        payload = codec.encode_embed(request, quirks=self.quirks)
        return WireRequest(self.url("embeddings", request.model), self.headers, payload)

    def parse_embed(self, data: Any, request: EmbeddingRequest) -> EmbeddingResponse:
        return codec.decode_embed(data, provider=self.name, model=request.model)

    def models_request(self) -> WireRequest:
        return WireRequest(self.url("models"), self.headers, None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        return codec.decode_models(data, provider=self.name)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError:
        return map_error(status, headers, body, provider=self.name)
