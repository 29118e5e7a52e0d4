"""Gemini's error bodies (a ``google.rpc.Status`` under ``error``, in an HTTP error,
a 200 answer or a stream chunk) -> ``LLMError``. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import errors
from ..._headers import parse_duration_s
from ..._secret import Secret, redact
from ..wire_errors import build_error, error_body, unexpected_body_error
from .codec import JSON

_BY_RPC_STATUS: dict[str, type[errors.LLMError]] = {
    "INVALID_ARGUMENT": errors.InvalidRequest,
    "FAILED_PRECONDITION": errors.InvalidRequest,
    "OUT_OF_RANGE": errors.InvalidRequest,
    "UNAUTHENTICATED": errors.AuthenticationError,
    "PERMISSION_DENIED": errors.PermissionDenied,
    "NOT_FOUND": errors.NotFound,
    "RESOURCE_EXHAUSTED": errors.RateLimited,
    "INTERNAL": errors.ProviderError,
    "UNKNOWN": errors.ProviderError,
    "UNAVAILABLE": errors.Overloaded,
    "DEADLINE_EXCEEDED": errors.Timeout,
}
_BAD_KEY_REASONS = frozenset(("API_KEY_INVALID", "API_KEY_EXPIRED"))


def map_error(
    status: int, headers: Mapping[str, str], body: bytes, *, provider: str, secret: Secret | None = None
) -> errors.LLMError:
    """HTTP status + Gemini error body -> ``LLMError`` (``secret``, the API key, masked)."""
    payload = error_body(body)
    status_obj = _status_object(payload)
    if status_obj is None:
        return unexpected_body_error(status, headers, body, provider)
    return _error(status, headers, status_obj, payload, provider, secret)


def payload_error(payload: JSON, *, provider: str, secret: Secret | None = None) -> errors.LLMError:
    """The error of an ``{"error": {...}}`` body that came with HTTP 200 (an answer or a stream chunk)."""
    status_obj = _status_object(payload) or {}
    code = status_obj.get("code")
    return _error(code if isinstance(code, int) and code >= 400 else 500, {}, status_obj, payload, provider, secret)


def _error(
    status: int,
    headers: Mapping[str, str],
    status_obj: JSON,
    payload: Any,
    provider: str,
    secret: Secret | None,
) -> errors.LLMError:
    rpc = str(status_obj.get("status") or "")
    text = str(status_obj.get("message") or "no message")
    message = f"{text} ({rpc or f'HTTP {status}'})"
    cls = error_class(status, rpc, text, status_obj.get("details"))
    exc = build_error(cls, redact(message, secret), provider=provider, status=status, headers=headers, body=payload)
    if exc.retry_after is None:
        exc.retry_after = retry_delay_s(status_obj.get("details"))
    return exc


def _status_object(payload: Any) -> JSON | None:
    """The ``google.rpc.Status`` in ``{"error": {...}}`` (or ``[{"error": ...}]``)."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else None


def error_class(status: int, rpc: str, message: str, details: Any) -> type[errors.LLMError]:
    lowered = message.lower()
    if _detail_reasons(details) & _BAD_KEY_REASONS or "api key not valid" in lowered:
        return errors.AuthenticationError
    cls = _BY_RPC_STATUS.get(rpc) or errors.class_for_status(status)
    if cls is errors.InvalidRequest and "token count" in lowered and "exceed" in lowered:
        return errors.ContextWindowExceeded
    return cls


def _detail_reasons(details: Any) -> set[str]:
    items = details if isinstance(details, list) else []
    return {str(d["reason"]) for d in items if isinstance(d, dict) and d.get("reason")}


def retry_delay_s(details: Any) -> float | None:
    """``RetryInfo.retryDelay`` (``"34.4s"``) from an error's details."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str):
                return parse_duration_s(delay)
    return None
