"""Library overhead against a zero-think-time upstream, measured in one run.

    python bench/bench_client.py [--calls 2000] [--runs 5]

Starts nginx with ../shared/upstream/nginx.conf on 127.0.0.1:18080 (Debian's
nginx must be installed; if it is not, an aiohttp server with the same fixed
answers stands in and the report says so), then measures, as the median of
several runs:

1. sequential per-call time of raw aiohttp (POST + JSON parse) vs
   ``AsyncClient.chat`` on the same route; the ratio is the library's cost
   (goal <= 1.3x); and the default transport alone (``Http1Transport.send``);
2. a whole 20-chunk stream through ``AsyncClient.stream`` vs raw aiohttp
   reading the same bytes (goal <= 1.5x);
3. the cost of decoding one stream chunk (SSE framing + codec + assembly);
4. ``python -c "import llmrelay"`` vs bare ``python -c pass``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PORT = 18080
BASE = f"http://127.0.0.1:{PORT}"


def find_nginx_conf() -> Path | None:
    for parent in HERE.parents:
        conf = parent / "shared" / "upstream" / "nginx.conf"
        if conf.exists():
            return conf
    return None


class Upstream:
    """nginx if available, else a stand-in aiohttp server in a subprocess."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.prefix: str | None = None
        self.kind = ""

    def __enter__(self) -> Upstream:
        conf = find_nginx_conf()
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if nginx and conf:
            self.prefix = tempfile.mkdtemp(prefix="llmrelay-nginx-")
            subprocess.run([nginx, "-c", str(conf), "-p", self.prefix, "-e", "stderr"], check=True)
            self.kind = "nginx"
        else:
            self.proc = subprocess.Popen([sys.executable, str(HERE / "standin_upstream.py"), str(PORT)])
            self.kind = "aiohttp stand-in (nginx not installed)"
        deadline = time.time() + 10
        import urllib.request

        while time.time() < deadline:
            try:
                urllib.request.urlopen(BASE + "/v1/models", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("upstream did not start")

    def __exit__(self, *exc: object) -> None:
        if self.prefix:
            pid = Path(self.prefix, "nginx.pid")
            if pid.exists():
                os.kill(int(pid.read_text()), 3)  # SIGQUIT: graceful stop
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)


BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


async def raw_aiohttp(calls: int) -> float:
    import aiohttp
    import orjson

    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            async with session.post(BASE + "/v1/chat/completions", data=BODY, headers=HEADERS) as r:
                orjson.loads(await r.read())
        start = time.perf_counter()
        for _ in range(calls):
            async with session.post(BASE + "/v1/chat/completions", data=BODY, headers=HEADERS) as r:
                data = orjson.loads(await r.read())
                assert data["choices"][0]["message"]["content"]
        return (time.perf_counter() - start) / calls


