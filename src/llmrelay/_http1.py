"""The default transport: a lean HTTP/1.1 client on asyncio protocols.

Keep-alive connections are pooled per event loop and origin; answers are parsed by
httptools (llhttp, in C). Per call it costs a fraction of a general-purpose client
(measured in docs/performance.md: about 20 us of CPU against aiohttp's 110-140 us),
which is most of a gateway's own time per request. It speaks what providers need:
plain TCP or TLS (verified against the system's certificates or a given context), requests with a
body in one write, answers sized by ``content-length``, chunked or ending with the
connection, gzip and deflate bodies, reads paused while a stream's reader lags.
Requests to a host an environment proxy applies to go through ``AiohttpTransport``.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
import weakref
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from . import errors
from ._http import AiohttpTransport, HTTPResponse, StreamResponse, Timeouts, host_of
from ._http1_conn import Closed, Connection, Invalid, Unsupported, decoded_rest, decoder_for
from ._version import __version__

IDLE_S = 15.0
"""A pooled connection idle longer than this is closed rather than reused (servers and
load balancers drop idle connections, and a request sent on one as it closes is lost)."""
_SKIPPED = frozenset(("host", "content-length", "transfer-encoding", "connection"))
_USER_AGENT = f"llmrelay/{__version__}"


@dataclass(frozen=True, slots=True)
class _Target:
    """What a URL means here: the pool it goes to and the request line's target."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    path: str
    authority: str


_TARGETS: dict[str, _Target] = {}


def _target(url: str) -> _Target:
    found = _TARGETS.get(url)
    if found is not None:
        return found
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = parts.hostname
    if scheme not in ("http", "https") or not host or port == -1 or parts.username is not None:
        raise errors.InvalidRequest(f"invalid URL for provider: {host_of(url)}")
    tls = scheme == "https"
    port = port or (443 if tls else 80)
    default = port == (443 if tls else 80)
    name = f"[{host}]" if ":" in host else host
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not path.isascii():  # sent percent-encoded, as UTF-8 (what is already encoded stays)
        path = quote(path, safe="!#$%&'()*+,/:;=?@[]~")
    if any(c in path for c in " \r\n"):
        raise errors.InvalidRequest(f"invalid URL for provider: {host_of(url)}")
    target = _Target((scheme, host, port), host, port, tls, path, name if default else f"{name}:{port}")
    if len(_TARGETS) >= 4096:  # URLs carrying a changing query would grow it without end
        _TARGETS.clear()
    _TARGETS[url] = target
    return target


class _Origin:
    """The idle connections of one loop to one origin, most recently used last."""

    __slots__ = ("idle",)

    def __init__(self) -> None:
        self.idle: list[Connection] = []


