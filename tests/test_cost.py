"""Cost figures worked out by hand from the catalogue rates (USD per million tokens).

Each test first checks the rates it relies on, so a genai-prices update that
changes a price fails with a clear message rather than a wrong sum.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from decimal import Decimal

import pytest

from llmrelay import cost
from llmrelay.catalog import lookup_model
from llmrelay.types import Usage


def rates(price_provider: str, model: str) -> tuple[float | None, float | None, float | None]:
    info = lookup_model(price_provider, model, provider="test")
    return info.input_price_per_mtok, info.cached_input_price_per_mtok, info.output_price_per_mtok


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    cost._cache.clear()
    yield


def test_gpt_4o_mini_with_cached_tokens() -> None:
    assert rates("openai", "gpt-4o-mini") == (0.15, 0.075, 0.6)
    # 1000 prompt tokens of which 200 cached, 100 completion tokens:
    # 800 * 0.15 + 200 * 0.075 + 100 * 0.6 = 120 + 15 + 60 = 195 per million
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=200)
    assert cost.chat_cost("openai", "gpt-4o-mini-2024-07-18", usage) == pytest.approx(0.000195)
    assert cost.chat_cost("openai", "gpt-4o-mini", usage) == pytest.approx(0.000195)


def test_cached_tokens_cost_less_than_uncached_and_are_not_double_counted() -> None:
    uncached = cost.chat_cost("openai", "gpt-4o-mini", Usage(prompt_tokens=10_000, completion_tokens=10))
    cached = cost.chat_cost(
        "openai", "gpt-4o-mini", Usage(prompt_tokens=10_000, completion_tokens=10, cached_tokens=8000)
    )
    assert uncached is not None and cached is not None
    assert cached < uncached
    # double counting would charge the 8000 cached tokens at both rates
    assert cached == pytest.approx((2000 * 0.15 + 8000 * 0.075 + 10 * 0.6) / 1e6)


def test_claude_sonnet_4_5_cache_read_and_write() -> None:
    assert rates("anthropic", "claude-sonnet-4-5") == (3.0, 0.3, 15.0)
    # prompt 10_000 = 3000 plain + 4000 cache reads + 3000 cache writes (write rate 3.75); 500 out:
    # 3000 * 3 + 4000 * 0.3 + 3000 * 3.75 + 500 * 15 = 9000 + 1200 + 11250 + 7500 = 28950 per million
    usage = Usage(prompt_tokens=10_000, completion_tokens=500, cached_tokens=4000, cache_write_tokens=3000)
    assert cost.chat_cost("anthropic", "claude-sonnet-4-5", usage) == pytest.approx(0.02895)
    assert cost.chat_cost("anthropic", "claude-sonnet-4-5-20250929", usage) == pytest.approx(0.02895)


def test_tiered_prices_apply_to_every_token_above_the_threshold() -> None:
    # claude-sonnet-4-5 over 200k prompt tokens: input 6, cache write 7.5, cache read 0.6, output 22.5
    usage = Usage(prompt_tokens=250_000, completion_tokens=500, cached_tokens=4000, cache_write_tokens=3000)
    expected = (243_000 * 6 + 4000 * 0.6 + 3000 * 7.5 + 500 * 22.5) / 1e6
    assert cost.chat_cost("anthropic", "claude-sonnet-4-5", usage) == pytest.approx(expected)
    # exactly at the threshold the base rates still apply
    at = Usage(prompt_tokens=200_000, completion_tokens=0)
    assert cost.chat_cost("anthropic", "claude-sonnet-4-5", at) == pytest.approx(200_000 * 3 / 1e6)


def test_gemini_2_5_flash_reasoning_tokens_are_output_tokens_once() -> None:
    assert rates("google", "gemini-2.5-flash") == (0.3, 0.03, 2.5)
    # 600 completion tokens include 400 thought tokens: 1000 * 0.3 + 600 * 2.5 = 1800 per million
    usage = Usage(prompt_tokens=1000, completion_tokens=600, reasoning_tokens=400)
    assert cost.chat_cost("google", "gemini-2.5-flash", usage) == pytest.approx(0.0018)
    # the provider kind "gemini" finds Google's prices too
    assert cost.chat_cost("gemini", "gemini-2.5-flash", usage) == pytest.approx(0.0018)


def test_embedding_model() -> None:
    assert rates("openai", "text-embedding-3-small")[0] == 0.02
    assert cost.embedding_cost("openai", "text-embedding-3-small", Usage(prompt_tokens=1000)) == pytest.approx(2e-5)


def test_unknown_model_or_unpriced_provider_is_none_not_zero() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=100)
    assert cost.chat_cost("openai", "no-such-model-xyz", usage) is None
    assert cost.embedding_cost("openai", "no-such-model-xyz", usage) is None
    assert cost.chat_cost("", "gpt-4o-mini", usage) is None  # self-hosted: price_provider ""
    # priced per audio hour: our token usage cannot be priced
    assert cost.chat_cost("openai", "whisper-1", usage) is None
    # an embedding model has no output rate: output tokens make the cost unknown
    assert cost.chat_cost("openai", "text-embedding-3-small", usage) is None


def test_unknown_provider_id_matches_the_model_alone() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=100)
    assert cost.chat_cost("my-proxy", "gpt-4o-mini", usage) == pytest.approx((1000 * 0.15 + 100 * 0.6) / 1e6)
    assert cost.chat_cost("my-proxy", "no-such-model-xyz", usage) is None


def test_a_free_model_costs_zero() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=100)
    assert cost.chat_cost("openrouter", "meta-llama/llama-3.3-70b-instruct:free", usage) == 0.0


def test_other_providers_resolve() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=100)
    for price_provider, model in [
        ("azure", "gpt-4o-2024-08-06"),
        ("openrouter", "openai/gpt-4o"),
        ("mistral", "mistral-large-latest"),
        ("groq", "llama-3.3-70b-versatile"),
        ("deepseek", "deepseek-chat"),
        ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("anthropic", "claude-sonnet-4-20250514"),
    ]:
        value = cost.chat_cost(price_provider, model, usage)
        assert value is not None and value > 0, (price_provider, model)


@pytest.mark.parametrize(
    ("price_provider", "model", "usage"),
    [
        ("openai", "gpt-4o-mini-2024-07-18", Usage(1000, 100, cached_tokens=200)),
        ("anthropic", "claude-sonnet-4-5", Usage(250_000, 500, cached_tokens=4000, cache_write_tokens=3000)),
        ("google", "gemini-2.5-pro", Usage(300_000, 600, cached_tokens=1000, reasoning_tokens=400)),
        ("deepseek", "deepseek-chat", Usage(1000, 100, cached_tokens=200)),
        ("azure", "gpt-4o", Usage(1000, 100, cached_tokens=200)),
    ],
)
def test_agrees_with_genai_prices_calc_price(price_provider: str, model: str, usage: Usage) -> None:
    import genai_prices

    reference = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.prompt_tokens,
            cache_read_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.completion_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
        ),
        model,
        provider_id=price_provider,
    )
    assert isinstance(reference.total_price, Decimal)
    assert cost.chat_cost(price_provider, model, usage) == pytest.approx(float(reference.total_price))


def test_no_network_and_no_auto_update(no_network: None) -> None:
    from genai_prices import update_prices

    assert cost.chat_cost("openai", "gpt-4o", Usage(1000, 100)) is not None
    assert update_prices._shared_updater.thread is None


def test_memoized() -> None:
    usage = Usage(1000, 100)
    cost.chat_cost("openai", "gpt-4o", usage)
    entry = cost._cache[("openai", "gpt-4o")]
    cost.chat_cost("openai", "gpt-4o", usage)
    assert cost._cache[("openai", "gpt-4o")] is entry
    cost.chat_cost("openai", "no-such-model-xyz", usage)
    assert cost._cache[("openai", "no-such-model-xyz")] is None


def test_unreadable_price_data_gives_none_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(price_provider: str, model: str) -> None:
        raise ValueError("corrupt price data")

    monkeypatch.setattr(cost, "find_price_model", broken)
    monkeypatch.setattr(cost, "_cache", {})
    assert cost.chat_cost("openai", "gpt-4o", Usage(1000, 100)) is None
    info = lookup_model("openai", "gpt-4o-unreadable", provider="o")
    assert info.input_price_per_mtok is None
    assert info.context_window == 128_000  # the capability table still answers
