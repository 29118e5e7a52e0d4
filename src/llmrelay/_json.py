"""JSON in one place (orjson: about 5x faster than the standard library here)."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


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
