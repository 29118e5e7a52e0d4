"""The gateway's OpenAPI 3.1 document (``GET /openapi.json``) and a page that
shows it (``GET /docs``). Request schemas list the fields the gateway reads and
their types; unknown fields are passed on to the provider."""

from __future__ import annotations

import html
from typing import Any

from .._json import dumps_pretty
from .._version import __version__

_STR = {"type": "string"}
_NUM = {"type": "number", "minimum": 0}
_INT1 = {"type": "integer", "minimum": 1}
_STRINGS = {"type": "array", "items": _STR}
_OBJ = {"type": "object"}
_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"oneOf": [_STR, {"type": "array", "items": _OBJ}, {"type": "null"}]},
        "name": _STR,
        "tool_call_id": _STR,
        "tool_calls": {"type": "array", "items": _OBJ},
    },
}
_OPENAI_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {"message": _STR, "type": _STR, "code": {}, "param": {}}}},
}
_ANTHROPIC_ERROR = {
    "type": "object",
    "properties": {
        "type": {"const": "error"},
        "error": {"type": "object", "properties": {"type": _STR, "message": _STR}},
    },
}
_CHAT = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": _STR,
        "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
        "temperature": _NUM,
        "top_p": _NUM,
        "max_tokens": _INT1,
        "max_completion_tokens": _INT1,
        "stop": {"oneOf": [_STR, _STRINGS]},
        "seed": {"type": "integer"},
        "user": _STR,
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "tools": {"type": "array", "items": _OBJ},
        "tool_choice": {"oneOf": [{"enum": ["auto", "none", "required"]}, _OBJ]},
        "response_format": _OBJ,
    },
}
_COMPLETION = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        "model": _STR,
        "prompt": {"oneOf": [_STR, {"type": "array", "items": _STR, "minItems": 1, "maxItems": 1}]},
        "max_tokens": {**_INT1, "default": 16},
        "temperature": _NUM,
        "top_p": _NUM,
        "stop": {"oneOf": [_STR, _STRINGS]},
        "seed": {"type": "integer"},
        "user": _STR,
        "echo": {"type": "boolean"},
        "n": {"const": 1},
        "best_of": {"const": 1},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    },
}
_RESPONSES = {
    "type": "object",
    "required": ["model"],
    "properties": {
        "model": _STR,
        "input": {"oneOf": [_STR, {"type": "array", "items": _OBJ}]},
        "instructions": _STR,
        "previous_response_id": _STR,
        "store": {"type": "boolean", "default": True},
        "stream": {"type": "boolean"},
        "tools": {"type": "array", "items": _OBJ},
        "tool_choice": {"oneOf": [{"enum": ["auto", "none", "required"]}, _OBJ]},
        "parallel_tool_calls": {"type": "boolean"},
        "text": _OBJ,
        "reasoning": _OBJ,
        "max_output_tokens": _INT1,
        "temperature": _NUM,
        "top_p": _NUM,
        "metadata": _OBJ,
        "user": _STR,
        "truncation": {"enum": ["auto", "disabled"]},
    },
}
_CONTENTS = {"type": "array", "items": {"type": "object", "properties": {"role": _STR, "parts": {"type": "array"}}}}
_GEMINI = {
    "type": "object",
    "properties": {
        "contents": _CONTENTS,
        "systemInstruction": _OBJ,
        "tools": {"type": "array", "items": _OBJ},
        "toolConfig": _OBJ,
        "generationConfig": _OBJ,
        "safetySettings": {"type": "array", "items": _OBJ},
    },
}
_GEMINI_EMBED = {
    "type": "object",
    "properties": {"content": _OBJ, "requests": {"type": "array", "items": _OBJ}, "outputDimensionality": _INT1},
}
_GOOGLE_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {"code": {"type": "integer"}, "message": _STR,
                                                             "status": _STR}}},
}  # fmt: skip
_EMBED = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": _STR,
        "input": {"oneOf": [_STR, {"type": "array", "items": _STR, "minItems": 1}]},
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": _INT1,
        "user": _STR,
    },
}
_MESSAGES = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": _STR,
        "max_tokens": _INT1,
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["user", "assistant"]},
                    "content": {"oneOf": [_STR, {"type": "array", "items": _OBJ}]},
                },
            },
        },
        "system": {"oneOf": [_STR, {"type": "array", "items": _OBJ}]},
        "temperature": _NUM,
        "top_p": _NUM,
        "stop_sequences": _STRINGS,
        "stream": {"type": "boolean"},
        "tools": {"type": "array", "items": _OBJ},
        "tool_choice": _OBJ,
        "metadata": _OBJ,
    },
}


