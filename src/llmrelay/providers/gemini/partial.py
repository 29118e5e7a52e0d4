"""Vertex AI's streamed function arguments (``partialArgs``): each item sets one
JSON path (``$.location``, ``$.items[0].name``) to a value, and string values
may arrive in pieces (``willContinue``). These helpers rebuild the arguments."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from .codec import JSON

_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[(['\"])(.*?)\3\]")


def parse_json_path(path: str) -> list[str | int] | None:
    """``$.a.b[0]['c d']`` as ``["a", "b", 0, "c d"]`` (Vertex ``partialArgs`` paths); None if unreadable."""
    if not path.startswith("$"):
        return None
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _PATH_STEP.match(path, pos)
        if match is None:
            return None
        name, index, _, quoted = match.groups()
        steps.append(name if name is not None else int(index) if index is not None else quoted)
        pos = match.end()
    return steps


def apply_partial_arg(args: JSON, item: Any) -> None:
    """Apply one Vertex ``partialArgs`` item to ``args``: a ``stringValue``
    appends to the string already at its path (long strings arrive in pieces),
    ``numberValue`` / ``boolValue`` / ``nullValue`` set it."""
    if not isinstance(item, dict):
        return
    steps = parse_json_path(str(item.get("jsonPath", "")))
    if not steps:
        return
    if "stringValue" in item:
        value: Any = str(item["stringValue"])
    elif "numberValue" in item:
        value = item["numberValue"]
    elif "boolValue" in item:
        value = item["boolValue"]
    elif "nullValue" in item:
        value = None
    else:
        return
    parent = _walk(args, steps)
    last = steps[-1]
    current = _get(parent, last)
    if isinstance(value, str) and isinstance(current, str):
        value = current + value
    _put(parent, last, value)


def _walk(node: Any, steps: list[str | int]) -> Any:
    """The container holding the last step, creating dicts and lists on the way."""
    for step, following in pairwise(steps):
        child = _get(node, step)
        if not isinstance(child, dict | list):
            child = [] if isinstance(following, int) else {}
            _put(node, step, child)
        node = child
    return node


def _get(node: Any, step: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(str(step))
    if isinstance(node, list) and isinstance(step, int) and step < len(node):
        return node[step]
    return None


def _put(node: Any, step: str | int, value: Any) -> None:
    if isinstance(node, dict):
        node[str(step)] = value
    elif isinstance(node, list) and isinstance(step, int):
        node.extend([None] * (step + 1 - len(node)))
        node[step] = value
