"""OpenTelemetry spans with the GenAI semantic conventions (the ``otel`` extra).

Three kinds of span, each the child of the one before:

- the gateway's request (``SERVER``, ``POST /v1/chat/completions``), continuing the
  caller's ``traceparent``;
- a client call (``INTERNAL``, ``chat smart``): ``AsyncClient.send`` and ``send_stream``,
  which the gateway's routes and ``chat``, ``stream`` and ``embed`` all go through;
- each router attempt (``CLIENT``, ``chat gpt-4o-mini``): deployment, provider, the
  attempt's number and outcome; its W3C ``traceparent`` goes into the provider's HTTP
  request (``TracingTransport``).

Attributes follow the GenAI conventions (``gen_ai.operation.name``,
``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens``/``output_tokens``,
``error.type``), and ``llmrelay.*`` for what they have no name for (group, deployment,
attempt, outcome, cache, coalesced, cost). Prompts and answers
(``gen_ai.input.messages``, ``gen_ai.output.messages``) only with ``capture_content``.

Only the gateway's request and ``send`` (coroutines: one task from start to end) make
their span current in OpenTelemetry's context. A stream's span is not made current (its
generator may be closed by another task, where a context attached in it could not be
detached): the attempts inside find their call's span, and the transport the attempt's,
through context variables set and reset within each step.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncGenerator, Awaitable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import _json
from .._http import HTTPResponse, StreamResponse, Timeouts, Transport
from .._version import __version__
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
    Message,
    StreamEvent,
    TextPart,
)
from . import TelemetrySettings

T = TypeVar("T")

PROVIDER_NAMES = {
    "openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock", "mistral": "mistral_ai", "cohere": "cohere", "groq": "groq", "deepseek": "deepseek",
    "xai": "x_ai", "perplexity": "perplexity",
}  # fmt: skip
"""Provider kinds as ``gen_ai.provider.name`` names them (other kinds: their own name)."""

_CALL: contextvars.ContextVar[Span | None] = contextvars.ContextVar("llmrelay_call_span", default=None)
"""The span of the stream whose next event is being read: its attempts' parent."""
_ATTEMPT: contextvars.ContextVar[Span | None] = contextvars.ContextVar("llmrelay_attempt_span", default=None)
"""The attempt under way, whose ``traceparent`` the transport sends."""


