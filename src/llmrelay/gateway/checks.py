"""Checks on what a client sends, before any of it reaches the router, a provider,
the store or a metric: a request error is the caller's, a 400 that no breaker,
cooldown or health score ever counts.

- **Names** (models, and anything else a client names that ends up in a header,
  a log line, a label or a database row): 1 to ``MAX_NAME`` characters, none of
  them a control character (NUL, CR, LF, ...).
- **Nesting**: a body nested deeper than ``MAX_DEPTH`` levels is refused whole
  (JSON encoders stop at about 255; nothing an API takes needs more than a few
  dozen), so it can never fail later, inside an upstream attempt.
"""

from __future__ import annotations

import re
from typing import Any

from .http import HTTPError

MAX_NAME = 256
MAX_DEPTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_name(name: str, field: str = "model") -> str:
    """``name`` when it may be used as a name, else a 400 naming ``field``."""
    if not name or len(name) > MAX_NAME:
        raise HTTPError(400, f"'{field}' must be 1 to {MAX_NAME} characters long", param=field)
    bad = _CONTROL.search(name)
    if bad is not None:
        raise HTTPError(
            400, f"'{field}' must not contain control characters (found U+{ord(bad.group()):04X})", param=field
        )
    return name


def check_depth(body: Any, limit: int = MAX_DEPTH, raw: bytes | None = None) -> None:
    """A 400 when ``body`` nests objects and arrays deeper than ``limit``. With the ``raw``
    JSON it was decoded from, a body with fewer brackets than ``limit`` is passed at once
    (most are: counting bytes costs far less than walking the objects)."""
    if raw is not None and raw.count(b"{") + raw.count(b"[") <= limit:
        return
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            raise HTTPError(400, f"the request body is nested deeper than {limit} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))


__all__ = ["MAX_DEPTH", "MAX_NAME", "check_depth", "check_name"]
