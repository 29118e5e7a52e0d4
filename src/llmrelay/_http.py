"""What providers send requests through: the ``Transport`` protocol, and
``AiohttpTransport``, one pooled keep-alive aiohttp session per event loop, which
serves requests through a proxy (the default transport, ``_http1.Http1Transport``,
hands those to it).

Providers receive a ``Transport`` and never import an HTTP client themselves, so
tests can inject another one (see ``llmrelay.testing.MockTransport``). aiohttp is
imported on first use, not at ``import llmrelay``.
"""

from __future__ import annotations

import asyncio
import urllib.request
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from . import errors

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``total`` bounds a whole exchange; ``read`` bounds each wait
    for bytes of a stream (its head, then the idle gap between chunks;
    ``stream_idle`` overrides it); a non-streamed answer is bounded by ``total``
    alone, since a model may think for minutes before its first byte. ``None``
    disables one."""

    connect: float | None = 10.0
    read: float | None = 120.0
    total: float | None = 600.0
    stream_idle: float | None = None


@dataclass(slots=True)
class HTTPResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class StreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    def iter_bytes(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...


class Transport(Protocol):
    """What every provider sends its requests through: ``send`` for a whole answer,
    ``stream`` for one read as it arrives. ``Http1Transport`` (pooled, keep-alive)
    by default; pass another as ``Client(transport=...)``, e.g.
    ``llmrelay.testing.MockTransport`` in tests."""

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> HTTPResponse: ...

    def stream(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamResponse]: ...

    async def aclose(self) -> None: ...


def host_of(url: str) -> str:
    """The host:port of a URL, for messages (never the query, which may hold a key)."""
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or url.split("?", 1)[0]


def transport_error(exc: BaseException, url: str, provider: str | None) -> errors.LLMError:
    """Turn a network-level exception into the matching ``LLMError``."""
    import aiohttp

    host = host_of(url)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return errors.Timeout(f"no answer from {host} in time", provider=provider)
    if isinstance(exc, aiohttp.InvalidURL):
        return errors.InvalidRequest(f"invalid URL for provider: {host}", provider=provider)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return errors.ConnectionError(f"connection to {host} broke before the answer was complete", provider=provider)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return errors.ConnectionError(f"{host} closed the connection", provider=provider)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return errors.ConnectionError(
            f"cannot connect to {host}: {exc.os_error.strerror or exc.os_error}", provider=provider
        )
    return errors.ConnectionError(f"HTTP error talking to {host}: {type(exc).__name__}", provider=provider)


class _AiohttpStream:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status: int = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self._resp.content.iter_any():
            yield chunk

    async def read(self) -> bytes:
        return await self._resp.read()


_TIMEOUTS: dict[tuple[float | None, float | None, float | None], Any] = {}


class AiohttpTransport:
    """The default transport. Sessions are per event loop, created lazily and
    reused for every request (keep-alive), closed by ``aclose``."""

    def __init__(self, *, max_connections: int = 512, max_per_host: int = 0) -> None:
        self._max_connections = max_connections
        self._max_per_host = max_per_host
        # Proxies from the environment, read once: aiohttp's trust_env looks them up in a
        # worker thread on every request, which costs more than the request itself here.
        self._proxies = {k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https")}
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )
        # the session of the loop asked last: found without a WeakKeyDictionary lookup (which
        # costs more than it seems, per request); the loop only weakly held, as in _sessions
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], aiohttp.ClientSession] | None = None

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop and not last[1].closed:
            return last[1]
        session = self._sessions.get(loop)
        if session is None or session.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=self._max_per_host, ttl_dns_cache=300
            )
            session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
            self._sessions[loop] = session
        self._last = (weakref.ref(loop), session)
        return session

    def _proxy(self, url: str) -> str | None:
        if not self._proxies:
            return None
        parts = urlsplit(url)
        if urllib.request.proxy_bypass(parts.hostname or ""):
            return None
        return self._proxies.get(parts.scheme)

    @staticmethod
    def _timeout(timeouts: Timeouts, streaming: bool) -> Any:
        # A non-streamed answer may take long to start (reasoning models think before the first
        # byte): only ``total`` bounds it. A stream's gaps are bounded by the idle (read) timeout.
        read = None
        if streaming:
            read = timeouts.stream_idle if timeouts.stream_idle is not None else timeouts.read
        key = (timeouts.total, timeouts.connect, read)
        found = _TIMEOUTS.get(key)
        if found is None:  # made once per distinct value: building one costs more than it seems
            import aiohttp

            found = _TIMEOUTS[key] = aiohttp.ClientTimeout(total=key[0], sock_connect=key[1], sock_read=key[2])
        return found

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> HTTPResponse:
        session = self._session()
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=self._timeout(timeouts, False), proxy=self._proxy(url)
            ) as resp:
                data = await resp.read()
                return HTTPResponse(resp.status, resp.headers, data)
        except errors.LLMError:
            raise
        except (TimeoutError, OSError, _client_error()) as exc:
            raise transport_error(exc, url, None) from None

    @asynccontextmanager
    async def _stream(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> AsyncIterator[StreamResponse]:
        session = self._session()
        try:
            resp = await session.request(
                method, url, data=body, headers=headers, timeout=self._timeout(timeouts, True), proxy=self._proxy(url)
            )
        except (TimeoutError, OSError, _client_error()) as exc:
            raise transport_error(exc, url, None) from None
        try:
            yield _AiohttpStream(resp)
        except (TimeoutError, OSError, _client_error()) as exc:
            raise transport_error(exc, url, None) from None
        finally:
            resp.release()

    def stream(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamResponse]:
        return self._stream(method, url, headers, body, timeouts)

    async def aclose(self) -> None:
        sessions = list(self._sessions.items())
        self._sessions.clear()
        self._last = None
        current = asyncio.get_running_loop()
        for loop, session in sessions:
            if loop is current and not session.closed:
                await session.close()


def _client_error() -> type[Exception]:
    import aiohttp

    return aiohttp.ClientError
