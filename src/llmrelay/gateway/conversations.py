"""Server-side conversation history (``conversation_id``), kept per tenant.

A chat completions request naming a conversation (``"conversation_id": "..."``
in the body, ``extra_body`` in the OpenAI SDKs, or the header
``x-llmrelay-conversation-id``) gets the conversation's stored messages put
before its own; its messages and the answer are stored before the answer is
sent, so the next turn always sees them. Conversations are read, listed and
deleted under ``/v1/conversations``; a tenant sees only its own (the master key
and open mode use the tenant ``default`` unless ``?tenant=`` says otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .admin_api import own_tenant, query_params
from .http import HTTPError, Receive, Scope, Send, header, send_json
from .storage import store_call
from .tenancy import Caller

if TYPE_CHECKING:
    from .app import Gateway

OPERATOR_TENANT = "default"
"""Where the master key's (and open mode's) conversations are kept: a tenant id no
tenant may take (``store.records.RESERVED_TENANTS``)."""
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def conversation_of(scope: Scope, body: dict[str, Any]) -> str | None:
    """The conversation a request names (the body's field wins over the header); checked."""
    raw = body.pop("conversation_id", None)
    if raw is None:
        raw = header(scope, b"x-llmrelay-conversation-id")
    if raw is None:
        return None
    if not isinstance(raw, str) or not _ID.fullmatch(raw):
        raise HTTPError(
            400,
            "'conversation_id' must be 1-128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
            param="conversation_id",
        )
    return raw


def tenant_of(caller: Caller) -> str:
    return caller.tenant_id or OPERATOR_TENANT


async def history(gw: Gateway, caller: Caller, conversation_id: str) -> list[dict[str, Any]]:
    store = gw.store_()
    found = await store_call(store.conversation, tenant_of(caller), conversation_id)
    return [] if found is None else list(found.messages)


async def remember(
    gw: Gateway, caller: Caller, conversation_id: str, asked: Sequence[Mapping[str, Any]], reply: Mapping[str, Any]
) -> None:
    store = gw.store_()
    await store_call(store.append_messages, tenant_of(caller), conversation_id, [*asked, reply])


async def list_conversations(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    caller: Caller = scope["llmrelay.caller"]
    query = query_params(scope)
    tenant = own_tenant(caller, query.get("tenant")) or OPERATOR_TENANT
    try:
        limit, offset = int(query.get("limit", "100")), int(query.get("offset", "0"))
    except ValueError:
        raise HTTPError(400, "'limit' and 'offset' must be integers", param="limit") from None
    if not (1 <= limit <= 1000 and 0 <= offset <= 10**12):
        raise HTTPError(400, "'limit' must be 1-1000 and 'offset' 0-10^12", param="limit")
    found = await store_call(gw.store_().list_conversations, tenant, limit, offset)
    data = [
        {"id": c.id, "object": "conversation", "tenant": c.tenant, "created_at": c.created_at,
         "updated_at": c.updated_at, "messages": c.messages}
        for c in found
    ]  # fmt: skip
    await send_json(send, 200, {"object": "list", "data": data})


async def conversation_item(gw: Gateway, scope: Scope, receive: Receive, send: Send, conversation_id: str) -> None:
    if not _ID.fullmatch(conversation_id):
        raise HTTPError(404, "no such conversation: an id is 1-128 letters, digits, '_', '.', ':' or '-'")
    caller: Caller = scope["llmrelay.caller"]
    tenant = own_tenant(caller, query_params(scope).get("tenant")) or OPERATOR_TENANT
    store = gw.store_()
    if scope["method"] == "GET":
        found = await store_call(store.conversation, tenant, conversation_id)
        if found is None:
            raise HTTPError(404, f"no conversation {conversation_id!r}")
        payload = {
            "id": found.id, "object": "conversation", "tenant": found.tenant, "created_at": found.created_at,
            "updated_at": found.updated_at, "messages": found.messages,
        }  # fmt: skip
        await send_json(send, 200, payload)
    elif scope["method"] == "DELETE":
        if not await store_call(store.delete_conversation, tenant, conversation_id):
            raise HTTPError(404, f"no conversation {conversation_id!r}")
        await send_json(send, 200, {"id": conversation_id, "object": "conversation.deleted", "deleted": True})
    else:
        raise HTTPError(405, f"{scope['method']} is not allowed on /v1/conversations/{{id}}")


__all__ = ["OPERATOR_TENANT", "conversation_item", "conversation_of", "history", "list_conversations", "remember"]
