"""Amazon Bedrock Converse API <-> canonical types: pure functions, no I/O.

Outbound (``encode_chat``): system messages become the top-level ``system``
blocks; canonical ``tool`` messages become ``toolResult`` blocks of a user turn
(consecutive ones folded together); consecutive turns of one role are merged.
The model id is not in the body (it is in the URL), nor is a stream flag (the
stream has its own route). ``seed`` has no Converse field and is left out; pass
model-specific fields with ``extra`` (e.g. ``additionalModelRequestFields``),
which adds fields but never replaces one built here nor any of
:data:`OWNED_FIELDS` (see :mod:`..extra`).

Structured output is asked for like on Anthropic: a forced call of one extra
tool named after the format, whose input is the answer (given back as JSON
text, not as a tool call). ``json_object`` (no schema) adds an instruction to
the system prompt.

Usage: on Bedrock ``inputTokens`` counts only the input that was neither read
from nor written to the prompt cache (``totalTokens`` is the sum of all four
figures), so ``prompt_tokens`` = ``inputTokens`` + cache reads + cache writes.

The stream decoder is in :mod:`.stream`, the error mapping in :mod:`.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ... import errors
from ..._json import dumps_str, loads
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

Block = dict[str, Any]


STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}

IMAGE_FORMATS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


OWNED_FIELDS = frozenset(("messages", "system", "inferenceConfig"))
"""Converse fields never taken from ``extra``: the prompt and ``inferenceConfig``,
every field of which (``maxTokens``, ``temperature``, ``topP``, ``stopSequences``)
is a typed field of the request."""


# --------------------------------------------------------------------------- request


def encode_chat(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /model/{id}/converse`` (and ``converse-stream``: the
    body is the same, ``stream`` only picks the route, in the provider)."""
    messages = wire_messages(request.messages)
    if not messages:
        raise errors.InvalidRequest("bedrock needs at least one user or assistant message; none was given")
    if messages[0]["role"] != "user":
        raise errors.InvalidRequest("bedrock: the conversation must start with a user message, not an assistant one")
    body: dict[str, Any] = {"messages": messages}
    system = _system_blocks(request)
    if system:
        body["system"] = system
    inference = _inference_config(request)
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(request, _has_tool_blocks(messages))
    if tool_config is not None:
        body["toolConfig"] = tool_config
    merge_extra(body, request.extra, OWNED_FIELDS, wire="bedrock")
    return body


def _system_blocks(request: ChatRequest) -> list[Block]:
    blocks: list[Block] = [{"text": m.text} for m in request.messages if m.role == "system" and m.text]
    fmt = request.response_format
    if fmt is not None and fmt.type != "text" and structured_tool_name(request) is None:
        blocks.append({"text": JSON_OBJECT_INSTRUCTION})
    return blocks


def _inference_config(request: ChatRequest) -> Block:
    config: Block = {}
    if request.max_tokens is not None:
        config["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = list(request.stop)
    return config


def _tool_config(request: ChatRequest, tool_history: bool) -> Block | None:
    """``toolConfig``, or ``None``. Converse has no ``none`` choice: then the tools are
    left out, unless the history holds tool blocks (Bedrock then requires them)."""
    tools: list[Block] = [_tool_spec(t.name, t.description, t.parameters) for t in request.tools]
    choice = wire_tool_choice(request.tool_choice)
    forced = structured_tool_name(request)
    if forced is not None:
        assert request.response_format is not None and request.response_format.schema is not None
        if any(t["toolSpec"]["name"] == forced for t in tools):
            raise errors.InvalidRequest(f"response_format name {forced!r} is also the name of a tool; rename one")
        description = f"Give the answer as the input of this tool ({forced})."
        tools.append(_tool_spec(forced, description, request.response_format.schema))
        choice = {"tool": {"name": forced}}
    if not tools or (choice == {} and not tool_history):
        return None
    config: Block = {"tools": tools}
    if choice:
        config["toolChoice"] = choice
    return config


def _tool_spec(name: str, description: str, schema: dict[str, Any]) -> Block:
    spec: Block = {"name": name, "inputSchema": {"json": schema}}
    if description:  # Converse rejects an empty description
        spec["description"] = description
    return {"toolSpec": spec}


def wire_tool_choice(choice: str | dict[str, Any] | None) -> Block | None:
    """Converse ``toolChoice``; ``{}`` stands for ``none`` (no tools offered)."""
    if choice is None:
        return None
    if isinstance(choice, str):
        named: dict[str, Block] = {"auto": {"auto": {}}, "required": {"any": {}}, "any": {"any": {}}, "none": {}}
        if choice not in named:
            raise errors.InvalidRequest(f"unknown tool_choice {choice!r}; use auto, required, none or a tool name")
        return named[choice]
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else choice.get("name")
    if isinstance(name, str) and name:
        return {"tool": {"name": name}}
    if len(choice) == 1 and next(iter(choice)) in ("auto", "any", "tool"):
        return dict(choice)  # already in Converse's form
    raise errors.InvalidRequest(f"unsupported tool_choice {choice!r}")


def _has_tool_blocks(messages: list[Block]) -> bool:
    return any("toolUse" in block or "toolResult" in block for m in messages for block in m["content"])


def wire_messages(messages: list[Message]) -> list[Block]:
    """Canonical non-system messages as alternating Converse turns."""
    turns: list[Block] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message, index)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":  # tool results open the turn that answers the calls
            turn["content"].sort(key=lambda block: "toolResult" not in block)
    return turns


