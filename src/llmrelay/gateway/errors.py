"""Errors as the clients' SDKs expect them: the OpenAI error body (and the
Anthropic one on ``/v1/messages``) with the right status and headers.

The official SDKs pick their exception class from the status code, so the status
is what matters most: a request's own fault is a 4xx naming the field, a
provider failure is a 5xx, and nothing ever answers with a traceback. A provider
refusing the gateway's own credentials is the gateway's problem, not the
caller's: it is a 502, never a 401 the caller could not fix.

Messages sent to clients never name the upstream's address: ``Scrubber`` replaces
the configured providers' hosts, URLs, IP addresses and ``host:port`` pairs
with ``<upstream>`` (the gateway's log keeps the full message).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .. import errors
from ..providers.openai.inbound import error_body as openai_error


def status_of(exc: errors.LLMError) -> int:
    if isinstance(exc, errors.ProviderNotConfigured):
        return 400  # the model exists, its provider has no key here: the operator's to set
    status = exc.status_code or 500
    if exc.provider is not None and status in (401, 403):
        return 502  # the gateway's key for that provider was refused
    if isinstance(exc, errors.ConfigError):
        return 500
    if status < 400 or status > 599:
        return 502
    return status


_ADDRESSES = re.compile(
    r"\(\s*'[^']*'\s*,\s*\d{1,5}\s*(?:,[^)]*)?\)"  # ('host', port) as Python's socket errors write it
    r"|[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"  # URLs
    r"|\[[0-9a-fA-F.]*:[0-9a-fA-F:.]*\](?::\d{1,5})?"  # [IPv6]:port
    r"|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b"  # IPv4:port
    r"|\b(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+):\d{1,5}\b"  # host:port
)
HIDDEN = "<upstream>"


class Scrubber:
    """Removes upstream addresses from a message: ``hosts`` (the configured base URLs'
    host names) wherever they appear, and anything shaped like an address."""

    def __init__(self, hosts: Iterable[str] = ()) -> None:
        names = {h for h in hosts if h and len(h) > 2}
        self._hosts = sorted(names, key=len, reverse=True)

    @classmethod
    def for_urls(cls, urls: Iterable[str | None]) -> Scrubber:
        hosts: set[str] = set()
        for url in urls:
            if url:
                parts = urlsplit(url if "://" in url else f"http://{url}")
                hosts.update(h for h in (parts.netloc.rpartition("@")[2], parts.hostname or "") if h)
        return cls(hosts)

    def __call__(self, text: str) -> str:
        for host in self._hosts:
            if host in text:
                text = text.replace(host, HIDDEN)
        return _ADDRESSES.sub(HIDDEN, text)

    def error(self, exc: errors.LLMError) -> errors.LLMError:
        """``exc`` with its message scrubbed (changed in place, and returned), when it comes
        from a provider or the router (the caller's own 4xx errors are left as they are)."""
        if exc.provider is None and status_of(exc) < 500:
            return exc
        clean = self(exc.message)
        if clean != exc.message:
            exc.message = clean
            exc.args = (clean,)
        return exc


def from_llm_error(exc: errors.LLMError, scrub: Scrubber | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(status, OpenAI body, headers)`` for an ``LLMError`` (its message ``scrub``bed)."""
    status = status_of(exc)
    message = str(scrub.error(exc) if scrub is not None else exc)
    if status == 502 and exc.status_code in (401, 403):
        message = f"the upstream provider refused the gateway's credentials: {message}"
    headers: dict[str, str] = {}
    if exc.retry_after is not None and exc.retry_after > 0:
        headers["retry-after"] = str(max(int(exc.retry_after + 0.999), 1))
        headers["retry-after-ms"] = str(int(exc.retry_after * 1000))
    return status, openai_error(status, message, code=exc.code), headers


__all__ = ["HIDDEN", "Scrubber", "from_llm_error", "openai_error", "status_of"]
