"""The gateway's own CPU per request, without sockets: the ASGI app called in process,
the upstream a ``MockTransport`` answering at once. What is left is the gateway, the
router and the codecs, measured steadier than through wrk.

    python bench/bench_gateway_inprocess.py [--requests 3000] [--runs 6] [--compare SRC]

Each tree (this checkout's ``src``, and ``--compare SRC`` another checkout's) runs in a
subprocess of its own, the trees taking turns run by run; printed: the median CPU time
of the event loop's thread (``time.thread_time``: not the ledger's writer thread) per
JSON request and per streamed request (20 chunks), and with ``--compare`` the ratio of
the two trees. The gateway runs as deployed minus its sockets: master key, metrics, a
store in memory and its usage ledger, no access log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KEY = "sk-bench-master"
QUESTION = {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello!"}],
            "max_tokens": 64, "temperature": 0.2}  # fmt: skip
ANSWER = {
    "id": "chatcmpl-static", "object": "chat.completion", "created": 1732492800, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}  # fmt: skip


def sse_answer() -> bytes:
    words = ("Hello! How can I help you today? I am here and ready to answer " * 2).split()[:19]
    head = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    chunks = [{**head, "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]} for w in words]
    chunks.append({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 12, "completion_tokens": 19, "total_tokens": 31}})  # fmt: skip
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


async def inner(requests: int) -> dict[str, float]:
    """One tree: the CPU time per request of each kind (run in a subprocess)."""
    from llmrelay import AsyncClient, ModelGroup
    from llmrelay._http import HTTPResponse
    from llmrelay.gateway import Gateway
    from llmrelay.store import Store
    from llmrelay.testing import MockTransport

    streamed = sse_answer()
    answer = json.dumps(ANSWER).encode()

    def upstream(request: Any) -> HTTPResponse:
        transport.requests.clear()  # keep no history: a benchmark, not a test
        if b'"stream":true' in (request.body or b"").replace(b" ", b""):
            return HTTPResponse(200, {"content-type": "text/event-stream"}, streamed)
        return HTTPResponse(200, {"content-type": "application/json"}, answer)

    transport = MockTransport(upstream, chunk_size=4096)
    env = {"OPENAI_API_KEY": "sk-up", "OPENAI_BASE_URL": "http://upstream.invalid/v1"}
    client = AsyncClient(env=env, transport=transport, models=[ModelGroup("g", ["openai/gpt-4o-mini"])])
    app = Gateway(client, master_key=KEY, store=Store.open("sqlite://"), access_log=None)
    bodies = {
        "json": json.dumps({**QUESTION, "model": "g"}).encode(),
        "stream": json.dumps({**QUESTION, "model": "g", "stream": True}).encode(),
    }
    await lifespan(app, "startup")
    out: dict[str, float] = {}
    for kind, body in bodies.items():
        for _ in range(200):  # warm-up: imports, first uses, caches
            await call(app, body)
        start = time.thread_time()  # the event loop's thread: not the ledger's writer thread
        for _ in range(requests):
            status = await call(app, body)
            assert status == 200, status
        out[kind] = (time.thread_time() - start) / requests * 1e6
    await lifespan(app, "shutdown")
    return out


async def lifespan(app: Any, phase: str) -> None:
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": f"lifespan.{phase}"}
        await asyncio.sleep(3600)
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"].endswith(".complete"):
            task.cancel()

    task = asyncio.ensure_future(app({"type": "lifespan"}, receive, send))
    try:
        await asyncio.wait_for(task, 10)
    except asyncio.CancelledError:
        pass


async def call(app: Any, body: bytes) -> int:
    scope = {
        "type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"authorization", f"Bearer {KEY}".encode())],
        "http_version": "1.1", "scheme": "http",
    }  # fmt: skip
    status = 0
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=6, help="an even number: each tree goes first as often")
    parser.add_argument("--compare", type=Path, default=None, metavar="SRC", help="another llmrelay src folder")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(asyncio.run(inner(args.requests))))
        return
    trees: list[tuple[str, Path]] = [("this", HERE.parent / "src")]
    if args.compare is not None:
        if not (args.compare / "llmrelay" / "__init__.py").exists():
            raise SystemExit(f"{args.compare} holds no llmrelay package (give its src folder)")
        trees.append((str(args.compare), args.compare))
    results: dict[str, dict[str, list[float]]] = {name: {"json": [], "stream": []} for name, _ in trees}
    for run in range(args.runs):
        order = trees if run % 2 == 0 else trees[::-1]
        for name, src in order:
            env = {**os.environ, "PYTHONPATH": str(src.resolve()), "LLMRELAY_LOG_LEVEL": "WARNING"}
            command = [sys.executable, __file__, "--inner", "--requests", str(args.requests)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=True)
            for kind, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
                results[name][kind].append(value)
    print(f"in process, no sockets: median of {args.runs} runs of {args.requests} requests each")
    med = {name: {k: statistics.median(v) for k, v in rows.items()} for name, rows in results.items()}
    for name, _ in trees:
        print(f"[{name}] CPU per JSON request {med[name]['json']:.1f} us, per stream {med[name]['stream']:.1f} us")
    if len(trees) == 2:
        this, other = med["this"], med[trees[1][0]]
        print(
            f"this / compared: JSON {this['json'] / other['json']:.3f}, stream {this['stream'] / other['stream']:.3f}"
        )


if __name__ == "__main__":
    main()
