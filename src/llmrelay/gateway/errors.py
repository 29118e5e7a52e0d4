"""Errors as the clients' SDKs expect them: the OpenAI error body (and the
Anthropic one on ``/v1/messages``) with the right status and headers.

The official SDKs pick their exception class from the status code, so the status
is what matters most: a request's own fault is a 4xx naming the field, a
provider failure is a 5xx, and nothing ever answers with a traceback. A provider
refusing the gateway's own credentials is the gateway's problem, not the
caller's: it is a 502, never a 401 the caller could not fix.
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..providers.openai_inbound import error_body as openai_error


def status_of(exc: errors.LLMError) -> int:
    status = exc.status_code or 500
    if exc.provider is not None and status in (401, 403):
        return 502  # the gateway's key for that provider was refused
    if isinstance(exc, errors.ConfigError):
        return 500
    if status < 400 or status > 599:
        return 502
    return status


def from_llm_error(exc: errors.LLMError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(status, OpenAI body, headers)`` for an ``LLMError``."""
    status = status_of(exc)
    message = str(exc)
    if status == 502 and exc.status_code in (401, 403):
        message = f"the upstream provider refused the gateway's credentials: {message}"
    headers: dict[str, str] = {}
    if exc.retry_after is not None and exc.retry_after > 0:
        headers["retry-after"] = str(max(int(exc.retry_after + 0.999), 1))
        headers["retry-after-ms"] = str(int(exc.retry_after * 1000))
    return status, openai_error(status, message, code=exc.code), headers


__all__ = ["from_llm_error", "openai_error", "status_of"]
