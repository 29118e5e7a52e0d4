"""Cohere's error bodies (``{"message": ...}``, sometimes with ``id``) -> ``LLMError``. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from ... import errors
from ..._secret import Secret
from ..wire_errors import build_error, error_body, unexpected_body_error

_STATUS_CLASSES: dict[int, type[errors.LLMError]] = {
    400: errors.InvalidRequest,
    401: errors.AuthenticationError,
    402: errors.RateLimited,  # payment required: made non-retryable below
    403: errors.PermissionDenied,
    404: errors.NotFound,
    422: errors.InvalidRequest,
    429: errors.RateLimited,
    498: errors.AuthenticationError,  # Cohere's "invalid token"
    499: errors.ProviderError,  # the request was cancelled upstream
    500: errors.ProviderError,
    501: errors.InvalidRequest,  # feature not implemented for this model
    503: errors.Overloaded,
    504: errors.Timeout,
}


def error_class(status: int, message: str) -> type[errors.LLMError]:
    """The class of a Cohere error; "too many tokens" refines a 400."""
    cls = _STATUS_CLASSES.get(status) or errors.class_for_status(status)
    if cls is errors.InvalidRequest and "too many tokens" in message.lower():
        return errors.ContextWindowExceeded
    return cls


def is_final_limit(status: int, message: str) -> bool:
    """A limit that waiting does not lift: no payment (402) or a trial key's
    monthly call quota (429 "... limited to 1000 API calls / month")."""
    return status == 402 or (status == 429 and "/ month" in message.lower())


def map_error(
    status: int, headers: Mapping[str, str], body: bytes, *, provider: str, secret: Secret | None = None
) -> errors.LLMError:
    """HTTP status + Cohere's ``{"message": ...}`` (sometimes with ``id``) -> ``LLMError``."""
    body = _without_secret(body, secret)
    data = error_body(body)
    if not isinstance(data, dict):
        return unexpected_body_error(status, headers, body, provider)
    message = str(data.get("message") or data.get("detail") or f"HTTP {status}")
    exc = build_error(
        error_class(status, message), message, provider=provider, status=status, headers=headers, body=data
    )
    if is_final_limit(status, message):
        exc.retryable = False
    return exc


def _without_secret(body: bytes, secret: Secret | None) -> bytes:
    """The body with the API key masked: Cohere keys have no prefix the generic
    redaction recognises, so an echoed key is removed here, before parsing."""
    key = secret.get().encode() if secret else b""
    return body.replace(key, b"****") if len(key) >= 4 and key in body else body