def exporting_provider(settings: TelemetrySettings) -> TracerProvider:
    """A tracer provider sending spans over OTLP/HTTP in batches (from a thread of the SDK's)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    made = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    made.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint, headers=dict(settings.headers) or None))
    )
    return made


class Telemetry:
    """The spans of one ``AsyncClient`` (and of the gateway serving it)."""

    def __init__(self, tracer_provider: Any = None, *, capture_content: bool = False) -> None:
        """``tracer_provider``: where spans go; ``None``: OpenTelemetry's global one (set up by
        the application, or spans are dropped)."""
        self.tracer = trace.get_tracer("llmrelay", __version__, tracer_provider=tracer_provider)
        self.capture_content = capture_content
        self._made: TracerProvider | None = None
        """The provider ``from_settings`` made, which ``shutdown`` stops (never one given)."""

    @classmethod
    def from_settings(cls, settings: TelemetrySettings) -> Telemetry:
        """Spans to the application's own SDK tracer provider when it has set one up globally,
        else to one made here from ``settings`` (and shut down with the client)."""
        if isinstance(trace.get_tracer_provider(), TracerProvider):
            return cls(None, capture_content=settings.capture_content)
        provider = exporting_provider(settings)
        made = cls(provider, capture_content=settings.capture_content)
        made._made = provider
        return made

    def shutdown(self) -> None:
        """Send what is buffered, and stop a provider made here."""
        if self._made is not None:
            self._made.shutdown()

    # ---- the gateway's request --------------------------------------------------------------

    def request_span(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[Span, object]:
        """A server span for one request, continuing the caller's ``traceparent``, made current
        (``end_request`` with the token given back ends it)."""
        span = self.tracer.start_span(
            method, context=extract(headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )  # fmt: skip
        return span, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def end_request(span: Span, token: object, method: str, route: str, status: int, facts: Mapping[str, Any]) -> None:
        """End the request's span: named after its route template (``POST /v1/chat/completions``)."""
        otel_context.detach(token)  # type: ignore[arg-type]
        if span.is_recording():
            span.update_name(f"{method} {route}")
            found = {name: value for name, value in facts.items() if value is not None and value != ""}
            span.set_attributes({"http.route": route, "http.response.status_code": status, **found})
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        span.end()

    # ---- a client call ---------------------------------------------------------------------

    def _call_span(self, group: str, request: ChatRequest | EmbeddingRequest, *, stream: bool = False) -> Span:
        operation = "embeddings" if isinstance(request, EmbeddingRequest) else "chat"
        attributes: dict[str, Any] = {"gen_ai.operation.name": operation, "llmrelay.group": group}
        if stream:
            attributes["llmrelay.stream"] = True
        if isinstance(request, ChatRequest):
            attributes.update(_request_attributes(request))
            if self.capture_content:
                attributes["gen_ai.input.messages"] = _json.dumps_str([_message(m) for m in request.messages])
        return self.tracer.start_span(f"{operation} {group}", kind=SpanKind.INTERNAL, attributes=attributes)

    def _end_call(
        self, span: Span, result: ChatResponse | EmbeddingResponse | None, error: BaseException | None
    ) -> None:
        if span.is_recording():
            found: dict[str, Any] = {}
            if result is not None:  # the answer's details are on its attempt's span; here, the call's
                found["gen_ai.usage.input_tokens"] = result.usage.prompt_tokens
                if isinstance(result, ChatResponse):
                    found["gen_ai.usage.output_tokens"] = result.usage.completion_tokens
                if result.route is not None:
                    found["llmrelay.deployment"] = result.route.deployment
                    found["llmrelay.attempts"] = result.route.attempts
                cache = getattr(result, "cache", None)
                if cache is not None:
                    found["llmrelay.cache"], found["llmrelay.coalesced"] = cache.status, cache.coalesced
                if self.capture_content and isinstance(result, ChatResponse):
                    found["gen_ai.output.messages"] = _json.dumps_str([_message(result.message)])
            if error is not None:
                found.update(_failed(span, error))
            span.set_attributes(found)
        span.end()

    async def call(self, group: str, request: ChatRequest | EmbeddingRequest, answer: Awaitable[T]) -> T:
        """``answer`` (one ``send``) awaited inside its call span, the current span meanwhile."""
        span = self._call_span(group, request)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = await answer
        except BaseException as exc:
            otel_context.detach(token)
            self._end_call(span, None, exc)
            raise
        otel_context.detach(token)
        self._end_call(span, result, None)  # type: ignore[arg-type]
        return result

    async def stream(
        self, group: str, request: ChatRequest, events: AsyncGenerator[StreamEvent, None]
    ) -> AsyncGenerator[StreamEvent, None]:
        """``events`` inside a call span (a child of the span current now)."""
        span = self._call_span(group, request, stream=True)
        result: ChatResponse | None = None
        failure: BaseException | None = None
        try:
            while True:
                token = _CALL.set(span)
                try:
                    event = await events.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    _CALL.reset(token)
                if type(event) is Finish:
                    result = event.response
                yield event
        except BaseException as exc:
            failure = exc
            raise
        finally:
            await events.aclose()
            self._end_call(span, result, failure)

    # ---- router attempts ---------------------------------------------------------------------

    def attempt_start(self, attempt: Any) -> tuple[Span, contextvars.Token[Span | None]]:
        """A client span for one attempt, the child of its call's; the transport reads it."""
        dep, provider = attempt.pick.deployment, attempt.pick.provider
        operation = "embeddings" if attempt.call.op == "embed" else "chat"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDER_NAMES.get(provider.kind, provider.kind),
            "gen_ai.request.model": dep.model, "llmrelay.deployment": dep.id, "llmrelay.group": attempt.group.name,
            "llmrelay.attempt": attempt.number,
        }  # fmt: skip
        where = urlsplit(getattr(provider.config, "base_url", None) or "")
        if where.hostname:
            attributes["server.address"] = where.hostname
            if where.port:
                attributes["server.port"] = where.port
        parent = _CALL.get()
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            f"{operation} {dep.model}", context=context, kind=SpanKind.CLIENT, attributes=attributes
        )
        return span, _ATTEMPT.set(span)

    @staticmethod
    def attempt_end(started: tuple[Span, contextvars.Token[Span | None]], attempt: Any) -> None:
        span, token = started
        try:
            _ATTEMPT.reset(token)
        except ValueError:  # ended in another task than it began (a hedge's winner): nothing to undo here
            pass
        if span.is_recording():
            found: dict[str, Any] = {"llmrelay.outcome": attempt.outcome or "cancelled"}
            if attempt.ttft is not None:
                found["llmrelay.ttft_ms"] = round(attempt.ttft * 1000, 3)
            if attempt.result is not None:
                found.update(_response_attributes(attempt.result))
            if attempt.error is not None:
                found.update(_failed(span, attempt.error))
            span.set_attributes(found)
        span.end()


