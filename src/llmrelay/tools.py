"""Tools: specs from JSON schemas, pydantic models or typed Python functions, and
a loop that runs the model's tool calls until it gives a final answer."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, get_type_hints

from . import errors
from ._json import dumps_str
from .types import ChatResponse, Message, ToolCall, ToolSpec

if TYPE_CHECKING:
    from pydantic import BaseModel


class ToolLoopExceeded(errors.LLMError):
    """The model still asked for tools after ``max_rounds`` rounds; ``last`` is its last answer."""

    code = "tool_loop_exceeded"

    def __init__(self, message: str, *, last: ChatResponse, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.last = last


class Tool:
    """A Python function the model may call: its spec plus how to run it."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None) -> None:
        self.fn = fn
        self.args_model = _args_model(fn)
        schema = _clean_schema(self.args_model.model_json_schema())
        self.spec = ToolSpec(
            name=name or fn.__name__,
            description=description if description is not None else inspect.getdoc(fn) or "",
            parameters=schema,
        )

    @property
    def name(self) -> str:
        return self.spec.name

    async def run(self, arguments: dict[str, Any]) -> Any:
        values = self.args_model.model_validate(arguments)
        kwargs = {k: getattr(values, k) for k in type(values).model_fields}
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(**kwargs)
        result = await asyncio.to_thread(self.fn, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result


def _args_model(fn: Callable[..., Any]) -> type[BaseModel]:
    from pydantic import create_model

    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise errors.InvalidRequest(f"tool {fn.__name__!r}: *args/**kwargs cannot be described to a model")
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    model: type[BaseModel] = create_model(f"{fn.__name__}_args", **fields)
    return model


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's schema without the auto-generated titles (noise for a model)."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


def tool_spec(obj: Any) -> ToolSpec:
    """A ``ToolSpec`` from a ``ToolSpec``, a ``Tool``, a function, a pydantic model
    class, or a dict (OpenAI ``{"type": "function", "function": {...}}``, or
    ``{"name", "description", "parameters" | "input_schema"}``)."""
    if isinstance(obj, ToolSpec):
        return obj
    if isinstance(obj, Tool):
        return obj.spec
    if isinstance(obj, type) and hasattr(obj, "model_json_schema"):
        return ToolSpec(
            name=obj.__name__, description=inspect.getdoc(obj) or "", parameters=_clean_schema(obj.model_json_schema())
        )
    if isinstance(obj, dict):
        spec = obj.get("function") if obj.get("type") == "function" else obj
        if not isinstance(spec, dict) or not spec.get("name") or not isinstance(spec["name"], str):
            raise errors.InvalidRequest("a tool given as a dict needs a string 'name' (or 'function': {'name': ...})")
        params = spec.get("parameters") or spec.get("input_schema") or {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise errors.InvalidRequest(f"tool {spec['name']!r}: its parameters must be a JSON schema object")
        strict = spec.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise errors.InvalidRequest(f"tool {spec['name']!r}: 'strict' must be true or false")
        description = spec.get("description")
        if description is not None and not isinstance(description, str):
            raise errors.InvalidRequest(f"tool {spec['name']!r}: 'description' must be a string")
        return ToolSpec(spec["name"], description or "", params, strict)
    if callable(obj):
        return Tool(obj).spec
    raise errors.InvalidRequest(f"cannot make a tool from {type(obj).__name__}")


def to_tools(tools: Iterable[Any] | None) -> list[ToolSpec]:
    if tools is None:
        return []
    if isinstance(tools, str | bytes | dict) or not isinstance(tools, Iterable):
        raise errors.InvalidRequest("tools must be a list of tools")
    return [tool_spec(t) for t in tools]


def runnable_tools(tools: Sequence[Any]) -> dict[str, Tool]:
    out: dict[str, Tool] = {}
    for t in tools:
        tool = t if isinstance(t, Tool) else Tool(t) if callable(t) and not isinstance(t, type) else None
        if tool is None:
            raise errors.InvalidRequest("run_tools needs functions (or Tool objects) it can call")
        out[tool.name] = tool
    return out


async def call_tool(tools: dict[str, Tool], call: ToolCall) -> Message:
    """Run one call and wrap its result (or its error, for the model to see) as a tool message."""
    tool = tools.get(call.name)
    if tool is None:
        content = f"error: no tool named {call.name!r}; available: {', '.join(tools)}"
    else:
        try:
            result = await tool.run(call.arguments)
        except Exception as exc:  # the model sees the failure and may try again
            content = f"error: {type(exc).__name__}: {exc}"
        else:  # it ran: whatever its result, never report it as failed (it may have side effects)
            content = result if isinstance(result, str) else _to_text(result)
    return Message(role="tool", content=content, tool_call_id=call.id, name=call.name)


def _to_text(value: Any) -> str:
    try:
        return dumps_str(value)
    except TypeError:  # not JSON-serialisable (a set, an object): its str() is the best we have
        return str(value)


async def tool_loop(
    chat: Callable[[list[Message]], Awaitable[ChatResponse]],
    messages: list[Message],
    tools: dict[str, Tool],
    max_rounds: int,
) -> ChatResponse:
    """Ask, run the asked tools, answer them, repeat; at most ``max_rounds`` rounds of tools."""
    if type(max_rounds) is not int or max_rounds < 0:
        raise errors.InvalidRequest(f"max_rounds must be an integer >= 0, not {max_rounds!r}")
    history = list(messages)
    for _ in range(max_rounds + 1):
        response = await chat(history)
        if not response.tool_calls:
            response.extra["messages"] = [*history, response.message]
            return response
        history.append(response.message)
        results = await asyncio.gather(*(call_tool(tools, c) for c in response.tool_calls))
        history.extend(results)
    raise ToolLoopExceeded(
        f"the model still asked for tools after {max_rounds} rounds", last=response, provider=response.provider
    )
