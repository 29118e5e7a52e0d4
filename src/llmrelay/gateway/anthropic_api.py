"""The Anthropic Messages API of the gateway: ``POST /v1/messages`` (JSON and
the exact SSE event sequence) and ``POST /v1/messages/count_tokens``, served by
any provider through the router."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING

from .. import errors
from ..client import check_params
from ..providers.anthropic_inbound import StreamEncoder, request_from_wire, response_to_wire
from ..types import StreamEvent
from .http import HTTPError, Receive, Scope, Send, json_body, read_body, send_json
from .openai_api import cancel_on_disconnect, route_headers

if TYPE_CHECKING:
    from .app import Gateway

_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


async def messages(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    body = json_body(await read_body(scope, receive, gw.max_body))
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise HTTPError(400, "stream: must be true or false")
    request = request_from_wire(body)
    check_params(
        max_tokens=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
        seed=None, stop=request.stop, user=request.user,
    )  # fmt: skip
    group = gw.group_for(request.model)
    if not stream:
        response = await gw.client.router.chat(group, request)
        await send_json(send, 200, response_to_wire(response), route_headers(response.route))
        return
    await _stream(gw.client.router.stream(group, request), request.model, receive, send)


async def _stream(events: AsyncGenerator[StreamEvent, None], model: str, receive: Receive, send: Send) -> None:
    """The first event is awaited before the status line: a call that fails before
    its first token is an ordinary error answer; after it, an ``error`` event."""
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
            encoder = StreamEncoder(model)
            await send({"type": "http.response.start", "status": 200, "headers": _SSE})
            await send({"type": "http.response.body", "body": encoder.start(), "more_body": True})
            try:
                event: StreamEvent | None = first
                while event is not None:
                    chunk = encoder.feed(event)
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    event = await anext(events, None)
            except errors.LLMError as exc:
                await send({"type": "http.response.body", "body": encoder.error(exc), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not gone.is_set():
            raise
        task.uncancel()  # the client left: the upstream call is closed
    finally:
        watcher.cancel()


async def count_tokens(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    body = json_body(await read_body(scope, receive, gw.max_body))
    request = request_from_wire({**body, "max_tokens": 1})
    gw.group_for(request.model)  # unknown models are a 404 here too
    count = gw.client.count_tokens(request.model, request.messages, request.tools or None)
    await send_json(send, 200, {"input_tokens": count})


__all__ = ["count_tokens", "messages"]
