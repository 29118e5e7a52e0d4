"""The one HTTP flow every wire format shares.

A wire-format package supplies pure codec functions (canonical request -> wire
JSON, wire JSON -> canonical response, stream events -> canonical events, HTTP
status + body -> error). ``HTTPProvider`` runs them over the injected
transport, so the flow (send, decode, cost, structured parsing, logging,
mid-stream failure handling) is written once.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from .. import errors
from .._assemble import StreamAssembler
from .._http import StreamResponse
from .._json import dumps, loads
from .._secret import redact
from .._sse import SSEDecoder
from ..cost import embedding_cost
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
    ModelInfo,
    StreamEvent,
    Usage,
)
from .base import Provider, StreamDecoder, WireRequest, finish_response
from .wire_errors import decode_body, describe_body, error_body

log = logging.getLogger("llmrelay.provider")
T = TypeVar("T")


class HTTPProvider(Provider):
    """The shared request flow; subclasses implement the codec hooks."""

    # ---- codec hooks ---------------------------------------------------------------

    @abstractmethod
    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest: ...

    @abstractmethod
    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse: ...

    @abstractmethod
    def stream_decoder(self, request: ChatRequest, assembler: StreamAssembler) -> StreamDecoder: ...

    @abstractmethod
    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.LLMError: ...

    def embed_request(self, request: EmbeddingRequest) -> WireRequest:
        raise errors.InvalidRequest(f"provider kind {self.kind!r} has no embeddings API", provider=self.name)

    def parse_embed(self, data: Any, request: EmbeddingRequest) -> EmbeddingResponse:
        raise NotImplementedError

    def models_request(self) -> WireRequest:
        raise errors.InvalidRequest(f"provider kind {self.kind!r} cannot list models", provider=self.name)

    def parse_models(self, data: Any) -> list[ModelInfo]:
        raise NotImplementedError

    def check_request(self, request: ChatRequest) -> None:
        """Provider-specific validation before anything is sent (override)."""

    def billed_usage(self, response: ChatResponse) -> Usage | None:
        """The counts the provider bills, when they differ from ``response.usage`` (override)."""
        return None

    async def stream_frames(self, resp: StreamResponse) -> AsyncIterator[list[Any]]:
        """The stream body cut into frames for the decoder, a batch per network read.
        SSE by default; binary framings (Bedrock's event stream) override this."""
        sse = SSEDecoder()
        async for chunk in resp.iter_bytes():
            frames = sse.feed(chunk)
            if frames:
                yield frames
        yield sse.flush()

    # ---- the flow ------------------------------------------------------------------

    def scrub(self, exc: errors.LLMError) -> errors.LLMError:
        """Mask this provider's key wherever a server echoed it (message or body)."""
        key = self.config.api_key.get() if self.config.api_key else ""
        if len(key) < 4:
            return exc
        if key in exc.message:
            exc.message = redact(exc.message, key)
            exc.args = (exc.message,)
        body = exc.body
        if isinstance(body, str | bytes) and key in (
            body if isinstance(body, str) else body.decode("utf-8", "replace")
        ):
            exc.body = redact(body if isinstance(body, str) else body.decode("utf-8", "replace"), key)
        elif isinstance(body, dict | list):
            text = dumps(body).decode()
            if key in text:
                exc.body = loads(redact(text, key))
        return exc

    def malformed(self, exc: Exception, what: str, body: Any = None) -> errors.ProviderError:
        """A provider answer whose shape broke the codec (a field of the wrong type...)."""
        log.debug("malformed %s from %s", what, self.name, exc_info=exc)
        return errors.ProviderError(
            f"malformed {what}: {type(exc).__name__}: {str(exc)[:200]}", provider=self.name, body=body
        )

    def prepare(self, build: Callable[[], WireRequest]) -> tuple[WireRequest, bytes | None]:
        """The wire request ``build`` makes and its encoded body, before anything is
        sent. A request that cannot be built or encoded (a value of a type JSON has
        no form for, nesting deeper than the encoder takes) is the caller's
        ``InvalidRequest``, never a provider failure that would count against it."""
        try:
            wire = build()
            if wire.body is not None or wire.payload is None:
                return wire, wire.body
            return wire, encode_json(wire.payload)
        except errors.LLMError as exc:
            _with_provider(exc, self.name)
            raise
        except _UNENCODABLE as exc:
            raise errors.InvalidRequest(
                f"the request cannot be encoded: {type(exc).__name__}: {str(exc)[:200]}", provider=self.name
            ) from None

    async def _exchange(self, wire: WireRequest, body: bytes | None) -> Any:
        resp = await self.transport.send(
            wire.method, wire.url, headers=wire.headers, body=body, timeouts=self.config.timeouts
        )
        if resp.status >= 400:
            raise self.map_error(resp.status, resp.headers, resp.body)
        return decode_body(resp.body, resp.status, resp.headers, self.name)

    async def _call(self, build: Callable[[], WireRequest], parse: Callable[[Any], T], what: str) -> T:
        """Build, send, decode and parse; every failure is an ``LLMError`` with the key masked."""
        try:
            wire, body = self.prepare(build)
            data = await self._exchange(wire, body)
            try:
                return parse(data)
            except _MALFORMED as exc:
                raise self.malformed(exc, what, data) from None
        except errors.LLMError as exc:
            raise self.scrub(_with_provider(exc, self.name)) from None

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.check_request(request)
        start = time.perf_counter()
        try:
            response = await self._call(
                lambda: self.chat_request(request, False),
                lambda data: _checked(self.parse_chat(data, request)),
                "chat answer",
            )
        except errors.LLMError as exc:
            if log.isEnabledFor(logging.DEBUG):
                _log_call(self.name, request.model, "chat", start, type(exc).__name__)
            raise
        response.latency_s = time.perf_counter() - start
        finish_response(response, request, self.price_provider, self.billed_usage(response))
        if log.isEnabledFor(logging.DEBUG):
            _log_call(self.name, request.model, "chat", start, "ok", response)
        return response

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.check_request(request)
        start = time.perf_counter()
        wire, body = self.prepare(lambda: self.chat_request(request, True))
        assembler = StreamAssembler(self.name, request.model)
        decoder = self.stream_decoder(request, assembler)
        try:
            async with self.transport.stream(
                wire.method, wire.url, headers=wire.headers, body=body, timeouts=self.config.timeouts
            ) as resp:
                if resp.status >= 400:
                    raise self.map_error(resp.status, resp.headers, await resp.read())
                await self._check_stream_type(resp)
                async for frames in self.stream_frames(resp):
                    for frame in frames:
                        for event in decoder.feed(frame):
                            assembler.add(event)
                            yield event
            decoder.close()
            response = _checked(assembler.response())
        except (errors.LLMError, *_MALFORMED) as exc:
            failure = exc if isinstance(exc, errors.LLMError) else self.malformed(exc, "stream event")
            if log.isEnabledFor(logging.DEBUG):
                _log_call(self.name, request.model, "stream", start, type(failure).__name__)
            mapped = _mid_stream(self.scrub(_with_provider(failure, self.name)), assembler, request.model)
            if mapped is exc:
                raise mapped from None
            raise mapped from failure
        response.latency_s = time.perf_counter() - start
        finish_response(response, request, self.price_provider, self.billed_usage(response))
        if log.isEnabledFor(logging.DEBUG):
            _log_call(self.name, request.model, "stream", start, "ok", response)
        yield Finish(response.finish_reason, response)

    async def _check_stream_type(self, resp: StreamResponse) -> None:
        """A proxy's HTML page or a JSON answer where a stream was asked for is an
        error saying what came, not a stream that looks cut."""
        ctype = resp.headers.get("content-type", "")
        if not ctype.startswith(("application/json", "text/html")):
            return
        body = await resp.read()
        data = error_body(body)
        if isinstance(data, dict) and data.get("error"):
            raise self.map_error(502, resp.headers, body)
        what = "a JSON answer (the server ignored stream: true)" if isinstance(data, dict) else None
        raise errors.ProviderError(
            f"expected an event stream, got {what or describe_body(body, resp.headers)}",
            provider=self.name,
            body=data if isinstance(data, dict) else None,
        )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        if not request.inputs:
            raise errors.InvalidRequest("embed needs at least one input text", provider=self.name)
        start = time.perf_counter()
        response = await self._call(
            lambda: self.embed_request(request), lambda data: self.parse_embed(data, request), "embeddings answer"
        )
        response.latency_s = time.perf_counter() - start
        if len(response.vectors) != len(request.inputs):
            raise errors.ProviderError(
                f"asked for {len(request.inputs)} embeddings, got {len(response.vectors)}", provider=self.name
            )
        response.cost_usd = embedding_cost(self.price_provider, request.model, response.usage)
        return response

    async def models(self) -> list[ModelInfo]:
        return await self._call(self.models_request, self.parse_models, "models list")


def _checked(response: ChatResponse) -> ChatResponse:
    """Reject token counts that are not counts (a provider sending ``"5"`` or ``null``)."""
    usage = response.usage
    for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens"):
        value = getattr(usage, name)
        if type(value) is not int or value < 0:
            raise TypeError(f"usage.{name} is {value!r}, not a token count")
    if not isinstance(response.content, str):
        raise TypeError(f"content is {type(response.content).__name__}, not text")
    return response


_MALFORMED = (KeyError, IndexError, TypeError, AttributeError, ValueError)
"""What a codec raises on a body of the wrong shape (turned into ``ProviderError``)."""

_UNENCODABLE = (TypeError, ValueError, RecursionError)
"""What building or encoding a request raises on values JSON cannot hold (orjson's
``JSONEncodeError`` is a ``TypeError``); turned into ``InvalidRequest``."""


def encode_json(payload: Any) -> bytes:
    """A request body as JSON bytes, or ``InvalidRequest`` naming why it cannot be
    (e.g. "Recursion limit reached": orjson stops at 254 levels of nesting)."""
    try:
        return dumps(payload)
    except _UNENCODABLE as exc:
        raise errors.InvalidRequest(f"the request cannot be encoded as JSON: {str(exc)[:200]}") from None


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def _with_provider(exc: errors.LLMError, provider: str) -> errors.LLMError:
    if exc.provider is None:
        exc.provider = provider
    return exc


def _mid_stream(exc: errors.LLMError, assembler: StreamAssembler, model: str) -> errors.LLMError:
    """An error after text was given becomes ``StreamInterrupted`` carrying the
    partial answer (never retried: a retry would repeat text); before that, the
    error stays as it is, so a router may retry it invisibly."""
    if not assembler.started:
        return exc
    try:
        partial: ChatResponse | None = assembler.response("error")
    except _MALFORMED:  # the pieces themselves were malformed: no partial answer to give
        partial = None
    if isinstance(exc, errors.StreamInterrupted):
        exc.partial = exc.partial or partial
        exc.transient = exc.transient or exc.retryable
        exc.retryable = False
        return exc
    return errors.StreamInterrupted(
        f"stream broke after it began: {exc.message}",
        provider=exc.provider,
        model=model,
        partial=partial,
        body=exc.body,
        transient=exc.retryable,
    )


def _log_call(
    provider: str, model: str, op: str, start: float, outcome: str, response: ChatResponse | None = None
) -> None:
    usage = response.usage if response is not None else None
    log.debug(
        "%s provider=%s model=%s latency_ms=%.1f prompt_tokens=%s completion_tokens=%s outcome=%s",
        op,
        provider,
        model,
        (time.perf_counter() - start) * 1000,
        usage.prompt_tokens if usage else "-",
        usage.completion_tokens if usage else "-",
        outcome,
    )


__all__ = ["HTTPProvider", "encode_json", "join_url"]
