"""How Bedrock requests are authenticated: a Bedrock API key (``Authorization:
Bearer``) or AWS Signature Version 4 over the exact request sent (botocore,
imported on the first signature, not at ``import llmrelay``)."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any, Protocol

from ... import errors
from ..._install import install_hint
from ..._secret import Secret
from ..base import ProviderConfig

SIGNING_SERVICE = "bedrock"  # the signing name of both bedrock-runtime and the bedrock control plane
SECRET_OPTIONS = ("aws_secret_access_key", "aws_session_token")


class Auth(Protocol):
    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]: ...


class _BearerAuth:
    """A Bedrock API key."""

    __slots__ = ("_token",)

    def __init__(self, token: Secret) -> None:
        self._token = token

    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return {**headers, "authorization": f"Bearer {self._token.get()}"}


class _SigV4Auth:
    """AWS Signature Version 4 over the exact method, URL, headers and body sent.
    botocore is imported on the first signature, not at ``import llmrelay``."""

    __slots__ = ("_access_key", "_region", "_secret", "_signer", "_token")

    def __init__(self, access_key: str, secret: Secret, token: Secret | None, region: str) -> None:
        self._access_key = access_key
        self._secret = secret
        self._token = token
        self._region = region
        self._signer: Any = None

    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped, import-not-found, unused-ignore]

        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        self._sigv4().add_auth(request)
        return {str(name): str(value) for name, value in request.headers.items()}

    def _sigv4(self) -> Any:
        if self._signer is None:
            from botocore.auth import SigV4Auth  # type: ignore[import-untyped, import-not-found, unused-ignore]
            from botocore.credentials import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
                Credentials,
            )

            token = self._token.get() if self._token else None
            credentials = Credentials(self._access_key, self._secret.get(), token)
            self._signer = SigV4Auth(credentials, SIGNING_SERVICE, self._region)
        return self._signer


def _secret_option(config: ProviderConfig, key: str) -> Secret | None:
    value = config.options.get(key)
    if isinstance(value, str):
        value = config.options[key] = Secret(value)  # reprs of the config now show '****'
    return value if isinstance(value, Secret) and value else None


def make_auth(config: ProviderConfig, region: str | None) -> Auth:
    if config.api_key:
        return _BearerAuth(config.api_key)
    secret = _secret_option(config, "aws_secret_access_key")
    token = _secret_option(config, "aws_session_token")
    access_key = str(config.options.get("aws_access_key_id") or "")
    where = f"provider {config.name!r}"
    if not access_key and secret is None:
        raise errors.ConfigError(
            f"{where}: Bedrock needs api_key (a Bedrock API key) or options aws_access_key_id and aws_secret_access_key"
        )
    if not access_key or secret is None:
        missing = "aws_secret_access_key" if access_key else "aws_access_key_id"
        raise errors.ConfigError(f"{where}: options.{missing} is missing (both AWS keys are needed to sign)")
    if region is None:
        raise errors.ConfigError(f"{where}: AWS signing needs options.region (or AWS_REGION)")
    if find_spec("botocore") is None:
        raise errors.ConfigError(f"{where}: AWS signing needs botocore: {install_hint('bedrock')}")
    return _SigV4Auth(access_key, secret, token, region)
