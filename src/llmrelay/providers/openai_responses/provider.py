"""OpenAI Responses API (``POST /responses``), provider kind ``openai-responses``.

The same account as kind ``openai`` (``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``,
the same auth headers, base URL, embeddings, model listing and error mapping,
all inherited); only chat goes through ``/responses``. The wire translation
lives in :mod:`.codec` and :mod:`.stream`.

Notes:

- requests are sent with ``store: false``: the caller holds the conversation,
  so OpenAI need not keep it (``extra={"store": True}`` to keep it anyway);
- ``stop`` has no Responses equivalent and is refused; ``seed`` is left out;
- ``extra`` adds fields to the body, e.g. ``{"reasoning": {"effort": "low",
  "summary": "auto"}}`` or ``{"include": ["reasoning.encrypted_content"]}``, but
  never replaces one the codec built nor one it owns (``codec.OWNED_FIELDS``);
- encrypted reasoning, when asked for, is kept in
  ``ChatResponse.extra["reasoning_encrypted_content"]`` (not sent back).
"""

from __future__ import annotations

from typing import Any

from ..._assemble import StreamAssembler
from ...types import ChatRequest, ChatResponse
from ..base import StreamDecoder, WireRequest
from ..openai.provider import OpenAIProvider
from . import codec
from .stream import ChatStreamDecoder


class OpenAIResponsesProvider(OpenAIProvider):
    kind = "openai-responses"

    def check_request(self, request: ChatRequest) -> None:
        codec.check_request(request, self.name)

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        payload = codec.encode_chat(request, stream=stream)
        return WireRequest(self.url("responses", request.model), self.headers, payload)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        return codec.decode_chat(data, provider=self.name, model=request.model)

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> StreamDecoder:
        return ChatStreamDecoder(assembler, self.name)
