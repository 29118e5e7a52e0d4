"""Hedged requests against tail latency: p99 with and without ``hedge``, and what it
costs in upstream calls.

    python bench/bench_hedge.py [--requests 2000] [--callers 20] [--runs 3] [--slow 0.1] [--slow-s 0.4]

Starts ``chaos_upstream.py`` with two OpenAI-compatible deployments on 127.0.0.1:
``d0`` is slow to its first byte ``--slow`` of the time (``--slow-s`` late, then a
correct answer), ``d1`` never is. A group of the two (round robin) gets
``--requests`` requests from ``--callers`` concurrent callers, half of them streams,
in three settings: no hedge, ``hedge: {after_ms: 50}`` and ``hedge: {after_ms:
p95}``. Each run starts cold (new client). Printed per setting, median of
``--runs``: p50, p95, p99 and max latency (to the whole answer), the answers that
were hedged, and the extra upstream calls in percent of the requests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from bench_chaos import chaos_upstream, expected, free_ports, pct, reset_stats, upstream_calls, upstream_stats  # noqa: E402

from llmrelay import AsyncClient  # noqa: E402
from llmrelay._http1 import Http1Transport  # noqa: E402
from llmrelay.providers.base import ProviderConfig  # noqa: E402
from llmrelay.providers.openai.provider import OpenAIProvider  # noqa: E402
from llmrelay.router import Deployment, ModelGroup, RoutingSettings  # noqa: E402
from llmrelay.types import Finish, TextDelta  # noqa: E402

ROUTING = RoutingSettings(strategy="round_robin", retries=2, timeout_s=5.0, deadline_s=20.0, cooldowns=False)
SETTINGS: dict[str, dict[str, Any] | None] = {
    "no hedge": None,
    "after 50 ms": {"after_ms": 50},
    "after p95": {"after_ms": "p95"},
}


async def run(ports: list[int], hedge: dict[str, Any] | None, requests: int, callers: int) -> dict[str, Any]:
    transport = Http1Transport()
    providers = [
        OpenAIProvider(
            ProviderConfig(f"d{k}", "openai", base_url=f"http://127.0.0.1:{p}/v1", api_key="sk-x"), transport
        )
        for k, p in enumerate(ports)
    ]
    group = ModelGroup("g", [Deployment(p.name, "chaos") for p in providers], hedge=hedge)
    latencies: list[float] = []
    hedged = wrong = 0
    queue = iter(range(requests))

    async def one(client: AsyncClient, i: int) -> None:
        nonlocal hedged, wrong
        messages = [{"role": "user", "content": f"req-{i}"}]
        begun = time.perf_counter()
        if i % 2:
            text, route = "", None
            async for event in client.stream("g", messages):
                if isinstance(event, TextDelta):
                    text += event.text
                elif isinstance(event, Finish):
                    route = event.response.route
        else:
            answer = await client.chat("g", messages)
            text, route = answer.content, answer.route
        latencies.append(time.perf_counter() - begun)
        wrong += text != expected(f"req-{i}")
        hedged += bool(route is not None and route.hedged)

    async def caller(client: AsyncClient) -> None:
        for i in queue:
            await one(client, i)

    async with AsyncClient(env={}, providers=providers, models=[group], routing=ROUTING) as client:
        await asyncio.gather(*(caller(client) for _ in range(callers)))
    await transport.aclose()
    return {"latencies": latencies, "hedged": hedged, "wrong": wrong}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slow", type=float, default=0.1, help="how often d0 is slow to its first byte")
    parser.add_argument("--slow-s", type=float, default=0.4)
    args = parser.parse_args()
    ports = free_ports(2)
    options = ("--fail", f"{args.slow},0", "--faults", "slow", "--slow-s", str(args.slow_s), "--seed", "3")
    with chaos_upstream(ports, *options):
        print(
            f"{args.requests} requests (half streams), {args.callers} callers, group of d0 (slow by {args.slow_s:g} s "
            f"{args.slow:.0%} of the time) and d1; median of {args.runs} runs\n"
        )
        print(
            f"{'setting':<12} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'hedged':>7} {'extra calls':>11}"
        )
        for name, hedge in SETTINGS.items():
            rows = []
            for _ in range(args.runs):
                reset_stats(ports[0])
                result = asyncio.run(run(ports, hedge, args.requests, args.callers))
                calls = upstream_calls(upstream_stats(ports[0]))
                if result["wrong"]:
                    raise SystemExit(f"{name}: {result['wrong']} wrong answers")
                rows.append((result, calls))
            lat = [r[0]["latencies"] for r in rows]
            med = {q: statistics.median(pct(values, q) for values in lat) for q in (0.5, 0.95, 0.99, 1.0)}
            hedged = statistics.median(r[0]["hedged"] for r in rows)
            extra = statistics.median((calls - args.requests) / args.requests * 100 for _, calls in rows)
            print(
                f"{name:<12} {med[0.5]:>8.1f} {med[0.95]:>8.1f} {med[0.99]:>8.1f} {med[1.0]:>8.1f} "
                f"{hedged:>7g} {extra:>10.1f}%"
            )


if __name__ == "__main__":
    main()
