"""Multi-provider fallback with the router: a model group that is down hands over to another.

    python examples/fallback.py ["your question"]

The config below defines a provider "dead" (OpenAI kind, on a closed port:
127.0.0.1:9), a model group "primary" served by it, and "offline" (the local
model, local/smollm2) as primary's fallback. One call to "primary": the router
tries the dead deployment (a ConnectionError, retried once after a short
backoff), then moves to the fallback group, which answers offline and without a
key. The answer says who answered (``r.route``), and a hook prints every attempt.

The router decides what deserves another try: rate limits, overload, 5xx,
timeouts and connection failures are retried (on another deployment when there
is one); a deployment that cannot take the request (context window, content
filter, bad key) is skipped; an invalid request, which would fail everywhere,
is raised at once. See docs/routing.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from llmrelay import ChatResponse, Client, LLMError
from llmrelay.router import AttemptRecord

CONFIG = """\
providers:
  - name: dead
    kind: openai
    base_url: http://127.0.0.1:9/v1   # nothing listens on port 9
    api_key: sk-dead
    connect_timeout_s: 2
models:
  - name: primary
    deployments: [{provider: dead, model: gpt-4o-mini}]
    fallbacks: [offline]
  - name: offline
    deployments: [{provider: local, model: smollm2}]
routing:
  retries: 1
  backoff_s: 0.1
"""


def describe(record: AttemptRecord) -> str:
    """One line per attempt, as a hook sees it."""
    outcome = record.outcome if record.error is None else f"{record.outcome}: {record.error}"
    where = f"{record.group:<8} {record.deployment:<18}"
    return f"  attempt {record.number}: {where} {outcome} ({record.latency_s * 1000:.0f} ms)"


def ask(client: Client, group: str, messages: Any, **params: Any) -> ChatResponse:
    """One call to a model group; the router does the retries and the fallback."""
    return client.chat(group, messages, **params)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A model group falls back to another when its deployment is down.")
    parser.add_argument("question", nargs="?", default="What is the capital of France? Answer in one sentence.")
    parser.add_argument("--group", default="primary", help="the model group to ask (default: primary)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "llmrelay.yaml"
        config.write_text(CONFIG)
        client = Client(config, hooks=[lambda record: print(describe(record))])  # the file is read here
    with client:
        print(f"asking model group {args.group!r}\n")
        try:
            r = ask(
                client, args.group, [{"role": "user", "content": args.question}], max_tokens=40, temperature=0, seed=1
            )
        except LLMError as exc:
            print(f"no answer: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    assert r.route is not None
    via = f" (fallback from {r.route.requested!r})" if r.route.fallback else ""
    print(f"\nanswered by {r.route.deployment} in group {r.route.group!r}{via} after {r.route.attempts} attempts\n")
    print(f"Q: {args.question}\nA: {r.content.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
