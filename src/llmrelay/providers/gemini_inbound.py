"""Gemini request contents back into canonical messages (``contents_from_wire``),
the inverse of ``gemini_codec.contents_to_wire``: for a gateway that accepts
Gemini-format requests, and for round-trip tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import errors
from .._json import dumps_str
from ..types import (
    ContentPart,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
)
from .gemini_codec import CALL_ID, JSON, tool_call_from_wire


def contents_from_wire(contents: list[Any], system_instruction: Any = None) -> list[Message]:
    """Gemini request ``contents`` (and ``systemInstruction``) as canonical messages.

    A user turn splits into ``tool`` messages (one per ``functionResponse``) and
    user messages, in order. Calls without a wire id get ``call_<n>``; a
    response without an id answers the oldest open call of the same name.
    ``inlineData`` / ``fileData`` become ``ImagePart`` whatever their MIME type
    (there is no other canonical media part); other parts with no canonical
    home are kept in ``Message.extra["gemini_parts"]``."""
    reader = _ContentsReader()
    messages: list[Message] = []
    if isinstance(system_instruction, dict):
        texts = [TextPart(p["text"]) for p in _parts_of(system_instruction) if isinstance(p.get("text"), str)]
        if texts:
            messages.append(Message("system", _content(texts)))
    for turn in contents:
        if not isinstance(turn, dict):
            raise errors.InvalidRequest("each item of contents must be an object")
        if turn.get("role") == "model":
            messages.extend(reader.model_messages(_parts_of(turn)))
        else:
            messages.extend(reader.user_messages(_parts_of(turn)))
    return messages


def _parts_of(content: JSON) -> list[JSON]:
    parts = content.get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _content(parts: Sequence[ContentPart]) -> str | list[ContentPart] | None:
    if not parts:
        return None
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    return list(parts)


def _content_part(part: JSON) -> ContentPart | None:
    if isinstance(part.get("text"), str):
        return TextPart(part["text"])
    inline = part.get("inlineData")
    if isinstance(inline, dict):
        return ImagePart(data=inline.get("data", ""), media_type=inline.get("mimeType"))
    file = part.get("fileData")
    if isinstance(file, dict):
        return ImagePart(url=file.get("fileUri", ""), media_type=file.get("mimeType"))
    return None


class _ContentsReader:
    """Pairs function responses with the calls they answer across turns."""

    def __init__(self) -> None:
        self.open_calls: list[ToolCall] = []
        self.all_calls: list[ToolCall] = []
        self.generated = 0

    def _new_id(self) -> str:
        self.generated += 1
        return f"call_{self.generated - 1}"

    def model_messages(self, parts: list[JSON]) -> list[Message]:
        """One assistant message per run of content parts then calls, so a turn
        with text after a call keeps its order (consecutive assistant messages
        merge back into one turn)."""
        groups: list[list[JSON]] = [[]]
        after_call = False
        for part in parts:
            is_content = _content_part(part) is not None
            if is_content and after_call:
                groups.append([])
            groups[-1].append(part)
            if "functionCall" in part:
                after_call = True
            elif is_content:
                after_call = False
        return [self._model_message(group) for group in groups]

    def _model_message(self, parts: list[JSON]) -> Message:
        content: list[ContentPart] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        signature: str | None = None
        unknown: list[JSON] = []
        for part in parts:
            if "functionCall" in part:
                call = tool_call_from_wire(part, 0)
                if CALL_ID not in call.extra:
                    call.id = self._new_id()  # unique across the conversation, not per turn
                calls.append(call)
                continue
            if part.get("thought") and isinstance(part.get("text"), str):
                thoughts.append(part["text"])
            else:
                _collect(part, content, unknown)
            signature = signature or part.get("thoughtSignature") or None
        self.open_calls.extend(calls)
        self.all_calls.extend(calls)
        extra: JSON = {"gemini_parts": unknown} if unknown else {}
        return Message(
            "assistant",
            _content(content),
            tool_calls=calls,
            reasoning="".join(thoughts) or None,
            reasoning_signature=signature,
            extra=extra,
        )

    def user_messages(self, parts: list[JSON]) -> list[Message]:
        messages: list[Message] = []
        run: list[ContentPart] = []
        unknown: list[JSON] = []
        for part in parts:
            result = part.get("functionResponse")
            if not isinstance(result, dict):
                _collect(part, run, unknown)
                continue
            if run:
                messages.append(Message("user", _content(run)))
                run = []
            name = result.get("name")
            messages.append(
                Message(
                    "tool",
                    _tool_text(result.get("response")),
                    name=name if isinstance(name, str) else None,
                    tool_call_id=self._answer(result),
                )
            )
        if run or unknown:
            messages.append(Message("user", _content(run), extra={"gemini_parts": unknown} if unknown else {}))
        return messages

    def _answer(self, result: JSON) -> str:
        """The id of the call this result answers: by wire id, else the oldest
        open call of that name, else the latest call of that name."""
        wire_id = result.get("id")
        if wire_id:
            self.open_calls = [c for c in self.open_calls if c.id != wire_id]
            return str(wire_id)
        name = result.get("name")
        for i, call in enumerate(self.open_calls):
            if call.name == name:
                del self.open_calls[i]
                return call.id
        earlier = [c.id for c in self.all_calls if c.name == name]
        return earlier[-1] if earlier else self._new_id()


def _collect(part: JSON, into: list[ContentPart], unknown: list[JSON]) -> None:
    converted = _content_part(part)
    if converted is not None:
        into.append(converted)
    elif set(part) - {"thoughtSignature"}:
        unknown.append(part)


def _tool_text(response: Any) -> str:
    if isinstance(response, dict) and set(response) == {"result"} and isinstance(response["result"], str):
        return str(response["result"])
    return dumps_str(response if response is not None else {})
