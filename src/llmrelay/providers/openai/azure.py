"""Azure OpenAI: the OpenAI wire format on Azure's URLs and auth.

Differences from OpenAI, all handled here or by the shared codec:
- auth is an ``api-key`` header (or ``Authorization: Bearer`` for an Entra ID
  token given as ``options.azure_ad_token``);
- URLs are ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=V``;
  the deployment is the model name unless ``options.deployments`` maps it;
  ``api_version: v1`` selects the newer ``{endpoint}/openai/v1/`` routes instead;
- the first stream chunk has ``choices: []`` and prompt filter results (ignored
  by the decoder, which never indexes ``choices[0]`` blindly);
- a filtered prompt is HTTP 400 with ``code: content_filter`` (-> ``ContentFiltered``),
  a filtered answer ends with ``finish_reason: content_filter``.
"""

from __future__ import annotations

from ..._http import Transport
from ..._secret import Secret
from ...types import ChatRequest, EmbeddingRequest
from ..base import ProviderConfig, WireRequest
from ..http import join_url
from .provider import OpenAIProvider

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAIProvider):
    kind = "azure"

    def __init__(self, config: ProviderConfig, transport: Transport | None = None) -> None:
        if not config.base_url:
            from ... import errors

            raise errors.ConfigError(
                f"provider {config.name!r}: Azure needs base_url (your resource endpoint, "
                "e.g. https://NAME.openai.azure.com) or AZURE_OPENAI_ENDPOINT"
            )
        super().__init__(config, transport)
        self.api_version = str(config.options.get("api_version") or DEFAULT_API_VERSION)
        self.deployments: dict[str, str] = dict(config.options.get("deployments") or {})
        self.base_url = self.base_url.removesuffix("/openai")

    def auth_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        token = self.config.options.get("azure_ad_token")
        if token:
            headers["authorization"] = f"Bearer {token.get() if isinstance(token, Secret) else token}"
        elif self.config.api_key:
            headers["api-key"] = self.config.api_key.get()
        headers.update(self.config.headers)
        return headers

    @property
    def price_provider(self) -> str:
        return "azure"

    def chat_request(self, request: ChatRequest, stream: bool) -> WireRequest:
        wire = super().chat_request(request, stream)
        if self.api_version == "v1" and wire.payload is not None:  # the deployment travels in the body
            wire.payload["model"] = self.deployments.get(request.model, request.model)
        return wire

    def embed_request(self, request: EmbeddingRequest) -> WireRequest:
        wire = super().embed_request(request)
        if self.api_version == "v1" and wire.payload is not None:
            wire.payload["model"] = self.deployments.get(request.model, request.model)
        return wire

    def url(self, path: str, model: str | None = None) -> str:
        if self.api_version == "v1":
            return join_url(self.base_url, f"openai/v1/{path}")
        if model is None:  # account-level routes (models)
            return join_url(self.base_url, f"openai/{path}?api-version={self.api_version}")
        deployment = self.deployments.get(model, model)
        return join_url(self.base_url, f"openai/deployments/{deployment}/{path}?api-version={self.api_version}")
