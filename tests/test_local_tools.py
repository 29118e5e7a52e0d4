"""Tool calling on the local chat model (SmolLM2 through llama-cpp-python): a grammar holds
it to valid calls of the functions offered. Real generation, no network."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from llmrelay import AsyncClient, errors
from llmrelay.providers.local.schema import fit_schema
from llmrelay.providers.local.tools import CallReader, render
from llmrelay.types import (
    ChatRequest,
    ChatResponse,
    Finish,
    Message,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    UsageEvent,
)
from localmodel import NEEDS_MODEL, free_the_model, local  # noqa: F401 (the fixture is used by name)

pytestmark = NEEDS_MODEL

# ---- the functions offered ---------------------------------------------------------------------


class Address(BaseModel):
    street: str = Field(max_length=16)
    city: str = Field(max_length=12)
    country: Literal["FR", "DE", "IT", "NO"]


class Order(BaseModel):
    """A pydantic model's schema: $defs, $ref, anyOf with null, defaults, titles."""

    item: str = Field(max_length=12)
    quantity: int
    ship_to: Address
    gift: bool = False
    note: str | None = Field(default=None, max_length=10)


WEATHER = ToolSpec(
    "get_weather",
    "Current weather in a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "unit": {"type": "string", "enum": ["C", "F"]},
            "days": {"type": "integer"},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
)
EVENT = ToolSpec(
    "create_event",
    "Put an event in the calendar",
    {
        "type": "object",
        "properties": {
            "when": {
                "type": "object",
                "properties": {"date": {"type": "string", "format": "date"}, "hour": {"type": "integer"}},
                "required": ["date", "hour"],
            },
            "attendees": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 8}, "role": {"enum": ["host", "guest"]}},
                    "required": ["name", "role"],
                },
                "minItems": 1,
                "maxItems": 2,
            },
            "priority": {"type": "string", "enum": ["low", "normal", "high"]},
        },
        "required": ["when", "attendees", "priority"],
    },
)
TAGS = ToolSpec(
    "tag_items",
    "Tag items with labels and scores",
    {
        "type": "object",
        "properties": {
            "labels": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 2},
            "scores": {"type": "array", "items": {"type": "number"}, "maxItems": 2},
            "pair": {"type": "array", "prefixItems": [{"type": "string", "maxLength": 6}, {"type": "integer"}]},
            "flag": {"type": ["boolean", "null"]},
        },
        "required": ["labels", "scores", "pair", "flag"],
    },
)
ORDER = ToolSpec("place_order", "Order an item and ship it", Order.model_json_schema())
ADD = ToolSpec(
    "add",
    "Add two integers",
    {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
)
TOOLS = [WEATHER, EVENT, TAGS, ORDER, ADD]
BY_NAME = {tool.name: tool for tool in TOOLS}

PROMPTS = {
    "get_weather": ["What is the weather in Rome?", "Is it cold in Oslo this week?", "Weather for Paris in F"],
    "create_event": ["Meeting with Ann tomorrow at 10", "Lunch with Bob and Eve on 2025-03-01", "Team sync at 3pm"],
    "tag_items": ["Tag this photo: beach, sun", "Label the report as urgent", "Score apples 0.9 and pears 0.4"],
    "place_order": ["Send two books to 5 Main St, Paris", "Order a lamp for Berlin", "Buy 3 pens, ship to Rome"],
    "add": ["What is 2 plus 3?", "Add 40 and 2", "Sum of 7 and 12"],
}


def ask(text: str, tools: list[ToolSpec], **kw: Any) -> ChatRequest:
    kw.setdefault("temperature", 0)
    kw.setdefault("seed", 7)
    kw.setdefault("max_tokens", 120)
    return ChatRequest("smollm2", [Message("user", text)], tools=tools, **kw)


def assert_valid(call: ToolCall) -> None:
    """A call of an offered function, its arguments JSON text matching that function's schema."""
    assert call.id.startswith("call_") and len(call.id) > 10
    assert json.loads(call.raw_arguments) == call.arguments
    jsonschema.validate(call.arguments, BY_NAME[call.name].parameters)


# ---- validity ----------------------------------------------------------------------------------


async def test_grammar_calls_are_valid_100_times_out_of_100() -> None:
    """Each function alone 18 times, then three together 10 times (the same prompt runs on,
    so llama.cpp reuses it): 3 prompts each, seeds, temperatures 0 to 0.8, required or
    named, parallel (up to 4 calls) or not. Every answer is complete calls matching their schemas."""
    temperatures = itertools.cycle([0.0, 0.4, 0.8, 0.6, 0.2])
    runs: list[tuple[ToolSpec, list[ToolSpec], int]] = [(t, [t], i) for t in TOOLS for i in range(18)]
    mixed = [WEATHER, TAGS, ADD]
    runs += [(mixed[i % 3], mixed, i) for i in range(10)]
    valid = 0
    tokens: list[int] = []
    started = time.perf_counter()
    for tool, offered, i in runs:
        prompt = PROMPTS[tool.name][i % 3]
        choice: str | dict[str, str] = {"name": tool.name} if i % 2 or len(offered) > 1 else "required"
        parallel = i % 6 == 0 and tool in (WEATHER, TAGS, ADD)  # room for 4 calls of the small ones
        extra = {} if parallel else {"parallel_tool_calls": False}
        temperature = next(temperatures)
        request = ask(prompt, offered, tool_choice=choice, temperature=temperature, seed=i, extra=extra)
        request.max_tokens = 240 if parallel else 160
        response = await local().chat(request)
        assert response.finish_reason == "tool_calls", (prompt, response)
        assert response.content == "" and 1 <= len(response.tool_calls) <= (1 if extra else 4)
        for call in response.tool_calls:
            assert call.name == tool.name
            assert_valid(call)
        assert response.usage.completion_tokens > 0
        tokens.append(response.usage.completion_tokens)
        valid += 1
    assert valid == 100
    print(f"100 valid answers in {time.perf_counter() - started:.1f} s, {sum(tokens) / 100:.1f} tokens each")


async def test_prompt_count_is_exact_and_usage_counted() -> None:
    request = ask("What is the weather in Rome?", [WEATHER, ADD], tool_choice="required")
    counted = local().count_prompt("smollm2", request.messages, request.tools)
    response = await local().chat(request)
    assert response.usage.prompt_tokens == counted
    auto = await local().chat(ask("What is the weather in Rome?", [WEATHER, ADD], max_tokens=8))
    assert auto.usage.prompt_tokens == counted  # the prompt says the same whatever tool_choice
    bare = local().count_prompt("smollm2", request.messages, None)
    none = await local().chat(ask("What is the weather in Rome?", [WEATHER, ADD], tool_choice="none", max_tokens=8))
    assert none.usage.prompt_tokens == bare < counted  # none: the tools are left out of the prompt
    assert local().model_info("smollm2").supports_tools


# ---- tool_choice -------------------------------------------------------------------------------

FEW_SHOT = [
    Message("user", "What is the weather in Paris?"),
    Message("assistant", None, tool_calls=[ToolCall("call_1", "get_weather", {"city": "Paris", "unit": "C"})]),
    Message("tool", '{"temp": 20}', tool_call_id="call_1"),
    Message("assistant", "It is 20 C in Paris."),
]


async def test_auto_answers_with_text_or_with_a_call() -> None:
    texts: list[ChatResponse] = []
    calls: list[ChatResponse] = []
    for question, seed in (("Tell me a joke.", 1), ("What is 2+3?", 2)):
        texts.append(await local().chat(ask(question, [WEATHER, ADD], seed=seed, temperature=0.5, max_tokens=40)))
    for city, seed in (("Rome", 0), ("Oslo", 3)):
        history = [*FEW_SHOT, Message("user", f"What is the weather in {city}?")]
        request = ChatRequest("smollm2", history, tools=[WEATHER, ADD], temperature=0.7, seed=seed, max_tokens=60)
        calls.append(await local().chat(request))
    for answer in texts:
        assert answer.content and not answer.tool_calls and answer.finish_reason in ("stop", "length")
        assert not answer.content.startswith(("<", " "))
    for answer in calls:
        assert answer.finish_reason == "tool_calls" and answer.content == ""
        assert len(answer.tool_calls) == 1 and answer.tool_calls[0].name == "get_weather"
        assert_valid(answer.tool_calls[0])


async def test_auto_with_a_response_format_answers_json_or_calls() -> None:
    """The answer that is not a call is JSON of the response format."""
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    fmt = ResponseFormat(schema=schema)
    kinds = set()
    for seed, question in enumerate(["What is 2+3?", "Answer in JSON: how many legs has a cat?"]):
        answer = await local().chat(ask(question, [ADD], response_format=fmt, max_tokens=60, seed=seed))
        if answer.tool_calls:
            assert answer.finish_reason == "tool_calls" and answer.content == ""
            assert_valid(answer.tool_calls[0])
            kinds.add("call")
        else:
            jsonschema.validate(json.loads(answer.content), schema)
            kinds.add("json")
    assert kinds


async def test_none_never_calls() -> None:
    for seed in range(3):
        answer = await local().chat(ask("What is the weather in Rome?", [WEATHER], tool_choice="none", seed=seed))
        assert not answer.tool_calls and answer.content and answer.finish_reason in ("stop", "length")
        assert "<tool_call>" not in answer.content


async def test_a_named_function_is_the_one_called() -> None:
    for seed, question in enumerate(["What is the weather in Rome?", "Tag this: red, blue", "Hello!"]):
        answer = await local().chat(ask(question, [WEATHER, TAGS, ADD], tool_choice={"name": "add"}, seed=seed))
        assert [c.name for c in answer.tool_calls] == ["add"] * len(answer.tool_calls) and answer.tool_calls
        for call in answer.tool_calls:
            assert_valid(call)


async def test_parallel_calls_are_one_to_four_distinct_valid_calls() -> None:
    counts = []
    for seed in range(3):
        request = ask("Weather in Paris and in Oslo?", [WEATHER, ADD], tool_choice="required", seed=seed)
        request.temperature = 0.6
        answer = await local().chat(request)
        assert 1 <= len(answer.tool_calls) <= 4 and answer.finish_reason == "tool_calls"
        for call in answer.tool_calls:
            assert_valid(call)
        assert len({(c.name, json.dumps(c.arguments, sort_keys=True)) for c in answer.tool_calls}) == len(
            answer.tool_calls
        )
        assert len({c.id for c in answer.tool_calls}) == len(answer.tool_calls)
        counts.append(len(answer.tool_calls))
    assert max(counts) > 1  # several calls do come
    one = await local().chat(
        ask("Weather in Paris and in Oslo?", [WEATHER], tool_choice="required", extra={"parallel_tool_calls": False})
    )
    assert len(one.tool_calls) == 1


async def test_streaming_gives_the_same_calls_as_chat() -> None:
    request = ask("Weather in Paris and in Oslo?", [WEATHER, ADD], tool_choice="required")
    chat = await local().chat(request)
    events: list[StreamEvent] = [e async for e in local().stream(request)]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ToolCallDelta"] * (len(kinds) - 2) + ["UsageEvent", "Finish"]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert all(d.id and d.name for d in deltas) and [d.index for d in deltas] == list(range(len(deltas)))
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "tool_calls"
    assert [(c.name, c.arguments) for c in finish.response.tool_calls] == [
        (c.name, c.arguments) for c in chat.tool_calls
    ]
    assert isinstance(events[-2], UsageEvent) and events[-2].usage == chat.usage == finish.response.usage


async def test_a_call_cut_by_max_tokens_says_length() -> None:
    answer = await local().chat(ask("Order a lamp for Berlin", [ORDER], tool_choice="required", max_tokens=12))
    assert answer.finish_reason == "length"
    assert len(answer.tool_calls) <= 1
    for call in answer.tool_calls:
        assert call.name == "place_order" and call.raw_arguments  # its arguments as far as they came


# ---- history and the tool loop -------------------------------------------------------------------


def test_history_is_written_into_the_prompt() -> None:
    history = [
        *FEW_SHOT[:2],
        Message("tool", '{"temp": 20}', tool_call_id="call_1"),
        Message("tool", "sunny", name="get_weather"),
        Message("user", "And Rome?"),
    ]
    rendered = render(history, [WEATHER], "Be brief.")
    assert [m.role for m in rendered] == ["system", "user", "assistant", "user", "user"]
    assert rendered[0].text.startswith("Be brief.\n\nYou can call these functions")
    assert '"name":"get_weather"' in rendered[0].text
    assert (
        rendered[2].text
        == '<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris","unit":"C"}}\n</tool_call>'
    )
    assert rendered[3].text == (
        '<tool_response>\nget_weather: {"temp": 20}\n</tool_response>\n'
        "<tool_response>\nget_weather: sunny\n</tool_response>"
    )
    own = render([Message("system", "Answer in French."), Message("user", "Hi")], [ADD], "unused")
    assert own[0].text.startswith("Answer in French.\n\nYou can call") and len(own) == 2
    assert render([Message("user", "Hi")], [], "x") == [Message("user", "Hi")]


async def test_run_tools_loop_on_the_local_model() -> None:
    seen: list[str] = []

    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, Any]:
        """Current weather in a city."""
        seen.append(city)
        return {"city": city, "temp": 21, "unit": unit}

    question = [*FEW_SHOT, Message("user", "What is the weather in Rome?")]
    async with AsyncClient(env={}) as client:  # with no key: the local model (loaded again: 0.2 s)
        answer = await client.run_tools(
            "local/smollm2", question, [get_weather], max_rounds=3, temperature=0.7, seed=0, max_tokens=60
        )
    assert seen and answer.content and not answer.tool_calls
    messages = answer.extra["messages"]
    assert any(m.role == "tool" for m in messages) and messages[-1].role == "assistant"


