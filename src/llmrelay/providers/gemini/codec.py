"""The Gemini ``generateContent`` wire format (v1beta): pure codec functions.

Canonical -> wire: ``encode_chat`` (the request body), ``contents_to_wire``,
``encode_embed``. Wire -> canonical: ``decode_chat``, ``usage_from_wire``,
``finish_reason``, ``decode_embed``, ``decode_models``. No I/O here: the stream
decoder is in :mod:`.stream`, the error mapping in :mod:`.errors`, the provider
in :mod:`.provider`.

Conventions:

- Tool-call ids: Gemini usually sends none, so calls of one answer are
  ``call_0``, ``call_1``... When Gemini does send ``functionCall.id`` it becomes
  the call's id and is kept in ``ToolCall.extra["gemini_call_id"]``; only such
  ids are sent back (Vertex AI rejects ``id`` fields it did not issue).
- ``ToolCall.extra["thought_signature"]`` is sent back as the part's
  ``thoughtSignature`` (Gemini 3 refuses a replayed call without it); a text
  part's signature becomes ``reasoning_signature`` (the first one seen) and is
  put back on the last text part of the turn.
- Reasoning text (thought summaries) is not sent back; Gemini does not need it.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any, TypeAlias
from urllib.parse import quote, urlsplit

from ... import errors
from ..._json import JSONDecodeError, dumps_str, loads
from ..._messages import sniff_image_type
from ...types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    ImagePart,
    Message,
    ModelInfo,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolSpec,
    Usage,
)
from ..extra import merge_extra

JSON: TypeAlias = dict[str, Any]

SIGNATURE = "thought_signature"
CALL_ID = "gemini_call_id"

_FINISH: dict[str, FinishReason] = {
    "FINISH_REASON_UNSPECIFIED": "stop",
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "ESCALATION": "content_filter",
    "LANGUAGE": "error",
    "OTHER": "error",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "MALFORMED_RESPONSE": "error",
    "IMAGE_OTHER": "error",
    "NO_IMAGE": "error",
}

_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}


def model_path(model: str) -> str:
    """``models/<id>`` (or a ``tunedModels/...`` name as given), URL-safe."""
    name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
    return quote(name, safe="/-._~")


# --------------------------------------------------------------------------- canonical -> wire


OWNED_FIELDS = frozenset(
    ("contents", "systemInstruction", "generationConfig.maxOutputTokens", "generationConfig.candidateCount")
)
"""generateContent fields never taken from ``extra`` (see :mod:`..extra`): the prompt,
the output limit and the number of candidates (one is read, all are billed)."""
EMBED_OWNED_FIELDS = frozenset(("model", "content"))
"""Fields of a ``batchEmbedContents`` item never taken from ``extra``: the model
and the text (what is billed, one vector per item)."""


def encode_chat(request: ChatRequest, *, stream: bool) -> JSON:
    """The generateContent body (the same for ``streamGenerateContent``: ``stream``
    only picks the route, in the provider). ``request.extra`` is merged in last, never
    replacing what is built here: a dict value merges one level into the dict
    built under the same key, the built keys winning (so ``{"generationConfig":
    {"thinkingConfig": {...}}}`` adds to the built config), a list extends the
    built one (``{"tools": [{"googleSearch": {}}]}``), a new key is added, and
    anything else (or a field of :data:`OWNED_FIELDS`) is dropped."""
    contents, system = contents_to_wire(request.messages)
    if not contents:
        raise errors.InvalidRequest("Gemini needs at least one user or assistant message")
    body: JSON = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = system
    config = generation_config(request)
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [{"functionDeclarations": [function_declaration(t) for t in request.tools]}]
        if request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": calling_config(request.tool_choice)}
    merge_extra(body, camel_keys(request.extra), OWNED_FIELDS, one_level=True, wire="gemini")
    return body


def camel_keys(extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` with Google's snake_case spellings in camelCase, at the top and inside
    the config objects (``generation_config.max_output_tokens``): Google's JSON takes
    both, and the owned fields must be recognised under either. Other objects (``labels``)
    hold the caller's own keys and are left as they are."""
    out: dict[str, Any] = {}
    for key, value in extra.items():
        name = _camel(key)
        if name in _CONFIG_OBJECTS and isinstance(value, dict):
            value = {_camel(k): v for k, v in value.items()}
        out[name] = value
    return out


