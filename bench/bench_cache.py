"""The response cache and in-flight coalescing, measured.

    python bench/bench_cache.py [--duration 5] [--runs 3]

1. Cache hits at the gateway: ``llmrelay serve`` (one worker, as bench_gateway.py
   runs it) with a group ``cached`` (``cache: true``) and a group ``json`` (no
   cache), both served by nginx (../shared/upstream/nginx.conf) on 127.0.0.1:18080.
   wrk sends the same request over and over, so every request but the first to
   ``cached`` is a hit. Reported, median of ``--runs``: req/s at 16 connections
   and p50 at 1 connection for hits, for uncached calls through the gateway,
   and for nginx served directly (same run).
2. Coalescing in the library: 50 rounds of 100 concurrent identical calls to an
   upstream that takes 20 ms per answer (an aiohttp server in this process
   counting its calls), with ``coalesce`` off and on: upstream calls and wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_client import Upstream  # noqa: E402
from bench_gateway import body_for, serving  # noqa: E402
from bench_http_servers import JSON_BODY, lua_script, run_wrk  # noqa: E402

PORT = 18210
CONFIG = """\
providers:
  - {name: nginx, kind: openai, base_url: "http://127.0.0.1:18080/v1", api_key: sk-up}
models:
  - {name: json, deployments: [{provider: nginx, model: gpt-4o-mini}]}
  - {name: cached, deployments: [{provider: nginx, model: gpt-4o-mini}], cache: true}
auth: {master_key: sk-bench}
"""


def gateway_hits(duration: int, runs: int) -> None:
    with Upstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        if upstream.kind != "nginx":
            raise SystemExit("this benchmark needs nginx (apt-get install nginx)")
        folder = Path(tmp)
        config = folder / "llmrelay.yaml"
        config.write_text(CONFIG)
        scripts = {
            "hit": lua_script(folder, "hit", body_for(JSON_BODY, "cached")),
            "uncached": lua_script(folder, "uncached", body_for(JSON_BODY, "json")),
            "direct": lua_script(folder, "direct", JSON_BODY),
        }
        env = {"LLMRELAY_LOG_LEVEL": "INFO", "LLMRELAY_STORE_URL": f"sqlite:///{folder / 'b.db'}"}
        with serving(config, PORT, env):
            via = f"http://127.0.0.1:{PORT}/v1/chat/completions"
            urls = {"hit": via, "uncached": via, "direct": "http://127.0.0.1:18080/v1/chat/completions"}
            rps: dict[str, list[float]] = {k: [] for k in urls}
            p50: dict[str, list[float]] = {k: [] for k in urls}
            bad = 0
            for _ in range(runs):
                for kind, url in urls.items():
                    run_wrk(url, scripts[kind], 16, 2, 1)  # warm-up (and the one miss)
                    many = run_wrk(url, scripts[kind], 16, 2, duration)
                    one = run_wrk(url, scripts[kind], 1, 1, duration)
                    rps[kind].append(many.rps)
                    p50[kind].append(one.p50_ms)
                    bad += many.non2xx + many.socket_errors + one.non2xx + one.socket_errors
    print(f"gateway cache hits: 1 worker, median of {runs} runs of {duration} s; wrk errors/non-2xx: {bad}")
    for kind, label in (("hit", "cache hit"), ("uncached", "uncached, via nginx"), ("direct", "nginx direct")):
        r, p = statistics.median(rps[kind]), statistics.median(p50[kind])
        print(f"  {label:<22} {r:>9,.0f} req/s at 16 connections   p50 {p:.3f} ms at 1")


async def coalescing(rounds: int, callers: int, delay_s: float) -> None:
    from aiohttp import web

    from llmrelay import AsyncClient, ModelGroup
    from llmrelay.providers.base import ProviderConfig
    from llmrelay.providers.openai.provider import OpenAIProvider

    calls = [0]
    body = {
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }  # fmt: skip

    async def answer(request: web.Request) -> web.Response:
        calls[0] += 1
        await asyncio.sleep(delay_s)
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = ProviderConfig(name="up", kind="openai", base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-b")
    results: dict[bool, tuple[int, float]] = {}
    try:
        for on in (False, True):
            calls[0] = 0
            group = ModelGroup("g", [{"provider": "up", "model": "m"}], coalesce=on)
            async with AsyncClient(env={}, providers=[OpenAIProvider(config)], models=[group]) as client:
                begun = time.perf_counter()
                for n in range(rounds):
                    ask: list[dict[str, Any]] = [{"role": "user", "content": f"question {n}"}]
                    await asyncio.gather(*(client.chat("g", ask) for _ in range(callers)))
                results[on] = calls[0], time.perf_counter() - begun
    finally:
        from llmrelay._http1 import default_transport

        await default_transport().aclose()  # the providers given to the clients share it
        await runner.cleanup()
    total = rounds * callers
    delay_ms = delay_s * 1000
    print(f"coalescing: {rounds} rounds of {callers} identical concurrent calls ({total:,}), upstream {delay_ms:g} ms")
    for on in (False, True):
        n, wall = results[on]
        print(f"  coalesce {'on ' if on else 'off'}  {n:>6,} upstream calls   {wall:6.2f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-gateway", action="store_true", help="only the coalescing part")
    args = parser.parse_args()
    if not args.skip_gateway:
        gateway_hits(args.duration, args.runs)
    asyncio.run(coalescing(50, 100, 0.02))


if __name__ == "__main__":
    main()