# ---- schemas the grammar cannot follow -------------------------------------------------------------

NODE = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"type": "object", "properties": {"n": {"$ref": "#/$defs/Node"}}, "$defs": {"Node": NODE}}, "recursive"),
        ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "'not' is not supported"),
        ({"type": "object", "properties": {"x": {"if": {}, "then": {}}}}, "'if' is not supported"),
        ({"type": "object", "patternProperties": {"^a": {}}}, "'patternProperties' is not supported"),
        ({"type": "object", "properties": {"x": {"$ref": "https://x.org/s.json"}}}, "only local references"),
        ({"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}}, "points at nothing"),
        ({"type": "object", "properties": {}, "required": ["x"]}, "'x' is required but no property defines it"),
        ({"type": "object", "properties": {"x": {"type": "decimal"}}}, "unknown type 'decimal'"),
        ({"type": "array", "items": {"type": "string"}}, "the arguments must be an object"),
        ({"type": "object", "properties": {"x": False}}, "is not a schema"),
        ({"type": "object", "properties": {"x": {"type": "array", "minItems": 3, "maxItems": 1}}}, "no value"),
    ],
)
async def test_a_schema_the_grammar_cannot_follow_is_a_clear_error(parameters: dict[str, Any], message: str) -> None:
    request = ask("Hi", [ToolSpec("f", "", parameters)], tool_choice="required")
    with pytest.raises(
        errors.InvalidRequest, match="the local model cannot follow the JSON schema of tool 'f'"
    ) as info:
        await local().chat(request)
    assert message in info.value.message


