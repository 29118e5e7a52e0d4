"""Continuing an answer: the request that makes a deployment go on with an assistant
message that was cut short, for the router's ``stream_resume``.

Deployments that can (``Provider.continuation``) take the conversation with the
text delivered so far as a last, open assistant message, and answer only what
follows it:

- Anthropic's Messages API and Claude on Bedrock treat a last assistant message as
  the beginning of the answer ("prefill"). It may not end in white space: that is
  left out of the prefill and kept as ``echo``, which the model usually writes
  again first, and which the router then drops so that no text is repeated.
- vLLM, SGLang and llama.cpp's server take ``continue_final_message: true`` with
  ``add_generation_prompt: false`` (llama.cpp also continues a last assistant
  message without them).

Nothing else is continued: OpenAI's own API, for one, answers a last assistant
message with a new message, which would repeat or contradict the text shown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..types import ChatRequest, Message


@dataclass(frozen=True, slots=True)
class Continuation:
    """The request to send, and the text the answer is expected to begin with again
    (``echo``: white space the prefill could not end with), to be dropped once."""

    request: ChatRequest
    echo: str = ""


def prefilled(
    request: ChatRequest,
    text: str,
    *,
    strip_trailing_space: bool = False,
    extra: dict[str, Any] | None = None,
    prefilled_by_caller: bool = True,
) -> Continuation | None:
    """``request`` with ``text`` as the beginning of the answer, or ``None`` when the
    conversation cannot be continued as text: structured output, or a last assistant
    turn that calls tools or holds more than text. A last assistant message of the
    caller's own is merged with ``text`` when the provider took it as the beginning of
    the answer (``prefilled_by_caller``); else it stays a turn of its own."""
    if request.response_format is not None and request.response_format.type != "text":
        return None
    messages = list(request.messages)
    if messages and messages[-1].role == "assistant" and prefilled_by_caller:
        last = messages.pop()
        if last.tool_calls or not isinstance(last.content, str | None) or last.reasoning:
            return None
        text = (last.content or "") + text
    kept, echo = text, ""
    if strip_trailing_space:
        kept = text.rstrip()
        echo = text[len(kept) :]
    if kept:
        messages.append(Message(role="assistant", content=kept))
    more = {**request.extra, **extra} if extra else request.extra
    return Continuation(replace(request, messages=messages, extra=more), echo)


__all__ = ["Continuation", "prefilled"]
