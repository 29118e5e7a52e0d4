"""Cohere API v2 wire format <-> canonical types (pure functions).

Request side: ``POST /v2/chat`` bodies. Answer side: chat answers, usage,
embeddings (``POST /v2/embed``) and the model list (``GET /v1/models``).
The stream decoder is in :mod:`.stream`, the error mapping in :mod:`.errors`.

Cohere specifics worth knowing:

* ``tool_plan`` is the text a model writes before calling tools. It is not the
  answer, so it never goes into ``content``: it is kept in
  ``ChatResponse.extra["tool_plan"]`` and sent back from ``Message.extra``.
* Tool results travel as ``document`` content items whose ``data`` is JSON text.
* ``usage.tokens`` counts what the model saw; ``usage.billed_units`` (kept in
  ``raw``) is what Cohere bills, which leaves out its own prompt scaffolding.
"""

from __future__ import annotations

from typing import Any

from ... import errors
from ..._json import dumps_str, loads, parse_arguments
from ...types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    Message,
    ModelInfo,
    ResponseFormat,
    ToolCall,
    ToolSpec,
    Usage,
)
from ..extra import merge_extra
from ..openai.codec import part_to_wire, tool_call_to_wire  # Cohere v2 shares these shapes

DEFAULT_BASE_URL = "https://api.cohere.com"
DEFAULT_INPUT_TYPE = "search_document"
"""The embed ``input_type`` sent unless ``request.extra`` says otherwise: vectors
for texts to be stored and searched. Pass ``extra={"input_type": "search_query"}``
to embed search queries (or ``classification`` / ``clustering``)."""
DEFAULT_EMBEDDING_TYPES = ("float",)
"""The embed ``embedding_types`` sent unless ``request.extra`` says otherwise."""

OWNED_FIELDS = frozenset(("model", "messages", "stream", "max_tokens"))
"""``/v2/chat`` fields never taken from ``extra`` (see :mod:`..extra`): the model,
the prompt, the stream flag and the output limit."""
EMBED_OWNED_FIELDS = frozenset(("model", "texts", "inputs", "images", "output_dimension"))
"""``/v2/embed`` fields never taken from ``extra``: the model, what is embedded
(``texts``, or the ``inputs`` / ``images`` Cohere also takes: each is billed and
gives a vector) and the typed dimensions."""

FINISH_REASONS: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "error",
    "ERROR_LIMIT": "error",
    "TIMEOUT": "error",
    "CONTENT_BLOCKED": "content_filter",
}
_TOOL_CHOICES = {"required": "REQUIRED", "any": "REQUIRED", "none": "NONE"}
_TOOL_FEATURES = frozenset(("tools", "tool_use", "strict_tools"))
_JSON_FEATURES = frozenset(("json_mode", "json_schema"))

# ---------------------------------------------------------------- canonical -> wire


def encode_chat(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``/v2/chat`` body; ``request.extra`` is merged last and adds fields, never
    replacing one set here nor any of :data:`OWNED_FIELDS`."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [message_to_wire(m) for m in request.messages],
        "stream": stream,
    }
    _add_sampling(body, request)
    if request.tools:
        body["tools"] = [tool_to_wire(t) for t in request.tools]
        if any(t.strict for t in request.tools):
            body["strict_tools"] = True
    choice = tool_choice_to_wire(request.tool_choice)
    if choice is not None:
        body["tool_choice"] = choice
    if request.response_format is not None and request.response_format.type != "text":
        body["response_format"] = response_format_to_wire(request.response_format)
    merge_extra(body, request.extra, OWNED_FIELDS, wire="cohere")
    return body


def _add_sampling(body: dict[str, Any], request: ChatRequest) -> None:
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["p"] = request.top_p
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed


def message_to_wire(msg: Message) -> dict[str, Any]:
    if msg.role == "tool":
        return _tool_result(msg)
    out: dict[str, Any] = {"role": msg.role}
    if msg.content is not None:
        out["content"] = msg.content if isinstance(msg.content, str) else [part_to_wire(p) for p in msg.content]
    if msg.role == "assistant" and msg.tool_calls:
        out["tool_calls"] = [tool_call_to_wire(c) for c in msg.tool_calls]
        plan = msg.extra.get("tool_plan")
        if plan:
            out["tool_plan"] = plan
    return out


def _tool_result(msg: Message) -> dict[str, Any]:
    """A tool result: JSON (object or array) goes as a ``document`` the model can
    cite, anything else as plain text."""
    out: dict[str, Any] = {"role": "tool", "tool_call_id": msg.tool_call_id or ""}
    if isinstance(msg.content, list):
        out["content"] = [part_to_wire(p) for p in msg.content]
    elif _is_json_document(msg.content or ""):
        out["content"] = [{"type": "document", "document": {"data": msg.content}}]
    else:
        out["content"] = msg.content or ""
    return out


def _is_json_document(text: str) -> bool:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        loads(stripped)
    except ValueError:
        return False
    return True


def tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    fn = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": fn}


def tool_choice_to_wire(choice: str | dict[str, Any] | None) -> str | None:
    """``auto`` (or nothing) -> field left out; ``required`` / ``none`` -> Cohere's
    upper-case values. Cohere cannot force one named tool: that is an error."""
    if choice is None or choice == "auto":
        return None
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return _TOOL_CHOICES[choice]
    raise errors.InvalidRequest(
        f"cohere supports tool_choice 'auto', 'required' or 'none', not {choice!r} (a named tool cannot be forced)"
    )


