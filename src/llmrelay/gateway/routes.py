"""The gateway's route table: ``(method, path template)`` to a handler.

Templates are paths with parameters: ``{name}`` is one non-empty segment and
``{name:path}`` the rest of the path (it may hold ``/``, as ``PROVIDER/MODEL``
does); a parameter may share its segment with literal text
(``/v1beta/models/{model}:generateContent``). Paths without parameters are found
by one dict lookup; the others are tried in the order they were added. A path
that matches with another method is a 405 naming the methods allowed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .exchange import OPENAI, Api, Exchange
from .http import HTTPError

if TYPE_CHECKING:
    from .app import Gateway

Handler = Callable[["Gateway", Exchange], Awaitable[None]]
_PARAM = re.compile(r"\{([a-z_]+)(:path)?\}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a route does: its ``handler``, the ``api`` its errors are answered in, whether
    it needs a key (``auth``) and whether it is a model request (``metered``: admitted
    against limits and budgets, and recorded in the usage ledger); ``name`` is what the
    metrics and the access log call it."""

    handler: Handler
    name: str
    api: Api = OPENAI
    auth: bool = True
    metered: bool = False


class RouteTable:
    def __init__(self) -> None:
        self._fixed: dict[tuple[str, str], Endpoint] = {}
        self._patterns: list[tuple[str, re.Pattern[str], Endpoint]] = []
        self._methods: dict[str, set[str]] = {}  # template -> methods, for 405s

    def add(
        self, method: str, template: str, handler: Handler, *, api: Api = OPENAI, auth: bool = True,
        metered: bool = False,
    ) -> None:  # fmt: skip
        name = _PARAM.sub(lambda m: "{" + m.group(1) + "}", template)
        endpoint = Endpoint(handler, name, api, auth, metered)
        self._methods.setdefault(name, set()).add(method)
        if _PARAM.search(template) is None:
            self._fixed[(method, template)] = endpoint
        else:
            self._patterns.append((method, _compile(template), endpoint))

    def match(self, method: str, path: str) -> tuple[Endpoint, Mapping[str, str]]:
        """The endpoint and path parameters for a request; a 404 or 405 ``HTTPError``
        when none serves it."""
        found = self._fixed.get((method, path))
        if found is not None:
            return found, {}
        allowed = self._methods.get(path)
        for want, pattern, endpoint in self._patterns:
            hit = pattern.fullmatch(path)
            if hit is None:
                continue
            if want == method:
                return endpoint, hit.groupdict()
            allowed = allowed or self._methods.get(endpoint.name)
        if allowed:
            raise HTTPError(
                405, f"{method} is not allowed on {path} (allowed: {', '.join(sorted(allowed))})",
                headers={"allow": ", ".join(sorted(allowed))},
            )  # fmt: skip
        raise HTTPError(404, f"no route {method} {path}")

    def api_for(self, path: str) -> Api:
        """The API a path belongs to, for a request no route matched (its 404 or 405): that
        of the route it is, or lies under."""
        for (_, template), endpoint in self._fixed.items():
            if path == template or path.startswith(template + "/"):
                return endpoint.api
        for _, pattern, endpoint in self._patterns:
            if pattern.fullmatch(path):
                return endpoint.api
        return OPENAI

    def endpoints(self) -> set[tuple[str, str]]:
        """Every ``(method, name)`` served."""
        return {(method, name) for name, methods in self._methods.items() for method in methods}


def _compile(template: str) -> re.Pattern[str]:
    out, last = [], 0
    for param in _PARAM.finditer(template):
        out.append(re.escape(template[last : param.start()]))
        out.append(f"(?P<{param.group(1)}>.+)" if param.group(2) else f"(?P<{param.group(1)}>[^/]+)")
        last = param.end()
    out.append(re.escape(template[last:]))
    return re.compile("".join(out), re.DOTALL)  # a parameter may hold any character: its handler checks it


__all__ = ["Endpoint", "Handler", "RouteTable"]
