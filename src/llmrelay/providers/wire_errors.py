"""Error and odd bodies from any wire format: the shared helpers of every
format's ``errors.py`` (and of the HTTP flow). Pure: no transport here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import errors
from .._json import JSONDecodeError, loads
from .._secret import redact


def decode_body(body: bytes, status: int, headers: Mapping[str, str], provider: str) -> Any:
    """The JSON of a success body, or a ``ProviderError`` saying what came instead."""
    try:
        return loads(body)
    except JSONDecodeError:
        raise errors.ProviderError(
            f"expected JSON, got {describe_body(body, headers)} (HTTP {status})",
            provider=provider,
            status_code=502,
            body=body[:2000],
        ) from None


def describe_body(body: bytes, headers: Mapping[str, str]) -> str:
    """A short human description of a body that is not the expected JSON."""
    if not body:
        return "an empty body"
    text = body[:4000].decode("utf-8", "replace")
    ctype = headers.get("content-type", "")
    lowered = text.lower()
    if "html" in ctype or "<html" in lowered or "<!doctype html" in lowered:
        start = lowered.find("<title>")
        end = lowered.find("</title>")
        title = text[start + 7 : end].strip() if 0 <= start < end else ""
        return f"an HTML page{f' ({title!r})' if title else ''}, likely from a proxy"
    snippet = " ".join(text.split())[:200]
    return f"a non-JSON body: {redact(snippet)!r}"


def error_body(body: bytes) -> Any:
    """The parsed error body (JSON when it is JSON, else the text)."""
    try:
        return loads(body) if body else None
    except JSONDecodeError:
        return body[:2000].decode("utf-8", "replace")


def build_error(
    cls: type[errors.LLMError],
    message: str,
    *,
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
) -> errors.LLMError:
    """An error with retry hints from the headers applied (``x-should-retry`` wins)."""
    from .._headers import retry_after_s, should_retry

    exc = cls(redact(message), provider=provider, status_code=status, body=body, retry_after=retry_after_s(headers))
    override = should_retry(headers)
    if override is not None:
        exc.retryable = override
    return exc


def unexpected_body_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> errors.LLMError:
    """For error bodies that are not the provider's JSON (proxies, load balancers)."""
    cls = errors.class_for_status(status)
    return build_error(
        cls,
        f"HTTP {status} with {describe_body(body, headers)}",
        provider=provider,
        status=status,
        headers=headers,
        body=error_body(body),
    )


__all__ = ["build_error", "decode_body", "describe_body", "error_body", "unexpected_body_error"]
