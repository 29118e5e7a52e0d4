"""The gateway (``llmrelay serve``, one worker) under wrk, against nginx in the same run.

    python bench/bench_gateway.py [--duration 5] [--runs 4] [--compare SRC] [--otel] [--floor PATH | --no-floor]

Starts nginx with ../shared/upstream/nginx.conf on 127.0.0.1:18080 (JSON answers
on /v1, 20-chunk streams on /stream/v1), then ``llmrelay serve`` on 127.0.0.1:18200
with a config whose group ``json`` is served by nginx's /v1 and ``stream`` by its
/stream/v1. Measures, median of ``--runs``:

- JSON and streamed req/s through the gateway at 16 connections (wrk ``-t2 -c16``);
- p50 latency at 1 connection through the gateway and straight to nginx (the
  gateway's added latency is the difference);
- the gateway's RSS idle and after the load.

The gateway runs as deployed by default: master key, metrics and one JSON access
log line per request (to /dev/null here; ``LLMRELAY_LOG_LEVEL=WARNING`` turns it off).

The floor (``--floor``, default ``../shared/floor_proxy.py`` beside the checkout): a
feature-less aiohttp proxy (parse, forward through one pooled client, re-encode) on the
same nginx, measured in the same runs; the gateway's figures are also given as ratios
to it, since this machine's speed moves from hour to hour. Goals as ratios: JSON
>= 0.6x the floor, streams >= 0.9x, added p50 <= +0.1 ms over the floor's.

``--compare SRC`` also serves the ``src`` folder of another checkout of llmrelay (an
earlier commit, say: ``git worktree add /tmp/before <commit>``) on the next port, and
runs the two in turn within each run, so both are measured on the machine as it is at
that moment; the table gains its column and the ratio of the two.

``--otel`` also serves this tree with OpenTelemetry on (``OTEL_EXPORTER_OTLP_ENDPOINT``:
an OTLP/HTTP receiver in this process, on 127.0.0.1, that counts what it gets), in the
same runs, and prints the CPU time telemetry adds per request.

The goals (issue: gateway): >= 3,000 JSON and >= 1,500 streamed req/s at 16
connections, <= 0.5 ms added p50 at 1 connection, RSS <= 80 MB idle and
<= 120 MB after load, on this 2-core machine shared with wrk and nginx.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_client import Upstream  # noqa: E402
from bench_http_servers import JSON_BODY, STREAM_BODY, lua_script, port_open, rss_mb, run_wrk  # noqa: E402

PORT = 18200
DIRECT = "http://127.0.0.1:18080/v1/chat/completions"
KEY = "sk-bench"
CONFIG = """\
providers:
  - {name: nginx, kind: openai, base_url: "http://127.0.0.1:18080/v1", api_key: sk-up}
  - {name: nginx-stream, kind: openai, base_url: "http://127.0.0.1:18080/stream/v1", api_key: sk-up}
models:
  - {name: json, deployments: [{provider: nginx, model: gpt-4o-mini}]}
  - {name: stream, deployments: [{provider: nginx-stream, model: gpt-4o-mini}]}
auth: {master_key: sk-bench}
"""


def body_for(raw: bytes, model: str) -> bytes:
    import orjson

    data = orjson.loads(raw)
    data["model"] = model
    return orjson.dumps(data)


@contextmanager
def serving(config: Path, port: int, env: dict[str, str], src: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``llmrelay serve`` (one worker) on ``port`` with ``config``, until the block ends;
    from the llmrelay package in ``src`` when given (else the installed one)."""
    command = [sys.executable, "-m", "llmrelay", "--config", str(config), "serve", "--port", str(port)]
    full_env = {**os.environ, **env}
    if src is not None:
        full_env["PYTHONPATH"] = str(src.resolve())
    with listening(command, port, "the gateway", full_env) as server:
        yield server


