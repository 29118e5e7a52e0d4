"""llmrelay: one typed API for every LLM provider.

    from llmrelay import Client
    client = Client()
    r = client.chat("openai/gpt-4o-mini", [{"role": "user", "content": "Hi"}])

Heavy modules (the HTTP client, pydantic, tiktoken) load on first use, so
``import llmrelay`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .errors import (
    AuthenticationError,
    BudgetExceeded,
    CapabilityUnavailable,
    CircuitOpen,
    ConfigError,
    ConnectionError,
    ContentFiltered,
    ContextWindowExceeded,
    InvalidRequest,
    LLMError,
    NoHealthyDeployment,
    NotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    ProviderNotConfigured,
    RateLimited,
    StateUnavailable,
    StreamInterrupted,
    StructuredOutputError,
    Timeout,
)
from .types import (
    ChatRequest,
    ChatResponse,
    ConnectionCheck,
    EmbeddingResponse,
    ErrorEvent,
    Finish,
    ImagePart,
    Message,
    ModelInfo,
    ReasoningDelta,
    ResponseFormat,
    Route,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
    UsageEvent,
)

if TYPE_CHECKING:
    from ._http import AiohttpTransport, Timeouts, Transport
    from ._http1 import Http1Transport
    from .cache import CacheInfo, CacheOptions
    from .client import AsyncClient
    from .client_sync import Client
    from .cost import Prices
    from .router import Deployment, ModelGroup, RoutingSettings
    from .tokens import count_tokens
    from .tools import Tool


_LAZY = {
    "AiohttpTransport": "llmrelay._http",
    "AsyncClient": "llmrelay.client",
    "CacheInfo": "llmrelay.cache",
    "CacheOptions": "llmrelay.cache",
    "Client": "llmrelay.client_sync",
    "Deployment": "llmrelay.router",
    "Http1Transport": "llmrelay._http1",
    "ModelGroup": "llmrelay.router",
    "Prices": "llmrelay.cost",
    "RoutingSettings": "llmrelay.router",
    "Timeouts": "llmrelay._http",
    "Tool": "llmrelay.tools",
    "Transport": "llmrelay._http",
    "count_tokens": "llmrelay.tokens",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrelay' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AiohttpTransport",
    "AsyncClient",
    "AuthenticationError",
    "BudgetExceeded",
    "CacheInfo",
    "CacheOptions",
    "CapabilityUnavailable",
    "ChatRequest",
    "ChatResponse",
    "CircuitOpen",
    "Client",
    "ConfigError",
    "ConnectionCheck",
    "ConnectionError",
    "ContentFiltered",
    "ContextWindowExceeded",
    "Deployment",
    "EmbeddingResponse",
    "ErrorEvent",
    "Finish",
    "Http1Transport",
    "ImagePart",
    "InvalidRequest",
    "LLMError",
    "Message",
    "ModelGroup",
    "ModelInfo",
    "NoHealthyDeployment",
    "NotFound",
    "Overloaded",
    "PermissionDenied",
    "Prices",
    "ProviderError",
    "ProviderNotConfigured",
    "RateLimited",
    "ReasoningDelta",
    "ResponseFormat",
    "Route",
    "RoutingSettings",
    "StateUnavailable",
    "StreamEvent",
    "StreamInterrupted",
    "StructuredOutputError",
    "TextDelta",
    "TextPart",
    "Timeout",
    "Timeouts",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "Transport",
    "Usage",
    "UsageEvent",
    "count_tokens",
]
