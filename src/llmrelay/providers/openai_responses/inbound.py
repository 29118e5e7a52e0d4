"""The inverse of the Responses codec: ``POST /v1/responses`` bodies -> canonical
requests; canonical answers -> the ``response`` object and its stream's events are
in :mod:`.inbound_answer` (re-exported here). The gateway serves the Responses API
through them, whatever provider answers.

- What the gateway cannot do is refused with ``InvalidRequest`` naming the field:
  built-in tools (web search, file search, code interpreter... run only at
  OpenAI), ``input_file`` parts and file ids, item types other than messages,
  function calls, their outputs and reasoning, background responses, stored
  prompts and OpenAI conversations.
- Fields the gateway acts on itself (``store``, ``previous_response_id``,
  ``metadata``, ``include``, ``truncation``, ``stream``) are checked here and never
  sent upstream; ``response_to_wire`` echoes them, as OpenAI does.
- ``reasoning`` and ``parallel_tool_calls: false`` have no canonical home: they go
  upstream in ``extra``, as unknown fields do (see :mod:`..extra` for what a codec
  then drops), for the providers that understand them.
- ``reasoning`` input items are skipped: their summary is not the reasoning itself,
  and their encrypted content belongs to OpenAI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from ... import errors
from ..._ids import new_id
from ..._json import parse_arguments
from ..._messages import image_from_url
from ...structured import to_response_format
from ...types import (
    ChatRequest,
    ContentPart,
    Message,
    ResponseFormat,
    Role,
    TextPart,
    ToolCall,
    ToolSpec,
)
from ..openai.inbound import error_body
from .inbound_answer import StreamEncoder, response_to_wire, usage_to_wire

ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
"""Message roles the Responses API takes -> canonical roles."""
ITEM_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
GATEWAY_FIELDS = frozenset(
    {"store", "previous_response_id", "metadata", "include", "truncation", "stream", "stream_options", "background"}
)
"""Fields the gateway acts on itself: checked, never sent upstream."""
REFUSED_FIELDS = {
    "conversation": "OpenAI conversations are not kept by the gateway: continue with previous_response_id",
    "prompt": "stored prompt templates live at OpenAI: send instructions and input instead",
}
_KNOWN = GATEWAY_FIELDS | REFUSED_FIELDS.keys() | {
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning",
    "max_output_tokens", "temperature", "top_p", "user",
}  # fmt: skip
_KINDS = {str: "a string", bool: "true or false", int: "an integer", dict: "an object", list: "a list"}
_MAX_METADATA = (16, 64, 512)  # pairs, key length, value length (the spec's limits)


def _fail(where: str, problem: str) -> NoReturn:
    raise errors.InvalidRequest(f"{where}: {problem}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", int: "a number", float: "a number", dict: "an object", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _get(obj: dict[str, Any], key: str, kind: type, where: str = "", *, required: bool = False) -> Any:
    """``obj[key]`` if it is a ``kind`` (``None`` when absent or null), else ``InvalidRequest`` naming ``where.key``."""
    value = obj.get(key)
    path = f"{where}.{key}" if where else key
    if value is None:
        if required:
            _fail(path, "Field required")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        _fail(path, f"must be {_KINDS[kind]}, not {_json_type(value)}")
    return value


def _name(obj: dict[str, Any], key: str, where: str) -> str:
    value: str = _get(obj, key, str, where, required=True)
    if not value:
        _fail(f"{where}.{key}" if where else key, "must not be empty")
    return value


def _number(body: dict[str, Any], key: str, high: float) -> float | None:
    value = body.get(key)
    if value is not None and (type(value) not in (int, float) or not 0 <= value <= high):
        _fail(key, f"must be a number from 0 to {high:g}, not {value!r}")
    return value


# ---------------------------------------------------------------- wire -> canonical


def request_from_wire(body: Any, history: Sequence[dict[str, Any]] = ()) -> ChatRequest:
    """A canonical request from a Responses body. ``history`` holds the stored items
    (input, then output, of each response) of the ``previous_response_id`` chain,
    oldest first: they go before the new input, after ``instructions``."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    model = _name(body, "model", "")
    check_gateway_fields(body)
    turns = _Turns()
    instructions = _get(body, "instructions", str)
    if instructions:
        turns.messages.append(Message("system", instructions))
    for i, item in enumerate(history):
        turns.add(item, f"history[{i}]")
    raw = body.get("input")
    if isinstance(raw, str):
        if not raw:
            _fail("input", "must not be empty")
        turns.messages.append(Message("user", raw))
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            turns.add(item, f"input[{i}]")
    elif raw is not None:
        _fail("input", f"must be a string or a list of input items, not {_json_type(raw)}")
    if all(m.role == "system" for m in turns.messages):
        _fail("input", "Field required: give at least one message to answer")
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        _fail("max_output_tokens", f"must be a positive integer, not {max_tokens!r}")
    extra = {k: v for k, v in body.items() if k not in _KNOWN}
    reasoning = _reasoning(body.get("reasoning"))
    if reasoning:
        extra["reasoning"] = reasoning
    if _get(body, "parallel_tool_calls", bool) is False:  # true is every provider's default: nothing to send
        extra["parallel_tool_calls"] = False
    return ChatRequest(
        model=model,
        messages=turns.messages,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        response_format=_text_format(body.get("text")),
        temperature=_number(body, "temperature", 2),
        top_p=_number(body, "top_p", 1),
        max_tokens=max_tokens,
        user=_get(body, "user", str),
        extra=extra,
    )


