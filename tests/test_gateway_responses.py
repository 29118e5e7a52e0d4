"""``/v1/responses`` with the official ``openai`` SDK over real HTTP: answers, streams,
stored responses and ``previous_response_id``, function tools, structured output, and
the same through an Anthropic-format upstream; and the OpenAI Agents SDK in its
default (Responses) mode running an agent with a function tool to its final output."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest
from pydantic import BaseModel

from fakeserver import Reply
from gateways import MASTER, Served, ledger_rows
from llmrelay.store import Tenant
from recordings import load_sse
from test_gateway_openai import CHAT, answer, sse

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
WEATHER = {
    "type": "function", "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}  # fmt: skip


def claude_answer(text: str = "", tool: dict[str, Any] | None = None, stop: str = "end_turn") -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if tool is not None:
        content.append({"type": "tool_use", **tool})
    return {
        "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": content, "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 4},
    }  # fmt: skip


def text_of(content: str | list[dict[str, Any]]) -> str:
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


async def test_a_response_with_its_usage_and_status(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("Paris.")))
    raw = await gw.sdk().responses.with_raw_response.create(
        model="smart", input="Capital of France?", instructions="Be brief.", max_output_tokens=20, temperature=0
    )
    r = raw.parse()
    assert r.output_text == "Paris." and r.status == "completed" and r.id.startswith("resp_")
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (9, 3, 12)
    assert raw.headers["x-llmrelay-deployment"] == "openai/gpt-4o-mini"
    sent = gw.upstream.requests[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert sent["max_completion_tokens"] == 20 and sent["temperature"] == 0


async def test_an_answer_cut_by_its_limit_is_incomplete(gw: Served) -> None:
    cut = answer("Par")
    cut["choices"][0]["finish_reason"] = "length"
    gw.upstream.on("POST", CHAT, Reply(json=cut))
    raw = await gw.sdk().responses.create(model="smart", input="Capital?", max_output_tokens=16)
    assert raw.status == "incomplete" and raw.incomplete_details is not None
    assert raw.incomplete_details.reason == "max_output_tokens"


async def test_a_streamed_response_through_the_sdk_helper(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Par", "is", ".")))
    async with gw.sdk().responses.stream(model="smart", input="Capital of France?") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "Paris." and final.status == "completed"
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 3
    stored = await gw.sdk().responses.retrieve(final.id)
    assert stored.output_text == "Paris." and stored.id == final.id


async def test_previous_response_id_continues_the_stored_conversation(gw: Served) -> None:
    sdk = gw.sdk()
    gw.upstream.on("POST", CHAT, Reply(json=answer("Hello Ada.")), Reply(json=answer("You are Ada.")))
    first = await sdk.responses.create(model="smart", input="My name is Ada.")
    second = await sdk.responses.create(model="smart", input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "You are Ada." and second.previous_response_id == first.id
    sent = gw.upstream.requests[-1].json["messages"]
    assert [(m["role"], text_of(m["content"])) for m in sent] == [
        ("user", "My name is Ada."), ("assistant", "Hello Ada."), ("user", "What is my name?"),
    ]  # fmt: skip
    items = await sdk.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message"]
    assert await sdk.responses.delete(first.id) is None
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as caught:  # a deleted link: the chain is gone
        await sdk.responses.create(model="smart", input="And now?", previous_response_id=second.id)
    assert caught.value.code == "previous_response_not_found"


async def test_another_tenants_response_is_not_there(gw: Served) -> None:
    gw.store.create_tenant(Tenant(id="acme"))
    gw.store.create_tenant(Tenant(id="beta"))
    _, acme = gw.store.create_key("acme", name="a")
    _, beta = gw.store.create_key("beta", name="b")
    gw.upstream.on("POST", CHAT, Reply(json=answer("secret plans")))
    mine = await gw.sdk(acme).responses.create(model="smart", input="Plans?")
    theirs = gw.sdk(beta)
    for attempt in (
        theirs.responses.retrieve(mine.id),
        theirs.responses.delete(mine.id),
        theirs.responses.input_items.list(mine.id),
        theirs.responses.create(model="smart", input="Go on", previous_response_id=mine.id),
    ):
        with pytest.raises(openai.NotFoundError):
            await attempt
    assert (await gw.sdk(acme).responses.retrieve(mine.id)).output_text == "secret plans"
    with pytest.raises(openai.NotFoundError):  # the operator's own responses are another tenant's too
        await gw.sdk(MASTER).responses.retrieve(mine.id)


async def test_store_false_keeps_nothing(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    r = await gw.sdk().responses.create(model="smart", input="Hi", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        await gw.sdk().responses.retrieve(r.id)


async def test_a_function_tool_round_trip(gw: Served) -> None:
    sdk = gw.sdk()
    gw.upstream.on("POST", CHAT, Reply(json=answer("", tool_calls=[CALL])), Reply(json=answer("Sunny in Paris.")))
    first = await sdk.responses.create(model="smart", input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments), c.call_id) for c in calls] == [
        ("get_weather", {"city": "Paris"}, "call_1")
    ]
    assert gw.upstream.requests[-1].json["tools"][0]["function"]["name"] == "get_weather"
    second = await sdk.responses.create(
        model="smart", previous_response_id=first.id, tools=[WEATHER],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": "call_1", "output": '{"sky": "sunny"}'}],
    )  # fmt: skip
    assert second.output_text == "Sunny in Paris."
    sent = gw.upstream.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1" and sent[2] == {
        "role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'
    }  # fmt: skip


class City(BaseModel):
    name: str
    country: str


async def test_structured_output_with_responses_parse(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer('{"name": "Paris", "country": "France"}')))
    r = await gw.sdk().responses.parse(model="smart", input="Capital of France?", text_format=City)
    assert r.output_parsed == City(name="Paris", country="France")
    fmt = gw.upstream.requests[-1].json["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City"


async def test_an_anthropic_deployment_answers_the_responses_api(gw: Served) -> None:
    gw.anthropic.on("POST", "/v1/messages", Reply(json=claude_answer("Bonjour.")))
    r = await gw.sdk().responses.create(model="claude", input="Say hello in French.", max_output_tokens=50)
    assert r.output_text == "Bonjour." and r.usage is not None and r.usage.input_tokens == 11
    assert gw.anthropic.requests[-1].json["max_tokens"] == 50
    gw.anthropic.on("POST", "/v1/messages", Reply(chunks=[load_sse("anthropic-stream-basic-text-ping.sse")]))
    async with gw.sdk().responses.stream(model="claude", input="Hi", max_output_tokens=50) as stream:
        final = await stream.get_final_response()
    assert final.output_text and final.status == "completed"
    tool = {"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    gw.anthropic.on("POST", "/v1/messages", Reply(json=claude_answer(tool=tool, stop="tool_use")))
    r = await gw.sdk().responses.create(model="claude", input="Weather?", tools=[WEATHER])  # type: ignore[list-item]
    assert [(i.type, getattr(i, "call_id", None)) for i in r.output] == [("function_call", "toolu_1")]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"tools": [{"type": "web_search"}]}, "web_search"),
        ({"input": [{"type": "unknown_item"}]}, "input[0]"),
        ({"input": 5}, "input"),
        ({"background": True}, "background"),
        ({"store": "yes"}, "'store'"),
        ({"previous_response_id": 7}, "previous_response_id"),
        ({"max_output_tokens": -1}, "max"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(gw: Served, fields: dict[str, Any], named: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await gw.sdk().responses.create(model="smart", **{"input": "Hi", **fields})
    assert named in caught.value.message
    assert not gw.upstream.requests


async def test_responses_are_admitted_and_recorded(gw: Served) -> None:
    gw.store.create_tenant(Tenant(id="acme"))
    made, secret = gw.store.create_key("acme", name="r")
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    await gw.sdk(secret).responses.create(model="smart", input="Hi")
    rows = await ledger_rows(gw, made.id)
    assert [(r.route, r.model, r.prompt_tokens) for r in rows] == [("/v1/responses", "smart", 9)]


async def test_input_items_pages(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    messages = [{"role": "user", "content": f"line {i}"} for i in range(5)]
    r = await gw.sdk().responses.create(model="smart", input=messages)  # type: ignore[arg-type]
    async with aiohttp.ClientSession(headers={"authorization": f"Bearer {MASTER}"}) as http:
        base = f"{gw.url}/v1/responses/{r.id}/input_items"
        async with http.get(base, params={"limit": "2", "order": "asc"}) as got:
            page = await got.json()
        assert [i["content"][0]["text"] for i in page["data"]] == ["line 0", "line 1"] and page["has_more"]
        async with http.get(base, params={"limit": "10", "order": "asc", "after": page["last_id"]}) as got:
            rest = await got.json()
        assert [i["content"][0]["text"] for i in rest["data"]] == ["line 2", "line 3", "line 4"]
        assert not rest["has_more"]
        async with http.get(base, params={"limit": "0"}) as got:
            assert got.status == 400


async def test_the_agents_sdk_runs_an_agent_with_a_function_tool(gw: Served) -> None:
    agents = pytest.importorskip("agents")
    seen: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        seen.append(city)
        return f"sunny in {city}"

    gw.upstream.on(
        "POST", CHAT,
        Reply(json=answer("", tool_calls=[{**CALL, "function": {**CALL["function"], "name": "get_weather"}}])),
        Reply(json=answer("It is sunny in Paris.")),
    )  # fmt: skip
    model = agents.OpenAIResponsesModel(model="smart", openai_client=gw.sdk())
    agent = agents.Agent(name="weather", instructions="Answer with the tool.", tools=[get_weather], model=model)
    result = await agents.Runner.run(agent, "Weather in Paris?", run_config=agents.RunConfig(tracing_disabled=True))
    assert result.final_output == "It is sunny in Paris." and seen == ["Paris"]
    sent = gw.upstream.requests[-1].json["messages"]
    assert sent[-1]["role"] == "tool" and "sunny in Paris" in sent[-1]["content"]


async def test_the_agents_sdk_through_an_anthropic_deployment(gw: Served) -> None:
    agents = pytest.importorskip("agents")

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    tool = {"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    gw.anthropic.on(
        "POST", "/v1/messages",
        Reply(json=claude_answer(tool=tool, stop="tool_use")), Reply(json=claude_answer("Sunny in Paris.")),
    )  # fmt: skip
    model = agents.OpenAIResponsesModel(model="claude", openai_client=gw.sdk())
    agent = agents.Agent(name="weather", instructions="Use the tool.", tools=[get_weather], model=model)
    result = await agents.Runner.run(agent, "Weather in Paris?", run_config=agents.RunConfig(tracing_disabled=True))
    assert result.final_output == "Sunny in Paris."
    last = gw.anthropic.requests[-1].json["messages"]
    assert last[-1]["content"][0]["type"] == "tool_result" and last[-1]["content"][0]["tool_use_id"] == "toolu_1"


async def test_a_store_that_fails_does_not_cost_the_caller_the_answer(
    gw: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmrelay.store import StoreUnavailable

    def down(*args: object) -> None:
        raise StoreUnavailable("the database is gone")

    monkeypatch.setattr(gw.store.responses, "save", down)
    gw.upstream.on("POST", CHAT, Reply(json=answer("Paris.")), Reply(chunks=sse("Par", "is.")))
    raw = await gw.sdk().responses.with_raw_response.create(model="smart", input="Capital?")
    r = raw.parse()
    assert r.output_text == "Paris." and r.store is False and raw.headers["x-llmrelay-stored"] == "false"
    async with gw.sdk().responses.stream(model="smart", input="Capital?") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "Paris." and final.status == "completed"
