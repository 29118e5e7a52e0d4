"""The little HTTP the gateway needs on top of ASGI: bodies with a size limit,
JSON in and out, headers. No framework: measured, a plain ASGI callable on
uvicorn is the fastest production-grade option (docs/performance.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._json import JSONDecodeError, dumps, loads
from .errors import openai_error

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]


class HTTPError(Exception):
    """An answer other than 2xx, already in the OpenAI error format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = openai_error(status, message, code=code, param=param, kind=kind)
        self.headers: dict[str, str] = dict(headers or {})


def unavailable(message: str, code: str) -> HTTPError:
    """A 503 for a backend that is down (store, state): the SDKs retry it after a second."""
    return HTTPError(503, message, code=code, headers={"retry-after": "1"})


class ClientGone(Exception):
    """The client closed the connection."""


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(scope: Scope, receive: Receive, limit: int, *, timeout_s: float | None = None) -> bytes:
    """The request's whole body: a 413 past ``limit`` bytes; with ``timeout_s``, a 408 (that
    closes the connection) when the whole body has not arrived within that many seconds,
    one deadline for all of it however it is cut in chunks."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"the request body is over the {limit} byte limit")
    if timeout_s is None:
        message = await receive()  # nearly every body comes whole, in one message
        if message["type"] == "http.request" and not message.get("more_body"):
            body: bytes = message.get("body", b"")
            if len(body) > limit:
                raise HTTPError(413, f"the request body is over the {limit} byte limit")
            return body
        return await _read_chunks(receive, limit, message)
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_chunks(receive, limit)
    except TimeoutError:
        raise HTTPError(
            408,
            f"the request body did not arrive within {timeout_s:g} s",
            code="request_timeout",
            headers={"connection": "close"},  # the rest of the body may still come: uvicorn closes after this
        ) from None


async def _read_chunks(receive: Receive, limit: int, first: Message | None = None) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        message = first if first is not None else await receive()
        first = None
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise HTTPError(413, f"the request body is over the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def json_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise HTTPError(400, "the request body is empty; send a JSON object")
    try:
        data = loads(raw)
    except JSONDecodeError as exc:
        raise HTTPError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPError(400, "the request body must be a JSON object")
    return data


async def send_json(send: Send, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
    body = dumps(payload)
    extra = [(k.encode(), v.encode()) for k, v in headers.items()] if headers else []
    length = (b"content-length", b"%d" % len(body))  # not chunked: fewer bytes, one piece for the client to parse
    await send({"type": "http.response.start", "status": status, "headers": [*_JSON, length, *extra]})
    await send({"type": "http.response.body", "body": body})


__all__ = [
    "ClientGone", "HTTPError", "Receive", "Scope", "Send", "header", "json_body", "read_body", "send_json",
    "unavailable",
]  # fmt: skip