@contextmanager
def floor_proxy(path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The floor proxy on ``port`` (in front of nginx), until the block ends."""
    with listening([sys.executable, str(path), str(port)], port, "the floor proxy") as proc:
        yield proc


@contextmanager
def listening(
    command: list[str], port: int, what: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` running, once it listens on ``port`` (15 s at most), until the block ends."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if port_open(port):
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"{what} did not start")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


Rows = dict[str, list[float]]
OTLP_SEEN = {"requests": 0, "bytes": 0}


@contextmanager
def otlp_receiver() -> Iterator[int]:
    """An OTLP/HTTP traces receiver on 127.0.0.1 (a thread of this process) that counts
    what it is sent and answers 200; its port."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            self.rfile.read(size)
            OTLP_SEEN["requests"] += 1
            OTLP_SEEN["bytes"] += size
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def _otel_env(tree: str, receiver: int | None) -> dict[str, str]:
    """The environment that turns telemetry on for the ``telemetry on`` tree."""
    if receiver is None or "telemetry" not in tree:
        return {}
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver}", "OTEL_SERVICE_NAME": "bench"}


def cpu_s(pid: int) -> float:
    """The CPU time (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port: int, scripts: dict[str, Path], duration: int, rows: Rows, pid: int) -> None:
    """One run against the gateway on ``port``: JSON and streams at 16 connections (and the
    server's CPU time per request: steadier than req/s on a machine whose speed moves), p50 at 1."""
    base = f"http://127.0.0.1:{port}/v1/chat/completions"
    for kind in ("json", "stream"):
        run_wrk(base, scripts[kind], 16, 2, 2)  # warm-up
        before = cpu_s(pid)
        result = run_wrk(base, scripts[kind], 16, 2, duration)
        rows[f"{kind}_cpu"].append((cpu_s(pid) - before) / max(result.requests, 1) * 1e6)
        rows[kind].append(result.rps)
        rows["errors"].append(result.non2xx + result.socket_errors)
    one = run_wrk(base, scripts["json"], 1, 1, duration)
    rows["p50"].append(one.p50_ms)
    rows["errors"].append(one.non2xx + one.socket_errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--runs", type=int, default=4, help="an even number: each tree goes first as often")
    parser.add_argument("--compare", type=Path, default=None, metavar="SRC", help="another llmrelay src folder")
    parser.add_argument("--floor", type=Path, default=HERE.parents[1] / "shared" / "floor_proxy.py")
    parser.add_argument("--no-floor", action="store_true", help="measure without the floor proxy")
    parser.add_argument(
        "--otel", action="store_true", help="also this tree with telemetry on, exporting to a local OTLP receiver"
    )
    args = parser.parse_args()
    floor: Path | None = None if args.no_floor else args.floor
    if floor is not None and not floor.exists():
        raise SystemExit(f"no floor proxy at {floor}: pass --floor PATH or --no-floor")
    trees: list[tuple[str, Path | None]] = [("this", None)]
    if args.compare is not None:
        if not (args.compare / "llmrelay" / "__init__.py").exists():
            raise SystemExit(f"{args.compare} holds no llmrelay package (give its src folder)")
        trees.append((str(args.compare), args.compare))
    if args.otel:
        trees.append(("this, telemetry on", None))
    with Upstream() as upstream, tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        if upstream.kind != "nginx":
            raise SystemExit("this benchmark needs nginx (apt-get install nginx)")
        directory = Path(tmp)
        configs = []
        for i in range(len(trees)):  # each tree its own config folder, so its own store
            (directory / str(i)).mkdir()
            configs.append(directory / str(i) / "llmrelay.yaml")
            configs[-1].write_text(CONFIG)
        scripts = {
            "json": lua_script(directory, "json", body_for(JSON_BODY, "json")),
            "stream": lua_script(directory, "stream", body_for(STREAM_BODY, "stream")),
            "direct": lua_script(directory, "direct", JSON_BODY),
        }
        floor_scripts = {
            "json": lua_script(directory, "floor-json", body_for(JSON_BODY, "gpt-4o-mini")),
            "stream": lua_script(directory, "floor-stream", body_for(STREAM_BODY, "gpt-4o-mini-stream")),
        }
        env = {"LLMRELAY_LOG_LEVEL": os.environ.get("LLMRELAY_LOG_LEVEL", "INFO")}  # the access log on
        receiver = servers.enter_context(otlp_receiver()) if args.otel else None
        procs = [
            servers.enter_context(serving(configs[i], PORT + i, {**env, **_otel_env(name, receiver)}, src))
            for i, (name, src) in enumerate(trees)
        ]
        floor_port = PORT + len(trees)
        floor_proc = servers.enter_context(floor_proxy(floor, floor_port)) if floor is not None else None
        idle = [rss_mb(p.pid) for p in procs]
        keys = ("json", "stream", "json_cpu", "stream_cpu", "p50", "errors")
        results: list[Rows] = [{k: [] for k in keys} for _ in trees]
        floor_rows: Rows = {k: [] for k in keys}
        direct: list[float] = []
        for run in range(args.runs):
            order = list(range(len(trees)))
            if run % 2:
                order.reverse()  # neither tree always goes first
            for i in order:
                measure(PORT + i, scripts, args.duration, results[i], procs[i].pid)
            if floor_proc is not None:
                measure(floor_port, floor_scripts, args.duration, floor_rows, floor_proc.pid)
            direct.append(run_wrk(DIRECT, scripts["direct"], 1, 1, args.duration).p50_ms)
        after = [rss_mb(p.pid) for p in procs]
        floor_rss = rss_mb(floor_proc.pid) if floor_proc is not None else None
    nginx_p50 = statistics.median(direct)
    print(f"gateway: 1 worker, median of {args.runs} runs of {args.duration} s; nginx direct p50 {nginx_p50:.3f} ms")
    meds = [{k: statistics.median(v) for k, v in rows.items()} for rows in results]
    for (name, _), med, rows, rss0, rss1 in zip(trees, meds, results, idle, after, strict=True):
        print(f"[{name}]  wrk errors/non-2xx: {sum(rows['errors']):g}")
        print(f"  JSON at 16 connections       {med['json']:>9,.0f} req/s  (goal >= 3,000)")
        print(f"  streams at 16 connections    {med['stream']:>9,.0f} req/s  (goal >= 1,500; 20 chunks each)")
        print(f"  CPU per request (JSON/stream) {med['json_cpu']:>8.0f} / {med['stream_cpu']:.0f} us")
        print(f"  p50 at 1 connection          {med['p50']:>9.3f} ms: +{med['p50'] - nginx_p50:.3f} ms over nginx")
        print(f"  RSS idle / after load        {rss0:>9.1f} / {rss1:.1f} MB  (goals 80 / 120)")
    if args.otel:
        plain, traced = meds[0], meds[-1]
        print(
            "telemetry on, CPU per request added: "
            f"JSON {traced['json_cpu'] - plain['json_cpu']:+.0f} us, "
            f"stream {traced['stream_cpu'] - plain['stream_cpu']:+.0f} us; "
            f"req/s {traced['json'] / plain['json']:.3f} / {traced['stream'] / plain['stream']:.3f} of off; "
            f"the receiver got {OTLP_SEEN['requests']:,} exports ({OTLP_SEEN['bytes'] / 2**20:.1f} MiB)"
        )
    if len(meds) == 2 and not args.otel:
        this, other = meds
        print("this / compared: " + ", ".join(f"{k} {this[k] / other[k]:.3f}" for k in ("json", "stream", "p50")))
        print("CPU per request, this / compared: " + ", ".join(
            f"{k} {this[f'{k}_cpu'] / other[f'{k}_cpu']:.3f}" for k in ("json", "stream")))  # fmt: skip
    if floor_rss is not None:
        low = {k: statistics.median(v) for k, v in floor_rows.items()}
        print(f"[floor proxy]  wrk errors/non-2xx: {sum(floor_rows['errors']):g}; RSS after load {floor_rss:.1f} MB")
        print(f"  JSON {low['json']:,.0f} req/s, streams {low['stream']:,.0f} req/s, p50 {low['p50']:.3f} ms; "
              f"CPU per request {low['json_cpu']:.0f} / {low['stream_cpu']:.0f} us")  # fmt: skip
        for (name, _), med in zip(trees, meds, strict=True):
            print(
                f"[{name}] / floor: JSON {med['json'] / low['json']:.2f}x (goal >= 0.6), "
                f"streams {med['stream'] / low['stream']:.2f}x (goal >= 0.9), "
                f"p50 {med['p50'] - low['p50']:+.3f} ms (goal <= +0.1); "
                f"CPU per request {med['json_cpu'] / low['json_cpu']:.2f}x / "
                f"{med['stream_cpu'] / low['stream_cpu']:.2f}x"
            )


if __name__ == "__main__":
    main()
