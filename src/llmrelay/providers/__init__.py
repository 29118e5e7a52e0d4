"""Provider kinds: one module per wire format, loaded on first use."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .. import errors

if TYPE_CHECKING:
    from .base import Provider

# kind -> "module:Class". OpenAI-compatible services are kinds of the openai module
# (see providers/openai_compat.py for their quirks).
_KINDS: dict[str, str] = {
    "openai": "llmrelay.providers.openai:OpenAIProvider",
    "openai-responses": "llmrelay.providers.openai_responses:OpenAIResponsesProvider",
    "azure": "llmrelay.providers.azure:AzureOpenAIProvider",
    "anthropic": "llmrelay.providers.anthropic:AnthropicProvider",
    "gemini": "llmrelay.providers.gemini:GeminiProvider",
    "cohere": "llmrelay.providers.cohere:CohereProvider",
    "bedrock": "llmrelay.providers.bedrock:BedrockProvider",
    "local": "llmrelay.providers.local:LocalProvider",
}


def register_kind(kind: str, target: str) -> None:
    """Add a provider kind (``"package.module:Class"``)."""
    _KINDS[kind] = target


def known_kinds() -> list[str]:
    from .openai_compat import COMPAT_KINDS

    return sorted({*_KINDS, *COMPAT_KINDS})


def provider_class(kind: str) -> type[Provider]:
    target = _KINDS.get(kind)
    if target is None:
        from .openai_compat import COMPAT_KINDS

        if kind in COMPAT_KINDS:
            target = _KINDS["openai"]
        else:
            raise errors.ConfigError(f"unknown provider kind {kind!r}; known kinds: {', '.join(known_kinds())}")
    module, _, cls = target.partition(":")
    return getattr(import_module(module), cls)  # type: ignore[no-any-return]
