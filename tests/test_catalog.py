from __future__ import annotations

import pytest

from llmrelay.catalog import CAPABILITIES, Capabilities, capabilities, known_models, lookup_model


def test_gpt_4o_mini_from_both_sources() -> None:
    info = lookup_model("openai", "gpt-4o-mini-2024-07-18", provider="my-openai")
    assert info.id == "gpt-4o-mini-2024-07-18"
    assert info.provider == "my-openai"
    assert info.context_window == 128_000
    assert info.max_output_tokens == 16_384
    assert info.supports_vision
    assert info.supports_tools is True
    assert info.supports_structured_output is True
    assert (info.input_price_per_mtok, info.output_price_per_mtok, info.cached_input_price_per_mtok) == (
        0.15,
        0.6,
        0.075,
    )
    assert info.raw["catalog_id"] == "gpt-4o-mini"


def test_longest_prefix_wins() -> None:
    assert capabilities("gpt-4o-2024-05-13").get("supports_structured_output") is False
    assert capabilities("gpt-4o-2024-08-06").get("supports_structured_output") is True
    assert capabilities("gpt-4o-mini").get("max_output_tokens") == 16_384
    assert capabilities("gpt-4.1-mini").get("context_window") == 1_047_576
    assert capabilities("o3-mini").get("input_modalities") == ("text",)
    assert capabilities("o3").get("input_modalities") == ("text", "image")
    sonnet_4 = lookup_model("anthropic", "claude-sonnet-4-20250514", provider="a")
    assert (sonnet_4.max_output_tokens, sonnet_4.supports_structured_output) == (64_000, False)
    sonnet_45 = lookup_model("anthropic", "claude-sonnet-4-5-20250929", provider="a")
    assert sonnet_45.supports_structured_output is True
    opus_4 = lookup_model("anthropic", "claude-opus-4-20250514", provider="a")
    assert opus_4.max_output_tokens == 32_000


def test_names_are_normalised() -> None:
    routed = lookup_model("openrouter", "anthropic/claude-3.5-sonnet", provider="or")
    assert routed.max_output_tokens == 8_192
    assert routed.input_price_per_mtok == 3.0
    bedrock = capabilities("us.anthropic.claude-3-7-sonnet-20250219-v1:0")
    assert bedrock.get("max_output_tokens") == 64_000
    assert capabilities("models/gemini-2.5-flash").get("max_output_tokens") == 65_536
    assert capabilities("GPT-4o").get("context_window") == 128_000


def test_table_context_window_fills_the_catalogue_gap() -> None:
    info = lookup_model("gemini", "gemini-2.5-pro", provider="g")
    assert info.context_window == 1_048_576
    assert info.input_price_per_mtok == 1.25  # the base rate of a tiered price
    assert info.raw["tiered_prices"] is True
    assert "audio" in info.input_modalities


def test_unknown_is_none_not_a_guess() -> None:
    info = lookup_model("openai", "brand-new-model-9", provider="o")
    assert info.context_window is None
    assert info.max_output_tokens is None
    assert info.supports_tools is None
    assert info.supports_structured_output is None
    assert info.input_price_per_mtok is None
    # a variant blocked from inheriting its family's facts
    audio = lookup_model("openai", "gpt-4o-audio-preview", provider="o")
    assert audio.supports_tools is None
    assert audio.max_output_tokens is None


def test_self_hosted_gets_capabilities_but_no_prices() -> None:
    info = lookup_model("", "mistral-small-2501", provider="vllm")
    assert info.context_window == 32_768
    assert info.supports_tools is True
    assert info.input_price_per_mtok is None
    assert lookup_model("", "llama3", provider="ollama").context_window is None


def test_embedding_models() -> None:
    info = lookup_model("openai", "text-embedding-3-small", provider="o")
    assert info.output_modalities == ("embedding",)
    assert info.context_window == 8_191
    assert info.input_price_per_mtok == 0.02
    assert info.output_price_per_mtok is None


def test_memoized_but_callers_get_their_own_copy() -> None:
    first = lookup_model("openai", "gpt-4o", provider="o")
    first.raw["mutated"] = True
    first.context_window = 1
    second = lookup_model("openai", "gpt-4o", provider="o")
    assert second.context_window == 128_000
    assert "mutated" not in second.raw


def test_known_models() -> None:
    openai = known_models("openai")
    assert openai and all(m.provider == "openai" for m in openai)
    assert [m.id for m in openai] == sorted(m.id for m in openai)
    by_id = {m.id: m for m in openai}
    assert by_id["gpt-4o-mini"].input_price_per_mtok == 0.15
    assert by_id["gpt-4o-mini"].max_output_tokens == 16_384
    everything = known_models()
    assert len({m.provider for m in everything}) > 10
    assert {m.provider for m in known_models("gemini")} == {"google"}
    assert known_models("no-such-provider") == []
    assert known_models("") == []


@pytest.mark.parametrize("prefix", sorted(CAPABILITIES))
def test_capability_table_entries_are_well_formed(prefix: str) -> None:
    assert prefix == prefix.lower().strip()
    entry: dict[str, object] = dict(CAPABILITIES[prefix])
    assert set(entry) <= set(Capabilities.__annotations__)
    for key in ("context_window", "max_output_tokens"):
        value = entry.get(key)
        assert value is None or (isinstance(value, int) and value > 0)
    for key in ("input_modalities", "output_modalities"):
        value = entry.get(key, ())
        assert isinstance(value, tuple) and set(value) <= {"text", "image", "audio", "video", "embedding"}
