"""The gateway with its parts broken: Redis down or silent, the ledger's queue gone,
started without a master key, files and error bodies that could reveal what they
should not, several workers without shared state. Each answer is a clear 4xx or
503, never a 500 or a hang, and no usage record is lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import openai
import pytest

from fakeserver import FakeServer, Reply
from gateways import MASTER, Served, serve
from llmrelay import AsyncClient, ModelGroup
from llmrelay.errors import ConfigError
from llmrelay.gateway import Gateway
from llmrelay.gateway.factory import create_app
from llmrelay.gateway.ledger import RedisQueue
from llmrelay.gateway.spool import Spool
from llmrelay.router import RoutingSettings
from llmrelay.state.base import StateBackend
from llmrelay.state.redis import RedisState
from llmrelay.store import Store, UsageQuery
from test_gateway_openai import CHAT, answer, sse
from test_gateway_tenants import HI


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts and reads, and never answers: a Redis that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in held:
            writer.close()


@asynccontextmanager
async def gateway_with(
    *, state: StateBackend | None = None, env: dict[str, str] | None = None, **app: object
) -> AsyncIterator[tuple[Served, Path]]:
    async with FakeServer() as upstream:
        base = {"OPENAI_API_KEY": "sk-upstream-key-123456", "OPENAI_BASE_URL": upstream.url + "/v1"}
        client = AsyncClient(
            env={**base, **(env or {})}, models=[ModelGroup("smart", ["openai/gpt-4o-mini"])],
            routing=RoutingSettings(retries=0, cooldowns=False), state=state,
        )  # fmt: skip
        folder = Path(tempfile.mkdtemp(prefix="llmrelay-broken-"))
        store = Store.open(f"sqlite:///{folder / 'gateway.db'}")
        gateway = Gateway(client, store=store, **{"master_key": MASTER, **app})  # type: ignore[arg-type]
        try:
            async for url in serve(gateway):
                served = Served(url, upstream, upstream, client, gateway)
                yield served, folder
                for sdk in served.sdks:
                    await sdk.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


async def test_a_state_backend_down_or_silent_is_a_503_with_a_reason_never_a_500_or_a_hang() -> None:
    async with silent_server() as silent:
        for port in (closed_port(), silent):
            state = RedisState(f"redis://127.0.0.1:{port}/0", timeout_s=0.3)
            async with gateway_with(state=state) as (gw, _):
                gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
                begun = time.monotonic()
                with pytest.raises(openai.InternalServerError) as caught:
                    await gw.sdk().chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
                assert caught.value.status_code == 503 and caught.value.code == "state_unavailable"
                assert "state backend" in str(caught.value) and time.monotonic() - begun < 5
                async with aiohttp.ClientSession() as http, http.get(gw.url + "/health/ready") as r:
                    ready = await r.json()
                    assert r.status == 503 and ready["state"].startswith("unavailable: StateUnavailable"), ready
                async with aiohttp.ClientSession() as http, http.get(gw.url + "/metrics") as r:
                    assert r.status == 200  # the other figures are still there to see
                assert gw.upstream.count(CHAT) == 0


async def test_records_the_queue_cannot_take_are_spooled_and_written() -> None:
    """The ledger's Redis stream is gone, the answers still come: none of their records is lost."""
    dead = RedisState(f"redis://127.0.0.1:{closed_port()}/0", timeout_s=0.3)
    with tempfile.TemporaryDirectory() as spool_dir:
        async with gateway_with(ledger_queue=RedisQueue(dead.redis), spool=Spool(spool_dir)) as (gw, _):
            gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
            for _ in range(5):
                assert (await gw.sdk().chat.completions.create(model="smart", messages=HI)).choices  # type: ignore[arg-type]
            assert gw.app.ledger is not None
            written: list[object] = []
            for _ in range(50):
                with contextlib.suppress(Exception):  # the queue's own Redis is still down: it says so
                    await gw.app.ledger.flush()
                written = gw.store.usage(UsageQuery())
                if len(written) == 5:
                    break
                await asyncio.sleep(0.05)
            assert len(written) == 5
        await dead.aclose()


async def test_open_mode_only_on_purpose_and_never_around_virtual_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'gw.db'}'}}\n")
    monkeypatch.setenv("LLMRELAY_CONFIG", str(config))
    monkeypatch.setenv("LLMRELAY_LOG_LEVEL", "WARNING")
    monkeypatch.delenv("LLMRELAY_MASTER_KEY", raising=False)
    monkeypatch.delenv("LLMRELAY_INSECURE_OPEN", raising=False)
    with pytest.raises(ConfigError, match="no master key"):
        create_app()
    assert not (tmp_path / "gw.db").exists()  # refused before anything was made
    config.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'gw.db'}'}}\nauth: {{open: true}}\n")
    app = create_app()
    assert app.open
    await app.aclose()

    async with gateway_with(master_key=None, open_access=True) as (gw, _):
        gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
        anyone = gw.sdk("whatever")
        assert (await anyone.chat.completions.create(model="smart", messages=HI)).choices  # type: ignore[arg-type]
        _, secret = gw.store.create_key("acme", budget_usd=0.000001)
        gw.app.auth.forget()
        for key in ("whatever", ""):
            async with aiohttp.ClientSession() as http, http.post(
                gw.url + CHAT, json={"model": "smart", "messages": HI},
                headers={"authorization": f"Bearer {key}"} if key else {},
            ) as r:  # fmt: skip
                assert r.status == 401 and "virtual keys" in (await r.json())["error"]["message"]
        with pytest.raises(openai.RateLimitError, match="budget"):  # the tenant's key binds its budget
            await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]


async def test_the_store_is_private_and_errors_never_name_an_upstream_address() -> None:
    port = closed_port()
    down = {"VLLM_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    async with gateway_with(env=down) as (gw, folder):
        for name in ("gateway.db", "gateway.db-wal", "gateway.db-shm"):
            if (folder / name).exists():
                assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
        with pytest.raises(openai.APIError) as caught:
            await gw.sdk().chat.completions.create(model="vllm/my-model", messages=HI)  # type: ignore[arg-type]
        text = str(caught.value.body)
        assert str(port) not in text and "127.0.0.1" not in text and "<upstream>" in text, text

        gw.upstream.on("POST", CHAT, Reply(chunks=sse(*[f"w{i} " for i in range(10)]), cut_after=3))
        stream = await gw.sdk().chat.completions.create(model="smart", messages=HI, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.APIError) as broken:
            async for _ in stream:
                pass
        upstream_port = gw.upstream.url.rsplit(":", 1)[1]
        assert upstream_port not in str(broken.value) and "127.0.0.1" not in str(broken.value)


@pytest.fixture
def folder() -> Iterator[Path]:
    made = Path(tempfile.mkdtemp(prefix="llmrelay-workers-"))
    yield made
    shutil.rmtree(made, ignore_errors=True)


def test_several_workers_without_shared_state_are_refused(folder: Path) -> None:
    (folder / "llmrelay.yaml").write_text("auth: {master_key: sk-master-1}\n")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "-m", "llmrelay", "serve", "--config", "llmrelay.yaml", "--workers", "2", "--port", "1"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "--workers 2 needs shared state" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["llmrelay.yaml"]  # nothing made
