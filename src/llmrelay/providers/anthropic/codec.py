"""Anthropic Messages API <-> canonical types: pure functions, no I/O.

Outbound (``encode_chat``): system messages become the top-level ``system``
string; canonical ``tool`` messages become ``tool_result`` blocks of a user
turn; consecutive turns of one role are merged (Anthropic wants them
alternating, and every ``tool_use`` answered in the very next user turn).

Structured output has no native field here, so a JSON schema is asked for with
a forced call of one extra tool named after the format; its input is the
answer. ``json_object`` (no schema) only adds :data:`JSON_OBJECT_INSTRUCTION`
to the system prompt.

Inbound: ``decode_chat`` reads a non-stream answer and ``messages_from_wire``
reads the messages of an Anthropic request (the gateway's ``/v1/messages``).
The stream decoder is in :mod:`.stream`, the error mapping in :mod:`.errors`.
"""

from __future__ import annotations

import re
from typing import Any

from ... import errors
from ..._json import dumps_str
from ..._messages import image_from_url, sniff_image_type
from ...structured import JSON_OBJECT_INSTRUCTION, structured_tool_name
from ...types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
    ImagePart,
    Message,
    ModelInfo,
    TextPart,
    ToolCall,
    Usage,
)
from ..extra import merge_extra

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"

# max_tokens is required by Anthropic. When the caller gives none we send the
# output limit every model of the family accepts: Claude 3 (Haiku, Sonnet, Opus)
# allows 4096, Claude 3.5 and later at least 8192. Unknown names get 4096.
DEFAULT_MAX_TOKENS = 4096
MODERN_MAX_TOKENS = 8192

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# "claude-3-5-sonnet-...", "claude-3-haiku-...", "claude-sonnet-4-5", "claude-opus-4-20250514":
# the major version, then an optional one-digit minor (a date is not a minor).
_VERSION = re.compile(r"claude-(?:(\d+)(?:-(\d)(?!\d))?-[a-z]|[a-z]+-(\d+)(?:[-.](\d)(?!\d))?)")

Block = dict[str, Any]


# --------------------------------------------------------------------------- request


def default_max_tokens(model: str) -> int:
    match = _VERSION.search(model)
    if match is None:
        return DEFAULT_MAX_TOKENS
    major = int(match.group(1) or match.group(3))
    minor = int(match.group(2) or match.group(4) or 0)
    return MODERN_MAX_TOKENS if (major, minor) >= (3, 5) else DEFAULT_MAX_TOKENS


OWNED_FIELDS = frozenset(("model", "messages", "system", "max_tokens", "stream"))
"""Messages body fields never taken from ``extra`` (see :mod:`..extra`): the model,
the prompt, the output limit and the stream flag. ``thinking`` is not one: it
passes through, and the default ``max_tokens`` leaves room above its budget."""


