"""``llmrelay models``, ``llmrelay tokens``, ``llmrelay test-connection``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from ..types import ModelInfo, Usage
from . import app
from .common import fail, read_text, reported, stdout

if TYPE_CHECKING:
    from ..client_sync import Client
    from ..cost import Prices
    from ..providers.base import Provider


@app.command(short_help="Known models: context window, prices, capabilities.")
def models(
    ctx: typer.Context,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            "-p",
            help="Only this provider, named as in PROVIDER/MODEL: a kind (openai, gemini, bedrock, local...) "
            "or a provider name from the config.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output, one object a line.")] = False,
) -> None:
    """Models you can name as PROVIDER/MODEL, with their context window, prices and capabilities.

    By default: the local models and every provider kind the price catalogue
    lists, whether configured or not. Self-hosted servers (ollama, vllm,
    llamacpp, lmstudio) have no catalogue: their models are what they serve.
    """
    with reported(ctx) as st:
        rows = _model_rows(st.client(), provider)
        rows.sort(key=lambda m: (m.provider, m.id))
        if as_json:
            from .._json import dumps_str

            for info in rows:
                typer.echo(dumps_str(_model_json(info)))
        else:
            stdout().print(_models_table(rows))


def _model_rows(client: Client, provider: str | None) -> list[ModelInfo]:
    from ..catalog import catalogue_kinds, known_models, price_id
    from ..providers import known_kinds

    if provider is None:
        return client.models("local") + known_models()
    config = client.settings.providers.get(provider)
    if provider == "local" or (config is not None and config.kind == "local"):
        return client.models(provider)
    if config is not None:  # a configured name: its own catalogue (a quirks row may differ from its kind's)
        catalogue = client.provider(provider).price_provider
    elif provider in known_kinds():
        catalogue = price_id(provider)
    else:
        listed_as = [kind for kind in catalogue_kinds() if price_id(kind) == provider and kind != provider]
        hint = f": its models are listed as {listed_as[0]}" if listed_as else ""
        fail(f"unknown provider {provider!r}{hint}; known kinds: {', '.join(known_kinds())}")
    rows = known_models(provider, price_provider=catalogue)
    if not rows:
        reason = "none listed" if catalogue else "a self-hosted server: its models are what it serves"
        fail(f"the catalogue has no models for {provider!r} ({reason})")
    return rows


def _model_json(info: ModelInfo) -> dict[str, object]:
    return {
        "model": f"{info.provider}/{info.id}", "provider": info.provider, "id": info.id,
        "context_window": info.context_window, "max_output_tokens": info.max_output_tokens,
        "input_price_per_mtok": info.input_price_per_mtok, "output_price_per_mtok": info.output_price_per_mtok,
        "cached_input_price_per_mtok": info.cached_input_price_per_mtok, "supports_tools": info.supports_tools,
        "supports_structured_output": info.supports_structured_output, "supports_vision": info.supports_vision,
        "input_modalities": list(info.input_modalities), "output_modalities": list(info.output_modalities),
    }  # fmt: skip


def _models_table(rows: list[ModelInfo]) -> object:
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for column, justify in (
        ("provider", "left"), ("model", "left"), ("context", "right"), ("max out", "right"),
        ("$/M in", "right"), ("$/M out", "right"), ("tools", "center"), ("JSON", "center"), ("vision", "center"),
    ):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for info in rows:
        table.add_row(
            info.provider, info.id, _count(info.context_window), _count(info.max_output_tokens),
            _price(info.input_price_per_mtok), _price(info.output_price_per_mtok),
            _flag(info.supports_tools), _flag(info.supports_structured_output), _flag(info.supports_vision),
        )  # fmt: skip
    return table


def _count(value: int | None) -> str:
    if value is None:
        return "?"
    return f"{value // 1000}k" if value >= 10_000 and value % 1000 == 0 else f"{value:,}"


def _price(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _flag(value: bool | None) -> str:
    return {True: "yes", False: "-", None: "?"}[value]


@app.command(short_help="Count tokens and price them as input.")
def tokens(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="PROVIDER/MODEL, e.g. openai/gpt-4o-mini, or a model group.")],
    text: Annotated[str, typer.Argument(help="The text, or '-' to read standard input.")],
) -> None:
    """Count TEXT's tokens for MODEL (as one user message; for an embedding model, as
    one input) and price them as input. The count is exact when made with the model's
    own tokenizer (OpenAI models, the local chat model), else an estimate."""
    with reported(ctx) as st:
        content = read_text(text, "TEXT")
        target = _counting_target(st.client(), model)
        from ..tokens import count_text, is_exact

        key = f"{target.kind}/{target.model}"
        if "embedding" in target.info.output_modalities:
            count = count_text(key, content)
        else:
            count = _count_prompt(target, key, content)
        exact = "exact" if is_exact(key) else "estimate"
        cost = target.input_cost(count)
        price = "unknown price" if cost is None else f"${_usd(cost)} as input"
        stdout().print(f"{count} token{'' if count == 1 else 's'} ({exact}), {price}")


def _usd(value: float) -> str:
    """Dollars without trailing zeros (``0``, ``0.0000045``), to 10 decimals."""
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a counted prompt would go, and what is known of its price."""

    kind: str
    model: str
    info: ModelInfo
    """The provider's facts about the model (its prices included: 0 for the local models)."""
    prices: Prices | None = None
    """An operator's prices for a model group's deployment: they win over the catalogue."""
    provider: Provider | None = None
    """The configured provider (``None``: a known kind without its key)."""

    def input_cost(self, tokens: int) -> float | None:
        from ..cost import chat_cost

        usage = Usage(prompt_tokens=tokens)
        if self.prices is not None:
            return self.prices.cost(usage)
        catalogue = self.info.raw.get("catalog_provider")
        if catalogue:  # the catalogue's own arithmetic: tiers and per-request fees
            return chat_cost(str(catalogue), self.model, usage)
        rate = self.info.input_price_per_mtok
        return None if rate is None else tokens * rate / 1_000_000


