"""A fake OpenAI-compatible upstream that misbehaves on purpose, for chaos benchmarks of the router.

One process, one asyncio loop, one port per "deployment" on 127.0.0.1. Each request to
``POST /v1/chat/completions`` on a port fails with that port's probability, with one fault picked
uniformly among: http500, http429, reset (TCP RST, no response), hang, slow (late but correct),
cut (connection dropped mid-body) and error_event (in-stream error; 503 when not streaming).
Otherwise it answers ``"reply to <last message>: w0 w1 ... w19"`` (20 chunks when streaming).

Continuation as vLLM does it: a request with ``continue_final_message: true`` whose last message
is the assistant's gets only the rest of the answer after that message's text (which must be a
beginning of the answer: else a 400), so a router can go on with a stream another port cut.

    python bench/chaos_upstream.py --ports 9101,9102,9103 --fail 0.3,0.3,0 --seed 7 \\
        [--think-ms 2] [--chunk-ms 0] [--hang-s 30] [--slow-s 0.4] [--faults slow,cut]

Prints ``ready`` once every port listens. ``GET /stats`` gives per-port counters of ``ok`` and of
each fault, ``POST /stats/reset`` zeroes them, ``GET /v1/models`` lists the one model ``chaos``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import signal
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

FAULTS = ("http500", "http429", "reset", "hang", "slow", "cut", "error_event")
WORDS = [f" w{i}" for i in range(20)]  # piece i of the answer is WORDS[i]; piece 0 also carries the prefix
JSON = "application/json"


def _error(message: str, type_: str, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


ERR_500 = _error("chaos: internal error", "server_error", None)
ERR_429 = _error("chaos: rate limited", "rate_limit_error", "rate_limit_exceeded")
ERR_503 = _error("chaos: overloaded", "server_error", "overloaded")
ERR_400 = _error("chaos: bad request", "invalid_request_error", None)
ERR_EVENT = b'data: {"error":{"message":"chaos: overloaded","type":"server_error","code":"overloaded"}}\n\n'
# Tails of chunk objects, appended to a per-request prefix '{"id":..,"object":..,"created":..,"model":..'.
TAILS = [b',"choices":[{"index":0,"delta":{"content":' + orjson.dumps(w) + b'},"finish_reason":null}]}' for w in WORDS]
STOP_TAIL = b',"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
DONE = b"data: [DONE]\n\n"
MODELS = orjson.dumps({"object": "list", "data": [{"id": "chaos", "object": "model", "owned_by": "chaos"}]})
RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a TCP RST


@dataclass
class Config:
    fail: dict[int, float]
    rngs: dict[int, random.Random]
    stats: dict[str, dict[str, int]]
    think_s: float
    chunk_s: float
    hang_s: float
    slow_s: float
    faults: tuple[str, ...] = FAULTS


CONFIG = web.AppKey("config", Config)
_ids = itertools.count()


def _drop(request: web.Request, rst: bool) -> None:
    """Kill the connection under the request; aiohttp then finds it closed and sends nothing more."""
    transport = request.transport
    if transport is None:
        return
    if rst:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
    transport.abort()


def _text(message: Any) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _prompt(body: Any) -> tuple[str, str]:
    """The question (the last message's text), and the beginning of the answer to go on from."""
    messages = body["messages"]
    if body.get("continue_final_message") is True and messages[-1]["role"] == "assistant":
        return _text(messages[-2]), _text(messages[-1])
    return _text(messages[-1]), ""


def pieces_after(head: str, given: str) -> list[str] | None:
    """The answer's stream pieces after ``given`` (a piece it ends inside is given from there
    on), ``None`` when ``given`` is not a beginning of the answer."""
    pieces = [head + WORDS[0], *WORDS[1:]]
    if not (head + "".join(WORDS)).startswith(given):
        return None
    rest, offset = [], 0
    for piece in pieces:
        if offset + len(piece) > len(given):
            rest.append(piece[max(len(given) - offset, 0) :])
        offset += len(piece)
    return rest


async def chat(request: web.Request) -> web.StreamResponse:
    try:
        return await answer(request)
    except ConnectionResetError:  # the client left (a hedged attempt that lost, say): nothing to answer
        return web.Response()


async def answer(request: web.Request) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    try:
        body = orjson.loads(await request.read())
        prompt, given = _prompt(body)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return web.Response(status=400, body=ERR_400, content_type=JSON)
    stream = body.get("stream") is True
    model = body.get("model") or "chaos"
    if request.transport is None:  # client already gone
        return web.Response()
    port: int = request.transport.get_extra_info("sockname")[1]
    rng = cfg.rngs[port]
    fault = rng.choice(cfg.faults) if rng.random() < cfg.fail[port] else "ok"
    cfg.stats[str(port)][fault] += 1

    if fault == "http500":
        return web.Response(status=500, body=ERR_500, content_type=JSON)
    if fault == "http429":
        return web.Response(
            status=429, body=ERR_429, content_type=JSON, headers={"retry-after-ms": "200", "retry-after": "1"}
        )
    if fault == "reset":
        _drop(request, rst=True)
        return web.Response()  # writing it fails quietly on the closed transport
    if fault == "hang":
        await asyncio.sleep(cfg.hang_s)
        _drop(request, rst=False)
        return web.Response()
    if fault == "error_event" and not stream:
        return web.Response(status=503, body=ERR_503, content_type=JSON)
    if fault == "slow":
        await asyncio.sleep(cfg.slow_s)
    if cfg.think_s > 0:
        await asyncio.sleep(cfg.think_s)

    rid = f"chatcmpl-chaos{next(_ids)}"
    created = int(time.time())
    head = "reply to " + prompt + ":"
    pieces = pieces_after(head, given)
    if pieces is None:
        return web.Response(
            status=400,
            body=_error("chaos: not a beginning of the answer", "invalid_request_error", None),
            content_type=JSON,
        )
    usage = {"prompt_tokens": 10, "completion_tokens": len(pieces), "total_tokens": 10 + len(pieces)}
    if not stream:
        answer = "".join(pieces)
        payload = orjson.dumps(
            {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": usage,
            }
        )
        if fault != "cut":
            return web.Response(body=payload, content_type=JSON)
        resp = web.StreamResponse(headers={"Content-Type": JSON})
        resp.content_length = len(payload)
        await resp.prepare(request)
        await resp.write(payload[: len(payload) // 2])
        _drop(request, rst=False)
        return resp

    prefix = orjson.dumps({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model})[:-1]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    stop_after = len(pieces)
    if fault == "cut":
        stop_after = min(5, len(pieces) - 1)
    elif fault == "error_event":
        stop_after = 0 if rng.random() < 0.5 else min(5, len(pieces) - 1)
    whole = not given  # the whole answer: its usual pieces, pre-encoded
    for i in range(stop_after):
        if i == 0 or not whole:
            delta = {"role": "assistant", "content": pieces[i]} if i == 0 else {"content": pieces[i]}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            line = b"data: " + prefix + b',"choices":[' + orjson.dumps(choice) + b"]}\n\n"
        else:
            line = b"data: " + prefix + TAILS[i] + b"\n\n"
        await resp.write(line)
        if cfg.chunk_s > 0:
            await asyncio.sleep(cfg.chunk_s)
    if fault == "cut":
        _drop(request, rst=False)
        return resp
    if fault == "error_event":
        await resp.write(ERR_EVENT)
        await resp.write_eof()
        return resp
    tail = b"data: " + prefix + STOP_TAIL + b"\n\n"
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        tail += b"data: " + prefix + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"
    await resp.write(tail + DONE)
    await resp.write_eof()
    return resp


async def models(_: web.Request) -> web.Response:
    return web.Response(body=MODELS, content_type=JSON)


async def stats(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app[CONFIG].stats), content_type=JSON)


async def stats_reset(request: web.Request) -> web.Response:
    for counters in request.app[CONFIG].stats.values():
        for kind in counters:
            counters[kind] = 0
    return web.Response(body=b"{}", content_type=JSON)


def parse_args(argv: list[str] | None = None) -> tuple[list[int], Config]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ports", required=True, help="comma-separated ports, e.g. 9101,9102,9103")
    parser.add_argument("--fail", required=True, help="comma-separated fault probability per port, e.g. 0.3,0.3,0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--think-ms", type=float, default=2.0, help="delay before answering")
    parser.add_argument("--chunk-ms", type=float, default=0.0, help="delay between stream chunks")
    parser.add_argument("--hang-s", type=float, default=30.0, help="how long a hung request stays open")
    parser.add_argument("--slow-s", type=float, default=0.4, help="extra delay of a slow answer")
    parser.add_argument("--faults", default=",".join(FAULTS), help="the faults to pick from (comma-separated)")
    args = parser.parse_args(argv)
    faults = tuple(args.faults.split(","))
    if not faults or not set(faults) <= set(FAULTS):
        parser.error(f"--faults takes some of {', '.join(FAULTS)}")
    ports = [int(p) for p in args.ports.split(",")]
    fails = [float(f) for f in args.fail.split(",")]
    if len(fails) != len(ports) or not all(0.0 <= f <= 1.0 for f in fails):
        parser.error("--fail needs one probability in [0, 1] per port")
    config = Config(
        fail=dict(zip(ports, fails, strict=True)),
        rngs={p: random.Random(args.seed + p) for p in ports},
        stats={str(p): dict.fromkeys(("ok", *FAULTS), 0) for p in ports},
        think_s=args.think_ms / 1000,
        chunk_s=args.chunk_ms / 1000,
        hang_s=args.hang_s,
        slow_s=args.slow_s,
        faults=faults,
    )
    return ports, config


async def serve(ports: list[int], config: Config) -> None:
    app = web.Application()
    app[CONFIG] = config
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    app.router.add_post("/stats/reset", stats_reset)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for port in ports:
            await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True, backlog=1024).start()
        print("ready", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    ports, config = parse_args(argv)
    asyncio.run(serve(ports, config))


if __name__ == "__main__":
    main()