def _blocks(message: Message, index: int) -> list[Block]:
    if message.role == "tool":
        return [_tool_result(message, index)]
    blocks: list[Block] = []
    if message.role == "assistant":
        blocks.extend(_reasoning_blocks(message))
    blocks.extend(_content_blocks(message.parts, index))
    for call in message.tool_calls:
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments}})
    return blocks


def _reasoning_blocks(message: Message) -> list[Block]:
    """Reasoning sent back to the model: only signed reasoning (Claude checks the
    signature; other models take no reasoning blocks) and redacted reasoning."""
    blocks: list[Block] = []
    if message.reasoning_signature:
        text = {"text": message.reasoning or "", "signature": message.reasoning_signature}
        blocks.append({"reasoningContent": {"reasoningText": text}})
    for data in message.extra.get("redacted_thinking", ()):
        blocks.append({"reasoningContent": {"redactedContent": data}})
    return blocks


def _content_blocks(parts: list[ContentPart], index: int) -> list[Block]:
    blocks: list[Block] = []
    for part in parts:
        if isinstance(part, TextPart):
            if part.text:  # Converse rejects blank text blocks
                blocks.append({"text": part.text})
        else:
            blocks.append(image_block(part, f"messages[{index}]"))
    return blocks


def _tool_result(message: Message, index: int) -> Block:
    if message.tool_call_id is None:
        raise errors.InvalidRequest(f"messages[{index}]: a tool message needs tool_call_id (the call it answers)")
    parts = message.parts
    content: list[Block]
    if any(isinstance(part, ImagePart) for part in parts):
        content = _content_blocks(parts, index)
    else:
        content = [_tool_result_text(message.text)]
    result: Block = {"toolUseId": message.tool_call_id, "content": content}
    if message.extra.get("is_error"):
        result["status"] = "error"
    return {"toolResult": result}


def _tool_result_text(text: str) -> Block:
    """A JSON object result goes as ``json`` (the model sees structure), anything else as text."""
    if text.lstrip().startswith("{"):
        try:
            value = loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return {"json": value}
    return {"text": text}


def image_block(image: ImagePart, where: str) -> Block:
    """A Converse image block; Converse takes the bytes (base64 in JSON), never a URL."""
    if image.data is None:
        url = image.url or ""
        if not url.startswith("data:"):
            raise errors.InvalidRequest(
                f"{where}: Bedrock Converse does not take image URLs; pass the image as base64 data"
            )
        image = image_from_url(url, where)
    assert image.data is not None
    return {"image": {"format": _image_format(image, where), "source": {"bytes": image.data}}}


def _image_format(image: ImagePart, where: str) -> str:
    if image.media_type:
        found = IMAGE_FORMATS.get(image.media_type.lower())
        if found is None:
            raise errors.InvalidRequest(f"{where}: Bedrock takes png, jpeg, gif or webp images, not {image.media_type}")
        return found
    sniffed = sniff_image_type(image.data or "")
    if sniffed is not None:
        return IMAGE_FORMATS[sniffed]
    raise errors.InvalidRequest(f"{where}: base64 image data needs media_type (image/png, jpeg, gif or webp)")


# --------------------------------------------------------------------------- response


