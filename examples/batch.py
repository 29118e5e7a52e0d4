"""Batch processing: many requests with a concurrency limit, a progress bar and per-item errors.

    python examples/batch.py [--concurrency 4] [--model PROVIDER/MODEL]

Classifies the sentiment of eight sentences with AsyncClient. An
asyncio.Semaphore keeps at most --concurrency requests in flight; the answer is
forced into {"sentiment": "positive" | "negative"} with response_format. A
failed item is reported in its row and the rest go on. The progress bar is
rich's when rich is installed, a plain text one otherwise. Runs offline on the
local model (local/smollm2), which answers one request at a time; with a hosted
model (--model or LLMRELAY_DEFAULT_MODEL) the requests really run side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Literal

from pydantic import BaseModel

from llmrelay import AsyncClient, LLMError

SENTENCES = [
    "I love this phone, it works perfectly.",
    "The food was cold and the waiter was rude.",
    "What a fantastic concert!",
    "This is the worst movie I have ever seen.",
    "My order arrived late and damaged.",
    "Thank you so much, you made my day!",
    "I am very disappointed with this hotel.",
    "The garden looks beautiful this spring.",
]
SYSTEM = "You are a sentiment classifier. Positive: happy, praise. Negative: complaints, anger."


class Sentiment(BaseModel):
    sentiment: Literal["positive", "negative"]


@dataclass
class Result:
    text: str
    label: str = ""
    error: str = ""
    tokens: int = 0
    latency_s: float = 0.0


async def classify_all(
    client: AsyncClient, model: str, texts: list[str], concurrency: int, advance: Callable[[], None]
) -> list[Result]:
    """One Result per text, in order; ``advance()`` is called as each one finishes."""
    limit = asyncio.Semaphore(concurrency)

    async def one(text: str) -> Result:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Sentence: {text}"}]
        async with limit:
            try:
                r = await client.chat(model, messages, response_format=Sentiment, max_tokens=20, temperature=0, seed=7)
                label, error = (r.parsed.sentiment, "") if r.parsed else ("", f"refused: {r.refusal}")
                result = Result(text, label, error, tokens=r.usage.total_tokens, latency_s=r.latency_s)
            except LLMError as exc:
                result = Result(text, error=f"{type(exc).__name__}: {exc.message}")
        advance()
        return result

    return await asyncio.gather(*(one(text) for text in texts))


@contextmanager
def progress_bar(total: int) -> Iterator[Callable[[], None]]:
    """Yields a function that moves the bar one step."""
    if find_spec("rich") is not None:
        from rich.progress import Progress

        with Progress() as progress:
            task = progress.add_task("classifying", total=total)
            yield lambda: progress.advance(task)
        return
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        print(f"\rclassifying [{'#' * (30 * done // total):<30}] {done}/{total}", end="", flush=True)

    yield advance
    print()


async def main_async(model: str, concurrency: int) -> None:
    start = time.perf_counter()
    async with AsyncClient() as client:
        with progress_bar(len(SENTENCES)) as advance:
            results = await classify_all(client, model, SENTENCES, concurrency, advance)
    wall = time.perf_counter() - start
    print(f"\n{'#':>2}  {'sentiment':<9}  {'tokens':>6}  {'ms':>5}  sentence")
    for i, r in enumerate(results, 1):
        note = f"  -> {r.error}" if r.error else ""
        print(f"{i:>2}  {r.label or 'ERROR':<9}  {r.tokens:>6}  {r.latency_s * 1000:>5.0f}  {r.text}{note}")
    ok = sum(1 for r in results if not r.error)
    print(f"\n{ok}/{len(results)} classified by {model} (at most {concurrency} at a time), "
          f"{sum(r.tokens for r in results)} tokens, {wall:.1f} s wall clock, "
          f"{sum(r.latency_s for r in results):.1f} s of request latency")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify sentences concurrently with a progress bar.")
    parser.add_argument("--model", default=os.environ.get("LLMRELAY_DEFAULT_MODEL") or "local/smollm2")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.model, args.concurrency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
