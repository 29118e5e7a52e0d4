"""Checks on what a client sends, before any of it reaches the router, a provider,
the store or a metric: a request error is the caller's, a 400 that no breaker,
cooldown or health score ever counts.

- **Names** (models, and anything else a client names that ends up in a header,
  a log line, a label or a database row): 1 to ``MAX_NAME`` characters, none of
  them a control character (NUL, CR, LF, ...).
- **Shape**: a body nested deeper than ``MAX_DEPTH`` levels is refused whole
  (JSON encoders stop at about 255; nothing an API takes needs more than a few
  dozen), so it can never fail later, inside an upstream attempt; so is one of
  more than ``MAX_CONTAINERS`` objects and arrays, before it is decoded.
"""

from __future__ import annotations

import re

from .http import HTTPError

MAX_NAME = 256
MAX_DEPTH = 64
MAX_CONTAINERS = 100_000
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_name(name: str) -> str:
    """``name`` when it may be used as a model name, else a 400 naming ``model``."""
    if not name or len(name) > MAX_NAME:
        raise HTTPError(400, f"'model' must be 1 to {MAX_NAME} characters long", param="model")
    bad = _CONTROL.search(name)
    if bad is not None:
        raise HTTPError(
            400, f"'model' must not contain control characters (found U+{ord(bad.group()):04X})", param="model"
        )
    return name


def check_shape(raw: bytes) -> None:
    """A 400 when the JSON ``raw`` nests objects and arrays deeper than ``MAX_DEPTH``, or
    holds more than ``MAX_CONTAINERS`` of them, looked at before it is decoded: decoding
    millions of tiny arrays (``[[],[],...]``) would hold the event loop for seconds. Bytes
    only, at C speed: a body with few brackets passes at once; otherwise its strings are
    cut out, and innermost pairs removed, a level a pass."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return
    shape = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if shape.count(b"{") + shape.count(b"[") > MAX_CONTAINERS:
        raise HTTPError(400, f"the request body holds more than {MAX_CONTAINERS:,} JSON objects and arrays")
    for _ in range(MAX_DEPTH):
        if not shape:
            return
        shape = shape.replace(b"[]", b"").replace(b"{}", b"")
    if shape:
        raise HTTPError(400, f"the request body is nested deeper than {MAX_DEPTH} levels")


__all__ = ["MAX_CONTAINERS", "MAX_DEPTH", "MAX_NAME", "check_name", "check_shape"]
