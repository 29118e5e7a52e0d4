"""Exact counts for the local chat model (``local/smollm2``), with its own tokenizer.

The prompt is counted as ``local/llama.py``'s engine builds it: the messages
rendered with the chat template stored in the GGUF file, tokenized with special
tokens parsed (and a BOS token unless the template writes one); text alone is
tokenized as the engine counts its output. Only the vocabulary is loaded
(llama.cpp's ``vocab_only``: about 0.2 s once, no weights, no context).

``vocab`` is ``None`` when llama-cpp-python or the model file is missing (or
cannot be read): the caller then counts an estimate, and says so.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import errors
from ..types import Message, ToolSpec

__all__ = ["LocalVocab", "vocab"]

log = logging.getLogger("llmrelay.tokens")

_lock = threading.Lock()
_loaded: dict[str, LocalVocab | None] = {}


class LocalVocab:
    """A GGUF model's tokenizer and chat template (thread-safe)."""

    def __init__(self, model: Any, formatter: Any) -> None:
        self._model = model
        self._formatter = formatter
        self._lock = threading.Lock()

    def count_text(self, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            return len(self._model.tokenize(text.encode(), add_bos=False, special=False))

    def count_messages(
        self,
        model: str,
        messages: Sequence[Message | Mapping[str, Any]],
        tools: Sequence[ToolSpec | Mapping[str, Any]] | None,
        system_prompt: str | None = None,
    ) -> int:
        """The prompt's tokens as the engine builds it, with its default system prompt
        (``system_prompt``: the one a provider is configured with instead)."""
        from .._messages import to_messages
        from ..local.llama import DEFAULT_SYSTEM_PROMPT, open_prompt

        if tools:
            raise errors.InvalidRequest(f"local/{model} cannot call tools: remove the tools", model=model)
        canonical = to_messages([m if isinstance(m, Message) else dict(m) for m in messages])
        default = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
        text, special, _ = open_prompt(self._formatter, canonical, default)
        with self._lock:
            prompt = self._model.tokenize(text.encode(), add_bos=not special, special=True)
        return len(prompt)

    def close(self) -> None:
        self._model.close()


def vocab(model: str) -> LocalVocab | None:
    """The tokenizer of local chat model ``model`` (loaded once), or ``None`` when it cannot be had."""
    from ..local.assets import CHAT_MODELS

    asset = CHAT_MODELS.get(model)
    if asset is None:
        return None
    key = asset.relative
    if key in _loaded:
        return _loaded[key]
    with _lock:
        if key not in _loaded:
            _loaded[key] = _load(asset.path)
    return _loaded[key]


def _load(path: Callable[[], Path]) -> LocalVocab | None:
    try:
        import llama_cpp
        from llama_cpp._internals import LlamaModel  # what ``Llama`` itself loads a model with
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model: Any = LlamaModel(path_model=str(path()), params=params, verbose=False)
    except ImportError:
        return None
    except (errors.LLMError, ValueError, RuntimeError, OSError):
        log.info("cannot read the local model's tokenizer; its counts are estimates", exc_info=True)
        return None
    template = model.metadata().get("tokenizer.chat_template")
    if not template:
        model.close()
        return None
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(model.token_eos()),
        bos_token=model.token_get_text(model.token_bos()),
    )
    return LocalVocab(model, formatter)


@atexit.register
def _close_all() -> None:
    """Free the vocabularies before the interpreter tears down what llama.cpp's finalizers need."""
    for found in _loaded.values():
        if found is not None:
            found.close()
    _loaded.clear()
