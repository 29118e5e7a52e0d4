"""Quickstart: one question, answered by whichever provider you have a key for.

    python examples/quickstart.py ["your question"]

It uses the first of OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY,
MISTRAL_API_KEY it finds (or LLMRELAY_DEFAULT_MODEL). With none set it runs
offline against llmrelay's scripted test provider, so you can see the API work.
"""

from __future__ import annotations

import os
import sys

from llmrelay import Client, Finish, LLMError, TextDelta
from llmrelay.testing import FakeProvider

CANDIDATES = [
    ("OPENAI_API_KEY", "openai/gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic/claude-haiku-4-5"),
    ("GEMINI_API_KEY", "gemini/gemini-2.5-flash"),
    ("MISTRAL_API_KEY", "mistral/mistral-small-latest"),
]


def pick_model() -> tuple[str, list[FakeProvider]]:
    if os.environ.get("LLMRELAY_DEFAULT_MODEL"):
        return os.environ["LLMRELAY_DEFAULT_MODEL"], []
    for env_var, model in CANDIDATES:
        if os.environ.get(env_var):
            return model, []
    print("(no provider key set: answering with the offline scripted provider)\n")
    return "offline/demo", [FakeProvider("offline", ["Paris is the capital of France."])]


def main() -> int:
    question = sys.argv[1] if len(sys.argv) > 1 else "What is the capital of France?"
    model, providers = pick_model()
    with Client(providers=providers) as client:
        try:
            print(f"{model}> ", end="", flush=True)
            for event in client.stream(model, [{"role": "user", "content": question}], max_tokens=200):
                if isinstance(event, TextDelta):
                    print(event.text, end="", flush=True)
                elif isinstance(event, Finish):
                    r = event.response
                    cost = f"${r.cost_usd:.6f}" if r.cost_usd is not None else "unknown cost"
                    print(f"\n\n[{r.usage.prompt_tokens} + {r.usage.completion_tokens} tokens, {cost}, "
                          f"{r.latency_s * 1000:.0f} ms]")
        except LLMError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
