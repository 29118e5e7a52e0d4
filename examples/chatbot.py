"""A chatbot with conversation memory: every request carries the whole conversation.

    python examples/chatbot.py                  # chat in the terminal (/quit or Ctrl-D to leave)
    python examples/chatbot.py --demo           # scripted: a number to remember, then a question about it
    printf 'Hi\\nWho are you?\\n' | python examples/chatbot.py --interactive   # turns from a pipe

It needs no API key: it runs on the local model (local/smollm2) unless you pass
--model or set LLMRELAY_DEFAULT_MODEL. When stdin is not a terminal it runs the
demo (unless --interactive). The memory is a plain list of messages: each answer
is appended to it, and the next question is sent with all of it. (The 135M local
model is tiny: its recall is hit and miss; a hosted model remembers reliably.)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from llmrelay import ChatResponse, Client, LLMError

SYSTEM = "You are a friendly assistant. Answer in one or two short sentences."
DEMO_TURNS = ["Remember this number: 42.", "What number did I ask you to remember?"]


def new_history() -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}]


def reply(client: Client, model: str, history: list[dict[str, str]], text: str, **params: Any) -> ChatResponse:
    """Answer ``text`` with the conversation so far; on success both turns join ``history``
    (on failure it is left as it was, so the conversation can go on)."""
    question = {"role": "user", "content": text}
    response = client.chat(model, [*history, question], **params)
    history += [question, {"role": "assistant", "content": response.content.strip()}]
    return response


def run_demo(client: Client, model: str, max_turns: int, **params: Any) -> list[dict[str, str]]:
    history = new_history()
    for text in DEMO_TURNS[:max_turns]:
        print(f"you> {text}")
        print(f"bot> {reply(client, model, history, text, **params).content.strip()}")
    print(f"\n[memory: the last request carried {len(history) - 1} messages: the system prompt and every turn before]")
    return history


def run_interactive(client: Client, model: str, max_turns: int, **params: Any) -> None:
    history = new_history()
    answered = 0
    while answered < max_turns:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):  # Ctrl-D, Ctrl-C or a closed stdin
            break
        if text in ("/quit", "/exit"):
            break
        if not text:
            continue
        try:
            print(f"bot> {reply(client, model, history, text, **params).content.strip()}")
            answered += 1
        except LLMError as exc:
            print(f"error ({type(exc).__name__}): {exc}", file=sys.stderr)
    print("\nbye")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A chatbot with conversation memory.")
    parser.add_argument("--model", default=os.environ.get("LLMRELAY_DEFAULT_MODEL") or "local/smollm2")
    parser.add_argument("--demo", action="store_true", help="run the scripted two-turn demo")
    parser.add_argument("--interactive", action="store_true", help="read turns from stdin even if it is a pipe")
    parser.add_argument("--max-turns", type=int, default=20, help="stop after this many answers")
    parser.add_argument("--max-tokens", type=int, default=60)
    args = parser.parse_args(argv)
    params: dict[str, Any] = {"max_tokens": args.max_tokens, "temperature": 0, "seed": 42}
    demo = args.demo or (not args.interactive and not sys.stdin.isatty())
    print(f"(model: {args.model}{', demo' if demo else ''})")
    with Client() as client:
        try:
            if demo:
                run_demo(client, args.model, args.max_turns, **params)
            else:
                run_interactive(client, args.model, args.max_turns, **params)
        except LLMError as exc:
            print(f"error ({type(exc).__name__}): {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
