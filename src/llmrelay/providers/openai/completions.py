"""OpenAI's legacy completions (``POST /v1/completions``), inbound: a prompt in, text
out, served by any chat deployment.

The prompt becomes one user message, and the answer's text is the completion.
What a chat model cannot give is refused with a 400 naming the field rather than
faked: several prompts or choices (``n``, ``best_of``), token-id prompts,
``logprobs`` and ``suffix``. ``echo`` puts the prompt before the text, as the
API does. As in OpenAI's API, ``max_tokens`` defaults to 16.
"""

from __future__ import annotations

from typing import Any

from ... import errors
from ..._ids import new_id
from ..._json import dumps
from ..._sse import encode_sse
from ...types import ChatRequest, ChatResponse, Finish, FinishReason, Message, StreamEvent, TextDelta
from .inbound import usage_to_wire

DEFAULT_MAX_TOKENS = 16
"""The API's default for a completion that sets no ``max_tokens``."""

_KNOWN = frozenset(
    {
        "model", "prompt", "max_tokens", "temperature", "top_p", "stop", "seed", "user", "stream",
        "stream_options", "echo", "n", "best_of", "logprobs", "suffix",
    }
)  # fmt: skip
_FINISH: dict[FinishReason, str] = {"length": "length", "content_filter": "content_filter"}


def request_from_wire(body: Any) -> tuple[ChatRequest, str | None]:
    """The canonical request of a completions body, and the prompt to echo (``None``
    unless ``echo`` is true). Fields not listed here go to ``extra`` (e.g.
    ``frequency_penalty``, ``logit_bias``), under the pass-through rules of extra.py."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise errors.InvalidRequest("'model' is required and must be a string")
    prompt = _prompt(body.get("prompt", ...))
    for name in ("n", "best_of"):
        if body.get(name) not in (None, 1):
            raise errors.InvalidRequest(
                f"'{name}' must be 1, not {body[name]!r}: the gateway gives one completion; send separate requests"
            )
    if body.get("logprobs") is not None:
        raise errors.InvalidRequest("'logprobs' is not available: chat deployments serve this route")
    if body.get("suffix") not in (None, ""):
        raise errors.InvalidRequest("'suffix' (insertion) is not available: chat deployments serve this route")
    echo = body.get("echo", False)
    if echo is not None and not isinstance(echo, bool):
        raise errors.InvalidRequest(f"'echo' must be true or false, not {echo!r}")
    stop = body.get("stop")
    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    request = ChatRequest(
        model=model,
        messages=[Message(role="user", content=prompt)],
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        stop=[stop] if isinstance(stop, str) else stop,
        seed=body.get("seed"),
        user=body.get("user"),
        extra={k: v for k, v in body.items() if k not in _KNOWN},
    )
    return request, prompt if echo else None


def _prompt(prompt: Any) -> str:
    if prompt is ...:
        raise errors.InvalidRequest("'prompt' is required: a string")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list):
        if prompt and all(isinstance(p, str) for p in prompt):
            raise errors.InvalidRequest(
                f"'prompt' holds {len(prompt)} prompts: the gateway answers one per request; send separate requests"
            )
        raise errors.InvalidRequest("'prompt' must be a string (token ids are not accepted: send the text)")
    if not isinstance(prompt, str) or not prompt:
        raise errors.InvalidRequest("'prompt' must be a non-empty string")
    return prompt


def finish_reason(reason: FinishReason) -> str:
    return _FINISH.get(reason, "stop")


def response_to_wire(response: ChatResponse, created: int, model: str, echo: str | None = None) -> dict[str, Any]:
    """The ``text_completion`` object for an answer (``echo``: the prompt, put first)."""
    return {
        "id": f"cmpl-{new_id()}",
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "text": (echo or "") + response.content,
                "index": 0,
                "logprobs": None,
                "finish_reason": finish_reason(response.finish_reason),
            }
        ],
        "usage": usage_to_wire(response.usage),
    }


class CompletionEncoder:
    """Canonical stream events -> ``text_completion`` server-sent events (the same shape
    as the JSON answer, one text piece each), ending with ``data: [DONE]``."""

    def __init__(self, model: str, created: int, include_usage: bool, echo: str | None = None) -> None:
        self._head = {"id": f"cmpl-{new_id()}", "object": "text_completion", "created": created, "model": model}
        self._include_usage = include_usage
        self._echo = echo

    def _chunk(self, text: str, finish: str | None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return encode_sse(dumps({**self._head, "choices": [choice]}))

    def start(self) -> bytes:
        return self._chunk(self._echo, None) if self._echo else b""

    def feed(self, event: StreamEvent) -> bytes:
        if type(event) is TextDelta:
            return self._chunk(event.text, None) if event.text else b""
        if type(event) is not Finish:
            return b""  # tool calls cannot be asked for here; reasoning is not part of a completion
        response = event.response
        out = self._chunk("", finish_reason(response.finish_reason))
        if self._include_usage:
            out += encode_sse(dumps({**self._head, "choices": [], "usage": usage_to_wire(response.usage)}))
        return out

    def error(self, exc: errors.LLMError) -> bytes:
        return encode_sse(dumps({"error": {"message": str(exc), "type": "api_error", "code": exc.code}}))

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"