_CONFIG_OBJECTS = frozenset(("generationConfig", "toolConfig"))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest) if rest else name


def contents_to_wire(messages: list[Message]) -> tuple[list[JSON], JSON | None]:
    """``(contents, systemInstruction)``: system messages go to the instruction,
    tool results become user turns, consecutive same-role turns are merged."""
    system: list[JSON] = []
    turns: list[JSON] = []
    calls: dict[str, ToolCall] = {}  # tool_call_id -> the latest call with that id
    for message in messages:
        if message.role == "system":
            system.extend(_system_parts(message))
            continue
        if message.role == "assistant":
            role, parts = "model", _model_parts(message)
            calls.update((call.id, call) for call in message.tool_calls)
        elif message.role == "tool":
            role, parts = "user", [_tool_result_part(message, calls)]
        else:
            role, parts = "user", _content_parts(message)
        if not parts:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"].extend(parts)
        else:
            turns.append({"role": role, "parts": parts})
    return turns, ({"parts": system} if system else None)


def _system_parts(message: Message) -> list[JSON]:
    if any(isinstance(p, ImagePart) for p in message.parts):
        raise errors.InvalidRequest("Gemini system instructions take text only, not images")
    return [{"text": p.text} for p in message.parts if isinstance(p, TextPart) and p.text]


def _content_parts(message: Message) -> list[JSON]:
    out: list[JSON] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            if part.text:
                out.append({"text": part.text})
        else:
            out.append(image_to_wire(part))
    return out


def _model_parts(message: Message) -> list[JSON]:
    parts = _content_parts(message)
    if message.reasoning_signature:
        texts = [p for p in parts if "text" in p]
        if texts:
            texts[-1]["thoughtSignature"] = message.reasoning_signature
    for call in message.tool_calls:
        function: JSON = {"name": call.name, "args": _call_arguments(call)}
        if call.extra.get(CALL_ID):
            function["id"] = call.extra[CALL_ID]
        part: JSON = {"functionCall": function}
        if call.extra.get(SIGNATURE):
            part["thoughtSignature"] = call.extra[SIGNATURE]
        parts.append(part)
    return parts


def _call_arguments(call: ToolCall) -> JSON:
    if call.arguments or not call.raw_arguments:
        return call.arguments
    try:
        value = loads(call.raw_arguments)
    except JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _tool_result_part(message: Message, calls: dict[str, ToolCall]) -> JSON:
    call = calls.get(message.tool_call_id or "")
    name = call.name if call is not None else message.name
    if not name:
        raise errors.InvalidRequest(
            f"tool result {message.tool_call_id!r} answers no earlier assistant tool call "
            "(Gemini needs the function name)"
        )
    result: JSON = {"name": name, "response": tool_response(message.text)}
    if call is not None and call.extra.get(CALL_ID):
        result["id"] = call.extra[CALL_ID]
    return {"functionResponse": result}


def tool_response(text: str) -> JSON:
    """A tool result as Gemini's response object: the JSON object itself, else ``{"result": text}``."""
    try:
        value = loads(text) if text.lstrip().startswith("{") else None
    except JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"result": text}


