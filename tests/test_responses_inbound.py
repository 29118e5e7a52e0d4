"""The Responses API inbound codec: wire requests -> canonical requests (every field,
and every refusal naming its field path), answers and streams -> what the official
SDK parses, and round trips through the outbound Responses codec and decoder."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent
from pydantic import TypeAdapter

from llmrelay import errors
from llmrelay._assemble import StreamAssembler
from llmrelay._sse import SSEDecoder
from llmrelay.providers.openai_responses import codec
from llmrelay.providers.openai_responses.inbound import (
    StreamEncoder,
    error_body,
    items_from_input,
    request_from_wire,
    response_to_wire,
)
from llmrelay.providers.openai_responses.stream import ChatStreamDecoder
from llmrelay.structured import strict_schema
from llmrelay.types import (
    ChatRequest,
    ChatResponse,
    ErrorEvent,
    Finish,
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
    UsageEvent,
)

STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
ITEM: TypeAdapter[Any] = TypeAdapter(ResponseItem)
PNG = "iVBORw0KGgo="
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": "Hi", **fields}


def user(*content: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": list(content)}


def call(call_id: str = "call_1", name: str = "weather", arguments: str = '{"city":"Paris"}') -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def answer(**kw: Any) -> ChatResponse:
    fields: dict[str, Any] = {
        "content": "Hello!", "finish_reason": "stop", "model": "gpt-4o-mini-2024-07-18", "provider": "openai",
        "usage": Usage(20, 12, cached_tokens=8, reasoning_tokens=4),
    }  # fmt: skip
    fields.update(kw)
    return ChatResponse(**fields)


# ---------------------------------------------------------------- request fields


def test_string_input_is_one_user_message() -> None:
    request = request_from_wire(body())
    assert request.model == "gpt-4o-mini"
    assert [(m.role, m.content) for m in request.messages] == [("user", "Hi")]
    assert request.extra == {} and request.tools == [] and request.tool_choice is None


def test_instructions_then_history_then_input() -> None:
    history = [user({"type": "input_text", "text": "before"})]
    request = request_from_wire(body(instructions="Be brief."), history)
    assert [(m.role, m.text) for m in request.messages] == [("system", "Be brief."), ("user", "before"), ("user", "Hi")]


def test_message_items_every_role_and_part() -> None:
    items = [
        {"role": "developer", "content": "Rules."},  # an easy message: no type
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "More rules."}]},
        user(
            {"type": "input_text", "text": "Look:"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
        ),
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "A cat.", "annotations": []}],
        },
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        {"role": "user", "content": "Thanks"},
    ]
    messages = request_from_wire(body(input=items)).messages
    assert [m.role for m in messages] == ["system", "system", "user", "assistant", "assistant", "user"]
    assert messages[0].content == "Rules." and messages[1].text == "More rules."
    text, url, data = messages[2].parts
    assert text == TextPart("Look:")
    assert url == ImagePart(url="https://example.com/a.png", detail="low")
    assert data == ImagePart(data=PNG, media_type="image/png", detail="auto")
    assert messages[3].text == "A cat." and messages[4].text == "No." and messages[5].content == "Thanks"


def test_function_calls_join_the_assistant_turn_and_outputs_answer_them() -> None:
    items = [
        user({"type": "input_text", "text": "Weather in Paris and Rome?"}),
        {"role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        call("call_1"),
        {**call("call_2", arguments='{"city":"Rome"}'), "id": "fc_2", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "21C"}]},
    ]
    messages = request_from_wire(body(input=items)).messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool"]
    turn = messages[1]
    assert turn.text == "Checking."
    assert [(c.id, c.name, c.arguments, c.raw_arguments) for c in turn.tool_calls] == [
        ("call_1", "weather", {"city": "Paris"}, '{"city":"Paris"}'),
        ("call_2", "weather", {"city": "Rome"}, '{"city":"Rome"}'),
    ]
    assert (messages[2].tool_call_id, messages[2].content) == ("call_1", "18C")
    assert (messages[3].tool_call_id, messages[3].parts) == ("call_2", [TextPart("21C")])


def test_a_function_call_alone_is_an_assistant_turn_and_reasoning_is_skipped() -> None:
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hmm"}]}
    image = {"type": "input_image", "image_url": "https://example.com/map.png"}
    output = {"type": "function_call_output", "call_id": "call_1", "output": [image]}
    items = [user({"type": "input_text", "text": "Hi"}), reasoning, call(), output]
    messages = request_from_wire(body(input=items)).messages
    assert [(m.role, m.content) for m in messages[:2]] == [("user", [TextPart("Hi")]), ("assistant", None)]
    assert messages[1].tool_calls[0].id == "call_1"
    assert messages[2].parts == [ImagePart(url="https://example.com/map.png")]


def test_arguments_that_are_not_a_json_object_are_kept_as_sent() -> None:
    """OpenAI takes any text (an answer cut by max_output_tokens is stored so)."""
    items = [user({"type": "input_text", "text": "Hi"}), call(arguments='{"city": "Par')]
    [tool_call] = request_from_wire(body(input=items)).messages[1].tool_calls
    assert (tool_call.arguments, tool_call.raw_arguments) == ({}, '{"city": "Par')


def test_function_tools() -> None:
    tools = [
        {"type": "function", "name": "weather", "description": "Weather now.", "parameters": WEATHER, "strict": True},
        {"type": "function", "name": "ping", "parameters": None, "strict": None},
    ]
    request = request_from_wire(body(tools=tools))
    assert request.tools == [
        ToolSpec("weather", "Weather now.", WEATHER, True),
        ToolSpec("ping", "", {"type": "object", "properties": {}}, None),
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", "auto"), ("none", "none"), ("required", "required"), (None, None),
     ({"type": "function", "name": "weather"}, {"name": "weather"})],
)  # fmt: skip
def test_tool_choice(choice: Any, expected: Any) -> None:
    assert request_from_wire(body(tool_choice=choice)).tool_choice == expected


def test_text_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer", "default": 1}}}
    fmt = {"type": "json_schema", "name": "thing", "schema": schema, "strict": True, "description": "A thing."}
    strict = request_from_wire(body(text={"format": fmt})).response_format
    assert strict == ResponseFormat("json_schema", schema=strict_schema(schema), name="thing", strict=True)
    loose = request_from_wire(body(text={"format": {**fmt, "strict": None}})).response_format
    assert loose == ResponseFormat("json_schema", schema=schema, name="thing", strict=False)
    assert request_from_wire(body(text={"format": {"type": "json_object"}})).response_format == ResponseFormat(
        "json_object"
    )
    assert request_from_wire(body(text={"format": {"type": "text"}, "verbosity": "low"})).response_format == (
        ResponseFormat("text")
    )
    assert request_from_wire(body(text={"verbosity": "high"})).response_format is None


def test_sampling_fields() -> None:
    request = request_from_wire(body(max_output_tokens=300, temperature=0.5, top_p=1, user="u-1"))
    assert (request.max_tokens, request.temperature, request.top_p, request.user) == (300, 0.5, 1, "u-1")


def test_reasoning_and_parallel_tool_calls_travel_in_extra() -> None:
    request = request_from_wire(body(reasoning={"effort": "low", "summary": "auto"}, parallel_tool_calls=False))
    assert request.extra == {"reasoning": {"effort": "low", "summary": "auto"}, "parallel_tool_calls": False}
    quiet = request_from_wire(body(reasoning={"effort": None, "summary": None}, parallel_tool_calls=True))
    assert quiet.extra == {}  # nothing a provider would not assume anyway
    upstream = codec.encode_chat(request, stream=False)
    assert upstream["reasoning"] == {"effort": "low", "summary": "auto"} and upstream["parallel_tool_calls"] is False


def test_gateway_fields_are_checked_and_never_sent_upstream() -> None:
    fields = {
        "store": True, "previous_response_id": "resp_1", "metadata": {"team": "a"}, "truncation": "auto",
        "include": ["reasoning.encrypted_content"], "stream": True, "stream_options": {"include_obfuscation": False},
        "background": False,
    }  # fmt: skip
    assert request_from_wire(body(**fields)).extra == {}


def test_unknown_fields_pass_through_extra() -> None:
    request = request_from_wire(body(service_tier="flex", prompt_cache_key="k1"))
    assert request.extra == {"service_tier": "flex", "prompt_cache_key": "k1"}
    upstream = codec.encode_chat(request, stream=False)
    assert (upstream["service_tier"], upstream["prompt_cache_key"]) == ("flex", "k1")


def test_a_continued_conversation_reads_its_stored_items() -> None:
    first = body(input="Weather in Paris?", tools=[{"type": "function", "name": "weather", "parameters": WEATHER}])
    stored = items_from_input(first)
    tool_call = ToolCall("call_9", "weather", {"city": "Paris"}, '{"city":"Paris"}')
    called = answer(content="", tool_calls=[tool_call], finish_reason="tool_calls", reasoning="Need the tool.")
    said = response_to_wire(called, response_id="resp_1", created_at=1, request=first)
    history = stored + said["output"]
    second = body(input=[{"type": "function_call_output", "call_id": "call_9", "output": "18C"}],
                  previous_response_id="resp_1", instructions="Be brief.")  # fmt: skip
    messages = request_from_wire(second, history).messages
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2].tool_calls[0].arguments == {"city": "Paris"} and messages[3].text == "18C"


# ---------------------------------------------------------------- refusals, each naming its field


def _with_input(*items: Any) -> dict[str, Any]:
    return body(input=[user({"type": "input_text", "text": "Hi"}), *items])


BAD: list[tuple[Any, str]] = [
    ([1, 2], "the request body must be a JSON object"),
    ({"input": "Hi"}, "model: Field required"),
    (body(model=3), "model: must be a string"),
    (body(model=""), "model: must not be empty"),
    (body(input=5), "input: must be a string or a list"),
    (body(input=""), "input: must not be empty"),
    ({"model": "m"}, "input: Field required"),
    (body(input=[]), "input: Field required"),
    (body(input=[{"role": "system", "content": "only rules"}]), "input: Field required"),
    (body(input=["Hi"]), "input[0]: must be an input item"),
    (_with_input({"type": "item_reference", "id": "msg_1"}), "input[1].type: item type 'item_reference' is not"),
    (_with_input({"type": "computer_call_output", "call_id": "c"}), "input[1].type: item type 'computer_call_output'"),
    (_with_input({"type": ["message"]}), "input[1].type: item type ['message'] is not supported"),
    (body(input=[{"content": "Hi"}]), "input[0].type: Field required"),
    (body(input=[{"role": "tool", "content": "Hi"}]), "input[0].role: must be 'user', 'assistant'"),
    (body(input=[{"type": "message", "content": "Hi"}]), "input[0].role: must be"),
    (body(input=[{"role": "user"}]), "input[0].content: Field required"),
    (body(input=[{"role": "user", "content": {"text": "Hi"}}]), "input[0].content: must be a string or a list"),
    (body(input=[user(5)]), "input[0].content[0]: must be a content part"),
    (body(input=[user({"text": "Hi"})]), "input[0].content[0].type: Field required"),
    (
        _with_input(user({"type": "input_text", "text": "b"}), user({"type": "input_audio", "input_audio": {}})),
        "input[2].content[0].type: content part type 'input_audio' is not supported",
    ),
    (body(input=[user({"type": "input_text"})]), "input[0].content[0].text: Field required"),
    (body(input=[user({"type": "input_text", "text": 1})]), "input[0].content[0].text: must be a string, not a number"),
    (
        body(input=[{"role": "assistant", "content": [{"type": "output_text", "text": None}]}]),
        "input[0].content[0].text: Field required",
    ),
    (body(input=[user({"type": "input_image", "detail": "auto"})]), "input[0].content[0].image_url: Field required"),
    (body(input=[user({"type": "input_image", "file_id": "file-1"})]), "input[0].content[0].file_id: file ids are"),
    (body(input=[user({"type": "input_image", "image_url": "ftp://x/a.png"})]), "input[0].content[0].image_url: image"),
    (
        body(input=[user({"type": "input_image", "image_url": "data:image/png,abc"})]),
        "input[0].content[0].image_url: a data: URL image must be base64",
    ),
    (
        body(input=[user({"type": "input_image", "image_url": "https://x/a.png", "detail": "max"})]),
        "input[0].content[0].detail: must be",
    ),
    (body(input=[user({"type": "input_file", "file_id": "file-1"})]), "input[0].content[0]: 'input_file' parts"),
    (
        _with_input({"role": "assistant", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]}),
        "input[1].content[0]: assistant messages take text parts only",
    ),
    (
        body(input=[{"role": "developer", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]}]),
        "input[0].content[0]: system messages take text parts only",
    ),
    (_with_input({"type": "function_call", "name": "f", "arguments": "{}"}), "input[1].call_id: Field required"),
    (_with_input({**call(), "call_id": 5}), "input[1].call_id: must be a string"),
    (_with_input({**call(), "call_id": ""}), "input[1].call_id: must not be empty"),
    (_with_input({**call(), "name": None}), "input[1].name: Field required"),
    (_with_input({**call(), "arguments": {"city": "Paris"}}), "input[1].arguments: must be a string, not an object"),
    (_with_input({"type": "function_call", "call_id": "c", "name": "f"}), "input[1].arguments: Field required"),
    (_with_input(call(), {"type": "function_call_output", "output": "18C"}), "input[2].call_id: Field required"),
    (
        _with_input({"type": "function_call_output", "call_id": "call_1", "output": "18C"}),
        "input[1].call_id: no function_call before this item has call_id 'call_1'",
    ),
    (_with_input(call(), {"type": "function_call_output", "call_id": "call_1"}), "input[2].output: Field required"),
    (
        _with_input(call(), {"type": "function_call_output", "call_id": "call_1", "output": 5}),
        "input[2].output: must be a string or a list",
    ),
    (
        _with_input(call(), {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_file"}]}),
        "input[2].output[0]: 'input_file' parts",
    ),
    (body(instructions=5), "instructions: must be a string"),
    (body(tools="weather"), "tools: must be a list of tools, not a string"),
    (body(tools=[5]), "tools[0]: must be a tool"),
    (body(tools=[{"name": "weather"}]), "tools[0].type: Field required"),
    (body(tools=[{"type": "function"}]), "tools[0].name: Field required"),
    (body(tools=[{"type": "function", "name": "f", "parameters": "x"}]), "tools[0].parameters: must be an object"),
    (body(tools=[{"type": "function", "name": "f", "strict": "yes"}]), "tools[0].strict: must be true or false"),
    (body(tools=[{"type": "function", "name": "f", "description": 5}]), "tools[0].description: must be a string"),
    (body(tool_choice="any"), "tool_choice: must be 'auto', 'none', 'required' or"),
    (body(tool_choice=["auto"]), "tool_choice: must be"),
    (body(tool_choice={"type": "function"}), "tool_choice.name: Field required"),
    (body(tool_choice={"type": "web_search_preview"}), "tool_choice.type: 'web_search_preview' is not supported"),
    (body(tool_choice={"type": "allowed_tools", "mode": "auto", "tools": []}), "tool_choice.type: 'allowed_tools'"),
    (body(text="json"), "text: must be an object"),
    (body(text={"format": "json"}), "text.format: must be an object"),
    (body(text={"format": {"type": "xml"}}), "text.format.type: must be 'text', 'json_object' or 'json_schema'"),
    (body(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name: Field required"),
    (body(text={"format": {"type": "json_schema", "name": "x"}}), "text.format.schema: Field required"),
    (
        body(text={"format": {"type": "json_schema", "name": "x", "schema": []}}),
        "text.format.schema: must be an object",
    ),
    (body(text={"format": {"type": "json_schema", "name": "x", "schema": {}, "strict": 1}}), "text.format.strict"),
    (body(text={"verbosity": "loud"}), "text.verbosity: must be 'low', 'medium' or 'high'"),
    (body(reasoning="high"), "reasoning: must be an object"),
    (body(reasoning={"effort": 1}), "reasoning.effort: must be a string"),
    (body(reasoning={"summary": True}), "reasoning.summary: must be a string"),
    (body(max_output_tokens=0), "max_output_tokens: must be a positive integer"),
    (body(max_output_tokens="5"), "max_output_tokens: must be a positive integer"),
    (body(max_output_tokens=True), "max_output_tokens: must be a positive integer"),
    (body(temperature=3), "temperature: must be a number from 0 to 2"),
    (body(temperature="1"), "temperature: must be a number"),
    (body(temperature=True), "temperature: must be a number"),
    (body(top_p=1.5), "top_p: must be a number from 0 to 1"),
    (body(user=5), "user: must be a string"),
    (body(parallel_tool_calls="yes"), "parallel_tool_calls: must be true or false"),
    (body(store="yes"), "store: must be true or false"),
    (body(stream=1), "stream: must be true or false"),
    (body(stream_options=True), "stream_options: must be an object"),
    (body(previous_response_id=5), "previous_response_id: must be a string"),
    (body(previous_response_id=""), "previous_response_id: must not be empty"),
    (body(truncation="sometimes"), "truncation: must be 'auto' or 'disabled'"),
    (body(include="usage"), "include: must be a list"),
    (body(include=[1]), "include[0]: must be a string"),
    (body(metadata=[]), "metadata: must be an object"),
    (body(metadata={"a": 1}), "metadata.a: must be a string"),
    (body(metadata={f"k{i}": "v" for i in range(17)}), "metadata: must hold at most 16 pairs"),
    (body(metadata={"k" * 65: "v"}), "metadata: keys must be at most 64 characters"),
    (body(metadata={"k": "v" * 513}), "metadata.k: must be a string of at most 512 characters"),
    (body(background=True), "background: background responses are not supported by the gateway"),
    (body(background="no"), "background: must be true or false"),
    (body(conversation="conv_1"), "conversation: OpenAI conversations are not kept by the gateway"),
    (body(prompt={"id": "pmpt_1"}), "prompt: stored prompt templates live at OpenAI"),
]


@pytest.mark.parametrize(("wire", "message"), BAD)
def test_bad_requests_name_the_field(wire: Any, message: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        request_from_wire(wire)
    assert message in str(caught.value)


def test_bad_history_items_name_their_place() -> None:
    with pytest.raises(errors.InvalidRequest, match=r"history\[1\]\.content\[0\]\.type"):
        request_from_wire(body(), [user({"type": "input_text", "text": "a"}), user({"type": "video"})])


BUILT_IN_TOOLS = [
    "web_search", "web_search_preview", "file_search", "code_interpreter", "computer_use_preview", "computer",
    "image_generation", "mcp", "local_shell", "shell", "custom", "apply_patch",
]  # fmt: skip


@pytest.mark.parametrize("kind", BUILT_IN_TOOLS)
def test_built_in_tools_are_refused_by_name(kind: str) -> None:
    tools = [{"type": "function", "name": "f"}, {"type": kind}]
    with pytest.raises(errors.InvalidRequest) as caught:
        request_from_wire(body(tools=tools))
    assert f"tools[1].type: '{kind}' tools are not supported" in str(caught.value)
    assert "can only run function tools" in str(caught.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-1, 3) | st.sampled_from(["", "x", "auto", "user"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["type", "text", "role"]), inner),
    max_leaves=6,
)
FIELDS = ["input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens", "temperature",
          "top_p", "user", "metadata", "include", "truncation", "store", "parallel_tool_calls", "stream"]  # fmt: skip
PARTS = st.fixed_dictionaries(
    {"type": st.sampled_from(["input_text", "output_text", "input_image", "refusal", "x"])},
    optional={"text": json_values, "image_url": json_values, "refusal": json_values, "detail": json_values},
)
ITEMS = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "x"]),
        "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | json_values,
        "content": json_values | st.lists(PARTS, max_size=3),
        "call_id": st.sampled_from(["c1", "c2"]) | json_values, "name": json_values, "arguments": json_values,
        "output": json_values | st.lists(PARTS, max_size=2),
    },
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), json_values), st.lists(ITEMS | json_values, max_size=4))
def test_any_body_is_a_request_or_an_invalid_request(fields: dict[str, Any], items: list[Any]) -> None:
    """Never a KeyError, TypeError or ValueError, whatever the body holds."""
    wire = {"model": "m", **fields}
    if items:
        wire["input"] = items
    try:
        request_from_wire(wire)
    except errors.InvalidRequest as exc:
        assert ": " in str(exc)  # the field path, then the problem


# ---------------------------------------------------------------- stored input items


def test_string_input_is_stored_as_a_user_message() -> None:
    [item] = items_from_input(body(input="Hi"))
    assert item["id"].startswith("msg_")
    assert {k: v for k, v in item.items() if k != "id"} == {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}], "status": "completed",
    }  # fmt: skip
    ITEM.validate_python(item)


def test_stored_items_have_types_ids_and_statuses_the_sdk_reads() -> None:
    image = {"type": "input_image", "image_url": "https://example.com/a.png"}
    wire = body(input=[
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {**call(), "id": "fc_keep"},
        {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "18C"}, image]},
        {"type": "reasoning", "summary": []},
    ])  # fmt: skip
    request_from_wire(wire)
    items = items_from_input(wire)
    assert [i["id"][:3] for i in items] == ["msg", "msg", "fc_", "fco", "rs_"] and items[2]["id"] == "fc_keep"
    assert items[1]["content"] == [{"type": "output_text", "text": "Hello", "annotations": []}]
    assert items[3]["output"][1] == {**image, "detail": "auto"}
    for item in items:
        ITEM.validate_python(item)
    assert wire["input"][0] == {"role": "user", "content": "Hi"}  # the body is left as it was
    messages = request_from_wire(body(input=items)).messages  # as they are read back in a continued response
    assert [(m.role, m.text, len(m.tool_calls)) for m in messages] == [
        ("user", "Hi", 0),
        ("assistant", "Hello", 1),
        ("tool", "18C", 0),
    ]


# ---------------------------------------------------------------- answers


REQUEST = body(
    instructions="Be brief.", tools=[{"type": "function", "name": "weather", "parameters": WEATHER, "strict": True}],
    tool_choice={"type": "function", "name": "weather"}, temperature=0.2, top_p=0.9, max_output_tokens=500,
    metadata={"team": "a"}, text={"format": {"type": "text"}}, reasoning={"effort": "low"}, store=False,
    truncation="auto", user="u-1", previous_response_id="resp_0", parallel_tool_calls=False,
)  # fmt: skip


def wire_of(response: ChatResponse, request: dict[str, Any] | None = None) -> dict[str, Any]:
    wire = response_to_wire(response, response_id="resp_1", created_at=1700000000, request=request or body())
    return json.loads(json.dumps(wire))  # as a client receives it


def test_text_answer_parses_in_the_sdk() -> None:
    wire = wire_of(answer())
    parsed = Response.model_validate(wire)
    assert parsed.output_text == "Hello!" and "output_text" not in wire
    assert (wire["id"], wire["object"], wire["status"], wire["created_at"]) == (
        "resp_1",
        "response",
        "completed",
        1700000000,
    )
    assert wire["error"] is None and wire["incomplete_details"] is None and wire["model"] == "gpt-4o-mini-2024-07-18"
    [message] = wire["output"]
    assert message["id"].startswith("msg_") and message["status"] == "completed"
    assert message["content"] == [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}]
    assert wire["usage"] == {
        "input_tokens": 20, "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 0},
        "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 32,
    }  # fmt: skip


def test_the_request_is_echoed() -> None:
    wire = wire_of(answer(), REQUEST)
    Response.model_validate(wire)
    echoed = {k: wire[k] for k in REQUEST if k not in ("input", "model")}
    assert echoed == {k: v for k, v in REQUEST.items() if k not in ("input", "model")}
    defaults = wire_of(answer())
    assert {k: defaults[k] for k in ("instructions", "tools", "tool_choice", "parallel_tool_calls", "temperature",
                                      "top_p", "max_output_tokens", "previous_response_id", "metadata", "text",
                                      "reasoning", "store", "truncation", "user")} == {
        "instructions": None, "tools": [], "tool_choice": "auto", "parallel_tool_calls": True, "temperature": None,
        "top_p": None, "max_output_tokens": None, "previous_response_id": None, "metadata": {},
        "text": {"format": {"type": "text"}}, "reasoning": None, "store": True, "truncation": "disabled", "user": None,
    }  # fmt: skip


def test_tool_call_and_reasoning_answer() -> None:
    calls = [ToolCall("call_1", "weather", {"city": "Paris"}, '{"city": "Paris"}'), ToolCall("call_2", "ping")]
    wire = wire_of(answer(content="", tool_calls=calls, finish_reason="tool_calls", reasoning="Two tools."), REQUEST)
    parsed = Response.model_validate(wire)
    assert [item.type for item in parsed.output] == ["reasoning", "function_call", "function_call"]
    reasoning, first, second = wire["output"]
    assert reasoning["id"].startswith("rs_") and reasoning["summary"] == [
        {"type": "summary_text", "text": "Two tools."}
    ]
    assert first["id"].startswith("fc_") and {k: v for k, v in first.items() if k != "id"} == {
        "type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}',
        "status": "completed",
    }  # fmt: skip
    assert second["arguments"] == "{}" and parsed.output_text == ""


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_incomplete_answers(finish: Any, reason: str) -> None:
    wire = wire_of(answer(content="Cut", finish_reason=finish))
    parsed = Response.model_validate(wire)
    assert (parsed.status, parsed.incomplete_details and parsed.incomplete_details.reason) == ("incomplete", reason)
    assert wire["output"][-1]["status"] == "incomplete" and parsed.output_text == "Cut"


def test_refusal_and_empty_answers() -> None:
    refused = wire_of(answer(content="", refusal="I can't help with that."))
    Response.model_validate(refused)
    assert refused["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]
    empty = wire_of(answer(content=""))
    assert Response.model_validate(empty).output_text == "" and len(empty["output"]) == 1


def test_error_body_is_openais() -> None:
    assert error_body(400, "input: Field required", param="input") == {
        "error": {"message": "input: Field required", "type": "invalid_request_error", "code": None, "param": "input"}
    }


# ---------------------------------------------------------------- the stream


def frames(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    decoder = SSEDecoder()
    return [(e.event, json.loads(e.data)) for e in [*decoder.feed(data), *decoder.flush()]]


def encode(events: list[StreamEvent], request: dict[str, Any] | None = None) -> tuple[StreamEncoder, bytes]:
    encoder = StreamEncoder("resp_1", 1700000000, request or body())
    out = encoder.start() + b"".join(encoder.feed(e) for e in events) + encoder.end()
    return encoder, out


def checked(data: bytes) -> list[dict[str, Any]]:
    """Every event valid for the SDK, named by its type, numbered 0..n-1."""
    events = frames(data)
    for name, payload in events:
        assert name == payload["type"]
        STREAM_EVENT.validate_python(payload)
    assert [payload["sequence_number"] for _, payload in events] == list(range(len(events)))
    return [payload for _, payload in events]


def without_ids(response: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(response)
    for item in out["output"]:
        item.pop("id")
    return out


TOOL = ToolCall("call_1", "weather", {"city": "Paris"}, '{"city": "Paris"}')
FULL = answer(content="It is sunny.", reasoning="Check the tool.", tool_calls=[TOOL], finish_reason="tool_calls")
FULL_EVENTS: list[StreamEvent] = [
    ReasoningDelta("Check "), ReasoningDelta("the tool."), ReasoningDelta(signature="sig"),
    TextDelta("It is "), TextDelta(""), TextDelta("sunny."),
    ToolCallDelta(0, "call_1", "weather", ""),
    ToolCallDelta(0, arguments='{"city": '), ToolCallDelta(0, arguments='"Paris"}'),
    UsageEvent(Usage(20, 12)), Finish("tool_calls", FULL),
]  # fmt: skip


def test_stream_event_sequence() -> None:
    encoder, data = encode(FULL_EVENTS, REQUEST)
    events = checked(data)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    created, completed = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["id"] == "resp_1"
    assert completed == encoder.response
    expected = response_to_wire(FULL, response_id="resp_1", created_at=1700000000, request=REQUEST)
    assert without_ids(completed) == without_ids(expected)
    done_ids = [e["item"]["id"] for e in events if e["type"] == "response.output_item.done"]
    assert [item["id"] for item in completed["output"]] == done_ids
    assert [i[:3] for i in done_ids] == ["rs_", "msg", "fc_"]
    assert events[19]["arguments"] == '{"city": "Paris"}' and events[13]["text"] == "It is sunny."


def test_the_sdks_own_accumulation_reads_the_stream() -> None:
    module = pytest.importorskip("openai.lib.streaming.responses._responses")
    from openai._types import omit

    state = module.ResponseStreamState(input_tools=omit, text_format=omit)
    finals = []
    for payload in checked(encode(FULL_EVENTS)[1]):
        for event in state.handle_event(STREAM_EVENT.validate_python(payload)):
            if event.type == "response.completed":
                finals.append(event.response)
    [final] = finals
    assert final.output_text == "It is sunny."
    assert [(o.type, getattr(o, "arguments", None)) for o in final.output][-1] == ("function_call", '{"city": "Paris"}')


def test_final_is_known_before_the_finish_is_fed() -> None:
    encoder = StreamEncoder("resp_1", 1, body())
    head = encoder.start() + b"".join(encoder.feed(e) for e in FULL_EVENTS[:-1])
    final = encoder.final(FULL)
    assert encoder.final(FULL) is final
    tail = encoder.feed(FULL_EVENTS[-1]) + encoder.end()
    events = checked(head + tail)
    assert events[-1]["response"] == final and encoder.feed(TextDelta("late")) == b""


def test_final_before_start_keeps_the_sequence_in_order() -> None:
    """An answer whose first event is its finish (a replay, an empty answer): the gateway
    stores ``final`` before the stream has started, and the events still go out in order."""
    encoder = StreamEncoder("resp_1", 1, body())
    final = encoder.final(FULL)
    events = checked(encoder.start() + encoder.feed(Finish("tool_calls", FULL)) + encoder.end())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[0]["response"]["output"] == [] and events[-1]["response"] == final


def test_incomplete_stream_marks_its_last_item() -> None:
    cut = answer(content="Cut sho", finish_reason="length")
    events = checked(encode([TextDelta("Cut sho"), Finish("length", cut)])[1])
    assert events[-1]["type"] == "response.incomplete"
    response = events[-1]["response"]
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete" and events[-2]["item"]["status"] == "incomplete"


def test_what_no_event_carried_is_sent_before_the_end() -> None:
    """A refusal (the canonical stream has no refusal event), an empty answer, a replay without deltas."""
    refused = answer(content="Well", refusal="I can't.")
    events = checked(encode([TextDelta("Well"), Finish("stop", refused)])[1])
    assert [e["type"] for e in events if "refusal" in e["type"]] == ["response.refusal.delta", "response.refusal.done"]
    assert without_ids(events[-1]["response"]) == without_ids(wire_of(refused))
    empty = checked(encode([Finish("stop", answer(content=""))])[1])
    assert without_ids(empty[-1]["response"]) == without_ids(wire_of(answer(content="")))
    replayed = checked(encode([Finish("tool_calls", FULL)])[1])
    assert without_ids(replayed[-1]["response"]) == without_ids(wire_of(FULL))


@pytest.mark.parametrize(
    ("exc", "code", "failure", "read_back"),
    [
        (errors.RateLimited("slow down", provider="openai"), "rate_limit_exceeded", "rate_limit_exceeded",
         errors.RateLimited),
        (errors.ContextWindowExceeded("too long"), "context_length_exceeded", "invalid_prompt",
         errors.ContextWindowExceeded),
        (errors.ContentFiltered("blocked"), "content_filter", "invalid_prompt", errors.ContentFiltered),
        (errors.InvalidRequest("bad"), "invalid_prompt", "invalid_prompt", errors.InvalidRequest),
        (errors.BudgetExceeded("no credit"), "insufficient_quota", "rate_limit_exceeded", errors.RateLimited),
        (errors.Overloaded("busy"), "overloaded_error", "server_error", errors.Overloaded),
        (errors.ProviderError("boom"), "server_error", "server_error", errors.ProviderError),
        (errors.Timeout("slow"), "server_error", "server_error", errors.ProviderError),
    ],
)  # fmt: skip
def test_stream_errors(exc: errors.LLMError, code: str, failure: str, read_back: type[errors.LLMError]) -> None:
    encoder = StreamEncoder("resp_1", 1, body())
    data = encoder.start() + encoder.feed(TextDelta("Hal")) + encoder.error(exc) + encoder.end()
    events = checked(data)
    error, failed = events[-2:]
    assert error == {"type": "error", "code": code, "message": str(exc), "param": None, "sequence_number": 5}
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": failure, "message": str(exc)}
    assert failed["response"]["output"][0]["content"][0]["text"] == "Hal"
    assert encoder.feed(Finish("stop", answer())) == b"" and encoder.error(exc) == b""
    with pytest.raises(read_back):
        decode_stream(data)  # the outbound decoder reads the same kind of error back


def test_error_events_and_streams_cut_short() -> None:
    events = checked(encode([TextDelta("Hi"), ErrorEvent(errors.ProviderError("gone"))])[1])
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    cut = checked(encode([TextDelta("Hi")])[1])  # no finish: end() says it was cut
    assert cut[-2]["message"] == "the stream ended before the answer was complete"


# ---------------------------------------------------------------- round trips


def decode_stream(data: bytes, cuts: Sequence[int] = ()) -> ChatResponse:
    """Bytes as they arrive -> SSE -> the outbound Responses decoder -> the assembled answer."""
    assembler = StreamAssembler("openai-responses", "m")
    decoder = ChatStreamDecoder(assembler, "openai-responses")
    sse = SSEDecoder()
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    for a, b in itertools.pairwise(bounds):
        for frame in sse.feed(data[a:b]):
            for event in decoder.feed(frame):
                assembler.add(event)
    for frame in sse.flush():
        for event in decoder.feed(frame):
            assembler.add(event)
    decoder.close()
    return assembler.response()


texts = st.text(min_size=1, max_size=12)
json_leaves = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
arguments = st.dictionaries(
    st.text(max_size=6), st.recursive(json_leaves, lambda i: st.lists(i, max_size=3), max_leaves=5), max_size=4
)
call_ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10)
images = st.one_of(
    st.builds(ImagePart, url=st.just("https://example.com/a.png"), detail=st.sampled_from([None, "low", "high"])),
    st.builds(ImagePart, data=st.sampled_from([PNG, "/9j/4AAQ"]), media_type=st.just("image/png")),
)
parts = st.lists(st.one_of(st.builds(TextPart, texts), images), min_size=1, max_size=3)
schemas = st.sampled_from(
    [WEATHER, {"type": "object", "properties": {}}, {"type": "object", "properties": {"n": {"type": "integer"}}}]
)
tools = st.builds(
    ToolSpec,
    st.sampled_from(["f", "g", "weather"]),
    st.text(max_size=10),
    schemas,
    st.sampled_from([None, True, False]),
)
formats = st.one_of(
    st.none(), st.just(ResponseFormat("json_object")), st.just(ResponseFormat("text")),
    st.builds(ResponseFormat, st.just("json_schema"), schemas.map(strict_schema), st.sampled_from(["answer", "a_b-1"]),
              st.booleans()),
)  # fmt: skip


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """System prompts anywhere, user turns, and assistant turns whose calls are all answered."""
    out: list[Message] = []
    seen: set[str] = set()
    for i in range(draw(st.integers(min_value=1, max_value=4))):
        if draw(st.booleans()):
            out.append(Message("system", draw(texts)))
        out.append(Message("user", draw(texts | parts)))
        if i % 2:
            continue
        ids = draw(st.lists(call_ids.filter(lambda c: c not in seen), max_size=2, unique=True))
        seen.update(ids)
        calls = [ToolCall(c, draw(st.sampled_from(["f", "g"])), draw(arguments)) for c in ids]
        text_parts = st.lists(st.builds(TextPart, texts), max_size=2)
        content = draw(st.none() | texts) if calls else draw(st.none() | texts | text_parts)
        out.append(Message("assistant", content, tool_calls=calls))
        out.extend(Message("tool", draw(texts | parts), tool_call_id=c) for c in ids)
    return out


def normal_message(message: Message) -> tuple[Any, ...]:
    """What a message keeps: role, parts (an image with its detail, 'auto' when none), calls, the call it answers."""
    kept: list[Any] = []
    for part in message.parts:  # adjacent texts as one: a tool's text output is one string on the wire
        if isinstance(part, TextPart) and kept and isinstance(kept[-1], str):
            kept[-1] += part.text
        else:
            kept.append(part.text if isinstance(part, TextPart) else (part.data_url, part.detail or "auto"))
    calls = [(c.id, c.name, c.arguments) for c in message.tool_calls]
    return message.role, kept, calls, message.tool_call_id


def normal_format(fmt: ResponseFormat | None) -> Any:
    """A text format is no format (the outbound codec sends none for it)."""
    if fmt is None or fmt.type == "text":
        return None
    return fmt.type, fmt.schema, fmt.name, fmt.strict


@settings(max_examples=120, deadline=None)
@given(
    conversations(), st.lists(tools, max_size=2, unique_by=lambda t: t.name),
    st.sampled_from([None, "auto", "none", "required", {"name": "f"}]), formats,
    st.none() | st.floats(0, 2), st.none() | st.floats(0, 1), st.none() | st.integers(1, 4096),
)  # fmt: skip
def test_requests_round_trip_through_the_outbound_codec(
    messages: list[Message], specs: list[ToolSpec], choice: Any, fmt: ResponseFormat | None,
    temperature: float | None, top_p: float | None, max_tokens: int | None,
) -> None:  # fmt: skip
    """What survives: model, the system prompts (joined: the wire has one ``instructions``),
    every other message in order, tools, tool choice, format and sampling fields."""
    original = ChatRequest(
        "gpt-4o", messages, tools=specs, tool_choice=choice, response_format=fmt, temperature=temperature,
        top_p=top_p, max_tokens=max_tokens, user="u-1",
    )  # fmt: skip
    wire = json.loads(json.dumps(codec.encode_chat(original, stream=False)))
    back = request_from_wire(wire)
    system = "\n\n".join(m.text for m in messages if m.role == "system")
    assert [m.text for m in back.messages if m.role == "system"] == ([system] if system else [])
    assert [normal_message(m) for m in back.messages if m.role != "system"] == [
        normal_message(m) for m in messages if m.role != "system"
    ]
    assert [(t.name, t.description, t.parameters, t.strict) for t in back.tools] == [
        (t.name, t.description, t.parameters, t.strict) for t in specs
    ]
    assert back.tool_choice == choice and normal_format(back.response_format) == normal_format(fmt)
    assert (back.model, back.temperature, back.top_p, back.max_tokens, back.user) == (
        "gpt-4o",
        temperature,
        top_p,
        max_tokens,
        "u-1",
    )
    assert back.extra == {}  # the outbound codec's store: false is the gateway's, not the provider's


@st.composite
def answers(draw: st.DrawFn) -> ChatResponse:
    calls = [
        ToolCall(f"call_{i}{c}", draw(st.sampled_from(["f", "g"])), args, json.dumps(args))
        for i, (c, args) in enumerate(draw(st.lists(st.tuples(call_ids, arguments), max_size=3)))
    ]
    finish = draw(st.sampled_from(["length", "content_filter", "tool_calls" if calls else "stop"]))
    usage = Usage(*draw(st.tuples(*[st.integers(0, 10_000)] * 5)))
    return answer(
        content=draw(st.text(max_size=30)), tool_calls=calls, finish_reason=finish, usage=usage,
        reasoning=draw(st.none() | texts), refusal=draw(st.none() | texts),
    )  # fmt: skip


def same_answer(got: ChatResponse, want: ChatResponse) -> None:
    assert (got.content, got.finish_reason, got.usage, got.reasoning, got.refusal) == (
        want.content, want.finish_reason, want.usage, want.reasoning, want.refusal,
    )  # fmt: skip
    assert [(c.id, c.name, c.arguments, c.raw_arguments) for c in got.tool_calls] == [
        (c.id, c.name, c.arguments, c.raw_arguments) for c in want.tool_calls
    ]


@settings(max_examples=120, deadline=None)
@given(answers())
def test_answers_round_trip_through_the_outbound_decoder(original: ChatResponse) -> None:
    wire = wire_of(original)
    Response.model_validate(wire)
    back = codec.decode_chat(wire, provider="openai-responses", model="m")
    same_answer(back, original)
    assert back.id == "resp_1" and back.model == original.model


@settings(max_examples=80, deadline=None)
@given(answers(), st.data())
def test_streams_round_trip_through_the_outbound_decoder(original: ChatResponse, data: st.DataObject) -> None:
    """Canonical events in any pieces -> the encoder -> bytes cut anywhere -> the
    outbound stream decoder: the same answer, and every event valid for the SDK."""

    def pieces(text: str) -> list[str]:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=3)))
        return [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]

    events: list[StreamEvent] = [ReasoningDelta(p) for p in pieces(original.reasoning or "")]
    events += [TextDelta(p) for p in pieces(original.content)]
    for i, c in enumerate(original.tool_calls):
        events.append(ToolCallDelta(i, c.id, c.name))
        events += [ToolCallDelta(i, arguments=p) for p in pieces(c.raw_arguments)]
    events += [UsageEvent(original.usage), Finish(original.finish_reason, original)]
    encoder, wire = encode(events)
    checked(wire)
    if not (original.refusal and original.tool_calls):  # (else no event carried the refusal: it comes last)
        assert without_ids(encoder.response or {}) == without_ids(wire_of(original))
    same_answer(decode_stream(wire, data.draw(st.lists(st.integers(0), max_size=6))), original)