@pytest.mark.parametrize(
    ("tools", "choice", "message"),
    [
        ([ToolSpec("bad name", "")], "auto", "tool name 'bad name'"),
        ([WEATHER, WEATHER], "auto", "same name"),
        ([WEATHER], {"name": "add"}, "tool_choice names 'add'"),
        ([WEATHER], "sometimes", "tool_choice must be"),
    ],
)
async def test_bad_tools_are_refused_before_generation(tools: list[ToolSpec], choice: Any, message: str) -> None:
    with pytest.raises(errors.InvalidRequest, match=message):
        await local().chat(ask("Hi", tools, tool_choice=choice))
    if choice == "auto":  # counting refuses the same
        with pytest.raises(errors.InvalidRequest, match=message):
            local().count_prompt("smollm2", [Message("user", "Hi")], tools)


def test_constraints_the_grammar_does_not_enforce_are_loosened() -> None:
    schema = {
        "type": "object",
        "title": "T",
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 9, "multipleOf": 2},
            "s": {"type": "string", "pattern": "^[a-z]+$", "format": "email"},
            "d": {"type": "string", "format": "date"},
            "u": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
            "t": {"type": ["string", "null"], "maxLength": 5},
            "a": {"allOf": [{"$ref": "#/$defs/A"}], "description": "an A"},
        },
        "$defs": {"A": {"type": "object", "properties": {"x": {"const": 1}}, "required": ["x"]}},
    }
    fitted = fit_schema(schema, "tool 'f'")
    assert fitted["properties"]["n"] == {"type": "integer"}
    assert fitted["properties"]["s"] == {"type": "string"}
    assert fitted["properties"]["d"] == {"type": "string", "format": "date"}
    assert fitted["properties"]["u"] == {"type": "array", "items": {"type": "integer"}}
    branches = fitted["properties"]["t"]["anyOf"]  # one branch per type, each with the other keywords
    assert [b["type"] for b in branches] == ["string", "null"] and branches[0]["maxLength"] == 5
    assert fitted["properties"]["a"] == {"properties": {"x": {"const": 1}}, "required": ["x"], "type": "object"}


