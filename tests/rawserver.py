"""A raw HTTP/1.1 server on 127.0.0.1 for the transport's tests (``test_http1*.py``):
its handlers read requests and write crafted bytes, so a test controls the exact wire:
how an answer is framed, split, delayed, cut or garbled, and what the server saw. Also
the client-side helpers those tests share. Every wait is bounded (``LIMIT``)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from llmrelay._http import HTTPResponse, Timeouts
from llmrelay._http1 import Http1Transport

LIMIT = 3.0
"""Seconds: the longest any wait in this file may take."""
SECRET = "SECRET123"
QUERY = f"?key={SECRET}"
T = Timeouts(connect=LIMIT, read=LIMIT, total=LIMIT)


# -- the server side --------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the server read it off the wire."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    conn: int

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]


class Peer:
    """One accepted connection, as the server's handler sees it."""

    def __init__(
        self, server: RawServer, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.index = index
        self.reader = reader
        self.writer = writer
        self.eof = asyncio.Event()
        """Set when the server read the end of the client's side of the connection."""

    async def request(self) -> Seen | None:
        """The next request on this connection, or ``None`` when the client closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eof.set()
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [(key, value.strip()) for key, _, value in (line.partition(":") for line in lines[1:])]
        length = next((int(value) for key, value in headers if key.lower() == "content-length"), 0)
        body = await self.reader.readexactly(length) if length else b""
        seen = Seen(method, target, version, headers, body, self.index)
        self.server.requests.append(seen)
        return seen

    async def send(self, *parts: bytes, gap: float = 0.0) -> None:
        """Write each part on its own (``gap`` seconds between them)."""
        for i, part in enumerate(parts):
            if i and gap:
                await asyncio.sleep(gap)
            self.writer.write(part)
            await self.writer.drain()

    async def until_eof(self) -> None:
        """Say nothing more; return when the client closes its side."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.eof.set()

    def close(self) -> None:
        self.writer.close()


Handler = Callable[[Peer], Awaitable[None]]


class RawServer:
    """``asyncio.start_server`` (127.0.0.1, port 0 by default) running ``handler`` per connection,
    counting connections (accepted, open at once) and requests."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.handler = handler
        self.tls = tls
        self.port = port
        self.peers: list[Peer] = []
        self.requests: list[Seen] = []
        self.open_now = 0
        self.max_open = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def connections(self) -> int:
        return len(self.peers)

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/v1/chat" + QUERY) -> str:
        return f"{'https' if self.tls else 'http'}://{self.hostport}{path}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=LIMIT)
        for peer in self.peers:
            peer.writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(self, len(self.peers), reader, writer)
        self.peers.append(peer)
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            await self.handler(peer)
        except (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the test is over, or the client went away: nothing to report from here
        finally:
            self.open_now -= 1
            writer.close()
            self._tasks.discard(task)


def answering(*wires: bytes) -> Handler:
    """Each request (counted over all connections) gets the next of ``wires``; the last
    repeats. Connections stay open until the client closes them."""

    async def handle(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(wires[min(len(peer.server.requests), len(wires)) - 1])

    return handle


def echoing(hold: float = 0.0) -> Handler:
    """Answers each request with its target as the body, ``hold`` seconds after reading it."""

    async def handle(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            if hold:
                await asyncio.sleep(hold)
            await peer.send(answer(seen.target.encode()))

    return handle


def answer(
    body: bytes = b'{"ok":true}',
    *,
    status: str = "200 OK",
    headers: Sequence[tuple[str, str]] = (("Content-Type", "application/json"),),
) -> bytes:
    """A whole answer sized by content-length."""
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"{head}content-length: {len(body)}\r\n\r\n".encode("latin-1") + body


def chunked_head(*headers: tuple[str, str]) -> bytes:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"HTTP/1.1 200 OK\r\n{lines}transfer-encoding: chunked\r\n\r\n".encode("latin-1")


def chunk(data: bytes, *, upper: bool = False, extension: str = "") -> bytes:
    size = f"{len(data):X}" if upper else f"{len(data):x}"
    return f"{size}{extension}\r\n".encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


def chunked(pieces: Iterable[bytes]) -> bytes:
    return b"".join(chunk(p) for p in pieces if p) + LAST_CHUNK


OK = answer()


# -- the client side --------------------------------------------------------------------------


@asynccontextmanager
async def relay(*, max_connections: int = 512, tls: ssl.SSLContext | None = None) -> AsyncIterator[Http1Transport]:
    transport = Http1Transport(max_connections=max_connections, tls=tls)
    try:
        yield transport
    finally:
        await transport.aclose()


async def send(
    transport: Http1Transport,
    url: str,
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = b"{}",
    timeouts: Timeouts = T,
) -> HTTPResponse:
    call = transport.send(method, url, headers=headers or {}, body=body, timeouts=timeouts)
    return await asyncio.wait_for(call, LIMIT)


async def streamed(transport: Http1Transport, url: str, *, timeouts: Timeouts = T) -> tuple[int, list[bytes]]:
    """The status and the pieces of a streamed answer, read whole."""

    async def run() -> tuple[int, list[bytes]]:
        async with transport.stream("POST", url, headers={}, body=b"{}", timeouts=timeouts) as answer:
            return answer.status, [piece async for piece in answer.iter_bytes()]

    return await asyncio.wait_for(run(), LIMIT)


async def until(predicate: Callable[[], bool], timeout: float = LIMIT) -> None:
    """Wait (polling) until ``predicate()`` holds; fail after ``timeout`` seconds."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


def assert_names_only_the_host(exc: BaseException, server: RawServer) -> None:
    text = str(exc)
    assert server.hostport in text, text
    assert SECRET not in text and "/v1/" not in text and "key=" not in text, text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def no_proxy_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transport here goes direct unless a test sets a proxy itself."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
