"""The gateway: one ASGI application in front of the router.

    uvicorn --factory llmrelay.gateway.app:create_app      # what ``llmrelay serve`` runs

Routes: ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``GET /v1/models``,
``GET /v1/models/{id}``, ``POST /v1/messages``, ``POST /v1/messages/count_tokens``,
``GET /health/live``, ``GET /health/ready``, ``GET /metrics``, ``GET /openapi.json``, ``GET /docs``. With a
master key configured (``auth: {master_key: ...}`` or ``LLMRELAY_MASTER_KEY``)
every ``/v1/`` route needs it, as ``Authorization: Bearer <key>`` (the OpenAI
SDKs) or ``x-api-key`` (the Anthropic SDKs). Every failure is an answer in the
OpenAI error format with the right status; a traceback goes to the log only.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .. import errors
from ..client import LOCAL_DEFAULT, AsyncClient
from ..providers.anthropic_inbound import error_body as anthropic_error
from .anthropic_api import count_tokens, messages
from .errors import from_llm_error, openai_error
from .http import ClientGone, HTTPError, Message, Receive, Scope, Send, header, send_json
from .logs import AccessSink, JsonLines, log_access, request_id
from .metrics import CONTENT_TYPE, Metrics, RequestFacts
from .openai_api import chat_completions, embeddings, get_model, list_models

log = logging.getLogger("llmrelay.gateway")
Handler = Callable[["Gateway", Scope, Receive, Send], Awaitable[None]]
MAX_BODY = 16 * 1024 * 1024
_LOCAL_MODELS = (LOCAL_DEFAULT, "local/all-minilm-l6-v2")


class Gateway:
    """The ASGI application. ``client`` does the work; the gateway closes it at shutdown."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        master_key: str | None = None,
        max_body: int = MAX_BODY,
        access_log: AccessSink | None = log_access,
    ) -> None:
        """``access_log`` receives one dict per request (``None``: no access log)."""
        self.client = client
        self._access_log = access_log
        self.max_body = max_body
        self._master = master_key.encode() if master_key else None
        self.metrics = Metrics()
        client.router.add_hook(self.metrics.attempt)
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): chat_completions,
            ("POST", "/v1/embeddings"): embeddings,
            ("GET", "/v1/models"): list_models,
            ("POST", "/v1/messages"): messages,
            ("POST", "/v1/messages/count_tokens"): count_tokens,
            ("GET", "/health/live"): _live,
            ("GET", "/health/ready"): _ready,
            ("GET", "/metrics"): _metrics,
            ("GET", "/openapi.json"): _openapi,
            ("GET", "/docs"): _docs,
        }

    @property
    def open(self) -> bool:
        """No master key: anyone who can reach the port may use it."""
        return self._master is None

    # ---- models -------------------------------------------------------------------------

    def group_for(self, model: str) -> str:
        """The model group serving ``model``; an unknown model is a 404."""
        try:
            return self.client.route(model)
        except errors.LLMError as exc:
            raise errors.NotFound(f"the model {model!r} does not exist here: {exc.message}") from None

    def model_names(self) -> list[str]:
        settings = self.client.settings
        names = list(settings.models)
        if settings.default_model and settings.default_model not in names:
            names.append(settings.default_model)
        if not settings.providers:
            names.extend(m for m in _LOCAL_MODELS if m not in names)
        return names

    # ---- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        begun = time.perf_counter()
        started = False
        status = 500
        failure: str | None = None
        facts = scope["llmrelay.facts"] = RequestFacts()
        rid = request_id(header(scope, b"x-request-id"))
        rid_header = (b"x-request-id", rid.encode())

        async def tracked(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        anthropic = scope["path"].startswith("/v1/messages")  # errors in the format the caller's SDK reads
        try:
            await self._dispatch(scope, receive, tracked)
        except HTTPError as exc:
            failure = "HTTPError"
            body = anthropic_error(exc.status, exc.message) if anthropic else exc.body
            await _answer(tracked, started, exc.status, body, exc.headers)
        except errors.LLMError as exc:
            failure = type(exc).__name__
            code, body, headers = from_llm_error(exc)
            if anthropic:
                body = anthropic_error(code, body["error"]["message"])
            await _answer(tracked, started, code, body, headers)
        except (ClientGone, OSError):
            failure, status = "ClientGone", 499  # the client left; nothing to answer
        except Exception:
            failure = "InternalError"
            log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            message = "internal error (see the gateway's log)"
            body = anthropic_error(500, message) if anthropic else openai_error(500, message)
            await _answer(tracked, started, 500, body, {})
        finally:
            path = scope["path"]
            route = path if (scope["method"], path) in self._routes else "other"
            elapsed = time.perf_counter() - begun
            self.metrics.request(route, status, elapsed, facts, failure)
            if self._access_log is not None:
                self._access_log(_access_fields(rid, scope["method"], route, status, elapsed, facts, failure))

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if path.startswith("/v1/"):
            self._authorize(scope)
        handler = self._routes.get((method, path))
        if handler is not None:
            await handler(self, scope, receive, send)
            return
        if path.startswith("/v1/models/") and len(path) > len("/v1/models/"):
            if method != "GET":
                raise HTTPError(405, f"{method} is not allowed on {path}")
            await get_model(self, scope, receive, send, path[len("/v1/models/") :])
            return
        if any(p == path for _, p in self._routes):
            raise HTTPError(405, f"{method} is not allowed on {path}")
        raise HTTPError(404, f"no route {method} {path}")

    def _authorize(self, scope: Scope) -> None:
        if self._master is None:
            return
        given = header(scope, b"authorization")
        key = given[7:].strip() if given and given[:7].lower() == "bearer " else header(scope, b"x-api-key")
        if not key:
            raise HTTPError(401, "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        if not hmac.compare_digest(key.encode(), self._master):
            raise HTTPError(401, "invalid API key", code="invalid_api_key")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if isinstance(self._access_log, JsonLines):
                    self._access_log.flush()
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _access_fields(
    rid: str, method: str, route: str, status: int, elapsed: float, facts: RequestFacts, failure: str | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": rid, "method": method, "route": route, "status": status,
        "latency_ms": round(elapsed * 1000, 2), "model": facts.model or None, "deployment": facts.deployment or None,
    }  # fmt: skip
    if facts.usage is not None:
        fields["prompt_tokens"], fields["completion_tokens"] = facts.usage.prompt_tokens, facts.usage.completion_tokens
    if facts.cost_usd is not None:
        fields["cost_usd"] = facts.cost_usd
    if failure is not None:
        fields["error"] = failure
    return fields


async def _answer(send: Send, started: bool, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    if started:  # the status line is gone; the stream's own error event has told the client
        return
    try:
        await send_json(send, status, body, headers)
    except OSError:
        pass


async def _metrics(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    body = gw.metrics.render(await gw.client.health())
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", CONTENT_TYPE.encode())]})
    await send({"type": "http.response.body", "body": body})


async def _openapi(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    from .openapi import document_bytes

    await _raw(send, document_bytes(), b"application/json")


async def _docs(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    from .openapi import docs_page

    await _raw(send, docs_page(), b"text/html; charset=utf-8")


async def _raw(send: Send, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


async def _live(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, {"status": "ok"})


async def _ready(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Ready when the state backend answers and at least one deployment can serve."""
    report = await gw.client.health()
    serving = [h for h in report if h.status not in ("unhealthy", "disabled")]
    ok = not report or bool(serving)
    detail = {"status": "ready" if ok else "unavailable", "deployments": len(report), "serving": len(serving)}
    await send_json(send, 200 if ok else 503, detail)


def create_app() -> Gateway:
    """The gateway for ``LLMRELAY_CONFIG`` (uvicorn's factory; each worker calls it),
    logging JSON lines (``LLMRELAY_LOG_LEVEL``, INFO by default)."""
    from .logs import configure

    level = (os.environ.get("LLMRELAY_LOG_LEVEL") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise errors.ConfigError(f"LLMRELAY_LOG_LEVEL is {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    configure(level)
    client = AsyncClient(os.environ.get("LLMRELAY_CONFIG") or None)
    sink = JsonLines() if level in ("DEBUG", "INFO") else None
    return Gateway(client, master_key=master_key(client), access_log=sink)


def master_key(client: AsyncClient) -> str | None:
    file = client.settings.file
    configured = file.auth.get("master_key") if file is not None else None
    if configured is not None and not isinstance(configured, str):
        raise errors.ConfigError("auth.master_key must be a string")
    return configured or os.environ.get("LLMRELAY_MASTER_KEY") or None


__all__ = ["Gateway", "create_app", "master_key"]
