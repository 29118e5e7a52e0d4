"""Batches (``llmrelay.batch`` and ``llmrelay batch``) against fake providers over
real HTTP on 127.0.0.1: the OpenAI Batch formats, per-request failures, the
concurrency limit, malformed lines, resuming, and the command's summary."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fakeserver import FakeServer, Reply
from llmrelay.batch import BatchResult, run_batch
from llmrelay.client import AsyncClient
from llmrelay.client_sync import Client
from llmrelay.cost import chat_cost, embedding_cost
from llmrelay.router import RoutingSettings
from llmrelay.types import Usage

KEY = "sk-batch-test-key-123456"
CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"


def completion(text: str, prompt: int = 9, completion_tokens: int = 3) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{text}", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens},
    }  # fmt: skip


EMBEDDING = {
    "object": "list", "model": "text-embedding-3-small",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]},
             {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]}],
    "usage": {"prompt_tokens": 4, "total_tokens": 4},
}  # fmt: skip
PROVIDER_400 = {"error": {"message": "bad thing", "type": "invalid_request_error"}}


def chat_line(custom_id: str, text: str = "hi", **body: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    return {"custom_id": custom_id, "method": "POST", "url": CHAT,
            "body": {"model": "openai/gpt-4o-mini", "messages": messages, **body}}  # fmt: skip


def embed_line(custom_id: str, inputs: Any = ("a", "b")) -> dict[str, Any]:
    body = {"model": "openai/text-embedding-3-small", "input": list(inputs)}
    return {"custom_id": custom_id, "method": "POST", "url": EMBED, "body": body}


def client_for(fake: FakeServer) -> AsyncClient:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url + "/v1"}
    return AsyncClient(env=env, routing=RoutingSettings.passthrough())


class GatedServer(FakeServer):
    """Holds each request until ``gate`` are in flight together (at most 10 s), and
    records the most it ever saw at once: a client that respects a limit of
    ``gate`` reaches exactly ``gate``; one that does not goes above it."""

    def __init__(self, gate: int) -> None:
        super().__init__()
        self.gate, self.in_flight, self.peak = gate, 0, 0
        self._full = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.gate:
            self._full.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), 10)
            return await super()._handle(request)
        finally:
            self.in_flight -= 1


# ---------------------------------------------------------------- the library


async def test_chat_and_embeddings_in_the_openai_batch_output_format(fake: FakeServer) -> None:
    from openai.types import CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion

    fake.on("POST", CHAT, Reply(json=completion("Bonjour")))
    fake.on("POST", EMBED, Reply(json=EMBEDDING))
    packed = {**embed_line("e2"), "body": {**embed_line("e2")["body"], "encoding_format": "base64"}}
    lines = [chat_line("c1", temperature=0.2), embed_line("e1"), chat_line("c2", stream=True), packed]
    async with client_for(fake) as client:
        results = await run_batch(client, lines)
    assert [r.custom_id for r in results] == ["c1", "e1", "c2", "e2"] and all(r.ok for r in results)
    for result in results:
        line = result.line
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["id"].startswith("batch_req_") and line["custom_id"] == result.custom_id
        assert line["error"] is None
        assert line["response"]["status_code"] == 200 and line["response"]["request_id"].startswith("req_")
    chat = results[0].line["response"]["body"]
    ChatCompletion.model_validate(chat)  # bodies as the official SDK reads them
    CreateEmbeddingResponse.model_validate(results[1].line["response"]["body"])
    assert chat["object"] == "chat.completion" and chat["model"] == "gpt-4o-mini"
    assert chat["choices"][0]["message"]["content"] == "Bonjour" and chat["choices"][0]["finish_reason"] == "stop"
    assert chat["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    embedded = results[1].line["response"]["body"]
    assert embedded["object"] == "list" and embedded["model"] == "text-embedding-3-small"
    assert [d["embedding"] for d in embedded["data"]] == [[0.25, -0.5], [1.0, 0.0]]
    assert embedded["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    vector = base64.b64decode(results[3].line["response"]["body"]["data"][0]["embedding"])
    assert struct.unpack("<2f", vector) == (0.25, -0.5)  # as OpenAI packs them: little-endian float32
    assert results[0].usage == Usage(9, 3) and results[1].usage.prompt_tokens == 4
    assert results[0].cost_usd == chat_cost("openai", "gpt-4o-mini", Usage(9, 3))
    sent = {r.json["messages"][0]["content"] if r.path == CHAT else "embed": r.json for r in fake.requests}
    assert sent["hi"]["model"] == "gpt-4o-mini" and fake.count(CHAT) == 2 and fake.count(EMBED) == 2
    assert sent["embed"]["model"] == "text-embedding-3-small" and sent["embed"]["input"] == ["a", "b"]
    assert all(r.json.get("stream") is not True for r in fake.requests if r.path == CHAT)  # answered whole


async def test_every_failure_is_that_request_s_result(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmrelay.batch

    fake.on("POST", CHAT, Reply(status=400, json=PROVIDER_400))
    fake.on("POST", EMBED, Reply(json=EMBEDDING))
    lines: list[Any] = [
        chat_line("provider-400"),
        {**chat_line("no-messages"), "body": {"model": "openai/gpt-4o-mini"}},
        {**chat_line("bad-temp"), "body": {**chat_line("x")["body"], "temperature": -1}},
        {**embed_line("unknown-provider"), "body": {"model": "nosuch/m", "input": "x"}},
        embed_line("empty-input", inputs=()),
        {**chat_line("get"), "method": "GET"},
        {**chat_line("wrong-url"), "url": "/v1/completions"},
        {"method": "POST", "url": CHAT, "body": {}},
        "not an object",
        embed_line("boom"),
    ]

    def explode(*args: Any) -> dict[str, Any]:
        raise RuntimeError("encoder bug")

    monkeypatch.setattr(llmrelay.batch, "embedding_response_to_wire", explode)
    async with client_for(fake) as client:
        results = await run_batch(client, lines, concurrency=4)
    assert not any(r.ok for r in results) and len(results) == len(lines)
    by_id = {r.custom_id: r.line for r in results}

    def check(custom_id: str | None, code: str, status: int | None, needle: str) -> None:
        line = by_id[custom_id]
        assert line["error"]["code"] == code and needle in line["error"]["message"], line
        if status is None:
            assert line["response"] is None
        else:
            assert line["response"]["status_code"] == status
            assert line["response"]["body"]["error"]["code"] == code

    check("provider-400", "invalid_request", 400, "bad thing")
    check("no-messages", "invalid_request", 400, "'messages' is required")
    check("bad-temp", "invalid_request", 400, "temperature")
    check("unknown-provider", "invalid_request", 400, "unknown provider 'nosuch'")
    check("empty-input", "invalid_request", 400, "'input'")
    check("get", "invalid_request", None, "'method' must be 'POST'")
    check("wrong-url", "invalid_request", None, "'url' must be")
    check("boom", "internal_error", 500, "RuntimeError: encoder bug")
    assert [r.line["error"]["message"] for r in results if r.custom_id is None] == [
        "'custom_id' is required and must be a non-empty string",
        "a request must be a JSON object, not str",
    ]
    assert fake.count(CHAT) == 1 and fake.count(EMBED) == 1  # nothing else reached the provider


async def test_concurrency_is_bounded_and_the_input_read_as_needed() -> None:
    pulled = 0

    def lines() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(12):
            pulled += 1
            yield chat_line(f"r{i}")

    seen: list[BatchResult] = []

    def on_result(result: BatchResult) -> None:
        assert pulled <= len(seen) + 3  # never more than the limit taken ahead of results
        seen.append(result)

    async with GatedServer(gate=3) as srv:
        srv.on("POST", CHAT, Reply(json=completion("ok")))
        async with client_for(srv) as client:
            results = await run_batch(client, lines(), concurrency=3, on_result=on_result)
    assert srv.peak == 3 and srv.count(CHAT) == 12
    assert [r.custom_id for r in results] == [f"r{i}" for i in range(12)]  # input order, whatever the finish order
    assert sorted(r.index for r in seen) == list(range(12))


async def test_an_async_input_and_bad_concurrency(fake: FakeServer) -> None:
    from llmrelay import errors

    fake.on("POST", CHAT, Reply(json=completion("ok")))

    async def lines() -> AsyncIterator[dict[str, Any]]:
        for i in range(3):
            yield chat_line(f"a{i}")

    async with client_for(fake) as client:
        results = await run_batch(client, lines(), concurrency=2)
        assert [r.custom_id for r in results] == ["a0", "a1", "a2"] and all(r.ok for r in results)
        with pytest.raises(errors.InvalidRequest, match="concurrency"):
            await run_batch(client, [], concurrency=0)


# ---------------------------------------------------------------- the command


@dataclass
class Ran:
    code: int
    out: str
    err: str


def env_for(fake: FakeServer) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url + "/v1"}


async def llmrelay(*args: str | Path, env: dict[str, str]) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmrelay", *map(str, args), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


def write_jsonl(path: Path, items: list[Any]) -> Path:
    path.write_text("".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items))
    return path


def results_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def summary(err: str) -> dict[str, float]:
    """The numbers of the summary lines on stderr."""
    found = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) skipped", err)
    tokens = re.search(r"tokens: (\d+) prompt, (\d+) completion; cost: \$([0-9.]+)", err)
    assert found and tokens, err
    names = ("succeeded", "failed", "skipped", "prompt", "completion", "cost")
    return dict(zip(names, map(float, (*found.groups(), *tokens.groups())), strict=True))


async def test_command_runs_a_file_reports_malformed_lines_and_sums_up(fake: FakeServer, tmp_path: Path) -> None:
    fake.on("POST", CHAT, Reply(json=completion("fine", prompt=10, completion_tokens=4)))
    fake.on("POST", EMBED, Reply(json=EMBEDDING))
    source = write_jsonl(tmp_path / "in.jsonl", [
        chat_line("a"),                                       # 1
        embed_line("b"),                                      # 2
        "{not json",                                          # 3
        "",                                                   # 4: blank lines are skipped
        {"method": "POST", "url": CHAT, "body": {}},          # 5: no custom_id
        chat_line("a", "again"),                              # 6: duplicate
        {**chat_line("w"), "url": "/v1/responses"},           # 7
        {**chat_line("s"), "body": ["not", "an", "object"]},  # 8
        chat_line("c", stream=True),                          # 9
    ])  # fmt: skip
    target = tmp_path / "out.jsonl"
    ran = await llmrelay("batch", source, target, env=env_for(fake))
    assert ran.code == 1 and "Traceback" not in ran.err  # malformed lines are failures
    for number in (3, 5, 6, 7, 8):
        assert f"line {number}:" in ran.err
    assert "5 malformed line(s)" in ran.err and "duplicate custom_id 'a' (first used on line 1)" in ran.err
    lines = results_of(target)
    assert [(r["custom_id"], r["error"] and r["error"].get("line")) for r in lines] == [
        ("a", None),
        ("b", None),
        (None, 3),
        (None, 5),
        ("a", 6),
        ("w", 7),
        ("s", 8),
        ("c", None),
    ]  # input order, each custom_id's own result once, then the duplicate's error
    codes = [r["error"]["code"] for r in lines if r["error"]]
    assert codes == ["invalid_json", "invalid_request", "duplicate_custom_id", "invalid_request", "invalid_request"]
    assert all(r["response"] is None for r in lines if r["error"])
    assert lines[0]["response"]["body"]["choices"][0]["message"]["content"] == "fine"
    assert lines[1]["response"]["body"]["data"][1]["embedding"] == [1.0, 0.0]
    assert fake.count(CHAT) == 2 and fake.count(EMBED) == 1
    totals = summary(ran.err)
    chat, embedding = (
        chat_cost("openai", "gpt-4o-mini", Usage(10, 4)),
        embedding_cost("openai", "text-embedding-3-small", Usage(4)),
    )
    assert chat and embedding
    cost = 2 * chat + embedding
    assert totals["succeeded"] == 3 and totals["failed"] == 5 and totals["skipped"] == 0
    assert totals["prompt"] == 10 + 10 + 4 and totals["completion"] == 8
    assert totals["cost"] == pytest.approx(cost, abs=1e-6)


async def test_command_resumes_after_an_interrupted_run(fake: FakeServer, tmp_path: Path) -> None:
    first = [Reply(json=completion("one")), Reply(json=completion("two")), Reply(json=completion("slow"), delay_s=30)]
    fake.on("POST", CHAT, *first)
    source = write_jsonl(tmp_path / "in.jsonl", [chat_line(f"r{i}") for i in range(6)])
    target = tmp_path / "out.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmrelay", "batch", str(source), str(target), "--concurrency", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env_for(fake),
    )  # fmt: skip
    for _ in range(1200):  # up to 60 s for the two quick answers to be written
        if target.exists() and target.read_text().count("\n") >= 2 and fake.count(CHAT) >= 3:
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130 and b"run again to resume" in err and b"Traceback" not in err
    assert [r["custom_id"] for r in results_of(target)] == ["r0", "r1"]  # nothing finished was lost
    with target.open("a") as f:
        f.write('{"id": "batch_req_x", "custom_id": "r2", "respon')  # as if killed mid-write
    fake.on("POST", CHAT, Reply(json=completion("again")))
    before = fake.count(CHAT)
    ran = await llmrelay("batch", source, target, env=env_for(fake))
    assert ran.code == 0, ran.err
    assert fake.count(CHAT) - before == 4  # r2..r5 only
    lines = results_of(target)
    assert [r["custom_id"] for r in lines] == [f"r{i}" for i in range(6)] and all(r["error"] is None for r in lines)
    assert summary(ran.err)["skipped"] == 2 and summary(ran.err)["succeeded"] == 4


async def test_command_retries_failed_requests_only(fake: FakeServer, tmp_path: Path) -> None:
    fake.on(
        "POST", CHAT, Reply(json=completion("a")), Reply(status=400, json=PROVIDER_400), Reply(json=completion("c"))
    )
    source = write_jsonl(tmp_path / "in.jsonl", [chat_line("a"), chat_line("b"), chat_line("c")])
    target = tmp_path / "out.jsonl"
    ran = await llmrelay("batch", source, target, "-n", "1", env=env_for(fake))
    assert ran.code == 1 and summary(ran.err)["failed"] == 1
    failed = results_of(target)[1]
    assert failed["custom_id"] == "b" and failed["error"]["code"] == "invalid_request"
    assert failed["response"]["status_code"] == 400 and "bad thing" in failed["error"]["message"]
    fake.on("POST", CHAT, Reply(json=completion("b at last")))
    again = await llmrelay("batch", source, target, env=env_for(fake))
    assert again.code == 0 and fake.count(CHAT) == 4  # only b was sent again
    lines = results_of(target)
    assert [r["custom_id"] for r in lines] == ["a", "b", "c"]  # compacted: b's latest result only
    assert lines[1]["response"]["body"]["choices"][0]["message"]["content"] == "b at last"
    totals = summary(again.err)
    assert (totals["succeeded"], totals["failed"], totals["skipped"]) == (1, 0, 2)


async def test_command_refuses_the_output_of_another_input(fake: FakeServer, tmp_path: Path) -> None:
    fake.on("POST", CHAT, Reply(json=completion("ok")))
    source = write_jsonl(tmp_path / "in.jsonl", [chat_line("a")])
    target = tmp_path / "out.jsonl"
    other = {"id": "batch_req_1", "custom_id": "zzz", "response": {"status_code": 200, "body": {}}, "error": None}
    write_jsonl(target, [other])
    before = target.read_text()
    ran = await llmrelay("batch", source, target, env=env_for(fake))
    assert ran.code == 1 and "Traceback" not in ran.err and fake.count() == 0
    assert str(target) in ran.err and "'zzz'" in ran.err and "--force" in ran.err
    assert target.read_text() == before
    forced = await llmrelay("batch", source, target, "--force", env=env_for(fake))
    assert forced.code == 0 and [r["custom_id"] for r in results_of(target)] == ["a", "zzz"]


async def test_command_respects_the_concurrency_limit(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [chat_line(f"r{i}") for i in range(10)])
    async with GatedServer(gate=2) as srv:
        srv.on("POST", CHAT, Reply(json=completion("ok")))
        ran = await llmrelay("batch", source, tmp_path / "out.jsonl", "--concurrency", "2", env=env_for(srv))
    assert ran.code == 0 and srv.peak == 2 and srv.count(CHAT) == 10


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing-in", "cannot read IN"),
        ("no-out-dir", "does not exist"),
        ("out-is-dir", "not a file"),
        ("same-file", "same file"),
        ("out-not-results", "is not a batch result"),
        ("bad-config", "cannot read config"),
    ],
)
async def test_command_errors_are_one_line(case: str, needle: str, fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [chat_line("a")])
    target: Path = tmp_path / "out.jsonl"
    extra: list[str] = []
    if case == "missing-in":
        source = tmp_path / "nope.jsonl"
    elif case == "no-out-dir":
        target = tmp_path / "nope" / "out.jsonl"
    elif case == "out-is-dir":
        target = tmp_path
    elif case == "same-file":
        target = source
    elif case == "out-not-results":
        target.write_text("id,answer\n1,2\n")
    else:
        extra = ["--config", str(tmp_path / "nope.yaml")]
    ran = await llmrelay("batch", source, target, *extra, env=env_for(fake))
    assert ran.code == 1 and needle in ran.err and "Traceback" not in ran.err
    assert len(ran.err.strip().splitlines()) == 1 and fake.count() == 0


async def test_client_batch_uses_the_sync_and_async_clients_alike(fake: FakeServer) -> None:
    fake.on("POST", CHAT, Reply(json=completion("Hi")))
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url + "/v1"}
    async with AsyncClient(env=env) as client:
        seen: list[str | None] = []
        results = await client.batch(
            [chat_line("a"), chat_line("b")], concurrency=1, on_result=lambda r: seen.append(r.custom_id)
        )
    assert [r.custom_id for r in results] == ["a", "b"] == sorted(seen) and all(r.ok for r in results)

    def run_sync() -> list[BatchResult]:
        with Client(env=env) as sync:
            return sync.batch([chat_line("c")])

    [result] = await asyncio.to_thread(run_sync)
    assert result.ok and result.line["response"]["body"]["choices"][0]["message"]["content"] == "Hi"
    assert fake.count(CHAT) == 3
