"""The library face: Client / AsyncClient, configuration, bad input, tools."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from fakeserver import FakeServer, Reply
from llmrelay import AsyncClient, Client, errors
from llmrelay.config import load_settings
from llmrelay.testing import FakeProvider
from llmrelay.testing import Reply as Script
from llmrelay.tools import ToolLoopExceeded
from llmrelay.types import ErrorEvent, Finish, TextDelta, ToolCall

KEY = "sk-test-CLIENTSECRET-0987654321"


def completion(text: str) -> dict[str, object]:
    return {
        "id": "c1",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3},
    }


def test_sync_client_chat_and_stream_with_fake_provider() -> None:
    fake = FakeProvider("fake", ["Hello there friend"])
    with Client(providers=[fake], env={}) as client:
        r = client.chat("fake/any", "Hi")
        assert r.content == "Hello there friend" and r.provider == "fake"
        events = list(client.stream("fake/any", [{"role": "user", "content": "Hi"}]))
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == "Hello there friend" and len(texts) == 3
    assert isinstance(events[-1], Finish) and events[-1].response.content == "Hello there friend"
    assert fake.requests[0].messages[0].content == "Hi"


def test_sync_stream_can_be_abandoned_early() -> None:
    fake = FakeProvider("fake", ["one two three four five"])
    with Client(providers=[fake], env={}) as client:
        for event in client.stream("fake/m", "Hi"):
            assert isinstance(event, TextDelta)
            break
        assert client.chat("fake/m", "again").content == "one two three four five"


async def test_env_configured_openai_over_http(fake: FakeServer) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(json=completion("Bonjour")))
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url + "/v1"}
    async with AsyncClient(env=env) as client:
        r = await client.chat("openai/gpt-4o-mini", "Say hi in French", temperature=0.1, max_tokens=20)
    assert r.content == "Bonjour" and r.usage.prompt_tokens == 9 and r.cost_usd is not None
    assert fake.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(client.settings.providers["openai"])


async def test_yaml_config_with_env_vars_and_model_groups(tmp_path: Path, fake: FakeServer) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(json=completion("from group")))
    cfg = tmp_path / "llmrelay.yaml"
    cfg.write_text(
        textwrap.dedent(f"""
        providers:
          - name: main
            kind: openai
            base_url: {fake.url}/v1
            api_key: ${{MY_KEY}}
            timeout_s: 30
        models:
          - name: smart
            deployments:
              - {{provider: main, model: gpt-4o-mini, weight: 2}}
    """)
    )
    async with AsyncClient(cfg, env={"MY_KEY": KEY}) as client:
        r = await client.chat("smart", "Hi")
    assert r.content == "from group" and fake.requests[0].json["model"] == "gpt-4o-mini"
    assert fake.requests[0].headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("providers:\n  - name: a\n    kind: openai\n    api_kye: x\n", ":4: providers.a.api_kye: unknown key"),
        ("providers:\n  - name: a\n    kind: nosuch\n", "unknown kind 'nosuch'"),
        (
            "providers:\n  - name: a\n    kind: openai\n    api_key: ${UNSET_VAR_X}\n",
            ":4: providers.a.api_key: environment variable UNSET_VAR_X",
        ),
        ("models:\n  - name: g\n    deployments: []\n", "models.g.deployments"),
        ("models:\n  - name: g\n    deployments:\n      - {provider: nope, model: m}\n", "unknown provider 'nope'"),
        ("models:\n  - name: g\n    deployments:\n      - {provider: openai, model: m, weight: 0}\n", "weight"),
        ("providers: [\n", "not valid YAML"),
    ],
)
def test_config_errors_name_the_entry(tmp_path: Path, yaml_text: str, needle: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(errors.ConfigError) as exc:
        load_settings(cfg, env={})
    assert needle in str(exc.value)


@pytest.mark.parametrize(
    ("model", "messages", "cls", "needle"),
    [
        ("fake/m", [], errors.InvalidRequest, "messages is empty"),
        ("fake/m", [{"role": "wizard", "content": "x"}], errors.InvalidRequest, "messages[0].role is 'wizard'"),
        ("fake/m", [{"role": "system", "content": "x"}], errors.InvalidRequest, "only system"),
        (
            "fake/m",
            [{"role": "user", "content": "x"}, {"role": "tool", "content": "r", "tool_call_id": "nope"}],
            errors.InvalidRequest,
            "'nope'",
        ),
        (
            "fake/m",
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
            errors.InvalidRequest,
            "neither an http(s) URL nor a base64",
        ),
        (
            "fake/m",
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}],
            errors.InvalidRequest,
            "not valid base64",
        ),
        ("fake/m", [{"role": "user", "content": 42}], errors.InvalidRequest, "content must be"),
        ("gpt-4o", "Hi", errors.InvalidRequest, "names no provider"),
        ("nosuch/m", "Hi", errors.InvalidRequest, "unknown provider 'nosuch'"),
        ("anthropic/claude-sonnet-4-5", "Hi", errors.ProviderNotConfigured, "ANTHROPIC_API_KEY"),
        (None, "Hi", errors.InvalidRequest, "no model given"),
    ],
)
def test_bad_input_is_a_clear_llm_error(
    model: str | None, messages: object, cls: type[errors.LLMError], needle: str
) -> None:
    fake = FakeProvider("fake", ["unused"])
    with Client(providers=[fake], env={}) as client, pytest.raises(cls) as exc:
        client.chat(model, messages)  # type: ignore[arg-type]
    assert needle in str(exc.value)
    assert fake.requests == []


def test_invalid_params_are_rejected() -> None:
    with Client(providers=[FakeProvider("fake")], env={}) as client:
        with pytest.raises(errors.InvalidRequest, match="max_tokens"):
            client.chat("fake/m", "Hi", max_tokens=0)
        with pytest.raises(errors.InvalidRequest, match="temperature"):
            client.chat("fake/m", "Hi", temperature="hot")


class Weather(BaseModel):
    city: str
    celsius: float


def test_structured_output_with_fake_provider() -> None:
    fake = FakeProvider("fake", ['{"city": "Oslo", "celsius": -3.5}', '{"city": "Oslo"}'])
    with Client(providers=[fake], env={}) as client:
        r = client.chat("fake/m", "Weather in Oslo?", response_format=Weather)
        assert r.parsed == Weather(city="Oslo", celsius=-3.5)
        with pytest.raises(errors.StructuredOutputError) as exc:
            client.chat("fake/m", "again", response_format=Weather)
    assert exc.value.raw_text == '{"city": "Oslo"}' and "celsius" in str(exc.value)


def get_temperature(city: str, unit: str = "C") -> dict[str, object]:
    """Current temperature in a city."""
    return {"city": city, "temp": 21, "unit": unit}


def test_tool_loop_runs_functions_to_a_final_answer() -> None:
    call = ToolCall("call_1", "get_temperature", {"city": "Rome"})
    fake = FakeProvider("fake", [Script(tool_calls=[call]), Script("It is 21 C in Rome.")])
    with Client(providers=[fake], env={}) as client:
        r = client.run_tools("fake/m", "How warm is Rome?", [get_temperature], max_rounds=3)
    assert r.content == "It is 21 C in Rome."
    spec = fake.requests[0].tools[0]
    assert spec.name == "get_temperature" and spec.description == "Current temperature in a city."
    assert spec.parameters["required"] == ["city"]
    tool_msg = fake.requests[1].messages[-1]
    assert tool_msg.role == "tool" and tool_msg.tool_call_id == "call_1" and '"temp":21' in str(tool_msg.content)
    assert [m.role for m in r.extra["messages"]] == ["user", "assistant", "tool", "assistant"]


def test_tool_loop_is_bounded_and_reports_tool_errors() -> None:
    bad = ToolCall("c", "get_temperature", {"wrong": 1})
    fake = FakeProvider("fake", [Script(tool_calls=[bad])])
    with Client(providers=[fake], env={}) as client, pytest.raises(ToolLoopExceeded) as exc:
        client.run_tools("fake/m", "Hi", [get_temperature], max_rounds=2)
    assert len(fake.requests) == 3
    assert "error: ValidationError" in str(fake.requests[1].messages[-1].content)
    assert exc.value.last.tool_calls == [bad]


async def test_stream_errors_raise_or_end_with_error_event() -> None:
    boom = errors.Overloaded("busy")
    fake = FakeProvider("fake", [Script("a b c", error=boom, error_after=2)])
    async with AsyncClient(providers=[fake], env={}) as client:
        with pytest.raises(errors.StreamInterrupted) as exc:
            async for _ in client.stream("fake/m", "Hi"):
                pass
        assert exc.value.partial is not None and exc.value.partial.content == "a b"
        events = [e async for e in client.stream("fake/m", "Hi", raise_errors=False)]
    assert isinstance(events[-1], ErrorEvent) and events[-1].partial.content == "a b"  # type: ignore[union-attr]


async def test_context_window_checked_before_any_http_call(fake: FakeServer) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(json=completion("never")))
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url + "/v1"}
    async with AsyncClient(env=env) as client:
        huge = "hello world " * 70_000  # about 140k tokens; gpt-4o-mini has a 128k window
        with pytest.raises(errors.ContextWindowExceeded) as exc:
            await client.chat("openai/gpt-4o-mini", huge)
        assert "128" in str(exc.value)
        assert fake.count() == 0
        assert await client.chat("openai/gpt-4o-mini", "hello world " * 1000) is not None
    assert fake.count() == 1


async def test_debug_log_line_has_no_secret_or_prompt(fake: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(json=completion("ok")))
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url + "/v1"}
    with caplog.at_level(logging.DEBUG, logger="llmrelay"):
        async with AsyncClient(env=env) as client:
            await client.chat("openai/gpt-4o-mini", "my private prompt")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("llmrelay")]
    assert any("provider=openai" in line and "outcome=ok" in line and "prompt_tokens=9" in line for line in lines)
    assert not any(KEY in line or "private prompt" in line for line in lines)


async def test_embed_and_models_through_client() -> None:
    fake = FakeProvider("fake", dimensions=4)
    async with AsyncClient(providers=[fake], env={}) as client:
        r = await client.embed("fake/e", ["a", "b", "a"])
        assert len(r.vectors) == 3 and r.vectors[0] == r.vectors[2] != r.vectors[1]
        assert [m.id for m in await client.models("fake")] == ["fake-model"]
        with pytest.raises(errors.InvalidRequest):
            await client.embed("fake/e", [1, 2])  # type: ignore[list-item]
