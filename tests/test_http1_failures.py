"""Http1Transport when things go wrong, over real sockets on 127.0.0.1 (``rawserver.py``):
broken answers, a pooled connection the server closed, timeouts, headers that cannot be
sent, the connection cap, cancellation, TLS and proxies from the environment."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import pytest
import trustme

from llmrelay import _http1, errors
from llmrelay._http import HTTPResponse, Timeouts
from llmrelay._http1 import Http1Transport
from rawserver import (
    LAST_CHUNK,
    LIMIT,
    OK,
    QUERY,
    SECRET,
    Handler,
    Peer,
    RawServer,
    T,
    answer,
    answering,
    assert_names_only_the_host,
    chunk,
    chunked,
    chunked_head,
    closed_port,
    echoing,
    no_proxy_in_env,  # noqa: F401  (an autouse fixture: active where it is imported)
    relay,
    send,
    streamed,
    until,
)

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
