"""OpenAI's error bodies -> ``LLMError`` (HTTP errors and error objects inside a 200
stream). Pure: status, headers and body in, an error out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import errors
from ..wire_errors import build_error, error_body, unexpected_body_error


def error_message(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or err)
    return str(err)


ERROR_CODES: dict[str, type[errors.LLMError]] = {
    "context_length_exceeded": errors.ContextWindowExceeded,
    "string_above_max_length": errors.ContextWindowExceeded,
    "content_filter": errors.ContentFiltered,
    "content_policy_violation": errors.ContentFiltered,
    "insufficient_quota": errors.RateLimited,
    "rate_limit_exceeded": errors.RateLimited,
    "model_not_found": errors.NotFound,
    "invalid_api_key": errors.AuthenticationError,
    "server_error": errors.ProviderError,
    "overloaded_error": errors.Overloaded,
}


def error_class(status: int, err: Any) -> type[errors.LLMError]:
    """The error class for an OpenAI-style error object (code/type beat status)."""
    if isinstance(err, dict):
        for key in ("code", "type"):
            value = err.get(key)
            if isinstance(value, str) and value in ERROR_CODES:
                return ERROR_CODES[value]
    return errors.class_for_status(status)


def is_out_of_credit(err: Any) -> bool:
    """A 429 that waiting does not fix (the account has no credit left)."""
    return isinstance(err, dict) and "insufficient_quota" in (err.get("code"), err.get("type"))


def in_stream_error(err: Any, provider: str) -> errors.LLMError:
    """An error object that arrived inside a 200 stream."""
    status = 500
    if isinstance(err, dict) and isinstance(err.get("code"), int):
        status = err["code"]
    exc = error_class(status, err)(error_message(err), provider=provider, body=err)
    if is_out_of_credit(err):
        exc.retryable = False
    return exc


def map_error(status: int, headers: Mapping[str, str], body: bytes, *, provider: str) -> errors.LLMError:
    """HTTP status + OpenAI-style error body -> ``LLMError``.

    Accepts the shapes compatible servers use too: ``{"error": {...}}``,
    ``{"error": "text"}``, ``{"message": ...}`` (Mistral) and ``{"detail": ...}``.
    """
    data = error_body(body)
    if not isinstance(data, dict):
        return unexpected_body_error(status, headers, body, provider)
    err = data.get("error", data)
    if isinstance(err, dict):
        message = err.get("message") or data.get("detail") or err.get("code") or f"HTTP {status}"
    else:
        message = str(err)
    cls = error_class(status, err)
    exc = build_error(cls, str(message), provider=provider, status=status, headers=headers, body=data)
    if is_out_of_credit(err):
        exc.retryable = False
    return exc
