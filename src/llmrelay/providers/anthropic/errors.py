"""Anthropic's error bodies (``{"type": "error", "error": {...}}``, in an HTTP error,
a 200 answer or a stream ``error`` event) -> ``LLMError``. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import errors
from ..wire_errors import build_error, error_body, unexpected_body_error

# Anthropic error ``type`` -> our class. "prompt is too long" refines invalid_request_error.
ERROR_TYPES: dict[str, type[errors.LLMError]] = {
    "invalid_request_error": errors.InvalidRequest,
    "request_too_large": errors.InvalidRequest,
    "authentication_error": errors.AuthenticationError,
    "permission_error": errors.PermissionDenied,
    "not_found_error": errors.NotFound,
    "rate_limit_error": errors.RateLimited,
    "api_error": errors.ProviderError,
    "overloaded_error": errors.Overloaded,
    "timeout_error": errors.Timeout,
    "billing_error": errors.BudgetExceeded,
}
_CONTEXT_PHRASES = ("prompt is too long", "exceed context limit", "context window")


def error_class(error_type: str, message: str, status: int | None) -> type[errors.LLMError]:
    """The error class of an Anthropic error object (HTTP 529 is always ``Overloaded``)."""
    if status == 529:
        return errors.Overloaded
    cls = ERROR_TYPES.get(error_type)
    if cls is None:
        return errors.class_for_status(status) if status is not None else errors.ProviderError
    if cls is errors.InvalidRequest and any(phrase in message.lower() for phrase in _CONTEXT_PHRASES):
        return errors.ContextWindowExceeded
    return cls


def error_from_payload(
    payload: Any, *, provider: str, status: int | None, headers: Mapping[str, str]
) -> errors.LLMError | None:
    """The error an Anthropic ``{"type": "error", "error": {...}}`` body stands for, if it is one."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None
    error_type = str(error.get("type") or "unknown_error")
    message = str(error.get("message") or "no message")
    cls = error_class(error_type, message, status)
    where = f"HTTP {status} " if status is not None else ""
    return build_error(
        cls,
        f"{where}{error_type}: {message}",
        provider=provider,
        status=status if status is not None else cls.default_status or 502,
        headers=headers,
        body=payload,
    )


def map_error(status: int, headers: Mapping[str, str], body: bytes, *, provider: str) -> errors.LLMError:
    """HTTP status + Anthropic error body -> ``LLMError``."""
    exc = error_from_payload(error_body(body), provider=provider, status=status, headers=headers)
    return exc if exc is not None else unexpected_body_error(status, headers, body, provider)
