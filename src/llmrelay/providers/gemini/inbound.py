"""The inverse of the Gemini codec: Gemini API (v1beta) request bodies -> canonical
requests. The gateway serves ``models/{model}:generateContent``,
``:streamGenerateContent``, ``:countTokens``, ``:embedContent`` and
``:batchEmbedContents`` through it, whatever provider answers. Contents become
messages in :mod:`.inbound_contents`; answers are built by :mod:`.inbound_answer`
(re-exported here).

- Field names are read in camelCase (the REST form) or snake_case (protobuf's,
  which the API takes too, and which the ``google-genai`` SDK sends inside some
  objects: ``inlineData.mime_type``, ``thinkingConfig.thinking_budget``...).
- Refused with ``InvalidRequest`` naming the field: built-in tools
  (``googleSearch``, ``codeExecution``, ``urlContext``...), ``cachedContent``,
  ``candidateCount`` above 1, output modalities other than text, a response MIME
  type other than text or JSON, ``serviceTier: priority`` (billed above the
  gateway's rates), and what :mod:`.inbound_contents` refuses (media other than
  images, Files API URIs).
- Gemini-only settings with no canonical home go upstream in ``extra`` under
  their Gemini names, where the outbound Gemini codec merges them back:
  ``safetySettings``, ``serviceTier``, ``generationConfig.topK``,
  ``thinkingConfig`` (camelCase), the other generationConfig fields and unknown
  top-level fields as given.
- ``toolConfig.functionCallingConfig``: AUTO and VALIDATED are ``auto``, ANY is
  ``required`` (one allowed name: that function), NONE is ``none``; several
  allowed names keep only those tools.
"""

from __future__ import annotations

from typing import Any

from ... import errors
from ...types import ChatRequest, EmbeddingRequest, ResponseFormat, ToolSpec
from .codec import JSON
from .inbound_answer import (
    StreamEncoder,
    batch_embed_response_to_wire,
    count_tokens_to_wire,
    embed_response_to_wire,
    error_body,
    model_to_wire,
    models_to_wire,
    response_to_wire,
    usage_to_wire,
)
from .inbound_contents import Turns, system_message
from .inbound_fields import (
    fail,
    field_path,
    find,
    get,
    get_int,
    get_number,
    json_type,
    model_name,
    other_fields,
    same_model,
)
from .inbound_schema import json_schema

METHODS = frozenset(("generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"))
"""The ``models/{model}:{method}`` methods the gateway serves."""
_MODES = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "required", "NONE": "none"}
_THINKING_LEVELS = frozenset(("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH"))
_TASK_TYPES = frozenset(
    (
        "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION",
        "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY",
    )
)  # fmt: skip
_PRICED_TIERS = frozenset(("unspecified", "standard", "flex"))


def model_from_path(segment: str) -> tuple[str, str]:
    """``("gemini-2.0-flash", "generateContent")`` from ``gemini-2.0-flash:generateContent``
    (or ``models/...``); ``NotFound`` for a method the gateway does not serve."""
    model, sep, method = segment.rpartition(":")
    if not sep:
        raise errors.NotFound(f"{segment!r} names no method: use models/<model>:<method>")
    if method not in METHODS:
        raise errors.NotFound(f"method {method!r} is not served here: use one of {', '.join(sorted(METHODS))}")
    return model_name(model, "model"), method


# --------------------------------------------------------------------------- generateContent


_KNOWN = frozenset(
    (
        "model", "contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
        "cachedContent", "serviceTier",
    )
)  # fmt: skip


