"""A gateway on uvicorn on 127.0.0.1, in the test's loop, over fake upstreams."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anthropic
import openai
import uvicorn

from fakeserver import FakeServer
from llmrelay import AsyncClient, ModelGroup
from llmrelay.gateway import Gateway
from llmrelay.gateway.server import GuardedHttpToolsProtocol
from llmrelay.router import RoutingSettings
from llmrelay.store import Store, UsageQuery, UsageRecord

MASTER = "sk-gateway-master-123456"


class Served:
    def __init__(
        self, url: str, upstream: FakeServer, anthropic: FakeServer, client: AsyncClient, app: Gateway
    ) -> None:
        self.url, self.upstream, self.anthropic, self.client, self.app = url, upstream, anthropic, client, app
        self.sdks: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []

    @property
    def store(self) -> Store:
        assert self.app.store is not None
        return self.app.store

    def sdk(self, key: str = MASTER) -> openai.AsyncOpenAI:
        made = openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)
        self.sdks.append(made)
        return made

    def claude(self, key: str = MASTER) -> anthropic.AsyncAnthropic:
        made = anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0)
        self.sdks.append(made)
        return made


@contextlib.asynccontextmanager
async def running(config: uvicorn.Config) -> AsyncIterator[tuple[uvicorn.Server, int]]:
    """A uvicorn server for ``config`` in this loop (bounded wait for its start), and its port."""
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield server, server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def serve(app: Gateway) -> AsyncIterator[str]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", http=GuardedHttpToolsProtocol
    )
    async with running(config) as (_, port):
        yield f"http://127.0.0.1:{port}"


async def served_gateway(
    extra: Sequence[ModelGroup] = (), routing: RoutingSettings | None = None, telemetry: Any = None
) -> AsyncIterator[Served]:
    """A gateway with groups ``smart`` (OpenAI) and ``claude`` (Anthropic) over two fake
    upstreams, and the ``extra`` groups (whose deployments name those providers); no retries
    and no cooldowns unless ``routing`` says otherwise."""
    async with FakeServer() as upstream, FakeServer() as anthropic:
        env = {
            "OPENAI_API_KEY": "sk-upstream-key-123456", "OPENAI_BASE_URL": upstream.url + "/v1",
            "ANTHROPIC_API_KEY": "sk-ant-upstream-1", "ANTHROPIC_BASE_URL": anthropic.url,
        }  # fmt: skip
        groups = [
            ModelGroup("smart", ["openai/gpt-4o-mini"]),
            ModelGroup("claude", ["anthropic/claude-sonnet-4-5"]),
            *extra,
        ]
        routing = routing or RoutingSettings(retries=0, cooldowns=False)
        client = AsyncClient(env=env, models=groups, routing=routing, telemetry=telemetry)
        client.settings.models.update({g.name: g for g in groups})  # listed by /v1/models
        folder = Path(tempfile.mkdtemp(prefix="llmrelay-gw-"))
        store = Store.open(f"sqlite:///{folder / 'gateway.db'}")
        app = Gateway(client, master_key=MASTER, store=store, max_body=64 * 1024)
        try:
            async for url in serve(app):
                served = Served(url, upstream, anthropic, client, app)
                yield served
                for sdk in served.sdks:
                    await sdk.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


async def ledger_rows(gw: Served, key_id: str, want: int = 1) -> list[UsageRecord]:
    """The key's ledger rows, once ``want`` of them are written (a bounded wait)."""
    assert gw.app.ledger is not None
    found: list[UsageRecord] = []
    for _ in range(100):
        await gw.app.ledger.flush()
        found = gw.store.usage(UsageQuery(key_id=key_id))
        if len(found) >= want:
            return found
        await asyncio.sleep(0.05)
    return found
