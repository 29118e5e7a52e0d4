"""The gateway: one ASGI application in front of the router.

    uvicorn --factory llmrelay.gateway.factory:create_app  # what ``llmrelay serve`` runs

Routes (table.py): OpenAI's chat completions, completions, Responses (with stored
responses), embeddings and models; Anthropic's Messages and token count; Gemini's
generateContent and friends (gemini_api.py); conversations; the admin API under
``/admin/`` (tenants, keys, usage; see admin_api.py); ``GET /health/live``,
``GET /health/ready``, ``GET /metrics``, ``GET /openapi.json``, ``GET /docs``.

With a master key configured (``auth: {master_key: ...}`` or
``LLMRELAY_MASTER_KEY``) every ``/v1/``, ``/v1beta/`` and ``/admin/`` route needs a
key, as ``Authorization: Bearer <key>`` (the OpenAI SDKs), ``x-api-key`` (the
Anthropic SDKs) or ``x-goog-api-key`` (Google's): the master key, or a virtual key
of a tenant (tenancy.py), whose limits and budgets are enforced before the upstream
call (admission.py) and whose every model request lands in the usage ledger
(ledger.py). Every failure is an answer in the error format of the route's API
(``Exchange.api``) with the right status; a traceback goes to the log only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .. import errors
from .._ids import new_id
from ..client import LOCAL_DEFAULT, AsyncClient
from ..router.calls import estimate_tokens
from ..store.records import UsageRecord
from ..store.store import Store
from ..tokens import COUNT_IN_THREAD_CHARS
from ..types import ChatRequest, EmbeddingRequest, Usage
from . import gc_tuning
from .admission import Admission, Ticket
from .billing import PriceBook, Unpriced
from .checks import check_name, check_shape
from .errors import Scrubber, from_llm_error, openai_error
from .exchange import Exchange
from .http import (
    ClientGone,
    HTTPError,
    Message,
    Receive,
    Scope,
    Send,
    header,
    json_body,
    read_body,
    send_json,
    unavailable,
)
from .ledger import Ledger, MemoryQueue, RecordQueue
from .logs import AccessSink, JsonLines, log_access, request_id
from .metrics import Metrics, RequestFacts
from .server import ServerLimits
from .spool import Spool
from .table import route_table
from .tenancy import Authenticator, Caller
from .ui_sessions import Sessions

log = logging.getLogger("llmrelay.gateway")
MAX_BODY = 16 * 1024 * 1024
_LOCAL_MODELS = (LOCAL_DEFAULT, "local/all-minilm-l6-v2")
_NO_USAGE = Usage(0, 0)
_NOTHING_HELD = Ticket()  # the operator's requests take no limits or budgets (never settled: nothing held)
_KEYED = ("/v1/", "/v1beta/", "/admin/")
"""Where every route needs a key: an unknown path there is a 401 to a caller without one."""


class Gateway:
    """The ASGI application. ``client`` does the work; the gateway closes it at shutdown."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        master_key: str | None = None,
        store: Store | None = None,
        ledger_queue: RecordQueue | None = None,
        max_body: int = MAX_BODY,
        access_log: AccessSink | None = log_access,
        gc_threshold: int | None = None,
        open_access: bool = False,
        configured_only: bool | None = None,
        spool: Spool | None = None,
        server_limits: ServerLimits | None = None,
        dashboard: bool = True,
    ) -> None:
        """``store`` keeps keys, tenants, the ledger and conversations (``None``: none of them);
        ``ledger_queue`` defaults to one in memory. ``access_log`` receives one dict per
        request (``None``: no access log). ``gc_threshold``: tune the process's garbage
        collector at start-up (gc_tuning.py; ``None``: leave it alone, as a library should).
        ``open_access``: with no ``master_key``, serve without keys (open mode; see
        tenancy.py); without either, the gateway refuses to start (``ConfigError``).
        ``configured_only``: only the config's providers and model groups are reachable
        (default: when the client's settings come from a config file). ``spool``: where
        usage records go when the ledger's queue cannot take them (ledger.py).
        ``server_limits``: the HTTP server's timeouts and connection cap (server.py).
        ``dashboard``: serve the page at ``/ui``, and take its sessions' cookies (dashboard.py).
        The gateway closes ``client`` and ``store``."""
        check_access(master_key, open_access)
        self.client = client
        self._gc_threshold = gc_threshold
        self.store = store
        self._access_log = access_log
        self.max_body = max_body
        self.auth = Authenticator(store, master_key)
        if dashboard:
            self.auth.sessions = Sessions(client.state)  # the dashboard's (dashboard.py)
        self.admission = Admission(client.state, store)
        self.prices = PriceBook(client)
        self.ledger = Ledger(store, ledger_queue or MemoryQueue(), spool=spool) if store is not None else None
        self.server_limits = server_limits or ServerLimits()
        settings = client.settings
        if configured_only is None:
            configured_only = settings.file is not None
        self._reachable: frozenset[str] | None = None
        if configured_only:
            file_providers = settings.file.providers if settings.file is not None else ()
            self._reachable = frozenset(p.name for p in file_providers)
        self.scrub = Scrubber.for_urls(p.base_url for p in settings.providers.values())
        """What the upstreams' addresses look like, to keep them out of answers."""
        groups = list(settings.models)
        self.metrics = Metrics(groups, [d.id for g in settings.models.values() for d in g.members])
        client.add_hook(self.metrics.attempt)
        self.routes = route_table(dashboard=dashboard)

    @property
    def open(self) -> bool:
        """No master key: anyone who can reach the port may use it."""
        return self.auth.open

    def store_(self) -> Store:
        """The store, or a 503 saying there is none."""
        if self.store is None:
            raise HTTPError(
                503, "this gateway has no store: tenants, keys, usage, conversations and stored responses are "
                "unavailable", code="no_store",
            )  # fmt: skip
        return self.store

    # ---- admission ----------------------------------------------------------------------

    async def json_request(self, ex: Exchange) -> dict[str, Any]:
        """The request's body: a JSON object within the size and nesting limits, whole
        within the body timeout (each a 4xx naming the problem)."""
        raw = await read_body(ex.scope, ex.receive, self.max_body)  # the server's protocol holds it to body_timeout_s
        check_shape(raw)
        return json_body(raw)

    async def admit(
        self,
        ex: Exchange,
        group: str,
        request: ChatRequest | EmbeddingRequest,
        model: str,
        *,
        tokens: float | None = None,
    ) -> Ticket:
        """Check the caller may use ``model`` and take its limits and budgets (or answer
        403/429/503). ``tokens``: what the request holds of token limits (default: its
        estimate); a request that says so spends no tokens, so it reserves no budget either."""
        caller = ex.caller
        caller.check_model(model)
        if self.ledger is not None and not self.ledger.accepting:
            raise unavailable(
                "the usage ledger cannot record more requests right now (store and spool unavailable); retry shortly",
                "ledger_unavailable",
            )
        if caller.key is None:
            return _NOTHING_HELD
        held = estimate_tokens(request) if tokens is None else tokens
        cost = self._reservation(caller, group, request) if tokens is None else 0.0
        try:
            ticket = await self.admission.admit(caller, model, held, cost)
        except (HTTPError, errors.LLMError, asyncio.CancelledError):
            raise
        except Exception as exc:  # Redis (or the store, seeding a budget) is down: say so, not 500
            log.warning("admission failed: %s: %s", type(exc).__name__, exc)
            raise unavailable(
                "rate limits and budgets cannot be checked right now (state backend unavailable); retry shortly",
                "state_unavailable",
            ) from None
        ex.headers.update(ticket.headers)
        return ticket

    def _reservation(self, caller: Caller, group: str, request: ChatRequest | EmbeddingRequest) -> float:
        """What a budgeted caller's request reserves: its worst case (billing.py); 0 for
        callers without a budget. A model with no known price is a 403 for them."""
        if not caller.has_budget:
            return 0.0
        try:
            return self.prices.reservation(group, request)
        except Unpriced as exc:
            raise HTTPError(403, f"model {request.model!r}: {exc}", param="model", code="model_not_priced") from None

    async def settle(self, ticket: Ticket, facts: RequestFacts) -> None:
        """Replace what the request reserved by what it used (never raises: it runs as a
        request ends, and a state backend down then must not turn an answer into an error)."""
        if ticket.windows or ticket.budgets or ticket.slots:
            usage = facts.usage
            tokens = float(usage.prompt_tokens + usage.completion_tokens) if usage is not None else 0.0
            await self.admission.settle_or_retry(ticket, tokens, facts.cost_usd or 0.0)

    async def count_tokens(self, request: ChatRequest) -> int:
        """The prompt's tokens for ``request.model``, counted off the event loop when it is long."""
        if sum(len(m.text) for m in request.messages) > COUNT_IN_THREAD_CHARS:
            return await asyncio.to_thread(self.client.count_tokens, request.model, request.messages, request.tools)
        return self.client.count_tokens(request.model, request.messages, request.tools)

    # ---- models -------------------------------------------------------------------------

    def group_for(self, model: str) -> str:
        """The model group serving ``model``; a name with control characters is a 400, a
        model the gateway does not serve a 404. With ``configured_only``, that is any
        model but the config's groups, its default model and ``PROVIDER/MODEL`` of the
        config's own providers."""
        check_name(model)
        if self._reachable is not None and not self._configured(model, self._reachable):
            raise errors.NotFound(
                f"the model {model!r} does not exist here: the gateway serves the model groups of its config "
                "and PROVIDER/MODEL of the providers its config names"
            )
        try:
            return self.client.route(model)
        except errors.ProviderNotConfigured:
            raise  # the model may well exist: the operator has not set its provider's key
        except errors.LLMError as exc:
            why = exc.message.removeprefix(f"model {model!r} ")  # "names no provider: ...", not the name twice
            why = why if why == exc.message else f"it {why}"
            raise errors.NotFound(f"the model {model!r} does not exist here: {why}") from None

    def _configured(self, model: str, reachable: frozenset[str]) -> bool:
        settings = self.client.settings
        if model in settings.models or model == "default" or model == settings.default_model:
            return True
        provider, sep, rest = model.partition("/")
        return bool(sep and rest) and provider in reachable

    def listed_models(self, caller: Caller) -> list[str]:
        """What ``GET /v1/models`` lists to ``caller``: the served names its key may use."""
        return [name for name in self.model_names() if caller.may_use(name)]

    def check_listed(self, caller: Caller, model: str) -> None:
        """``GET /v1/models/{id}``: a 400 for a malformed name, a 403 for one outside the
        caller's models, a 404 for one the gateway does not serve."""
        check_name(model)
        caller.check_model(model)
        if model not in self.model_names():
            self.group_for(model)  # a PROVIDER/MODEL the gateway can serve exists too; anything else is a 404

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
        ex = Exchange(scope, receive, send, request_id(header(scope, b"x-request-id")))
        facts = ex.facts
        rid_header = (b"x-request-id", ex.request_id.encode())

        async def tracked(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                extra = [(k.encode(), v.encode()) for k, v in ex.headers.items()]
                message["headers"] = [*message.get("headers", ()), *extra, rid_header]
            elif not message.get("more_body") and ex.ledger:
                # the record is queued (durably, with Redis) before the answer completes
                await self._record(ex, status, time.perf_counter() - begun, failure)
            await send(message)

        ex.send = tracked
        telemetry = self.client.telemetry
        traced = telemetry.request_span(ex.method, ex.path, _trace_headers(scope)) if telemetry is not None else None
        try:
            await self._dispatch(ex)
        except HTTPError as exc:
            failure = facts.error = "HTTPError"
            await _answer(tracked, started, exc.status, ex.api.error_body(exc.status, exc.body), exc.headers)
        except errors.LLMError as exc:
            failure = facts.error = type(exc).__name__
            code, body, headers = from_llm_error(exc, self.scrub)
            await _answer(tracked, started, code, ex.api.error_body(code, body), headers)
        except (ClientGone, OSError):
            facts.disconnected = True  # the client left; nothing to answer
        except Exception:
            failure = "InternalError"
            log.exception("unexpected error serving %s %s", ex.method, ex.path)
            body = openai_error(500, "internal error (see the gateway's log)")
            await _answer(tracked, started, 500, ex.api.error_body(500, body), {})
        finally:
            if facts.disconnected:
                failure, status = facts.error or "client_disconnected", 499
            if ex.ledger:  # not recorded as its answer ended: the client left, or no answer went
                await self._record(ex, status, time.perf_counter() - begun, failure)
            elapsed = time.perf_counter() - begun
            self.metrics.request(ex.route, status, elapsed, facts, failure)
            if self._access_log is not None:
                self._access_log(_access_fields(ex.request_id, ex.method, ex.route, status, elapsed, facts, failure))
            if traced is not None:
                assert telemetry is not None
                telemetry.end_request(*traced, ex.method, ex.route, status, _span_facts(ex, failure))

    async def _dispatch(self, ex: Exchange) -> None:
        """Find the request's route, check its key, and run its handler."""
        try:
            endpoint, ex.params = self.routes.match(ex.method, ex.path)
        except HTTPError:
            ex.api = self.routes.api_for(ex.path)
            if ex.path.startswith(_KEYED):  # no key, no telling which routes exist
                ex.caller = await self.auth.caller(ex.scope)
            raise
        ex.api, ex.route = endpoint.api, endpoint.name
        if endpoint.auth:
            ex.caller = await self.auth.caller(ex.scope)
            ex.ledger = endpoint.metered and self.ledger is not None
        await endpoint.handler(self, ex)

    async def _record(self, ex: Exchange, status: int, elapsed: float, failure: str | None) -> None:
        assert self.ledger is not None
        ex.ledger = False  # once per request
        facts, caller = ex.facts, ex.caller
        usage = facts.usage or _NO_USAGE
        record = UsageRecord(
            id=new_id(), request_id=ex.request_id, tenant=caller.tenant_id, key_id=caller.key_id, route=ex.path,
            model=facts.model, deployment=facts.deployment or None, status=status,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens, reasoning_tokens=usage.reasoning_tokens,
            cost_usd=facts.cost_usd, latency_ms=round(elapsed * 1000, 3), upstream_ms=round(facts.upstream_s * 1000, 3),
            cache_hit=facts.cache in ("hit", "semantic_hit"), error=facts.error or failure, created_at=time.time(),
            ttft_ms=None if facts.ttft_s is None else round(facts.ttft_s * 1000, 3),
        )  # fmt: skip
        try:
            await self.ledger.record(record)
        except Exception:  # the ledger has logged it (by id); the answer still goes
            pass

    async def ready(self) -> dict[str, Any]:
        """What ``/health/ready`` reports: the store, the state, the ledger and the deployments."""
        checks: dict[str, Any] = {}
        if self.store is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.store.ping), 5)
                checks["store"] = "ok"
            except Exception as exc:
                checks["store"] = f"unavailable: {self.scrub(_reason(exc))}"
        try:
            await asyncio.wait_for(self.client.state.get("ready-probe"), 5)
            checks["state"] = "ok"
        except Exception as exc:  # no address in it: the route needs no key
            checks["state"] = f"unavailable: {self.scrub(_reason(exc))}"
        if self.ledger is not None:
            checks["ledger"] = "ok" if self.ledger.accepting else "unavailable: the spool is full"
        if checks["state"] == "ok":
            report = await self.health()
            serving = [h for h in report if h.status not in ("unhealthy", "disabled")]
            checks["deployments"], checks["serving"] = len(report), len(serving)
            healthy = not report or bool(serving)
        else:
            healthy = False  # breakers and health live in the state backend: unknown
        ok = all(v == "ok" for k, v in checks.items() if k in ("store", "state", "ledger")) and healthy
        return {"status": "ready" if ok else "unavailable", **checks}

    async def health(self) -> list[Any]:
        """The health of the configured model groups' deployments (not of the one-off
        ``PROVIDER/MODEL`` groups clients' requests made)."""
        configured = [name for name in self.client.settings.models if name in self.client.groups]
        if not configured:
            return await self.client.health()
        return [h for name in configured for h in await self.client.health(name)]

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.ledger is not None:
                    self.ledger.start()
                if self._gc_threshold is not None:
                    gc_tuning.tune(self._gc_threshold)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Write what the ledger holds, then close the client and the store."""
        if isinstance(self._access_log, JsonLines):
            self._access_log.flush()
        if self.ledger is not None:
            await self.ledger.aclose()
        await self.admission.aclose()
        await self.client.aclose()
        if self.store is not None:
            self.store.close()


def _reason(exc: BaseException) -> str:
    """Why a backend failed, for ``/health/ready``: the class, and an ``LLMError``'s message."""
    if isinstance(exc, errors.LLMError):
        return f"{type(exc).__name__}: {exc.message}"
    return type(exc).__name__


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