def request_from_wire(body: Any, model: str) -> ChatRequest:
    """A canonical request from a ``generateContent`` body; ``model`` is the URL's."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    model = model_name(model, "model")
    same_model(body, model, "")
    cached_key, cached = find(body, "cachedContent")
    if cached is not None:
        fail(cached_key, "cached contents live at Google and are not served by the gateway: send the contents instead")
    turns = Turns()
    system = system_message(body)
    if system is not None:
        turns.messages.append(system)
    contents = get(body, "contents", list, required=True)
    if not contents:
        fail("contents", "must not be empty")
    for i, content in enumerate(contents):
        turns.add(content, i)
    extra = other_fields(body, _KNOWN)
    settings = get(body, "safetySettings", list)
    if settings is not None:
        for i, setting in enumerate(settings):
            if not isinstance(setting, dict):
                fail(f"safetySettings[{i}]", f"must be an object, not {json_type(setting)}")
        extra["safetySettings"] = settings
    tier = get(body, "serviceTier", str)
    if tier is not None:
        if tier.lower() not in _PRICED_TIERS:
            fail("serviceTier", f"{tier!r} is billed at other rates than the gateway's: use standard or flex")
        extra["serviceTier"] = tier
    tools = _tools(get(body, "tools", list))
    tools, choice, tool_config = _tool_config(get(body, "toolConfig", dict), tools)
    if tool_config:
        extra["toolConfig"] = tool_config
    request = ChatRequest(model=model, messages=turns.messages, tools=tools, tool_choice=choice, extra=extra)
    _generation_config(get(body, "generationConfig", dict), request)
    return request


def count_tokens_request_from_wire(body: Any, model: str) -> ChatRequest:
    """What a ``countTokens`` body asks to count: its ``contents``, or its ``generateContentRequest``."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    key, inner = find(body, "generateContentRequest")
    if inner is None:
        return request_from_wire({"contents": get(body, "contents", list, required=True)}, model)
    if find(body, "contents")[1] is not None:
        fail(key, "give either contents or generateContentRequest, not both")
    if not isinstance(inner, dict):
        fail(key, f"must be an object, not {json_type(inner)}")
    try:
        return request_from_wire(inner, model)
    except errors.InvalidRequest as exc:
        raise errors.InvalidRequest(f"{key}.{exc.message}") from None


# --------------------------------------------------------------------------- tools


def _tools(tools: list[Any] | None) -> list[ToolSpec]:
    out: list[ToolSpec] = []
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            fail(where, f"must be a Tool object, not {json_type(tool)}")
        for key, value in tool.items():
            if key not in ("functionDeclarations", "function_declarations") and value is not None:
                fail(
                    f"{where}.{key}", "built-in Gemini tools are not supported by the gateway: use functionDeclarations"
                )
        for j, declaration in enumerate(get(tool, "functionDeclarations", list, where) or ()):
            out.append(_declaration(declaration, f"{where}.{find(tool, 'functionDeclarations')[0]}[{j}]"))
    seen: set[str] = set()
    for spec in out:  # one pass: a request may declare many functions
        if spec.name in seen:
            fail("tools", f"function {spec.name!r} is declared more than once")
        seen.add(spec.name)
    return out


def _declaration(declaration: Any, where: str) -> ToolSpec:
    if not isinstance(declaration, dict):
        fail(where, f"must be a FunctionDeclaration object, not {json_type(declaration)}")
    name = get(declaration, "name", str, where, required=True)
    if not name:
        fail(f"{where}.name", "must not be empty")
    description = get(declaration, "description", str, where) or ""
    key, schema = find(declaration, "parameters")
    json_key, given = find(declaration, "parametersJsonSchema")
    if schema is not None and given is not None:
        fail(where, "give either parameters or parametersJsonSchema, not both")
    if given is not None and not isinstance(given, dict):
        fail(f"{where}.{json_key}", f"must be a JSON schema object, not {json_type(given)}")
    parameters = json_schema(schema, f"{where}.{key}") if schema is not None else given
    return ToolSpec(name, description, parameters) if parameters is not None else ToolSpec(name, description)


