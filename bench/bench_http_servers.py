"""HTTP server candidates for ``llmrelay serve``, measured with wrk against the same routes.

    python bench/bench_http_servers.py [--duration 5] [--runs 3] [--warmup 2] [--only aiohttp,granian]

Starts nginx with ../shared/upstream/nginx.conf on 127.0.0.1:18080 (``Upstream`` from
bench_client.py), then, for each candidate in turn, one server process (ONE worker, its own
subprocess, 127.0.0.1 only) that serves

* ``POST /static/v1/chat/completions`` -- "static": decode the body with orjson, answer a fixed
  chat.completion JSON (no upstream);
* ``POST /v1/chat/completions`` -- the gateway path: decode the body (orjson +
  ``request_from_wire``), call nginx through ``AsyncClient.chat`` (one client per worker, made at
  startup) and encode the answer with ``response_to_wire`` ("proxy"); with ``"stream": true`` in
  the body it calls ``AsyncClient.stream`` (a second client pointed at nginx's /stream/v1, 20
  upstream chunks) and re-encodes every event as an SSE ``chat.completion.chunk``, written as it
  comes ("stream").

Candidates: (a) aiohttp.web on uvloop; (b) uvicorn (httptools, uvloop) + a raw ASGI callable;
(c) uvicorn + Starlette routing; (d) granian (ASGI interface, 1 worker, 1 runtime thread, uvloop)
+ the same raw ASGI callable; (e) a hand-written asyncio.Protocol HTTP/1.1 server on uvloop with
httptools' parser (keep-alive, Content-Length bodies, no flow control) as the Python floor; and
nginx answering the same request itself (the ceiling).

Every figure is wrk ``-t2 -c16 -d{duration}s --latency`` after a ``-d{warmup}s`` warm-up run of the
same kind; "p50 c1" is the median latency of the proxy path at ``-t1 -c1``. RSS is VmRSS of the
server's process tree (granian: supervisor + worker) once it answers and after all load. Each
cell is the median of ``--runs`` runs; the candidate order rotates between runs. A check table
lists wrk's non-2xx and socket errors, errors the servers logged and how many more upstream
requests nginx counted (stub_status) than wrk completed: 0..16, the requests in flight at the end.

The machine is shared: wrk, nginx and the server under test compete for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
UPSTREAM_PORT = 18080
UPSTREAM = f"http://{HOST}:{UPSTREAM_PORT}"
FIRST_PORT = 18101
STATIC_PATH = "/static/v1/chat/completions"
CHAT_PATH = "/v1/chat/completions"
MAX_BODY = 1 << 20
SETTLE_S = 0.3
ERROR_MARK = "BENCH-ERROR"
ANSWER = "Hello! How can I help you today?"
STREAM_ANSWER = "Hello! How can I help?"

JSON_BODY = (
    b'{"model":"openai/gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},'
    b'{"role":"user","content":"Hello!"}],"max_tokens":64,"temperature":0.2}'
)
STREAM_BODY = JSON_BODY[:-1] + b',"stream":true,"stream_options":{"include_usage":true}}'
STATIC_ANSWER = (
    b'{"id":"chatcmpl-static","object":"chat.completion","created":1732492800,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?",'
    b'"refusal":null},"finish_reason":"stop","logprobs":null}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
)

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


# =============================================================== server side (runs in the subprocess)


class Gateway:
    """The framework-independent part: what every candidate does with a request body."""

    def __init__(self) -> None:
        self.client: Any = None
        self.stream_client: Any = None

    def start(self) -> None:
        """Make the clients (sync: their connection pools open on first use, in the serving loop)."""
        if self.client is not None:
            return
        from llmrelay import AsyncClient

        self.client = AsyncClient(env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": UPSTREAM + "/v1"})
        self.stream_client = AsyncClient(env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": UPSTREAM + "/stream/v1"})

    async def close(self) -> None:
        for client in (self.client, self.stream_client):
            if client is not None:
                await client.aclose()
        self.client = self.stream_client = None

    async def handle(self, raw: bytes) -> tuple[int, bytes | AsyncIterator[bytes]]:
        """``(status, JSON bytes)`` or ``(200, SSE frames)`` for a chat completions body."""
        import orjson

        from llmrelay import errors
        from llmrelay.providers.openai.inbound import request_from_wire, response_to_wire

        self.start()
        try:
            body = orjson.loads(raw)
            request = request_from_wire(body)
            if body.get("stream") is True:
                return 200, self._frames(request)
            response = await self.client.chat(request.model, request.messages, **_call_params(request))
        except orjson.JSONDecodeError:
            return _error(400, "the request body is not JSON")
        except errors.LLMError as exc:
            return _error(400 if isinstance(exc, errors.InvalidRequest) else 502, str(exc))
        return 200, orjson.dumps(response_to_wire(response, int(time.time()), request.model))

    async def _frames(self, request: Any) -> AsyncIterator[bytes]:
        import orjson

        from llmrelay import errors
        from llmrelay.providers.openai.inbound import chunk_to_wire, usage_to_wire
        from llmrelay.types import Finish

        created, model, chunk_id = int(time.time()), request.model, "chatcmpl-relay"
        head = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model}
        role = {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        yield b"data: " + orjson.dumps(role) + b"\n\n"
        try:
            async for event in self.stream_client.stream(model, request.messages, **_call_params(request)):
                wire = chunk_to_wire(event, chunk_id, created, model)
                if wire is not None:
                    yield b"data: " + orjson.dumps(wire) + b"\n\n"
                elif type(event) is Finish:
                    last = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": event.reason}]}
                    usage = {**head, "choices": [], "usage": usage_to_wire(event.response.usage)}
                    yield b"data: " + orjson.dumps(last) + b"\n\ndata: " + orjson.dumps(usage) + b"\n\n"
        except errors.LLMError as exc:
            print(ERROR_MARK, "stream", repr(exc), file=sys.stderr, flush=True)
            yield b"data: " + orjson.dumps({"error": {"message": str(exc), "type": "api_error"}}) + b"\n\n"
        yield b"data: [DONE]\n\n"


def _call_params(request: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in ("temperature", "top_p", "max_tokens", "stop", "seed", "user", "tool_choice", "response_format"):
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.tools:
        params["tools"] = request.tools
    if request.extra:
        params["extra"] = request.extra
    return params


def _error(status: int, message: str) -> tuple[int, bytes]:
    import orjson

    print(ERROR_MARK, status, message, file=sys.stderr, flush=True)
    return status, orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})


def static_answer(raw: bytes) -> bytes:
    import orjson

    orjson.loads(raw)
    return STATIC_ANSWER


GATEWAY = Gateway()
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The raw ASGI callable (no framework), served by uvicorn and by granian."""
    if scope["type"] == "lifespan":
        for _ in range(2):  # startup, then shutdown
            message = await receive()
            if message["type"] == "lifespan.startup":
                GATEWAY.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await GATEWAY.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
        return
    if scope["type"] != "http":
        return
    chunks: list[bytes] = []
    size, more = 0, True
    while more and size <= MAX_BODY:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
    path, method = scope["path"], scope["method"]
    if size > MAX_BODY or method != "POST" or path not in (STATIC_PATH, CHAT_PATH):
        status = 413 if size > MAX_BODY else 405 if path in (STATIC_PATH, CHAT_PATH) else 404
        await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": b'{"error":{"message":"no"}}'})
        return
    raw = b"".join(chunks)
    payload: bytes | AsyncIterator[bytes]
    if path == STATIC_PATH:
        status, payload = 200, static_answer(raw)
    else:
        status, payload = await GATEWAY.handle(raw)
    if isinstance(payload, bytes):
        await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": payload})
        return
    await send({"type": "http.response.start", "status": status, "headers": SSE_HEADERS})
    async for frame in payload:
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        GATEWAY.start()
        yield
        await GATEWAY.close()

    async def static(request: Request) -> Response:
        return Response(static_answer(await request.body()), media_type="application/json")

    async def chat(request: Request) -> Response:
        status, payload = await GATEWAY.handle(await request.body())
        if isinstance(payload, bytes):
            return Response(payload, status_code=status, media_type="application/json")
        return StreamingResponse(payload, media_type="text/event-stream", headers={"cache-control": "no-cache"})

    routes = [Route(STATIC_PATH, static, methods=["POST"]), Route(CHAT_PATH, chat, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


async def serve_aiohttp(port: int) -> None:
    from aiohttp import web

    async def static(request: web.Request) -> web.StreamResponse:
        return web.Response(body=static_answer(await request.read()), content_type="application/json")

    async def chat(request: web.Request) -> web.StreamResponse:
        status, payload = await GATEWAY.handle(await request.read())
        if isinstance(payload, bytes):
            return web.Response(body=payload, status=status, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        async for frame in payload:
            await response.write(frame)
        await response.write_eof()
        return response

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(STATIC_PATH, static)
    app.router.add_post(CHAT_PATH, chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    GATEWAY.start()
    try:
        await web.TCPSite(runner, HOST, port, backlog=4096).start()
        await _until_terminated()
    finally:
        await runner.cleanup()
        await GATEWAY.close()


class RawHTTP(asyncio.Protocol):
    """HTTP/1.1 on httptools' parser: keep-alive, Content-Length bodies, one request at a time."""

    def __init__(self, tasks: set[asyncio.Task[None]]) -> None:
        import httptools

        self.parser = httptools.HttpRequestParser(self)
        self.parse_error: type[Exception] = httptools.HttpParserError
        self.transport: asyncio.Transport | None = None
        self.tasks = tasks
        self.url = b""
        self.body: list[bytes] = []
        self.queue: deque[tuple[bytes, bytes, bytes, bool]] = deque()
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self.parse_error:
            self._reply(400, b'{"error":{"message":"bad request"}}', False)

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        self.queue.append((method, self.url, b"".join(self.body), self.parser.should_keep_alive()))
        self._pump()

    def _pump(self) -> None:
        while self.queue and not self.busy and self.transport is not None:
            method, url, body, keep = self.queue.popleft()
            if method != b"POST" or url not in (b"/static/v1/chat/completions", b"/v1/chat/completions"):
                self._reply(404, b'{"error":{"message":"no such route"}}', keep)
            elif url == b"/static/v1/chat/completions":
                self._reply(200, static_answer(body), keep)
            else:
                self.busy = True
                task = asyncio.get_running_loop().create_task(self._chat(body, keep))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _chat(self, body: bytes, keep: bool) -> None:
        try:
            status, payload = await GATEWAY.handle(body)
            if isinstance(payload, bytes):
                self._reply(status, payload, keep)
                return
            if self.transport is not None:
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                    b"Transfer-Encoding: chunked\r\n" + (b"" if keep else b"Connection: close\r\n") + b"\r\n"
                )
            async for frame in payload:
                if self.transport is not None:
                    self.transport.write(b"%x\r\n%b\r\n" % (len(frame), frame))
            if self.transport is not None:
                self.transport.write(b"0\r\n\r\n")
                if not keep:
                    self.transport.close()
        finally:
            self.busy = False
            self._pump()

    def _reply(self, status: int, payload: bytes, keep: bool) -> None:
        if self.transport is None:
            return
        reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 502: b"Bad Gateway"}.get(status, b"Error")
        self.transport.write(
            b"HTTP/1.1 %d %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%b\r\n%b"
            % (status, reason, len(payload), b"" if keep else b"Connection: close\r\n", payload)
        )
        if not keep:
            self.transport.close()


async def serve_raw(port: int) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    GATEWAY.start()
    server = await loop.create_server(lambda: RawHTTP(tasks), HOST, port, backlog=4096)
    try:
        await _until_terminated()
    finally:
        server.close()
        await GATEWAY.close()


async def _until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def serve(kind: str, port: int) -> None:
    """Entry point of a server subprocess (``--serve KIND --port PORT``)."""
    import uvloop

    if kind == "aiohttp":
        uvloop.run(serve_aiohttp(port))
    elif kind == "raw-protocol":
        uvloop.run(serve_raw(port))
    elif kind in ("uvicorn-raw", "uvicorn-starlette"):
        import uvicorn

        app = asgi_app if kind == "uvicorn-raw" else starlette_app()
        uvicorn.run(
            app,
            host=HOST,
            port=port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_level="warning",
            access_log=False,
            backlog=4096,
        )
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


# =============================================================== bench side


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    command: list[str] | None  # None: nginx itself (already running)
    static_path: str = STATIC_PATH
    stream_path: str = CHAT_PATH


def targets(only: set[str] | None) -> list[Target]:
    me = [sys.executable, str(Path(__file__).resolve()), "--serve"]
    granian = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", HOST, "--workers", "1"]
    granian += ["--runtime-threads", "1", "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
    granian += ["--working-dir", str(HERE), "bench_http_servers:asgi_app", "--port"]
    found = [
        Target("aiohttp", FIRST_PORT, [*me, "aiohttp", "--port", str(FIRST_PORT)]),
        Target("uvicorn-raw", FIRST_PORT + 1, [*me, "uvicorn-raw", "--port", str(FIRST_PORT + 1)]),
        Target("uvicorn-starlette", FIRST_PORT + 2, [*me, "uvicorn-starlette", "--port", str(FIRST_PORT + 2)]),
        Target("granian-raw", FIRST_PORT + 3, [*granian, str(FIRST_PORT + 3)]),
        Target("raw-protocol", FIRST_PORT + 4, [*me, "raw-protocol", "--port", str(FIRST_PORT + 4)]),
        Target("nginx-direct", UPSTREAM_PORT, None, CHAT_PATH, "/stream/v1/chat/completions"),
    ]
    return [t for t in found if only is None or t.name in only]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    requests: int
    non2xx: int
    socket_errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(out: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    requests = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and requests):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=float(p50.group(1)) * _UNITS[p50.group(2)],
        requests=int(requests.group(1)),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
    )


def run_wrk(url: str, script: Path, connections: int, threads: int, seconds: int) -> WrkResult:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse_wrk(done.stdout)


def lua_script(directory: Path, name: str, body: bytes) -> Path:
    path = directory / f"{name}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{body.decode()}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Authorization"] = "Bearer sk-bench"\n'
    )
    return path


