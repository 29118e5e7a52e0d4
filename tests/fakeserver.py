"""A fake provider: a real HTTP server on 127.0.0.1 that replays recorded
answers and injects faults (status codes, bodies, hangs, cut streams).

    async with FakeServer() as srv:
        srv.on("POST", "/v1/chat/completions", Reply(json={...}))
        srv.on("POST", "/v1/chat/completions", Reply(chunks=[b"data: ...\\n\\n"], cut_after=2))
        ... srv.url ... srv.requests ...

Replies for a route are served in order; the last one repeats.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | str | None = None
    chunks: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay_s: float = 0.0  # before the status line (slow first byte)
    chunk_delay_s: float = 0.0
    cut_after: int | None = None  # close the connection after this many chunks
    hang_s: float | None = None  # accept, then say nothing for this long
    reset: bool = False  # close the connection without any answer
    streamed: list[bytes] | None = None  # the chunks for a request asking "stream": true (json for the others)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: object = None  # the client's (host, port): which connection it came on

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class FakeServer:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], list[Reply]] = {}
        self.requests: list[Recorded] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def on(self, method: str, path: str, *replies: Reply) -> FakeServer:
        self._routes[(method.upper(), path)] = list(replies)
        return self

    def count(self, path: str | None = None) -> int:
        return sum(1 for r in self.requests if path is None or r.path == path)

    async def __aenter__(self) -> FakeServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handlers still hanging when a test ends are cancelled at once, not waited for
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), dict(request.headers), body, peer)
        )
        replies = self._routes.get((request.method, request.path))
        if not replies:
            return web.json_response(
                {"error": {"message": f"no fake route {request.method} {request.path}"}}, status=404
            )
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.reset:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if reply.hang_s is not None:
            await asyncio.sleep(reply.hang_s)
            return web.Response(status=504)
        if reply.streamed is not None and body and json.loads(body).get("stream") is True:
            reply = Reply(chunks=reply.streamed, headers=reply.headers)
        if reply.chunks is not None:
            resp = web.StreamResponse(status=reply.status, headers=reply.headers)
            resp.content_type = reply.content_type or "text/event-stream"
            await resp.prepare(request)
            for i, chunk in enumerate(reply.chunks):
                if reply.cut_after is not None and i >= reply.cut_after:
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                await resp.write(chunk)
                if reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
            await resp.write_eof()
            return resp
        if reply.json is not None:
            data = json.dumps(reply.json).encode()
            ctype = reply.content_type or "application/json"
        else:
            raw = reply.body or b""
            data = raw.encode() if isinstance(raw, str) else raw
            ctype = reply.content_type or "application/json"
        return web.Response(status=reply.status, body=data, headers=reply.headers, content_type=ctype)


def split_every(data: bytes, size: int) -> list[bytes]:
    """``data`` in pieces of ``size`` bytes (to test framing across reads)."""
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]
