"""Provider kinds: one package per wire format, loaded on first use.

Each package has the same shape: ``codec.py`` (pure wire <-> canonical
functions), ``stream.py`` (its ``ChatStreamDecoder``), ``errors.py``
(``map_error``), ``provider.py`` (the thin provider class) and, where the
gateway speaks the format, ``inbound.py``. See docs/providers.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .. import errors

if TYPE_CHECKING:
    from .base import Provider

# kind -> "module:Class". OpenAI-compatible services are kinds of the openai package
# (see providers/openai/compat.py for their quirks).
_KINDS: dict[str, str] = {
    "openai": "llmrelay.providers.openai.provider:OpenAIProvider",
    "openai-responses": "llmrelay.providers.openai_responses.provider:OpenAIResponsesProvider",
    "azure": "llmrelay.providers.openai.azure:AzureOpenAIProvider",
    "anthropic": "llmrelay.providers.anthropic.provider:AnthropicProvider",
    "gemini": "llmrelay.providers.gemini.provider:GeminiProvider",
    "cohere": "llmrelay.providers.cohere.provider:CohereProvider",
    "bedrock": "llmrelay.providers.bedrock.provider:BedrockProvider",
    "local": "llmrelay.providers.local.provider:LocalProvider",
}


def register_kind(kind: str, target: str) -> None:
    """Add a provider kind (``"package.module:Class"``)."""
    _KINDS[kind] = target


def known_kinds() -> list[str]:
    from .openai.compat import COMPAT_KINDS

    return sorted({*_KINDS, *COMPAT_KINDS})


def provider_class(kind: str) -> type[Provider]:
    target = _KINDS.get(kind)
    if target is None:
        from .openai.compat import COMPAT_KINDS

        if kind in COMPAT_KINDS:
            target = _KINDS["openai"]
        else:
            raise errors.ConfigError(f"unknown provider kind {kind!r}; known kinds: {', '.join(known_kinds())}")
    module, _, cls = target.partition(":")
    return getattr(import_module(module), cls)  # type: ignore[no-any-return]
