"""Prompt token counts: OpenAI's published recipe, and estimates for the rest.

Messages follow the OpenAI cookbook recipe ("How to count tokens with
tiktoken"): each message costs 3 tokens plus the tokens of its role and
content, a ``name`` its tokens plus 1, and 3 more prime the reply. For plain
text chat on OpenAI models this is exact (the cookbook checks it against the
API). Approximations: an assistant tool call counts its name, its JSON
arguments and 3 more; a tool result its ``tool_call_id``; an unknown content
part its JSON. Reasoning text from earlier turns is not counted (providers
drop it from the prompt). Images cost what ``images.image_tokens`` says.

Tool definitions, OpenAI: the cookbook's approximation. Per function 7 tokens
(10 on ``cl100k_base`` models) plus ``"name:description"`` (trailing period
dropped); if it has properties 3 more, and per property 3 plus
``"key:type:description"``, an enum -3 plus 3 and the item per item; 12 once
at the end. Nested schemas (object properties, array items), which the recipe
leaves out, are counted as their compact JSON.

Tool definitions, other kinds: their compact JSON (name, description,
schema); Anthropic adds the tool-use system prompt, 346 tokens on current
Claude models (Anthropic's tool-use pricing table).

The local chat model is counted apart (``_local.py``): its chat template and
its tokenizer, exactly as it is run.

For kinds without an exact tokenizer the text is counted with ``o200k_base``
and multiplied by the kind's factor (see ``_models.FACTORS``), rounded up; the
fixed per-message overheads and image tokens are added as they are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..types import ImagePart, Message, TextPart, ToolSpec
from ._local import LocalVocab, vocab
from ._models import FACTORS, Tokenizer
from ._tiktoken import encoding
from .images import image_tokens

if TYPE_CHECKING:
    from tiktoken import Encoding

__all__ = ["count_messages", "count_plain"]

_PER_MESSAGE: Final = 3
_PER_NAME: Final = 1
_REPLY_PRIMING: Final = 3
_PER_TOOL_CALL: Final = 3
_FUNC_INIT_O200K: Final = 7
_FUNC_INIT_CL100K: Final = 10
_PROP_INIT: Final = 3
_PROP_KEY: Final = 3
_ENUM_INIT: Final = -3
_ENUM_ITEM: Final = 3
_FUNC_END: Final = 12
_ANTHROPIC_TOOL_PROMPT: Final = 346


@dataclass(slots=True)
class _Tally:
    """Tokens of text (scaled for estimates) apart from fixed overheads and images."""

    enc: Encoding
    text: int = 0
    fixed: int = 0
    images: int = 0
    image_list: list[ImagePart] = field(default_factory=list)

    def add(self, value: str | None) -> None:
        if value:
            self.text += len(self.enc.encode_ordinary(value))

    def add_role(self, role: str) -> None:
        key = (self.enc.name, role)
        count = _role_tokens.get(key)
        if count is None:
            count = len(self.enc.encode_ordinary(role))
            if len(_role_tokens) < 64:
                _role_tokens[key] = count
        self.text += count


_role_tokens: dict[tuple[str, str], int] = {}


def count_plain(tokenizer: Tokenizer, text: str) -> int:
    if not text:
        return 0
    if tokenizer.kind == "local":
        return _local_vocab(tokenizer).count_text(text)
    n = len(encoding(tokenizer.encoding).encode_ordinary(text))
    return n if tokenizer.exact else math.ceil(n * FACTORS[tokenizer.kind])


def count_messages(
    tokenizer: Tokenizer,
    messages: Sequence[Message | Mapping[str, Any]],
    tools: Sequence[ToolSpec | Mapping[str, Any]] | None,
) -> int:
    if tokenizer.kind == "local":
        return _local_vocab(tokenizer).count_messages(tokenizer.name, messages, tools)
    tally = _Tally(encoding(tokenizer.encoding))
    for message in messages:
        if isinstance(message, Message):
            _add_message(tally, message)
        elif isinstance(message, Mapping):
            _add_dict_message(tally, message)
        else:
            raise TypeError(f"messages must be Message objects or dicts, not {type(message).__name__}")
    tally.fixed += _REPLY_PRIMING
    if tools:
        _add_tools(tally, tokenizer, [_tool_fields(tool) for tool in tools])
    for image in tally.image_list:
        tally.images += image_tokens(tokenizer.kind, tokenizer.name, image)
    text = tally.text if tokenizer.exact else math.ceil(tally.text * FACTORS[tokenizer.kind])
    return text + tally.fixed + tally.images


def _local_vocab(tokenizer: Tokenizer) -> LocalVocab:
    found = vocab(tokenizer.name)
    assert found is not None  # the tokenizer is "local" only when its vocabulary loaded
    return found


# ---- messages -----------------------------------------------------------------------------------


def _add_message(tally: _Tally, message: Message) -> None:
    tally.fixed += _PER_MESSAGE
    tally.add_role(message.role)
    if message.name:
        tally.add(message.name)
        tally.fixed += _PER_NAME
    content = message.content
    if isinstance(content, str):
        tally.add(content)
    elif content:
        for part in content:
            _add_part(tally, part)
    for call in message.tool_calls:
        tally.fixed += _PER_TOOL_CALL
        tally.add(call.name)
        tally.add(call.raw_arguments or _json(call.arguments))
    tally.add(message.tool_call_id)


def _add_dict_message(tally: _Tally, message: Mapping[str, Any]) -> None:
    tally.fixed += _PER_MESSAGE
    tally.add_role(str(message.get("role") or ""))
    name = message.get("name")
    if name:
        tally.add(str(name))
        tally.fixed += _PER_NAME
    content = message.get("content")
    if isinstance(content, str):
        tally.add(content)
    elif isinstance(content, list):
        for part in content:
            _add_part(tally, part)
    elif content is not None:
        tally.add(_json(content))
    for call in message.get("tool_calls") or ():
        function = call.get("function", call) if isinstance(call, Mapping) else {}
        arguments = function.get("arguments", "")
        tally.fixed += _PER_TOOL_CALL
        tally.add(str(function.get("name") or ""))
        tally.add(arguments if isinstance(arguments, str) else _json(arguments))
    call_id = message.get("tool_call_id")
    if call_id:
        tally.add(str(call_id))


def _add_part(tally: _Tally, part: object) -> None:
    if isinstance(part, TextPart):
        tally.add(part.text)
    elif isinstance(part, ImagePart):
        tally.image_list.append(part)
    elif isinstance(part, str):
        tally.add(part)
    elif isinstance(part, Mapping):
        kind = part.get("type")
        if kind in ("text", "input_text") and isinstance(part.get("text"), str):
            tally.add(part["text"])
        elif kind in ("image_url", "input_image"):
            tally.image_list.append(_dict_image(part))
        else:
            tally.add(_json(part))
    else:
        tally.add(str(part))


def _dict_image(part: Mapping[str, Any]) -> ImagePart:
    """An OpenAI-shaped image part (``{"type": "image_url", "image_url": {"url", "detail"}}``)."""
    ref = part.get("image_url")
    detail = part.get("detail")
    if isinstance(ref, Mapping):
        url = ref.get("url")
        detail = ref.get("detail", detail)
    else:
        url = ref
    return ImagePart(url=str(url) if url else None, detail=str(detail) if detail else None)


# ---- tools --------------------------------------------------------------------------------------------


def _tool_fields(tool: ToolSpec | Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """``(name, description, parameters)`` of a ToolSpec or an OpenAI-shaped tool dict."""
    if isinstance(tool, ToolSpec):
        return tool.name, tool.description, tool.parameters
    function = tool.get("function", tool)
    parameters = function.get("parameters") or function.get("input_schema") or {}
    return str(function.get("name") or ""), str(function.get("description") or ""), dict(parameters)


def _add_tools(tally: _Tally, tokenizer: Tokenizer, tools: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
    if tokenizer.kind != "openai":
        if tokenizer.kind == "anthropic":
            tally.fixed += _ANTHROPIC_TOOL_PROMPT
        for name, description, parameters in tools:
            tally.add(_json({"name": name, "description": description, "parameters": parameters}))
        return
    func_init = _FUNC_INIT_CL100K if tokenizer.encoding == "cl100k_base" else _FUNC_INIT_O200K
    for name, description, parameters in tools:
        tally.fixed += func_init
        tally.add(f"{name}:{description.removesuffix('.')}")
        properties = parameters.get("properties")
        if isinstance(properties, Mapping) and properties:
            tally.fixed += _PROP_INIT
            for key, schema in properties.items():
                _add_property(tally, str(key), schema if isinstance(schema, Mapping) else {})
    tally.fixed += _FUNC_END


def _add_property(tally: _Tally, key: str, schema: Mapping[str, Any]) -> None:
    tally.fixed += _PROP_KEY
    enum = schema.get("enum")
    if isinstance(enum, list):
        tally.fixed += _ENUM_INIT
        for item in enum:
            tally.fixed += _ENUM_ITEM
            tally.add(str(item))
    kind = schema.get("type", "")
    kind_text = ",".join(map(str, kind)) if isinstance(kind, list) else str(kind)
    description = str(schema.get("description", "")).removesuffix(".")
    tally.add(f"{key}:{kind_text}:{description}")
    nested = {k: schema[k] for k in ("properties", "items", "anyOf", "oneOf", "allOf") if k in schema}
    if nested:
        tally.add(_json(nested))


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