class _LoopPools:
    """A loop's pools and its count of connections in use, capped."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self.busy = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.origins: dict[tuple[str, str, int], _Origin] = {}
        self.closed = False

    async def admit(self) -> None:
        if self.busy < self.limit and not self.waiters:
            self.busy += 1
            return
        waiter = self.loop.create_future()
        self.waiters.append(waiter)
        try:
            await waiter  # handed a place by leave(): busy already counts it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # given a place just as it was cancelled: pass it on
            else:
                self.waiters.remove(waiter)
            raise

    def close_idle(self) -> None:
        """No more connections go back to these pools; those idle in them close."""
        self.closed = True
        for origin in self.origins.values():
            for conn in origin.idle:
                conn.close()
            origin.idle.clear()

    def leave(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.busy -= 1


class _Stream:
    """A streamed answer: its head, then its body as it comes."""

    __slots__ = ("_conn", "_decoder", "_idle", "_url", "headers", "status")

    def __init__(self, conn: Connection, idle: float | None, url: str) -> None:
        self._conn = conn
        self._idle = idle
        self._url = url
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers
        self._decoder = decoder_for(conn.headers)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        conn, idle, decoder = self._conn, self._idle, self._decoder
        try:
            while True:
                piece = await conn.next_piece(idle)
                if not piece:
                    if decoder is not None and (rest := decoded_rest(decoder)):
                        yield rest
                    return
                if decoder is not None:
                    piece = decoder.decompress(piece)
                    if not piece:
                        continue
                yield piece
        except (TimeoutError, Closed, Invalid, zlib.error) as exc:
            raise _error(exc, self._url) from None

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.iter_bytes()])


class Http1Transport:
    """The default transport (see the module's docstring). ``max_connections`` caps the
    connections in use at once per event loop; more requests wait for one. ``tls``: the
    context HTTPS connections use (default: the system's certificates, verified), e.g. one
    that also trusts a private certificate authority."""

    def __init__(self, *, max_connections: int = 512, tls: ssl.SSLContext | None = None) -> None:
        self._limit = max_connections
        self._proxies = {k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https")}
        self._proxied: AiohttpTransport | None = None
        self._tls = tls
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPools] = weakref.WeakKeyDictionary()
        self._last: _LoopPools | None = None

    def _pools(self) -> _LoopPools:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last.loop is loop:
            return last
        pools = self._loops.get(loop)
        if pools is None:
            self._let_go_of_closed_loops()
            pools = self._loops[loop] = _LoopPools(loop, self._limit)
        self._last = pools
        return pools

    def _let_go_of_closed_loops(self) -> None:
        """Drop the pools of loops that are closed (each pool holds its loop, so the weak
        keys alone would not go); their sockets close as their transports are collected."""
        for gone in [loop for loop in self._loops if loop.is_closed()]:
            del self._loops[gone]

    def _via_proxy(self, url: str) -> AiohttpTransport | None:
        if not self._proxies:
            return None
        parts = urlsplit(url)
        if parts.scheme not in self._proxies or urllib.request.proxy_bypass(parts.hostname or ""):
            return None
        if self._proxied is None:
            self._proxied = AiohttpTransport(max_connections=self._limit)
        return self._proxied

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            context = ssl.create_default_context()
            context.set_alpn_protocols(["http/1.1"])
            self._tls = context
        return self._tls

    async def _connect(self, pools: _LoopPools, target: _Target, timeout: float | None) -> Connection:
        loop = pools.loop
        ssl_context = self._tls_context() if target.tls else None

        def made() -> Connection:
            return Connection(loop)

        async with asyncio.timeout(timeout):
            _, conn = await loop.create_connection(made, target.host, target.port, ssl=ssl_context)
        return conn

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
        streaming: bool = False,
        idle: float | None = None,
    ) -> tuple[_LoopPools, _Origin, Connection]:
        """A connection whose answer's head has come. ``idle``, for a stream: its read
        limit, which bounds the wait for the head too (``total`` bounds everything)."""
        target = _target(url)
        request = _request(method, target, headers, body)
        pools = self._pools()
        origin = pools.origins.get(target.key)
        if origin is None:
            origin = pools.origins[target.key] = _Origin()
        await pools.admit()
        try:
            for retry in (True, False):
                conn = _idle_connection(origin, pools.loop)
                if conn is None:
                    conn = await self._connect(pools, target, timeouts.connect)
                conn.start(request, timeouts.total, streaming, method == "HEAD")
                try:
                    await conn.answer_head(idle)
                except BaseException as exc:
                    conn.end()
                    conn.close()
                    if retry and conn.reused and isinstance(exc, Closed) and exc.before_answer:
                        continue  # the server closed it as the request went out: once more, on a new one
                    raise
                return pools, origin, conn
            raise AssertionError("unreachable")
        except BaseException as exc:
            pools.leave()
            raise _error(exc, url) from None

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> HTTPResponse:
        proxied = self._via_proxy(url)
        if proxied is not None:
            return await proxied.send(method, url, headers=headers, body=body, timeouts=timeouts)
        pools, origin, conn = await self._exchange(method, url, headers, body, timeouts)
        reusable = False
        try:
            data = await conn.whole_body()
            decoder = decoder_for(conn.headers)
            if decoder is not None:
                data = decoder.decompress(data) + decoded_rest(decoder)
            reusable = True
            return HTTPResponse(conn.status, conn.headers, data)
        except BaseException as exc:
            raise _error(exc, url) from None
        finally:
            _release(pools, origin, conn, reusable)

    def stream(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamResponse]:
        proxied = self._via_proxy(url)
        if proxied is not None:
            return proxied.stream(method, url, headers=headers, body=body, timeouts=timeouts)
        return _StreamContext(self, method, url, headers, body, timeouts)

    async def aclose(self) -> None:
        """Close this loop's idle connections (connections in use close as their exchange ends)."""
        pools = self._loops.pop(asyncio.get_running_loop(), None)
        self._let_go_of_closed_loops()
        self._last = None
        if pools is not None:
            pools.close_idle()
        if self._proxied is not None:
            await self._proxied.aclose()


class _StreamContext:
    """``async with transport.stream(...) as answer``: the connection goes back to its pool
    at the end when the answer was read whole, and is closed otherwise."""

    __slots__ = ("_args", "_held", "_owner")

    def __init__(
        self,
        owner: Http1Transport,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> None:
        self._owner = owner
        self._args = (method, url, headers, body, timeouts)
        self._held: tuple[_LoopPools, _Origin, Connection] | None = None

    async def __aenter__(self) -> StreamResponse:
        method, url, headers, body, timeouts = self._args
        idle = timeouts.stream_idle if timeouts.stream_idle is not None else timeouts.read
        self._held = pools, origin, conn = await self._owner._exchange(method, url, headers, body, timeouts, True, idle)
        try:
            return _Stream(conn, idle, url)
        except Unsupported as exc:
            _release(pools, origin, conn, False)
            self._held = None
            raise _error(exc, url) from None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        held, self._held = self._held, None
        if held is not None:
            _release(*held, exc is None)


def _idle_connection(origin: _Origin, loop: asyncio.AbstractEventLoop) -> Connection | None:
    idle = origin.idle
    while idle:
        conn = idle.pop()
        if not conn.closed and loop.time() - conn.idle_since < IDLE_S and not _closing(conn):
            conn.reused = True
            return conn
        conn.close()
    return None


def _closing(conn: Connection) -> bool:
    return conn.transport is None or conn.transport.is_closing()


def _release(pools: _LoopPools, origin: _Origin, conn: Connection, whole: bool) -> None:
    """The exchange on ``conn`` is over: its place is free; the connection goes back to the
    pool if its answer was read whole and both sides keep it alive, else it closes."""
    pools.leave()
    if conn.end() and whole and not pools.closed:
        conn.idle_since = pools.loop.time()
        origin.idle.append(conn)
    else:
        conn.close()


def _request(method: str, target: _Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The request's head (and body), refusing header names or values that would break
    out of their line."""
    lines = [f"{method} {target.path} HTTP/1.1\r\nhost: {target.authority}\r\n"]
    agent = False
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _SKIPPED:
            continue
        agent = agent or lowered == "user-agent"
        lines.append(f"{name}: {value}\r\n")
    if not agent:
        lines.append(f"user-agent: {_USER_AGENT}\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body) if body is not None else 0}\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    if head.count("\n") != len(lines) + 1 or head.count("\r") != len(lines) + 1:
        raise errors.InvalidRequest("a request header holds a line break; it cannot be sent")
    try:
        encoded = head.encode("latin-1")
    except UnicodeEncodeError:
        raise errors.InvalidRequest("a request header holds characters HTTP headers cannot carry") from None
    return encoded + body if body else encoded


def _error(exc: BaseException, url: str) -> BaseException:
    """What the caller sees for ``exc``: an ``LLMError`` naming the host (never the
    path or query, which may hold a key); cancellation and ``LLMError`` as they are."""
    if isinstance(exc, errors.LLMError | asyncio.CancelledError) or not isinstance(exc, Exception):
        return exc
    host = host_of(url)
    if isinstance(exc, TimeoutError):
        return errors.Timeout(f"no answer from {host} in time")
    if isinstance(exc, Closed):
        if exc.before_answer:
            return errors.ConnectionError(f"{host} closed the connection")
        return errors.ConnectionError(f"connection to {host} broke before the answer was complete")
    if isinstance(exc, Invalid):
        return errors.ConnectionError(f"{host} sent an answer that is not valid HTTP/1.1")
    if isinstance(exc, Unsupported):
        return errors.ConnectionError(f"{host} sent its answer in a content coding not supported here: {exc}")
    if isinstance(exc, zlib.error):
        return errors.ConnectionError(f"{host} sent a compressed answer that does not decompress")
    if isinstance(exc, ssl.SSLError):
        return errors.ConnectionError(f"TLS with {host} failed: {exc.reason or type(exc).__name__}")
    if isinstance(exc, OSError):
        return errors.ConnectionError(f"cannot connect to {host}: {exc.strerror or exc}")
    return errors.ConnectionError(f"HTTP error talking to {host}: {type(exc).__name__}")


_default: Http1Transport | None = None


def default_transport() -> Http1Transport:
    """The process-wide shared transport (its pools are per event loop)."""
    global _default
    if _default is None:
        _default = Http1Transport()
    return _default


__all__ = ["IDLE_S", "Http1Transport", "default_transport"]