_CACHE_HEADERS = [
    {"name": "Cache-Control", "in": "header", "required": False, "schema": _STR,
     "description": "no-cache: do not answer from the response cache; no-store: do not store the answer"},
    {"name": "x-llmrelay-semantic-cache", "in": "header", "required": False, "schema": _STR,
     "description": "true: also reuse the answer to a similar earlier question (groups with semantic_cache)"},
]  # fmt: skip
_CACHE_ANSWER = {
    "x-llmrelay-cache": {"description": "hit or miss, where the model group caches", "schema": _STR},
    "x-llmrelay-coalesced": {"description": "true: shared with an identical request in flight", "schema": _STR},
}


def _post(
    summary: str,
    body: dict[str, Any],
    error: dict[str, Any],
    stream: bool = False,
    cached: bool = False,
    path: tuple[str, ...] = (),
) -> dict[str, Any]:
    ok: dict[str, Any] = {"application/json": {"schema": _OBJ}}
    if stream:
        ok["text/event-stream"] = {"schema": _STR}
    errors = {str(code): {"description": why, "content": {"application/json": {"schema": error}}} for code, why in (
        (400, "bad input, naming the field"), (401, "missing or wrong key"),
        (403, "a model outside the key's allow-list, or one with no known price for a budgeted key"),
        (404, "unknown model"), (408, "the body did not arrive in time"), (413, "body over the limit"),
        (429, "rate limited, over budget, or too many requests in flight"), (502, "provider failure"),
        (503, "no deployment could answer, or a backend (state, store, ledger) unavailable"),
        (504, "upstream timeout"),
    )}  # fmt: skip
    answer: dict[str, Any] = {"description": "the answer", "content": ok}
    op: dict[str, Any] = {
        "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": answer, **errors},
    }
    params = [{"name": n, "in": "path", "required": True, "schema": _STR} for n in path]
    if cached:  # the response cache's headers (docs/caching.md)
        params += _CACHE_HEADERS
        answer["headers"] = _CACHE_ANSWER
    if params:
        op["parameters"] = params
    return {"post": op}


def _get(summary: str, query: tuple[tuple[str, dict[str, Any]], ...] = ()) -> dict[str, Any]:
    return {"get": _op(summary, query=query)}


def _op(
    summary: str,
    *,
    body: dict[str, Any] | None = None,
    query: tuple[tuple[str, dict[str, Any]], ...] = (),
    path: tuple[str, ...] = (),
    status: int = 200,
) -> dict[str, Any]:
    """One operation answering JSON (errors in the OpenAI format)."""
    params = [{"name": n, "in": "path", "required": True, "schema": _STR} for n in path]
    params += [{"name": n, "in": "query", "required": False, "schema": schema} for n, schema in query]
    answers = (
        (400, "bad input, naming the field"), (401, "missing or wrong key"), (403, "not allowed for this key"),
        (404, "not found"), (409, "already exists"), (503, "no store"),
    )  # fmt: skip
    errors = {
        str(code): {"description": why, "content": {"application/json": {"schema": _OPENAI_ERROR}}}
        for code, why in answers
    }
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {str(status): {"description": "ok", "content": {"application/json": {"schema": _OBJ}}}, **errors},
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _model_schema(model: Any) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _SCHEMAS.update(schema.pop("$defs", {}))
    return schema


