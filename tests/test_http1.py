"""Http1Transport, the default transport, over real sockets on 127.0.0.1.

Each test runs a small raw asyncio server (``RawServer``) whose handler reads the
requests and writes crafted bytes, so the test controls the exact wire: how the
answer is framed, split, delayed, cut or garbled, and what the server saw.
Every wait is bounded (``LIMIT``).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import re
import socket
import ssl
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay import _http1, _http1_conn, errors
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

    def __init__(
        self, handler: Handler, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.host = host
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
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str = "/v1/chat" + QUERY) -> str:
        return f"{'https' if self.tls else 'http'}://{self.hostport}{path}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, ssl=self.tls)
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
def _no_proxy_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transport here goes direct unless a test sets a proxy itself."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# -- 1. whole answers, the request on the wire, connection reuse ----------------------------------


async def test_json_answer_gives_status_body_and_lowercased_headers() -> None:
    wire = answer(
        b'{"id":"x1"}',
        status="201 Created",
        headers=[("Content-Type", "application/json"), ("X-Dup", "a"), ("x-dup", "b"), ("X-Request-ID", "r-9")],
    )
    async with RawServer(answering(wire)) as server, relay() as transport:
        resp = await send(transport, server.url())
    assert resp.status == 201
    assert resp.body == b'{"id":"x1"}'
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-request-id"] == "r-9"
    assert resp.headers["x-dup"] == "a, b"
    assert resp.headers["content-length"] == "11"
    assert all(key == key.lower() for key in resp.headers)


async def test_sequential_sends_reuse_one_connection() -> None:
    async with RawServer(echoing()) as server, relay() as transport:
        first = await send(transport, server.url("/one"))
        second = await send(transport, server.url("/two"))
        assert (first.body, second.body) == (b"/one", b"/two")
        assert server.connections == 1
        assert [seen.conn for seen in server.requests] == [0, 0]


async def test_request_head_and_body_as_the_server_sees_them() -> None:
    body = b'{"model":"m","messages":[]}' * 100
    async with RawServer(answering(OK)) as server, relay() as transport:
        url = server.url("/v1/chat/completions?key=SECRET123&x=a%20b#fragment")
        await send(transport, url, headers={"Authorization": "Bearer sk-1", "X-Custom": "v 1"}, body=body)
    (seen,) = server.requests
    assert (seen.method, seen.target, seen.version) == (
        "POST",
        "/v1/chat/completions?key=SECRET123&x=a%20b",
        "HTTP/1.1",
    )
    assert seen.values("host") == [f"127.0.0.1:{server.port}"]
    assert seen.values("content-length") == [str(len(body))]
    (agent,) = seen.values("user-agent")
    assert agent.startswith("llmrelay/")
    assert seen.values("authorization") == ["Bearer sk-1"]
    assert seen.values("x-custom") == ["v 1"]
    assert seen.body == body


async def test_a_path_outside_ascii_goes_percent_encoded_as_utf8() -> None:
    async with RawServer(answering(OK, OK)) as server, relay() as transport:
        await send(transport, server.url("/v1/models/caf\u00e9/\u6a21\u578b?q=%20x"))
        await send(transport, server.url("/v1/already%C3%A9"))
    assert [seen.target for seen in server.requests] == [
        "/v1/models/caf%C3%A9/%E6%A8%A1%E5%9E%8B?q=%20x",
        "/v1/already%C3%A9",
    ]


async def test_callers_user_agent_replaces_the_default() -> None:
    async with RawServer(answering(OK)) as server, relay() as transport:
        await send(transport, server.url(), headers={"User-Agent": "mine/1.0"})
    assert server.requests[0].values("user-agent") == ["mine/1.0"]


async def test_callers_host_content_length_and_connection_are_not_sent_twice() -> None:
    own = {"Host": "evil.example", "Content-Length": "999", "Connection": "close", "Transfer-Encoding": "chunked"}
    async with RawServer(answering(OK)) as server, relay() as transport:
        resp = await send(transport, server.url(), headers=own, body=b"12345")
    assert resp.status == 200
    (seen,) = server.requests
    assert seen.values("host") == [f"127.0.0.1:{server.port}"]
    assert seen.values("content-length") == ["5"]
    assert seen.values("transfer-encoding") == []
    assert len(seen.values("connection")) <= 1 and "close" not in seen.values("connection")
    assert seen.body == b"12345"


async def test_content_length_is_sent_with_a_body_or_for_post_and_not_for_a_bodiless_get() -> None:
    async with RawServer(answering(OK)) as server, relay() as transport:
        await send(transport, server.url("/a"), method="GET", body=None)
        await send(transport, server.url("/b"), method="POST", body=None)
        await send(transport, server.url("/c"), method="GET", body=b"")
    get, post, empty = server.requests
    assert (get.method, get.values("content-length")) == ("GET", [])
    assert (post.method, post.values("content-length")) == ("POST", ["0"])
    assert empty.values("content-length") == ["0"]


async def test_latin1_header_value_is_sent_as_latin1_bytes() -> None:
    async with RawServer(answering(OK)) as server, relay() as transport:
        await send(transport, server.url(), headers={"X-Name": "café"})
    assert server.requests[0].values("x-name") == ["café"]  # one byte 0xe9 on the wire, read back as latin-1


async def test_host_header_of_an_ipv6_origin_is_bracketed() -> None:
    try:
        server = RawServer(answering(OK), host="::1")
        await server.__aenter__()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        async with relay() as transport:
            resp = await send(transport, server.url("/v6"))
        assert resp.status == 200
        assert server.requests[0].values("host") == [f"[::1]:{server.port}"]
    finally:
        await server.__aexit__(None, None, None)


async def test_host_header_leaves_out_the_default_port() -> None:
    try:
        server = RawServer(answering(OK), port=80)
        await server.__aenter__()
    except OSError:
        pytest.skip("port 80 on 127.0.0.1 is taken or needs privileges here")
    try:
        async with relay() as transport:
            resp = await send(transport, "http://127.0.0.1/v1/chat" + QUERY)
        assert resp.status == 200
        assert server.requests[0].values("host") == ["127.0.0.1"]
    finally:
        await server.__aexit__(None, None, None)


# -- 2. framing: chunked, close-delimited, no body ----------------------------------------------


async def test_chunked_answer_to_send_is_joined() -> None:
    wire = (
        chunked_head(("Content-Type", "application/json"))
        + chunk(b'{"a":')
        + chunk(b'"hello ', upper=True, extension=";name=value")
        + chunk(b"x" * 300, upper=True)
        + chunk(b'"}')
        + b"0\r\nX-Trailer: t\r\n\r\n"
    )
    async with RawServer(answering(wire)) as server, relay() as transport:
        resp = await send(transport, server.url())
    assert resp.status == 200
    assert resp.body == b'{"a":"hello ' + b"x" * 300 + b'"}'
    assert resp.headers["content-type"] == "application/json"


async def test_answer_delimited_by_the_connections_end_is_read_whole() -> None:
    body = b"until the end " * 1000

    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n", body[:5000], body[5000:], gap=0.02)
        peer.close()

    async with RawServer(handle) as server, relay() as transport:
        resp = await send(transport, server.url())
        status, pieces = await streamed(transport, server.url())
        assert server.connections == 2  # a connection that ended its answer is not reused
    assert (resp.status, resp.body) == (200, body)
    assert (status, b"".join(pieces)) == (200, body)


async def test_answer_delimited_by_the_connections_end_but_reset_is_a_connection_error() -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n", b"the first half")
        sock = peer.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        peer.close()

    async with RawServer(handle) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError, match="before the answer was complete"):
            await send(transport, server.url())


async def test_no_content_answer_needs_no_body_and_no_close() -> None:
    # the server keeps the connection open: the client must know a 204 has no body
    async with RawServer(answering(b"HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n")) as server, relay() as transport:
        resp = await send(transport, server.url())
    assert (resp.status, resp.body, resp.headers["x-a"]) == (204, b"", "1")


@pytest.mark.parametrize(
    "wire",
    [answer(b"one", headers=[("Connection", "close")]), b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\none"],
    ids=["connection-close", "http-1.0"],
)
async def test_answer_that_does_not_keep_the_connection_alive_is_not_reused(wire: bytes) -> None:
    # the server leaves the socket open: the client must still not send on it again
    async with RawServer(answering(wire, answer(b"two"))) as server, relay() as transport:
        first = await send(transport, server.url())
        second = await send(transport, server.url())
    assert (first.body, second.body) == (b"one", b"two")
    assert [seen.conn for seen in server.requests] == [0, 1]


async def test_send_of_an_answer_larger_than_the_read_buffer_arrives_whole() -> None:
    body = b'{"data":[' + b"0.0123456789," * 80_000 + b"0]}"  # about 1 MiB, e.g. a batch of embeddings
    async with RawServer(answering(answer(body))) as server, relay() as transport:
        resp = await send(transport, server.url(), timeouts=Timeouts(total=0.5))
    assert resp.body == body


async def test_connection_reused_after_an_answer_larger_than_the_read_buffer_still_reads() -> None:
    body = b"x" * 300_000  # over BUFFER (256 KiB), in two reads of the socket
    async with RawServer(answering(answer(body))) as server, relay() as transport:
        first = await send(transport, server.url(), timeouts=Timeouts(total=0.5))
        second = await send(transport, server.url(), timeouts=Timeouts(total=0.5))
    assert first.body == second.body == body


# -- 3. streams --------------------------------------------------------------------------------


async def test_stream_pieces_arrive_in_order_as_they_are_written() -> None:
    pieces = [b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"]
    taken = [asyncio.Event() for _ in pieces]

    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        await peer.send(chunked_head(("content-type", "text/event-stream")))
        for piece, event in zip(pieces, taken, strict=True):
            await peer.send(chunk(piece))
            await event.wait()  # the next piece only once the client has yielded this one
        await peer.send(LAST_CHUNK)
        await peer.until_eof()

    got: list[bytes] = []
    async with RawServer(handle) as server, relay() as transport:

        async def run() -> None:
            async with transport.stream("POST", server.url(), headers={}, body=b"{}", timeouts=T) as answer:
                assert answer.status == 200
                assert answer.headers["content-type"] == "text/event-stream"
                async for piece in answer.iter_bytes():
                    got.append(piece)
                    taken[len(got) - 1].set()

        await asyncio.wait_for(run(), LIMIT)
    assert got == pieces


async def test_stream_left_early_closes_its_connection() -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        if peer.index == 0:
            await peer.send(chunked_head(), chunk(b"first"), chunk(b"second"))
            await peer.until_eof()  # never the last chunk
        else:
            await peer.send(OK)
            await peer.until_eof()

    async with RawServer(handle) as server, relay() as transport:

        async def leave_early() -> bytes:
            async with transport.stream("POST", server.url(), headers={}, body=b"{}", timeouts=T) as answer:
                async for piece in answer.iter_bytes():
                    return piece
            raise AssertionError("no piece")

        first = await asyncio.wait_for(leave_early(), LIMIT)
        assert first.startswith(b"first")
        await asyncio.wait_for(server.peers[0].eof.wait(), LIMIT)
        resp = await send(transport, server.url())
        assert resp.status == 200
        assert server.connections == 2


async def test_stream_read_whole_returns_its_connection_to_the_pool() -> None:
    wire = chunked_head() + chunked([b"a", b"b"])
    async with RawServer(answering(wire, OK)) as server, relay() as transport:
        status, pieces = await streamed(transport, server.url())
        assert (status, b"".join(pieces)) == (200, b"ab")
        resp = await send(transport, server.url())
        assert resp.body == b'{"ok":true}'
        assert server.connections == 1


async def test_stream_read_returns_the_rest() -> None:
    taken = asyncio.Event()

    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        await peer.send(chunked_head() + chunk(b"first;"))
        await taken.wait()
        await peer.send(chunk(b"second;"), chunk(b"third") + LAST_CHUNK, gap=0.03)
        await peer.until_eof()

    async with RawServer(handle) as server, relay() as transport:

        async def run() -> tuple[bytes, bytes]:
            async with transport.stream("POST", server.url(), headers={}, body=b"{}", timeouts=T) as answer:
                first = await anext(answer.iter_bytes())
                taken.set()
                return first, await answer.read()

        first, rest = await asyncio.wait_for(run(), LIMIT)
    assert first == b"first;"
    assert rest == b"second;third"


async def test_lagging_stream_reader_stops_reading_the_socket_and_still_gets_every_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_http1_conn, "BUFFER", 65536)
    blocks = [bytes([i % 251]) * 65536 for i in range(128)]  # 8 MiB

    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        peer.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        await peer.send(chunked_head() + chunked(blocks))
        await peer.until_eof()

    unsent = 0
    async with RawServer(handle) as server, relay() as transport:

        async def run() -> bytes:
            nonlocal unsent
            got = bytearray()
            async with transport.stream("POST", server.url(), headers={}, body=b"{}", timeouts=T) as answer:
                async for piece in answer.iter_bytes():
                    if not got:
                        await asyncio.sleep(0.2)  # nobody reads for a while
                        unsent = server.peers[0].writer.transport.get_write_buffer_size()
                    got += piece
            return bytes(got)

        data = await asyncio.wait_for(run(), LIMIT)
    assert data == b"".join(blocks)
    assert unsent > 2 << 20, unsent  # the client stopped reading: most of the answer still waited at the server


# -- 4. content codings --------------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate"])
async def test_compressed_answer_is_decoded_for_send(coding: str) -> None:
    body = b'{"text":"' + b"compressible " * 500 + b'"}'
    packed = zlib.compress(body) if coding == "deflate" else gzip.compress(body)
    wire = answer(packed, headers=[("Content-Encoding", coding)])
    async with RawServer(answering(wire)) as server, relay() as transport:
        resp = await send(transport, server.url())
    assert resp.body == body
    assert resp.status == 200


async def test_gzip_answer_is_decoded_for_stream() -> None:
    body = b"".join(b"data: event %d\n\n" % i for i in range(400))
    packed = gzip.compress(body)
    parts = [packed[i : i + 97] for i in range(0, len(packed), 97)]

    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        await peer.send(chunked_head(("content-encoding", "gzip")))
        await peer.send(*[chunk(p) for p in parts[:3]], gap=0.01)
        await peer.send(chunked(parts[3:]))
        await peer.until_eof()

    async with RawServer(handle) as server, relay() as transport:
        status, pieces = await streamed(transport, server.url())
    assert status == 200
    assert b"".join(pieces) == body


@pytest.mark.parametrize("how", ["send", "stream"])
async def test_brotli_answer_is_a_connection_error_naming_br(how: str) -> None:
    wire = answer(b"\x0b\x02\x80hello\x03", headers=[("Content-Encoding", "br")])
    async with RawServer(answering(wire)) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError) as caught:
            if how == "send":
                await send(transport, server.url())
            else:
                await streamed(transport, server.url())
    assert re.search(r"\bbr\b", str(caught.value)), str(caught.value)
    assert_names_only_the_host(caught.value, server)


async def test_content_coding_names_are_case_insensitive() -> None:
    body = b"hello " * 50
    wire = answer(gzip.compress(body), headers=[("Content-Encoding", "GZIP")])
    async with RawServer(answering(wire)) as server, relay() as transport:
        resp = await send(transport, server.url())
    assert resp.body == body


async def test_truncated_gzip_body_is_a_connection_error() -> None:
    packed = gzip.compress(b"hello world " * 100)
    wire = answer(packed[:-12], headers=[("Content-Encoding", "gzip")])  # content-length matches the cut body
    async with RawServer(answering(wire)) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError):
            await send(transport, server.url())


async def test_corrupt_gzip_body_is_a_connection_error() -> None:
    wire = answer(b"\x1f\x8b\x08\x00not gzip at all", headers=[("Content-Encoding", "gzip")])
    async with RawServer(answering(wire)) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError, match="decompress") as caught:
            await send(transport, server.url())
    assert_names_only_the_host(caught.value, server)


# -- 5. failures -----------------------------------------------------------------------------


async def test_server_closing_after_the_request_is_a_connection_error() -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            peer.close()

    async with RawServer(handle) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError, match="closed the connection") as caught:
            await send(transport, server.url())
    assert_names_only_the_host(caught.value, server)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
        chunked_head() + chunk(b"0123456789") + b"20\r\nonly part",
        b"HTTP/1.1 200 OK\r\ncontent-ty",
    ],
    ids=["content-length", "chunked", "head"],
)
async def test_answer_cut_short_is_a_connection_error_for_send(wire: bytes) -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(wire)
            peer.close()

    async with RawServer(handle) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError, match="before the answer was complete") as caught:
            await send(transport, server.url())
    assert_names_only_the_host(caught.value, server)


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
        chunked_head() + chunk(b"0123456789") + b"20\r\npart",
    ],
    ids=["content-length", "chunked"],
)
async def test_answer_cut_short_is_a_connection_error_during_stream_iteration(wire: bytes) -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(wire)
            await asyncio.sleep(0.05)
            peer.close()

    got: list[bytes] = []
    async with RawServer(handle) as server, relay() as transport:

        async def run() -> None:
            async with transport.stream("POST", server.url(), headers={}, body=b"{}", timeouts=T) as answer:
                async for piece in answer.iter_bytes():
                    got.append(piece)

        with pytest.raises(errors.ConnectionError, match="before the answer was complete") as caught:
            await asyncio.wait_for(run(), LIMIT)
    assert b"".join(got).startswith(b"0123456789")
    assert_names_only_the_host(caught.value, server)


@pytest.mark.parametrize("then_close", [False, True])
async def test_garbage_instead_of_http_is_a_connection_error(then_close: bool) -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        await peer.send(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02garbage\r\n\r\n")
        if then_close:
            peer.close()
        else:
            await peer.until_eof()  # the client must give up on its own, not wait for the close

    async with RawServer(handle) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError) as caught:
            await send(transport, server.url())
    assert_names_only_the_host(caught.value, server)


async def test_closed_port_is_a_connection_error() -> None:
    port = closed_port()
    async with relay() as transport:
        with pytest.raises(errors.ConnectionError, match="cannot connect") as caught:
            await send(transport, f"http://127.0.0.1:{port}/v1/chat{QUERY}")
    text = str(caught.value)
    assert f"127.0.0.1:{port}" in text
    assert SECRET not in text and "/v1/" not in text


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x/v1/chat" + QUERY,
        "http://",
        "http:///v1/chat" + QUERY,
        "http://127.0.0.1:99999/v1/chat" + QUERY,
        "http://user:pa55word@127.0.0.1:1/v1/chat" + QUERY,
        "http://127.0.0.1:1/v1/has space" + QUERY,
    ],
)
async def test_invalid_url_is_invalid_request(url: str) -> None:
    async with relay() as transport:
        with pytest.raises(errors.InvalidRequest) as caught:
            await send(transport, url)
    text = str(caught.value)
    assert SECRET not in text and "pa55word" not in text  # (a URL without a host is named up to its query)


# -- 6. a pooled connection the server closed -----------------------------------------------------


async def test_pooled_connection_closed_on_the_next_request_is_retried_once() -> None:
    async def handle(peer: Peer) -> None:
        answered = 0
        while await peer.request() is not None:
            if peer.index == 0 and answered == 1:
                peer.close()  # as if it timed the idle connection out just as the request came
                return
            await peer.send(OK)
            answered += 1

    async with RawServer(handle) as server, relay() as transport:
        await send(transport, server.url())
        resp = await send(transport, server.url())
        assert resp.status == 200
        assert server.connections == 2
        assert [seen.conn for seen in server.requests] == [0, 0, 1]


async def test_fresh_connection_closed_before_the_answer_is_not_retried() -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            peer.close()

    async with RawServer(handle) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError, match="closed the connection"):
            await send(transport, server.url())
        await asyncio.sleep(0.05)  # room for a retry to show up
    assert server.connections == 1
    assert len(server.requests) == 1


@pytest.mark.parametrize("pause", [0.0, 0.05], ids=["at-once", "later"])
async def test_idle_connection_the_server_closed_is_not_used_again(pause: float) -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(OK)
            peer.close()  # without saying so in the answer

    async with RawServer(handle) as server, relay() as transport:
        await send(transport, server.url())
        await asyncio.sleep(pause)  # at once: the close may come as the next request goes out (then: retried)
        resp = await send(transport, server.url())
    assert resp.status == 200
    assert [seen.conn for seen in server.requests] == [0, 1]


async def test_connection_idle_longer_than_idle_s_is_closed_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http1, "IDLE_S", 0.1)
    async with RawServer(echoing()) as server, relay() as transport:
        await send(transport, server.url("/one"))
        await asyncio.sleep(0.2)
        resp = await send(transport, server.url("/two"))
        assert resp.body == b"/two"
        assert [seen.conn for seen in server.requests] == [0, 1]
        await asyncio.wait_for(server.peers[0].eof.wait(), LIMIT)


# -- 7. timeouts --------------------------------------------------------------------------------


async def test_total_timeout_without_an_answer_is_a_timeout_and_frees_the_place() -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        if peer.index == 0:
            await peer.until_eof()  # never answers
        else:
            await peer.send(OK)
            await peer.until_eof()

    async with RawServer(handle) as server, relay(max_connections=1) as transport:
        started = time.monotonic()
        with pytest.raises(errors.Timeout) as caught:
            await send(transport, server.url(), timeouts=Timeouts(total=0.2))
        elapsed = time.monotonic() - started
        assert 0.15 <= elapsed < 1.0
        assert_names_only_the_host(caught.value, server)
        await asyncio.wait_for(server.peers[0].eof.wait(), LIMIT)  # the connection was closed
        assert (await send(transport, server.url())).status == 200


async def test_total_timeout_bounds_a_body_that_never_ends() -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome")
            await peer.until_eof()

    async with RawServer(handle) as server, relay() as transport:
        started = time.monotonic()
        with pytest.raises(errors.Timeout):
            await send(transport, server.url(), timeouts=Timeouts(total=0.2))
        assert time.monotonic() - started < 1.0


async def test_read_and_stream_idle_timeouts_do_not_bound_a_whole_answer() -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            await asyncio.sleep(0.15)  # before the head
            await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst", b"-last", gap=0.15)
            await peer.until_eof()

    async with RawServer(handle) as server, relay() as transport:
        resp = await send(transport, server.url(), timeouts=Timeouts(read=0.05, stream_idle=0.05, total=LIMIT))
    assert resp.body == b"first-last"


@pytest.mark.parametrize(
    "timeouts",
    [Timeouts(read=0.2, total=LIMIT), Timeouts(read=30.0, stream_idle=0.2, total=LIMIT)],
    ids=["read", "stream_idle"],
)
async def test_stream_stalled_after_its_first_piece_times_out_in_iter_bytes(timeouts: Timeouts) -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(chunked_head() + chunk(b"first"))
            await peer.until_eof()

    got: list[bytes] = []
    got_at = 0.0
    async with RawServer(handle) as server, relay() as transport:

        async def run() -> None:
            nonlocal got_at
            async with transport.stream("POST", server.url(), headers={}, body=b"{}", timeouts=timeouts) as answer:
                async for piece in answer.iter_bytes():
                    got.append(piece)
                    got_at = time.monotonic()

        with pytest.raises(errors.Timeout) as caught:
            await asyncio.wait_for(run(), LIMIT)
        assert got == [b"first"]
        assert 0.15 <= time.monotonic() - got_at < 1.0
        assert_names_only_the_host(caught.value, server)
        await asyncio.wait_for(server.peers[0].eof.wait(), LIMIT)


async def test_stream_idle_overrides_read_for_the_gaps_of_a_stream() -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.send(chunked_head() + chunk(b"a"), chunk(b"b") + LAST_CHUNK, gap=0.25)
            await peer.until_eof()

    async with RawServer(handle) as server, relay() as transport:
        status, pieces = await streamed(
            transport, server.url(), timeouts=Timeouts(read=0.05, stream_idle=2.0, total=LIMIT)
        )
    assert (status, pieces) == (200, [b"a", b"b"])


async def test_total_timeout_bounds_a_stream_that_keeps_trickling() -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        await peer.send(chunked_head())
        while not peer.reader.at_eof() and not peer.writer.is_closing():
            peer.writer.write(chunk(b"tick"))
            await asyncio.sleep(0.03)

    got: list[bytes] = []
    async with RawServer(handle) as server, relay() as transport:

        async def run() -> None:
            timeouts = Timeouts(read=1.0, total=0.3)
            async with transport.stream("POST", server.url(), headers={}, body=b"{}", timeouts=timeouts) as answer:
                async for piece in answer.iter_bytes():
                    got.append(piece)

        started = time.monotonic()
        with pytest.raises(errors.Timeout):
            await asyncio.wait_for(run(), LIMIT)
        assert 0.25 <= time.monotonic() - started < 1.2
    assert len(got) >= 3


@pytest.mark.parametrize(
    "timeouts", [Timeouts(read=None, total=0.2), Timeouts(read=0.2, total=30)], ids=["total", "read"]
)
async def test_total_and_read_limits_bound_the_wait_for_a_streams_head(timeouts: Timeouts) -> None:
    async def handle(peer: Peer) -> None:
        if await peer.request() is not None:
            await peer.until_eof()

    async with RawServer(handle) as server, relay() as transport:
        started = time.monotonic()
        with pytest.raises(errors.Timeout):
            await streamed(transport, server.url(), timeouts=timeouts)
        assert time.monotonic() - started < 1.0


# -- 8. headers that cannot be sent ----------------------------------------------------------------

BROKEN_HEADERS = [
    {"X-Api-Key": "v1\r\nX-Injected: yes"},
    {"X-Api-Key": "v1\nX-Injected: yes"},
    {"X-Api-Key": "v1\rX-Injected: yes"},
    {"X-Inject\nX-Injected": "v1"},
    {"X-Inject\r\nX-Injected": "v1"},
]


@pytest.mark.parametrize("headers", BROKEN_HEADERS)
@pytest.mark.parametrize("how", ["send", "stream"])
async def test_header_with_a_line_break_is_invalid_request_and_never_sent(headers: dict[str, str], how: str) -> None:
    async with RawServer(answering(OK)) as server, relay() as transport:
        with pytest.raises(errors.InvalidRequest) as caught:
            if how == "send":
                await send(transport, server.url(), headers=headers)
            else:
                async with transport.stream("POST", server.url(), headers=headers, body=b"{}", timeouts=T):
                    pass
        await asyncio.sleep(0.05)
        assert server.connections == 0
        assert server.requests == []
    text = str(caught.value)
    assert "X-Injected" not in text and "v1" not in text and SECRET not in text


@pytest.mark.parametrize("headers", [{"X-Api-Key": "sk-€uro-9"}, {"X-Api-Key": "sk-日本-9"}, {"X-Ключ": "v"}])
async def test_header_not_in_latin1_is_invalid_request_without_its_value(headers: dict[str, str]) -> None:
    async with RawServer(answering(OK)) as server, relay() as transport:
        with pytest.raises(errors.InvalidRequest) as caught:
            await send(transport, server.url(), headers=headers)
        await asyncio.sleep(0.05)
        assert server.connections == 0
    text = str(caught.value)
    for name, value in headers.items():
        assert value not in text and name not in text


# -- 9. the connection cap ----------------------------------------------------------------------


def counting_echo(hold: float) -> tuple[Handler, Callable[[], int]]:
    """``echoing(hold)`` that also tracks the most requests it held at once."""
    now = peak = 0

    async def handle(peer: Peer) -> None:
        nonlocal now, peak
        while (seen := await peer.request()) is not None:
            now += 1
            peak = max(peak, now)
            await asyncio.sleep(hold)
            now -= 1
            await peer.send(answer(seen.target.encode()))

    return handle, lambda: peak


async def test_max_connections_caps_connections_and_requests_in_flight() -> None:
    handle, peak = counting_echo(0.1)
    async with RawServer(handle) as server, relay(max_connections=2) as transport:
        started = time.monotonic()
        results = await asyncio.gather(*(send(transport, server.url(f"/n/{i}")) for i in range(6)))
        elapsed = time.monotonic() - started
        assert [r.body for r in results] == [f"/n/{i}".encode() for i in range(6)]
        assert peak() == 2
        assert server.max_open <= 2
        assert server.connections == 2  # the waiting requests took the connections freed before them
        assert elapsed >= 0.28  # three rounds of two


# -- 10. cancellation ----------------------------------------------------------------------------


def first_connection_stalls(after_request: bytes = b"") -> Handler:
    """The first connection reads the request, writes ``after_request`` and then nothing;
    later ones answer ``OK``."""

    async def handle(peer: Peer) -> None:
        if peer.index == 0:
            if await peer.request() is not None:
                if after_request:
                    await peer.send(after_request)
                await peer.until_eof()
            return
        await answering(OK)(peer)

    return handle


@pytest.mark.parametrize(
    "after_request",
    [b"", b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\npartial"],
    ids=["waiting-for-head", "reading-body"],
)
async def test_cancelled_send_closes_its_connection_and_frees_its_place(after_request: bytes) -> None:
    async with RawServer(first_connection_stalls(after_request)) as server, relay(max_connections=1) as transport:
        task = asyncio.create_task(transport.send("POST", server.url(), headers={}, body=b"{}", timeouts=T))
        await until(lambda: len(server.requests) == 1)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, LIMIT)
        await asyncio.wait_for(server.peers[0].eof.wait(), LIMIT)
        resp = await send(transport, server.url())
        assert resp.status == 200


async def test_cancelled_stream_reader_closes_its_connection_and_frees_its_place() -> None:
    got: list[bytes] = []
    stalls = first_connection_stalls(chunked_head() + chunk(b"first"))
    async with RawServer(stalls) as server, relay(max_connections=1) as transport:

        async def read() -> None:
            async with transport.stream("POST", server.url(), headers={}, body=b"{}", timeouts=T) as answer:
                async for piece in answer.iter_bytes():
                    got.append(piece)

        task = asyncio.create_task(read())
        await until(lambda: bool(got))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, LIMIT)
        await asyncio.wait_for(server.peers[0].eof.wait(), LIMIT)
        assert (await send(transport, server.url())).status == 200
    assert got == [b"first"]


def held_echo(gate: asyncio.Event) -> Handler:
    """Echoes each request's target; a target starting /held waits for ``gate`` first."""

    async def handle(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            if seen.target.startswith("/held"):
                await gate.wait()
            await peer.send(answer(seen.target.encode()))

    return handle


async def test_waiter_cancelled_while_queued_for_a_place_does_not_leak_it() -> None:
    gate = asyncio.Event()
    async with RawServer(held_echo(gate)) as server, relay(max_connections=1) as transport:
        first = asyncio.create_task(send(transport, server.url("/held")))
        await until(lambda: len(server.requests) == 1)
        queued = asyncio.create_task(send(transport, server.url("/queued")))
        await asyncio.sleep(0.05)
        assert not queued.done() and len(server.requests) == 1  # waiting for the one place
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.set()
        assert (await asyncio.wait_for(first, LIMIT)).body == b"/held"
        assert (await send(transport, server.url("/after"))).body == b"/after"
        assert (await send(transport, server.url("/again"))).body == b"/again"
    assert [seen.target for seen in server.requests] == ["/held", "/after", "/again"]


async def test_waiter_cancelled_just_as_it_is_handed_the_place_passes_it_on() -> None:
    gate = asyncio.Event()
    async with RawServer(held_echo(gate)) as server, relay(max_connections=1) as transport:

        async def call(path: str) -> HTTPResponse:
            return await transport.send("POST", server.url(path), headers={}, body=b"{}", timeouts=T)

        queued: asyncio.Task[HTTPResponse] | None = None

        async def first_then_cancel_the_next() -> HTTPResponse:
            resp = await call("/held")
            # the place was just handed to the queued call, which has not run yet: cancel it now
            assert queued is not None and not queued.done()
            queued.cancel()
            return resp

        first = asyncio.create_task(first_then_cancel_the_next())
        await until(lambda: len(server.requests) == 1)
        queued = asyncio.create_task(call("/queued"))
        await asyncio.sleep(0.05)
        gate.set()
        assert (await asyncio.wait_for(first, LIMIT)).body == b"/held"
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(queued, LIMIT)
        assert (await send(transport, server.url("/after"))).body == b"/after"
        assert (await send(transport, server.url("/again"))).body == b"/again"
    assert [seen.target for seen in server.requests] == ["/held", "/after", "/again"]


async def test_connection_in_use_during_aclose_is_closed_when_its_exchange_ends() -> None:
    gate = asyncio.Event()
    async with RawServer(held_echo(gate)) as server:
        transport = Http1Transport()
        try:
            task = asyncio.create_task(send(transport, server.url("/held")))
            await until(lambda: len(server.requests) == 1)
            await transport.aclose()
            gate.set()
            assert (await asyncio.wait_for(task, LIMIT)).body == b"/held"
            await asyncio.wait_for(server.peers[0].eof.wait(), 0.5)
        finally:
            await transport.aclose()


async def test_aclose_closes_idle_connections_and_the_transport_still_works() -> None:
    async with RawServer(echoing()) as server:
        transport = Http1Transport()
        try:
            assert (await send(transport, server.url("/one"))).body == b"/one"
            await transport.aclose()
            await asyncio.wait_for(server.peers[0].eof.wait(), LIMIT)
            assert (await send(transport, server.url("/two"))).body == b"/two"
            assert [seen.conn for seen in server.requests] == [0, 1]
        finally:
            await transport.aclose()


# -- 11. informational answers, HEAD --------------------------------------------------------------

INFORMATIONAL = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "apart"])
@pytest.mark.parametrize("how", ["send", "stream"])
async def test_informational_answers_before_the_final_one_are_skipped(split: bool, how: str) -> None:
    final = answer(b"final body", headers=[("X-Final", "1")])

    async def handle(peer: Peer) -> None:
        if await peer.request() is None:
            return
        if split:
            await peer.send(INFORMATIONAL, final, gap=0.05)
        else:
            await peer.send(INFORMATIONAL + final)
        await peer.until_eof()

    async with RawServer(handle) as server, relay() as transport:
        if how == "send":
            resp = await send(transport, server.url())
            status, headers, body = resp.status, resp.headers, resp.body
        else:

            async def run() -> tuple[int, dict[str, str], bytes]:
                async with transport.stream("POST", server.url(), headers={}, body=b"{}", timeouts=T) as answer:
                    return answer.status, dict(answer.headers), await answer.read()

            status, headers, body = await asyncio.wait_for(run(), LIMIT)
    assert (status, body) == (200, b"final body")
    assert headers["x-final"] == "1"
    assert "link" not in headers


