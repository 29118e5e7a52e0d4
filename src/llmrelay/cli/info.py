"""``llmrelay models``, ``llmrelay tokens``, ``llmrelay test-connection``."""

from __future__ import annotations

from typing import Annotated

import typer

from ..types import ModelInfo, Usage
from . import app
from .common import fail, read_text, reported, stdout

# The catalogue's provider ids for the kinds people usually mean.
_CATALOGUE_IDS = {"gemini": "google", "bedrock": "aws", "azure": "azure"}
_DEFAULT_PROVIDERS = ("openai", "anthropic", "google", "mistral")


@app.command(short_help="Known models: context window, prices, capabilities.")
def models(
    ctx: typer.Context,
    provider: Annotated[
        str | None,
        typer.Option("--provider", "-p", help="A provider kind or catalogue id (openai, anthropic, gemini, ...)."),
    ] = None,
) -> None:
    """Known models with their context window, prices and capabilities."""
    from ..catalog import known_models

    with reported(ctx) as st:
        rows: list[ModelInfo] = []
        if provider in (None, "local"):
            local = st.client().provider("local")
            rows.extend(local.model_info(m) for m in ("smollm2", "all-minilm-l6-v2"))
        if provider != "local":
            ids = [_CATALOGUE_IDS.get(provider, provider)] if provider else list(_DEFAULT_PROVIDERS)
            for pid in ids:
                rows.extend(known_models(pid))
        if not rows:
            fail(f"no known models for provider {provider!r}")
        stdout().print(_models_table(rows))


def _models_table(rows: list[ModelInfo]) -> object:
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for column, justify in (
        ("provider", "left"), ("model", "left"), ("context", "right"), ("max out", "right"),
        ("$/M in", "right"), ("$/M out", "right"), ("tools", "center"), ("JSON", "center"), ("vision", "center"),
    ):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for info in sorted(rows, key=lambda m: (m.provider, m.id)):
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


@app.command(short_help="Count tokens and estimate the input cost.")
def tokens(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="PROVIDER/MODEL, e.g. openai/gpt-4o-mini.")],
    text: Annotated[str, typer.Argument(help="The text, or '-' to read standard input.")],
) -> None:
    """Count TEXT's tokens for MODEL (as one user message) and price them as input."""
    with reported(ctx) as st:
        content = read_text(text, "TEXT")
        client = st.client()
        provider, name = _resolve_for_counting(client, model)
        from ..cost import chat_cost
        from ..tokens import count_tokens, is_exact

        key = f"{provider}/{name}"
        count = count_tokens(key, [{"role": "user", "content": content}])
        exact = "exact" if is_exact(key) else "estimate"
        cost = chat_cost(_CATALOGUE_IDS.get(provider, provider), name, Usage(prompt_tokens=count))
        price = "unknown price" if cost is None else f"${cost:.6f} as input"
        stdout().print(f"{count} tokens ({exact}), {price}")


def _resolve_for_counting(client: object, model: str) -> tuple[str, str]:
    """The provider kind and model name; counting needs no key, so an
    unconfigured ``PROVIDER/MODEL`` is taken at its word."""
    from ..client import Client
    from ..errors import InvalidRequest

    assert isinstance(client, Client)
    group = client.settings.models.get(model)
    if group is not None:
        first = group.members[0]
        configured = client.settings.providers.get(first.provider)
        return (configured.kind if configured else first.provider), first.model
    kind, sep, name = model.partition("/")
    if not sep or not kind or not name:
        raise InvalidRequest(f"model {model!r} names no provider: write PROVIDER/MODEL, e.g. openai/{model}")
    configured = client.settings.providers.get(kind)
    return (configured.kind if configured else kind), name


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
