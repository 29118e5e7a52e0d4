"""Amazon Bedrock (Converse API): the provider. The wire translation lives in
:mod:`.codec`, the stream decoder in :mod:`.stream`, the error mapping in
:mod:`.errors`, the authentication (API key or SigV4) in :mod:`.auth`.

Configuration (``ProviderConfig``):

- ``options["region"]``: the AWS region (``us-east-1``...). The configuration
  loader fills it from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``; this module reads
  no environment. Taken from ``base_url`` when that is a regional Bedrock host.
- ``api_key``: a Bedrock API key, sent as ``Authorization: Bearer ...``; or
- ``options["aws_access_key_id"]``, ``options["aws_secret_access_key"]`` and
  optionally ``options["aws_session_token"]``: requests are signed with AWS
  Signature Version 4 for the service ``bedrock`` (botocore does the signing:
  ``llmrelay[bedrock]``). String secrets in ``options`` are
  replaced in place by ``Secret`` so that no repr shows them. ``api_key`` wins
  when both are given, as in the AWS SDKs.
- ``base_url`` replaces ``https://bedrock-runtime.{region}.amazonaws.com`` (a
  VPC endpoint, a proxy); ``options["models_base_url"]`` replaces the control
  plane ``https://bedrock.{region}.amazonaws.com`` used by ``models()``.

The stream is ``application/vnd.amazon.eventstream``: binary frames (a prelude
with the total and header lengths and its CRC32, typed headers, a JSON payload,
a CRC32 of the whole message), decoded by ``_eventstream`` with both CRCs checked. Errors can
arrive inside a 200 stream as ``:message-type: exception`` frames; usage comes
in the ``metadata`` event after ``messageStop``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from ... import errors
from ..._assemble import StreamAssembler
from ..._eventstream import EventStreamParser, Frame
from ..._http import StreamResponse, Transport
from ..._secret import Secret
from ...structured import structured_tool_name
from ...types import ChatRequest, ChatResponse, ModelInfo
from ..base import ProviderConfig, WireRequest
from ..http import HTTPProvider, encode_json, join_url
from ..prefill import Continuation, prefilled
from ..wire_errors import describe_body
from . import codec
from .auth import SECRET_OPTIONS, make_auth
from .errors import map_error
from .stream import ChatStreamDecoder

EVENT_STREAM = "application/vnd.amazon.eventstream"

# Left unescaped in the model id so the URL is already in the form HTTP clients
# normalise paths to (yarl decodes these escapes): the path signed is the path sent.
_PATH_SAFE = "!$&'()*,;=:@"
_REGION_IN_HOST = re.compile(r"bedrock(?:-runtime)?(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d)\.")


def _region(config: ProviderConfig) -> str | None:
    region = config.options.get("region")
    if region:
        return str(region)
    match = _REGION_IN_HOST.search(urlsplit(config.base_url or "").netloc)
    return match.group(1) if match else None


# --------------------------------------------------------------------------- provider


class BedrockProvider(HTTPProvider):
    kind = "bedrock"
    max_embed_inputs = 1  # Converse is chat only: this provider has no embeddings API to batch

    def __init__(self, config: ProviderConfig, transport: Transport | None = None) -> None:
        super().__init__(config, transport)
        self.region = _region(config)
        if config.base_url is None and self.region is None:
            raise errors.ConfigError(f"provider {config.name!r}: Bedrock needs options.region (or AWS_REGION)")
        self.base_url = (config.base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com").rstrip("/")
        self._auth = make_auth(config, self.region)

    @property
    def price_provider(self) -> str:
        return "aws"

    # ---- codec hooks ---------------------------------------------------------------

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        try:
            payload = codec.encode_chat(request, stream=stream)
        except errors.LLMError as exc:
            exc.provider = exc.provider or self.name
            raise
        url = self.model_url(request.model, "converse-stream" if stream else "converse")
        body = encode_json(payload)  # the bytes signed are the bytes the flow sends
        headers = self._signed("POST", url, {"content-type": "application/json"}, body)
        return WireRequest(url, headers, payload, body=body)

    def continuation(self, request: ChatRequest, text: str) -> Continuation | None:
        """Claude on Bedrock continues a last assistant message, as Anthropic's own API
        does; other model families there are not known to."""
        if "anthropic." not in request.model or request.extra.get("thinking"):
            return None
        return prefilled(request, text, strip_trailing_space=True)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        structured = structured_tool_name(request)
        return codec.decode_chat(data, provider=self.name, model=request.model, structured_tool=structured)

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> ChatStreamDecoder:
        return ChatStreamDecoder(assembler, self.name, structured_tool_name(request))

    async def stream_frames(self, resp: StreamResponse) -> AsyncIterator[list[Frame]]:
        ctype = codec.header(resp.headers, "content-type")
        if ctype and not ctype.startswith(EVENT_STREAM):
            body = await resp.read()
            raise errors.ProviderError(
                f"expected an event stream, got {describe_body(body, resp.headers)}", provider=self.name
            )
        parser = EventStreamParser(self.name)
        async for chunk in resp.iter_bytes():
            frames = parser.feed(chunk)
            if frames:
                yield frames
        parser.close()

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError:
        return map_error(status, headers, body, provider=self.name, secrets=self._secrets())

    def models_request(self) -> WireRequest:
        base = self.config.options.get("models_base_url")
        if not base and self.region is None:
            raise errors.ConfigError(
                f"provider {self.name!r}: listing models needs options.region or options.models_base_url"
            )
        url = join_url(str(base or f"https://bedrock.{self.region}.amazonaws.com"), "foundation-models")
        return WireRequest(url, self._signed("GET", url, {}, b""), None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        return codec.decode_models(data, provider=self.name, model_info=self.model_info)

    # ---- helpers -------------------------------------------------------------------

    def model_url(self, model: str, action: str) -> str:
        return join_url(self.base_url, f"model/{quote(model, safe=_PATH_SAFE)}/{action}")

    def _signed(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return self._auth.headers(method, url, {**headers, **self.config.headers}, body)

    def _secrets(self) -> tuple[Secret | str | None, ...]:
        """What an error message must never show: the API key and the secret AWS options."""
        options = self.config.options
        return (self.config.api_key, *(options.get(key) for key in SECRET_OPTIONS))
