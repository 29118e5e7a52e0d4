"""Slow and idle clients (server.py's ``GuardedHttpToolsProtocol``, and ``read_body``'s
deadline): raw sockets against a real uvicorn on 127.0.0.1, serving a small app of
these tests, with small limits (0.3 s for headers and for bodies, 5 connections).

Every scenario runs on both loops the gateway may get: asyncio's and uvloop (what
``llmrelay serve`` uses), each in its own event loop, within a time budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
import uvloop
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateways import running
from llmrelay.gateway.http import HTTPError, Receive, Scope, Send, read_body, send_json
from llmrelay.gateway.server import DEFAULT_LIMITS, GuardedHttpToolsProtocol, ServerLimits, limits_of

LIMITS = ServerLimits(header_timeout_s=0.3, body_timeout_s=0.3, max_connections=5)
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
SCENARIO_BUDGET_S = 30.0
KEEP_ALIVE_S = 1
STREAM_PIECES, STREAM_GAP_S = 8, 0.1  # an answer of 0.8 s, longer than both timeouts together


class SmallApp:
    """Answers ``{"read": <body size>}`` after reading the body with ``read_body`` within the
    body timeout; ``/early`` answers without reading it; ``/stream`` answers slowly, in pieces."""

    def __init__(self, limits: ServerLimits) -> None:
        self.server_limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/stream":
            await stream(send)
            return
        if scope["path"] == "/late":  # headers at once, the body 0.5 s later
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
            await asyncio.sleep(0.5)
            await send({"type": "http.response.body", "body": b"late"})
            return
        if scope["path"] == "/early":
            await send_json(send, 200, {"read": 0})
            return
        try:
            body = await read_body(scope, receive, 1 << 20, timeout_s=self.server_limits.body_timeout_s)
        except HTTPError as exc:
            await send_json(send, exc.status, exc.body, exc.headers)
            return
        await send_json(send, 200, {"read": len(body)})


async def stream(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(STREAM_PIECES):
        await send({"type": "http.response.body", "body": b"piece-%d\n" % i, "more_body": True})
        await asyncio.sleep(STREAM_GAP_S)
    await send({"type": "http.response.body", "body": b""})


class Recording(GuardedHttpToolsProtocol):
    """The guarded protocol, keeping each connection's protocol for the tests to look at."""

    made: list[GuardedHttpToolsProtocol] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.made.append(self)
        super().connection_made(transport)


class WriteCounting(GuardedHttpToolsProtocol):
    """The guarded protocol on a transport that counts the writes reaching the socket."""

    writes: list[bytes] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Counted(transport, self.writes))  # type: ignore[arg-type]


class _Counted:
    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport, self._writes = transport, writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@dataclass
class Running:
    server: uvicorn.Server
    port: int

    @property
    def open_connections(self) -> int:
        return len(self.server.server_state.connections)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def until_open(self, count: int, within_s: float = 5.0) -> float:
        """Seconds until the server holds ``count`` connections (fails past ``within_s``)."""
        begun = time.monotonic()
        for _ in range(int(within_s / 0.02)):
            if self.open_connections == count:
                return time.monotonic() - begun
            await asyncio.sleep(0.02)
        raise AssertionError(f"the server holds {self.open_connections} connections, not {count}")


@contextlib.asynccontextmanager
async def serving(limits: ServerLimits, http: Any) -> AsyncIterator[Running]:
    config = uvicorn.Config(
        SmallApp(limits), host="127.0.0.1", port=0, http=http, lifespan="off", log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_S,
    )  # fmt: skip
    async with running(config) as (server, port):
        yield Running(server, port)


Scenario = Callable[[Running], Awaitable[None]]
OnLoop = Callable[..., None]


