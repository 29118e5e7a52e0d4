"""Gemini's ``Schema`` (an OpenAPI 3.0 subset: ``"type": "OBJECT"``, ``nullable``,
``propertyOrdering``, int64 counts as strings) -> JSON Schema, the form canonical
tools and response formats hold. Used for ``FunctionDeclaration.parameters`` and
``generationConfig.responseSchema``; their ``...JsonSchema`` twins are taken as given."""

from __future__ import annotations

from typing import Any

from .codec import JSON
from .inbound_fields import fail

_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
_COUNTS = frozenset(("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"))
_TEXTS = frozenset(("format", "title", "description", "pattern"))


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


def json_schema(schema: Any, where: str) -> JSON:
    """The JSON Schema ``schema`` means; ``InvalidRequest`` naming the first field that
    is not one of Schema's or has the wrong type. ``propertyOrdering`` is left out
    (JSON Schema has no such keyword), ``nullable`` becomes a ``"null"`` type,
    ``example`` becomes ``examples``."""
    if not isinstance(schema, dict):
        fail(where, "must be a Schema object")
    out: JSON = {}
    nullable = False
    for key, value in schema.items():
        name, path = _camel(key), f"{where}.{key}"
        if value is None:
            continue
        if name == "type":
            kind = value.upper() if isinstance(value, str) else None
            if kind != "TYPE_UNSPECIFIED":
                if kind not in _TYPES:
                    fail(path, f"must be one of {', '.join(sorted(_TYPES))}, not {value!r}")
                out["type"] = kind.lower()
        elif name == "nullable":
            if not isinstance(value, bool):
                fail(path, "must be true or false")
            nullable = value
        elif name == "properties":
            if not isinstance(value, dict):
                fail(path, "must be an object of Schemas")
            out["properties"] = {k: json_schema(v, f"{path}.{k}") for k, v in value.items()}
        elif name == "items":
            out["items"] = json_schema(value, path)
        elif name == "anyOf":
            if not isinstance(value, list) or not value:
                fail(path, "must be a non-empty list of Schemas")
            out["anyOf"] = [json_schema(v, f"{path}[{i}]") for i, v in enumerate(value)]
        elif name in ("required", "propertyOrdering", "enum"):
            if not isinstance(value, list) or (name != "enum" and not all(isinstance(v, str) for v in value)):
                fail(path, "must be a list of strings" if name != "enum" else "must be a list")
            if name != "propertyOrdering":
                out[name] = value
        elif name in _COUNTS:
            out[name] = _count(value, path)
        elif name in ("minimum", "maximum"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                fail(path, "must be a number")
            out[name] = value
        elif name in _TEXTS:
            if not isinstance(value, str):
                fail(path, "must be a string")
            if not (name == "format" and value == "enum"):  # Gemini's marker for string enums
                out[name] = value
        elif name == "default":
            out["default"] = value
        elif name == "example":
            out["examples"] = [value]
        else:
            fail(path, "is not a field of Gemini's Schema")
    if nullable:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"].append({"type": "null"})
    return out


def _count(value: Any, where: str) -> int:
    """An int64 count: JSON has it as a string (``"5"``), clients often as a number."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer() or value < 0:
        fail(where, f"must be a non-negative integer, not {value!r}")
    return int(value)


__all__ = ["json_schema"]
