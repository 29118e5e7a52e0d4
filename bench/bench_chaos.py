"""Chaos benchmark: does the router absorb what misbehaving deployments do?

    python bench/bench_chaos.py [--requests 5000] [--callers 200] [--runs 3] [--fail 0.3]

Starts ``chaos_upstream.py`` with three OpenAI-compatible deployments on
127.0.0.1: two fail ``--fail`` of the time (5xx, 429 with retry-after, reset,
hang, slow first byte, stream cut mid-way, in-stream error event), one is
healthy. Then ``--callers`` concurrent callers send ``--requests`` requests,
half of them streams, each with a unique prompt whose exact answer is known,
in three scenarios (each run starts cold: new client, new health):

1. ``healthy alone``: straight to the healthy deployment (the latency reference);
2. ``router``: a model group of the three, with retries, timeouts, breakers,
   health-based balancing and stream failover;
3. ``router+resume``: the same group with ``stream_resume``, its deployments of
   kind ``vllm`` (the upstream continues a cut answer as vLLM does): a stream cut
   after its first token goes on from where it stopped on another deployment;
4. ``router off``: the same group with ``RoutingSettings.passthrough()``
   (round robin, one attempt, no router timeouts): the baseline.

Reported per scenario, median of ``--runs``: client-visible failures (errors,
and streams interrupted after their first token, which only ``stream_resume``
continues), wrong or duplicated texts (every text is compared whole with the
answer it must be), resumed streams, latency p50/p99/max, and upstream attempts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from llmrelay import AsyncClient, errors  # noqa: E402
from llmrelay._http1 import Http1Transport  # noqa: E402
from llmrelay.providers.base import ProviderConfig  # noqa: E402
from llmrelay.providers.openai.provider import OpenAIProvider  # noqa: E402
from llmrelay.resilience import BreakerConfig  # noqa: E402
from llmrelay.router import Deployment, ModelGroup, RoutingSettings  # noqa: E402
from llmrelay.types import Finish, TextDelta  # noqa: E402

ROUTER = RoutingSettings(
    strategy="health",
    retries=2,
    timeout_s=1.0,  # one attempt, to the first token for streams
    deadline_s=20.0,
    stream_idle_s=1.0,
    backoff_s=0.02,
    backoff_max_s=0.2,
    circuit_breaker=BreakerConfig(failure_threshold=5, recovery_s=5.0, failure_rate=0.2, rate_min_calls=20),
)


def expected(prompt: str) -> str:
    return f"reply to {prompt}: " + " ".join(f"w{i}" for i in range(20))


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    interrupted: int = 0
    resumed: int = 0
    wrong: int = 0
    wall_s: float = 0.0

    def fail(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1

    @property
    def failures(self) -> int:
        return sum(self.errors.values()) + self.interrupted


async def one(client: AsyncClient, model: str, i: int, stream: bool, tally: Tally) -> None:
    prompt = f"req-{i}"
    messages = [{"role": "user", "content": prompt}]
    start = time.perf_counter()
    try:
        if stream:
            shown = ""
            final = None
            async for event in client.stream(model, messages, raise_errors=True):
                if isinstance(event, TextDelta):
                    shown += event.text
                elif isinstance(event, Finish):
                    final = event.response.content
                    route = event.response.route
                    tally.resumed += bool(route is not None and route.resumed)
            if shown != expected(prompt) or final != shown:
                tally.wrong += 1
        else:
            r = await client.chat(model, messages)
            if r.content != expected(prompt):
                tally.wrong += 1
    except errors.StreamInterrupted as exc:
        tally.interrupted += 1
        partial = exc.partial.content if exc.partial else ""
        if not expected(prompt).startswith(partial):
            tally.wrong += 1  # text shown before the break must be a clean prefix, never repeated
    except errors.NoHealthyDeployment as exc:
        tally.fail(f"NoHealthyDeployment({type(exc.last_error).__name__})")
    except errors.LLMError as exc:
        tally.fail(type(exc).__name__)
    tally.latencies.append(time.perf_counter() - start)


async def scenario(name: str, ports: list[int], requests: int, callers: int) -> Tally:
    transport = Http1Transport()
    kind = "vllm" if name == "router+resume" else "openai"
    providers = [
        OpenAIProvider(
            ProviderConfig(f"d{k}", kind, base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-chaos"), transport
        )
        for k, port in enumerate(ports)
    ]
    group = ModelGroup("chaos", [Deployment(p.name, "chaos") for p in providers], stream_resume=name == "router+resume")
    if name == "healthy alone":
        client, model = AsyncClient(env={}, providers=providers, routing=RoutingSettings.passthrough()), "d2/chaos"
    elif name.startswith("router") and name != "router off":
        client, model = AsyncClient(env={}, providers=providers, models=[group], routing=ROUTER), "chaos"
    else:
        client, model = (
            AsyncClient(env={}, providers=providers, models=[group], routing=RoutingSettings.passthrough()),
            "chaos",
        )
    tally = Tally()
    queue = iter(range(requests))

    async def caller() -> None:
        for i in queue:
            await one(client, model, i, i % 2 == 1, tally)

    start = time.perf_counter()
    async with client:
        await asyncio.gather(*(caller() for _ in range(callers)))
    await transport.aclose()
    tally.wall_s = time.perf_counter() - start
    return tally


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def upstream_stats(port: int) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as resp:
        data: dict[str, dict[str, int]] = json.load(resp)
        return data


def upstream_calls(stats: dict[str, dict[str, int]]) -> int:
    """Requests the upstream's ports took, whatever became of them."""
    return sum(sum(counts.values()) for counts in stats.values())


