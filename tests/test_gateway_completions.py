"""``POST /v1/completions`` (legacy completions) with the official ``openai`` SDK: a
prompt in, text out, served by an OpenAI-format and by an Anthropic-format upstream."""

from __future__ import annotations

import openai
import pytest

from fakeserver import Reply
from gateways import Served, ledger_rows
from llmrelay.store import Tenant
from recordings import load_cassette, load_sse
from test_gateway_openai import CHAT, answer, sse


async def test_a_completion_is_the_chat_answer_to_the_prompt(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("Paris.")))
    raw = await gw.sdk().completions.with_raw_response.create(
        model="smart", prompt="The capital of France is", max_tokens=5, temperature=0, stop=["\n"]
    )
    r = raw.parse()
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert [(c.text, c.index, c.finish_reason) for c in r.choices] == [("Paris.", 0, "stop")]
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (9, 3)
    assert raw.headers["x-llmrelay-deployment"] == "openai/gpt-4o-mini"
    sent = gw.upstream.requests[-1].json
    assert sent["messages"] == [{"role": "user", "content": "The capital of France is"}]
    assert sent["max_completion_tokens"] == 5 and sent["stop"] == ["\n"] and sent["temperature"] == 0


async def test_max_tokens_defaults_to_16_and_echo_puts_the_prompt_first(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer(" Paris.", finish_reason=None)))
    r = await gw.sdk().completions.create(model="smart", prompt="Capital:", echo=True)
    assert r.choices[0].text == "Capital: Paris."
    assert gw.upstream.requests[-1].json["max_completion_tokens"] == 16


async def test_a_streamed_completion(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Par", "is", ".")))
    stream = await gw.sdk().completions.create(
        model="smart", prompt="Capital of France?", max_tokens=8, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Paris."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert all(c.object == "text_completion" for c in chunks)


async def test_an_anthropic_deployment_serves_completions(gw: Served) -> None:
    recorded = load_cassette("anthropic-message-nonstream-retry-after-header.cassette.yaml")[0]
    gw.anthropic.on("POST", "/v1/messages", Reply(json=recorded.response_json))
    r = await gw.sdk().completions.create(model="claude", prompt="Paris?", max_tokens=200)
    assert r.choices[0].text.startswith("Paris is known as")
    assert gw.anthropic.requests[-1].json["max_tokens"] == 200
    gw.anthropic.on("POST", "/v1/messages", Reply(chunks=[load_sse("anthropic-stream-basic-text-ping.sse")]))
    stream = await gw.sdk().completions.create(model="claude", prompt="Hi", max_tokens=50, stream=True)
    assert "".join([c.choices[0].text async for c in stream if c.choices])


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"prompt": ["one", "two"]}, "2 prompts"),
        ({"prompt": [1, 2, 3]}, "token ids"),
        ({"prompt": ""}, "non-empty"),
        ({"prompt": "x", "n": 2}, "'n' must be 1"),
        ({"prompt": "x", "best_of": 3}, "'best_of' must be 1"),
        ({"prompt": "x", "logprobs": 2}, "'logprobs'"),
        ({"prompt": "x", "suffix": "end"}, "'suffix'"),
        ({"prompt": "x", "echo": "yes"}, "'echo'"),
        ({"prompt": "x", "max_tokens": -1}, "max_tokens"),
        ({"prompt": "x", "stream": "yes"}, "'stream'"),
    ],
)
async def test_what_a_chat_model_cannot_give_is_a_400_naming_it(
    gw: Served, fields: dict[str, object], named: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await gw.sdk().completions.create(model="smart", **{"prompt": "x", **fields})
    assert named in caught.value.message
    assert not gw.upstream.requests


async def test_a_completion_is_admitted_and_recorded_like_a_chat(gw: Served) -> None:
    gw.store.create_tenant(Tenant(id="acme"))
    made, secret = gw.store.create_key("acme", name="c")
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    await gw.sdk(secret).completions.create(model="smart", prompt="Hi", max_tokens=3)
    rows = await ledger_rows(gw, made.id)
    assert [(r.route, r.model, r.prompt_tokens, r.completion_tokens) for r in rows] == [
        ("/v1/completions", "smart", 9, 3)
    ]