async def raw_aiohttp_stream(calls: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        for _ in range(calls):
            async with session.post(BASE + "/stream/v1/chat/completions", data=BODY, headers=HEADERS) as r:
                async for _chunk in r.content.iter_any():
                    pass
        return (time.perf_counter() - start) / calls


async def raw_transport(calls: int) -> float:
    """The default transport alone (``Http1Transport.send``) + JSON parse, as ``raw_aiohttp``."""
    import orjson

    from llmrelay import Http1Transport, Timeouts

    transport, timeouts = Http1Transport(), Timeouts()
    url = BASE + "/v1/chat/completions"
    for _ in range(50):
        orjson.loads((await transport.send("POST", url, headers=HEADERS, body=BODY, timeouts=timeouts)).body)
    start = time.perf_counter()
    for _ in range(calls):
        data = orjson.loads((await transport.send("POST", url, headers=HEADERS, body=BODY, timeouts=timeouts)).body)
        assert data["choices"][0]["message"]["content"]
    elapsed = time.perf_counter() - start
    await transport.aclose()
    return elapsed / calls


def client(stream: bool = False):  # type: ignore[no-untyped-def]
    from llmrelay import AsyncClient

    base = BASE + ("/stream/v1" if stream else "/v1")
    return AsyncClient(env={"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": base})


async def relay_chat(calls: int) -> float:
    async with client() as c:
        messages = [{"role": "user", "content": "Hello!"}]
        for _ in range(50):
            await c.chat("openai/gpt-4o-mini", messages)
        start = time.perf_counter()
        for _ in range(calls):
            r = await c.chat("openai/gpt-4o-mini", messages)
            assert r.content
        return (time.perf_counter() - start) / calls


async def relay_stream(calls: int) -> float:
    async with client(stream=True) as c:
        messages = [{"role": "user", "content": "Hello!"}]
        start = time.perf_counter()
        for _ in range(calls):
            async for _event in c.stream("openai/gpt-4o-mini", messages):
                pass
        return (time.perf_counter() - start) / calls


def chunk_decode_cost(n: int = 20_000) -> float:
    """Seconds per chunk: SSE framing + chat.completion.chunk decoding + assembly."""
    from llmrelay._assemble import StreamAssembler
    from llmrelay._sse import SSEDecoder
    from llmrelay.providers.openai.stream import ChatStreamDecoder

    chunk = (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1732492800,'
        b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}\n\n'
    )
    asm = StreamAssembler("openai", "gpt-4o-mini")
    decoder = ChatStreamDecoder(asm, "openai")
    sse = SSEDecoder()
    start = time.perf_counter()
    for _ in range(n):
        for frame in sse.feed(chunk):
            for event in decoder.feed(frame):
                asm.add(event)
    return (time.perf_counter() - start) / n


def import_time(runs: int) -> tuple[float, float]:
    def timed(code: str) -> float:
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    return timed("pass"), timed("import llmrelay")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with Upstream() as upstream:
        rows: dict[str, list[float]] = {"raw": [], "transport": [], "relay": [], "raw_stream": [], "relay_stream": []}
        for _ in range(args.runs):  # interleaved, so drift hits both sides alike
            rows["raw"].append(asyncio.run(raw_aiohttp(args.calls)))
            rows["transport"].append(asyncio.run(raw_transport(args.calls)))
            rows["relay"].append(asyncio.run(relay_chat(args.calls)))
            rows["raw_stream"].append(asyncio.run(raw_aiohttp_stream(args.calls // 4)))
            rows["relay_stream"].append(asyncio.run(relay_stream(args.calls // 4)))
        med = {k: statistics.median(v) for k, v in rows.items()}
        decode = statistics.median(chunk_decode_cost() for _ in range(args.runs))
        bare, imported = import_time(args.runs)
    print(f"upstream: {upstream.kind}; {args.runs} runs x {args.calls} sequential calls; medians")
    print(f"  raw aiohttp POST + JSON parse     {med['raw'] * 1e6:8.1f} us/call")
    print(
        f"  Http1Transport.send + JSON parse  {med['transport'] * 1e6:8.1f} us/call  "
        f"ratio {med['transport'] / med['raw']:.2f}x (the default transport alone)"
    )
    print(
        f"  AsyncClient.chat                  {med['relay'] * 1e6:8.1f} us/call  "
        f"ratio {med['relay'] / med['raw']:.2f}x (goal <= 1.3x)"
    )
    print(f"  raw aiohttp, 20-chunk stream      {med['raw_stream'] * 1e6:8.1f} us/stream")
    print(
        f"  AsyncClient.stream, 20 chunks     {med['relay_stream'] * 1e6:8.1f} us/stream  "
        f"ratio {med['relay_stream'] / med['raw_stream']:.2f}x (goal <= 1.5x)"
    )
    print(f"  decode one stream chunk           {decode * 1e6:8.2f} us")
    print(f"  python -c pass                    {bare * 1e3:8.1f} ms")
    print(
        f"  python -c 'import llmrelay'       {imported * 1e3:8.1f} ms  "
        f"(+{(imported - bare) * 1e3:.1f} ms, goal <= 300 ms)"
    )


if __name__ == "__main__":
    main()
