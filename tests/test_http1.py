"""Http1Transport, the default transport, over real sockets on 127.0.0.1 (``rawserver.py``):
whole answers and the request on the wire, framing, streams, content codings,
informational answers and HEAD, and any body in any chunking."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import re
import socket
import struct
import zlib
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay import _http1, _http1_conn, errors
from llmrelay._http import Timeouts
from llmrelay._http1 import Http1Transport
from rawserver import (
    LAST_CHUNK,
    LIMIT,
    OK,
    QUERY,
    Peer,
    RawServer,
    T,
    answer,
    answering,
    assert_names_only_the_host,
    chunk,
    chunked,
    chunked_head,
    echoing,
    no_proxy_in_env,  # noqa: F401  (an autouse fixture: active where it is imported)
    relay,
    send,
    streamed,
)

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


def test_host_header_of_an_ipv6_origin_is_bracketed() -> None:
    """Checked on the request's bytes (the tests talk to 127.0.0.1 only, not to ::1)."""
    head = _http1._request("POST", _http1._target("http://[::1]:8080/v6"), {}, b"{}").split(b"\r\n")
    assert head[:2] == [b"POST /v6 HTTP/1.1", b"host: [::1]:8080"]
    default = _http1._request("GET", _http1._target("https://[::1]/v6"), {}, None).split(b"\r\n")
    assert default[1] == b"host: [::1]"


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


@pytest.mark.parametrize("how", ["send", "stream"])
async def test_truncated_gzip_body_is_a_connection_error(how: str) -> None:
    packed = gzip.compress(b"hello world " * 100)
    wire = answer(packed[:-12], headers=[("Content-Encoding", "gzip")])  # content-length matches the cut body
    async with RawServer(answering(wire)) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError, match="decompress"):
            if how == "send":
                await send(transport, server.url())
            else:
                await streamed(transport, server.url())


async def test_corrupt_gzip_body_is_a_connection_error() -> None:
    wire = answer(b"\x1f\x8b\x08\x00not gzip at all", headers=[("Content-Encoding", "gzip")])
    async with RawServer(answering(wire)) as server, relay() as transport:
        with pytest.raises(errors.ConnectionError, match="decompress") as caught:
            await send(transport, server.url())
    assert_names_only_the_host(caught.value, server)


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
