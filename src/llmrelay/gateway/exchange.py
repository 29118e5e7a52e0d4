"""``Exchange``: one HTTP request through the gateway, as every handler gets it.

Raw ASGI stays underneath (it is the fastest option measured, docs/performance.md),
but handlers see one typed object instead of keys put in the ASGI scope: who is
calling, the request's path parameters and headers, the facts the metrics, access
log and ledger read when it ends, the headers its answer gets, and the API it
speaks (whose error format every failure is answered in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .http import Receive, Scope, Send, header, send_json
from .metrics import RequestFacts
from .tenancy import Caller

ErrorBody = Callable[[int, dict[str, Any]], dict[str, Any]]
"""An API's error body, from the status and the error in OpenAI's format."""


@dataclass(frozen=True, slots=True)
class Api:
    """A wire format the gateway speaks, as far as the exchange needs it: its errors."""

    name: str
    error_body: ErrorBody


def _as_given(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return body


OPENAI = Api("openai", _as_given)
"""The OpenAI error format: the gateway's own routes (admin, health) speak it too."""

NOBODY = Caller(admin=False)
"""The caller of a route that asks for no key (health, metrics, docs): may do nothing."""


class Exchange:
    """One request and its answer. ``send`` adds ``headers`` and the request id to the
    answer's status line; ``ledger`` is true while the request still has to be recorded."""

    __slots__ = (
        "_query", "api", "caller", "facts", "headers", "ledger", "method", "params", "path", "receive", "request_id",
        "route", "scope", "send",
    )  # fmt: skip

    def __init__(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.request_id = request_id
        self.route = "other"
        """The name of the route serving it (``/v1/models/{model}``), for metrics and logs."""
        self.params: Mapping[str, str] = {}
        """The path's parameters (``/v1/conversations/{id}``: ``{"id": ...}``)."""
        self.api = OPENAI
        self.caller = NOBODY
        self.facts = RequestFacts()
        self.headers: dict[str, str] = {}
        self.ledger = False
        self._query: dict[str, str] | None = None

    def header(self, name: bytes) -> str | None:
        """A request header (``name`` in lower case)."""
        return header(self.scope, name)

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters (the last of a repeated one)."""
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = dict(parse_qsl(raw, keep_blank_values=True))
        return self._query

    async def reply(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        """Answer with ``payload`` as JSON."""
        await send_json(self.send, status, payload, headers)


__all__ = ["NOBODY", "OPENAI", "Api", "ErrorBody", "Exchange"]