@pytest.fixture(params=sorted(LOOPS))
def on_loop(request: pytest.FixtureRequest) -> OnLoop:
    """Runs a scenario against a fresh server in a fresh loop of the parameter's kind."""
    factory = LOOPS[request.param]

    def run(scenario: Scenario, limits: ServerLimits = LIMITS, http: Any = GuardedHttpToolsProtocol) -> None:
        async def main() -> None:
            async with serving(limits, http) as running:
                await scenario(running)

        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(asyncio.wait_for(main(), SCENARIO_BUDGET_S))

    return run


# ---- raw HTTP ---------------------------------------------------------------------------------


def post(path: str = "/echo", body: bytes = b"{}", length: int | None = None) -> bytes:
    declared = len(body) if length is None else length
    return f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-length: {declared}\r\n\r\n".encode() + body


async def answer(reader: asyncio.StreamReader, within_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """The next answer on the connection: status, headers, body (by content-length, or chunked)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within_s)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    if headers.get("transfer-encoding") == "chunked":
        body = await asyncio.wait_for(chunked(reader), within_s)
    else:
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), within_s)
    return int(lines[0].split()[1]), headers, body


async def chunked(reader: asyncio.StreamReader) -> bytes:
    pieces: list[bytes] = []
    for _ in range(1000):
        size = int(await reader.readuntil(b"\r\n"), 16)
        pieces.append(await reader.readexactly(size + 2))
        if not size:
            return b"".join(p[:-2] for p in pieces)
    raise AssertionError("an answer of more than 1000 chunks")


async def closed(reader: asyncio.StreamReader, within_s: float = 5.0) -> bool:
    """Whether the server closes the connection within ``within_s``, sending nothing more."""
    try:
        rest = await asyncio.wait_for(reader.read(), within_s)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return rest == b""


async def trickle(writer: asyncio.StreamWriter, data: bytes, gap_s: float) -> None:
    """``data`` one byte at a time, ``gap_s`` apart, until it is sent or the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(gap_s)


async def hang_up(*writers: asyncio.StreamWriter) -> None:
    for writer in writers:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def error_of(body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" or error["type"] == "api_error"
    assert set(error) == {"message", "type", "code", "param"} and error["param"] is None
    return error


# ---- headers ------------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_gets_408_and_is_closed(on_loop: OnLoop) -> None:
    async def scenario(srv: Running) -> None:
        reader, writer = await srv.connect()
        begun = time.monotonic()
        status, headers, body = await answer(reader)
        waited = time.monotonic() - begun
        assert status == 408 and headers["connection"] == "close"
        assert error_of(body) == {
            "message": "the request headers did not arrive in time", "type": "invalid_request_error",
            "code": "request_timeout", "param": None,
        }  # fmt: skip
        assert 0.2 < waited < 1.0
        assert await closed(reader, 1.0)
        await hang_up(writer)
        await srv.until_open(0)

    on_loop(scenario)


def test_headers_sent_a_byte_at_a_time_are_cut(on_loop: OnLoop) -> None:
    """On a new connection, and on a kept-alive one, where the clock starts at the next
    request's first byte (not at the previous answer)."""

    async def scenario(srv: Running) -> None:
        request = b"GET /slow HTTP/1.1\r\nhost: t\r\nx-padding: slowly\r\n\r\n"  # 1.5 s at 0.03 s a byte
        reader, writer = await srv.connect()
        sender = asyncio.create_task(trickle(writer, request, 0.03))
        assert (await answer(reader))[0] == 408
        assert await closed(reader, 1.0)
        sender.cancel()
        await hang_up(writer)

        reader, writer = await srv.connect()
        writer.write(post())
        assert (await answer(reader))[0] == 200
        await asyncio.sleep(0.5)  # idle longer than the header timeout, within keep-alive
        begun = time.monotonic()
        sender = asyncio.create_task(trickle(writer, request, 0.03))
        assert (await answer(reader))[0] == 408
        assert 0.2 < time.monotonic() - begun < 1.0
        assert await closed(reader, 1.0)
        sender.cancel()
        await hang_up(writer)

    on_loop(scenario)


# ---- bodies -------------------------------------------------------------------------------------


async def body_stops_coming(srv: Running) -> None:
    reader, writer = await srv.connect()
    writer.write(post(body=b"0123456789", length=100))
    begun = time.monotonic()
    status, headers, body = await answer(reader)
    assert status == 408 and headers["connection"] == "close"
    error = error_of(body)  # the protocol's 408, or read_body's when its own timer fires first
    assert error["message"] in (
        "the request body did not arrive in time",  # the protocol's
        "the request body did not arrive within 0.3 s",  # read_body's
    )
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "request_timeout", None)
    assert 0.2 < time.monotonic() - begun < 1.0
    assert await closed(reader, 1.0)
    await hang_up(writer)


def test_a_body_that_stops_coming_gets_408_and_the_connection_closes(on_loop: OnLoop) -> None:
    on_loop(body_stops_coming)


def test_uvicorn_closes_the_connection_after_read_bodys_408(on_loop: OnLoop) -> None:
    """The same on uvicorn's own protocol, whose body handling knows no deadline: the
    connection closes because the 408 says ``connection: close``."""
    on_loop(body_stops_coming, http="httptools")


def test_a_body_trickled_after_an_early_answer_is_cut(on_loop: OnLoop) -> None:
    """An answer that did not wait for the body leaves its rest to the protocol: each byte
    cancels uvicorn's keep-alive timer, the body deadline still closes the connection."""

    async def scenario(srv: Running) -> None:
        reader, writer = await srv.connect()
        writer.write(post("/early", b"", length=100))
        assert (await answer(reader))[0] == 200
        sender = asyncio.create_task(trickle(writer, b"x" * 100, 0.05))  # 5 s of body
        assert await closed(reader, 1.5)
        sender.cancel()
        await hang_up(writer)

    on_loop(scenario)


def test_an_answer_under_way_when_its_body_is_late_ends_the_connection(on_loop: OnLoop) -> None:
    """The app answers (slowly, 0.8 s) without reading a body that never comes: the
    connection closes as the answer ends, not a keep-alive timeout later."""

    async def scenario(srv: Running) -> None:
        reader, writer = await srv.connect()
        writer.write(post("/stream", b"", length=100))
        streamed = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 5)
        assert streamed.startswith(b"HTTP/1.1 200") and b"connection: close" not in streamed
        ended = time.monotonic()
        assert await closed(reader, KEEP_ALIVE_S + 1.0)
        assert time.monotonic() - ended < KEEP_ALIVE_S / 2
        await hang_up(writer)

    on_loop(scenario)


