"""Stream continuation (``stream_resume``): a stream cut after its first token goes on
where it stopped on a deployment that can continue an answer, over real HTTP on
127.0.0.1 against upstreams that continue a prefill as vLLM and Anthropic do
(``continuing.py``). The caller must see every answer exactly once, byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anthropic
import openai
import pytest

from continuing import ContinuingServer, answer_for, pieces_of
from fakeserver import FakeServer, Reply
from gateways import MASTER, serve
from llmrelay import AsyncClient, errors
from llmrelay.gateway import Gateway
from llmrelay.providers.anthropic.provider import AnthropicProvider
from llmrelay.providers.base import Provider, ProviderConfig
from llmrelay.providers.openai.provider import OpenAIProvider
from llmrelay.router import AttemptRecord, Deployment, ModelGroup, RoutingSettings
from llmrelay.store import Store, UsageQuery
from llmrelay.types import ErrorEvent, Finish, StreamEvent, TextDelta

FAST = RoutingSettings(
    strategy="round_robin", retries=2, timeout_s=2.0, deadline_s=10.0, stream_idle_s=2.0,
    backoff_s=0.01, backoff_max_s=0.05, cooldowns=False, seed=1,
)  # fmt: skip
QUESTION = "q1"
ANSWER = answer_for(QUESTION)
ASK = [{"role": "user", "content": QUESTION}]


def vllm(name: str, srv: ContinuingServer | FakeServer, kind: str = "vllm") -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(name=name, kind=kind, base_url=srv.url + "/v1", api_key="sk-test-1"))


def claude(name: str, srv: ContinuingServer) -> AnthropicProvider:
    return AnthropicProvider(ProviderConfig(name=name, kind="anthropic", base_url=srv.url, api_key="sk-ant-test"))


def client_for(providers: list[Provider], *, resume: bool = True, model: str = "m", **kw: Any) -> AsyncClient:
    group = ModelGroup("g", [Deployment(p.name, model) for p in providers], stream_resume=resume)
    return AsyncClient(env={}, providers=providers, models=[group], routing=FAST, **kw)


@pytest.fixture
async def upstreams() -> AsyncIterator[list[ContinuingServer]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(ContinuingServer()) for _ in range(3)]


async def events_of(client: AsyncClient, **kw: Any) -> list[StreamEvent]:
    return [e async for e in client.stream("g", ASK, raise_errors=False, **kw)]


def shown(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def finish(events: list[StreamEvent]) -> Finish:
    last = events[-1]
    assert isinstance(last, Finish), last
    assert sum(isinstance(e, Finish) for e in events) == 1
    return last


async def test_a_cut_stream_goes_on_where_it_stopped_on_another_vllm(upstreams: list[ContinuingServer]) -> None:
    a, b, _ = upstreams
    a.cuts = [3]  # three pieces, then the connection drops
    async with client_for([vllm("a", a), vllm("b", b)]) as client:
        events = await events_of(client)
    assert shown(events) == ANSWER  # nothing repeated, nothing lost
    done = finish(events).response
    assert done.content == ANSWER
    assert done.route is not None and done.route.deployment == "b/m" and done.route.resumed == ("a/m",)
    sent = b.requests[0].body
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    assert sent["messages"][-1] == {"role": "assistant", "content": "".join(pieces_of(ANSWER)[:3])}
    # a's usage is counted here (it never reported it): its prompt and the three pieces it gave
    rest = len(pieces_of(ANSWER)) - 3
    assert done.usage.completion_tokens > rest and done.usage.prompt_tokens > 20


async def test_an_anthropic_prefill_never_ends_in_white_space_and_its_echo_is_dropped(
    upstreams: list[ContinuingServer],
) -> None:
    a, b, _ = upstreams
    a.cuts = [3]  # "Answer " "to " "q1: ", then the cut: the text shown ends in a space
    async with client_for([claude("a", a), claude("b", b)], model="claude-sonnet-4-5") as client:
        events = await events_of(client)
    assert shown(events) == ANSWER
    prefill = b.requests[0].body["messages"][-1]
    assert prefill["role"] == "assistant"
    text = prefill["content"] if isinstance(prefill["content"], str) else prefill["content"][0]["text"]
    assert text == "Answer to q1:"  # the space left out (Anthropic refuses it) and not sent twice
    done = finish(events).response
    assert done.route is not None and done.route.resumed == ("a/claude-sonnet-4-5",)
    assert done.cost_usd is not None and done.cost_usd > 0  # both attempts priced


async def test_a_stream_cut_twice_goes_on_twice_and_bills_every_attempt(upstreams: list[ContinuingServer]) -> None:
    a, b, c = upstreams
    a.cuts, b.cuts = [2], [3]
    records: list[AttemptRecord] = []
    async with client_for([vllm("a", a), vllm("b", b), vllm("c", c)], hooks=[records.append]) as client:
        events = await events_of(client)
    assert shown(events) == ANSWER
    done = finish(events).response
    assert done.route is not None and done.route.resumed == ("a/m", "b/m") and done.route.deployment == "c/m"
    assert [r.outcome for r in records] == ["interrupted", "interrupted", "ok"]
    assert done.usage.prompt_tokens >= 20 + 2 * 5  # three prompts paid for
    assert c.requests[0].body["messages"][-1]["content"] == "".join(pieces_of(ANSWER)[:5])


async def test_the_continuation_asks_for_no_more_tokens_than_were_left(upstreams: list[ContinuingServer]) -> None:
    a, b, _ = upstreams
    a.cuts = [4]
    async with client_for([vllm("a", a), vllm("b", b)]) as client:
        events = await events_of(client, max_tokens=100)
    assert shown(events) == ANSWER
    assert a.requests[0].body["max_tokens"] == 100
    assert 90 <= b.requests[0].body["max_tokens"] < 100


async def test_a_deployment_that_cannot_continue_is_never_sent_the_rest(upstreams: list[ContinuingServer]) -> None:
    a, _, _ = upstreams
    a.cuts = [3, 1, 1, 1, 1]  # a cuts every stream: it goes on itself, until its retries are spent
    async with FakeServer() as plain:
        plain.on("POST", "/v1/chat/completions", Reply(status=500))
        async with client_for([vllm("a", a), vllm("o", plain, kind="openai")]) as client:
            events = await events_of(client)
    last = events[-1]
    assert isinstance(last, ErrorEvent) and isinstance(last.error, errors.StreamInterrupted)
    assert last.partial is not None and last.partial.content == shown(events)
    assert ANSWER.startswith(shown(events)) and len(pieces_of(shown(events))) == 3 + 1 + 1
    assert plain.count() == 0  # OpenAI's API answers a prefill anew: it is never asked to continue


async def test_a_deployment_refusing_the_continuation_is_passed_over(upstreams: list[ContinuingServer]) -> None:
    a, b, _ = upstreams
    a.cuts, b.refuses_to_continue = [3], True
    async with client_for([vllm("a", a), vllm("b", b)]) as client:
        events = await events_of(client)
    assert shown(events) == ANSWER  # b said 400 to the prefill: a went on instead, the caller saw no error
    assert b.count() == 1 and a.count() == 2


async def test_an_anthropic_cut_counts_the_output_it_gave(upstreams: list[ContinuingServer]) -> None:
    a, b, _ = upstreams
    a.cuts = [8]  # Anthropic reported usage at the message's start (1 output token): not the output given
    async with client_for([claude("a", a), claude("b", b)], model="claude-sonnet-4-5") as client:
        events = await events_of(client, max_tokens=100)
    assert shown(events) == ANSWER
    given = "".join(pieces_of(ANSWER)[:8])
    assert b.requests[0].body["max_tokens"] <= 100 - len(given) // 6  # lowered by what a gave, counted
    done = finish(events).response
    assert done.usage.completion_tokens >= len(pieces_of(ANSWER)) - 8 + len(given) // 6


async def test_without_stream_resume_a_cut_still_ends_the_stream(upstreams: list[ContinuingServer]) -> None:
    a, b, _ = upstreams
    a.cuts = [3]
    async with client_for([vllm("a", a), vllm("b", b)], resume=False) as client:
        events = await events_of(client)
    assert isinstance(events[-1], ErrorEvent) and b.count() == 0


async def test_a_cut_whose_cause_is_not_transient_is_not_continued(upstreams: list[ContinuingServer]) -> None:
    a, b, _ = upstreams
    a.cuts = [("fatal", 3)]
    async with client_for([vllm("a", a), vllm("b", b)]) as client:
        events = await events_of(client)
    assert isinstance(events[-1], ErrorEvent) and b.count() == 0


async def test_a_transient_in_stream_error_is_continued(upstreams: list[ContinuingServer]) -> None:
    a, b, _ = upstreams
    a.cuts = [("error", 3)]
    async with client_for([vllm("a", a), vllm("b", b)]) as client:
        events = await events_of(client)
    assert shown(events) == ANSWER and finish(events).response.route.resumed == ("a/m",)  # type: ignore[union-attr]


async def test_a_cut_inside_a_tool_call_is_not_continued() -> None:
    call = b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\\"a\\": "}}]},"finish_reason":null}]}\n\n'  # noqa: E501
    async with FakeServer() as a, ContinuingServer() as b:
        a.on("POST", "/v1/chat/completions", Reply(chunks=[call, call], cut_after=1))
        async with client_for([vllm("a", a), vllm("b", b)]) as client:
            events = await events_of(client)
    assert isinstance(events[-1], ErrorEvent) and isinstance(events[-1].error, errors.StreamInterrupted)
    assert b.count() == 0


async def test_every_deployment_cutting_ends_with_the_whole_text_shown(upstreams: list[ContinuingServer]) -> None:
    a, b, _ = upstreams
    a.cuts, b.cuts = [2, 1, 1, 1], [1, 1, 1, 1]
    async with client_for([vllm("a", a), vllm("b", b)]) as client:
        events = await events_of(client)
    last = events[-1]
    assert isinstance(last, ErrorEvent) and isinstance(last.error, errors.StreamInterrupted)
    assert last.partial is not None and last.partial.content == shown(events)
    assert ANSWER.startswith(shown(events)) and len(shown(events)) > len("".join(pieces_of(ANSWER)[:2]))


# ---- through the gateway, with the official SDKs ---------------------------------------------------


@pytest.fixture
async def gateway(upstreams: list[ContinuingServer]) -> AsyncIterator[tuple[str, Gateway]]:
    a, b, _ = upstreams
    providers: list[Provider] = [vllm("a", a), vllm("b", b), claude("ca", a), claude("cb", b)]
    groups = [
        ModelGroup("g", [Deployment("a", "m"), Deployment("b", "m")], stream_resume=True),
        ModelGroup("claude", [Deployment("ca", "claude-sonnet-4-5"), Deployment("cb", "claude-sonnet-4-5")],
                   stream_resume=True),
    ]  # fmt: skip
    client = AsyncClient(env={}, providers=providers, models=groups, routing=FAST)
    client.settings.models.update({g.name: g for g in groups})
    app = Gateway(client, master_key=MASTER, store=Store.open("sqlite://"))
    async for url in serve(app):
        yield url, app


async def test_the_openai_sdk_sees_one_whole_stream_through_the_gateway(
    upstreams: list[ContinuingServer], gateway: tuple[str, Gateway]
) -> None:
    url, app = gateway
    upstreams[0].cuts = [3]
    sdk = openai.AsyncOpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    text = ""
    async with sdk:
        stream = await sdk.chat.completions.create(
            model="g", messages=[{"role": "user", "content": QUESTION}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        usage = None
        async for chunk in stream:
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
            usage = chunk.usage or usage
    assert text == ANSWER and upstreams[1].count() == 1
    assert usage is not None and usage.prompt_tokens > 20  # both attempts' prompts are in it
    assert app.ledger is not None
    await app.ledger.flush()
    rows = app.store.usage(UsageQuery()) if app.store is not None else []
    assert len(rows) == 1 and rows[0].prompt_tokens == usage.prompt_tokens and rows[0].status == 200


async def test_the_anthropic_sdk_sees_one_whole_stream_through_the_gateway(
    upstreams: list[ContinuingServer], gateway: tuple[str, Gateway]
) -> None:
    url, _ = gateway
    upstreams[0].cuts = [3]
    sdk = anthropic.AsyncAnthropic(base_url=url, api_key=MASTER, max_retries=0)
    async with (
        sdk,
        sdk.messages.stream(model="claude", max_tokens=200, messages=[{"role": "user", "content": QUESTION}]) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == ANSWER and final.content[0].type == "text" and final.content[0].text == ANSWER
    assert final.usage.input_tokens > 20


async def test_a_stream_no_deployment_could_go_on_with_bills_every_attempts_prompt(
    upstreams: list[ContinuingServer], gateway: tuple[str, Gateway]
) -> None:
    from llmrelay.gateway.billing import counted_usage
    from llmrelay.types import ChatRequest, Message

    url, app = gateway
    upstreams[0].cuts, upstreams[1].cuts = [3, 1, 1, 1], [1, 1, 1, 1]  # every stream cut: retries run out
    sdk = openai.AsyncOpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    text = ""
    async with sdk:
        stream = await sdk.chat.completions.create(
            model="g", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                text += "".join(choice.delta.content or "" for choice in chunk.choices)
    assert text and ANSWER.startswith(text)
    tried = upstreams[0].count() + upstreams[1].count()
    assert tried == 1 + FAST.retries
    assert app.ledger is not None and app.store is not None
    await app.ledger.flush()
    [row] = app.store.usage(UsageQuery())
    one = await counted_usage("vllm", "m", ChatRequest("m", [Message("user", QUESTION)]), None, None)
    assert row.prompt_tokens == tried * one.prompt_tokens  # each attempt had the prompt: each is billed once
    assert row.completion_tokens > 0
