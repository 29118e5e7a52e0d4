"""Deadlines for the clients of a gateway process, at the HTTP protocol level.

uvicorn arms no timer on a new connection, and its keep-alive timer only runs
between requests: a client that never finishes its headers (slowloris: one
header byte a minute, on thousands of sockets) or its body (``content-length:
1000000``, then nothing) holds its connection forever, and ``limit_concurrency``
only answers 503 to new *requests*: the idle connections themselves stay.

``GuardedHttpToolsProtocol`` is uvicorn's httptools protocol with, per
connection, one deadline for what it is waiting on the client for
(``ServerLimits``):

- **headers**: from the connection's start, or from the first byte of a request
  on a kept-alive connection, until its headers are complete
  (``header_timeout_s``); late, the client gets a ``408`` and the connection
  closes;
- **body**: from the headers until the last byte of the body
  (``body_timeout_s``); late, while the app has not begun its answer (it waits
  for the body), the client gets a ``408`` and the connection closes, which ends
  the app's wait (its ``receive()`` says the client left); a connection whose
  request was answered before its body ended is closed, one whose answer is
  under way closes when that answer ends. The gateway's ``read_body`` relies on
  this rather than a timer of its own per request (``read_body(...,
  timeout_s=...)`` is there for other servers);
- **header size**: a request line and headers past ``max_header_bytes`` are
  answered ``431`` and the connection closes (the body has its own limit);
- **connections**: past ``max_connections`` open in the process, a new one is
  answered ``503`` (``retry-after: 1``) and closed at once.

The deadline is armed at the end of a chunk of data that leaves a request
incomplete, so a request that arrives whole in one chunk (nearly all of them)
costs no timer; it only counts while the client owes the bytes: a pipelined
request waiting behind an answer on the same connection waits on the server,
and its deadline starts again. Two holes of uvicorn's own keep-alive timer are
closed too: bytes that start no request (blank lines) and the end of a body
answered early both cancel it without arming it again.

uvicorn builds the protocol with the loaded app as ``self.app``: the limits are
that app's ``server_limits`` attribute, or that of the app it wraps (middleware
keep the inner app as ``.app``, as uvicorn's ``ProxyHeadersMiddleware`` does),
or the defaults. Use it with ``http=GuardedHttpToolsProtocol`` (or
``http="llmrelay.gateway.server:GuardedHttpToolsProtocol"``).

It also sends an answer's status line and headers in the same write as the first
bytes of its body (``HeadWithBody``): uvicorn writes them apart, one more system
call and one more TCP segment per answer for both ends of the connection."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .._json import dumps
from .errors import openai_error


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How long a client may take to send a request, and how many connections a worker holds."""

    header_timeout_s: float = 10.0
    """From the connection's start (or a request's first byte) until its headers are complete."""
    body_timeout_s: float = 60.0
    """From the headers until the whole body has arrived."""
    max_connections: int = 2048
    """Open connections per worker process; past it a new one is answered 503 and closed."""
    write_timeout_s: float = 30.0
    """How long a client may leave a stream's bytes untaken before it is taken for gone."""
    max_header_bytes: int = 64 * 1024
    """A request's line and headers together; past it a 431, and the connection closes."""

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "body_timeout_s", "write_timeout_s"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not 0 < value < math.inf:
                raise ValueError(f"ServerLimits.{name} must be a number of seconds > 0, not {value!r}")
        for name in ("max_connections", "max_header_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"ServerLimits.{name} must be a whole number > 0, not {value!r}")


DEFAULT_LIMITS = ServerLimits()
_MAX_WRAPPERS = 8


def limits_of(app: object) -> ServerLimits:
    """The ``server_limits`` of ``app``, or of the app it wraps (as ``.app``, a few levels
    deep at most), or the defaults when none has one."""
    for _ in range(_MAX_WRAPPERS):
        limits = getattr(app, "server_limits", None)
        if isinstance(limits, ServerLimits):
            return limits
        app = getattr(app, "app", None)
        if app is None:
            break
    return DEFAULT_LIMITS


def _answer(status: HTTPStatus, code: str, message: str, *headers: bytes) -> bytes:
    """A whole HTTP answer that closes the connection, its body in the OpenAI error format."""
    body = dumps(openai_error(status.value, message, code=code))
    return b"\r\n".join([
        b"HTTP/1.1 %d %s" % (status.value, status.phrase.encode()), b"content-type: application/json",
        b"content-length: %d" % len(body), *headers, b"connection: close", b"", body,
    ])  # fmt: skip


REQUEST_TIMEOUT = _answer(HTTPStatus.REQUEST_TIMEOUT, "request_timeout", "the request headers did not arrive in time")
HEADERS_TOO_LARGE = _answer(
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", "the request line and headers are too large"
)
BODY_TIMEOUT = _answer(HTTPStatus.REQUEST_TIMEOUT, "request_timeout", "the request body did not arrive in time")
TOO_MANY_CONNECTIONS = _answer(
    HTTPStatus.SERVICE_UNAVAILABLE,
    "too_many_connections",
    "the server holds too many connections right now; retry shortly",
    b"retry-after: 1",
)

_IDLE, _HEADERS, _BODY, _GONE = range(4)
"""What a connection waits on the client for: nothing (between requests), a request's
headers, its body; ``_GONE``: no longer this protocol's (closed, refused, upgraded)."""


class HeadWithBody:
    """A connection's transport as one answer's cycle sees it: its first write (the status
    line and headers) is held until the next one (the body, written in the same step of
    the event loop nearly always) and goes out with it; at the latest at the end of that
    step, so a stream's headers never wait for its first event."""

    __slots__ = ("_handle", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._handle: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            self._transport.write(held + data)
        elif self._handle is None and not self._transport.is_closing():
            self._held = data  # the first write: wait for the body
            self._handle = asyncio.get_running_loop().call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send what is held (the end of the loop's step, or the connection closing)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for headers and bodies and a cap on
    connections (see the module's docstring)."""

    _limits = DEFAULT_LIMITS
    _phase = _HEADERS
    _header_bytes = 0
    """Bytes received while the request line and headers are awaited (a chunk's whole size:
    a little over, never under)."""
    _deadline: asyncio.TimerHandle | None = None
    """The one timer of the connection: for its headers, or for its body (``_phase``)."""

    # ---- connection -----------------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._limits = limits_of(self.app)
        if len(self.connections) > self._limits.max_connections:
            self._phase = _GONE
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _GONE
        self._disarm()
        self._unset_keepalive_if_required()  # uvicorn leaves it armed when the connection broke
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._phase = _GONE  # the transport is the WebSocket protocol's from now on
        self._disarm()
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        try:
            super().data_received(data)
        finally:
            if self._phase == _HEADERS:  # still awaiting the end of the headers after this chunk
                self._header_bytes += len(data)
                if self._header_bytes > self._limits.max_header_bytes and not self.transport.is_closing():
                    self._refuse_headers()
            self._watch()

    def _refuse_headers(self) -> None:
        self._phase = _GONE
        self._disarm()
        if self._answered() and not self.pipeline:
            self.transport.write(HEADERS_TOO_LARGE)
        self.transport.close()

    # ---- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEADERS  # armed when this chunk ends, unless the connection's start still counts
        self._header_bytes = 0

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        self._phase = _IDLE if upgrading else _BODY
        if not upgrading:  # the cycle of this request, made just now, has not run yet
            self.cycle.transport = HeadWithBody(self.transport)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._disarm()
        self._phase = _IDLE
        super().on_message_complete()

    # ---- deadlines ----------------------------------------------------------------------------

    def _watch(self) -> None:
        """After a chunk of data: arm the deadline of what the connection now waits for."""
        phase = self._phase
        if self._deadline is not None or phase == _GONE or self.transport.is_closing():
            return
        if phase != _IDLE:
            self._arm()
        elif self.timeout_keep_alive_task is None and not self.pipeline and self._answered():
            # bytes that start no request, or the end of a body answered early: uvicorn
            # cancelled its keep-alive timer on them and will not arm it again
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def _arm(self) -> None:
        if self._phase == _HEADERS:
            self._deadline = self.loop.call_later(self._limits.header_timeout_s, self._headers_late)
        else:
            self._deadline = self.loop.call_later(self._limits.body_timeout_s, self._body_late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _answered(self) -> bool:
        """No request of this connection is being answered."""
        return self.cycle is None or self.cycle.response_complete

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.pipeline or not self._answered():
            self._arm()  # an earlier request is being answered: the server, not the client, is behind
            return
        self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    def _body_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.pipeline:
            self._arm()  # queued behind an earlier request, whose answer keeps the connection from reading
        elif self.cycle.response_complete:
            self.transport.close()  # answered, and the rest of its body never came
        elif not self.cycle.response_started:
            # the app waits for the body (or has not looked yet): answer for it, and the closed
            # connection ends its wait (its receive() says the client left)
            self.transport.write(BODY_TIMEOUT)
            self.transport.close()
        else:
            self.cycle.keep_alive = False  # an answer is under way: it ends the connection


__all__ = [
    "BODY_TIMEOUT", "DEFAULT_LIMITS", "HEADERS_TOO_LARGE", "GuardedHttpToolsProtocol", "HeadWithBody", "ServerLimits",
    "limits_of",
]  # fmt: skip
