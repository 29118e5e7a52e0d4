"""instructor and pydantic-ai, unchanged, through a keyless ``llmrelay serve`` answered by the
local model: the grammar makes their structured output a valid tool call every time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import instructor
import openai
import pytest
from pydantic import BaseModel, Field
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from localmodel import NEEDS_MODEL

pytestmark = NEEDS_MODEL

KEY = "sk-local-tools-test"
MODEL = "local/smollm2"


class City(BaseModel):
    name: str = Field(max_length=30)
    country: str = Field(max_length=30)
    population: int


class Forecast(BaseModel):
    city: str = Field(max_length=30)
    unit: Literal["C", "F"]
    days: list[int] = Field(max_length=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``llmrelay serve`` with no provider key in its environment: it serves the local models."""
    home = tmp_path_factory.mktemp("home")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env.update(HOME=str(home), LLMRELAY_MASTER_KEY=KEY)
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmrelay", "serve", "--port", str(port)], cwd=home, env=env,
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_live(url, proc, home / "serve.log")
        yield url + "/v1"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _wait_live(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            pytest.fail(f"llmrelay serve exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/health/live", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail("llmrelay serve did not answer /health/live within 30 s")


def test_instructor_tools_mode_gets_validated_objects(gateway: str) -> None:
    client = instructor.from_openai(openai.OpenAI(base_url=gateway, api_key=KEY), mode=instructor.Mode.TOOLS)
    city = client.chat.completions.create(
        model=MODEL, response_model=City, max_tokens=100, temperature=0, max_retries=0,
        messages=[{"role": "user", "content": "Paris is the capital of France; 2 million people live there."}],
    )  # fmt: skip
    assert isinstance(city, City) and city.name
    forecast = client.chat.completions.create(
        model=MODEL, response_model=Forecast, max_tokens=100, temperature=0.5, seed=3, max_retries=0,
        messages=[{"role": "user", "content": "Forecast for Oslo in celsius, next 3 days"}],
    )  # fmt: skip
    assert isinstance(forecast, Forecast) and forecast.unit in ("C", "F") and len(forecast.days) <= 3


def test_pydantic_ai_agent_gets_its_output_type(gateway: str) -> None:
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=gateway, api_key=KEY))
    agent = Agent(model, output_type=City)
    result = agent.run_sync(
        "Paris is the capital of France; 2 million people live there.",
        model_settings={"max_tokens": 100, "temperature": 0},
    )
    assert isinstance(result.output, City) and result.output.name


def test_a_schema_the_grammar_cannot_follow_is_a_400(gateway: str) -> None:
    sdk = openai.OpenAI(base_url=gateway, api_key=KEY, max_retries=0)
    node = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}
    tool = {"type": "function", "function": {"name": "tree", "parameters": {**node, "$defs": {"Node": node}}}}
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            tools=[tool],
            tool_choice="required",  # type: ignore[list-item]
        )
    assert info.value.status_code == 400
    assert "cannot follow the JSON schema of tool 'tree'" in info.value.message
    assert "refers to itself (a recursive schema)" in info.value.message


def test_streamed_calls_through_the_gateway(gateway: str) -> None:
    sdk = openai.OpenAI(base_url=gateway, api_key=KEY, max_retries=0)
    city = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": city}}
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Weather in Rome?"}], tools=[tool],  # type: ignore[list-item]
            tool_choice="required", parallel_tool_calls=False, stream=True, max_tokens=60, temperature=0,
        )
    )  # fmt: skip
    calls = [c for chunk in chunks if chunk.choices for c in chunk.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].function and calls[0].function.name == "get_weather"
    assert calls[0].id and calls[0].id.startswith("call_") and '"city"' in (calls[0].function.arguments or "")
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
