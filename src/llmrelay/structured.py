"""Structured output: ask for JSON of a given shape and get it back validated.

``response_format`` may be a pydantic model class, a JSON schema dict, an
OpenAI-style ``{"type": "json_schema", "json_schema": {...}}`` or
``{"type": "json_object"}``. Providers with native JSON-schema output use it;
the others (Anthropic) are asked through a forced tool call. Either way the
answer's JSON text ends up in ``ChatResponse.content`` and is parsed here into
``ChatResponse.parsed``.
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors
from ._json import JSONDecodeError, loads
from .types import ChatRequest, ChatResponse, ResponseFormat

JSON_OBJECT_INSTRUCTION = "Respond with a single JSON object only."
"""Added to the system prompt for ``json_object`` on providers without a JSON mode."""


def structured_tool_name(request: ChatRequest) -> str | None:
    """The forced tool that carries a structured answer on providers without native
    JSON-schema output (Anthropic, Bedrock): the format's name, when it has a schema."""
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.schema is not None:
        return fmt.name
    return None


def to_response_format(value: Any) -> ResponseFormat | None:
    """Normalise what users pass as ``response_format``."""
    if value is None or isinstance(value, ResponseFormat):
        return value
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        schema = strict_schema(value.model_json_schema())
        return ResponseFormat("json_schema", schema=schema, name=_schema_name(value.__name__), model=value)
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "json_schema" and isinstance(value.get("json_schema"), dict):
            spec = value["json_schema"]
            strict = bool(spec.get("strict", False))  # OpenAI's default
            schema = spec.get("schema") or {}
            if not isinstance(schema, dict):
                raise errors.InvalidRequest("response_format.json_schema.schema must be a JSON schema object")
            if not isinstance(spec.get("name") or "", str):
                raise errors.InvalidRequest("response_format.json_schema.name must be a string")
            return ResponseFormat(
                "json_schema",
                schema=strict_schema(schema) if strict else schema,
                name=_schema_name(spec.get("name") or "response"),
                strict=strict,
            )
        if kind in ("json_object", "text"):
            return ResponseFormat(kind)
        if kind == "object" or "properties" in value:  # a bare schema: asked as given, not strict
            name = _schema_name(value.get("title") or "response")
            return ResponseFormat("json_schema", schema=value, name=name, strict=False)
    raise errors.InvalidRequest(
        "response_format must be a pydantic model class, a JSON schema, "
        "{'type': 'json_schema', 'json_schema': {...}} or {'type': 'json_object'}"
    )


def _schema_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)
    return cleaned[:64] or "response"


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a JSON schema fit for OpenAI's strict mode: every object closed
    (``additionalProperties: false``) with all its properties required, no
    ``default`` values, and ``$ref`` standing alone (strict mode refuses siblings)."""
    out = copy.deepcopy(schema)
    _close_objects(out)
    return out


_SCHEMA_MAPS = frozenset(("properties", "$defs", "definitions", "patternProperties"))


def _close_objects(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
            node["required"] = list(node["properties"])
        if "$ref" in node:
            for key in [k for k in node if k != "$ref"]:
                del node[key]
        node.pop("default", None)
        for key, value in node.items():
            if key in _SCHEMA_MAPS and isinstance(value, dict):  # names -> schemas: the names are data
                for sub_schema in value.values():
                    _close_objects(sub_schema)
            else:
                _close_objects(value)
    elif isinstance(node, list):
        for item in node:
            _close_objects(item)


def structured_value(response: ChatResponse, fmt: ResponseFormat | None) -> Any:
    """What ``response.parsed`` holds for ``fmt``: the validated value of a JSON
    format's answer (``parse_structured``), ``None`` for text, no format, or an
    answer that is tool calls."""
    if fmt is None or fmt.type == "text" or response.tool_calls:
        return None
    return parse_structured(response, fmt)


def parse_structured(response: ChatResponse, fmt: ResponseFormat) -> Any:
    """The validated value of a structured answer (``None`` after a refusal).

    Raises ``StructuredOutputError`` (with the raw text) for invalid JSON, an
    answer cut by max_tokens, or a schema mismatch.
    """
    if response.refusal:
        return None
    text = response.content
    provider = response.provider
    if response.finish_reason == "length":
        raise errors.StructuredOutputError(
            "the answer was cut by max_tokens before the JSON was complete", raw_text=text, provider=provider
        )
    try:
        value = loads(_strip_fence(text))
    except JSONDecodeError as exc:
        raise errors.StructuredOutputError(
            f"the answer is not valid JSON: {exc}", raw_text=text, provider=provider
        ) from None
    if fmt.model is None:
        return value
    from pydantic import ValidationError

    try:
        return fmt.model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
        raise errors.StructuredOutputError(
            f"the answer does not match {fmt.model.__name__}: {problems}", raw_text=text, provider=provider
        ) from None


def _strip_fence(text: str) -> str:
    """Models asked for JSON sometimes wrap it in a Markdown code fence."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        body = stripped[3:-3]
        newline = body.find("\n")
        return body[newline + 1 :] if newline >= 0 else body
    return stripped
