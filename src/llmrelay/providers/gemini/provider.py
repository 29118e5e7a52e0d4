"""Google Gemini API (``generativelanguage.googleapis.com``, v1beta).

The key goes in the ``x-goog-api-key`` header, never in the URL. Endpoints:
``models/{model}:generateContent``, ``:streamGenerateContent?alt=sse`` (SSE
with CRLF framing and no end marker: the chunk carrying ``finishReason`` is
the last), ``:batchEmbedContents`` and ``GET models``.

Provider-specific settings go in ``ChatRequest.extra`` and are merged into the
body last, never over what the typed fields set (see ``codec.encode_chat``
and :mod:`..extra`), e.g.::

    extra={"safetySettings": [...],
           "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}}

``EmbeddingRequest.extra`` is added to every item of ``requests`` (e.g.
``{"taskType": "RETRIEVAL_QUERY"}``), never replacing the item's model, text or
``outputDimensionality``. Embedding usage is Gemini's
``usageMetadata.promptTokenCount`` when sent, else zero (older deployments
send none).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any
from urllib.parse import urlencode

from ... import errors
from ..._assemble import StreamAssembler
from ...types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo
from ..base import StreamDecoder, WireRequest
from ..http import HTTPProvider, join_url
from . import codec
from .codec import JSON
from .errors import map_error, payload_error
from .stream import ChatStreamDecoder

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_MAX_MODEL_PAGES = 20


class GeminiProvider(HTTPProvider):
    kind = "gemini"
    window_includes_output = False  # inputTokenLimit bounds the prompt alone
    max_embed_inputs = 100  # batchEmbedContents: "at most 100 requests can be in one batch" (HTTP 400 past it)

    @property
    def price_provider(self) -> str:
        return "google"

    # ---- requests ------------------------------------------------------------------

    def _root(self) -> str:
        """The versioned API root; a base URL that already ends in a version is kept."""
        base = (self.config.base_url or DEFAULT_BASE_URL).rstrip("/")
        if base.rsplit("/", 1)[-1] in ("v1", "v1beta", "v1alpha"):
            return base
        return f"{base}/{self.config.options.get('api_version', 'v1beta')}"

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.config.api_key:
            headers["x-goog-api-key"] = self.config.api_key.get()
        headers.update(self.config.headers)
        return headers

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        try:
            body = codec.encode_chat(request, stream=stream)
        except errors.LLMError as exc:
            exc.provider = exc.provider or self.name
            raise
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return WireRequest(join_url(self._root(), f"{codec.model_path(request.model)}:{action}"), self._headers(), body)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        if isinstance(data, dict) and "error" in data:  # an error status object under HTTP 200
            raise self._payload_error(data)
        return codec.decode_chat(data, provider=self.name, model=request.model)

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> StreamDecoder:
        return ChatStreamDecoder(assembler, self.name, self._payload_error)

    def embed_request(self, request: EmbeddingRequest) -> WireRequest:
        url = join_url(self._root(), f"{codec.model_path(request.model)}:batchEmbedContents")
        return WireRequest(url, self._headers(), codec.encode_embed(request))

    def parse_embed(self, data: Any, request: EmbeddingRequest) -> EmbeddingResponse:
        return codec.decode_embed(data, provider=self.name, model=request.model)

    def models_request(self) -> WireRequest:
        return self._models_page(None)

    def _models_page(self, token: str | None) -> WireRequest:
        query: dict[str, str | int] = {"pageSize": 1000}
        if token:
            query["pageToken"] = token
        url = join_url(self._root(), "models") + "?" + urlencode(query)
        return WireRequest(url, self._headers(), None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        return codec.decode_models(data, provider=self.name)

    async def models(self) -> list[ModelInfo]:
        """Every page of ``GET models`` (one page of 1000 covers today's list)."""
        found: list[ModelInfo] = []
        token: str | None = None
        for _ in range(_MAX_MODEL_PAGES):
            page = partial(self._models_page, token)
            models, token = await self._call(page, self._models_and_token, "models list")
            found.extend(models)
            if not token:
                break
        return found

    def _models_and_token(self, data: Any) -> tuple[list[ModelInfo], str | None]:
        token = data.get("nextPageToken") if isinstance(data, dict) else None
        return self.parse_models(data), token if isinstance(token, str) else None

    # ---- errors --------------------------------------------------------------------

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError:
        return map_error(status, headers, body, provider=self.name, secret=self.config.api_key)

    def _payload_error(self, payload: JSON) -> errors.LLMError:
        return payload_error(payload, provider=self.name, secret=self.config.api_key)
