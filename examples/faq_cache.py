"""A FAQ bot that answers repeated questions from the response cache.

    python examples/faq_cache.py [--model PROVIDER/MODEL] [--threshold 0.9]

The model group ``faq`` caches answers (exact and, for requests that ask, by
meaning with the local MiniLM embeddings) and coalesces identical requests in
flight. The script asks:

1. a question (a miss: the model answers);
2. the same question again (an exact hit: no model call, no cost);
3. the same question in other words (a semantic hit);
4. a new question five times at once (one model call, shared by all five).

Runs offline on the local models (local/smollm2, all-MiniLM-L6-v2); with a
hosted model (--model or LLMRELAY_DEFAULT_MODEL) the savings are real money.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from llmrelay import AsyncClient, ModelGroup
from llmrelay.cache import CacheSettings
from llmrelay.config import load_settings

SYSTEM = "You answer questions about a bakery in one short sentence. It opens at 7am and closes at 6pm."


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("LLMRELAY_DEFAULT_MODEL") or "local/smollm2")
    parser.add_argument("--threshold", type=float, default=0.9, help="semantic similarity needed for a hit")
    args = parser.parse_args()
    faq = ModelGroup("faq", [args.model], cache=True, semantic_cache=True, coalesce=True)
    settings = load_settings()  # the environment (and LLMRELAY_CONFIG), as AsyncClient() would read it
    settings.cache = CacheSettings(threshold=args.threshold)  # or `cache: {semantic: {threshold: ...}}` in YAML
    async with AsyncClient(settings, models=[faq]) as client:
        semantic = {"semantic": True}
        for label, question in (
            ("first time", "When do you open in the morning?"),
            ("same question", "When do you open in the morning?"),
            ("other words", "When do you open in the mornings?"),
        ):
            begun = time.perf_counter()
            r = await client.chat("faq", ask(question), cache=semantic, max_tokens=40, temperature=0)
            took = (time.perf_counter() - begun) * 1000
            assert r.cache is not None
            similarity = f", similarity {r.cache.similarity:.2f}" if r.cache.similarity is not None else ""
            print(f"{label:<14} {r.cache.status:<4} {took:8.1f} ms{similarity}  {question!r}")
            print(f"{'':<14} -> {r.content.strip()}")
        before = client.cache.stats["miss"]
        same = [
            client.chat("faq", ask("Do you sell bread on Sundays?"), max_tokens=40, temperature=0) for _ in range(5)
        ]
        answers = await asyncio.gather(*same)
        shared = sum(1 for a in answers if a.cache is not None and a.cache.coalesced)
        calls = client.cache.stats["miss"] - before
        print(f"5 identical questions at once: {calls} model call, {shared} answers shared")
        print(f"cache: {dict(client.cache.stats)}")


if __name__ == "__main__":
    asyncio.run(main())
