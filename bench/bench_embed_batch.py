"""Embedding micro-batching: 1,000 concurrent single-text embed calls, batching off vs on.

    python bench/bench_embed_batch.py [--calls 1000] [--runs 5] [--window-ms 5] [--think-ms 0,20]
                                      [--max-inputs 2048]

The nginx upstream of bench_client.py answers every embeddings request with one fixed
vector, which cannot answer a batch; so this script starts its own: itself, with
``--serve PORT``, in a subprocess (an aiohttp server on 127.0.0.1 that answers one vector
per input text, derived from the text, after ``--think-ms`` of simulated model time, and
counts the requests it gets).

For each think time, ``--calls`` concurrent ``AsyncClient.embed`` calls of one text each go
to a model group of one OpenAI-kind deployment (``max_embed_inputs`` set to
``--max-inputs``), with ``embed_batch_ms`` 0 (off) and ``--window-ms`` (on), interleaved.
Reported, as the median of ``--runs``: upstream requests, wall time, and each caller's
latency p50 / p99. Every caller's vector is checked against its own text.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

DIMS = 8


def vector(text: str) -> list[float]:
    """The upstream's answer for ``text`` (cheap, and different for every text)."""
    digest = hashlib.blake2b(text.encode(), digest_size=DIMS).digest()
    return [b / 255 for b in digest]


# ---- the upstream (``--serve PORT``) --------------------------------------------------------


def serve(port: int, think_s: float) -> None:
    from aiohttp import web

    calls = {"requests": 0, "inputs": 0}

    async def embeddings(request: web.Request) -> web.Response:
        payload = await request.json()
        texts = payload["input"]
        calls["requests"] += 1
        calls["inputs"] += len(texts)
        if think_s:
            await asyncio.sleep(think_s)
        data = [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(texts)]
        usage = {"prompt_tokens": sum(len(t) // 4 + 1 for t in texts), "total_tokens": 0}
        return web.json_response({"object": "list", "data": data, "model": "bench-embed", "usage": usage})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(calls)

    async def reset(_: web.Request) -> web.Response:
        calls.update(requests=0, inputs=0)
        return web.json_response(calls)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/stats", stats)
    app.router.add_post("/stats/reset", reset)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


class Upstream:
    """This script with ``--serve`` in a subprocess, so that the server's work is not timed."""

    def __init__(self, think_ms: float) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.think_ms = think_ms
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Upstream:
        cmd = [sys.executable, __file__, "--serve", str(self.port), "--think-ms", str(self.think_ms)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the upstream did not start")
        for _ in range(200):  # 10 s at most
            try:
                self.stats()
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the upstream does not answer")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as resp:
            data: dict[str, int] = json.load(resp)
            return data

    def reset(self) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/stats/reset", method="POST")
        urllib.request.urlopen(req, timeout=5).close()


# ---- the client side ------------------------------------------------------------------------


@dataclass
class Run:
    requests: int
    wall_s: float
    p50_ms: float
    p99_ms: float


async def one_run(upstream: Upstream, calls: int, window_ms: float, max_inputs: int) -> tuple[float, list[float]]:
    from llmrelay import AsyncClient
    from llmrelay._http1 import Http1Transport
    from llmrelay.providers.base import ProviderConfig
    from llmrelay.providers.openai.provider import OpenAIProvider
    from llmrelay.router import Deployment, ModelGroup, RoutingSettings

    transport = Http1Transport()
    config = ProviderConfig("up", "openai", base_url=f"http://127.0.0.1:{upstream.port}/v1", api_key="sk-bench-1234")
    provider = OpenAIProvider(config, transport)
    provider.max_embed_inputs = max_inputs
    group = ModelGroup("emb", [Deployment("up", "bench-embed")], embed_batch_ms=window_ms)
    texts = [f"sentence number {i} of the benchmark" for i in range(calls)]
    latencies: list[float] = []

    async def embed(client: AsyncClient, text: str) -> None:
        start = time.perf_counter()
        answer = await client.embed("emb", text)
        latencies.append(time.perf_counter() - start)
        if answer.vectors != [vector(text)]:
            raise SystemExit(f"wrong vector for {text!r}")

    async with AsyncClient(env={}, providers=[provider], models=[group], routing=RoutingSettings()) as client:
        await asyncio.gather(*(embed(client, f"warm-up {i}") for i in range(20)))  # connections, imports
        latencies.clear()
        await asyncio.to_thread(upstream.reset)
        start = time.perf_counter()
        await asyncio.gather(*(embed(client, t) for t in texts))
        wall = time.perf_counter() - start
    await transport.aclose()
    return wall, latencies


def measure(upstream: Upstream, calls: int, window_ms: float, max_inputs: int) -> Run:
    wall, latencies = asyncio.run(one_run(upstream, calls, window_ms, max_inputs))
    ordered = sorted(latencies)
    p99 = ordered[min(int(0.99 * len(ordered)), len(ordered) - 1)]
    return Run(upstream.stats()["requests"], wall, statistics.median(ordered) * 1000, p99 * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window-ms", type=float, default=5.0)
    parser.add_argument("--think-ms", default="0,20", help="comma-separated simulated upstream times")
    parser.add_argument("--max-inputs", type=int, default=2048, help="max_embed_inputs (OpenAI: 2048)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, float(args.think_ms) / 1000)
        return
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(
        f"{args.calls} concurrent single-text embed calls, one deployment (max_embed_inputs {args.max_inputs}); "
        f"median of {args.runs} runs\n"
    )
    print(f"{'think ms':>8} {'batching':<12} {'upstream calls':>14} {'wall ms':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for think in (float(t) for t in args.think_ms.split(",")):
        with Upstream(think) as upstream:
            rows: dict[float, list[Run]] = {0.0: [], args.window_ms: []}
            for _ in range(args.runs):  # interleaved, so drift hits both sides alike
                for window in rows:
                    rows[window].append(measure(upstream, args.calls, window, args.max_inputs))
        for window, runs in rows.items():
            label = "off" if window == 0 else f"on ({window:g} ms)"
            print(
                f"{think:>8g} {label:<12} {statistics.median(r.requests for r in runs):>14g} "
                f"{statistics.median(r.wall_s for r in runs) * 1000:>9.1f} "
                f"{statistics.median(r.p50_ms for r in runs):>8.1f} {statistics.median(r.p99_ms for r in runs):>8.1f}"
            )


if __name__ == "__main__":
    main()
