"""OpenAI Responses API (``POST /responses``) wire format <-> canonical types.

Pure functions; the stream decoder is in :mod:`.stream`, the errors of failed
responses in :mod:`.errors`, and the provider in :mod:`.provider` runs them.
Differences from Chat Completions that shape this module:

- system messages become the top-level ``instructions`` string; every other
  turn is an item in ``input`` (messages, ``function_call`` and
  ``function_call_output`` items);
- the answer is a list of output items (``message``, ``function_call``,
  ``reasoning``), and ``status`` (``completed``/``incomplete``/``failed``)
  replaces ``finish_reason``;
- the stream is typed events (``event:`` lines; ``data`` carries ``type``) and
  ends with ``response.completed``/``response.incomplete`` (or
  ``response.failed``/``error``), never ``[DONE]``.

Requests go out with ``store: false`` (the library keeps the conversation
itself, so nothing needs to be kept at OpenAI); ``extra={"store": True}``
turns storing back on. Other ``extra`` fields are added to the body, never
replacing one built here nor any of :data:`OWNED_FIELDS` (see :mod:`..extra`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ... import errors
from ..._json import dumps_str, parse_arguments
from ...types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
    Message,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolSpec,
    Usage,
)
from ..extra import merge_extra
from .errors import failure_error

INCOMPLETE_REASONS: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "max_tokens": "length",  # the spec's own example event says this
    "content_filter": "content_filter",
}
REASONING_SEPARATOR = "\n\n"
"""Put between reasoning summary parts (streamed and not, so both read the same)."""

# ---------------------------------------------------------------- canonical -> wire


def check_request(req: ChatRequest, provider: str) -> None:
    """What the Responses API cannot express, refused before anything is sent."""
    if req.stop:
        raise errors.InvalidRequest(
            "the OpenAI Responses API has no stop sequences; use kind 'openai' (chat completions) for 'stop'",
            provider=provider,
        )


def part_to_wire(part: ContentPart, role: str) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "output_text" if role == "assistant" else "input_text", "text": part.text}
    if role == "assistant":
        raise errors.InvalidRequest("the Responses API takes no images in assistant messages")
    return {"type": "input_image", "image_url": part.data_url, "detail": part.detail or "auto"}


def function_call_item(call: ToolCall) -> dict[str, Any]:
    """A call the model made, sent back. The item id (``extra["item_id"]``) is left
    out: with ``store: false`` OpenAI would look it up (and its reasoning item)."""
    arguments = call.raw_arguments or dumps_str(call.arguments)
    return {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": arguments}


def tool_result_item(msg: Message) -> dict[str, Any]:
    if not msg.tool_call_id:
        raise errors.InvalidRequest("a tool message needs tool_call_id (the call it answers)")
    parts = msg.parts
    output: str | list[dict[str, Any]] = msg.text
    if any(not isinstance(p, TextPart) for p in parts):
        output = [part_to_wire(p, "tool") for p in parts]
    return {"type": "function_call_output", "call_id": msg.tool_call_id, "output": output}


def message_items(msg: Message) -> list[dict[str, Any]]:
    """The ``input`` items of one non-system message (an assistant turn with tool
    calls becomes its text message, if any, then one item per call)."""
    if msg.role == "tool":
        return [tool_result_item(msg)]
    items: list[dict[str, Any]] = []
    parts = msg.parts
    if parts or not msg.tool_calls:
        items.append({"role": msg.role, "content": [part_to_wire(p, msg.role) for p in parts]})
    items.extend(function_call_item(call) for call in msg.tool_calls)
    return items


def tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
    }
    if tool.strict is not None:  # omitted: OpenAI goes strict when the schema allows it
        out["strict"] = tool.strict
    return out


def tool_choice_to_wire(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise errors.InvalidRequest(f"unsupported tool_choice {choice!r}")
        return choice
    name = choice.get("name") or (choice.get("function") or {}).get("name")
    if not name:
        raise errors.InvalidRequest("tool_choice must be 'auto', 'none', 'required' or {'name': TOOL}")
    return {"type": "function", "name": name}


def text_format_to_wire(fmt: ResponseFormat) -> dict[str, Any]:
    """``response_format`` as the Responses ``text.format`` object."""
    if fmt.type == "json_schema":
        return {"type": "json_schema", "name": fmt.name, "schema": fmt.schema or {}, "strict": fmt.strict}
    return {"type": fmt.type}


def _sampling(req: ChatRequest) -> dict[str, Any]:
    values = {
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_output_tokens": req.max_tokens,
        "user": req.user,
    }
    return {key: value for key, value in values.items() if value is not None}


OWNED_FIELDS = frozenset(
    {
        "model", "input", "instructions", "stream", "stream_options", "max_output_tokens", "temperature", "top_p",
        "user", "previous_response_id", "conversation", "prompt", "background",
    }
)  # fmt: skip
"""``/responses`` fields never taken from ``extra``: the typed sampling fields, the
stream flags, the output limit, and what would change the prompt behind the
caller's back (a stored response, conversation or prompt template) or answer
with no output at all (``background``)."""


def encode_chat(req: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``POST /responses`` body. ``seed`` has no Responses equivalent and is left out;
    ``store`` is ``False`` unless ``req.extra`` says otherwise."""
    system = [m.text for m in req.messages if m.role == "system"]
    items = [item for m in req.messages if m.role != "system" for item in message_items(m)]
    body: dict[str, Any] = {"model": req.model, "input": items}
    if system:
        body["instructions"] = "\n\n".join(system)
    body.update(_sampling(req))
    if req.tools:
        body["tools"] = [tool_to_wire(t) for t in req.tools]
    if req.tool_choice is not None:
        body["tool_choice"] = tool_choice_to_wire(req.tool_choice)
    if req.response_format is not None and req.response_format.type != "text":
        body["text"] = {"format": text_format_to_wire(req.response_format)}
    if stream:
        body["stream"] = True
    merge_extra(body, req.extra, OWNED_FIELDS, wire="openai-responses")
    body.setdefault("store", False)
    return body


