"""OpenAI's Responses API at the gateway: ``POST /v1/responses`` (JSON and the exact
SSE event sequence), and the stored responses: ``GET``/``DELETE /v1/responses/{id}``
and ``GET /v1/responses/{id}/input_items``; any provider answers, through the router.

``store`` (true unless the request says false, as in OpenAI's API) keeps the
request's input items, the answer's output items and the answer itself per
tenant (the master key's under ``default``), written before the answer's last
bytes go. ``previous_response_id`` puts the stored items of that response's
chain before the new input; another tenant's id, like an unknown one, is a 404.
A gateway without a store answers ``store: true`` requests without keeping them,
and a ``previous_response_id`` or a stored-response route is a 503 there. A store
that fails as an answer is saved does not cost the caller the answer: it is sent
with ``"store": false`` and ``x-llmrelay-stored: false`` (a stream, whose status
line is gone, just ends as it would), and the failure is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from .._ids import new_id
from ..providers.openai_responses.inbound import (
    StreamEncoder,
    items_from_input,
    request_from_wire,
    response_to_wire,
)
from ..store.records import StoredResponse
from ..types import ChatResponse, StreamEvent
from ..validation import check_request
from .chat import serve_chat
from .conversations import tenant_of
from .exchange import Exchange
from .http import HTTPError
from .storage import store_call

if TYPE_CHECKING:
    from ..store.store import Store
    from .app import Gateway

log = logging.getLogger("llmrelay.gateway")
Events = AsyncGenerator[StreamEvent, None]
MAX_LISTED = 100


async def create_response(gw: Gateway, ex: Exchange) -> None:
    body = await gw.json_request(ex)
    stream, store = body.get("stream", False), body.get("store", True)
    for name, value in (("stream", stream), ("store", store)):
        if value is not None and not isinstance(value, bool):
            raise HTTPError(400, f"'{name}' must be true or false, not {value!r}", param=name)
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise HTTPError(400, "'previous_response_id' must be a string", param="previous_response_id")
    tenant = tenant_of(ex.caller)
    history: list[dict[str, Any]] = []
    if previous is not None:
        found = await store_call(gw.store_().responses.history, tenant, previous)
        if found is None:
            raise HTTPError(
                404, f"previous response {previous[:80]!r} not found", param="previous_response_id",
                code="previous_response_not_found",
            )  # fmt: skip
        history = found
    request = request_from_wire(body, history)
    check_request(request)
    response_id, created = f"resp_{new_id()}", int(time.time())
    keeper = _Keeper(gw.store, tenant, response_id, created, body) if store is not False else None
    encoder = StreamEncoder(response_id, created, body)

    async def to_wire(response: ChatResponse) -> dict[str, Any]:
        payload = response_to_wire(response, response_id=response_id, created_at=created, request=body)
        if keeper is not None and not await keeper.keep(request.model, payload):
            payload["store"] = False  # answered all the same: the tenant has paid for it
            ex.headers["x-llmrelay-stored"] = "false"
        return payload

    async def keep(response: ChatResponse) -> None:  # the answer as the stream will show it
        assert keeper is not None
        await keeper.keep(request.model, encoder.final(response))

    await serve_chat(
        gw, ex, request, stream=bool(stream), to_wire=to_wire, encoder=lambda: encoder,
        on_finish=keep if keeper is not None else None,
    )  # fmt: skip


class _Keeper:
    """Stores one answer (when the gateway has a store)."""

    def __init__(self, store: Store | None, tenant: str, response_id: str, created: int, body: dict[str, Any]) -> None:
        self.store, self.tenant, self.response_id, self.created, self.body = store, tenant, response_id, created, body

    async def keep(self, model: str, payload: dict[str, Any]) -> bool:
        """Store the answer; False (logged) when the store could not take it: the answer
        still goes to its caller, who has paid for it."""
        if self.store is None:
            return True
        record = StoredResponse(
            id=self.response_id, tenant=self.tenant, created_at=float(self.created), model=model,
            previous_id=self.body.get("previous_response_id"), input_items=items_from_input(self.body),
            output_items=list(payload.get("output") or []), body=payload,
        )  # fmt: skip
        try:
            await store_call(self.store.responses.save, record)
        except HTTPError as exc:
            log.warning("response %s was answered but not stored: %s", self.response_id, exc.message)
            return False
        return True


async def _found(gw: Gateway, ex: Exchange) -> StoredResponse:
    response_id = ex.params["response_id"]
    found = await store_call(gw.store_().responses.get, tenant_of(ex.caller), response_id)
    if found is None:
        raise HTTPError(404, f"no response {response_id[:80]!r}", param="response_id")
    return found


async def get_response(gw: Gateway, ex: Exchange) -> None:
    await ex.reply(200, (await _found(gw, ex)).body)


async def delete_response(gw: Gateway, ex: Exchange) -> None:
    response_id = ex.params["response_id"]
    if not await store_call(gw.store_().responses.delete, tenant_of(ex.caller), response_id):
        raise HTTPError(404, f"no response {response_id[:80]!r}", param="response_id")
    await ex.reply(200, {"id": response_id, "object": "response", "deleted": True})


async def list_input_items(gw: Gateway, ex: Exchange) -> None:
    """``?limit=`` (1-100, default 20), ``order=`` (``asc``, or ``desc`` by default), ``after=`` an item id."""
    items = (await _found(gw, ex)).input_items
    query = ex.query
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise HTTPError(400, f"'order' must be 'asc' or 'desc', not {order[:20]!r}", param="order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise HTTPError(400, "'limit' must be an integer", param="limit") from None
    if not 1 <= limit <= MAX_LISTED:
        raise HTTPError(400, f"'limit' must be 1 to {MAX_LISTED}", param="limit")
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise HTTPError(400, f"'after' names no item of this response: {after[:80]!r}", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    page = ordered[:limit]
    await ex.reply(
        200,
        {
            "object": "list", "data": page, "has_more": len(ordered) > limit,
            "first_id": page[0].get("id") if page else None, "last_id": page[-1].get("id") if page else None,
        },
    )  # fmt: skip


__all__ = ["create_response", "delete_response", "get_response", "list_input_items"]
