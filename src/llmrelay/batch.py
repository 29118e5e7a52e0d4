"""Batch processing: many requests in the OpenAI Batch format through one client.

Each request is ``{"custom_id", "method": "POST", "url", "body"}`` with ``url``
``/v1/chat/completions`` or ``/v1/embeddings``; each result is a line of the
OpenAI Batch *output* format (``id``, ``custom_id``, ``response``, ``error``), so
files made for OpenAI's Batch API run here against any provider, and their
results read as OpenAI's do.

A request's failure (a bad body, an unknown model, a provider error, even an
unexpected exception) is that request's error result: one bad line never stops
a run of a million. At most ``concurrency`` requests are in flight and at most
that many are taken from the input ahead of their results, so a huge or endless
input is read as the work goes, not up front. ``llmrelay batch`` (cli/batch.py)
adds files, resuming and progress on top; ``batch_io`` holds the file side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from . import errors
from ._ids import new_id
from .providers.openai.inbound import (
    embedding_request_from_wire,
    embedding_response_to_wire,
    error_body,
    request_from_wire,
    response_to_wire,
)
from .types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from .validation import check_request


class Sender(Protocol):
    """What batch needs of a client (``AsyncClient`` is one): a model's group, and ``send``."""

    def route(self, model: str | None) -> str: ...

    @overload
    async def send(self, group: str, request: ChatRequest) -> ChatResponse: ...

    @overload
    async def send(self, group: str, request: EmbeddingRequest) -> EmbeddingResponse: ...


log = logging.getLogger("llmrelay.batch")

CHAT_URL = "/v1/chat/completions"
EMBEDDINGS_URL = "/v1/embeddings"
URLS = (CHAT_URL, EMBEDDINGS_URL)

RequestsIn = Iterable["Mapping[str, Any] | BatchRequest"] | AsyncIterable["Mapping[str, Any] | BatchRequest"]


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One checked input line: its ``custom_id``, endpoint ``url`` and OpenAI ``body``."""

    custom_id: str
    url: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One request's outcome. ``line`` is the OpenAI Batch output line (write it
    as JSON); ``usage`` and ``cost_usd`` (``None``: unknown price) are zero / ``None``
    for failures; ``index`` is the request's position in the input."""

    custom_id: str | None
    ok: bool
    line: dict[str, Any]
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    index: int = 0


