"""Schemathesis against the gateway's own OpenAPI document: thousands of requests,
valid and schema-violating, to every documented operation, with the master key,
a virtual key, or garbage keys. None may answer 500, nor anything but the API's
error body; the only 5xx allowed is the 502 for an upstream answer that does not
fit the request (the fake embeddings upstream returns one vector, whatever the input).

The gateway runs on uvicorn in a thread over fake OpenAI and Anthropic upstreams
on 127.0.0.1. ``LLMRELAY_FUZZ_EXAMPLES`` sets the number of cases (3,000 by default).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from fakeserver import FakeServer, Reply
from gateways import MASTER
from llmrelay import AsyncClient, ModelGroup
from llmrelay.gateway import Gateway
from llmrelay.gateway.openapi import document
from llmrelay.router import RoutingSettings
from llmrelay.store import Store
from recordings import load_sse
from test_gateway_openai import CHAT, answer, sse

SEEN: dict[int, int] = {}
EXAMPLES = int(os.environ.get("LLMRELAY_FUZZ_EXAMPLES", "3000"))
SCHEMA = schemathesis.openapi.from_dict(document())
CLAUDE = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 1},
}  # fmt: skip
EMBEDDING = {
    "object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 1, "total_tokens": 1},
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
}  # fmt: skip


class Background:
    """Fake upstreams and the gateway on one event loop in a thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = ""
        self.virtual_key = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Background:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the gateway did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with FakeServer() as upstream, FakeServer() as claude:
            upstream.on("POST", CHAT, Reply(json=answer("ok"), streamed=sse("o", "k")))
            upstream.on("POST", "/v1/embeddings", Reply(json=EMBEDDING))
            claude.on(
                "POST", "/v1/messages", Reply(json=CLAUDE, streamed=[load_sse("anthropic-stream-basic-text-ping.sse")])
            )
            env = {
                "OPENAI_API_KEY": "sk-upstream-fuzz", "OPENAI_BASE_URL": upstream.url + "/v1",
                "ANTHROPIC_API_KEY": "sk-ant-fuzz", "ANTHROPIC_BASE_URL": claude.url,
            }  # fmt: skip
            groups = [
                ModelGroup("smart", ["openai/gpt-4o-mini"]), ModelGroup("claude", ["anthropic/claude-sonnet-4-5"]),
            ]  # fmt: skip
            # every call sees the upstream's own answer: no breaker opening, no waiting for capacity
            client = AsyncClient(env=env, models=groups, routing=RoutingSettings.passthrough())
            store = Store.open(f"sqlite:///{self.folder / 'fuzz.db'}")
            _, self.virtual_key = store.create_key("fuzz", rpm=1_000_000, budget_usd=1_000_000.0)
            app = Gateway(client, master_key=MASTER, store=store, access_log=None)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="error"))
            task = asyncio.create_task(server.serve())
            for _ in range(500):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            self.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
            self._ready.set()
            await self._stop.wait()
            server.should_exit = True
            await asyncio.wait_for(task, 20)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    with Background(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def _cases() -> st.SearchStrategy[Any]:
    strategies = []
    for result in SCHEMA.get_all_operations():
        operation = result.ok()
        if operation.path == "/admin/deployments/{deployment}/health":
            continue  # taking the deployments out would make the model routes' 503s expected
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(generation_mode=mode))
    return st.one_of(strategies)


@settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
@given(
    case=_cases(),
    key=st.sampled_from(["master", "virtual", "generated"]),
    model=st.sampled_from(["", "smart", "claude"]),
)
def test_no_request_gets_a_5xx_or_a_body_that_is_not_an_api_error(
    gateway: Background, case: Any, key: str, model: str
) -> None:
    if model and isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = model  # reach past the unknown-model check into the handlers
    headers = dict(case.headers or {})
    if key != "generated":
        headers.pop("x-api-key", None)
        headers["Authorization"] = f"Bearer {MASTER if key == 'master' else gateway.virtual_key}"
    try:
        response = case.call(base_url=gateway.url, headers=headers, timeout=10)
    except (requests.exceptions.InvalidHeader, UnicodeEncodeError, ValueError):
        return  # a header no HTTP client can send never reaches the server
    SEEN[response.status_code] = SEEN.get(response.status_code, 0) + 1
    status = response.status_code
    assert status < 500 or (status == 502 and "embeddings" in case.path), (case.path, case.body, response.text[:500])
    if status >= 400:
        body = response.json()
        if case.path.startswith("/v1/messages"):
            assert body["type"] == "error" and body["error"]["message"], body
        elif case.path.startswith("/v1beta/") or ":" in case.path:  # Google's error body
            assert body["error"]["message"] and body["error"]["status"] and body["error"]["code"] == status, body
        else:
            assert isinstance(body["error"]["message"], str) and body["error"]["type"], body


def test_the_fuzz_reached_the_handlers(gateway: Background) -> None:
    """Runs after the fuzz (file order): it got past auth and validation into real answers."""
    assert sum(SEEN.values()) >= EXAMPLES // 2, SEEN
    assert SEEN.get(200, 0) + SEEN.get(201, 0) > 0 and SEEN.get(400, 0) > 0 and SEEN.get(401, 0) > 0, SEEN
