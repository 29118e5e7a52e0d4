"""The gateway's OpenAPI 3.1 document (``GET /openapi.json``) and a page that
shows it (``GET /docs``). Request schemas list the fields the gateway reads and
their types; unknown fields are passed on to the provider."""

from __future__ import annotations

import html
from typing import Any

import orjson

from .. import __version__

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


def _post(summary: str, body: dict[str, Any], error: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    ok: dict[str, Any] = {"application/json": {"schema": _OBJ}}
    if stream:
        ok["text/event-stream"] = {"schema": _STR}
    errors = {str(code): {"description": why, "content": {"application/json": {"schema": error}}} for code, why in (
        (400, "bad input, naming the field"), (401, "missing or wrong key"), (404, "unknown model"),
        (413, "body over the limit"), (429, "rate limited"), (502, "provider failure"),
        (503, "no deployment could answer"), (504, "upstream timeout"),
    )}  # fmt: skip
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "the answer", "content": ok}, **errors},
        }
    }


def _get(summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": _OBJ}}}},
        }
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "llmrelay gateway", "version": __version__},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            }
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/v1/chat/completions": _post("OpenAI chat completions (JSON or SSE)", _CHAT, _OPENAI_ERROR, stream=True),
            "/v1/embeddings": _post("OpenAI embeddings", _EMBED, _OPENAI_ERROR),
            "/v1/models": _get("Models this gateway serves"),
            "/v1/messages": _post("Anthropic Messages (JSON or SSE)", _MESSAGES, _ANTHROPIC_ERROR, stream=True),
            "/v1/messages/count_tokens": _post("Anthropic token count", _MESSAGES, _ANTHROPIC_ERROR),
            "/health/live": _get("The process answers"),
            "/health/ready": _get("At least one deployment can serve (503 otherwise)"),
        },
    }


_DOCUMENT = orjson.dumps(document(), option=orjson.OPT_INDENT_2)


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
