"""Tool calling on the local chat model: the prompt, the grammar's plan, and the answer read back.

A GGUF chat template (SmolLM2's included) may know nothing of tools, so tools
reach the model as text and calls come back as text:

- ``prepare`` turns a request with tools into one the engine runs as it is:
  the system message gains the functions (name, description, JSON schema of
  the arguments) and the way to call them; earlier calls are written into
  their assistant turns exactly as the model is asked to write them, and tool
  results become user turns (``<tool_response>`` blocks, consecutive results
  in one turn); the grammar (``grammar.py``) rides in ``extra``. Counting the
  prompt renders the same messages, so counts stay exact.
- ``CallReader`` reads the generated text back, as it streams: text that does
  not start with ``<tool_call>`` is an answer; otherwise each complete block is
  one ``ToolCallDelta`` (id, name and arguments together). A call that repeats
  an earlier one of the same answer is dropped and ends the generation (a small
  model tends to say it again and again); a call cut short by ``max_tokens`` is kept (its arguments as far as
  they came) only when no complete call came before it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from ... import errors
from ..._ids import new_id
from ..._json import dumps_str
from ...types import ChatRequest, Message, StreamEvent, TextDelta, ToolCall, ToolCallDelta, ToolSpec
from .grammar import CLOSE, NAME, OPEN, check_grammar, tools_grammar

MAX_PARALLEL_CALLS = 4
"""Calls one answer may hold when ``parallel_tool_calls`` is not false."""
OWN_EXTRA = ("parallel_tool_calls",)
"""Request fields (``extra``) read here, never passed on to llama.cpp."""

Choice = Literal["auto", "required"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the model is offered and held to: ``tools`` (only the named one when
    ``tool_choice`` names one), ``choice`` and at most ``max_calls`` calls."""

    tools: list[ToolSpec]
    choice: Choice
    max_calls: int


def plan(request: ChatRequest) -> Plan | None:
    """The tool plan of ``request`` (``None``: no tools, or ``tool_choice`` none)."""
    if not request.tools:
        return None
    names = [tool.name for tool in request.tools]
    for name in names:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise errors.InvalidRequest(f"tool name {name!r}: the local model takes 1 to 64 of A-Z a-z 0-9 _ . : -")
    if len(set(names)) < len(names):
        raise errors.InvalidRequest("two tools have the same name")
    choice = request.tool_choice if request.tool_choice is not None else "auto"
    tools = list(request.tools)
    if isinstance(choice, dict):
        function = choice.get("function")
        named = function.get("name") if isinstance(function, dict) else choice.get("name")
        if named not in names:
            raise errors.InvalidRequest(f"tool_choice names {named!r}, which is not among the tools given")
        tools = [tool for tool in tools if tool.name == named]
        choice = "required"
    if choice == "none":
        return None
    if choice not in ("auto", "required"):
        raise errors.InvalidRequest(
            f"tool_choice must be 'auto', 'none', 'required' or {{'name': TOOL}}, not {choice!r}"
        )
    parallel = request.extra.get("parallel_tool_calls", True) is not False
    return Plan(tools, "required" if choice == "required" else "auto", MAX_PARALLEL_CALLS if parallel else 1)


def prepare(
    request: ChatRequest, system_prompt: str, extra: dict[str, Any], vocab: Any
) -> tuple[ChatRequest, Plan | None]:
    """``request`` as the engine runs it (tools in the prompt, the grammar in ``extra``; ``extra``:
    the llama.cpp options to keep; ``vocab``: the model's, to check the grammar with), and its
    plan (``None``: no calls can come back)."""
    found = plan(request)
    messages = render(request.messages, request.tools if found else [], system_prompt)
    if found is None:
        return replace(request, messages=messages, tools=[], tool_choice=None, extra=extra), None
    from llama_cpp.llama_grammar import LlamaGrammar

    required = found.choice == "required"
    gbnf = tools_grammar(found.tools, required=required, max_calls=found.max_calls, answer=request.response_format)
    check_grammar(gbnf, vocab)
    grammar = LlamaGrammar.from_string(gbnf, verbose=False)
    prepared = replace(request, messages=messages, tools=[], tool_choice=None, extra={**extra, "grammar": grammar})
    return prepared, found


def render(messages: list[Message], tools: list[ToolSpec], system_prompt: str) -> list[Message]:
    """The conversation as plain system/user/assistant text turns: ``tools`` (those offered)
    in the system message, earlier calls and their results written out."""
    history = any(m.tool_calls or m.role == "tool" for m in messages)
    if not tools and not history:
        return messages
    names = {call.id: call.name for m in messages for call in m.tool_calls}
    out: list[Message] = []
    for message in messages:
        if message.role == "tool":
            block = _result_block(message, names)
            last = out[-1] if out else None
            if last is not None and last.role == "user" and last.extra.get("tool_results"):
                out[-1] = replace(last, content=f"{last.text}\n{block}")
            else:
                out.append(Message("user", block, extra={"tool_results": True}))
        elif message.role == "assistant" and message.tool_calls:
            blocks = "\n".join(call_block(call) for call in message.tool_calls)
            text = message.text.strip()
            out.append(Message("assistant", f"{text}\n{blocks}" if text else blocks))
        else:
            out.append(message)
    if tools:
        out = _with_instructions(out, tools, system_prompt)
    return [Message(m.role, m.content, name=m.name) for m in out]