def _trace_headers(scope: Scope) -> dict[str, str]:
    """The W3C trace context headers the caller sent, if any."""
    found = {}
    for name in (b"traceparent", b"tracestate", b"baggage"):
        value = header(scope, name)
        if value is not None:
            found[name.decode()] = value
    return found


def _span_facts(ex: Exchange, failure: str | None) -> dict[str, Any]:
    """What the request's span says of it: the model asked for and what it was billed (the call's
    and the attempts' spans below say the rest); never a key, the tenant and the key's id only."""
    facts, usage, caller = ex.facts, ex.facts.usage, ex.caller
    return {
        "gen_ai.request.model": facts.model,
        "gen_ai.usage.input_tokens": usage.prompt_tokens if usage is not None else None,
        "gen_ai.usage.output_tokens": usage.completion_tokens if usage is not None else None,
        "llmrelay.cost_usd": facts.cost_usd, "llmrelay.cache": facts.cache, "error.type": failure,
        "llmrelay.tenant": caller.tenant_id, "llmrelay.key_id": caller.key_id,
        "llmrelay.request_id": ex.request_id,
    }  # fmt: skip


async def _answer(send: Send, started: bool, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    if started:  # the status line is gone; the stream's own error event has told the client
        return
    try:
        await send_json(send, status, body, headers)
    except OSError:
        pass


def check_access(master_key: str | None, open_access: bool) -> None:
    """A ``ConfigError`` unless there is a master key or open access was asked for on purpose."""
    if master_key is None and not open_access:
        raise errors.ConfigError(
            "the gateway has no master key: set auth.master_key (or LLMRELAY_MASTER_KEY), or allow open "
            "access on purpose (auth: {open: true}, or llmrelay serve --insecure-open) for local use only"
        )


__all__ = ["MAX_BODY", "Gateway", "check_access"]