def _tool_config(config: JSON | None, tools: list[ToolSpec]) -> tuple[list[ToolSpec], Any, JSON]:
    """``(tools, tool_choice, other toolConfig fields)``. ``allowedFunctionNames``
    with one name forces that function; with several, only those are offered."""
    if config is None:
        return tools, None, {}
    key, calling = find(config, "functionCallingConfig")
    rest = other_fields(config, frozenset(("functionCallingConfig",)))
    if calling is None:
        return tools, None, rest
    where = f"toolConfig.{key}"
    if not isinstance(calling, dict):
        fail(where, f"must be an object, not {json_type(calling)}")
    mode = (get(calling, "mode", str, where) or "MODE_UNSPECIFIED").upper()
    if mode not in _MODES and mode != "MODE_UNSPECIFIED":
        fail(f"{where}.mode", f"must be AUTO, ANY, NONE or VALIDATED, not {mode!r}")
    names_key = find(calling, "allowedFunctionNames")[0]
    names: list[Any] = get(calling, "allowedFunctionNames", list, where) or []
    declared = {t.name for t in tools}
    for k, name in enumerate(names):
        if not isinstance(name, str) or name not in declared:
            fail(f"{where}.{names_key}[{k}]", f"{name!r} is not a declared function")
    if not tools:
        return tools, None, rest
    choice: Any = _MODES.get(mode)
    if names and mode in ("ANY", "VALIDATED", "MODE_UNSPECIFIED"):
        if mode == "ANY" and len(set(names)) == 1:
            return tools, {"name": names[0]}, rest
        allowed = set(names)
        tools = [t for t in tools if t.name in allowed]
    return tools, choice, rest


# --------------------------------------------------------------------------- generationConfig


_CONFIG_KNOWN = frozenset(
    (
        "temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "seed", "candidateCount",
        "responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig", "responseModalities",
    )
)  # fmt: skip


def _generation_config(config: JSON | None, request: ChatRequest) -> None:
    """Fills ``request``'s sampling fields and response format; the rest of the
    config goes to ``extra["generationConfig"]`` (camelCase for the fields read here)."""
    if config is None:
        return
    where = "generationConfig"
    request.temperature = get_number(config, "temperature", where, 2)
    request.top_p = get_number(config, "topP", where, 1)
    request.max_tokens = get_int(config, "maxOutputTokens", where, low=1)
    request.seed = get_int(config, "seed", where)
    stop_key, stop = find(config, "stopSequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            fail(f"{where}.{stop_key}", "must be a list of strings")
        request.stop = stop or None
    count = get_int(config, "candidateCount", where)
    if count is not None and count != 1:
        fail(f"{where}.{find(config, 'candidateCount')[0]}", f"must be 1, not {count}: the gateway gives one answer")
    modalities = get(config, "responseModalities", list, where) or []
    if any(not isinstance(m, str) or m.upper() != "TEXT" for m in modalities):
        fail(f"{where}.{find(config, 'responseModalities')[0]}", f"only TEXT is supported, not {modalities!r}")
    request.response_format = _response_format(config, where)
    extra = other_fields(config, _CONFIG_KNOWN)
    top_k = get_int(config, "topK", where, low=1)
    if top_k is not None:
        extra["topK"] = top_k
    thinking = _thinking(config, where)
    if thinking is not None:
        extra["thinkingConfig"] = thinking
    if extra:
        request.extra["generationConfig"] = extra


def _response_format(config: JSON, where: str) -> ResponseFormat | None:
    mime_key, mime = find(config, "responseMimeType")
    schema_key, schema = find(config, "responseSchema")
    json_key, given = find(config, "responseJsonSchema")
    if schema is not None and given is not None:
        fail(where, "give either responseSchema or responseJsonSchema, not both")
    if mime is not None and not isinstance(mime, str):
        fail(f"{where}.{mime_key}", f"must be a string, not {json_type(mime)}")
    if mime in (None, "text/plain"):
        if schema is not None or given is not None:
            fail(f"{where}.{mime_key}", "must be 'application/json' with a response schema")
        return None
    if mime != "application/json":
        fail(f"{where}.{mime_key}", f"{mime!r} is not supported: use 'text/plain' or 'application/json'")
    if given is not None and not isinstance(given, dict):
        fail(f"{where}.{json_key}", f"must be a JSON schema object, not {json_type(given)}")
    found = json_schema(schema, f"{where}.{schema_key}") if schema is not None else given
    if found is None:
        return ResponseFormat("json_object")
    title = found.get("title")
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in title)[:64] if isinstance(title, str) else ""
    return ResponseFormat("json_schema", schema=found, name=name or "response", strict=False)