class InvalidLine(errors.InvalidRequest):
    """An input item that is not a batch request (``custom_id`` when one could be read)."""

    def __init__(self, message: str, *, custom_id: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.custom_id = custom_id
        self.code = code


def parse_request(item: Any) -> BatchRequest:
    """A ``BatchRequest`` from a decoded input line; raises ``InvalidLine`` saying
    what is wrong, so a file's bad lines can be reported one by one."""
    if not isinstance(item, Mapping):
        raise InvalidLine(f"a request must be a JSON object, not {type(item).__name__}")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise InvalidLine("'custom_id' is required and must be a non-empty string")
    method = item.get("method", "POST")
    if method != "POST":
        raise InvalidLine(f"'method' must be 'POST', not {method!r}", custom_id=custom_id)
    url = item.get("url")
    if url not in URLS:
        raise InvalidLine(f"'url' must be {CHAT_URL!r} or {EMBEDDINGS_URL!r}, not {url!r}", custom_id=custom_id)
    body = item.get("body")
    if not isinstance(body, dict):
        raise InvalidLine("'body' must be a JSON object (the OpenAI request body)", custom_id=custom_id)
    return BatchRequest(custom_id, url, body)


# ---- result lines ---------------------------------------------------------------------


def success_line(custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI Batch output line for an answered request."""
    response = {"status_code": 200, "request_id": f"req_{new_id()}", "body": body}
    return {"id": f"batch_req_{new_id()}", "custom_id": custom_id, "response": response, "error": None}


def error_line(
    custom_id: str | None, code: str, message: str, *, status: int | None = None, line: int | None = None
) -> dict[str, Any]:
    """An output line for a failed request. ``error`` is always set (``error is None``
    means success); ``response`` carries the OpenAI error body with the HTTP status
    the gateway would have answered, when there is one; ``line`` is the input line
    number of a malformed line."""
    response = None
    if status is not None:
        body = error_body(status, message, code=code)
        response = {"status_code": status, "request_id": f"req_{new_id()}", "body": body}
    error: dict[str, Any] = {"code": code, "message": message}
    if line is not None:
        error["line"] = line
    return {"id": f"batch_req_{new_id()}", "custom_id": custom_id, "response": response, "error": error}


def _failure(custom_id: str | None, exc: errors.LLMError, index: int) -> BatchResult:
    status = exc.status_code if exc.status_code is not None and 400 <= exc.status_code <= 599 else None
    if isinstance(exc, InvalidLine | errors.ProviderNotConfigured):
        status = None  # never sent anywhere
    return BatchResult(custom_id, False, error_line(custom_id, exc.code, str(exc), status=status), index=index)


# ---- running --------------------------------------------------------------------------


async def run_one(client: Sender, item: Mapping[str, Any] | BatchRequest, index: int = 0) -> BatchResult:
    """One request's result; never raises an ``Exception`` (a failure is the result)."""
    custom_id = item.custom_id if isinstance(item, BatchRequest) else _readable_id(item)
    try:
        request = item if isinstance(item, BatchRequest) else parse_request(item)
        if request.url == CHAT_URL:
            return await _chat(client, request, index)
        return await _embed(client, request, index)
    except errors.LLMError as exc:
        return _failure(custom_id, exc, index)
    except Exception as exc:  # a bug must cost one line, not the run
        text = f"{type(exc).__name__}: {exc}"
        log.error("batch request %r failed unexpectedly: %s", custom_id, text, exc_info=log.isEnabledFor(logging.DEBUG))
        line = error_line(custom_id, "internal_error", text, status=500)
        return BatchResult(custom_id, False, line, index=index)


def _readable_id(item: Any) -> str | None:
    custom_id = item.get("custom_id") if isinstance(item, Mapping) else None
    return custom_id if isinstance(custom_id, str) and custom_id else None


async def _chat(client: Sender, request: BatchRequest, index: int) -> BatchResult:
    """As the gateway's chat route, but never streamed: ``"stream": true`` gets the whole answer."""
    chat = request_from_wire(request.body)
    check_request(chat)
    response = await client.send(client.route(chat.model), chat)
    body = response_to_wire(response, int(time.time()))
    line = success_line(request.custom_id, body)
    return BatchResult(request.custom_id, True, line, response.usage, response.cost_usd, index)


async def _embed(client: Sender, request: BatchRequest, index: int) -> BatchResult:
    embedding, encoding = embedding_request_from_wire(request.body)
    response = await client.send(client.route(embedding.model), embedding)
    line = success_line(request.custom_id, embedding_response_to_wire(response, encoding))
    return BatchResult(request.custom_id, True, line, response.usage, response.cost_usd, index)


async def iter_batch(
    client: Sender, requests: RequestsIn, *, concurrency: int = 8
) -> AsyncGenerator[BatchResult, None]:
    """Results as they complete (``index`` says where each came from). At most
    ``concurrency`` requests run at once, and the input is read only as far as
    that allows. Closing the generator early cancels the requests in flight."""
    if type(concurrency) is not int or concurrency < 1:
        raise errors.InvalidRequest(f"concurrency must be a positive integer, not {concurrency!r}")
    source = aclosing(_numbered(requests))
    finished: asyncio.Queue[asyncio.Task[BatchResult]] = asyncio.Queue()
    running: set[asyncio.Task[BatchResult]] = set()
    async with source as items:
        more = True
        try:
            while True:
                while more and len(running) < concurrency:  # top up the pool from the input
                    numbered = await anext(items, None)
                    if numbered is None:
                        more = False
                        break
                    task = asyncio.create_task(run_one(client, numbered[1], numbered[0]))
                    task.add_done_callback(finished.put_nowait)
                    running.add(task)
                if not running:
                    return
                done = await finished.get()
                running.discard(done)
                yield done.result()
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)


async def _numbered(requests: RequestsIn) -> AsyncGenerator[tuple[int, Mapping[str, Any] | BatchRequest], None]:
    index = 0
    if isinstance(requests, AsyncIterable):
        async for item in requests:
            yield index, item
            index += 1
        return
    for item in requests:
        yield index, item
        index += 1


async def run_batch(
    client: Sender,
    requests: RequestsIn,
    *,
    concurrency: int = 8,
    on_result: Callable[[BatchResult], object] | None = None,
) -> list[BatchResult]:
    """Every request's result, in input order. ``on_result`` sees each as it
    completes (in completion order), e.g. to write or count it; an exception
    it raises stops the run (requests in flight are cancelled)."""
    results: list[BatchResult] = []
    async with aclosing(iter_batch(client, requests, concurrency=concurrency)) as stream:
        async for result in stream:
            if on_result is not None:
                on_result(result)
            results.append(result)
    results.sort(key=lambda r: r.index)
    return results


__all__ = [
    "CHAT_URL",
    "EMBEDDINGS_URL",
    "BatchRequest",
    "BatchResult",
    "InvalidLine",
    "error_line",
    "iter_batch",
    "parse_request",
    "run_batch",
    "run_one",
    "success_line",
]
