"""The OpenAI API of the gateway: chat completions (JSON and SSE), embeddings, models.

Any provider serves them: requests are decoded into canonical requests, sent
through the router, and answers encoded back in OpenAI's format. JSON answers
name the model that actually answered, and headers say which deployment and
group did it (``x-llmrelay-deployment``, ``x-llmrelay-group``, ``x-llmrelay-attempts``).
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import orjson

from .. import errors
from ..client import check_params
from ..providers.openai_inbound import chunk_to_wire, request_from_wire, response_to_wire, usage_to_wire
from ..types import EmbeddingRequest, Finish, Route, StreamEvent, Usage
from .http import ClientGone, HTTPError, Receive, Scope, Send, json_body, read_body, send_json

if TYPE_CHECKING:
    from .app import Gateway

_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


def route_headers(route: Route | None) -> dict[str, str]:
    if route is None:
        return {}
    return {
        "x-llmrelay-deployment": route.deployment,
        "x-llmrelay-group": route.group,
        "x-llmrelay-attempts": str(route.attempts),
    }


async def chat_completions(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    body = json_body(await read_body(scope, receive, gw.max_body))
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise HTTPError(400, f"'stream' must be true or false, not {stream!r}", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise HTTPError(400, "'stream_options' must be an object", param="stream_options")
    request = request_from_wire(body)
    check_params(
        max_tokens=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
        seed=request.seed, stop=request.stop, user=request.user,
    )  # fmt: skip
    group = gw.group_for(request.model)
    if not stream:
        response = await gw.client.router.chat(group, request)
        payload = response_to_wire(response, int(time.time()))
        await send_json(send, 200, payload, route_headers(response.route))
        return
    include_usage = bool((options or {}).get("include_usage"))
    await _stream_chat(gw.client.router.stream(group, request), request.model, include_usage, receive, send)


async def _stream_chat(
    events: AsyncGenerator[StreamEvent, None], model: str, include_usage: bool, receive: Receive, send: Send
) -> None:
    """Server-sent events in OpenAI's chunk format. The first event is awaited
    before the status line, so a call that fails before its first token is an
    ordinary error answer; after it, a failure is an in-stream ``error`` event."""
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.Event()
    watcher = asyncio.create_task(cancel_on_disconnect(receive, task, gone))
    try:
        async with aclosing(events):
            try:
                first = await events.__anext__()
            except StopAsyncIteration:
                raise errors.ProviderError("the stream ended before any event") from None
            chunk_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
            await send({"type": "http.response.start", "status": 200, "headers": _SSE})
            role = {"role": "assistant", "content": ""}
            head = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model}
            await _event(send, {**head, "choices": [{"index": 0, "delta": role, "finish_reason": None}]})
            try:
                event: StreamEvent | None = first
                while event is not None:
                    await _forward(send, event, head, include_usage)
                    event = await anext(events, None)
            except errors.LLMError as exc:
                error = {"message": str(exc), "type": "api_error", "code": exc.code}
                await _event(send, {"error": error})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
    except asyncio.CancelledError:
        if not gone.is_set():
            raise
        task.uncancel()  # the client left: the upstream call is closed, nothing more to do
    finally:
        watcher.cancel()


async def _forward(send: Send, event: StreamEvent, head: dict[str, Any], include_usage: bool) -> None:
    if type(event) is Finish:
        finish = "stop" if event.reason == "error" else event.reason
        await _event(send, {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if include_usage:
            await _event(send, {**head, "choices": [], "usage": usage_to_wire(event.response.usage)})
        return
    chunk = chunk_to_wire(event, head["id"], head["created"], head["model"])
    if chunk is not None:
        await _event(send, chunk)


async def _event(send: Send, payload: dict[str, Any]) -> None:
    await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(payload) + b"\n\n", "more_body": True})


async def cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any], gone: asyncio.Event) -> None:
    """Cancel the streaming task as soon as the client goes away (the upstream call stops with it)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            task.cancel()
            return


async def embeddings(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    body = json_body(await read_body(scope, receive, gw.max_body))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise HTTPError(400, "'model' is required and must be a string", param="model")
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise HTTPError(400, "'input' must be a string or a non-empty list of strings", param="input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise HTTPError(400, "'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise HTTPError(400, "'dimensions' must be a positive integer", param="dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise HTTPError(400, "'user' must be a string", param="user")
    group = gw.group_for(model)
    request = EmbeddingRequest("", texts, dimensions, user, {})
    response = await gw.client.router.embed(group, request)
    data = [
        {"object": "embedding", "index": i, "embedding": _b64(vector) if encoding == "base64" else vector}
        for i, vector in enumerate(response.vectors)
    ]
    usage: Usage = response.usage
    payload = {
        "object": "list",
        "data": data,
        "model": response.model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
    }
    await send_json(send, 200, payload, route_headers(response.route))


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


async def list_models(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "llmrelay"} for name in gw.model_names()]
    await send_json(send, 200, {"object": "list", "data": data})


async def get_model(gw: Gateway, scope: Scope, receive: Receive, send: Send, model: str) -> None:
    if model not in gw.model_names():
        gw.group_for(model)  # a PROVIDER/MODEL the gateway can serve exists too; anything else is a 404
    await send_json(send, 200, {"id": model, "object": "model", "created": 0, "owned_by": "llmrelay"})


__all__ = ["ClientGone", "chat_completions", "embeddings", "get_model", "list_models"]
