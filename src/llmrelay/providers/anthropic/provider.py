"""Anthropic (Messages API): the provider. The wire translation lives in
:mod:`.codec`, the stream decoder in :mod:`.stream`, the error mapping in
:mod:`.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import errors
from ..._assemble import StreamAssembler
from ...structured import structured_tool_name
from ...types import ChatRequest, ChatResponse, ModelInfo
from ..base import WireRequest
from ..http import HTTPProvider, join_url
from ..prefill import Continuation, prefilled
from . import codec
from .errors import error_from_payload, map_error
from .stream import ChatStreamDecoder


class AnthropicProvider(HTTPProvider):
    kind = "anthropic"

    # ---- codec hooks ---------------------------------------------------------------

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        try:
            payload = codec.encode_chat(request, stream=stream)
        except errors.LLMError as exc:
            exc.provider = exc.provider or self.name
            raise
        return WireRequest(self._url("v1/messages"), self._headers(), payload)

    def continuation(self, request: ChatRequest, text: str) -> Continuation | None:
        """A last assistant message is the beginning of the answer (not with extended
        thinking, whose answers must begin with a thinking block)."""
        if request.extra.get("thinking"):
            return None
        return prefilled(request, text, strip_trailing_space=True)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        if isinstance(data, dict) and data.get("type") == "error":
            exc = error_from_payload(data, provider=self.name, status=None, headers={})
            if exc is not None:
                raise exc
        return codec.decode_chat(data, provider=self.name, structured_tool=structured_tool_name(request))

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> ChatStreamDecoder:
        return ChatStreamDecoder(assembler, self.name, structured_tool_name(request))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError:
        return map_error(status, headers, body, provider=self.name)

    def models_request(self) -> WireRequest:
        # One page of up to 1000 (the API maximum) covers every Claude model.
        return WireRequest(self._url("v1/models?limit=1000"), self._headers(), None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        return codec.decode_models(data, provider=self.name)

    # ---- helpers -------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return join_url(self.config.base_url or codec.DEFAULT_BASE_URL, path)

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": codec.API_VERSION, "content-type": "application/json"}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key.get()
        headers.update(self.config.headers)
        return headers
