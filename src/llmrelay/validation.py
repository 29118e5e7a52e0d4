"""Checks a request passes before it is sent anywhere: its generation parameters
(the library's arguments and every wire format the gateway decodes), its embedding
inputs, and whether its prompt can fit the context window of a deployment's model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from . import errors
from .types import ChatRequest

if TYPE_CHECKING:
    from .providers.base import Provider


def check_params(
    *, max_tokens: object, temperature: object, top_p: object, seed: object, stop: object, user: object
) -> None:
    """Raise ``InvalidRequest`` naming the first generation parameter of the wrong type or range."""
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise errors.InvalidRequest(f"max_tokens must be a positive integer, not {max_tokens!r}")
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None and (type(value) not in (int, float) or value < 0):  # type: ignore[operator]
            raise errors.InvalidRequest(f"{name} must be a number >= 0, not {value!r}")
    if seed is not None and type(seed) is not int:
        raise errors.InvalidRequest(f"seed must be an integer, not {seed!r}")
    if (
        stop is not None
        and not isinstance(stop, str)
        and (not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop))
    ):
        raise errors.InvalidRequest(f"stop must be a string or a list of strings, not {stop!r}")
    if user is not None and not isinstance(user, str):
        raise errors.InvalidRequest(f"user must be a string, not {user!r}")


def check_request(request: ChatRequest) -> None:
    """``check_params`` on a request decoded from a wire format (the gateway's routes, batch lines)."""
    check_params(
        max_tokens=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
        seed=request.seed, stop=request.stop, user=request.user,
    )  # fmt: skip


def embed_inputs(inputs: str | Sequence[str]) -> list[str]:
    """The texts to embed, as a list; ``InvalidRequest`` for none or one that is not a string."""
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    if not all(isinstance(t, str) for t in texts):
        raise errors.InvalidRequest("embed inputs must be strings")
    if not texts:
        raise errors.InvalidRequest("embed needs at least one input text")
    return texts


def check_fits(provider: Provider, request: ChatRequest) -> Callable[[], None] | None:
    """Raise ``ContextWindowExceeded`` before sending a prompt that cannot fit. A prompt
    long enough that counting it would hold the event loop is not counted here: the
    count (which raises the same) is returned, for the caller to run in a worker thread."""
    window = provider.context_window(request.model)
    if window is None:
        return None
    # Cheap bound first: a token is at least one UTF-8 byte (at most 4 per character).
    chars = sum(len(m.text) + 8 for m in request.messages)
    has_images = any(not isinstance(m.content, str) for m in request.messages if m.content)
    output = (request.max_tokens or 0) if provider.window_includes_output else 0
    if not has_images and not request.tools and 4 * chars + output <= window:
        return None
    from .tokens import COUNT_IN_THREAD_CHARS, check_context_window, estimate_factor

    def count() -> None:
        key = f"{provider.config.kind}/{request.model}"
        # Estimates err high on purpose; refuse only what cannot fit even without that margin.
        counted = provider.count_prompt(request.model, request.messages, request.tools or None)
        prompt = int(counted / estimate_factor(key))
        asked = request.max_tokens if provider.window_includes_output else None
        check_context_window(provider.model_info(request.model), prompt, asked)

    if chars > COUNT_IN_THREAD_CHARS:
        return count
    count()
    return None