async def test_head_request_answer_with_content_length_has_no_body() -> None:
    wire = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
    async with RawServer(answering(wire)) as server, relay() as transport:
        resp = await send(transport, server.url(), method="HEAD", body=None, timeouts=Timeouts(total=0.3))
    assert (resp.status, resp.body, resp.headers["content-length"]) == (200, b"", "100")


# -- 12. TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    return context


def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_with_a_context_trusting_the_private_ca(ca: trustme.CA) -> None:
    wire = chunked_head() + chunked([b"over ", b"tls"])
    server_side = RawServer(answering(OK, wire), tls=server_tls(ca, "127.0.0.1"))
    async with server_side as server, relay(tls=client_tls(ca)) as transport:
        assert server.url().startswith("https://127.0.0.1:")
        resp = await send(transport, server.url())
        status, pieces = await streamed(transport, server.url())
    assert (resp.status, resp.body) == (200, b'{"ok":true}')
    assert (status, b"".join(pieces)) == (200, b"over tls")
    assert server.requests[0].values("host") == [f"127.0.0.1:{server.port}"]


async def test_tls_with_system_trust_refuses_a_private_ca(ca: trustme.CA) -> None:
    async with RawServer(answering(OK), tls=server_tls(ca, "127.0.0.1")) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError, match="TLS") as caught:
            await send(transport, server.url())
    assert_names_only_the_host(caught.value, server)
    assert server.requests == []