def image_to_wire(image: ImagePart) -> JSON:
    if image.data is not None:
        mime = image.media_type or _sniff(image.data)
        return {"inlineData": {"mimeType": mime, "data": image.data}}
    url = image.url or ""
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        mime, _, encoding = head.partition(";")
        if not sep or encoding != "base64":
            raise errors.InvalidRequest("image data URLs must be base64 (data:<type>;base64,...)")
        return {"inlineData": {"mimeType": mime or _sniff(data), "data": data}}
    return {"fileData": {"fileUri": url, "mimeType": image.media_type or guess_image_type(url)}}


def guess_image_type(url: str) -> str:
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed if guessed and guessed.startswith("image/") else "image/jpeg"


def _sniff(data: str) -> str:
    found = sniff_image_type(data)
    if found is not None:
        return found
    raise errors.InvalidRequest("an image given as data needs media_type (it is not PNG, JPEG, GIF or WebP)")


def generation_config(request: ChatRequest) -> JSON:
    config: JSON = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.seed is not None:
        config["seed"] = request.seed
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        schema = _schema_of(fmt) if fmt.type == "json_schema" else None
        if schema is not None:
            config["responseJsonSchema"] = schema
    return config


def _schema_of(fmt: ResponseFormat) -> JSON | None:
    if fmt.schema is not None:
        return fmt.schema
    make = getattr(fmt.model, "model_json_schema", None)
    return make() if callable(make) else None


def function_declaration(tool: ToolSpec) -> JSON:
    # parametersJsonSchema takes full JSON Schema; ``parameters`` is an OpenAPI subset.
    return {"name": tool.name, "description": tool.description, "parametersJsonSchema": tool.parameters}


def calling_config(choice: str | JSON) -> JSON:
    """OpenAI-style (``"auto"``, ``"required"``, ``{"function": {"name": ...}}``) or
    Anthropic-style (``{"type": "any"}``, ``{"type": "tool", "name": ...}``) choice."""
    if isinstance(choice, str):
        mode = _TOOL_MODES.get(choice.lower())
    else:
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if isinstance(name, str) and name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
        mode = _TOOL_MODES.get(str(choice.get("type", "")).lower())
    if mode is None:
        raise errors.InvalidRequest(f"unsupported tool_choice {choice!r} for Gemini")
    return {"mode": mode}


# --------------------------------------------------------------------------- wire -> canonical


def decode_chat(data: Any, *, provider: str, model: str) -> ChatResponse:
    if not isinstance(data, dict):
        raise errors.ProviderError("Gemini answer is not a JSON object", provider=provider, body=data)
    check_prompt_blocked(data, provider)
    candidate = first_candidate(data)
    if candidate is None:
        raise errors.ProviderError("Gemini answer has no candidates", provider=provider, body=data)
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    signature: str | None = None
    for part in candidate_parts(candidate):
        if "functionCall" in part:
            calls.append(tool_call_from_wire(part, len(calls)))
            continue
        text = part.get("text")
        if isinstance(text, str):
            (thoughts if part.get("thought") else texts).append(text)
        signature = signature or part.get("thoughtSignature") or None
    native = candidate.get("finishReason")
    return ChatResponse(
        content="".join(texts),
        finish_reason=finish_reason(native, tool_calls=bool(calls)),
        usage=usage_from_wire(data.get("usageMetadata")),
        model=data.get("modelVersion") or model,
        provider=provider,
        tool_calls=calls,
        id=data.get("responseId") or "",
        reasoning="".join(thoughts) or None,
        reasoning_signature=signature,
        native_finish_reason=native,
        raw=data,
        extra=candidate_extra(candidate),
    )


def first_candidate(data: JSON) -> JSON | None:
    """Candidate 0 (with ``candidateCount`` > 1 a stream chunk may carry only another one)."""
    candidates = data.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else []:
        if isinstance(candidate, dict) and not candidate.get("index"):
            return candidate
    return None


