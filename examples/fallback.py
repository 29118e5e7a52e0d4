"""Multi-provider fallback: try a list of models in order until one answers.

    python examples/fallback.py ["your question"] [--model PROVIDER/MODEL ...]

The default list starts with a provider that is down: an OpenAI-kind provider
named "dead" whose base URL is a closed port (127.0.0.1:9), configured from the
small YAML below. Its attempt fails with a ConnectionError, and the local model
(local/smollm2) answers, offline and without a key.

Only failures that another provider might not have move on to the next model:
errors marked ``.retryable`` (rate limits, overload, 5xx, timeouts, connection
failures) and AuthenticationError (a bad key at one provider says nothing about
the next). Anything else, such as an InvalidRequest, would fail everywhere and
is raised at once. The router does all this by itself: a model group with
``fallbacks:`` in the config file (see docs/configuration.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import llmrelay
from llmrelay import ChatResponse, Client, LLMError, NoHealthyDeployment

CONFIG = """\
providers:
  - name: dead
    kind: openai
    base_url: http://127.0.0.1:9/v1   # nothing listens on port 9
    api_key: sk-dead
    connect_timeout_s: 2
"""
MODELS = ["dead/gpt-4o-mini", "local/smollm2"]


def worth_falling_back(exc: LLMError) -> bool:
    return exc.retryable or isinstance(exc, llmrelay.ConnectionError | llmrelay.Timeout | llmrelay.AuthenticationError)


def chat_with_fallback(
    client: Client, models: list[str], messages: Any, **params: Any
) -> tuple[ChatResponse, list[tuple[str, LLMError]]]:
    """The first answer from ``models``, tried in order, and the failures before it."""
    failures: list[tuple[str, LLMError]] = []
    for model in models:
        try:
            return client.chat(model, messages, **params), failures
        except LLMError as exc:
            if not worth_falling_back(exc):
                raise
            failures.append((model, exc))
    tried = "; ".join(f"{model}: {type(exc).__name__}" for model, exc in failures)
    raise NoHealthyDeployment(f"every model failed ({tried})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Try models in order until one answers.")
    parser.add_argument("question", nargs="?", default="What is the capital of France? Answer in one sentence.")
    parser.add_argument(
        "--model", action="append", dest="models", help=f"a model to try (repeat it; default: {' '.join(MODELS)})"
    )
    args = parser.parse_args(argv)
    models: list[str] = args.models or MODELS
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "llmrelay.yaml"
        config.write_text(CONFIG)
        client = Client(config)  # the file is read here, so it may go away afterwards
    with client:
        print(f"trying in order: {', '.join(models)}\n")
        try:
            response, failures = chat_with_fallback(
                client, models, [{"role": "user", "content": args.question}], max_tokens=40, temperature=0, seed=1
            )
        except LLMError as exc:
            print(f"no answer: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    for model, error in failures:
        print(f"  failed   {model}: {type(error).__name__} (retryable={error.retryable}): {error.message}")
    print(f"  answered {response.provider}/{response.model} in {response.latency_s * 1000:.0f} ms\n")
    print(f"Q: {args.question}\nA: {response.content.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