def check_gateway_fields(body: dict[str, Any]) -> None:
    """The fields the gateway acts on have their types; refused fields are absent."""
    for name, why in REFUSED_FIELDS.items():
        if body.get(name) is not None:
            _fail(name, why)
    if _get(body, "background", bool):
        _fail("background", "background responses are not supported by the gateway: leave it out and stream instead")
    for key in ("store", "stream"):
        _get(body, key, bool)
    _get(body, "stream_options", dict)
    if _get(body, "previous_response_id", str) == "":
        _fail("previous_response_id", "must not be empty")
    truncation = body.get("truncation")
    if truncation is not None and truncation not in ("auto", "disabled"):
        _fail("truncation", f"must be 'auto' or 'disabled', not {truncation!r}")
    for i, value in enumerate(_get(body, "include", list) or ()):
        if not isinstance(value, str):
            _fail(f"include[{i}]", f"must be a string, not {_json_type(value)}")
    metadata: dict[str, Any] = _get(body, "metadata", dict) or {}
    pairs, key_max, value_max = _MAX_METADATA
    if len(metadata) > pairs:
        _fail("metadata", f"must hold at most {pairs} pairs, not {len(metadata)}")
    for key, value in metadata.items():
        if len(key) > key_max:
            _fail("metadata", f"keys must be at most {key_max} characters, not {len(key)}")
        if not isinstance(value, str) or len(value) > value_max:
            _fail(f"metadata.{key}", f"must be a string of at most {value_max} characters")


