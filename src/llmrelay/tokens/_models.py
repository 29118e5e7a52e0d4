"""Which tokenizer a model name gets, and how far to trust the count.

A model is named ``"PROVIDER/MODEL"`` (the provider kind, as the client passes
it) or bare. Its *kind* comes from the model name first (the part after the
last ``/``, so ``openrouter/anthropic/claude-3.5-sonnet`` is Anthropic), then
from the provider prefix (an Azure deployment name says nothing itself):

* ``openai``: names starting ``gpt-`` (not ``gpt-oss``), ``chatgpt-``, ``o1``,
  ``o3``, ``o4``, ``text-embedding`` (not Google's ``text-embedding-00N``);
  provider kinds ``openai`` and ``azure``;
* ``anthropic``: names containing ``claude``; provider kind ``anthropic``;
* ``gemini``: names containing ``gemini``; provider kinds ``gemini``, ``google``,
  ``vertex``;
* ``local``: the local chat model (``local/smollm2``), when its tokenizer can
  be read (llama-cpp-python and the model file installed, see ``_local.py``);
* ``estimate``: everything else (open-weight models and unknown names, the
  local models without their tokenizer).

Counts are exact for OpenAI models whose encoding is known (``o200k_base``
for GPT-4o, GPT-4.1, GPT-4.5, GPT-5, o1/o3/o4; ``cl100k_base`` for GPT-4,
GPT-3.5 and the text-embedding models) and for the local chat model (its own
tokenizer and chat template). Everything else is counted with ``o200k_base``
and multiplied by the kind's ``FACTORS`` entry, rounded up.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple, TypeAlias

Kind: TypeAlias = Literal["openai", "anthropic", "gemini", "local", "estimate"]

FACTORS: Final[dict[Kind, float]] = {
    "openai": 1.0,
    "local": 1.0,
    "anthropic": 1.25,
    "gemini": 1.1,
    "estimate": 1.25,
}
"""Multipliers over the ``o200k_base`` count for tokenizers we do not have.

Claude's tokenizer splits text into noticeably more pieces than OpenAI's 200k
vocabulary (more still for code and non-English text); Gemini's 256k
SentencePiece vocabulary is close to it; open-weight models range from
Llama 3's 128k vocabulary to 32k ones. The factors sit on the high side on
purpose: these counts gate context-window checks and budget reservations,
where counting a little high is the safe error.
"""

_PROVIDER_KINDS: Final[dict[str, Kind]] = {
    "openai": "openai",
    "azure": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "google": "gemini",
    "vertex": "gemini",
}
_O200K_PREFIXES: Final = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4")
_CL100K_PREFIXES: Final = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada-002")


class Tokenizer(NamedTuple):
    kind: Kind
    name: str
    """The bare model name, lower case."""
    encoding: str
    """The tiktoken encoding (``""`` for the local model's own tokenizer)."""
    exact: bool


_memo: dict[str, Tokenizer] = {}


def tokenizer(model: str) -> Tokenizer:
    """How to count for ``model`` (memoized)."""
    found = _memo.get(model)
    if found is None:
        if len(_memo) >= 4096:
            _memo.clear()
        found = _memo[model] = _resolve(model)
    return found


def _resolve(model: str) -> Tokenizer:
    lowered = model.strip().lower()
    provider, _, _ = lowered.rpartition("/")
    provider = provider.split("/", 1)[0]
    name = lowered.rsplit("/", 1)[-1]
    if provider == "local":
        from ._local import vocab

        if vocab(name) is not None:
            return Tokenizer("local", name, "", True)
    kind = _kind_from_name(name) or _PROVIDER_KINDS.get(provider, "estimate")
    if kind == "openai":
        encoding = _openai_encoding(name)
        if encoding is not None:
            return Tokenizer(kind, name, encoding, True)
    return Tokenizer(kind, name, "o200k_base", False)


def _kind_from_name(name: str) -> Kind | None:
    if name.startswith("gpt-oss"):
        return None
    if name.startswith("text-embedding-0"):
        return "gemini"  # Google's text-embedding-004/005
    if name.startswith(("gpt-", "chatgpt-", "o1", "o3", "o4", "text-embedding")):
        return "openai"
    if "claude" in name:
        return "anthropic"
    if "gemini" in name:
        return "gemini"
    return None


def _openai_encoding(name: str) -> str | None:
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None