def _thinking(config: JSON, where: str) -> JSON | None:
    thinking = get(config, "thinkingConfig", dict, where)
    if thinking is None:
        return None
    where = f"{where}.{find(config, 'thinkingConfig')[0]}"
    out = other_fields(thinking, frozenset(("includeThoughts", "thinkingBudget", "thinkingLevel")))
    include = get(thinking, "includeThoughts", bool, where)
    if include is not None:
        out["includeThoughts"] = include
    budget = get_int(thinking, "thinkingBudget", where, low=-1)
    if budget is not None:
        out["thinkingBudget"] = budget
    level = get(thinking, "thinkingLevel", str, where)
    if level is not None:
        if level.upper() not in _THINKING_LEVELS:
            fail(
                f"{where}.{find(thinking, 'thinkingLevel')[0]}", f"must be MINIMAL, LOW, MEDIUM or HIGH, not {level!r}"
            )
        out["thinkingLevel"] = level.upper()
    return out


# --------------------------------------------------------------------------- embeddings


def embed_request_from_wire(body: Any, model: str) -> EmbeddingRequest:
    """A canonical request from an ``embedContent`` body (one text: its parts' texts joined by newlines)."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    model = model_name(model, "model")
    text, dimensions, extra = _embed_item(body, model, "")
    return EmbeddingRequest(model, [text], dimensions, None, extra)


def batch_embed_request_from_wire(body: Any, model: str) -> EmbeddingRequest:
    """A canonical request from a ``batchEmbedContents`` body: one text per item; the
    items must agree on ``taskType``, ``title`` and ``outputDimensionality``
    (a canonical request has one of each)."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    model = model_name(model, "model")
    items = get(body, "requests", list, required=True)
    if not items:
        fail("requests", "must not be empty")
    texts: list[str] = []
    first: tuple[int | None, JSON] | None = None
    for i, item in enumerate(items):
        where = f"requests[{i}]"
        if not isinstance(item, dict):
            fail(where, f"must be an EmbedContentRequest object, not {json_type(item)}")
        text, dimensions, extra = _embed_item(item, model, where)
        if first is not None and first != (dimensions, extra):
            fail(where, "taskType, title and outputDimensionality must be the same in every request")
        first = first or (dimensions, extra)
        texts.append(text)
    assert first is not None
    return EmbeddingRequest(model, texts, first[0], None, first[1])


def _embed_item(item: JSON, model: str, where: str) -> tuple[str, int | None, JSON]:
    same_model(item, model, where)
    content = get(item, "content", dict, where, required=True)
    at = field_path(where, find(item, "content")[0])
    texts: list[str] = []
    for j, part in enumerate(get(content, "parts", list, at, required=True)):
        if not isinstance(part, dict) or not isinstance(find(part, "text")[1], str):
            fail(f"{at}.parts[{j}]", "must be a text part: the gateway embeds text only")
        texts.append(find(part, "text")[1])
    if not texts:
        fail(f"{at}.parts", "must not be empty")
    # taskType, title and outputDimensionality: in embedContentConfig, or (deprecated) on the item
    config = get(item, "embedContentConfig", dict, where) or {}
    config_where = field_path(where, find(item, "embedContentConfig")[0])
    own = frozenset(("taskType", "title", "outputDimensionality"))
    extra = other_fields(item, own | {"model", "content", "embedContentConfig"})
    if other_fields(config, own):
        extra["embedContentConfig"] = other_fields(config, own)
    dimensions = get_int(config, "outputDimensionality", config_where, low=1)
    if dimensions is None:
        dimensions = get_int(item, "outputDimensionality", where, low=1)
    task_where, task = config_where, get(config, "taskType", str, config_where)
    if task is None:
        task_where, task = where, get(item, "taskType", str, where)
    if task is not None:
        if task.upper() not in _TASK_TYPES:
            fail(field_path(task_where, "taskType"), f"must be one of {', '.join(sorted(_TASK_TYPES))}, not {task!r}")
        extra["taskType"] = task.upper()
    title = get(config, "title", str, config_where) or get(item, "title", str, where)
    if title is not None:
        extra["title"] = title
    return "\n".join(texts), dimensions, extra


__all__ = [
    "METHODS", "StreamEncoder", "batch_embed_request_from_wire", "batch_embed_response_to_wire",
    "count_tokens_request_from_wire", "count_tokens_to_wire", "embed_request_from_wire", "embed_response_to_wire",
    "error_body", "model_from_path", "model_to_wire", "models_to_wire", "request_from_wire", "response_to_wire",
    "usage_to_wire",
]  # fmt: skip
