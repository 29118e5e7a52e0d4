"""Turning what users pass as messages into canonical ``Message`` objects.

Accepts ``Message`` objects, OpenAI-shaped dicts, or a plain string (one user
message). Every problem is an ``InvalidRequest`` naming the message and field.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Iterable
from typing import Any

from . import errors
from ._json import dumps_str, parse_arguments
from .types import ROLES, ContentPart, ImagePart, Message, TextPart, ToolCall


def to_messages(messages: str | Iterable[Message | dict[str, Any]] | None) -> list[Message]:
    if messages is None:
        raise errors.InvalidRequest("messages is required")
    if isinstance(messages, str):
        if not messages:
            raise errors.InvalidRequest("the prompt is empty")
        return [Message(role="user", content=messages)]
    out = [m if isinstance(m, Message) else _from_dict(m, i) for i, m in enumerate(messages)]
    if not out:
        raise errors.InvalidRequest("messages is empty: give at least one message")
    _check(out)
    return out


def _from_dict(raw: Any, i: int) -> Message:
    if not isinstance(raw, dict):
        raise errors.InvalidRequest(f"messages[{i}] must be a dict or a Message, not {type(raw).__name__}")
    role = raw.get("role")
    if role == "developer":  # OpenAI's newer name for system
        role = "system"
    if isinstance(role, list | dict) or role not in ROLES:  # (a list or dict is not hashable: never look it up)
        raise errors.InvalidRequest(f"messages[{i}].role is {role!r}; expected one of system, user, assistant, tool")
    content = raw.get("content")
    if content is not None and not isinstance(content, str):
        if not isinstance(content, list):
            raise errors.InvalidRequest(f"messages[{i}].content must be a string or a list of parts")
        content = [_part(p, i, j) for j, p in enumerate(content)]
    calls = raw.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise errors.InvalidRequest(f"messages[{i}].tool_calls must be a list")
    for key in ("name", "tool_call_id", "reasoning", "reasoning_content"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise errors.InvalidRequest(f"messages[{i}].{key} must be a string")
    return Message(
        role=role,
        content=content,
        name=raw.get("name"),
        tool_calls=[_tool_call(c, i, j) for j, c in enumerate(calls)] if calls else [],
        tool_call_id=raw.get("tool_call_id"),
        reasoning=raw.get("reasoning") or raw.get("reasoning_content"),
    )


def _part(raw: Any, i: int, j: int) -> ContentPart:
    where = f"messages[{i}].content[{j}]"
    if isinstance(raw, TextPart | ImagePart):
        return raw
    if isinstance(raw, str):
        return TextPart(raw)
    if not isinstance(raw, dict):
        raise errors.InvalidRequest(f"{where} must be a dict part, not {type(raw).__name__}")
    kind = raw.get("type")
    if kind in ("text", "input_text"):
        text = raw.get("text")
        if not isinstance(text, str):
            raise errors.InvalidRequest(f"{where}.text must be a string")
        return TextPart(text)
    if kind == "image_url":
        spec = raw.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        detail = spec.get("detail") if isinstance(spec, dict) else None
        return image_from_url(url, where, _detail(detail, where))
    if kind == "image":
        if raw.get("data") is not None:
            return _image_data(raw.get("data"), raw.get("media_type"), where, _detail(raw.get("detail"), where))
        return image_from_url(raw.get("url"), where, _detail(raw.get("detail"), where))
    raise errors.InvalidRequest(f"{where}.type {kind!r} is not supported (use 'text', 'image_url' or 'image')")


def _detail(value: Any, where: str) -> str | None:
    if value is None or value in ("auto", "low", "high"):
        return value  # type: ignore[no-any-return]
    raise errors.InvalidRequest(f"{where}: image detail must be 'auto', 'low' or 'high'")


def image_from_url(url: Any, where: str, detail: str | None = None) -> ImagePart:
    """An image from an http(s) URL or a ``data:`` URL; anything else is an error."""
    if not isinstance(url, str) or not url:
        raise errors.InvalidRequest(f"{where}: an image needs a URL or base64 data")
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if not sep or ";base64" not in header:
            raise errors.InvalidRequest(f"{where}: a data: URL image must be base64 (data:image/png;base64,...)")
        return _image_data(data, header[5:].split(";", 1)[0], where, detail)
    if url.startswith(("http://", "https://", "gs://")):
        return ImagePart(url=url, detail=detail)
    raise errors.InvalidRequest(f"{where}: image {url[:40]!r} is neither an http(s) URL nor a base64 data: URL")


# Base64 openings of the image formats every provider takes, for data sent without a media type.
_IMAGE_MAGIC = {"iVBORw0KGg": "image/png", "/9j/": "image/jpeg", "R0lGOD": "image/gif", "UklGR": "image/webp"}


def sniff_image_type(data: str) -> str | None:
    """The media type of base64 image ``data`` from its first bytes (PNG, JPEG, GIF, WebP), else ``None``."""
    return next((media for prefix, media in _IMAGE_MAGIC.items() if data.startswith(prefix)), None)


def _image_data(data: Any, media_type: Any, where: str, detail: str | None) -> ImagePart:
    if not isinstance(data, str) or not data:
        raise errors.InvalidRequest(f"{where}: image data must be a base64 string")
    try:
        b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise errors.InvalidRequest(f"{where}: image data is not valid base64") from None
    if not isinstance(media_type, str) or not media_type.startswith("image/"):
        raise errors.InvalidRequest(f"{where}: base64 image needs a media type such as image/png")
    return ImagePart(data=data, media_type=media_type, detail=detail)


def _tool_call(raw: Any, i: int, j: int) -> ToolCall:
    if isinstance(raw, ToolCall):
        return raw
    where = f"messages[{i}].tool_calls[{j}]"
    if not isinstance(raw, dict):
        raise errors.InvalidRequest(f"{where} must be a dict")
    fn: dict[str, Any] = raw["function"] if isinstance(raw.get("function"), dict) else raw
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise errors.InvalidRequest(f"{where} needs a function name")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        parsed = parse_arguments(args)
        if parsed is None:
            raise errors.InvalidRequest(f"{where}.arguments is not a JSON object")
        return ToolCall(id=str(raw.get("id") or f"call_{i}_{j}"), name=name, arguments=parsed, raw_arguments=args)
    if not isinstance(args, dict):
        raise errors.InvalidRequest(f"{where}.arguments must be a JSON object")
    return ToolCall(id=str(raw.get("id") or f"call_{i}_{j}"), name=name, arguments=args, raw_arguments=dumps_str(args))


def _check(messages: list[Message]) -> None:
    """Checks every provider needs: tool results answer a known call, something to answer."""
    call_ids: set[str] = set()
    has_turn = False
    for i, msg in enumerate(messages):
        if not isinstance(msg.role, str) or msg.role not in ROLES:
            raise errors.InvalidRequest(f"messages[{i}].role is {msg.role!r}; expected system, user, assistant or tool")
        if msg.role == "assistant":
            call_ids.update(c.id for c in msg.tool_calls)
        elif msg.role == "tool":
            if not msg.tool_call_id:
                raise errors.InvalidRequest(f"messages[{i}] is a tool result without tool_call_id")
            if msg.tool_call_id not in call_ids:
                raise errors.InvalidRequest(
                    f"messages[{i}] answers tool call {msg.tool_call_id!r}, which no earlier assistant message made"
                )
        if msg.role != "system":
            has_turn = True
    if not has_turn:
        raise errors.InvalidRequest("messages hold only system prompts: add a user message")
