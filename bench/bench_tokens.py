"""Per-call cost of the hot-path helpers: cost, catalogue lookup, token counts.

    python bench/bench_tokens.py

First calls (loading price data, building tiktoken encodings) are timed
apart; the loops measure warm calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from llmrelay.catalog import lookup_model
from llmrelay.cost import chat_cost
from llmrelay.tokens import count_text, count_tokens
from llmrelay.types import ImagePart, Message, TextPart, Usage


def per_call_us(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def first_call_s(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    usage = Usage(prompt_tokens=1200, completion_tokens=300, cached_tokens=1024, reasoning_tokens=100)
    chat = [
        Message("system", "You are a helpful assistant. Answer briefly."),
        Message("user", "What's the weather like in San Francisco today?"),
        Message("assistant", "Sunny, 18 degrees."),
        Message(
            "user", [TextPart("And this picture?"), ImagePart(url="https://example.com/a.png", width=800, height=600)]
        ),
    ]
    dicts = [{"role": "user", "content": "What's the weather like in San Francisco today?"}]
    long_text = "The quick brown fox jumps over the lazy dog. " * 2000

    rows = [
        ("chat_cost first call (loads price data)", first_call_s(lambda: chat_cost("openai", "gpt-4o-mini", usage))),
        ("count_text first call (builds o200k_base)", first_call_s(lambda: count_text("gpt-4o", "hi"))),
    ]
    for label, seconds in rows:
        print(f"{label:55s} {seconds * 1000:9.1f} ms")

    loops: list[tuple[str, Callable[[], object], int]] = [
        ("chat_cost gpt-4o-mini", lambda: chat_cost("openai", "gpt-4o-mini", usage), 200_000),
        ("chat_cost claude-sonnet-4-5 (tiered)", lambda: chat_cost("anthropic", "claude-sonnet-4-5", usage), 200_000),
        ("chat_cost unknown model", lambda: chat_cost("openai", "no-such-model", usage), 200_000),
        ("lookup_model gpt-4o", lambda: lookup_model("openai", "gpt-4o", provider="openai"), 100_000),
        ("count_text 'hello world'", lambda: count_text("gpt-4o", "hello world"), 100_000),
        ("count_tokens 4 messages + image, gpt-4o", lambda: count_tokens("openai/gpt-4o", chat), 20_000),
        ("count_tokens 1 dict message, gpt-4o", lambda: count_tokens("gpt-4o", dicts), 50_000),
        (
            "count_tokens 4 messages, claude (estimate)",
            lambda: count_tokens("anthropic/claude-sonnet-4-5", chat),
            20_000,
        ),
        ("count_text 90k chars, gpt-4o", lambda: count_text("gpt-4o", long_text), 200),
    ]
    for label, fn, n in loops:
        fn()
        print(f"{label:55s} {per_call_us(fn, n):9.2f} us/call")


if __name__ == "__main__":
    main()