def post(url: str, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status), bytes(response.read())


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc/PID/task/TID/children."""
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 256:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
    return found


def rss_mb(pid: int) -> float:
    total = 0
    for member in tree_pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def upstream_requests() -> int:
    """nginx's stub_status request counter (the status request itself counts too)."""
    with urllib.request.urlopen(UPSTREAM + "/nginx_status", timeout=5) as response:
        return int(response.read().decode().splitlines()[2].split()[2])


def check_answers(base: str, target: Target) -> None:
    """One request of each kind, answers checked, before any load."""
    import orjson

    status, raw = post(base + target.static_path, JSON_BODY)
    assert status == 200 and orjson.loads(raw)["object"] == "chat.completion", raw
    status, raw = post(base + CHAT_PATH, JSON_BODY)
    answer = orjson.loads(raw)
    assert status == 200 and answer["choices"][0]["message"]["content"] == ANSWER, raw
    status, raw = post(base + target.stream_path, STREAM_BODY)
    frames = [f.removeprefix(b"data: ") for f in raw.split(b"\n\n") if f.startswith(b"data: ")]
    assert status == 200 and frames[-1] == b"[DONE]", raw
    chunks = [orjson.loads(f) for f in frames[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == STREAM_ANSWER and chunks[-1]["usage"]["completion_tokens"] == 8, raw


@dataclass
class Server:
    target: Target
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        if self.target.command is None:
            return self
        if port_open(self.target.port):
            raise RuntimeError(f"port {self.target.port} is already in use")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.target.command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        url = f"http://{HOST}:{self.target.port}{self.target.static_path}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited with {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError):
                if post(url, JSON_BODY, timeout=1)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.target.name} did not answer within 30 s: {self.log_tail()}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        pids = tree_pids(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for pid in pids[1:]:  # a descendant that left the group or outlived its parent
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def rss(self) -> float | None:
        return rss_mb(self.proc.pid) if self.proc else None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def errors_logged(self) -> int:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace").count(ERROR_MARK)
        return 0


@dataclass
class Figures:
    static: list[float] = field(default_factory=list)
    proxy: list[float] = field(default_factory=list)
    stream: list[float] = field(default_factory=list)
    p50_c1: list[float] = field(default_factory=list)
    p50_c16: list[float] = field(default_factory=list)
    rss_idle: list[float] = field(default_factory=list)
    rss_after: list[float] = field(default_factory=list)
    requests: int = 0
    non2xx: int = 0
    socket_errors: int = 0
    server_errors: int = 0
    upstream_extra: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def measure(target: Target, figures: Figures, scripts: dict[str, Path], args: argparse.Namespace, log: Path) -> None:
    base = f"http://{HOST}:{target.port}"

    def load(path: str, script: str, connections: int = 16, threads: int = 2, upstream: bool = False) -> WrkResult:
        run_wrk(base + path, scripts[script], connections, threads, args.warmup)
        time.sleep(SETTLE_S)  # calls still in flight when wrk stopped reach nginx before the count
        before = upstream_requests() if upstream else 0
        result = run_wrk(base + path, scripts[script], connections, threads, args.duration)
        if upstream and target.command is not None:
            time.sleep(SETTLE_S)
            figures.upstream_extra.append(upstream_requests() - before - 1 - result.requests)
        figures.requests += result.requests
        figures.non2xx += result.non2xx
        figures.socket_errors += result.socket_errors
        return result

    with Server(target, log) as server:
        idle = server.rss()
        check_answers(base, target)
        figures.static.append(load(target.static_path, "json").rps)
        proxy = load(CHAT_PATH, "json", upstream=True)
        figures.proxy.append(proxy.rps)
        figures.p50_c16.append(proxy.p50_ms)
        figures.stream.append(load(target.stream_path, "stream", upstream=True).rps)
        figures.p50_c1.append(load(CHAT_PATH, "json", connections=1, threads=1).p50_ms)
        after = server.rss()
        if idle is not None and after is not None:
            figures.rss_idle.append(idle)
            figures.rss_after.append(after)
        server.stop()
        figures.server_errors += server.errors_logged()


def median(values: list[float], fmt: str) -> str:
    return format(statistics.median(values), fmt) if values else "-"


def report(all_figures: dict[str, Figures], args: argparse.Namespace) -> None:
    print(
        f"\nwrk -t2 -c16 -d{args.duration:g}s after a {args.warmup:g} s warm-up; p50 c1: -t1 -c1; "
        f"median of {args.runs} runs; {os.cpu_count()} cores shared by wrk, nginx and the server"
    )
    head = (
        f"{'candidate':<18} {'static r/s':>10} {'proxy r/s':>10} {'stream r/s':>10} "
        f"{'p50 c16 ms':>10} {'p50 c1 ms':>9} {'RSS idle/after MB':>18}"
    )
    print(head)
    print("-" * len(head))
    for name, f in all_figures.items():
        rss = f"{median(f.rss_idle, '.1f')}/{median(f.rss_after, '.1f')}" if f.rss_idle else "-"
        print(
            f"{name:<18} {median(f.static, '.0f'):>10} {median(f.proxy, '.0f'):>10} {median(f.stream, '.0f'):>10} "
            f"{median(f.p50_c16, '.3f'):>10} {median(f.p50_c1, '.3f'):>9} {rss:>18}"
        )
    print(
        "\nchecks (all runs): wrk requests, non-2xx, socket errors, server-logged errors; upstream calls nginx"
        " counted beyond wrk's completed requests per proxy/stream run (0..16 = requests in flight when wrk stops)"
    )
    for name, f in all_figures.items():
        extra = f"{min(f.upstream_extra)}..{max(f.upstream_extra)}" if f.upstream_extra else "-"
        print(
            f"  {name:<18} {f.requests:>9} {f.non2xx:>5} {f.socket_errors:>5} {f.server_errors:>5}  {extra}"
            + (f"  FAILED: {'; '.join(f.failures)}" if f.failures else "")
        )
    print("\nspread (min..max over runs): static, proxy, stream req/s")
    for name, f in all_figures.items():
        spread = [f"{min(v):.0f}..{max(v):.0f}" if v else "-" for v in (f.static, f.proxy, f.stream)]
        print(f"  {name:<18} {spread[0]:>15} {spread[1]:>13} {spread[2]:>13}")


def rotated(items: list[Target], by: int) -> Iterator[Target]:
    for i in range(len(items)):
        yield items[(i + by) % len(items)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured wrk run")
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of the warm-up wrk run before each")
    parser.add_argument("--only", help="comma-separated candidate names")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    if port_open(UPSTREAM_PORT):
        raise SystemExit(f"port {UPSTREAM_PORT} is already in use: stop that upstream first")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that every `finally` below runs
    sys.path.insert(0, str(HERE))
    from bench_client import Upstream

    chosen = targets(set(args.only.split(",")) if args.only else None)
    all_figures = {t.name: Figures() for t in chosen}
    with tempfile.TemporaryDirectory(prefix="llmrelay-http-bench-") as tmp, Upstream() as upstream:
        if upstream.kind != "nginx":
            print(f"warning: upstream is {upstream.kind}")
        scripts = {
            "json": lua_script(Path(tmp), "json", JSON_BODY),
            "stream": lua_script(Path(tmp), "stream", STREAM_BODY),
        }
        for run in range(args.runs):
            for target in rotated(chosen, run):
                print(f"run {run + 1}/{args.runs}: {target.name}", file=sys.stderr, flush=True)
                log = Path(tmp) / f"{target.name}-{run}.log"
                try:
                    measure(target, all_figures[target.name], scripts, args, log)
                except (RuntimeError, AssertionError, OSError, subprocess.SubprocessError) as exc:
                    all_figures[target.name].failures.append(f"run {run + 1}: {type(exc).__name__}: {exc}"[:300])
                    print(f"  failed: {exc}", file=sys.stderr, flush=True)
                    with contextlib.suppress(OSError):
                        print(log.read_text(errors="replace")[-1500:], file=sys.stderr)
    report(all_figures, args)


if __name__ == "__main__":
    main()
