"""Gemini ``contents`` and ``systemInstruction`` -> canonical messages (for :mod:`.inbound`).

- A model turn's text parts are the assistant's text, its ``thought`` parts its
  reasoning, the first ``thoughtSignature`` on them its ``reasoning_signature``,
  its ``functionCall`` parts its tool calls. A user turn's ``functionResponse``
  parts become tool messages, before a user message holding its other parts.
- A function call without an ``id`` gets ``call_<content>_<part>`` (the same for
  the same request); a ``functionResponse`` answers the call with its ``id``, else
  the oldest unanswered call of its name. A Gemini id is also kept in
  ``ToolCall.extra["gemini_call_id"]`` and a part's signature in
  ``extra["thought_signature"]``, which the outbound codec sends back.
- Images only: ``inlineData`` of an ``image/*`` type, ``fileData`` with an http(s)
  or gs:// image URL. Other media, Gemini Files API URIs, and code execution or
  server-side tool parts are refused.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any
from urllib.parse import urlsplit

from ..._json import dumps_str
from ..._messages import image_from_url
from ...types import ContentPart, ImagePart, Message, TextPart, ToolCall
from .codec import CALL_ID, JSON, SIGNATURE, tool_response
from .inbound_fields import fail, field_path, find, get, json_type

_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
_REFUSED_PARTS = ("executableCode", "codeExecutionResult", "toolCall", "toolResponse")
_FILES_API = ("generativelanguage.googleapis.com",)
_URL_SAFE = str.maketrans("-_", "+/")


def system_message(body: JSON) -> Message | None:
    key, value = find(body, "systemInstruction")
    if value is None or isinstance(value, str):
        return Message("system", value) if value else None
    if not isinstance(value, dict):
        fail(key, f"must be a Content object or a string, not {json_type(value)}")
    texts: list[str] = []
    for j, part in enumerate(get(value, "parts", list, key, required=True)):
        where = f"{key}.parts[{j}]"
        if not isinstance(part, dict):
            fail(where, f"must be a Part object, not {json_type(part)}")
        text = get(part, "text", str, where)
        if text is None:
            fail(where, "system instructions take text parts only")
        if text:
            texts.append(text)
    if not texts:
        return None
    return Message("system", texts[0] if len(texts) == 1 else [TextPart(t) for t in texts])


class Turns:
    """Contents -> canonical messages: a model turn's function calls become its tool
    calls; a user turn's function responses become tool messages (before its other
    parts), each answering one earlier call."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._open: list[ToolCall] = []  # calls not answered yet, oldest first
        self._ids: set[str] = set()

    def add(self, content: Any, i: int) -> None:
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            fail(where, f"must be a Content object, not {json_type(content)}")
        role = get(content, "role", str, where) or "user"
        if role not in ("user", "model"):
            fail(f"{where}.role", f"must be 'user' or 'model', not {role!r}")
        parts = get(content, "parts", list, where, required=True)
        if not parts:
            fail(f"{where}.parts", "must not be empty")
        if role == "model":
            self._model(parts, i, where)
        else:
            self._user(parts, where)

    def _user(self, parts: list[Any], where: str) -> None:
        content: list[ContentPart] = []
        for j, part in enumerate(parts):
            at = f"{where}.parts[{j}]"
            key, value = _data(part, at)
            if key == "functionResponse":
                self.messages.append(self._result(value, f"{at}.{find(part, key)[0]}"))
            elif key == "functionCall":
                fail(f"{at}.{find(part, key)[0]}", "function calls belong in 'model' turns")
            elif key is not None:
                _media_or_text(key, value, part, at, content)
        if content:
            first = content[0]
            self.messages.append(
                Message("user", first.text if len(content) == 1 and type(first) is TextPart else content)
            )

    def _model(self, parts: list[Any], i: int, where: str) -> None:
        content: list[ContentPart] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        signature: str | None = None
        for j, part in enumerate(parts):
            at = f"{where}.parts[{j}]"
            key, value = _data(part, at)
            if key == "functionCall":
                calls.append(self._call(part, value, f"{at}.{find(part, key)[0]}", f"call_{i}_{j}"))
                continue
            if key == "functionResponse":
                fail(f"{at}.{find(part, key)[0]}", "function responses belong in 'user' turns")
            signature = signature or get(part, "thoughtSignature", str, at) or None
            if key == "text" and get(part, "thought", bool, at):
                thoughts.append(value)
            elif key is not None:
                _media_or_text(key, value, part, at, content)
        texts = [p.text for p in content if type(p) is TextPart]
        body: str | list[ContentPart] | None = content or None
        if content and len(texts) == len(content):
            body = "".join(texts)
        message = Message(
            "assistant", body, tool_calls=calls, reasoning="".join(thoughts) or None, reasoning_signature=signature
        )
        if body is not None or calls or signature:
            self.messages.append(message)
        self._open.extend(calls)

    def _call(self, part: JSON, function: Any, where: str, default_id: str) -> ToolCall:
        if not isinstance(function, dict):
            fail(where, f"must be a FunctionCall object, not {json_type(function)}")
        name = get(function, "name", str, where, required=True)
        if not name:
            fail(f"{where}.name", "must not be empty")
        args = get(function, "args", dict, where) or {}
        wire_id = get(function, "id", str, where)
        extra: JSON = {}
        if wire_id:
            extra[CALL_ID] = wire_id
        signature = get(part, "thoughtSignature", str, where.rpartition(".")[0])
        if signature:
            extra[SIGNATURE] = signature
        call_id = wire_id or default_id
        while call_id in self._ids:  # ids are unique in a conversation; the Gemini id stays in extra
            call_id += "_"
        self._ids.add(call_id)
        return ToolCall(call_id, name, args, dumps_str(args), extra)

    def _result(self, function: Any, where: str) -> Message:
        if not isinstance(function, dict):
            fail(where, f"must be a FunctionResponse object, not {json_type(function)}")
        name = get(function, "name", str, where, required=True)
        response = get(function, "response", dict, where, required=True)
        wire_id = get(function, "id", str, where)
        if get(function, "parts", list, where):
            fail(f"{where}.parts", "multimodal function responses are not supported: put the result in 'response'")
        found = [c for c in self._open if wire_id and c.extra.get(CALL_ID) == wire_id]
        found = found or [c for c in self._open if c.name == name]
        if not found:
            fail(
                where, f"answers no earlier functionCall named {name!r}" + (f" with id {wire_id!r}" if wire_id else "")
            )
        call = found[0]
        self._open.remove(call)
        # the inverse of codec.tool_response: {"result": text} is the text itself
        text = response["result"] if tool_response(str(response.get("result"))) == response else dumps_str(response)
        return Message("tool", text, name=name, tool_call_id=call.id)