async def test_tls_certificate_for_another_name_is_refused(ca: trustme.CA) -> None:
    server_side = RawServer(answering(OK), tls=server_tls(ca, "other.example"))
    async with server_side as server, relay(tls=client_tls(ca)) as transport:
        with pytest.raises(errors.ConnectionError, match="TLS") as caught:
            await send(transport, server.url())
    assert_names_only_the_host(caught.value, server)
    assert server.requests == []


# -- 13. proxies from the environment -----------------------------------------------------------


async def test_http_proxy_from_the_environment_carries_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    target = f"http://127.0.0.1:{closed_port()}/v1/chat?x=1"  # nothing listens there: only the proxy can answer
    async with RawServer(answering(answer(b"via proxy"))) as proxy:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with relay() as transport:
            resp = await send(transport, target, body=b'{"a":1}')
            status, pieces = await streamed(transport, target)
    assert (resp.status, resp.body) == (200, b"via proxy")
    assert (status, b"".join(pieces)) == (200, b"via proxy")
    first = proxy.requests[0]
    assert (first.method, first.target) == ("POST", target)
    assert first.body == b'{"a":1}'
    assert len(proxy.requests) == 2


async def test_no_proxy_lets_a_host_bypass_the_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    async with RawServer(answering(answer(b"via proxy"))) as proxy, RawServer(answering(answer(b"direct"))) as server:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        monkeypatch.delenv("NO_PROXY", raising=False)
        async with relay() as transport:
            resp = await send(transport, server.url())
    assert resp.body == b"direct"
    assert proxy.requests == [] and len(server.requests) == 1


