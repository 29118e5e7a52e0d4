"""The gateway's route table: every route, the API its errors are in, whether it needs
a key and whether it is metered; and the operator's routes (health, metrics, docs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errors
from . import admin_api, admin_series, conversations, gemini_api, responses_api
from . import dashboard as dashboard_api
from .anthropic_api import ANTHROPIC, count_tokens, messages
from .exchange import Exchange
from .http import Send
from .metrics import CONTENT_TYPE
from .openai_api import chat_completions, completions, embeddings
from .routes import RouteTable

if TYPE_CHECKING:
    from .app import Gateway


async def _metrics(gw: Gateway, ex: Exchange) -> None:
    try:
        health = await gw.health()
    except errors.StateUnavailable:
        health = []  # the state backend is down: every other figure is still worth scraping
    await _raw(ex.send, gw.metrics.render(health), CONTENT_TYPE.encode())


async def _openapi(gw: Gateway, ex: Exchange) -> None:
    from .openapi import document_bytes

    await _raw(ex.send, document_bytes(), b"application/json")


async def _docs(gw: Gateway, ex: Exchange) -> None:
    from .openapi import docs_page

    await _raw(ex.send, docs_page(), b"text/html; charset=utf-8")


async def _raw(send: Send, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


async def _live(gw: Gateway, ex: Exchange) -> None:
    await ex.reply(200, {"status": "ok"})


async def _ready(gw: Gateway, ex: Exchange) -> None:
    """Ready when the store and the state backend answer and at least one deployment can serve."""
    detail = await gw.ready()
    await ex.reply(200 if detail["status"] == "ready" else 503, detail)


def route_table(*, dashboard: bool = True) -> RouteTable:
    """Every route the gateway serves (the dashboard's page and sessions only with ``dashboard``)."""
    routes = RouteTable()
    routes.add("POST", "/v1/chat/completions", chat_completions, metered=True)
    routes.add("POST", "/v1/completions", completions, metered=True)
    routes.add("POST", "/v1/embeddings", embeddings, metered=True)
    routes.add("POST", "/v1/responses", responses_api.create_response, metered=True)
    routes.add("GET", "/v1/responses/{response_id}", responses_api.get_response)
    routes.add("DELETE", "/v1/responses/{response_id}", responses_api.delete_response)
    routes.add("GET", "/v1/responses/{response_id}/input_items", responses_api.list_input_items)
    routes.add("GET", "/v1/models", gemini_api.list_models)  # OpenAI's, or Gemini's with a Google key
    routes.add("GET", "/v1/models/{model:path}", gemini_api.get_model)  # PROVIDER/MODEL ids hold a "/"
    routes.add("POST", "/v1/messages", messages, api=ANTHROPIC, metered=True)
    routes.add("POST", "/v1/messages/count_tokens", count_tokens, api=ANTHROPIC, metered=True)
    routes.add("GET", "/v1/conversations", conversations.list_conversations)
    routes.add("GET", "/v1/conversations/{conversation_id}", conversations.get_conversation)
    routes.add("DELETE", "/v1/conversations/{conversation_id}", conversations.delete_conversation)
    routes.add("POST", "/admin/tenants", admin_api.create_tenant)
    routes.add("GET", "/admin/tenants", admin_api.list_tenants)
    routes.add("GET", "/admin/tenants/{tenant_id}", admin_api.get_tenant)
    routes.add("PATCH", "/admin/tenants/{tenant_id}", admin_api.update_tenant)
    routes.add("POST", "/admin/keys", admin_api.create_key)
    routes.add("GET", "/admin/keys", admin_api.list_keys)
    routes.add("GET", "/admin/keys/{key_id}", admin_api.get_key)
    routes.add("PATCH", "/admin/keys/{key_id}", admin_api.update_key)
    routes.add("POST", "/admin/keys/{key_id}/revoke", admin_api.revoke_key)
    routes.add("POST", "/admin/keys/{key_id}/rotate", admin_api.rotate_key)
    routes.add("GET", "/admin/usage", admin_api.usage)
    routes.add("GET", "/admin/usage/series", admin_series.usage_series)
    gemini_api.add_routes(routes)
    routes.add("GET", "/admin/deployments", dashboard_api.deployments)
    routes.add("PUT", "/admin/deployments/{deployment:path}/health", dashboard_api.set_deployment_health)
    routes.add("GET", "/admin/usage.csv", dashboard_api.usage_csv)
    if dashboard:
        dashboard_api.add_page_routes(routes)
    routes.add("GET", "/health/live", _live, auth=False)
    routes.add("GET", "/health/ready", _ready, auth=False)
    routes.add("GET", "/metrics", _metrics, auth=False)
    routes.add("GET", "/openapi.json", _openapi, auth=False)
    routes.add("GET", "/docs", _docs, auth=False)
    return routes


__all__ = ["route_table"]
