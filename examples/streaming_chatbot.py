"""A streaming chatbot with memory: tokens print as they arrive; Ctrl-C cancels an answer.

    python examples/streaming_chatbot.py                 # chat in the terminal (/quit or Ctrl-D to leave)
    python examples/streaming_chatbot.py --demo          # scripted two-turn demo
    printf 'Hi\\n' | python examples/streaming_chatbot.py --interactive   # turns from a pipe

Like chatbot.py, but with client.stream: each TextDelta is printed at once and the
Finish event brings the whole response (usage and latency). Ctrl-C while an answer
is streaming stops it at the next token: closing the stream stops the generation
too, and the chat goes on. Ctrl-C or Ctrl-D at the prompt, or a closed stdin, ends
the program. Runs on
the local model (local/smollm2) unless --model or LLMRELAY_DEFAULT_MODEL says otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from contextlib import closing
from types import FrameType
from typing import Any

from llmrelay import ChatResponse, Client, Finish, LLMError, TextDelta

SYSTEM = "You are a friendly assistant. Answer in one or two short sentences."
DEMO_TURNS = ["Remember this number: 42.", "What number did I ask you to remember?"]


class CtrlC:
    """Inside ``with``, a first Ctrl-C only sets ``pressed`` (checked between tokens);
    a second one raises KeyboardInterrupt as usual."""

    pressed = False

    def __enter__(self) -> CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def stream_reply(
    client: Client, model: str, history: list[dict[str, str]], text: str, stop: Callable[[], bool], **params: Any
) -> ChatResponse | None:
    """Print the answer to ``text`` as it streams; on success both turns join ``history``.
    When ``stop()`` turns true the stream is closed (the model stops too) and None is returned."""
    question = {"role": "user", "content": text}
    response: ChatResponse | None = None
    print("bot> ", end="", flush=True)
    with closing(client.stream(model, [*history, question], **params)) as events:
        for event in events:
            if stop():
                print(" [answer cancelled]", flush=True)
                return None
            if isinstance(event, TextDelta):
                print(event.text, end="", flush=True)
            elif isinstance(event, Finish):
                response = event.response
    assert response is not None, "a successful stream ends with Finish"
    usage, ms = response.usage, response.latency_s * 1000
    print(f"\n     [{usage.prompt_tokens} + {usage.completion_tokens} tokens, {ms:.0f} ms, {response.finish_reason}]")
    history += [question, {"role": "assistant", "content": response.content.strip()}]
    return response


def chat_turn(client: Client, model: str, history: list[dict[str, str]], text: str, **params: Any) -> None:
    """One turn that survives Ctrl-C and provider errors (the memory is then left unchanged)."""
    try:
        with CtrlC() as ctrl_c:
            stream_reply(client, model, history, text, lambda: ctrl_c.pressed, **params)
    except KeyboardInterrupt:
        print(" [answer cancelled]", flush=True)
    except LLMError as exc:
        print(f"\nerror ({type(exc).__name__}): {exc}", file=sys.stderr)


def next_line() -> str | None:
    try:
        return input("you> ").strip()
    except (EOFError, KeyboardInterrupt):  # Ctrl-D, Ctrl-C at the prompt or a closed stdin
        print()
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A streaming chatbot with conversation memory.")
    parser.add_argument("--model", default=os.environ.get("LLMRELAY_DEFAULT_MODEL") or "local/smollm2")
    parser.add_argument("--demo", action="store_true", help="run the scripted two-turn demo")
    parser.add_argument("--interactive", action="store_true", help="read turns from stdin even if it is a pipe")
    parser.add_argument("--max-turns", type=int, default=20, help="stop after this many questions")
    parser.add_argument("--max-tokens", type=int, default=60)
    args = parser.parse_args(argv)
    params: dict[str, Any] = {"max_tokens": args.max_tokens, "temperature": 0, "seed": 42}
    demo = args.demo or (not args.interactive and not sys.stdin.isatty())
    print(f"(model: {args.model}{', demo' if demo else ''}; Ctrl-C cancels an answer)", flush=True)
    history = [{"role": "system", "content": SYSTEM}]
    with Client() as client:
        for turn in range(args.max_turns):
            text = (DEMO_TURNS[turn] if turn < len(DEMO_TURNS) else None) if demo else next_line()
            if text is None or text in ("/quit", "/exit"):
                break
            if demo:
                print(f"you> {text}")
            if text:
                chat_turn(client, args.model, history, text, **params)
    print("bye")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
