"""Gateway processes (``llmrelay serve``) sharing one Redis and one store: a rate
limit is exact across them, and a SIGKILL loses no record of a completed request.

Real Redis (``LLMRELAY_TEST_REDIS_URL``, default redis://127.0.0.1:6379/0);
skipped with the reason when it cannot be reached."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fakeserver import FakeServer, Reply
from llmrelay.gateway.ledger import Ledger, RedisQueue
from llmrelay.store import Store
from test_gateway_openai import CHAT, answer, sse
from test_state_contract import REDIS_URL, redis_reason
from test_store import db_url  # noqa: F401  (the fixture: a fresh SQLite file or PostgreSQL schema)

needs_redis = pytest.mark.skipif(redis_reason() is not None, reason=redis_reason() or "")
MASTER = "sk-master-processes-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, upstream: str, prefix: str | None, store_url: str | None = None) -> Path:
    config = folder / "llmrelay.yaml"
    default_store = f"sqlite:///{folder / 'gateway.db'}"
    config.write_text(
        "providers:\n"
        f"  - {{name: up, kind: openai, base_url: '{upstream}/v1', api_key: sk-upstream-processes}}\n"
        "models:\n"
        "  - {name: smart, deployments: [{provider: up, model: gpt-4o-mini}]}\n"
        "routing: {retries: 0, cooldowns: false}\n"
        + (f"state: {{backend: redis, url: '{REDIS_URL}', prefix: '{prefix}'}}\n" if prefix else "")
        + f"store: {{url: '{store_url or default_store}'}}\n"
        f"auth: {{master_key: {MASTER}}}\n"
    )
    return config


class Gateways:
    def __init__(self, folder: Path, config: Path) -> None:
        self.folder, self.config = folder, config
        self.procs: list[asyncio.subprocess.Process] = []
        self.urls: list[str] = []

    async def start(self, count: int, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        env["LLMRELAY_LOG_LEVEL"] = "WARNING"
        for _ in range(count):
            port = free_port()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "llmrelay", "serve", "--config", str(self.config), "--port", str(port), *extra,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
            )  # fmt: skip
            self.procs.append(proc)
            self.urls.append(f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as http:
            for url, proc in zip(self.urls, self.procs, strict=True):
                for _ in range(300):  # up to 30 s each
                    if proc.returncode is not None:
                        raise AssertionError(f"the gateway exited: {(await proc.stderr.read()).decode()}")  # type: ignore[union-attr]
                    try:
                        async with http.get(url + "/health/ready") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"{url} never became ready")

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[tuple[Gateways, FakeServer, str]]:
    prefix = f"llmrelay-test-{uuid.uuid4().hex[:8]}:"
    async with FakeServer() as upstream:
        running = Gateways(tmp_path, write_config(tmp_path, upstream.url, prefix))
        try:
            yield running, upstream, prefix
        finally:
            await running.stop()
            if redis_reason() is None:
                import redis

                client = redis.Redis.from_url(REDIS_URL)
                for key in client.scan_iter(match=f"{prefix}*", count=1000):
                    client.delete(key)
                client.close()


@needs_redis
async def test_three_gateways_on_one_redis_admit_exactly_the_rpm_limit(
    gateways: tuple[Gateways, FakeServer, str],
    db_url: str,  # noqa: F811
) -> None:
    """With the store in SQLite and in PostgreSQL (the scale-out set-up: PostgreSQL + Redis)."""
    running, upstream, prefix = gateways
    running.config = write_config(running.folder, upstream.url, prefix, db_url)
    upstream.on("POST", CHAT, Reply(json=answer("ok"), delay_s=0.01))
    limit = 25
    store = Store.open(db_url)
    _, secret = store.create_key("acme", rpm=limit)
    store.close()
    await running.start(3)

    async def one(http: aiohttp.ClientSession, url: str) -> int:
        body = {"model": "smart", "messages": [{"role": "user", "content": "Hi"}]}
        async with http.post(url + CHAT, json=body, headers={"authorization": f"Bearer {secret}"}) as r:
            await r.read()
            return r.status

    async with aiohttp.ClientSession() as http:
        statuses = await asyncio.gather(*(one(http, running.urls[i % 3]) for i in range(4 * limit)))
    assert statuses.count(200) == limit and statuses.count(429) == 3 * limit
    assert upstream.count(CHAT) == limit


@needs_redis
async def test_sigkill_mid_load_loses_no_record_of_a_completed_request(
    gateways: tuple[Gateways, FakeServer, str],
) -> None:
    running, upstream, prefix = gateways
    upstream.on("POST", CHAT, Reply(json=answer("ok"), delay_s=0.005))
    await running.start(1)
    url, proc = running.urls[0], running.procs[0]
    completed: list[str] = []
    sent: list[str] = []

    async def client(http: aiohttp.ClientSession, worker: int) -> None:
        body = {"model": "smart", "messages": [{"role": "user", "content": "Hi"}]}
        for n in range(400):  # bounded; the kill ends it much sooner
            rid = f"w{worker}-{n}"
            sent.append(rid)
            try:
                headers = {"authorization": f"Bearer {MASTER}", "x-request-id": rid}
                async with http.post(url + CHAT, json=body, headers=headers) as r:
                    await r.json()
                    if r.status == 200:
                        completed.append(rid)
            except (aiohttp.ClientError, ValueError):
                return

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        load = [asyncio.create_task(client(http, w)) for w in range(16)]
        for _ in range(200):  # kill once a good number of answers are in, at most 20 s
            if len(completed) >= 150:
                break
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*load), 30)
    assert len(completed) >= 150

    # what the dead gateway left in Redis is written by the next writer
    store = Store.open(f"sqlite:///{running.folder / 'gateway.db'}")
    import redis.asyncio as aioredis

    redis_client = aioredis.Redis.from_url(REDIS_URL)
    try:
        ledger = Ledger(store, RedisQueue(redis_client, prefix, claim_idle_s=0))
        await ledger.flush()
        from llmrelay.store import UsageQuery

        rows = store.usage(UsageQuery(limit=10_000))
    finally:
        await redis_client.aclose()
        store.close()
    recorded = {row.request_id for row in rows}
    assert set(completed) <= recorded  # every completed request is in the ledger
    assert recorded <= set(sent) and len(rows) == len(recorded)  # nothing invented, nothing twice
    assert len(recorded) - len(completed) <= 16  # at most the requests in flight at the kill


async def test_sigterm_lets_in_flight_streams_finish(tmp_path: Path) -> None:
    pieces = [f"p{i} " for i in range(10)]
    chunks = sse(*pieces)
    async with FakeServer() as upstream:
        upstream.on("POST", CHAT, Reply(chunks=chunks, chunk_delay_s=0.15))
        running = Gateways(tmp_path, write_config(tmp_path, upstream.url, None))
        try:
            await running.start(1)
            url, proc = running.urls[0], running.procs[0]
            body = {"model": "smart", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
            headers = {"authorization": f"Bearer {MASTER}"}
            async with aiohttp.ClientSession() as http, http.post(url + CHAT, json=body, headers=headers) as r:
                assert r.status == 200
                first = await r.content.readline()
                assert first.startswith(b"data: ")
                proc.send_signal(signal.SIGTERM)  # mid-stream: ~1.5 s of it left
                rest = (first + await r.content.read()).decode()
            assert rest.rstrip().endswith("data: [DONE]") and all(p in rest for p in pieces)
            # uvicorn re-raises the signal once it has shut down cleanly
            assert await asyncio.wait_for(proc.wait(), 20) in (0, -signal.SIGTERM)
            with pytest.raises(aiohttp.ClientError):  # and it has stopped listening
                async with aiohttp.ClientSession() as http, http.get(url + "/health/live") as r:
                    pass
            store = Store.open(f"sqlite:///{tmp_path / 'gateway.db'}")
            from llmrelay.store import UsageQuery

            [row] = store.usage(UsageQuery())  # the ledger was written at shutdown
            store.close()
            assert row.status == 200 and row.completion_tokens == len(pieces)
        finally:
            await running.stop()


@needs_redis
async def test_metrics_of_several_workers_add_up(gateways: tuple[Gateways, FakeServer, str]) -> None:
    running, upstream, _ = gateways  # several workers need shared state: llmrelay serve refuses them without
    upstream.on("POST", CHAT, Reply(json=answer("ok")))
    try:
        await running.start(1, "--workers", "2")
        url = running.urls[0]
        headers = {"authorization": f"Bearer {MASTER}"}
        body = {"model": "smart", "messages": [{"role": "user", "content": "Hi"}]}
        async with aiohttp.ClientSession() as http:
            for _ in range(30):  # new connections: the kernel spreads them over both workers
                async with (
                    aiohttp.ClientSession() as fresh,
                    fresh.post(url + CHAT, json=body, headers=headers) as r,
                ):
                    assert r.status == 200
            await asyncio.sleep(1.0)  # each worker writes its figures out every 0.5 s
            for _ in range(4):  # whichever worker answers the scrape, it counts all 30
                async with aiohttp.ClientSession() as fresh, fresh.get(url + "/metrics") as r:
                    text = await r.text()
                total = sum(
                    float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("llmrelay_requests_total{") and 'route="/v1/chat/completions"' in line
                )  # fmt: skip
                assert total == 30
            del http
    finally:
        await running.stop()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc to see what the process became")
async def test_one_worker_serves_from_a_process_that_only_serves(tmp_path: Path) -> None:
    """``llmrelay serve`` (one worker) checks, then becomes ``python -m llmrelay.gateway.run``
    under the same process id: it answers, and stops cleanly on SIGTERM."""
    async with FakeServer() as upstream:
        upstream.on("POST", CHAT, Reply(json=answer("Hi from the runner")))
        running = Gateways(tmp_path, write_config(tmp_path, upstream.url, None))
        try:
            await running.start(1)
            (proc,), (url,) = running.procs, running.urls
            command = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
            assert b"llmrelay.gateway.run" in command and b"serve" not in command, command
            async with aiohttp.ClientSession() as http:
                body = {"model": "smart", "messages": [{"role": "user", "content": "Hi"}]}
                headers = {"authorization": f"Bearer {MASTER}"}
                async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
                    assert r.status == 200
                    assert (await r.json())["choices"][0]["message"]["content"] == "Hi from the runner"
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 20)
            assert code in (0, -signal.SIGTERM)  # uvicorn ends gracefully, then re-raises the signal
            assert b"Traceback" not in await proc.stderr.read()  # type: ignore[union-attr]
        finally:
            await running.stop()
