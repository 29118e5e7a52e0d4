"""The OpenAI API of the gateway: chat completions (JSON and SSE), embeddings, models.

Any provider serves them: requests are decoded into canonical requests, sent
through the router, and answers encoded back in OpenAI's format. JSON answers
name the model that actually answered, and headers say which deployment and
group did it (``x-llmrelay-deployment``, ``x-llmrelay-group``, ``x-llmrelay-attempts``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .. import errors
from .._ids import new_id
from .._json import dumps
from .._sse import encode_sse
from ..providers.openai.completions import CompletionEncoder
from ..providers.openai.completions import request_from_wire as completion_request_from_wire
from ..providers.openai.completions import response_to_wire as completion_to_wire
from ..providers.openai.inbound import (
    chunk_to_wire,
    embedding_request_from_wire,
    embedding_response_to_wire,
    request_from_wire,
    response_to_wire,
    usage_to_wire,
)
from ..types import ChatResponse, Finish, StreamEvent
from ..validation import check_request
from .caching import created_at
from .chat import route_headers, serve_chat, serve_embedding
from .conversations import conversation_of, history, remember
from .exchange import Exchange
from .http import HTTPError

if TYPE_CHECKING:
    from .app import Gateway


def _streaming(body: dict[str, Any]) -> tuple[bool, bool]:
    """``stream`` and ``stream_options.include_usage`` of a body, checked."""
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise HTTPError(400, f"'stream' must be true or false, not {stream!r}", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise HTTPError(400, "'stream_options' must be an object", param="stream_options")
    return bool(stream), bool((options or {}).get("include_usage"))


async def chat_completions(gw: Gateway, ex: Exchange) -> None:
    body = await gw.json_request(ex)
    stream, include_usage = _streaming(body)
    choices = body.pop("n", None)
    if choices is not None and choices != 1:
        raise HTTPError(
            400, f"'n' must be 1, not {choices!r}: the gateway answers with one choice; send separate requests",
            param="n",
        )  # fmt: skip
    caller = ex.caller
    conversation = conversation_of(ex, body)
    asked = body.get("messages")
    if conversation is not None and isinstance(asked, list):
        body["messages"] = [*await history(gw, caller, conversation), *asked]
    request = request_from_wire(body)
    check_request(request)

    async def to_wire(response: ChatResponse) -> dict[str, Any]:
        payload = response_to_wire(response, created_at(response, time.time()))
        if conversation is not None:
            await remember(gw, caller, conversation, asked or [], payload["choices"][0]["message"])
        return payload

    async def keep(response: ChatResponse) -> None:
        assert conversation is not None
        reply = response_to_wire(response, 0)["choices"][0]["message"]
        await remember(gw, caller, conversation, asked or [], reply)

    await serve_chat(
        gw, ex, request, stream=stream, to_wire=to_wire, on_finish=keep if conversation is not None else None,
        encoder=lambda: ChunkEncoder(request.model, include_usage),
    )  # fmt: skip


async def completions(gw: Gateway, ex: Exchange) -> None:
    """Legacy completions: the prompt as one user message to any chat deployment."""
    body = await gw.json_request(ex)
    stream, include_usage = _streaming(body)
    request, echo = completion_request_from_wire(body)
    check_request(request)

    async def to_wire(response: ChatResponse) -> dict[str, Any]:
        return completion_to_wire(response, created_at(response, time.time()), request.model, echo)

    await serve_chat(
        gw, ex, request, stream=stream, to_wire=to_wire,
        encoder=lambda: CompletionEncoder(request.model, int(time.time()), include_usage, echo),
    )  # fmt: skip


class ChunkEncoder:
    """Canonical stream events -> OpenAI ``chat.completion.chunk`` server-sent events."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._id, self._created, self._model = f"chatcmpl-{new_id()}", int(time.time()), model
        self._head: dict[str, Any] = {
            "id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": model,
        }  # fmt: skip
        self._include_usage = include_usage

    def start(self) -> bytes:
        role = {"role": "assistant", "content": ""}
        return _data({**self._head, "choices": [{"index": 0, "delta": role, "finish_reason": None}]})

    def feed(self, event: StreamEvent) -> bytes:
        head = self._head
        if type(event) is Finish:
            finish = "stop" if event.reason == "error" else event.reason
            out = _data({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if self._include_usage:
                out += _data({**head, "choices": [], "usage": usage_to_wire(event.response.usage)})
            return out
        chunk = chunk_to_wire(event, self._id, self._created, self._model)
        return b"" if chunk is None else _data(chunk)

    def error(self, exc: errors.LLMError) -> bytes:
        return _data({"error": {"message": str(exc), "type": "api_error", "code": exc.code}})

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"


def _data(payload: dict[str, Any]) -> bytes:
    return encode_sse(dumps(payload))


async def embeddings(gw: Gateway, ex: Exchange) -> None:
    body = await gw.json_request(ex)
    request, encoding = embedding_request_from_wire(body)  # a bad field is a 400 naming it
    response = await serve_embedding(gw, ex, request)
    await ex.reply(200, embedding_response_to_wire(response, encoding), route_headers(response.route))


async def list_models(gw: Gateway, ex: Exchange) -> None:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "llmrelay"} for name in gw.listed_models(ex.caller)
    ]
    await ex.reply(200, {"object": "list", "data": data})


async def get_model(gw: Gateway, ex: Exchange) -> None:
    model = ex.params["model"]
    gw.check_listed(ex.caller, model)
    await ex.reply(200, {"id": model, "object": "model", "created": 0, "owned_by": "llmrelay"})


__all__ = ["chat_completions", "completions", "embeddings", "get_model", "list_models"]