def candidate_parts(candidate: JSON) -> list[JSON]:
    """The candidate's parts; a candidate may come with no content or no parts."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def candidate_extra(candidate: JSON) -> JSON:
    message = candidate.get("finishMessage")
    return {"finish_message": message} if message else {}


def check_prompt_blocked(data: JSON, provider: str) -> None:
    """A blocked prompt is a 200 with no candidates and ``promptFeedback.blockReason`` (maybe ``""``)."""
    feedback = data.get("promptFeedback")
    if data.get("candidates") or not isinstance(feedback, dict):
        return
    reason = feedback.get("blockReason") or ""
    message = f"Gemini blocked the prompt ({reason})" if reason else "Gemini blocked the prompt (prompt blocked)"
    raise errors.ContentFiltered(message, provider=provider, body=data)


def tool_call_from_wire(part: JSON, index: int) -> ToolCall:
    function = part.get("functionCall")
    function = function if isinstance(function, dict) else {}
    args = function.get("args")
    args = args if isinstance(args, dict) else {}
    extra: JSON = {}
    if part.get("thoughtSignature"):
        extra[SIGNATURE] = part["thoughtSignature"]
    wire_id = function.get("id")
    if wire_id:
        extra[CALL_ID] = wire_id
    return ToolCall(
        id=wire_id or f"call_{index}",
        name=function.get("name") or "",
        arguments=args,
        raw_arguments=dumps_str(args),
        extra=extra,
    )


def finish_reason(native: str | None, *, tool_calls: bool) -> FinishReason:
    """Unknown reasons map to ``stop``; the native one is kept alongside."""
    mapped = _FINISH.get(native or "", "stop")
    return "tool_calls" if mapped == "stop" and tool_calls else mapped


def usage_from_wire(meta: Any) -> Usage:
    if not isinstance(meta, dict):
        return Usage()

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) else 0

    thoughts = count("thoughtsTokenCount")
    return Usage(
        prompt_tokens=count("promptTokenCount") + count("toolUsePromptTokenCount"),
        completion_tokens=count("candidatesTokenCount") + thoughts,
        cached_tokens=count("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


# --------------------------------------------------------------------------- embeddings and models


def encode_embed(request: EmbeddingRequest) -> JSON:
    """The ``batchEmbedContents`` body: one item per text; ``request.extra`` is added
    to every item, never replacing one of :data:`EMBED_OWNED_FIELDS`."""
    shared: JSON = {"model": model_path(request.model)}
    if request.dimensions is not None:
        shared["outputDimensionality"] = request.dimensions
    merge_extra(shared, request.extra, EMBED_OWNED_FIELDS)  # once, not once per text
    return {"requests": [{**shared, "content": {"parts": [{"text": text}]}} for text in request.inputs]}


def decode_embed(data: Any, *, provider: str, model: str) -> EmbeddingResponse:
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(embeddings, list):
        raise errors.ProviderError("Gemini embeddings answer has no embeddings list", provider=provider, body=data)
    vectors = [(e.get("values") or []) if isinstance(e, dict) else [] for e in embeddings]
    meta = data.get("usageMetadata")
    prompt = meta.get("promptTokenCount") if isinstance(meta, dict) else None
    usage = Usage(prompt_tokens=prompt if isinstance(prompt, int) else 0)
    return EmbeddingResponse(vectors, usage, model, provider, raw=data)


def decode_models(data: Any, *, provider: str) -> list[ModelInfo]:
    """One page of ``GET models`` (the provider follows ``nextPageToken``)."""
    found = data.get("models") if isinstance(data, dict) else None
    return [model_info(m, provider) for m in found or [] if isinstance(m, dict) and m.get("name")]


def model_info(model: JSON, provider: str) -> ModelInfo:
    name = str(model["name"])
    methods = model.get("supportedGenerationMethods") or []
    return ModelInfo(
        id=name.removeprefix("models/"),
        provider=provider,
        context_window=model.get("inputTokenLimit"),
        max_output_tokens=model.get("outputTokenLimit"),
        supports_streaming="streamGenerateContent" in methods,
        raw=model,
    )
