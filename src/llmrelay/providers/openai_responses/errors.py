"""The errors of a failed Responses answer (``status: failed``, a ``response.failed``
or ``error`` stream event) -> ``LLMError``. HTTP errors are OpenAI's (the same
account): :func:`..openai.errors.map_error`."""

from __future__ import annotations

from typing import Any

from ... import errors
from ..._secret import redact
from ..openai.errors import in_stream_error

# ``ResponseErrorCode`` values of a failed response that are the caller's fault
# (OpenAI's shared code table would treat them as retryable server errors).
FAILURE_CODES: dict[str, type[errors.LLMError]] = {
    "invalid_prompt": errors.InvalidRequest,
    "bio_policy": errors.ContentFiltered,
    "image_content_policy_violation": errors.ContentFiltered,
    "vector_store_timeout": errors.Timeout,
}


def _failure_class(code: Any) -> type[errors.LLMError] | None:
    if not isinstance(code, str):
        return None
    cls = FAILURE_CODES.get(code)
    if cls is None and "image" in code:  # invalid_image_url, image_too_large, ...
        return errors.InvalidRequest
    return cls


def failure_error(err: Any, provider: str) -> errors.LLMError:
    """The error of a failed response or an ``error`` stream event (after HTTP 200)."""
    if not isinstance(err, dict):
        err = {"message": str(err) if err else "the response failed without an error object"}
    cls = _failure_class(err.get("code"))
    if cls is None:
        exc = in_stream_error(err, provider)
    else:
        exc = cls(str(err.get("message") or err.get("code")), provider=provider, body=err)
    exc.message = redact(exc.message)
    exc.args = (exc.message,)
    return exc


def error_event_payload(obj: dict[str, Any]) -> Any:
    """The error object of an ``error`` event: nested under ``error`` in recordings,
    flat (``code``, ``message``, ``param``) in the spec."""
    nested = obj.get("error")
    if isinstance(nested, dict):
        return nested
    return {k: v for k, v in obj.items() if k not in ("type", "sequence_number")}