def _counting_target(client: Client, model: str) -> _Target:
    """The provider kind, model name and facts for ``model``; counting needs no key,
    so a known kind without one is taken with the catalogue's facts."""
    from .. import errors
    from ..catalog import lookup_model, price_id

    group = client.settings.models.get(model)
    if group is not None:
        first = group.members[0]
        name, model_name, prices = first.provider, first.model, first.prices
    else:
        name, sep, model_name = model.partition("/")
        if not sep or not name or not model_name:
            raise errors.InvalidRequest(f"model {model!r} names no provider: write PROVIDER/MODEL, e.g. openai/{model}")
        prices = None
    try:
        provider = client.provider(name)
    except errors.ProviderNotConfigured:  # a known kind without its key
        return _Target(name, model_name, lookup_model(price_id(name), model_name, provider=name), prices)
    return _Target(provider.config.kind, model_name, provider.model_info(model_name), prices, provider)


def _count_prompt(target: _Target, key: str, content: str) -> int:
    """As the client counts before sending (``Provider.count_prompt``); a known kind
    without its key has no provider, and is counted by ``tokens`` alone."""
    from ..tokens import count_tokens
    from ..types import Message

    messages = [Message("user", content)]
    if target.provider is None:
        return count_tokens(key, messages)
    return target.provider.count_prompt(target.model, messages, None)


@app.command("test-connection", short_help="Check each configured provider; exit 1 on failure.")
def test_connection(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Argument(help="One provider (default: every configured one).")] = None,
) -> None:
    """Check each configured provider with a cheap call: a row each; exit 1 if any fails."""
    from rich.table import Table

    with reported(ctx) as st:
        client = st.client()
        names = [provider] if provider else sorted(client.settings.providers) or ["local"]
        table = Table(header_style="bold")
        for column in ("provider", "result", "time", "detail"):
            table.add_column(column)
        failed = 0
        for name in names:
            (check,) = client.test_connection(name)
            failed += not check.ok
            verdict = "[green]ok[/]" if check.ok else "[bold red]failed[/]"
            table.add_row(name, verdict, f"{check.latency_s * 1000:.0f} ms", check.detail)
        stdout().print(table)
        if failed:
            raise typer.Exit(1)
