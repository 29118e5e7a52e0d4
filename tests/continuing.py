"""A fake upstream that continues a cut answer the way real servers do: a real HTTP
server on 127.0.0.1 speaking OpenAI chat completions (as vLLM, with
``continue_final_message``) and Anthropic messages (a last assistant message is a
prefill).

Every question has one known answer (``answer_for``), streamed in word-sized
pieces. A request whose last message is the assistant's (and, in the OpenAI
format, which sets ``continue_final_message: true`` and ``add_generation_prompt:
false``) gets only the rest of the answer after that message's text, which must be
a beginning of the answer (else a 400, as would any other bad request). In the
Anthropic format a prefill ending in white space is a 400, as Anthropic answers.

``cuts`` scripts faults: each request takes the next entry (``None``: answer whole;
``n``: drop the connection after ``n`` pieces; ``("error", n)``: an in-stream error
event after ``n`` pieces, ``overloaded`` (transient) or, with ``("fatal", n)``, an
invalid request).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Cut = int | tuple[str, int] | None


def answer_for(question: str) -> str:
    return f"Answer to {question}: the first part, then the second part, and at last the end."


def pieces_of(text: str) -> list[str]:
    """Word-sized pieces, each word with the white space after it."""
    return re.findall(r"\S+\s*|\s+", text)


@dataclass
class Seen:
    path: str
    body: dict[str, Any]


@dataclass
class ContinuingServer:
    cuts: list[Cut] = field(default_factory=list)
    refuses_to_continue: bool = False  # a server without continue_final_message: 400 on a prefill
    requests: list[Seen] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> ContinuingServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def count(self) -> int:
        return len(self.requests)

    def _next_cut(self) -> Cut:
        return self.cuts.pop(0) if self.cuts else None

    # ---- OpenAI (vLLM) ---------------------------------------------------------------------

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Seen(request.path, body))
        messages = body["messages"]
        given = ""
        if messages[-1]["role"] == "assistant":
            if self.refuses_to_continue:
                return _error(400, "unknown field: continue_final_message")
            if body.get("continue_final_message") is not True or body.get("add_generation_prompt") is not False:
                return _error(400, "a last assistant message is answered, not continued, without the flags")
            given = _text(messages[-1])
            messages = messages[:-1]
        rest = _rest(answer_for(_text(messages[-1])), given)
        if rest is None:
            return _error(400, "the assistant message is not a beginning of the answer")
        cut = self._next_cut()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i, piece in enumerate(rest):
            if _stops_at(cut, i):
                return await _break(request, resp, cut, _openai_error)
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            await resp.write(_sse({"id": "c", "object": "chat.completion.chunk", "model": body["model"],
                                   "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))  # fmt: skip
        usage = {"prompt_tokens": 20, "completion_tokens": len(rest), "total_tokens": 20 + len(rest)}
        await resp.write(_sse({"id": "c", "object": "chat.completion.chunk", "model": body["model"],
                               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))  # fmt: skip
        await resp.write(_sse({"id": "c", "object": "chat.completion.chunk", "model": body["model"], "choices": [],
                               "usage": usage}) + b"data: [DONE]\n\n")  # fmt: skip
        await resp.write_eof()
        return resp

    # ---- Anthropic ---------------------------------------------------------------------------

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Seen(request.path, body))
        messages = body["messages"]
        given = ""
        if messages[-1]["role"] == "assistant":
            given = _text(messages[-1])
            if given != given.rstrip():
                return _error(400, "final assistant content cannot end with trailing whitespace", anthropic=True)
            messages = messages[:-1]
        rest = _rest(answer_for(_text(messages[-1])), given)
        if rest is None:
            return _error(400, "the assistant message is not a beginning of the answer", anthropic=True)
        cut = self._next_cut()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        start = {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": None, "usage": {"input_tokens": 20, "output_tokens": 1}}}  # fmt: skip
        await resp.write(_sse(start, "message_start"))
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        await resp.write(_sse(block, "content_block_start"))
        for i, piece in enumerate(rest):
            if _stops_at(cut, i):
                return await _break(request, resp, cut, _anthropic_error)
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            await resp.write(_sse(delta, "content_block_delta"))
        await resp.write(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        end = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": len(rest)}}
        await resp.write(_sse(end, "message_delta") + _sse({"type": "message_stop"}, "message_stop"))
        await resp.write_eof()
        return resp


def _text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _rest(answer: str, given: str) -> list[str] | None:
    if not answer.startswith(given):
        return None
    rest = answer[len(given) :]
    return pieces_of(rest) if rest else []


def _stops_at(cut: Cut, i: int) -> bool:
    return cut is not None and (cut if isinstance(cut, int) else cut[1]) == i


async def _break(request: web.Request, resp: web.StreamResponse, cut: Cut, error: Any) -> web.StreamResponse:
    if isinstance(cut, tuple):
        await resp.write(error(cut[0] == "fatal"))
        await resp.write_eof()
    elif request.transport is not None:
        request.transport.abort()
    return resp


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(data).encode() + b"\n\n"


def _openai_error(fatal: bool) -> bytes:
    kind, code = ("invalid_request_error", 400) if fatal else ("server_error", 503)  # vLLM's codes are numbers
    message = "upstream: " + ("refused" if fatal else "overloaded")
    return _sse({"error": {"message": message, "type": kind, "code": code}})


def _anthropic_error(fatal: bool) -> bytes:
    kind = "invalid_request_error" if fatal else "overloaded_error"
    return _sse({"type": "error", "error": {"type": kind, "message": "upstream trouble"}}, "error")


def _error(status: int, message: str, anthropic: bool = False) -> web.Response:
    if anthropic:
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    else:
        body = {"error": {"message": message, "type": "invalid_request_error"}}
    return web.json_response(body, status=status)


def whole(pieces: Sequence[str]) -> str:
    return "".join(pieces)