class _Turns:
    """Input items -> canonical messages: an assistant message and the function calls
    right after it are one assistant turn, and an output must answer a call made before it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.calls: set[str] = set()
        self._assistant: Message | None = None  # the turn the next function call joins

    def add(self, item: Any, where: str) -> None:
        if not isinstance(item, dict):
            _fail(where, f"must be an input item (an object), not {_json_type(item)}")
        kind = item.get("type", "message" if "role" in item else None)  # a message may leave out its type
        if kind == "message":
            self._message(item, where)
        elif kind == "function_call":
            self._call(item, where)
        elif kind == "function_call_output":
            self._output(item, where)
        elif kind != "reasoning":
            if kind is None:
                _fail(f"{where}.type", "Field required")
            _fail(
                f"{where}.type",
                f"item type {kind!r} is not supported: the gateway takes 'message', 'function_call', "
                "'function_call_output' and 'reasoning' items",
            )

    def _message(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role")
        canonical = ROLES.get(role) if isinstance(role, str) else None
        if canonical is None:
            _fail(f"{where}.role", f"must be 'user', 'assistant', 'system' or 'developer', not {role!r}")
        content = item.get("content")
        parts: str | list[ContentPart] | None
        if isinstance(content, str):
            parts = content
        elif isinstance(content, list):
            parts = [_part(p, canonical, f"{where}.content[{j}]") for j, p in enumerate(content)] or None
        else:
            _fail(f"{where}.content", "Field required" if content is None else "must be a string or a list of parts")
        message = Message(canonical, parts)
        self.messages.append(message)
        self._assistant = message if canonical == "assistant" else None

    def _call(self, item: dict[str, Any], where: str) -> None:
        call_id = _name(item, "call_id", where)
        name = _name(item, "name", where)
        arguments: str = _get(item, "arguments", str, where, required=True)
        parsed = parse_arguments(arguments)  # text that is not an object (a cut answer) is kept as sent
        if self._assistant is None:
            self._assistant = Message("assistant")
            self.messages.append(self._assistant)
        self._assistant.tool_calls.append(ToolCall(call_id, name, parsed if parsed is not None else {}, arguments))
        self.calls.add(call_id)

    def _output(self, item: dict[str, Any], where: str) -> None:
        call_id = _name(item, "call_id", where)
        if call_id not in self.calls:
            _fail(f"{where}.call_id", f"no function_call before this item has call_id {call_id!r}")
        output = item.get("output")
        content: str | list[ContentPart]
        if isinstance(output, str):
            content = output
        elif isinstance(output, list):
            content = [_part(p, "tool", f"{where}.output[{j}]") for j, p in enumerate(output)]
        else:
            _fail(f"{where}.output", "Field required" if output is None else "must be a string or a list of parts")
        self.messages.append(Message("tool", content, tool_call_id=call_id))
        self._assistant = None


def _part(raw: Any, role: str, where: str) -> ContentPart:
    if not isinstance(raw, dict):
        _fail(where, f"must be a content part (an object), not {_json_type(raw)}")
    kind = raw.get("type")
    if kind in ("input_text", "output_text"):
        return TextPart(_get(raw, "text", str, where, required=True))
    if kind == "refusal":  # an earlier answer's refusal: what the model said
        return TextPart(_get(raw, "refusal", str, where, required=True))
    if kind == "input_image":
        if role in ("assistant", "system"):
            _fail(where, f"{role} messages take text parts only")
        detail = raw.get("detail")
        if detail is not None and detail not in ("auto", "low", "high", "original"):
            _fail(f"{where}.detail", f"must be 'auto', 'low', 'high' or 'original', not {detail!r}")
        if raw.get("file_id") is not None:
            _fail(f"{where}.file_id", "file ids are not supported: give image_url (a URL or a base64 data: URL)")
        return image_from_url(_get(raw, "image_url", str, where, required=True), f"{where}.image_url", detail)
    if kind == "input_file":
        _fail(where, "'input_file' parts are not supported by the gateway: send the file's text as 'input_text'")
    if kind is None:
        _fail(f"{where}.type", "Field required")
    _fail(f"{where}.type", f"content part type {kind!r} is not supported (use 'input_text' or 'input_image')")


def _tools(value: Any) -> list[ToolSpec]:
    if value is None:
        return []
    if not isinstance(value, list):
        _fail("tools", f"must be a list of tools, not {_json_type(value)}")
    return [_tool(tool, f"tools[{i}]") for i, tool in enumerate(value)]


def _tool(raw: Any, where: str) -> ToolSpec:
    if not isinstance(raw, dict):
        _fail(where, f"must be a tool (an object), not {_json_type(raw)}")
    kind = raw.get("type")
    if kind != "function":
        if kind is None:
            _fail(f"{where}.type", "Field required")
        _fail(
            f"{where}.type",
            f"{kind!r} tools are not supported: the gateway can only run function tools (type 'function'); "
            "OpenAI's built-in tools run only at OpenAI",
        )
    name = _name(raw, "name", where)
    description = _get(raw, "description", str, where) or ""
    parameters = _get(raw, "parameters", dict, where)
    strict = _get(raw, "strict", bool, where)
    return ToolSpec(
        name, description, parameters if parameters is not None else {"type": "object", "properties": {}}, strict
    )


def _tool_choice(choice: Any) -> str | dict[str, Any] | None:
    if choice is None or (isinstance(choice, str) and choice in ("auto", "none", "required")):
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("type"), str):
        if choice["type"] == "function":
            return {"name": _name(choice, "name", "tool_choice")}
        _fail("tool_choice.type", f"{choice['type']!r} is not supported: the gateway can only run function tools")
    _fail("tool_choice", f"must be 'auto', 'none', 'required' or {{'type': 'function', 'name': ...}}, not {choice!r}")


def _text_format(text: Any) -> ResponseFormat | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        _fail("text", f"must be an object, not {_json_type(text)}")
    verbosity = text.get("verbosity")  # accepted, not sent: no canonical home, and only OpenAI has it
    if verbosity is not None and verbosity not in ("low", "medium", "high"):
        _fail("text.verbosity", f"must be 'low', 'medium' or 'high', not {verbosity!r}")
    fmt = _get(text, "format", dict, "text")
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind == "json_schema":
        where = "text.format"
        spec = {
            "name": _name(fmt, "name", where),
            "schema": _get(fmt, "schema", dict, where, required=True),
            "strict": bool(_get(fmt, "strict", bool, where)),
        }
        _get(fmt, "description", str, where)
        return to_response_format({"type": "json_schema", "json_schema": spec})
    _fail("text.format.type", f"must be 'text', 'json_object' or 'json_schema', not {kind!r}")


def _reasoning(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail("reasoning", f"must be an object, not {_json_type(value)}")
    for key in ("effort", "summary", "generate_summary"):
        _get(value, key, str, "reasoning")
    return {k: v for k, v in value.items() if v is not None} or None


def items_from_input(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The new input of a body ``request_from_wire`` accepted, as stored items (what
    ``GET /v1/responses/{id}/input_items`` lists and a continued response's history
    starts with): a string is one user message, message content is a list of parts,
    and every item has its ``type``, an ``id`` and a ``status``."""
    raw = body.get("input")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
    return [_stored(item) for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _stored(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    kind = out.setdefault("type", "message")
    if kind == "message":
        content = out.get("content")
        if isinstance(content, str):
            content = [{"type": "output_text" if out.get("role") == "assistant" else "input_text", "text": content}]
        out["content"] = [_stored_part(p) for p in content or ()]
    elif kind == "function_call_output" and isinstance(out.get("output"), list):
        out["output"] = [_stored_part(p) for p in out["output"]]
    if not out.get("id"):
        out["id"] = f"{ITEM_PREFIXES.get(str(kind), 'item')}_{new_id()}"
    if kind != "reasoning":
        out.setdefault("status", "completed")
    return out


def _stored_part(part: Any) -> Any:
    """A part with the fields the API gives it when it lists it (and the SDK requires)."""
    if isinstance(part, dict) and part.get("type") == "output_text":
        return {"annotations": [], **part}
    if isinstance(part, dict) and part.get("type") == "input_image":
        return {**part, "detail": part.get("detail") or "auto"}
    return part


__all__ = [
    "GATEWAY_FIELDS", "REFUSED_FIELDS", "StreamEncoder", "check_gateway_fields", "error_body", "items_from_input",
    "request_from_wire", "response_to_wire", "usage_to_wire",
]  # fmt: skip
