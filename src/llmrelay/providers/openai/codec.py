"""OpenAI chat completions wire format <-> canonical types (pure functions).

The client side: canonical request -> wire (``encode_chat``, ``encode_embed``),
wire answer -> canonical (``decode_chat``, ``decode_embed``, ``decode_models``).
The stream decoder is in :mod:`.stream`, the error mapping in :mod:`.errors`,
and the inverse direction (the gateway accepting OpenAI requests and answering
in OpenAI's format) in :mod:`.inbound`.
"""

from __future__ import annotations

import array
import base64
import time
from typing import Any

from ... import errors
from ..._json import dumps_str, parse_arguments
from ...types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    Message,
    ModelInfo,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolSpec,
    Usage,
)
from ..extra import merge_extra
from .compat import Quirks
from .errors import error_message

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
    "model_length": "length",  # Mistral
    "eos": "stop",
}

# ---------------------------------------------------------------- canonical -> wire


def part_to_wire(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, Any] = {"url": part.data_url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def tool_call_to_wire(call: ToolCall) -> dict[str, Any]:
    arguments = call.raw_arguments or dumps_str(call.arguments)
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}


def message_to_wire(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": msg.role}
    content = msg.content
    if isinstance(content, list):
        out["content"] = [part_to_wire(p) for p in content]
    else:
        out["content"] = content
    if msg.name:
        out["name"] = msg.name
    if msg.tool_calls:
        out["tool_calls"] = [tool_call_to_wire(c) for c in msg.tool_calls]
    if msg.tool_call_id is not None:
        out["tool_call_id"] = msg.tool_call_id
    return out


def tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    if tool.strict is not None:
        fn["strict"] = tool.strict
    return {"type": "function", "function": fn}


def tool_choice_to_wire(choice: str | dict[str, Any], quirks: Quirks) -> Any:
    if isinstance(choice, str):
        return quirks.required_tool_choice if choice == "required" else choice
    name = choice.get("name") or (choice.get("function") or {}).get("name")
    if not name:
        raise errors.InvalidRequest("tool_choice must be 'auto', 'none', 'required' or {'name': TOOL}")
    return {"type": "function", "function": {"name": name}}


def response_format_to_wire(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": fmt.name, "schema": fmt.schema or {}, "strict": fmt.strict},
        }
    return {"type": fmt.type}


OWNED_FIELDS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "n", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "stop", "seed", "random_seed", "user", "tools", "tool_choice", "response_format",
    }
)  # fmt: skip
"""Chat body fields never taken from ``extra`` (see :mod:`..extra`): what the typed
fields say, the stream flags (``stream_options.include_usage`` is how usage is
billed), ``n`` (one choice is returned) and every name of the output limit
(whichever one a quirks row sends, ``max_tokens`` or ``max_completion_tokens``)."""


EMBED_OWNED_FIELDS = frozenset(("model", "input", "dimensions", "user"))
"""Embeddings body fields never taken from ``extra``: the model, the texts (what is
billed and how many vectors come back) and the typed fields."""


def encode_chat(req: ChatRequest, *, stream: bool, quirks: Quirks) -> dict[str, Any]:
    """The chat completions body; ``req.extra`` adds fields, never replacing one
    this sets nor any of :data:`OWNED_FIELDS`."""
    body: dict[str, Any] = {"model": req.model, "messages": [message_to_wire(m) for m in req.messages]}
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.max_tokens is not None:
        body[quirks.max_tokens_field] = req.max_tokens
    if req.stop:
        body["stop"] = req.stop
    if req.seed is not None:
        body[quirks.seed_field] = req.seed
    if req.user is not None and quirks.send_user:
        body["user"] = req.user
    if req.tools:
        body["tools"] = [tool_to_wire(t) for t in req.tools]
    if req.tool_choice is not None:
        body["tool_choice"] = tool_choice_to_wire(req.tool_choice, quirks)
    if req.response_format is not None and req.response_format.type != "text":
        body["response_format"] = response_format_to_wire(req.response_format)
    if stream:
        body["stream"] = True
        if quirks.stream_usage_option:
            body["stream_options"] = {"include_usage": True}
    merge_extra(body, req.extra, OWNED_FIELDS | {quirks.seed_field, quirks.max_tokens_field}, wire="openai")
    return body


def encode_embed(request: EmbeddingRequest, *, quirks: Quirks) -> dict[str, Any]:
    """The embeddings body; ``request.extra`` adds fields (see :mod:`..extra`)."""
    payload: dict[str, Any] = {"model": request.model, "input": request.inputs}
    if quirks.embed_base64:
        payload["encoding_format"] = "base64"
    if request.dimensions is not None:
        payload["dimensions"] = request.dimensions
    if request.user is not None and quirks.send_user:
        payload["user"] = request.user
    merge_extra(payload, request.extra, EMBED_OWNED_FIELDS)
    return payload


