"""AWS error answers (``x-amzn-ErrorType`` or ``__type`` plus ``message``) and the
stream's exception frames -> ``LLMError``. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import errors
from ..._secret import Secret, redact
from ..wire_errors import build_error, describe_body, error_body, unexpected_body_error
from .codec import header

# Error type (HTTP ``x-amzn-ErrorType`` or stream ``:exception-type``, lower-cased) -> class.
ERROR_TYPES: dict[str, type[errors.LLMError]] = {
    "validationexception": errors.InvalidRequest,
    "conflictexception": errors.InvalidRequest,
    "accessdeniedexception": errors.PermissionDenied,
    "unrecognizedclientexception": errors.AuthenticationError,
    "expiredtokenexception": errors.AuthenticationError,
    "invalidsignatureexception": errors.AuthenticationError,
    "incompletesignatureexception": errors.AuthenticationError,
    "missingauthenticationtokenexception": errors.AuthenticationError,
    "resourcenotfoundexception": errors.NotFound,
    "throttlingexception": errors.RateLimited,
    "servicequotaexceededexception": errors.RateLimited,
    "serviceunavailableexception": errors.Overloaded,
    "modelnotreadyexception": errors.Overloaded,
    "internalserverexception": errors.ProviderError,
    "modelerrorexception": errors.ProviderError,
    "modelstreamerrorexception": errors.ProviderError,
    "modeltimeoutexception": errors.Timeout,
}
_CONTEXT_PHRASES = (
    "input is too long",
    "prompt is too long",
    "too many input tokens",
    "maximum context length",
    "context window",
    "context length",
)


def error_type(headers: Mapping[str, str], body: Any) -> str:
    """The AWS error type: ``x-amzn-ErrorType`` (``ValidationException:http://...``)
    or the body's ``__type`` (``com.amazon...#ValidationException``); "" if neither."""
    value = header(headers, "x-amzn-errortype")
    if not value and isinstance(body, dict):
        value = str(body.get("__type") or "")
    return value.split(":", 1)[0].rsplit("#", 1)[-1]


def error_message(body: Any, status: int | None) -> str:
    if isinstance(body, dict):
        message = body.get("message") or body.get("Message")
        if message:
            return str(message)
    return f"HTTP {status}" if status is not None else "no message"


def error_class(kind: str, message: str, status: int | None) -> type[errors.LLMError]:
    """The class of an AWS error type; a too-long input refines ``ValidationException``."""
    cls = ERROR_TYPES.get(kind.lower())
    if cls is None:
        return errors.class_for_status(status) if status is not None else errors.ProviderError
    if cls is errors.InvalidRequest and any(phrase in message.lower() for phrase in _CONTEXT_PHRASES):
        return errors.ContextWindowExceeded
    return cls


def map_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str,
    secrets: tuple[Secret | str | None, ...] = (),
) -> errors.LLMError:
    """HTTP status + AWS error body -> ``LLMError`` (``secrets`` masked in its message)."""
    data = error_body(body)
    kind = error_type(headers, data)
    if isinstance(data, dict):
        message = error_message(data, status)
    elif kind:  # a body that is not AWS's JSON, but the error type header is there
        message = f"HTTP {status} with {describe_body(body, headers)}"
    else:
        return unexpected_body_error(status, headers, body, provider)
    cls = error_class(kind, message, status)
    text = f"{kind}: {message}" if kind else message
    return build_error(cls, redact(text, *secrets), provider=provider, status=status, headers=headers, body=data)
