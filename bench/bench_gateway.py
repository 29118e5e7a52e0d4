"""The gateway (``llmrelay serve``, one worker) under wrk, against nginx in the same run.

    python bench/bench_gateway.py [--duration 5] [--runs 3]

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
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_client import Upstream  # noqa: E402
from bench_http_servers import JSON_BODY, STREAM_BODY, lua_script, port_open, rss_mb, run_wrk  # noqa: E402

PORT = 18200
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
def serving(config: Path, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``llmrelay serve`` (one worker) on ``port`` with ``config``, until the block ends."""
    command = [sys.executable, "-m", "llmrelay", "--config", str(config), "serve", "--port", str(port)]
    server = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if port_open(port):
                break
            time.sleep(0.05)
        else:
            raise SystemExit("the gateway did not start")
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with Upstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        if upstream.kind != "nginx":
            raise SystemExit("this benchmark needs nginx (apt-get install nginx)")
        directory = Path(tmp)
        config = directory / "llmrelay.yaml"
        config.write_text(CONFIG)
        scripts = {
            "json": lua_script(directory, "json", body_for(JSON_BODY, "json")),
            "stream": lua_script(directory, "stream", body_for(STREAM_BODY, "stream")),
            "direct": lua_script(directory, "direct", JSON_BODY),
        }
        env = {"LLMRELAY_LOG_LEVEL": os.environ.get("LLMRELAY_LOG_LEVEL", "INFO")}  # the access log on
        with serving(config, PORT, env) as server:
            idle = rss_mb(server.pid)
            base = f"http://127.0.0.1:{PORT}/v1/chat/completions"
            direct = "http://127.0.0.1:18080/v1/chat/completions"
            rows: dict[str, list[float]] = {k: [] for k in ("json", "stream", "p50", "direct_p50", "errors")}
            for _ in range(args.runs):
                for kind in ("json", "stream"):
                    run_wrk(base, scripts[kind], 16, 2, 2)  # warm-up
                    result = run_wrk(base, scripts[kind], 16, 2, args.duration)
                    rows[kind].append(result.rps)
                    rows["errors"].append(result.non2xx + result.socket_errors)
                one = run_wrk(base, scripts["json"], 1, 1, args.duration)
                rows["p50"].append(one.p50_ms)
                rows["direct_p50"].append(run_wrk(direct, scripts["direct"], 1, 1, args.duration).p50_ms)
                rows["errors"].append(one.non2xx + one.socket_errors)
            after = rss_mb(server.pid)
    med = {k: statistics.median(v) for k, v in rows.items()}
    errors = sum(rows["errors"])
    print(f"gateway: 1 worker, median of {args.runs} runs of {args.duration} s; wrk errors/non-2xx: {errors:g}")
    print(f"  JSON at 16 connections       {med['json']:>9,.0f} req/s  (goal >= 3,000)")
    print(f"  streams at 16 connections    {med['stream']:>9,.0f} req/s  (goal >= 1,500; 20 chunks each)")
    added = med["p50"] - med["direct_p50"]
    direct = med["direct_p50"]
    print(f"  p50 at 1 connection          {med['p50']:>9.3f} ms vs nginx direct {direct:.3f} ms: +{added:.3f} ms")
    print(f"  RSS idle / after load        {idle:>9.1f} / {after:.1f} MB  (goals 80 / 120)")


if __name__ == "__main__":
    main()