def _data(part: Any, where: str) -> tuple[str | None, Any]:
    """``(field, value)`` of a part's one data field; ``(None, None)`` for a part with
    only a thought signature (Gemini sends ``{"thoughtSignature": ...}`` alone)."""
    if not isinstance(part, dict):
        fail(where, f"must be a Part object, not {json_type(part)}")
    for name in _REFUSED_PARTS:
        key, value = find(part, name)
        if value is not None:
            fail(field_path(where, key), "code execution and server-side tool parts are not supported by the gateway")
    found = [(name, find(part, name)[1]) for name in _DATA_FIELDS if find(part, name)[1] is not None]
    if len(found) > 1:
        fail(where, f"must have one data field, not {len(found)} ({', '.join(n for n, _ in found)})")
    if not found:
        if get(part, "thoughtSignature", str, where):
            return None, None
        fail(where, f"must have one of {', '.join(_DATA_FIELDS)}")
    name, value = found[0]
    if name == "text" and not isinstance(value, str):
        fail(field_path(where, find(part, name)[0]), f"must be a string, not {json_type(value)}")
    return name, value


def _media_or_text(key: str, value: Any, part: JSON, where: str, out: list[ContentPart]) -> None:
    where = field_path(where, find(part, key)[0])
    if key == "text":
        if value:
            out.append(TextPart(value))
    elif key == "inlineData":
        out.append(_blob(value, where))
    else:
        out.append(_file(value, where))


def _blob(blob: Any, where: str) -> ImagePart:
    if not isinstance(blob, dict):
        fail(where, f"must be a Blob object, not {json_type(blob)}")
    mime = get(blob, "mimeType", str, where, required=True)
    key, data = find(blob, "data")
    if not isinstance(data, str) or not data:
        fail(field_path(where, key), "Field required" if data is None else "must be a base64 string")
    if not mime.startswith("image/"):
        fail(
            field_path(where, find(blob, "mimeType")[0]),
            f"{mime!r} is not supported: the gateway takes images (image/png, image/jpeg, image/webp...) only",
        )
    return ImagePart(data=_standard_base64(data, field_path(where, key)), media_type=mime)


def _standard_base64(data: str, where: str) -> str:
    """``data`` in standard base64 (Gemini also takes the URL-safe alphabet and no padding)."""
    for candidate in (data, data.translate(_URL_SAFE) + "=" * (-len(data) % 4)):
        try:
            base64.b64decode(candidate, validate=True)
        except (binascii.Error, ValueError):
            continue
        return candidate
    fail(where, "is not valid base64")


def _file(file: Any, where: str) -> ImagePart:
    if not isinstance(file, dict):
        fail(where, f"must be a FileData object, not {json_type(file)}")
    uri = get(file, "fileUri", str, where, required=True)
    mime = get(file, "mimeType", str, where)
    parsed = urlsplit(uri)
    if parsed.hostname in _FILES_API or uri.startswith("files/"):
        fail(f"{where}.fileUri", "Gemini Files API files are not reachable through the gateway: send inlineData")
    guessed = mime or mimetypes.guess_type(parsed.path)[0]
    if guessed is not None and not guessed.startswith("image/"):
        at = field_path(where, find(file, "mimeType")[0] if mime else find(file, "fileUri")[0])
        fail(at, f"{guessed!r} is not supported: the gateway takes images only")
    image = image_from_url(uri, f"{where}.fileUri")
    if mime is not None and image.url is not None:
        image.media_type = mime
    return image


__all__ = ["Turns", "system_message"]
