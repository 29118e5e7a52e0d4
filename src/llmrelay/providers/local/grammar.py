"""The llama.cpp grammar (GBNF) that holds the local model to valid tool calls.

A call is written as the prompt shows it (``tools.py``)::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Rome"}}
    </tool_call>

and the grammar allows exactly that: the name of an offered function, then
arguments of that function's JSON schema (``schema.fit_schema`` makes the
schema one the converter follows exactly; the converter is llama-cpp-python's
``SchemaConverter``). Up to ``max_calls`` blocks follow each other, one per line.
With ``tool_choice`` ``auto`` the grammar also allows an answer instead: plain
text that does not start with ``<`` or a space (so the first characters tell a
call from an answer), or JSON of the response format when there is one.
"""

from __future__ import annotations

import re
from typing import Any

from ... import errors
from ...types import ResponseFormat, ToolSpec
from .schema import fit_schema

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""Function names the grammar and the prompt can hold as they are (OpenAI allows fewer)."""

_CHAR = r'[^"\\\x00-\x1F\x7F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
"""A character inside a JSON string: the converter's own rule lets raw control characters
(a newline) through, which JSON forbids."""
_TEXT = r"[^<\x00-\x20] [^\x00]*"
"""A plain answer: anything, as long as it cannot be taken for the start of a call."""


def tools_grammar(
    tools: list[ToolSpec], *, required: bool, max_calls: int, answer: ResponseFormat | None = None
) -> str:
    """The GBNF of 1 to ``max_calls`` calls of ``tools`` (``required``), or of those or an
    answer (text, or JSON of ``answer`` when it asks for JSON)."""
    from llama_cpp import llama_grammar

    make: Any = llama_grammar.SchemaConverter  # untyped
    converter = make(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    calls = []
    for i, tool in enumerate(tools):
        where = f"tool {tool.name!r}"
        schema = fit_schema(tool.parameters or {"type": "object", "properties": {}}, where)
        if not schema:
            schema = {"type": "object"}
        if not _is_object(schema):
            raise errors.InvalidRequest(
                f"the local model cannot follow the JSON schema of {where}: the arguments must be an object"
            )
        rule = _visit(converter, schema, f"tool{i}-args", where)
        calls.append(f'"\\"{tool.name}\\", \\"arguments\\": " {rule}')
    lines = [f"tc-call{i} ::= {call}" for i, call in enumerate(calls)]
    either = " | ".join(f"tc-call{i}" for i in range(len(calls)))
    lines.append(f'tc-block ::= "{OPEN}\\n{{\\"name\\": " ({either}) "}}\\n{CLOSE}"')
    more = f' ("\\n" tc-block){{0,{max_calls - 1}}}' if max_calls > 1 else ""
    lines.append(f"tc-calls ::= tc-block{more}")
    if required:
        lines.append("root ::= tc-calls")
    else:
        lines.append(f"tc-answer ::= {_answer_rule(converter, answer)}")
        lines.append("root ::= tc-calls | tc-answer")
    rules: dict[str, str] = converter._rules  # the converter keeps its rules there (name -> body)
    if "char" in rules:
        rules["char"] = _CHAR
    return "\n".join([converter.format_grammar(), *lines]) + "\n"


def answer_grammar(answer: ResponseFormat) -> str:
    """The GBNF of an answer in JSON: of the response format's schema when it has one (made
    one the converter follows exactly, as for tool arguments), else any JSON object."""
    from llama_cpp import llama_grammar

    make: Any = llama_grammar.SchemaConverter  # untyped
    converter = make(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    rule = _answer_rule(converter, answer)
    rules: dict[str, str] = converter._rules
    if "char" in rules:
        rules["char"] = _CHAR
    return "\n".join([converter.format_grammar(), f"root ::= {rule}"]) + "\n"


def check_grammar(gbnf: str, vocab: Any) -> None:
    """``InvalidRequest`` unless llama.cpp parses ``gbnf`` (``vocab``: the model's ``llama_vocab``
    pointer). Never skip it: llama.cpp crashes the process when asked to sample with a grammar
    it could not parse."""
    if gbnf in _parsed:
        return
    if vocab is None:
        raise errors.ProviderError("the local model's vocabulary could not be read: its grammar cannot be checked")
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    if not sampler:
        raise errors.InvalidRequest("the local model cannot follow these tools: llama.cpp refused their grammar")
    llama_cpp.llama_sampler_free(sampler)
    if len(_parsed) >= 64:
        _parsed.clear()
    _parsed.add(gbnf)


_parsed: set[str] = set()
"""Grammars llama.cpp parsed already (the same tools come again and again)."""


def _answer_rule(converter: Any, answer: ResponseFormat | None) -> str:
    if answer is None or answer.type == "text":
        return _TEXT
    if answer.type == "json_schema" and answer.schema:
        schema = fit_schema(answer.schema, "the response format")
        return _visit(converter, schema, "answer", "the response format")
    return _visit(converter, {"type": "object"}, "answer", "the response format")


def _visit(converter: Any, schema: dict[str, Any], name: str, where: str) -> str:
    try:
        return str(converter.visit(schema, name))
    except (AssertionError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise errors.InvalidRequest(f"the local model cannot follow the JSON schema of {where}: {exc}") from None


def _is_object(schema: dict[str, Any]) -> bool:
    if "anyOf" in schema:
        return all(_is_object(branch) for branch in schema["anyOf"])
    kind = schema.get("type")
    return kind == "object" or (kind is None and ("properties" in schema or "additionalProperties" in schema))
