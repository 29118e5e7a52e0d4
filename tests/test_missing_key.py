"""A provider that cannot be used says so plainly: one with no key is
``ProviderNotConfigured`` naming the variable to set, the same from the library, the
gateway, ``batch`` and the CLI; one that never answers fails its check in bounded time."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import openai
import pytest

from fakeserver import FakeServer, Reply
from gateways import MASTER, serve
from llmrelay import AsyncClient, ProviderNotConfigured
from llmrelay.batch import run_one
from llmrelay.gateway import Gateway

MESSAGE = "provider 'openai' has no API key: set OPENAI_API_KEY or add it to the config file"


async def test_the_library_raises_provider_not_configured() -> None:
    async with AsyncClient(env={}) as client:
        with pytest.raises(ProviderNotConfigured) as info:
            await client.chat("openai/gpt-4o-mini", "Hi")
    assert info.value.message == MESSAGE and info.value.provider == "openai"
    assert info.value.status_code == 400 and info.value.code == "provider_not_configured"


async def test_the_gateway_answers_400_without_claiming_the_model_is_missing() -> None:
    app = Gateway(AsyncClient(env={}), master_key=MASTER)
    async for url in serve(app):
        sdk = openai.AsyncOpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
        try:
            with pytest.raises(openai.BadRequestError) as info:
                await sdk.chat.completions.create(
                    model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
                )
            with pytest.raises(openai.BadRequestError) as streamed:
                await sdk.chat.completions.create(
                    model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
                )
            with pytest.raises(openai.NotFoundError) as bare:  # no provider named: a 404, the name said once
                await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        finally:
            await sdk.close()
    for exc in (info.value, streamed.value):
        assert exc.status_code == 400 and exc.code == "provider_not_configured"
        assert MESSAGE in exc.message and "does not exist" not in exc.message
    said_once = "the model 'gpt-4o-mini' does not exist here: it names no provider: write PROVIDER/MODEL"
    message = bare.value.message  # how the SDK words it around the body changes between its versions
    assert f"{said_once}, e.g. openai/gpt-4o-mini" in message and message.count("does not exist") == 1


async def test_batch_writes_the_same_error_for_that_line() -> None:
    async with AsyncClient(env={}) as client:
        line = {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}}  # fmt: skip
        result = await run_one(client, line)
    assert not result.ok
    error = result.line["error"]
    assert result.line["response"] is None  # never sent anywhere: no HTTP status of its own
    assert error["code"] == "provider_not_configured" and MESSAGE in error["message"]


async def test_the_cli_prints_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmrelay", "chat", "openai/gpt-4o-mini", "Hi", cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1 and out == b""
    assert lines == [f"error: {MESSAGE}"]


async def test_a_provider_that_never_answers_fails_its_check_in_bounded_time() -> None:
    async with FakeServer() as fake:
        fake.on("GET", "/v1/models", Reply(hang_s=10))
        env = {"OPENAI_API_KEY": "sk-test-key-123456", "OPENAI_BASE_URL": fake.url + "/v1"}
        async with AsyncClient(env=env) as client:
            start = time.perf_counter()
            [check] = await client.test_connection("openai", timeout_s=0.3)
    assert not check.ok and check.detail == "no answer within 0.3s"
    assert time.perf_counter() - start < 5