@contextmanager
def chaos_upstream(ports: list[int], *options: str) -> Iterator[None]:
    """``chaos_upstream.py`` on ``ports`` with ``options``, once it is ready, until the block ends."""
    command = [sys.executable, str(HERE / "chaos_upstream.py"), "--ports", ",".join(map(str, ports)), *options]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("chaos upstream did not start")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def reset_stats(port: int) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/stats/reset", method="POST")
    urllib.request.urlopen(req, timeout=5).close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fail", type=float, default=0.3)
    parser.add_argument("--hang-s", type=float, default=3.0)
    parser.add_argument("--verbose", action="store_true", help="print each run's upstream counters")
    parser.add_argument("--scenarios", default="healthy alone,router,router+resume,router off", help="comma-separated")
    args = parser.parse_args()
    verbose = args.verbose

    ports = free_ports(3)
    with chaos_upstream(ports, "--fail", f"{args.fail},{args.fail},0", "--seed", "7", "--hang-s", str(args.hang_s)):
        print(
            f"{args.requests} requests ({args.requests // 2} streams), {args.callers} callers; deployments d0 and d1 "
            f"fail {args.fail:.0%} of the time, d2 is healthy; median of {args.runs} runs\n"
        )
        header = f"{'scenario':<14} {'failures':>8} {'(interrupted)':>13} {'wrong':>6} {'resumed':>7} {'p50 ms':>8} "
        print(header + f"{'p99 ms':>8} {'max ms':>8} {'upstream calls':>14} {'wall s':>7}  errors")
        p99s: dict[str, float] = {}
        for name in args.scenarios.split(","):
            runs = []
            for _ in range(args.runs):
                reset_stats(ports[0])
                tally = asyncio.run(scenario(name, ports, args.requests, args.callers))
                stats = upstream_stats(ports[0])
                calls = upstream_calls(stats)
                runs.append((tally, calls))
                if verbose:
                    print("   ", name, {port: dict(v) for port, v in stats.items()})
            runs.sort(key=lambda r: pct(r[0].latencies, 0.99))
            tally, calls = runs[len(runs) // 2]
            p99s[name] = statistics.median(pct(r[0].latencies, 0.99) for r in runs)
            failures = statistics.median(r[0].failures for r in runs)
            interrupted = statistics.median(r[0].interrupted for r in runs)
            wrong = max(r[0].wrong for r in runs)
            resumed = statistics.median(r[0].resumed for r in runs)
            print(
                f"{name:<14} {failures:>8g} {interrupted:>13g} {wrong:>6} {resumed:>7g} "
                f"{pct(tally.latencies, 0.5):>8.1f} {p99s[name]:>8.1f} {pct(tally.latencies, 1.0):>8.1f} "
                f"{calls:>14} {tally.wall_s:>7.2f}  "
                f"{tally.errors or '-'}"
            )
        if "router" in p99s and "healthy alone" in p99s:
            print(f"\nrouter p99 / healthy-alone p99 = {p99s['router'] / p99s['healthy alone']:.2f}x (goal <= 3x)")


if __name__ == "__main__":
    main()