def usage_from_wire(usage: Mapping[str, Any]) -> Usage:
    """Bedrock ``TokenUsage`` -> ``Usage`` (``prompt_tokens`` includes cache reads and writes).

    Should a model ever count cached tokens inside ``inputTokens`` (seen as
    ``totalTokens == inputTokens + outputTokens`` with cache figures present),
    they are not added twice."""
    fresh = int(usage.get("inputTokens") or 0)
    output = int(usage.get("outputTokens") or 0)
    read = int(usage.get("cacheReadInputTokens") or 0)
    write = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = fresh + read + write
    if (read or write) and usage.get("totalTokens") == fresh + output:
        prompt = fresh
    return Usage(prompt_tokens=prompt, completion_tokens=output, cached_tokens=read, cache_write_tokens=write)


def finish_reason(stop_reason: str | None, *, tool_calls: bool) -> FinishReason:
    """The canonical reason; ``tool_use`` that only carried a structured answer is ``stop``."""
    reason = STOP_REASONS.get(stop_reason or "", "stop")
    if reason == "tool_calls" and not tool_calls:
        return "stop"
    return reason


def decode_chat(data: Any, *, provider: str, model: str, structured_tool: str | None = None) -> ChatResponse:
    """A ``Converse`` answer as a ``ChatResponse``."""
    output = data.get("output") if isinstance(data, dict) else None
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        raise errors.ProviderError("bedrock answer has no output.message.content list", provider=provider, body=data)
    texts: list[str] = []
    reasoning: list[str] = []
    signature: str | None = None
    calls: list[ToolCall] = []
    extra: dict[str, Any] = {}
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            tool = block["toolUse"]
            if tool.get("name") == structured_tool:
                texts.append(dumps_str(tool.get("input") or {}))
            else:
                calls.append(tool_call_from_wire(tool))
        elif isinstance(block.get("reasoningContent"), dict):
            signature = _read_reasoning(block["reasoningContent"], reasoning, extra) or signature
    stop_reason = data.get("stopReason")
    if isinstance(data.get("additionalModelResponseFields"), dict):
        extra["additional_model_response_fields"] = data["additionalModelResponseFields"]
    return ChatResponse(
        content="".join(texts),
        finish_reason=finish_reason(stop_reason, tool_calls=bool(calls)),
        usage=usage_from_wire(data.get("usage") or {}),
        model=model,
        provider=provider,
        tool_calls=calls,
        reasoning="".join(reasoning) or None,
        reasoning_signature=signature,
        native_finish_reason=stop_reason,
        raw=data,
        extra=extra,
    )


def _read_reasoning(block: Block, reasoning: list[str], extra: dict[str, Any]) -> str | None:
    """Collects one ``reasoningContent`` block; returns its signature, if any."""
    text = block.get("reasoningText")
    if isinstance(text, dict):
        reasoning.append(text.get("text") or "")
        return text.get("signature") or None
    if block.get("redactedContent"):
        extra.setdefault("redacted_thinking", []).append(block["redactedContent"])
    return None


def tool_call_from_wire(tool: Block) -> ToolCall:
    arguments = tool.get("input")
    if not isinstance(arguments, dict):
        arguments = {}
    return ToolCall(
        id=tool.get("toolUseId") or "",
        name=tool.get("name") or "",
        arguments=arguments,
        raw_arguments=dumps_str(arguments),
    )


def header(headers: Mapping[str, str], name: str) -> str:
    """A header value by case-insensitive name ("" when absent)."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value or ""


# --------------------------------------------------------------------------- models


def model_from_summary(summary: Mapping[str, Any], known: ModelInfo) -> ModelInfo:
    """A ``ListFoundationModels`` summary on top of what the catalogue knows."""
    inputs = tuple(str(m).lower() for m in summary.get("inputModalities") or ()) or known.input_modalities
    outputs = tuple(str(m).lower() for m in summary.get("outputModalities") or ()) or known.output_modalities
    return replace(
        known,
        input_modalities=inputs,
        output_modalities=outputs,
        supports_streaming=bool(summary.get("responseStreamingSupported", True)),
        raw={**known.raw, **summary},
    )


def decode_models(data: Any, *, provider: str, model_info: Callable[[str], ModelInfo]) -> list[ModelInfo]:
    """``ListFoundationModels``, each summary on top of what ``model_info`` (the
    catalogue) knows of its model id."""
    summaries = data.get("modelSummaries") if isinstance(data, dict) else None
    if not isinstance(summaries, list):
        raise errors.ProviderError("bedrock model list has no modelSummaries", provider=provider, body=data)
    return [
        model_from_summary(s, model_info(str(s["modelId"])))
        for s in summaries
        if isinstance(s, dict) and s.get("modelId")
    ]