def call_block(call: ToolCall) -> str:
    """A call as the model is asked to write one."""
    arguments = call.raw_arguments if _is_json_object(call.raw_arguments) else dumps_str(call.arguments)
    return f'{OPEN}\n{{"name": "{call.name}", "arguments": {arguments}}}\n{CLOSE}'


def _result_block(message: Message, names: dict[str, str]) -> str:
    name = message.name or names.get(message.tool_call_id or "") or "function"
    return f"<tool_response>\n{name}: {message.text}\n</tool_response>"


def instructions(tools: list[ToolSpec]) -> str:
    """What the system message says about the tools: the same whatever ``tool_choice`` (but
    ``none``) and ``parallel_tool_calls`` say, so a prompt is counted exactly without them;
    the grammar holds the model to them."""
    listed = "\n".join(
        dumps_str({"name": t.name, "description": t.description, "parameters": _untitled(t.parameters)}) for t in tools
    )
    example = f'{OPEN}\n{{"name": "FUNCTION", "arguments": {{ARGUMENTS}}}}\n{CLOSE}'
    return (
        f"You can call these functions (JSON schemas of their arguments):\n<tools>\n{listed}\n</tools>\n"
        f"To call a function, answer with its name and arguments within {OPEN}{CLOSE} tags, one block per call:\n"
        f"{example}\nIf no function fits, answer in plain text."
    )


_NAMES = frozenset(("properties", "$defs", "definitions", "patternProperties", "dependentSchemas"))
_DATA = frozenset(("enum", "const", "default", "examples"))


def _untitled(node: Any, names: bool = False) -> Any:
    """A schema without its ``title`` annotations (pydantic gives every field one): every prompt
    token costs as much time as a generated one on a small CPU."""
    if isinstance(node, list):
        return [_untitled(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: _untitled(value) for key, value in node.items()}
    return {
        key: value if key in _DATA else _untitled(value, key in _NAMES)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
    }


def _with_instructions(messages: list[Message], tools: list[ToolSpec], system_prompt: str) -> list[Message]:
    told = instructions(tools)
    for i, message in enumerate(messages):
        if message.role == "system":
            text = message.text.strip()
            return [*messages[:i], Message("system", f"{text}\n\n{told}" if text else told), *messages[i + 1 :]]
    head = f"{system_prompt}\n\n{told}" if system_prompt else told
    return [Message("system", head), *messages]


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict) if text else False
    except ValueError:
        return False


_HEAD = re.compile(r'\s*<tool_call>\n\{"name": "([^"]*)", "arguments": ')


class CallReader:
    """Generated text in, answer text or tool calls out (``feed`` as it streams, then ``close``)."""

    def __init__(self) -> None:
        self.mode: Literal["", "text", "calls"] = ""
        self.buffer = ""
        self.calls: list[tuple[str, str]] = []
        """(name, arguments) of the calls given out so far."""
        self.text = ""
        """All the text read."""
        self.repeated = False
        """A call repeated an earlier one: nothing useful is coming any more (stop generating)."""

    def feed(self, text: str) -> list[StreamEvent]:
        self.text += text
        if self.mode == "text":
            return [TextDelta(text)]
        self.buffer += text
        if self.mode == "":
            if self.buffer.startswith(OPEN):
                self.mode = "calls"
            elif not OPEN.startswith(self.buffer):
                self.mode = "text"
                text, self.buffer = self.buffer, ""
                return [TextDelta(text)]
            else:
                return []
        return self._complete_calls()

    def _complete_calls(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        while True:
            head = _HEAD.match(self.buffer)
            end = self.buffer.find(f"\n{CLOSE}")
            if head is None or end < 0:
                return events
            arguments = self.buffer[head.end() : end].rstrip()[:-1].rstrip()  # less the closing brace
            self.buffer = self.buffer[end + len(CLOSE) + 1 :]
            events.extend(self._call(head.group(1), arguments))

    def _call(self, name: str, arguments: str) -> list[StreamEvent]:
        try:
            key = dumps_str(json.loads(arguments))
        except ValueError:
            key = arguments
        if (name, key) in self.calls:
            self.repeated = True
            return []
        self.calls.append((name, key))
        return [ToolCallDelta(len(self.calls) - 1, id=f"call_{new_id()}", name=name, arguments=arguments)]

    def close(self) -> list[StreamEvent]:
        """What is left once generation ended: an undecided start is text; a cut call counts
        only when it is the first."""
        if self.mode == "" and self.buffer:
            self.mode = "text"
            return [TextDelta(self.buffer)]
        head = _HEAD.match(self.buffer) if self.mode == "calls" else None
        if head is None or self.calls:
            return []
        return self._call(head.group(1), self.buffer[head.end() :])
