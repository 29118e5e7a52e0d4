"""JSON in one place (orjson: about 5x faster than the standard library here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError
JSONEncodeError = orjson.JSONEncodeError  # a TypeError


def dumps(obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact UTF-8 JSON; ``default`` turns what JSON cannot hold into what it can."""
    return orjson.dumps(obj, default)


def dumps_canonical(obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """One text per value: keys sorted (any key type written as a string), for hashing."""
    return orjson.dumps(obj, default, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def dumps_pretty(obj: Any) -> bytes:
    """Indented by two spaces, for people."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2)


def dumps_str(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def parse_arguments(text: Any) -> dict[str, Any] | None:
    """Tool-call arguments as a dict; ``""`` is ``{}``; ``None`` when not a JSON object."""
    if not isinstance(text, str):
        return None
    if not text or text.isspace():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
