"""Amazon Bedrock (Converse API): the provider, its auth, its error mapping and
its stream decoder. The wire translation lives in :mod:`.bedrock_codec`.

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
a CRC32 of the whole message), decoded here with both CRCs checked. Errors can
arrive inside a 200 stream as ``:message-type: exception`` frames; usage comes
in the ``metadata`` event after ``messageStop``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from importlib.util import find_spec
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from .. import errors
from .._assemble import StreamAssembler
from .._eventstream import EventStreamParser, Frame
from .._http import StreamResponse, Transport
from .._install import install_hint
from .._json import JSONDecodeError, loads
from .._secret import Secret, redact
from ..structured import structured_tool_name
from ..types import (
    ChatRequest,
    ChatResponse,
    ModelInfo,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from . import bedrock_codec as codec
from .base import (
    HTTPProvider,
    ProviderConfig,
    WireRequest,
    build_error,
    describe_body,
    encode_json,
    error_body,
    join_url,
    unexpected_body_error,
)

SIGNING_SERVICE = "bedrock"  # the signing name of both bedrock-runtime and the bedrock control plane
SECRET_OPTIONS = ("aws_secret_access_key", "aws_session_token")
EVENT_STREAM = "application/vnd.amazon.eventstream"

# Left unescaped in the model id so the URL is already in the form HTTP clients
# normalise paths to (yarl decodes these escapes): the path signed is the path sent.
_PATH_SAFE = "!$&'()*,;=:@"
_REGION_IN_HOST = re.compile(r"bedrock(?:-runtime)?(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d)\.")


# --------------------------------------------------------------------------- auth


class _Auth(Protocol):
    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]: ...


class _BearerAuth:
    """A Bedrock API key."""

    __slots__ = ("_token",)

    def __init__(self, token: Secret) -> None:
        self._token = token

    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return {**headers, "authorization": f"Bearer {self._token.get()}"}


class _SigV4Auth:
    """AWS Signature Version 4 over the exact method, URL, headers and body sent.
    botocore is imported on the first signature, not at ``import llmrelay``."""

    __slots__ = ("_access_key", "_region", "_secret", "_signer", "_token")

    def __init__(self, access_key: str, secret: Secret, token: Secret | None, region: str) -> None:
        self._access_key = access_key
        self._secret = secret
        self._token = token
        self._region = region
        self._signer: Any = None

    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped, import-not-found, unused-ignore]

        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        self._sigv4().add_auth(request)
        return {str(name): str(value) for name, value in request.headers.items()}

    def _sigv4(self) -> Any:
        if self._signer is None:
            from botocore.auth import SigV4Auth  # type: ignore[import-untyped, import-not-found, unused-ignore]
            from botocore.credentials import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
                Credentials,
            )

            token = self._token.get() if self._token else None
            credentials = Credentials(self._access_key, self._secret.get(), token)
            self._signer = SigV4Auth(credentials, SIGNING_SERVICE, self._region)
        return self._signer


def _secret_option(config: ProviderConfig, key: str) -> Secret | None:
    value = config.options.get(key)
    if isinstance(value, str):
        value = config.options[key] = Secret(value)  # reprs of the config now show '****'
    return value if isinstance(value, Secret) and value else None


def _make_auth(config: ProviderConfig, region: str | None) -> _Auth:
    if config.api_key:
        return _BearerAuth(config.api_key)
    secret = _secret_option(config, "aws_secret_access_key")
    token = _secret_option(config, "aws_session_token")
    access_key = str(config.options.get("aws_access_key_id") or "")
    where = f"provider {config.name!r}"
    if not access_key and secret is None:
        raise errors.ConfigError(
            f"{where}: Bedrock needs api_key (a Bedrock API key) or options aws_access_key_id and aws_secret_access_key"
        )
    if not access_key or secret is None:
        missing = "aws_secret_access_key" if access_key else "aws_access_key_id"
        raise errors.ConfigError(f"{where}: options.{missing} is missing (both AWS keys are needed to sign)")
    if region is None:
        raise errors.ConfigError(f"{where}: AWS signing needs options.region (or AWS_REGION)")
    if find_spec("botocore") is None:
        raise errors.ConfigError(f"{where}: AWS signing needs botocore: {install_hint('bedrock')}")
    return _SigV4Auth(access_key, secret, token, region)


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
        self._auth = _make_auth(config, self.region)

    @property
    def price_provider(self) -> str:
        return "aws"

    # ---- codec hooks ---------------------------------------------------------------

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        try:
            payload = codec.converse_body(request)
        except errors.LLMError as exc:
            exc.provider = exc.provider or self.name
            raise
        url = self.model_url(request.model, "converse-stream" if stream else "converse")
        body = encode_json(payload)  # the bytes signed are the bytes the flow sends
        headers = self._signed("POST", url, {"content-type": "application/json"}, body)
        return WireRequest(url, headers, payload, body=body)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        structured = structured_tool_name(request)
        return codec.parse_converse(data, provider=self.name, model=request.model, structured_tool=structured)

    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> ConverseStreamDecoder:
        return ConverseStreamDecoder(assembler, self.name, structured_tool_name(request))

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
        data = error_body(body)
        kind = codec.error_type(headers, data)
        if isinstance(data, dict):
            message = codec.error_message(data, status)
        elif kind:  # a body that is not AWS's JSON, but the error type header is there
            message = f"HTTP {status} with {describe_body(body, headers)}"
        else:
            return unexpected_body_error(status, headers, body, self.name)
        cls = codec.error_class(kind, message, status)
        text = f"{kind}: {message}" if kind else message
        return build_error(cls, self._redact(text), provider=self.name, status=status, headers=headers, body=data)

    def models_request(self) -> WireRequest:
        base = self.config.options.get("models_base_url")
        if not base and self.region is None:
            raise errors.ConfigError(
                f"provider {self.name!r}: listing models needs options.region or options.models_base_url"
            )
        url = join_url(str(base or f"https://bedrock.{self.region}.amazonaws.com"), "foundation-models")
        return WireRequest(url, self._signed("GET", url, {}, b""), None, method="GET")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        summaries = data.get("modelSummaries") if isinstance(data, dict) else None
        if not isinstance(summaries, list):
            raise errors.ProviderError("bedrock model list has no modelSummaries", provider=self.name, body=data)
        return [
            codec.model_from_summary(s, self.model_info(str(s["modelId"])))
            for s in summaries
            if isinstance(s, dict) and s.get("modelId")
        ]

    # ---- helpers -------------------------------------------------------------------

    def model_url(self, model: str, action: str) -> str:
        return join_url(self.base_url, f"model/{quote(model, safe=_PATH_SAFE)}/{action}")

    def _signed(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return self._auth.headers(method, url, {**headers, **self.config.headers}, body)

    def _redact(self, text: str) -> str:
        options = self.config.options
        return redact(text, self.config.api_key, *(options.get(key) for key in SECRET_OPTIONS))


# --------------------------------------------------------------------------- stream decoder


class ConverseStreamDecoder:
    """ConverseStream frames -> canonical events (see ``StreamDecoder``)."""

    def __init__(self, assembler: StreamAssembler, provider: str, structured_tool: str | None = None) -> None:
        self._asm = assembler
        self._provider = provider
        self._structured_tool = structured_tool
        self._tools: dict[int, int | None] = {}  # content block index -> tool ordinal (None: structured answer)
        self._stopped = False

    def feed(self, frame: Frame) -> list[StreamEvent]:
        kind = frame.header(":message-type")
        if kind == "exception":
            raise self._exception(frame)
        if kind == "error":
            message = frame.header(":error-message") or frame.header(":error-code") or "unknown error"
            raise errors.ProviderError(f"bedrock stream error: {message}", provider=self._provider)
        if kind != "event":
            return []
        data = self._json(frame)
        event = frame.header(":event-type")
        if event == "contentBlockDelta":
            return self._delta(data)
        if event == "contentBlockStart":
            return self._block_start(data)
        if event == "messageStop":
            self._message_stop(data)
        elif event == "metadata":
            return self._metadata(data)
        return []  # messageStart, contentBlockStop and event types added later

    def close(self) -> None:
        if not self._stopped:
            raise errors.ProviderError("bedrock stream ended before messageStop", provider=self._provider)

    def _json(self, frame: Frame) -> dict[str, Any]:
        try:
            data = loads(frame.payload) if frame.payload else {}
        except JSONDecodeError:
            raise errors.ProviderError(
                f"bedrock stream sent a non-JSON {frame.header(':event-type') or 'event'}", provider=self._provider
            ) from None
        return data if isinstance(data, dict) else {}

    def _exception(self, frame: Frame) -> errors.LLMError:
        kind = frame.header(":exception-type") or "unknownException"
        try:
            body: Any = loads(frame.payload)
        except JSONDecodeError:
            body = frame.payload[:2000].decode("utf-8", "replace")
        message = codec.error_message(body, None)
        cls = codec.error_class(kind, message, None)
        status = cls.default_status or 502
        return build_error(cls, f"{kind}: {message}", provider=self._provider, status=status, headers={}, body=body)

    def _block_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        tool = (data.get("start") or {}).get("toolUse")
        if not isinstance(tool, dict):
            return []
        index = int(data.get("contentBlockIndex") or 0)
        if tool.get("name") == self._structured_tool:
            self._tools[index] = None
            return []
        ordinal = self._tools[index] = self._tool_count()
        return [ToolCallDelta(ordinal, id=tool.get("toolUseId"), name=tool.get("name"))]

    def _delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta") or {}
        text = delta.get("text")
        if isinstance(text, str):
            return [TextDelta(text)] if text else []
        tool = delta.get("toolUse")
        if isinstance(tool, dict):
            return self._tool_input(int(data.get("contentBlockIndex") or 0), tool.get("input") or "")
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            return self._reasoning(reasoning)
        return []  # citations and future delta types

    def _tool_input(self, index: int, fragment: str) -> list[StreamEvent]:
        if index not in self._tools:  # a delta without its start: still a call
            self._tools[index] = self._tool_count()
        ordinal = self._tools[index]
        if not fragment:
            return []
        if ordinal is None:
            return [TextDelta(fragment)]  # the structured answer is the text
        return [ToolCallDelta(ordinal, arguments=fragment)]

    def _reasoning(self, reasoning: dict[str, Any]) -> list[StreamEvent]:
        if reasoning.get("text"):
            return [ReasoningDelta(reasoning["text"])]
        if reasoning.get("signature"):
            return [ReasoningDelta(signature=reasoning["signature"])]
        if reasoning.get("redactedContent"):
            self._asm.extra.setdefault("redacted_thinking", []).append(reasoning["redactedContent"])
        return []

    def _message_stop(self, data: dict[str, Any]) -> None:
        self._stopped = True
        stop_reason = data.get("stopReason")
        self._asm.native_finish_reason = stop_reason
        self._asm.finish_reason = codec.finish_reason(stop_reason, tool_calls=self._tool_count() > 0)
        if isinstance(data.get("additionalModelResponseFields"), dict):
            self._asm.extra["additional_model_response_fields"] = data["additionalModelResponseFields"]

    def _metadata(self, data: dict[str, Any]) -> list[StreamEvent]:
        if isinstance(data.get("metrics"), dict):
            self._asm.extra["metrics"] = data["metrics"]
        usage = data.get("usage")
        return [UsageEvent(codec.usage_from_wire(usage))] if isinstance(usage, dict) else []

    def _tool_count(self) -> int:
        return sum(1 for ordinal in self._tools.values() if ordinal is not None)