_SCHEMAS: dict[str, Any] = {}
_USAGE_QUERY = (
    ("tenant", _STR), ("key_id", _STR), ("model", _STR), ("since", _NUM), ("until", _NUM),
    ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}), ("offset", {"type": "integer", "minimum": 0}),
    ("group_by", _STR), ("request_id", _STR),
)  # fmt: skip

_SERIES_QUERY = (
    ("bucket", {"enum": ["minute", "hour", "day"]}), ("since", _NUM), ("until", _NUM),
    ("split", {"enum": ["model", "tenant", "key", "deployment", "status"]}),
    ("top", {"type": "integer", "minimum": 1, "maximum": 50}), ("tenant", _STR), ("key_id", _STR), ("model", _STR),
)  # fmt: skip


_HEALTH_BODY = {
    "type": "object", "required": ["healthy"], "additionalProperties": False,
    "properties": {"healthy": {"type": ["boolean", "null"]}},
}  # fmt: skip
_SIGN_IN_BODY = {
    "type": "object", "additionalProperties": False, "properties": {"key": {"type": "string", "maxLength": 256}},
}  # fmt: skip


def _admin_paths() -> dict[str, Any]:
    from .admin_api import KeyBody, KeyPatch, TenantBody, TenantPatch

    page = (
        ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ("offset", {"type": "integer", "minimum": 0}),
    )
    return {
        "/v1/models/{model}": {"get": _op("One model", path=("model",))},
        "/v1/responses/{response_id}": {
            "get": _op("A stored response", path=("response_id",)),
            "delete": _op("Delete a stored response", path=("response_id",)),
        },
        "/v1/responses/{response_id}/input_items": {
            "get": _op(
                "A stored response's input items", path=("response_id",),
                query=(
                    ("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                    ("order", {"enum": ["asc", "desc"]}), ("after", _STR),
                ),
            )
        },
        "/v1/conversations": _get("This tenant's conversations", (("tenant", _STR), *page)),
        "/v1/conversations/{conversation_id}": {
            "get": _op("A conversation's messages", path=("conversation_id",), query=(("tenant", _STR),)),
            "delete": _op("Delete a conversation", path=("conversation_id",), query=(("tenant", _STR),)),
        },
        "/admin/tenants": {
            "get": _op("Tenants (master key)"),
            "post": _op("Create a tenant (master key)", body=_model_schema(TenantBody), status=201),
        },
        "/admin/tenants/{tenant_id}": {
            "get": _op("A tenant (master key)", path=("tenant_id",)),
            "patch": _op("Change a tenant's limits or budget (master key)", path=("tenant_id",),
                         body=_model_schema(TenantPatch)),
        },
        "/admin/keys": {
            "get": _op("Virtual keys (a virtual key sees its tenant's)",
                       query=(("tenant", _STR), ("include_revoked", {"type": "boolean"}))),
            "post": _op("Create a virtual key; the answer holds its secret, shown once", body=_model_schema(KeyBody),
                        status=201),
        },
        "/admin/keys/{key_id}": {
            "get": _op("A virtual key (never its secret)", path=("key_id",)),
            "patch": _op("Change a key's models, limits, budget or expiry", path=("key_id",),
                         body=_model_schema(KeyPatch)),
        },
        "/admin/keys/{key_id}/revoke": {"post": _op("Revoke a key", path=("key_id",))},
        "/admin/keys/{key_id}/rotate": {"post": _op("A new secret for a key; the old one stops", path=("key_id",))},
        "/admin/usage": _get("The usage ledger with totals (a virtual key sees its tenant's)", _USAGE_QUERY),
        "/admin/usage/series": _get("The usage ledger per time bucket and series, for charts (a virtual key sees "
                                    "its tenant's)", _SERIES_QUERY),
        "/admin/usage.csv": _get("The usage ledger's records as CSV (up to 10,000; a virtual key sees its tenant's)",
                                 tuple(q for q in _USAGE_QUERY if q[0] != "group_by")),
        "/admin/deployments": _get("Every configured deployment's health as the router sees it (master key)"),
        "/admin/deployments/{deployment}/health": {
            "put": _op("Override a deployment's health (master key): true, false, or null to clear",
                       path=("deployment",), body=_HEALTH_BODY),
        },
        "/ui/session": {
            "post": _op("Sign the dashboard in: a session cookie for this key", body=_SIGN_IN_BODY),
            "get": _op("Who the dashboard session is, and its CSRF token"),
            "delete": _op("Sign the dashboard out (needs the session's CSRF token)"),
        },
    }  # fmt: skip


def _gemini_paths() -> dict[str, Any]:
    actions = (
        ("generateContent", "Gemini generateContent", _GEMINI, False),
        ("streamGenerateContent", "Gemini streamGenerateContent (?alt=sse)", _GEMINI, True),
        ("countTokens", "Gemini countTokens", _GEMINI, False),
        ("embedContent", "Gemini embedContent", _GEMINI_EMBED, False),
        ("batchEmbedContents", "Gemini batchEmbedContents", _GEMINI_EMBED, False),
    )
    paths: dict[str, Any] = {
        f"/{version}/models/{{model}}:{action}": _post(summary, body, _GOOGLE_ERROR, stream=stream, path=("model",))
        for version in ("v1beta", "v1")
        for action, summary, body, stream in actions
    }
    paths["/v1beta/models"] = _get("Models this gateway serves, in Gemini's format")
    paths["/v1beta/models/{model}"] = {"get": _op("One model, in Gemini's format", path=("model",))}
    return paths


def document() -> dict[str, Any]:
    admin = _admin_paths()
    return {
        "openapi": "3.1.0",
        "info": {"title": "llmrelay gateway", "version": __version__},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": dict(_SCHEMAS),
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/v1/chat/completions": _post(
                "OpenAI chat completions (JSON or SSE)", _CHAT, _OPENAI_ERROR, stream=True, cached=True
            ),
            "/v1/completions": _post(
                "OpenAI legacy completions, served by chat models (JSON or SSE)",
                _COMPLETION,
                _OPENAI_ERROR,
                stream=True,
                cached=True,
            ),
            "/v1/embeddings": _post("OpenAI embeddings", _EMBED, _OPENAI_ERROR),
            "/v1/responses": _post(
                "OpenAI Responses (JSON or SSE); stored per tenant unless store is false",
                _RESPONSES,
                _OPENAI_ERROR,
                stream=True,
                cached=True,
            ),
            "/v1/models": _get("Models this gateway serves"),
            "/v1/messages": _post(
                "Anthropic Messages (JSON or SSE)", _MESSAGES, _ANTHROPIC_ERROR, stream=True, cached=True
            ),
            "/v1/messages/count_tokens": _post("Anthropic token count", _MESSAGES, _ANTHROPIC_ERROR),
            **admin,
            **_gemini_paths(),
            "/health/live": _get("The process answers"),
            "/health/ready": _get("The store and state answer and a deployment can serve (503 otherwise)"),
        },
    }


_DOCUMENT = dumps_pretty(document())


def document_bytes() -> bytes:
    return _DOCUMENT


def docs_page() -> bytes:
    """A self-contained page: every route with its summary, and the document itself."""
    doc = document()
    rows = "".join(
        f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td><td>{html.escape(op['summary'])}</td></tr>"
        for path, item in doc["paths"].items()
        for method, op in item.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>llmrelay gateway</title></head><body>"
        f"<h1>llmrelay gateway {html.escape(__version__)}</h1><table>{rows}</table>"
        "<p>The OpenAPI document: <a href='/openapi.json'>/openapi.json</a></p>"
        f"<pre>{html.escape(_DOCUMENT.decode())}</pre></body></html>"
    ).encode()


__all__ = ["docs_page", "document", "document_bytes"]
