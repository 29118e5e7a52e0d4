"""What a gateway killed under load (SIGKILL) leaves in its usage ledger.

    python bench/bench_crash.py [--kills 5] [--clients 16] [--answers 2000] [--state redis|memory]

Starts the zero-think-time upstream (nginx, or the stand-in; bench_client.py), then
``--kills`` times: ``llmrelay serve`` (one worker, master key, the ledger in a fresh
SQLite store), ``--clients`` clients sending chat completions as fast as it answers,
a SIGKILL once at least ``--answers`` answers are in, and, with ``--state redis``, a ledger
writer that writes what the dead gateway left in Redis (as the next gateway to start
would). Prints, per kill: the answers clients received complete, the ledger's rows
for them, those missing, and the rows of requests whose answers never arrived
complete (in flight at the kill).

With Redis state a record is in Redis before its answer's last byte leaves, so
"missing" must be 0. With state in memory the records of the last moments (at most
the ledger's ``interval_s``, 0.5 s, of answers) are lost: this measures how many.
Needs Redis on 127.0.0.1:6379 for ``--state redis`` (``LLMRELAY_TEST_REDIS_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
import uuid
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_client import PORT, Upstream  # noqa: E402

REDIS_URL = os.environ.get("LLMRELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MASTER = "sk-crash-bench"
BODY = {"model": "smart", "messages": [{"role": "user", "content": "Hi"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(folder: Path, upstream: str, prefix: str | None) -> Path:
    path = folder / "llmrelay.yaml"
    path.write_text(
        f"providers:\n  - {{name: up, kind: openai, base_url: '{upstream}/v1', api_key: sk-up}}\n"
        "models:\n  - {name: smart, deployments: [{provider: up, model: gpt-4o-mini}]}\n"
        + (f"state: {{backend: redis, url: '{REDIS_URL}', prefix: '{prefix}'}}\n" if prefix else "")
        + f"store: {{url: 'sqlite:///{folder / 'gateway.db'}'}}\nauth: {{master_key: {MASTER}}}\n"
    )
    return path


async def one_kill(upstream: str, clients: int, answers: int, prefix: str | None) -> tuple[int, int, int, int]:
    """(answers completed, their rows in the ledger, missing, rows of unfinished requests)."""
    folder = Path(tempfile.mkdtemp(prefix="llmrelay-crash-"))
    port = free_port()
    env = {**os.environ, "LLMRELAY_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmrelay", "serve", "--config", str(config(folder, upstream, prefix)),
        "--port", str(port), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    completed: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for _ in range(300):  # up to 30 s to start
            try:
                async with http.get(f"http://127.0.0.1:{port}/health/live") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)

        async def client(worker: int) -> None:
            for n in range(100_000):  # ended by the kill
                rid = f"w{worker}-{n}"
                headers = {"authorization": f"Bearer {MASTER}", "x-request-id": rid}
                try:
                    async with http.post(url, json=BODY, headers=headers) as r:
                        await r.json()
                        if r.status == 200:
                            completed.append(rid)
                except (aiohttp.ClientError, ValueError, TimeoutError):
                    return

        load = [asyncio.create_task(client(w)) for w in range(clients)]
        for _ in range(1200):  # at most 60 s
            if len(completed) >= answers:
                break
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*load), 30)
    await proc.wait()
    recorded = await _written(folder, prefix)
    done = set(completed)
    return len(done), len(done & recorded), len(done - recorded), len(recorded - done)


async def _written(folder: Path, prefix: str | None) -> set[str]:
    """The request ids in the ledger, once what the dead gateway left in Redis is written."""
    from llmrelay.store import Store, UsageQuery

    store = Store.open(f"sqlite:///{folder / 'gateway.db'}")
    try:
        if prefix is not None:
            import redis.asyncio as aioredis

            from llmrelay.gateway.ledger import Ledger, RedisQueue

            client = aioredis.Redis.from_url(REDIS_URL)
            try:
                await Ledger(store, RedisQueue(client, prefix, claim_idle_s=0)).flush()
                keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()
        return {row.request_id for row in store.usage(UsageQuery(limit=1_000_000))}
    finally:
        store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--answers", type=int, default=2000, help="answers in before the kill")
    parser.add_argument("--state", choices=("redis", "memory"), default="redis")
    args = parser.parse_args()
    with Upstream() as upstream:
        base = f"http://127.0.0.1:{PORT}"
        print(f"SIGKILL under load, state in {args.state}, {args.clients} clients, upstream {upstream.kind}")
        print(f"{'kill':>4} {'completed':>10} {'in ledger':>10} {'missing':>8} {'unfinished rows':>16}")
        for kill in range(1, args.kills + 1):
            prefix = f"llmrelay-crash-{uuid.uuid4().hex[:8]}:" if args.state == "redis" else None
            done, kept, missing, extra = await one_kill(base, args.clients, args.answers, prefix)
            print(f"{kill:>4} {done:>10} {kept:>10} {missing:>8} {extra:>16}")


if __name__ == "__main__":
    asyncio.run(main())