# ---------------------------------------------------------------- wire -> canonical


def finish_reason(native: str | None, *, tool_calls: bool) -> FinishReason:
    """The canonical reason of ``finish_reason`` (none or unknown: ``tool_calls`` when
    the answer has calls, else ``stop``)."""
    return FINISH_REASONS.get(native or "", "tool_calls" if tool_calls else "stop")


def usage_from_wire(u: dict[str, Any] | None) -> Usage:
    if not u:
        return Usage()
    prompt_details = u.get("prompt_tokens_details") or {}
    completion_details = u.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") or u.get("prompt_cache_hit_tokens") or 0
    return Usage(
        prompt_tokens=u.get("prompt_tokens") or 0,
        completion_tokens=u.get("completion_tokens") or 0,
        cached_tokens=cached,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )


def content_and_reasoning(content: Any) -> tuple[str, str]:
    """Text and reasoning from a string or a list of parts (Mistral sends parts,
    including ``thinking`` parts that hold a list of text parts)."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    text: list[str] = []
    thinking: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            text.append(part.get("text") or "")
        elif kind == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            elif isinstance(inner, list):
                thinking.extend(p.get("text") or "" for p in inner if isinstance(p, dict))
    return "".join(text), "".join(thinking)


def tool_calls_from_wire(raw_calls: list[dict[str, Any]] | None) -> list[ToolCall]:
    calls = []
    for i, raw in enumerate(raw_calls or ()):
        fn = raw.get("function") or {}
        args = fn.get("arguments")
        # some compatible servers send the arguments as an object
        text = dumps_str(args) if isinstance(args, dict) else args or ""
        if not isinstance(text, str):
            raise TypeError(f"tool call arguments are {type(text).__name__}, not JSON text")
        parsed = parse_arguments(text)
        calls.append(
            ToolCall(
                id=raw.get("id") or f"call_{i}",
                name=fn.get("name") or "",
                arguments=parsed if parsed is not None else {},
                raw_arguments=text,
            )
        )
    return calls


def decode_chat(data: Any, *, provider: str, model: str) -> ChatResponse:
    if not isinstance(data, dict):
        raise errors.ProviderError("chat completion is not a JSON object", provider=provider, body=data)
    if data.get("error"):
        raise errors.ProviderError(error_message(data["error"]), provider=provider, body=data)
    choices = data.get("choices") or []
    if not choices:
        raise errors.ProviderError("chat completion has no choices", provider=provider, body=data)
    choice = choices[0]
    msg = choice.get("message") or {}
    text, thinking = content_and_reasoning(msg.get("content"))
    reasoning = msg.get("reasoning_content") or msg.get("reasoning") or thinking or None
    native = choice.get("finish_reason")
    calls = tool_calls_from_wire(msg.get("tool_calls"))
    return ChatResponse(
        content=text,
        finish_reason=finish_reason(native, tool_calls=bool(calls)),
        usage=usage_from_wire(data.get("usage")),
        model=data.get("model") or model,
        provider=provider,
        tool_calls=calls,
        id=data.get("id") or "",
        refusal=msg.get("refusal"),
        reasoning=reasoning if isinstance(reasoning, str) else None,
        native_finish_reason=native,
        raw=data,
    )


# ---------------------------------------------------------------- embeddings and models


def decode_embed(data: Any, *, provider: str, model: str) -> EmbeddingResponse:
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise errors.ProviderError("embeddings answer has no data list", provider=provider, body=data)
    ordered = sorted(items, key=lambda d: d.get("index", 0))
    vectors = [_vector(item.get("embedding"), provider) for item in ordered]
    usage = data.get("usage") or {}
    return EmbeddingResponse(
        vectors=vectors,
        usage=Usage(prompt_tokens=usage.get("prompt_tokens") or usage.get("total_tokens") or 0),
        model=data.get("model") or model,
        provider=provider,
        raw={k: v for k, v in data.items() if k != "data"},
    )


def _vector(value: Any, provider: str) -> list[float]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):  # encoding_format=base64: little-endian float32
        floats = array.array("f")
        floats.frombytes(base64.b64decode(value))
        return floats.tolist()
    raise errors.ProviderError("embedding is neither a list nor base64", provider=provider)


def decode_models(data: Any, *, provider: str) -> list[ModelInfo]:
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise errors.ProviderError("models answer has no data list", provider=provider, body=data)
    return [ModelInfo(id=str(m.get("id")), provider=provider, raw=m) for m in items if isinstance(m, dict)]


def now() -> int:
    return int(time.time())
