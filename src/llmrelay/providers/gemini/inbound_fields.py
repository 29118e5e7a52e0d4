"""Reading Gemini request fields for the inbound codec: camelCase or snake_case
names (the API takes both; the ``google-genai`` SDK sends snake_case inside some
objects), typed, and every problem an ``InvalidRequest`` naming the field's path
(``contents[1].parts[0].inlineData.data``)."""

from __future__ import annotations

from functools import cache
from typing import Any, NoReturn

from ... import errors
from .codec import JSON


def fail(where: str, problem: str) -> NoReturn:
    raise errors.InvalidRequest(f"{where}: {problem}")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", int: "a number", float: "a number", dict: "an object", list: "a list"}.get(
        type(value), type(value).__name__
    )


@cache
def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def find(obj: dict[str, Any], name: str) -> tuple[str, Any]:
    """``(key, value)`` of camelCase field ``name`` or its snake_case twin (value ``None`` when absent)."""
    if name in obj:
        return name, obj[name]
    twin = snake(name)
    return (twin, obj[twin]) if twin in obj else (name, None)


def field_path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


KINDS = {str: "a string", bool: "true or false", dict: "an object", list: "a list"}


def get(obj: dict[str, Any], name: str, kind: type, where: str = "", *, required: bool = False) -> Any:
    """Field ``name`` if it is a ``kind`` (``None`` when absent), else ``InvalidRequest`` naming its path."""
    key, value = find(obj, name)
    if value is None:
        if required:
            fail(field_path(where, key), "Field required")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        fail(field_path(where, key), f"must be {KINDS[kind]}, not {json_type(value)}")
    return value


def get_int(obj: dict[str, Any], name: str, where: str = "", low: int | None = None) -> int | None:
    """An integer field; ``3.0`` counts (the SDK sends ``topK`` as a float)."""
    key, value = find(obj, name)
    if value is None:
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        fail(field_path(where, key), f"must be an integer, not {value!r}")
    if low is not None and value < low:
        fail(field_path(where, key), f"must be at least {low}, not {value!r}")
    if abs(value) > MAX_INT:  # Google's fields are int32 (the seed int64): nothing larger is a real value
        fail(field_path(where, key), f"must be at most {MAX_INT}, not {value!r}")
    return int(value)


MAX_INT = 2**63 - 1


def get_number(obj: dict[str, Any], name: str, where: str, high: float) -> float | None:
    key, value = find(obj, name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high):
        fail(field_path(where, key), f"must be a number from 0 to {high:g}, not {value!r}")
    return value


def other_fields(obj: dict[str, Any], names: frozenset[str]) -> JSON:
    """The fields of ``obj`` not among ``names`` (in either spelling), as given."""
    return {k: v for k, v in obj.items() if k not in names and k not in {snake(n) for n in names}}


def model_name(model: Any, where: str) -> str:
    if not isinstance(model, str) or not model.removeprefix("models/"):
        fail(where, f"must name a model, not {model!r}")
    return model.removeprefix("models/")


def same_model(obj: dict[str, Any], model: str, where: str) -> None:
    """A body's ``model`` (``models/x`` or ``x``), when given, is the URL's."""
    key, value = find(obj, "model")
    if value is not None and model_name(value, field_path(where, key)) != model:
        fail(field_path(where, key), f"{value!r} is not the model of the URL ({model!r})")


__all__ = [
    "fail", "field_path", "find", "get", "get_int", "get_number", "json_type", "model_name", "other_fields",
    "same_model", "snake",
]  # fmt: skip
