"""The YAML config schema (pydantic; imported only when a config file is read).

Every model forbids unknown keys, so a typo is an error naming the key and line.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderEntry(_Strict):
    name: str
    kind: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0)
    stream_idle_timeout_s: float | None = Field(None, gt=0)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # may carry credentials
    api_version: str | None = None
    organization: str | None = None
    deployments: dict[str, str] = {}
    quirks: str | None = None
    region: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Kind-specific settings passed to the provider as they are (e.g. Bedrock's
    aws_access_key_id / aws_secret_access_key / aws_session_token)."""


class DeploymentEntry(_Strict):
    provider: str
    model: str
    weight: float = Field(1.0, gt=0)
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)


class ModelGroupEntry(_Strict):
    name: str
    deployments: list[DeploymentEntry] = Field(min_length=1)
    fallbacks: list[str] = []
    strategy: str | None = None
    cache: bool = False
    semantic_cache: bool = False
    coalesce: bool = False
    embed_batch_ms: float = Field(0, ge=0)


class ConfigFile(_Strict):
    providers: list[ProviderEntry] = []
    models: list[ModelGroupEntry] = []
    routing: dict[str, Any] = {}
    cache: dict[str, Any] = {}
    state: dict[str, Any] = {}
    store: dict[str, Any] = {}
    auth: dict[str, Any] = {}
    default_model: str | None = None
