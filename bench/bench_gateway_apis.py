"""What each API the gateway speaks costs, against chat completions on the same upstream.

    python bench/bench_gateway_apis.py [--duration 4] [--runs 3]

Starts nginx (../shared/upstream/nginx.conf: JSON answers on /v1, 20-chunk streams on
/stream/v1) and ``llmrelay serve`` (one worker) as bench_gateway.py does, then, in each
run and in turn, drives every route with the same question under wrk at 16 connections,
JSON and streamed: chat completions, the Responses API, legacy completions, Anthropic
Messages and Gemini generateContent. Prints the median req/s of each and the server's
CPU time per request, with its ratio to chat completions' in the same runs (the goal: no
route costs more than chat completions, i.e. every CPU ratio about 1.0 or below).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_client import Upstream  # noqa: E402
from bench_gateway import CONFIG, PORT, cpu_s, serving  # noqa: E402
from bench_http_servers import lua_script, run_wrk  # noqa: E402

SYSTEM, QUESTION = "You are terse.", "Hello!"


def routes() -> dict[str, tuple[str, str, dict[str, object], dict[str, object]]]:
    """name -> (JSON path, stream path, JSON body, stream body): one question, each API's way."""
    chat = {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
            "max_tokens": 64, "temperature": 0.2}  # fmt: skip
    responses = {"instructions": SYSTEM, "input": QUESTION, "max_output_tokens": 64, "temperature": 0.2}
    messages = {"system": SYSTEM, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 64,
                "temperature": 0.2}  # fmt: skip
    completion = {"prompt": QUESTION, "max_tokens": 64, "temperature": 0.2}
    gemini = {"systemInstruction": {"parts": [{"text": SYSTEM}]},
              "contents": [{"role": "user", "parts": [{"text": QUESTION}]}],
              "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2}}  # fmt: skip
    usage = {"stream_options": {"include_usage": True}}
    return {
        "chat completions": ("/v1/chat/completions", "/v1/chat/completions",
                             {**chat, "model": "json"}, {**chat, "model": "stream", "stream": True, **usage}),
        "responses": ("/v1/responses", "/v1/responses",
                      {**responses, "model": "json", "store": False},
                      {**responses, "model": "stream", "stream": True, "store": False}),
        "completions": ("/v1/completions", "/v1/completions",
                        {**completion, "model": "json"}, {**completion, "model": "stream", "stream": True, **usage}),
        "messages": ("/v1/messages", "/v1/messages",
                     {**messages, "model": "json"}, {**messages, "model": "stream", "stream": True}),
        "gemini": ("/v1beta/models/json:generateContent", "/v1beta/models/stream:streamGenerateContent?alt=sse",
                   gemini, gemini),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    table = routes()
    rows: dict[tuple[str, str], list[float]] = {(name, kind): [] for name in table for kind in ("json", "stream")}
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key in rows}
    failures = 0
    with Upstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        if upstream.kind != "nginx":
            raise SystemExit("this benchmark needs nginx (apt-get install nginx)")
        directory = Path(tmp)
        config = directory / "llmrelay.yaml"
        config.write_text(CONFIG)
        scripts = {
            (name, kind): lua_script(directory, f"{i}-{kind}", orjson.dumps(body))
            for i, (name, (_, _, json_body, stream_body)) in enumerate(table.items())
            for kind, body in (("json", json_body), ("stream", stream_body))
        }
        env = {"LLMRELAY_LOG_LEVEL": os.environ.get("LLMRELAY_LOG_LEVEL", "INFO")}
        with serving(config, PORT, env) as server:
            base = f"http://127.0.0.1:{PORT}"
            for run in range(args.runs):
                names = list(table) if run % 2 == 0 else list(reversed(table))  # no route always goes first
                for name in names:
                    json_path, stream_path, _, _ = table[name]
                    for kind, path in (("json", json_path), ("stream", stream_path)):
                        run_wrk(base + path, scripts[(name, kind)], 16, 2, 1)  # warm-up
                        before = cpu_s(server.pid)
                        result = run_wrk(base + path, scripts[(name, kind)], 16, 2, args.duration)
                        cpu[(name, kind)].append((cpu_s(server.pid) - before) / max(result.requests, 1) * 1e6)
                        rows[(name, kind)].append(result.rps)
                        failures += result.non2xx + result.socket_errors
    med = {key: statistics.median(values) for key, values in rows.items()}
    us = {key: statistics.median(values) for key, values in cpu.items()}
    print(f"gateway: 1 worker, median of {args.runs} runs of {args.duration} s at 16 connections; "
          f"wrk errors/non-2xx: {failures}")  # fmt: skip
    print("  req/s, and the server's CPU time per request (steadier on a machine whose speed moves)")
    row = "  {:<18} {:>11} {:>7} {:>7} {:>13} {:>7} {:>7}"
    print(row.format("route", "JSON req/s", "us CPU", "x chat", "stream req/s", "us CPU", "x chat"))
    chat_json, chat_stream = us[("chat completions", "json")], us[("chat completions", "stream")]
    for name in table:
        j, s = med[(name, "json")], med[(name, "stream")]
        cj, cs = us[(name, "json")], us[(name, "stream")]
        print(row.format(name, f"{j:,.0f}", f"{cj:.0f}", f"{cj / chat_json:.2f}", f"{s:,.0f}", f"{cs:.0f}",
                         f"{cs / chat_stream:.2f}"))  # fmt: skip


if __name__ == "__main__":
    main()
