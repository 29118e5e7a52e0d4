"""Test doubles for code that uses llmrelay.

``FakeProvider`` is a scriptable provider for your unit tests: canned answers,
streams, tool calls, errors and latency, with every request recorded::

    from llmrelay import Client
    from llmrelay.testing import FakeProvider, Reply

    fake = FakeProvider("fake", [Reply("Hello!"), Reply(error=RateLimited("slow down"))])
    client = Client(providers=[fake])
    assert client.chat("fake/any-model", "Hi").content == "Hello!"
    assert fake.requests[0].messages[0].content == "Hi"

``MockTransport`` replaces the HTTP layer with a function, to test a real
provider's codec without sockets.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from . import errors
from ._assemble import StreamAssembler
from ._http import HTTPResponse, StreamResponse, Timeouts
from ._json import dumps_str
from .providers.base import Provider, ProviderConfig, finish_response
from .types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
    FinishReason,
    ModelInfo,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
)


@dataclass
class Reply:
    """One scripted answer. ``text`` is streamed in ``chunks`` (default: by word);
    ``error`` is raised instead (``error_after`` chunks into a stream, if set)."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    error: errors.LLMError | None = None
    error_after: int | None = None
    latency_s: float = 0.0
    chunks: list[str] | None = None

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return self.chunks
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if self.text else []


class FakeProvider(Provider):
    """Answers from a script. Replies are used in order; when the script runs
    out, the last one repeats (or, with no script, it echoes the last user message)."""

    kind = "fake"

    def __init__(self, name: str = "fake", replies: list[Reply | str] | None = None, *, dimensions: int = 8) -> None:
        super().__init__(ProviderConfig(name=name, kind="fake"), transport=_NoTransport())
        self.script: list[Reply] = [Reply(r) if isinstance(r, str) else r for r in replies or []]
        self.requests: list[ChatRequest] = []
        self.embed_requests: list[EmbeddingRequest] = []
        self.dimensions = dimensions

    def add(self, *replies: Reply | str) -> FakeProvider:
        self.script.extend(Reply(r) if isinstance(r, str) else r for r in replies)
        return self

    def _next(self, request: ChatRequest) -> Reply:
        if not self.script:
            last_user = next((m.text for m in reversed(request.messages) if m.role == "user"), "")
            return Reply(f"echo: {last_user}")
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _usage(self, reply: Reply, request: ChatRequest) -> Usage:
        if reply.usage is not None:
            return reply.usage
        prompt = sum(len(m.text.split()) for m in request.messages) + 3 * len(request.messages)
        return Usage(prompt_tokens=prompt, completion_tokens=len(reply.pieces()) + len(reply.tool_calls))

    def _response(self, reply: Reply, request: ChatRequest) -> ChatResponse:
        reason: FinishReason = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        response = ChatResponse(
            content=reply.text,
            finish_reason=reason,
            usage=self._usage(reply, request),
            model=request.model,
            provider=self.name,
            tool_calls=list(reply.tool_calls),
            id=f"fake-{len(self.requests)}",
            latency_s=reply.latency_s,
        )
        finish_response(response, request, "")
        return response

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        reply = self._next(request)
        if reply.latency_s:
            await asyncio.sleep(reply.latency_s)
        if reply.error is not None:
            raise reply.error
        return self._response(reply, request)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.requests.append(request)
        reply = self._next(request)
        if reply.latency_s:
            await asyncio.sleep(reply.latency_s)
        if reply.error is not None and reply.error_after is None:
            raise reply.error
        assembler = StreamAssembler(self.name, request.model)
        pieces = reply.pieces()
        if reply.error is not None:  # the stream breaks after ``error_after`` pieces (at the end at most)
            pieces = pieces[: reply.error_after]
        for piece in pieces:
            event = TextDelta(piece)
            assembler.add(event)
            yield event
            await asyncio.sleep(0)
        if reply.error is not None:
            raise errors.StreamInterrupted(
                f"stream broke after it began: {reply.error.message}",
                provider=self.name,
                partial=assembler.response("error"),
            ) from reply.error
        for index, call in enumerate(reply.tool_calls):
            delta = ToolCallDelta(index, call.id, call.name, call.raw_arguments or dumps_str(call.arguments))
            assembler.add(delta)
            yield delta
        usage = UsageEvent(self._usage(reply, request))
        assembler.add(usage)
        yield usage
        response = self._response(reply, request)
        yield Finish(response.finish_reason, response)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.embed_requests.append(request)
        vectors = [fake_vector(text, request.dimensions or self.dimensions) for text in request.inputs]
        usage = Usage(prompt_tokens=sum(len(t.split()) for t in request.inputs))
        return EmbeddingResponse(vectors=vectors, usage=usage, model=request.model, provider=self.name)

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(id="fake-model", provider=self.name)]

    def model_info(self, model: str) -> ModelInfo:
        return ModelInfo(id=model, provider=self.name)


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text, same vector)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [((digest[i % len(digest)] + i * 31) % 255) / 127.0 - 1.0 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


class _NoTransport:
    async def send(self, *a: Any, **k: Any) -> HTTPResponse:
        raise errors.ConnectionError("FakeProvider makes no HTTP calls")

    def stream(self, *a: Any, **k: Any) -> Any:
        raise errors.ConnectionError("FakeProvider makes no HTTP calls")

    async def aclose(self) -> None:
        return None


# ---------------------------------------------------------------- MockTransport


@dataclass
class MockRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None


class _MockStream:
    def __init__(self, response: HTTPResponse, chunk_size: int) -> None:
        self.status = response.status
        self.headers = response.headers
        self._body = response.body
        self._chunk = chunk_size

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self._body), self._chunk):
            yield self._body[i : i + self._chunk]

    async def read(self) -> bytes:
        return self._body


class MockTransport:
    """A transport that calls ``handler(request) -> HTTPResponse`` instead of the network.
    Streams are served from the response body in ``chunk_size`` pieces."""

    def __init__(
        self, handler: Callable[[MockRequest], HTTPResponse | Awaitable[HTTPResponse]], *, chunk_size: int = 64
    ) -> None:
        self.handler = handler
        self.chunk_size = chunk_size
        self.requests: list[MockRequest] = []

    async def _call(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> HTTPResponse:
        request = MockRequest(method, url, dict(headers), body)
        self.requests.append(request)
        result = self.handler(request)
        if isinstance(result, Awaitable):
            result = await result
        return result

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> HTTPResponse:
        return await self._call(method, url, headers, body)

    @asynccontextmanager
    async def _stream(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> AsyncIterator[StreamResponse]:
        yield _MockStream(await self._call(method, url, headers, body), self.chunk_size)

    def stream(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> Any:
        return self._stream(method, url, headers, body)

    async def aclose(self) -> None:
        return None


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(status, {"content-type": "application/json", **(headers or {})}, dumps_str(data).encode())


__all__ = ["FakeProvider", "MockRequest", "MockTransport", "Reply", "fake_vector", "json_response"]
