"""A stand-in for ../shared/upstream/nginx.conf when nginx is not installed:
the same fixed answers on the same routes (slower than nginx, so ratios
against it understate the library's share)."""

from __future__ import annotations

import json
import sys

from aiohttp import web

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1732492800,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
).encode()


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1732492800,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


PIECES = ["H", "e", "l", "lo", "!", " ", "H", "ow", " ", "c", "an", " ", "I", " ", "he", "lp", "?"]
STREAM = (
    _chunk({"role": "assistant", "content": ""})
    + b"".join(_chunk({"content": p}) for p in PIECES)
    + _chunk({}, "stop")
    + b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1732492800,"model":"gpt-4o-mini",'
    b'"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}\n\n' + b"data: [DONE]\n\n"
)
MODELS = json.dumps({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}).encode()


async def completion(_: web.Request) -> web.Response:
    return web.Response(body=COMPLETION, content_type="application/json")


async def stream(_: web.Request) -> web.Response:
    return web.Response(body=STREAM, content_type="text/event-stream")


async def models(_: web.Request) -> web.Response:
    return web.Response(body=MODELS, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", completion)
    app.router.add_post("/stream/v1/chat/completions", stream)
    app.router.add_get("/v1/models", models)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
