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

from .admin_api import own_tenant
from .exchange import Exchange
from .http import HTTPError
from .storage import store_call
from .tenancy import Caller

if TYPE_CHECKING:
    from .app import Gateway

OPERATOR_TENANT = "default"
"""Where the master key's (and open mode's) conversations are kept: a tenant id no
tenant may take (``store.records.RESERVED_TENANTS``)."""
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def conversation_of(ex: Exchange, body: dict[str, Any]) -> str | None:
    """The conversation a request names (the body's field wins over the header); checked."""
    raw = body.pop("conversation_id", None)
    if raw is None:
        raw = ex.header(b"x-llmrelay-conversation-id")
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


async def list_conversations(gw: Gateway, ex: Exchange) -> None:
    query = ex.query
    tenant = own_tenant(ex.caller, query.get("tenant")) or OPERATOR_TENANT
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
    await ex.reply(200, {"object": "list", "data": data})


async def get_conversation(gw: Gateway, ex: Exchange) -> None:
    tenant, conversation_id = _addressed(ex)
    found = await store_call(gw.store_().conversation, tenant, conversation_id)
    if found is None:
        raise HTTPError(404, f"no conversation {conversation_id!r}")
    payload = {
        "id": found.id, "object": "conversation", "tenant": found.tenant, "created_at": found.created_at,
        "updated_at": found.updated_at, "messages": found.messages,
    }  # fmt: skip
    await ex.reply(200, payload)


async def delete_conversation(gw: Gateway, ex: Exchange) -> None:
    tenant, conversation_id = _addressed(ex)
    if not await store_call(gw.store_().delete_conversation, tenant, conversation_id):
        raise HTTPError(404, f"no conversation {conversation_id!r}")
    await ex.reply(200, {"id": conversation_id, "object": "conversation.deleted", "deleted": True})


def _addressed(ex: Exchange) -> tuple[str, str]:
    """The tenant and the checked id of the conversation in the path."""
    conversation_id = ex.params["conversation_id"]
    if not _ID.fullmatch(conversation_id):
        raise HTTPError(404, "no such conversation: an id is 1-128 letters, digits, '_', '.', ':' or '-'")
    return own_tenant(ex.caller, ex.query.get("tenant")) or OPERATOR_TENANT, conversation_id


__all__ = [
    "OPERATOR_TENANT", "conversation_of", "delete_conversation", "get_conversation", "history", "list_conversations",
    "remember",
]  # fmt: skip
