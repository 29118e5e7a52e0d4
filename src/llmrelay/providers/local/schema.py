"""JSON schemas made fit for a llama.cpp grammar: the local model's tool arguments.

``fit_schema`` returns a copy of a schema that llama-cpp-python's converter
(``llama_cpp.llama_grammar.SchemaConverter``) turns into a grammar whose every
output is valid against the original schema, or raises ``InvalidRequest``
naming the keyword and where it is. Three kinds of keywords:

- **enforced** by the grammar: ``type`` (one or a list), ``properties``,
  ``required``, ``additionalProperties``, ``items``, ``prefixItems``,
  ``minItems``, ``maxItems``, ``enum``, ``const``, ``anyOf``, ``oneOf`` (as
  ``anyOf``), ``allOf`` of objects, local ``$ref`` (``#/...``, inlined),
  ``minLength``/``maxLength`` and the ``date``, ``time``, ``date-time`` and
  ``uuid`` formats;
- **loosened** (the grammar keeps the value's type, not the constraint):
  ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``,
  ``multipleOf``, ``pattern``, other ``format`` values, ``uniqueItems``,
  ``minProperties``, ``maxProperties``, ``contains``...;
- **refused**: recursive or non-local ``$ref``, ``not``, ``if``/``then``/``else``,
  ``patternProperties``, ``dependentRequired`` and the other keywords in
  ``REFUSED``, ``false`` schemas, unknown types, a ``required`` name that no
  property defines.

Annotations (``title``, ``description``, ``default``...) and keywords JSON
Schema does not define are ignored, as a validator ignores them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ... import errors

TYPES = frozenset(("string", "number", "integer", "boolean", "null", "object", "array"))
FORMATS = frozenset(("date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"))
LOOSENED = frozenset((
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "pattern", "uniqueItems",
    "minProperties", "maxProperties", "contains", "minContains", "maxContains", "contentEncoding",
    "contentMediaType", "contentSchema",
))  # fmt: skip
REFUSED = frozenset((
    "not", "if", "then", "else", "patternProperties", "dependentRequired", "dependentSchemas", "dependencies",
    "propertyNames", "unevaluatedProperties", "unevaluatedItems", "additionalItems", "$dynamicRef",
    "$recursiveRef",
))  # fmt: skip
STRUCTURE = frozenset((
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
    "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "minLength", "maxLength", "format",
))  # fmt: skip
"""What the converter reads: everything else is dropped from the fitted copy."""
MAX_NODES = 2_000
"""A schema bigger than this once its ``$ref`` are inlined is refused (a grammar that size is slow)."""


class _Fitter:
    def __init__(self, root: dict[str, Any], where: str) -> None:
        self.root = root
        self.where = where
        self.expanding: list[str] = []
        self.nodes = 0

    def fail(self, path: str, problem: str) -> errors.InvalidRequest:
        at = f"{self.where} at {path}" if path else self.where
        return errors.InvalidRequest(f"the local model cannot follow the JSON schema of {at}: {problem}")

    def fit(self, schema: Any, path: str) -> dict[str, Any]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail("", f"it has more than {MAX_NODES} parts once its $ref are inlined")
        if schema is True:
            return {}
        if schema is False or not isinstance(schema, dict):
            raise self.fail(path, f"{schema!r} is not a schema the grammar can follow (an object or true)")
        refused = sorted(REFUSED & schema.keys())
        if refused:
            raise self.fail(path, f"'{refused[0]}' is not supported by the grammar")
        if "$ref" in schema:
            return self.fit_ref(schema, path)
        if "allOf" in schema:
            return self.fit(self.merge_all_of(schema, path), path)
        kinds = schema.get("type")
        if isinstance(kinds, list):
            return self.fit_type_list(schema, kinds, path)
        if kinds is not None and kinds not in TYPES:
            raise self.fail(f"{path}/type", f"unknown type {kinds!r}")
        return self.fit_plain(schema, path)

    def fit_plain(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in schema.items() if k in STRUCTURE and k not in ("format", "$ref")}
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches = schema[key]
                if not isinstance(branches, list) or not branches:
                    raise self.fail(f"{path}/{key}", "must be a non-empty list of schemas")
                siblings = sorted(k for k in schema.keys() & STRUCTURE if k != key)
                if siblings:
                    raise self.fail(path, f"'{key}' beside '{siblings[0]}' is not supported: move it into each branch")
                return {"anyOf": [self.fit(b, f"{path}/{key}/{i}") for i, b in enumerate(branches)]}
        if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
            raise self.fail(f"{path}/enum", "must be a non-empty list")
        fmt = schema.get("format")
        if fmt in FORMATS and schema.get("type") in (None, "string") and "enum" not in schema:
            out["format"] = fmt
        if "properties" in schema:
            properties = schema["properties"]
            if not isinstance(properties, dict):
                raise self.fail(f"{path}/properties", "must be an object")
            out["properties"] = {k: self.fit(v, f"{path}/properties/{k}") for k, v in properties.items()}
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise self.fail(f"{path}/required", "must be a list of property names")
        missing = [r for r in required if r not in out.get("properties", {})]
        if missing:
            raise self.fail(f"{path}/required", f"{missing[0]!r} is required but no property defines it")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = self.fit(extra, f"{path}/additionalProperties")
        elif extra is not None and not isinstance(extra, bool):
            raise self.fail(f"{path}/additionalProperties", "must be a boolean or a schema")
        if "prefixItems" in schema or isinstance(schema.get("items"), list):
            return self.fit_tuple(schema, out, path)
        if "items" in schema:
            out["items"] = self.fit(schema["items"], f"{path}/items")
        elif schema.get("type") == "array":
            out["items"] = {}  # the converter needs an item schema to build an array of anything
        for key in ("minItems", "maxItems", "minLength", "maxLength"):
            if key in schema and (type(schema[key]) is not int or schema[key] < 0):
                raise self.fail(f"{path}/{key}", "must be a whole number >= 0")
        if out.get("maxItems", 1) < out.get("minItems", 0) or out.get("maxLength", 1) < out.get("minLength", 0):
            raise self.fail(path, "no value can match: the maximum is below the minimum")
        return out

    def fit_tuple(self, schema: dict[str, Any], out: dict[str, Any], path: str) -> dict[str, Any]:
        key = "prefixItems" if "prefixItems" in schema else "items"
        items = schema[key]
        if not isinstance(items, list) or not items:
            raise self.fail(f"{path}/{key}", "must be a non-empty list of schemas")
        if schema.get("minItems", 0) > len(items):
            raise self.fail(path, "minItems asks for more items than prefixItems describes: not supported")
        # exactly the described items: any further ones are left out, which every schema allows
        out.pop("items", None)
        out.pop("minItems", None)
        out.pop("maxItems", None)
        out["prefixItems"] = [self.fit(s, f"{path}/{key}/{i}") for i, s in enumerate(items)]
        return out

    def fit_type_list(self, schema: dict[str, Any], kinds: list[Any], path: str) -> dict[str, Any]:
        unknown = [k for k in kinds if k not in TYPES]
        if unknown or not kinds:
            raise self.fail(f"{path}/type", f"unknown type {unknown[0]!r}" if unknown else "empty list of types")
        if len(kinds) == 1:
            return self.fit({**schema, "type": kinds[0]}, path)
        # the converter would drop the other keywords of a type list: one branch per type keeps them
        return {"anyOf": [self.fit({**schema, "type": k}, f"{path}/type/{i}") for i, k in enumerate(kinds)]}

    def fit_ref(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        ref = schema["$ref"]
        siblings = sorted(k for k in schema.keys() & STRUCTURE if k != "$ref")
        if siblings:
            raise self.fail(path, f"'$ref' beside '{siblings[0]}' is not supported")
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise self.fail(f"{path}/$ref", f"only local references (#/...) are supported, not {ref!r}")
        if ref in self.expanding:
            raise self.fail(f"{path}/$ref", f"{ref!r} refers to itself (a recursive schema): not supported")
        with self._expanding(ref):
            return self.fit(self.resolve(ref, path), path)

    @contextmanager
    def _expanding(self, ref: str) -> Iterator[None]:
        self.expanding.append(ref)
        try:
            yield
        finally:
            self.expanding.pop()

    def resolve(self, ref: str, path: str) -> Any:
        target: Any = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                raise self.fail(f"{path}/$ref", f"{ref!r} points at nothing")
        return target

    def merge_all_of(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        """``allOf`` of object schemas as one object schema (their properties and requirements together)."""
        parts = schema["allOf"]
        if not isinstance(parts, list) or not parts:
            raise self.fail(f"{path}/allOf", "must be a non-empty list of schemas")
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        if len(parts) == 1 and not (rest.keys() & STRUCTURE):
            return {**rest, **_plain(parts[0])}  # pydantic's way of annotating a $ref
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for i, part in enumerate([*parts, rest]):
            part = self.inline(part, f"{path}/allOf/{i}")
            if not part.keys() & STRUCTURE:
                continue
            if part.get("type", "object") != "object" or part.keys() & _NOT_OBJECT:
                raise self.fail(f"{path}/allOf/{i}", "only objects can be combined with allOf")
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += [r for r in part.get("required", []) if r not in merged["required"]]
            if part.get("additionalProperties") is False:
                merged["additionalProperties"] = False
        return merged

    def inline(self, schema: Any, path: str) -> dict[str, Any]:
        """``schema`` with its own top-level ``$ref`` followed (for ``allOf``)."""
        seen: list[str] = []
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#") or ref in seen:
                return self.fit(schema, path)  # raises the right error
            seen.append(ref)
            schema = self.resolve(ref, path)
        if not isinstance(schema, dict):
            raise self.fail(path, f"{schema!r} is not an object schema")
        return schema


_NOT_OBJECT = frozenset(("items", "prefixItems", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf"))


def _plain(schema: Any) -> dict[str, Any]:
    return schema if isinstance(schema, dict) else {"allOf": [schema]}


def fit_schema(schema: dict[str, Any], where: str) -> dict[str, Any]:
    """A copy of ``schema`` the grammar converter follows exactly, or ``InvalidRequest``
    naming the problem (``where``: what the schema belongs to, e.g. ``tool 'get_weather'``)."""
    fitter = _Fitter(copy.deepcopy(schema), where)
    return fitter.fit(fitter.root, "")