def _request_attributes(request: ChatRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in (
        ("gen_ai.request.max_tokens", request.max_tokens), ("gen_ai.request.temperature", request.temperature),
        ("gen_ai.request.top_p", request.top_p), ("gen_ai.request.seed", request.seed),
    ):  # fmt: skip
        if value is not None:
            out[name] = value
    if request.stop:
        out["gen_ai.request.stop_sequences"] = list(request.stop)
    return out


def _response_attributes(result: ChatResponse | EmbeddingResponse) -> dict[str, Any]:
    found: dict[str, Any] = {"gen_ai.usage.input_tokens": result.usage.prompt_tokens}
    if isinstance(result, ChatResponse):
        found["gen_ai.usage.output_tokens"] = result.usage.completion_tokens
        found["gen_ai.response.finish_reasons"] = [str(result.finish_reason)]
        if result.id:
            found["gen_ai.response.id"] = result.id
    if result.model:
        found["gen_ai.response.model"] = result.model
    if result.cost_usd is not None:
        found["llmrelay.cost_usd"] = result.cost_usd
    return found


def _failed(span: Span, error: BaseException) -> dict[str, Any]:
    """The span marked failed; the attributes that say how."""
    span.set_status(Status(StatusCode.ERROR, str(error)[:300]))
    return {"error.type": type(error).__name__}


def _message(message: Message) -> dict[str, Any]:
    """A message as the GenAI conventions write one: role and parts (text, tool calls)."""
    parts: list[dict[str, Any]] = [
        {"type": "text", "content": p.text} for p in message.parts if isinstance(p, TextPart)
    ]
    parts += [{"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls]
    return {"role": message.role, "parts": parts}


class TracingTransport:
    """A transport putting the attempt's ``traceparent`` (W3C) in each provider request."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    @staticmethod
    def _headers(headers: Mapping[str, str]) -> Mapping[str, str]:
        span = _ATTEMPT.get()
        if span is None:
            return headers
        carrier = dict(headers)
        inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> HTTPResponse:
        return await self.inner.send(method, url, headers=self._headers(headers), body=body, timeouts=timeouts)

    def stream(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamResponse]:
        return self.inner.stream(method, url, headers=self._headers(headers), body=body, timeouts=timeouts)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


__all__ = ["PROVIDER_NAMES", "Telemetry", "TracingTransport", "exporting_provider"]