async def test_other_fields_of_a_gateway_client_do_not_reach_llama_cpp() -> None:
    extra = {"parallel_tool_calls": True, "frequency_penalty_of_another_api": 1, "top_k": 1}
    answer = await local().chat(ask("What is 2+3?", [], extra=extra, max_tokens=10))
    assert answer.content


# ---- reading the answer back ---------------------------------------------------------------------


def _read(text: str, step: int) -> list[StreamEvent]:
    reader = CallReader()
    events = [e for i in range(0, len(text), step) for e in reader.feed(text[i : i + step])]
    return events + reader.close()


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_the_reader_splits_text_from_calls_in_any_chunks(step: int) -> None:
    call = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2} }\n</tool_call>'
    again = call.replace('"b": 2} ', '"b": 2}')  # the same call: dropped
    other = call.replace('"a": 1', '"a": 5')
    events = _read(f"{call}\n{again}\n{other}", step)
    assert [(e.index, e.name, e.arguments) for e in events if isinstance(e, ToolCallDelta)] == [
        (0, "add", '{"a": 1, "b": 2}'),
        (1, "add", '{"a": 5, "b": 2}'),
    ]
    assert len(events) == 2
    text = "".join(e.text for e in _read("Hello <tool_call> world", step) if isinstance(e, TextDelta))
    assert text == "Hello <tool_call> world"
    assert "".join(e.text for e in _read("<tool", step) if isinstance(e, TextDelta)) == "<tool"  # cut: text
    cut = _read('<tool_call>\n{"name": "add", "arguments": {"a": 1', step)
    assert [(e.name, e.arguments) for e in cut if isinstance(e, ToolCallDelta)] == [("add", '{"a": 1')]
    assert not [e for e in _read(f'{call}\n<tool_call>\n{{"name": "add", "arguments": {{"a', step) if
                isinstance(e, ToolCallDelta) and e.index > 0]  # fmt: skip
