from __future__ import annotations

import pytest

from llmrelay.catalog import (
    CAPABILITIES,
    Capabilities,
    capabilities,
    catalogue_kinds,
    known_models,
    lookup_model,
    price_id,
)


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
    assert {m.provider for m in everything} == set(catalogue_kinds())
    assert known_models("no-such-provider") == []
    assert known_models("") == []
    assert known_models("ollama") == []  # self-hosted: no catalogue


def test_known_models_speak_our_provider_names() -> None:
    """Rows carry the kind you write in PROVIDER/MODEL, never the catalogue's id."""
    gemini = known_models("gemini")
    assert {m.provider for m in gemini} == {"gemini"}
    assert {m.raw["catalog_provider"] for m in gemini} == {"google"}
    assert "gemini-2.5-flash" in {m.id for m in gemini}
    assert not [m.id for m in gemini if m.id.startswith("claude")]  # Vertex's partner models: not the Gemini API
    assert {m.provider for m in known_models("bedrock")} == {"bedrock"}
    assert {m.provider for m in known_models("openai-responses")} == {"openai-responses"}
    assert {m.provider for m in known_models("work", price_provider="groq")} == {"work"}
    assert "google" not in catalogue_kinds() and {"gemini", "bedrock", "groq", "deepseek"} <= set(catalogue_kinds())
    assert "openai-responses" not in catalogue_kinds()  # it shares openai's catalogue


def test_known_model_names_price_as_their_catalogue_entry() -> None:
    """Each row's name, looked up again, finds the entry the row comes from; a catalogue id
    that is not a model name is replaced by one its entry matches, or left out."""
    for kind in catalogue_kinds():
        for info in known_models(kind):
            again = lookup_model(price_id(kind), info.id, provider=kind)
            assert again.raw["catalog_id"] == info.raw["catalog_id"], (kind, info.id)
    bedrock = {m.raw["catalog_id"]: m.id for m in known_models("bedrock")}
    regional = "regional.anthropic.claude-3-5-haiku-20241022-v1:0"  # genai-prices' placeholder prefix
    assert bedrock[regional] == "anthropic.claude-3-5-haiku-20241022-v1:0"
    mistral = {m.raw["catalog_id"]: m.id for m in known_models("mistral")}
    assert mistral["codestral"] == "codestral-latest"  # the id itself matches no model name
    assert not [m for m in known_models("openai") if m.id.startswith("ft:")]  # fine-tunes: no name reaches them
    assert all("/" in m.id for m in known_models("openrouter"))


def test_price_ids() -> None:
    assert (price_id("gemini"), price_id("bedrock"), price_id("openai-responses")) == ("google", "aws", "openai")
    assert (price_id("groq"), price_id("openai"), price_id("anthropic")) == ("groq", "openai", "anthropic")
    assert price_id("ollama") == price_id("vllm") == price_id("local") == ""


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