def encode_chat(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages`` for a canonical request. ``request.extra``
    adds fields, never replacing one set here nor any of :data:`OWNED_FIELDS`."""
    system = [m.text for m in request.messages if m.role == "system" and m.text]
    fmt = request.response_format
    if fmt is not None and fmt.type != "text" and structured_tool_name(request) is None:
        system.append(JSON_OBJECT_INSTRUCTION)
    turns = wire_messages(request.messages)
    if not turns:
        raise errors.InvalidRequest("anthropic needs at least one user or assistant message; none was given")
    if turns[0]["role"] != "user":
        raise errors.InvalidRequest("anthropic: the conversation must start with a user message, not an assistant one")
    body: dict[str, Any] = {
        "model": request.model,
        "messages": turns,
        "max_tokens": request.max_tokens or _max_tokens_for(request),
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    _add_tools(body, request)
    if stream:
        body["stream"] = True
    merge_extra(body, request.extra, OWNED_FIELDS, wire="anthropic")  # seed has no Anthropic equivalent and is left out
    return body


def _max_tokens_for(request: ChatRequest) -> int:
    default = default_max_tokens(request.model)
    thinking = request.extra.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    # max_tokens must exceed the thinking budget, or Anthropic rejects the call.
    if isinstance(budget, int) and budget >= default:
        return budget + default
    return default


def _add_tools(body: dict[str, Any], request: ChatRequest) -> None:
    tools: list[Block] = []
    for spec in request.tools:
        tool: Block = {"name": spec.name, "input_schema": spec.parameters}
        if spec.description:
            tool["description"] = spec.description
        tools.append(tool)
    choice = wire_tool_choice(request.tool_choice)
    forced = structured_tool_name(request)
    if forced is not None:
        assert request.response_format is not None and request.response_format.schema is not None
        if any(t["name"] == forced for t in tools):
            raise errors.InvalidRequest(f"response_format name {forced!r} is also the name of a tool; rename one")
        description = f"Give the answer as the input of this tool ({forced})."
        tools.append({"name": forced, "description": description, "input_schema": request.response_format.schema})
        choice = {"type": "tool", "name": forced}
    if tools:
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice


def wire_tool_choice(choice: str | dict[str, Any] | None) -> Block | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        named = {"auto": "auto", "required": "any", "any": "any", "none": "none"}.get(choice)
        if named is None:
            raise errors.InvalidRequest(f"unknown tool_choice {choice!r}; use auto, required, none or a tool name")
        return {"type": named}
    function = choice.get("function")
    if isinstance(function, dict) and function.get("name"):
        return {"type": "tool", "name": function["name"]}
    if choice.get("name"):
        return {"type": "tool", "name": choice["name"]}
    if choice.get("type") in ("auto", "any", "none"):
        return dict(choice)  # already in Anthropic's form
    raise errors.InvalidRequest(f"unsupported tool_choice {choice!r}")


def wire_messages(messages: list[Message]) -> list[Block]:
    """Canonical non-system messages as alternating Anthropic turns."""
    turns: list[Block] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # tool_result blocks must open the user turn that answers the tool calls.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return turns


def _blocks(message: Message) -> list[Block]:
    if message.role == "tool":
        return [_tool_result(message)]
    blocks: list[Block] = []
    if message.role == "assistant":
        if message.reasoning_signature:
            blocks.append(
                {"type": "thinking", "thinking": message.reasoning or "", "signature": message.reasoning_signature}
            )
        for data in message.extra.get("redacted_thinking", ()):
            blocks.append({"type": "redacted_thinking", "data": data})
    blocks.extend(_part_block(part) for part in message.parts if not (isinstance(part, TextPart) and not part.text))
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
    return blocks


def _tool_result(message: Message) -> Block:
    if message.tool_call_id is None:
        raise errors.InvalidRequest("a tool message needs tool_call_id (the id of the tool call it answers)")
    parts = message.parts
    content: str | list[Block] = message.text
    if any(isinstance(part, ImagePart) for part in parts):
        content = [_part_block(part) for part in parts]
    block: Block = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": content}
    if message.extra.get("is_error"):
        block["is_error"] = True
    return block


def _part_block(part: ContentPart) -> Block:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    return {"type": "image", "source": image_source(part)}


def image_source(image: ImagePart) -> Block:
    if image.data is not None:
        media_type = image.media_type or _sniff_media_type(image.data)
        return {"type": "base64", "media_type": media_type, "data": image.data}
    url = image.url or ""
    if url.startswith("data:"):  # Anthropic takes no data: URLs, only base64 sources
        decoded = image_from_url(url, "image")
        return {"type": "base64", "media_type": decoded.media_type, "data": decoded.data}
    if not url:
        raise errors.InvalidRequest("an image needs a url or base64 data")
    return {"type": "url", "url": url}


def _sniff_media_type(data: str) -> str:
    found = sniff_image_type(data)
    if found is not None:
        return found
    raise errors.InvalidRequest("base64 image data needs media_type (image/png, image/jpeg, image/gif or image/webp)")


# --------------------------------------------------------------------------- response


def usage_from_wire(usage: dict[str, Any]) -> Usage:
    """Anthropic's ``input_tokens`` leaves out cache reads and writes; ours includes them."""
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    return Usage(
        prompt_tokens=(usage.get("input_tokens") or 0) + cache_read + cache_write,
        completion_tokens=usage.get("output_tokens") or 0,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def finish_reason(stop_reason: str | None, *, tool_calls: bool) -> FinishReason:
    """The canonical reason; ``tool_use`` that only carried a structured answer is ``stop``."""
    reason = STOP_REASONS.get(stop_reason or "", "stop")
    if reason == "tool_calls" and not tool_calls:
        return "stop"
    return reason


def decode_chat(data: Any, *, provider: str, structured_tool: str | None = None) -> ChatResponse:
    """A non-stream Message body as a ``ChatResponse``."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise errors.ProviderError("anthropic answer has no content list", provider=provider, body=data)
    texts: list[str] = []
    reasoning: list[str] = []
    signature: str | None = None
    calls: list[ToolCall] = []
    extra: dict[str, Any] = {}
    for block in data["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use" and block.get("name") == structured_tool:
            texts.append(dumps_str(block.get("input") or {}))
        elif kind == "tool_use":
            calls.append(tool_call_from_block(block))
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            signature = block.get("signature") or signature
        elif kind == "redacted_thinking":
            extra.setdefault("redacted_thinking", []).append(block.get("data"))
    stop_reason = data.get("stop_reason")
    content = "".join(texts)
    return ChatResponse(
        content=content,
        finish_reason=finish_reason(stop_reason, tool_calls=bool(calls)),
        usage=usage_from_wire(data.get("usage") or {}),
        model=data.get("model") or "",
        provider=provider,
        tool_calls=calls,
        id=data.get("id") or "",
        refusal=refusal_text(content) if stop_reason == "refusal" else None,
        reasoning="".join(reasoning) or None,
        reasoning_signature=signature,
        native_finish_reason=stop_reason,
        raw=data,
        extra=extra,
    )


def refusal_text(content: str) -> str:
    """``stop_reason: refusal`` has no message of its own: what was said, or a stand-in."""
    return content or "the model declined to answer (stop_reason: refusal)"


def tool_call_from_block(block: Block) -> ToolCall:
    arguments = block.get("input")
    if not isinstance(arguments, dict):
        arguments = {}
    return ToolCall(
        id=block.get("id") or "", name=block.get("name") or "", arguments=arguments, raw_arguments=dumps_str(arguments)
    )


def decode_models(data: Any, *, provider: str) -> list[ModelInfo]:
    """``GET /v1/models`` as ``ModelInfo`` (the display name stays in ``raw``)."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise errors.ProviderError("anthropic model list has no data list", provider=provider, body=data)
    models = []
    for item in items:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        image = ((item.get("capabilities") or {}).get("image_input") or {}).get("supported")
        models.append(
            ModelInfo(
                id=item["id"],
                provider=provider,
                context_window=item.get("max_input_tokens"),
                max_output_tokens=item.get("max_tokens"),
                input_modalities=("text", "image") if image else ("text",),
                raw=item,
            )
        )
    return models


# --------------------------------------------------------------------------- inbound requests


def messages_from_wire(messages: list[Block], system: str | list[Block] | None = None) -> list[Message]:
    """The messages of an Anthropic request as canonical messages (the inverse of
    ``encode_chat``): each ``tool_result`` block becomes its own ``tool`` message."""
    out: list[Message] = []
    system_text = system if isinstance(system, str) else "\n\n".join(b.get("text", "") for b in system or ())
    if system_text:
        out.append(Message(role="system", content=system_text))
    for turn in messages:
        content = turn.get("content")
        blocks: list[Block] = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        if turn.get("role") == "assistant":
            out.append(_assistant_from_wire(blocks))
        else:
            out.extend(_user_from_wire(blocks))
    return out


def _assistant_from_wire(blocks: list[Block]) -> Message:
    message = Message(role="assistant")
    parts: list[ContentPart] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "thinking":
            message.reasoning = block.get("thinking") or None
            message.reasoning_signature = block.get("signature")
        elif kind == "redacted_thinking":
            message.extra.setdefault("redacted_thinking", []).append(block.get("data"))
        elif kind == "tool_use":
            message.tool_calls.append(tool_call_from_block(block))
        else:
            parts.extend(_parts_from_wire([block]))
    message.content = _content(parts)
    return message


def _user_from_wire(blocks: list[Block]) -> list[Message]:
    out: list[Message] = []
    parts: list[ContentPart] = []
    for block in blocks:
        if block.get("type") != "tool_result":
            parts.extend(_parts_from_wire([block]))
            continue
        tool = Message(role="tool", content=_tool_content(block.get("content")), tool_call_id=block.get("tool_use_id"))
        if block.get("is_error"):
            tool.extra["is_error"] = True
        out.append(tool)
    if parts:
        out.append(Message(role="user", content=_content(parts)))
    return out


def _tool_content(result: Any) -> str | list[ContentPart] | None:
    """A tool result's content: text when it has no image, else the parts."""
    if not isinstance(result, list):
        return result if isinstance(result, str) else None
    parts = _parts_from_wire(result)
    if any(isinstance(part, ImagePart) for part in parts):
        return parts
    return "".join(part.text for part in parts if isinstance(part, TextPart))


def _parts_from_wire(blocks: list[Block]) -> list[ContentPart]:
    parts: list[ContentPart] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(block.get("text") or ""))
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "url":
                parts.append(ImagePart(url=source.get("url")))
            else:
                parts.append(ImagePart(data=source.get("data"), media_type=source.get("media_type")))
        else:
            raise errors.InvalidRequest(f"unsupported anthropic content block type {kind!r}")
    return parts


def _content(parts: list[ContentPart]) -> str | list[ContentPart] | None:
    """One text part is plain text; anything else stays a list of parts."""
    if not parts:
        return None
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    return parts