# -- 14. any body, any chunking, any split ---------------------------------------------------------


@dataclass
class Wire:
    """An answer's body, how it is chunked and where the bytes on the wire are cut."""

    body: bytes
    sizes: list[int]
    upper: bool
    cuts: list[int]


bodies = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=1000, max_size=20_000),
    st.builds(lambda part, n: part * n, st.binary(min_size=1, max_size=40), st.integers(1, 500)),
)
wires = st.builds(
    Wire,
    body=bodies,
    sizes=st.lists(st.integers(1, 6000), min_size=1, max_size=8),
    upper=st.booleans(),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=30),
)


def wire_of(w: Wire, coding: str | None) -> list[bytes]:
    """The answer's bytes, chunked by ``w.sizes`` (cycled) and cut into writes at ``w.cuts``."""
    payload = gzip.compress(w.body) if coding == "gzip" else w.body
    pieces, at, i = [], 0, 0
    while at < len(payload):
        size = w.sizes[i % len(w.sizes)]
        pieces.append(chunk(payload[at : at + size], upper=w.upper))
        at, i = at + size, i + 1
    headers = [("content-encoding", coding)] if coding else []
    data = chunked_head(*headers) + b"".join(pieces) + LAST_CHUNK
    cuts = sorted({c % (len(data) + 1) for c in w.cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(cuts) if b > a]


async def round_trip(writes: list[bytes]) -> tuple[bytes, bytes]:
    async def handle(peer: Peer) -> None:
        while await peer.request() is not None:
            for part in writes:
                peer.writer.write(part)
                await peer.writer.drain()
                await asyncio.sleep(0)

    async with RawServer(handle) as server, relay() as transport:
        resp = await send(transport, server.url())
        status, pieces = await streamed(transport, server.url())
    assert resp.status == status == 200
    return resp.body, b"".join(pieces)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wires)
def test_any_chunked_body_split_anywhere_arrives_exactly(w: Wire) -> None:
    sent, streamed_body = asyncio.run(round_trip(wire_of(w, None)))
    assert sent == w.body
    assert streamed_body == w.body


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wires)
def test_any_gzip_chunked_body_split_anywhere_arrives_exactly(w: Wire) -> None:
    sent, streamed_body = asyncio.run(round_trip(wire_of(w, "gzip")))
    assert sent == w.body
    assert streamed_body == w.body


def test_pools_of_closed_event_loops_are_let_go() -> None:
    async def once(url: str, transport: Http1Transport) -> int:
        return (await send(transport, url)).status

    async def serve_and_ask(transport: Http1Transport, rounds: int) -> list[int]:
        async with RawServer(answering(*[OK] * rounds)) as server:
            return [await once(server.url(), transport) for _ in range(rounds)]

    transport = Http1Transport()
    for _ in range(3):  # each asyncio.run is a new loop, closed at its end
        assert asyncio.run(serve_and_ask(transport, 2)) == [200, 200]
    assert len(transport._loops) == 1  # the closed loops' pools were dropped when a new loop came
    asyncio.run(transport.aclose())
    assert not transport._loops
