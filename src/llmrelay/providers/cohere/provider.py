"""Cohere (API v2): the provider.

Chat is ``POST /v2/chat`` (``stream: true`` for SSE), embeddings ``POST
/v2/embed``, the model list ``GET /v1/models``; auth is ``Authorization:
Bearer <key>``. ``base_url`` is the host root (``https://api.cohere.com``); a
trailing ``/v1`` or ``/v2`` on it is tolerated. The wire translation lives in
:mod:`.codec`, the stream decoder in :mod:`.stream`, the error mapping in :mod:`.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ... import errors
from ..._assemble import StreamAssembler
from ...types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo, Usage
from ..base import WireRequest
from ..http import HTTPProvider, join_url
from . import codec
from .errors import map_error
from .stream import ChatStreamDecoder

_VERSION_SUFFIX = re.compile(r"/v[12]/?$")


class CohereProvider(HTTPProvider):
    kind = "cohere"
    max_embed_inputs = 96  # v2/embed: "texts" takes at most 96 (Cohere's API reference)

    @property
    def price_provider(self) -> str:
        return "cohere"

    # ---- codec hooks ---------------------------------------------------------------

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        try:
            payload = codec.encode_chat(request, stream=stream)
        except errors.LLMError as exc:
            exc.provider = exc.provider or self.name
            raise
        accept = "text/event-stream" if stream else "application/json"
        return WireRequest(self._url("v2/chat"), self._headers(accept), payload)

    def billed_usage(self, response: ChatResponse) -> Usage | None:
        """Cohere bills ``billed_units``, which leave out its own prompt scaffolding."""
        billed = response.extra.get("billed_units") or (response.raw.get("usage") or {}).get("billed_units")
        if not isinstance(billed, dict):
            return None
        return Usage(
            prompt_tokens=int(billed.get("input_tokens") or 0), completion_tokens=int(billed.get("output_tokens") or 0)
        )

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        return codec.decode_chat(data, provider=self.name, model=request.model)

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> ChatStreamDecoder:
        return ChatStreamDecoder(assembler, self.name)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError:
        return map_error(status, headers, body, provider=self.name, secret=self.config.api_key)

    def embed_request(self, request: EmbeddingRequest) -> WireRequest:
        return WireRequest(self._url("v2/embed"), self._headers(), codec.encode_embed(request))

    def parse_embed(self, data: Any, request: EmbeddingRequest) -> EmbeddingResponse:
        return codec.decode_embed(data, provider=self.name, model=request.model)

    def models_request(self) -> WireRequest:
        # One page of up to 1000 (the API maximum) covers every model an account sees.
        return WireRequest(self._url("v1/models?page_size=1000"), self._headers(), None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        return codec.decode_models(data, provider=self.name)

    # ---- helpers -------------------------------------------------------------------

    def _url(self, path: str) -> str:
        base = _VERSION_SUFFIX.sub("", (self.config.base_url or codec.DEFAULT_BASE_URL).rstrip("/"))
        return join_url(base, path)

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": accept}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key.get()}"
        headers.update(self.config.headers)
        return headers
