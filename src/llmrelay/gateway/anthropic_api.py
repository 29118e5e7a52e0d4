"""The Anthropic Messages API of the gateway: ``POST /v1/messages`` (JSON and
the exact SSE event sequence) and ``POST /v1/messages/count_tokens``, served by
any provider through the router."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..providers.anthropic.inbound import StreamEncoder, error_body, request_from_wire, response_to_wire
from ..types import ChatResponse
from ..validation import check_request
from .chat import serve_chat, serve_count
from .exchange import Api, Exchange
from .http import HTTPError

if TYPE_CHECKING:
    from .app import Gateway


def _error_body(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return error_body(status, body["error"]["message"])


ANTHROPIC = Api("anthropic", _error_body)
"""Errors on these routes are in the format the Anthropic SDKs read."""


async def messages(gw: Gateway, ex: Exchange) -> None:
    body = await gw.json_request(ex)
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise HTTPError(400, "stream: must be true or false")
    if "conversation_id" in body or ex.header(b"x-llmrelay-conversation-id") is not None:
        raise HTTPError(400, "conversation_id: server-side conversations work on /v1/chat/completions only")
    request = request_from_wire(body)
    check_request(request)

    async def to_wire(response: ChatResponse) -> dict[str, Any]:
        return response_to_wire(response)

    await serve_chat(
        gw, ex, request, stream=bool(stream), to_wire=to_wire,
        encoder=lambda: StreamEncoder(request.model),
    )  # fmt: skip


async def count_tokens(gw: Gateway, ex: Exchange) -> None:
    body = await gw.json_request(ex)
    request = request_from_wire({**body, "max_tokens": 1})
    await ex.reply(200, {"input_tokens": await serve_count(gw, ex, request)})


__all__ = ["ANTHROPIC", "count_tokens", "messages"]