def test_bytes_that_start_no_request_do_not_hold_a_connection(on_loop: OnLoop) -> None:
    """Blank lines between requests, or the end of a body answered early, cancel uvicorn's
    keep-alive timer without arming it again: the connection still closes after it."""

    async def scenario(srv: Running) -> None:
        for path, length, after in (("/echo", 0, b"\r\n"), ("/early", 5, b"12345")):
            reader, writer = await srv.connect()
            writer.write(post(path, b"", length))
            assert (await answer(reader))[0] == 200
            await asyncio.sleep(0.1)
            writer.write(after)
            begun = time.monotonic()
            assert await closed(reader, KEEP_ALIVE_S + 1.5)
            assert time.monotonic() - begun > KEEP_ALIVE_S - 0.2  # the keep-alive timer, not a deadline
            await hang_up(writer)

    on_loop(scenario)


# ---- connections --------------------------------------------------------------------------------


def test_connections_past_the_limit_get_503_at_once(on_loop: OnLoop) -> None:
    async def scenario(srv: Running) -> None:
        held = [await srv.connect() for _ in range(5)]
        await srv.until_open(5)
        reader, writer = await srv.connect()
        begun = time.monotonic()
        status, headers, body = await answer(reader)
        assert time.monotonic() - begun < 0.5  # at once, not after the header timeout (5 s here)
        assert status == 503 and headers["connection"] == "close" and headers["retry-after"] == "1"
        assert error_of(body)["code"] == "too_many_connections"
        assert await closed(reader, 1.0)
        await hang_up(writer, *(w for _, w in held))
        await srv.until_open(0)
        reader, writer = await srv.connect()
        writer.write(post())
        assert (await answer(reader))[:1] == (200,)
        await hang_up(writer)

    on_loop(scenario, ServerLimits(header_timeout_s=5, body_timeout_s=5, max_connections=5))


