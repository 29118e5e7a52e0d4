"""The Anthropic Messages API of the gateway: ``POST /v1/messages`` (JSON and
the exact SSE event sequence) and ``POST /v1/messages/count_tokens``, served by
any provider through the router."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..cache.options import DEFAULT_OPTIONS
from ..client import check_request
from ..providers.anthropic_inbound import StreamEncoder, request_from_wire, response_to_wire
from .caching import announce, note_answer, options_for
from .http import HTTPError, Receive, Scope, Send, header, json_body, read_body, send_json
from .metrics import RequestFacts
from .openai_api import route_headers
from .streaming import relay

if TYPE_CHECKING:
    from .app import Gateway


async def messages(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    body = json_body(await read_body(scope, receive, gw.max_body))
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise HTTPError(400, "stream: must be true or false")
    if "conversation_id" in body or header(scope, b"x-llmrelay-conversation-id") is not None:
        raise HTTPError(400, "conversation_id: server-side conversations work on /v1/chat/completions only")
    request = request_from_wire(body)
    check_request(request)
    group = gw.group_for(request.model)
    facts: RequestFacts = scope["llmrelay.facts"]
    facts.model = request.model
    ticket = await gw.admit(scope, group, request, request.model)
    cache = options_for(scope) if gw.client.cache.applies(group) else DEFAULT_OPTIONS
    try:
        if not stream:
            response = await gw.client.cache.chat(group, request, cache)
            note_answer(facts, response)
            facts.upstream_s = response.latency_s
            if response.cache is not None:
                announce(scope, response.cache)
            await send_json(send, 200, response_to_wire(response), route_headers(response.route))
            return
        await relay(gw.client.cache.stream(group, request, cache), StreamEncoder(request.model), receive, send, facts)
    finally:
        await gw.settle(ticket, facts)


async def count_tokens(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    body = json_body(await read_body(scope, receive, gw.max_body))
    request = request_from_wire({**body, "max_tokens": 1})
    gw.group_for(request.model)  # unknown models are a 404 here too
    scope["llmrelay.caller"].check_model(request.model)
    count = gw.client.count_tokens(request.model, request.messages, request.tools or None)
    await send_json(send, 200, {"input_tokens": count})


__all__ = ["count_tokens", "messages"]