# ---------------------------------------------------------------- wire -> canonical


def usage_from_wire(u: Any) -> Usage:
    if not isinstance(u, dict):
        return Usage()
    inputs = u.get("input_tokens_details") or {}
    outputs = u.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=u.get("input_tokens") or 0,
        completion_tokens=u.get("output_tokens") or 0,
        cached_tokens=inputs.get("cached_tokens") or 0,
        cache_write_tokens=inputs.get("cache_write_tokens") or 0,
        reasoning_tokens=outputs.get("reasoning_tokens") or 0,
    )


def tool_call_from_item(item: dict[str, Any], ordinal: int) -> ToolCall:
    text = item.get("arguments") or ""
    if isinstance(text, dict):  # tolerate servers that send an object
        text = dumps_str(text)
    parsed = parse_arguments(text)
    extra = {"item_id": item["id"]} if item.get("id") else {}
    return ToolCall(
        id=item.get("call_id") or item.get("id") or f"call_{ordinal}",
        name=item.get("name") or "",
        arguments=parsed if parsed is not None else {},
        raw_arguments=text,
        extra=extra,
    )


def message_texts(item: dict[str, Any]) -> tuple[str, str]:
    """(text, refusal) of an output ``message`` item."""
    text: list[str] = []
    refusal: list[str] = []
    for part in item.get("content") or ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "output_text":
            text.append(part.get("text") or "")
        elif part.get("type") == "refusal":
            refusal.append(part.get("refusal") or "")
    return "".join(text), "".join(refusal)


def reasoning_texts(item: dict[str, Any]) -> list[str]:
    """The summary texts of a ``reasoning`` item (its full ``content`` texts when
    there is no summary, as open-weight servers send)."""
    parts = item.get("summary") or item.get("content") or ()
    return [p.get("text") or "" for p in parts if isinstance(p, dict) and p.get("text")]


@dataclass(slots=True)
class Output:
    """The canonical pieces of a response's ``output`` list."""

    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    encrypted: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)

    def add(self, item: Any) -> None:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            text, refusal = message_texts(item)
            self.text.append(text)
            if refusal:
                self.refusal.append(refusal)
        elif kind == "function_call":
            self.calls.append(tool_call_from_item(item, len(self.calls)))
        elif kind == "reasoning":
            self.reasoning.extend(reasoning_texts(item))
            if item.get("encrypted_content"):
                self.encrypted.append(item["encrypted_content"])


def finish_reason(data: dict[str, Any], *, tool_calls: bool) -> tuple[FinishReason, str | None]:
    """(canonical finish reason, native reason) of a finished response: Responses has
    no finish reason of its own, only ``status`` and ``incomplete_details``."""
    status = data.get("status")
    if status == "incomplete":
        reason = (data.get("incomplete_details") or {}).get("reason")
        return INCOMPLETE_REASONS.get(reason or "", "length"), reason or status
    return ("tool_calls" if tool_calls else "stop"), status


def raise_unfinished(data: dict[str, Any], provider: str) -> None:
    """Raise for a response that failed or is not finished (background mode)."""
    status = data.get("status")
    if status == "failed" or (status is None and data.get("error")):
        raise failure_error(data.get("error"), provider)
    if status not in (None, "completed", "incomplete"):
        raise errors.ProviderError(
            f"response status is {status!r}, not finished (background responses are not supported)",
            provider=provider,
            body=data,
            retryable=False,
        )


def decode_chat(data: Any, *, provider: str, model: str) -> ChatResponse:
    if not isinstance(data, dict):
        raise errors.ProviderError("response is not a JSON object", provider=provider, body=data)
    raise_unfinished(data, provider)
    out = Output()
    output = data.get("output") or []
    if not isinstance(output, list) or not all(isinstance(item, dict) for item in output):
        raise errors.ProviderError("response output is not a list of items", provider=provider, body=data)
    for item in output:
        out.add(item)
    finish, native = finish_reason(data, tool_calls=bool(out.calls))
    extra = {"reasoning_encrypted_content": out.encrypted} if out.encrypted else {}
    return ChatResponse(
        content="".join(out.text),
        finish_reason=finish,
        usage=usage_from_wire(data.get("usage")),
        model=data.get("model") or model,
        provider=provider,
        tool_calls=out.calls,
        id=data.get("id") or "",
        refusal="".join(out.refusal) or None,
        reasoning=REASONING_SEPARATOR.join(out.reasoning) or None,
        native_finish_reason=native,
        raw=data,
        extra=extra,
    )