# ---- well-behaved clients -----------------------------------------------------------------------


def test_a_keep_alive_client_is_never_cut(on_loop: OnLoop) -> None:
    """20 requests on one connection over 3 s, pausing half a timeout between them, some
    sent in pieces; then three pipelined in one write."""

    async def scenario(srv: Running) -> None:
        reader, writer = await srv.connect()
        for i in range(20):
            request = post(body=b'{"n": %d}' % i)
            if i % 4 == 0:
                writer.write(request[:10])
                await asyncio.sleep(0.1)
                writer.write(request[10:-3])
                await asyncio.sleep(0.1)
                writer.write(request[-3:])
            else:
                writer.write(request)
            status, _, body = await answer(reader)
            assert status == 200 and json.loads(body) == {"read": len(b'{"n": %d}' % i)}
            await asyncio.sleep(0.15)
        writer.write(post(body=b"1") + post(body=b"22") + post(body=b"333"))
        assert [json.loads((await answer(reader))[2])["read"] for _ in range(3)] == [1, 2, 3]
        assert srv.open_connections == 1
        await hang_up(writer)

    on_loop(scenario)


def test_a_long_streaming_answer_and_a_request_pipelined_behind_it_are_not_cut(on_loop: OnLoop) -> None:
    """The answer takes 0.8 s; the request behind it sends the end of its body during that
    time, which the server only reads once the answer is done."""

    async def scenario(srv: Running) -> None:
        reader, writer = await srv.connect()
        behind = post(body=b"0123456789")
        writer.write(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n" + behind[:-5])
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head
        await asyncio.sleep(0.1)
        writer.write(behind[-5:])
        streamed = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 5)
        assert streamed.count(b"piece-") == STREAM_PIECES
        status, _, body = await answer(reader)
        assert status == 200 and json.loads(body) == {"read": 10}
        writer.write(post())
        assert (await answer(reader))[0] == 200
        await hang_up(writer)

    on_loop(scenario)


def test_an_answers_head_and_body_leave_in_one_write(on_loop: OnLoop) -> None:
    """uvicorn writes the status line and headers apart from the body; the guarded protocol
    sends them together: one system call and one TCP segment per answer, not two."""

    async def scenario(srv: Running) -> None:
        WriteCounting.writes.clear()
        reader, writer = await srv.connect()
        for _ in range(3):
            writer.write(post(body=b"12345"))
            status, _, body = await answer(reader)
            assert status == 200 and json.loads(body) == {"read": 5}
        await hang_up(writer)
        answers = [w for w in WriteCounting.writes if w.startswith(b"HTTP/1.1")]
        assert len(answers) == 3 and len(WriteCounting.writes) == 3
        assert all(w.endswith(b'{"read":5}') for w in answers)

    on_loop(scenario, http=WriteCounting)


def test_headers_are_not_held_back_for_a_body_that_comes_later(on_loop: OnLoop) -> None:
    async def scenario(srv: Running) -> None:
        reader, writer = await srv.connect()
        writer.write(b"GET /late HTTP/1.1\r\nhost: t\r\n\r\n")
        begun = time.monotonic()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200") and time.monotonic() - begun < 0.4
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"late"
        writer.write(post())  # the connection goes on as usual
        assert (await answer(reader))[0] == 200
        await hang_up(writer)

    on_loop(scenario)


