"""The local chat model's speed: load time, time to first token, tokens/s.

    python bench/bench_local_chat.py [--runs 5] [--tokens 128]

Each figure is the median of ``--runs`` runs; generation uses a fixed prompt,
temperature 0 and a fixed seed, through ``AsyncClient.stream`` (the path the
CLI and the gateway use), so it includes llmrelay's own overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


async def one_load() -> float:
    from llmrelay.providers.base import ProviderConfig
    from llmrelay.providers.local.provider import LocalProvider

    provider = LocalProvider(ProviderConfig("local", "local"))
    start = time.perf_counter()
    await provider.engine("smollm2").load()
    elapsed = time.perf_counter() - start
    await provider.aclose()
    return elapsed


async def generations(runs: int, tokens: int) -> tuple[list[float], list[float], list[int]]:
    from llmrelay import AsyncClient, TextDelta

    ttfts, rates, counts = [], [], []
    async with AsyncClient(env={}) as client:
        await client.chat("local/smollm2", "Hi", max_tokens=2)  # warm-up: first decode builds the graphs
        for _ in range(runs):
            start = time.perf_counter()
            first = None
            async for event in client.stream("local/smollm2", PROMPT, max_tokens=tokens, temperature=0, seed=1):
                if isinstance(event, TextDelta) and first is None:
                    first = time.perf_counter()
                elif event.type == "finish":
                    done = time.perf_counter()
                    generated = event.response.usage.completion_tokens
            assert first is not None
            ttfts.append(first - start)
            rates.append(generated / (done - start))
            counts.append(generated)
    return ttfts, rates, counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    loads = [asyncio.run(one_load()) for _ in range(args.runs)]
    ttfts, rates, counts = asyncio.run(generations(args.runs, args.tokens))
    print(f"local/smollm2 (SmolLM2-135M-Instruct Q4_1, llama.cpp), medians of {args.runs} runs")
    print(f"  load                  {statistics.median(loads) * 1000:8.0f} ms")
    print(f"  time to first token   {statistics.median(ttfts) * 1000:8.0f} ms")
    print(f"  generation            {statistics.median(rates):8.1f} tokens/s  ({statistics.median(counts)} tokens)")


if __name__ == "__main__":
    main()