def response_format_to_wire(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_schema" and fmt.schema is not None:
        return {"type": "json_object", "json_schema": fmt.schema}
    return {"type": "json_object"}


# ---------------------------------------------------------------- wire -> canonical


def finish_reason(native: str | None, *, tool_calls: bool) -> FinishReason:
    """Cohere's finish reason (upper case on the wire; lower case accepted)."""
    if native:
        mapped = FINISH_REASONS.get(native.upper())
        if mapped is not None:
            return mapped
    return "tool_calls" if tool_calls else "stop"


def usage_from_wire(usage: Any) -> Usage:
    """``usage.tokens`` (falling back to ``billed_units``) and ``cached_tokens``."""
    if not isinstance(usage, dict):
        return Usage()
    counts = usage.get("tokens") or usage.get("billed_units") or {}
    return Usage(
        prompt_tokens=int(counts.get("input_tokens") or 0),
        completion_tokens=int(counts.get("output_tokens") or 0),
        cached_tokens=int(usage.get("cached_tokens") or 0),
    )


def content_from_wire(content: Any) -> tuple[str, str]:
    """The text and the thinking of a message's content (string or items)."""
    if isinstance(content, str):
        return content, ""
    text: list[str] = []
    thinking: list[str] = []
    for item in content or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "thinking":
            thinking.append(str(item.get("thinking") or ""))
        elif item.get("type") == "text":
            text.append(str(item.get("text") or ""))
    return "".join(text), "".join(thinking)


def tool_calls_from_wire(raw_calls: Any) -> list[ToolCall]:
    calls = []
    for i, raw in enumerate(raw_calls or ()):
        if not isinstance(raw, dict):
            continue
        fn = raw.get("function") or {}
        text = arguments_text(fn.get("arguments"))
        parsed = parse_arguments(text)
        calls.append(
            ToolCall(
                id=str(raw.get("id") or f"call_{i}"),
                name=str(fn.get("name") or ""),
                arguments=parsed if parsed is not None else {},
                raw_arguments=text,
            )
        )
    return calls


def arguments_text(args: Any) -> str:
    """Arguments as JSON text (a few servers send an object instead of text)."""
    if isinstance(args, dict):
        return dumps_str(args)
    return args if isinstance(args, str) else ""


def decode_chat(data: Any, *, provider: str, model: str) -> ChatResponse:
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise errors.ProviderError("cohere chat answer has no message object", provider=provider, body=data)
    message = data["message"]
    text, thinking = content_from_wire(message.get("content"))
    calls = tool_calls_from_wire(message.get("tool_calls"))
    native = data.get("finish_reason")
    extra: dict[str, Any] = {}
    if message.get("tool_plan"):
        extra["tool_plan"] = message["tool_plan"]
    if message.get("citations"):
        extra["citations"] = message["citations"]
    return ChatResponse(
        content=text,
        finish_reason=finish_reason(native, tool_calls=bool(calls)),
        usage=usage_from_wire(data.get("usage")),
        model=model,
        provider=provider,
        tool_calls=calls,
        id=str(data.get("id") or ""),
        reasoning=thinking or None,
        native_finish_reason=native,
        raw=data,
        extra=extra,
    )


# ---------------------------------------------------------------- embeddings and models


def encode_embed(request: EmbeddingRequest) -> dict[str, Any]:
    """The ``/v2/embed`` body. ``request.extra`` adds fields (never one of
    :data:`EMBED_OWNED_FIELDS`) and may choose ``input_type`` and
    ``embedding_types``, which are only defaults here."""
    body: dict[str, Any] = {"model": request.model, "texts": list(request.inputs)}
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions
    merge_extra(body, request.extra, EMBED_OWNED_FIELDS)
    body.setdefault("input_type", DEFAULT_INPUT_TYPE)
    body.setdefault("embedding_types", list(DEFAULT_EMBEDDING_TYPES))
    return body


def decode_embed(data: Any, *, provider: str, model: str) -> EmbeddingResponse:
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    vectors = _pick_vectors(embeddings)
    if vectors is None:
        raise errors.ProviderError("cohere embed answer has no float or integer vectors", provider=provider, body=data)
    billed = ((data.get("meta") or {}).get("billed_units")) or {}
    return EmbeddingResponse(
        vectors=vectors,
        usage=Usage(prompt_tokens=int(billed.get("input_tokens") or 0)),
        model=model,
        provider=provider,
        raw={k: v for k, v in data.items() if k != "embeddings"},
    )


def _pick_vectors(embeddings: Any) -> list[list[float]] | None:
    """``float`` vectors when present, else the first numeric type asked for
    (``int8``, ``uint8``, ``binary``...); a bare list is the v1 float shape."""
    if isinstance(embeddings, list):
        return embeddings
    if not isinstance(embeddings, dict):
        return None
    if isinstance(embeddings.get("float"), list):
        return list(embeddings["float"])
    for vectors in embeddings.values():
        if isinstance(vectors, list) and all(isinstance(v, list) for v in vectors):
            return [[float(x) for x in v] for v in vectors]
    return None


def decode_models(data: Any, *, provider: str) -> list[ModelInfo]:
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise errors.ProviderError("cohere models answer has no models list", provider=provider, body=data)
    return [model_info(m, provider) for m in items if isinstance(m, dict) and m.get("name")]


def model_info(raw: dict[str, Any], provider: str) -> ModelInfo:
    features = raw.get("features")
    known = isinstance(features, list)
    feature_set = frozenset(str(f) for f in features) if isinstance(features, list) else frozenset()
    context = raw.get("context_length")
    return ModelInfo(
        id=str(raw["name"]),
        provider=provider,
        context_window=int(context) if isinstance(context, int | float) and context > 0 else None,
        input_modalities=("text", "image") if "vision" in feature_set else ("text",),
        supports_tools=bool(feature_set & _TOOL_FEATURES) if known else None,
        supports_structured_output=bool(feature_set & _JSON_FEATURES) if known else None,
        raw=raw,
    )