def test_a_request_stalled_behind_a_streaming_answer_gets_408_after_it(on_loop: OnLoop) -> None:
    """Headers that stop coming while the previous answer is still being sent: the answer
    ends whole, then the 408 (never in the middle of it)."""

    async def scenario(srv: Running) -> None:
        reader, writer = await srv.connect()
        writer.write(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\nPOST /echo HTTP/1.1\r\nhost")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        streamed = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 5)
        assert streamed.count(b"piece-") == STREAM_PIECES and b"408" not in streamed
        ended = time.monotonic()
        assert (await answer(reader))[0] == 408
        assert time.monotonic() - ended < 0.6
        assert await closed(reader, 1.0)
        await hang_up(writer)

    on_loop(scenario)


# ---- many slow clients --------------------------------------------------------------------------


def test_two_hundred_slowloris_connections_do_not_stop_a_normal_request(on_loop: OnLoop) -> None:
    """A quarter of them hang up on their own, halfway through; the normal client resets its
    connection after its answer. None leaves a timer behind."""
    Recording.made.clear()
    slow = b"GET / HTTP/1.1\r\nhost: t\r\n" + b"x-slow: " + b"z" * 200  # never ends, at 0.05 s a byte

    async def loris(srv: Running, leaves: bool) -> bytes:
        reader, writer = await srv.connect()
        sender = asyncio.create_task(trickle(writer, slow, 0.05))
        try:
            if leaves:
                await asyncio.sleep(0.25)
                return b"left"
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            return head.split(b"\r\n", 1)[0]
        finally:
            sender.cancel()
            await hang_up(writer)

    async def scenario(srv: Running) -> None:
        slow_ones = [asyncio.create_task(loris(srv, leaves=i % 4 == 0)) for i in range(200)]
        await srv.until_open(200)
        begun = time.monotonic()
        reader, writer = await srv.connect()
        writer.write(post())
        assert (await answer(reader))[0] == 200
        assert time.monotonic() - begun < 0.3
        reset(writer)
        lines = await asyncio.wait_for(asyncio.gather(*slow_ones), 5)
        assert lines.count(b"left") == 50 and lines.count(b"HTTP/1.1 408 Request Timeout") == 150
        assert await srv.until_open(0, within_s=2.0) < 2.0
        assert len(Recording.made) == 201
        assert all(p._deadline is None and p.timeout_keep_alive_task is None for p in Recording.made)

    on_loop(scenario, ServerLimits(header_timeout_s=0.5, body_timeout_s=0.5, max_connections=1000), http=Recording)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), not a FIN: the server's side of it sees an error."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# ---- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("header_timeout_s", 0), ("header_timeout_s", -1.0), ("header_timeout_s", math.nan),
        ("header_timeout_s", math.inf), ("header_timeout_s", "10"), ("body_timeout_s", 0.0),
        ("max_connections", 0), ("max_connections", 1.5), ("max_connections", True),
    ],
)  # fmt: skip
def test_limits_are_checked(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"ServerLimits.{field} must be"):
        ServerLimits(**{field: value})


def test_the_limits_are_found_through_middleware_cheaply() -> None:
    app = SmallApp(LIMITS)
    wrapped = ProxyHeadersMiddleware(app)  # type: ignore[arg-type]
    assert limits_of(app) is LIMITS and limits_of(wrapped) is LIMITS
    assert limits_of(ProxyHeadersMiddleware(send_json)) is DEFAULT_LIMITS  # type: ignore[arg-type]

    class Loop:
        def __init__(self) -> None:
            self.app = self

    assert limits_of(Loop()) is DEFAULT_LIMITS
    begun = time.perf_counter()
    for _ in range(100_000):
        limits_of(wrapped)
    assert (time.perf_counter() - begun) / 100_000 < 5e-6  # once per connection: well under a microsecond here
