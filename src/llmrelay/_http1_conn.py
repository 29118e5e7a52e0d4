"""One HTTP/1.1 client connection of ``_http1``: the asyncio protocol, with the
answer parsed by httptools (llhttp) as bytes arrive, and the decoding of a
compressed body. One exchange at a time; ``Http1Transport`` pools them."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping
from typing import cast

import httptools

BUFFER = 1 << 18
"""Bytes of a stream's answer held unread before the socket is no longer read."""


class Closed(Exception):
    """The connection ended before the answer did (``before_answer``: before any of it)."""

    def __init__(self, before_answer: bool) -> None:
        super().__init__()
        self.before_answer = before_answer


class Invalid(Exception):
    """The server's bytes are not HTTP/1.1."""


class Unsupported(Exception):
    """An answer in a content coding this client does not decode."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange on it at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.head = False
        self.complete = False
        self.keep_alive = False
        self.received = False
        self.failure: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_s = 0.0
        self.wait_since: float | None = None
        self.paused = False
        self.streaming = False
        self.bodiless = False
        self.informational = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not its subclasses

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(Invalid())
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close: a close-delimited answer ends here (connection_lost judges)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete or self.failure is not None:
            return
        if (
            exc is None  # a clean end, not a reset
            and self.head
            and "content-length" not in self.headers
            and "chunked" not in self.headers.get("transfer-encoding", "")
        ):
            self.on_message_complete()  # an answer delimited by the connection's end
            return
        self._fail(Closed(before_answer=not self.received))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: the answer comes after
            self.informational = True
            self.headers = {}
            return
        self.status = status
        self.head = True
        if self.bodiless:  # the answer to HEAD: its content-length tells of a body not sent
            self.complete = True
            self.keep_alive = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.streaming and self.buffered > BUFFER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        if self.streaming:  # a whole body is awaited only for its end
            self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # (only told in this callback)
        self._wake()

    # -- the exchange
    def start(self, request: bytes, total: float | None, streaming: bool, bodiless: bool) -> None:
        """Send ``request``; ``streaming``: its answer is read as it comes (reading pauses
        while the reader lags); ``bodiless``: a HEAD request, whose answer has no body."""
        self.streaming = streaming
        self.bodiless = bodiless
        self.status = 0
        self.headers = {}
        self.chunks = []
        self.buffered = 0
        self.head = self.complete = self.keep_alive = self.received = False
        self.failure = None
        if total is not None:
            self.timer = self.loop.call_later(total, self._expire)
        assert self.transport is not None
        self.transport.write(request)

    def _expire(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, idle: float | None = None) -> None:
        """Until the parser or the connection reports something (``idle`` seconds at most)."""
        if self.failure is not None:
            raise self.failure
        waiter = self.waiter = self.loop.create_future()
        if idle is not None:
            self.idle_s, self.wait_since = idle, self.loop.time()
            if self.idle_timer is None:  # one timer for the waits of an exchange, not one per wait
                self.idle_timer = self.loop.call_at(self.wait_since + idle, self._idle_check)
        try:
            await waiter
        finally:
            self.waiter = self.wait_since = None
        if self.failure is not None:
            raise self.failure

    def _idle_check(self) -> None:
        """The idle timer: expire the wait under way if it has lasted its limit, else wake
        again when it would have (no wait under way: the next wait arms a timer anew)."""
        self.idle_timer = None
        since = self.wait_since
        if since is None:
            return
        due = since + self.idle_s
        if self.loop.time() >= due:
            self._expire()
        else:
            self.idle_timer = self.loop.call_at(due, self._idle_check)

    async def answer_head(self, idle: float | None) -> None:
        while not self.head:
            await self._wait(idle)

    async def whole_body(self) -> bytes:
        while not self.complete:
            await self._wait()
        chunks = self.chunks
        self.chunks = []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def next_piece(self, idle: float | None) -> bytes:
        """The body's bytes that have come since the last call; b"" at its end."""
        while not self.chunks:
            if self.complete:
                return b""
            await self._wait(idle)
        chunks = self.chunks
        self.chunks = []
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def end(self) -> bool:
        """The exchange is over: may the connection carry another?"""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return self.complete and self.keep_alive and not self.closed and self.failure is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def decoder_for(headers: Mapping[str, str]) -> zlib._Decompress | None:
    """The decompressor a body in the answer's ``content-encoding`` needs (``None``: none);
    ``Unsupported`` for a coding other than gzip or deflate."""
    coding = headers.get("content-encoding")
    if coding is None:
        return None
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, told by the header
    raise Unsupported(coding)


def decoded_rest(decoder: zlib._Decompress) -> bytes:
    """What ``decoder`` still holds at the end of the body; ``zlib.error`` when the
    compressed body ended early (a cut body must not pass as whole)."""
    rest = decoder.flush()
    if not decoder.eof:
        raise zlib.error("the compressed body ends early")
    return rest


__all__ = ["BUFFER", "Closed", "Connection", "Invalid", "Unsupported", "decoded_rest", "decoder_for"]
