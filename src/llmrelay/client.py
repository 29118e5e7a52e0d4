"""``AsyncClient``: the library face (``Client``, its synchronous twin with the
same methods, is in client_sync.py and runs this async core on a loop of its own).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, overload

from . import errors
from ._http import Transport
from ._messages import to_messages
from .cache import DEFAULT_OPTIONS, CacheBackend, CacheLayer, CacheOptions, cache_options
from .config import Settings, load_settings
from .providers.base import Provider
from .registry import ProviderRegistry
from .router import AttemptRecord, CallTrace, Deployment, DeploymentHealth, ModelGroup, Router, RoutingSettings
from .state.base import StateBackend
from .structured import to_response_format
from .telemetry import telemetry_for
from .tools import runnable_tools, to_tools, tool_loop
from .types import (
    ChatRequest,
    ChatResponse,
    ConnectionCheck,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorEvent,
    Message,
    ModelInfo,
    StreamEvent,
)
from .validation import check_params, embed_inputs

if TYPE_CHECKING:
    from .batch import BatchResult, RequestsIn
    from .telemetry.spans import Telemetry

log = logging.getLogger("llmrelay")
MessagesIn = str | Iterable[Message | dict[str, Any]]
LOCAL_DEFAULT = "local/smollm2"
CHECK_TIMEOUT_S = 20.0
"""How long ``test_connection`` waits for one provider (loading the local model takes ~1 s)."""
_IMPLICIT_GROUPS_MAX = 4096
_said_local = False


class GenerationParams(TypedDict, total=False):
    """The keyword arguments of ``run_tools`` after its own (those of ``build_request``
    but ``tools``): ``response_format`` takes a pydantic model (-> ``r.parsed``), a
    ``ResponseFormat`` or an OpenAI-style dict; ``extra`` is merged into the provider's
    request body."""

    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    stop: str | Sequence[str] | None
    seed: int | None
    user: str | None
    tool_choice: str | dict[str, Any] | None
    response_format: Any
    extra: dict[str, Any] | None


class ChatParams(GenerationParams, total=False):
    """The keyword arguments of ``chat`` and ``stream`` after their own (those of
    ``build_request``): the generation parameters and ``tools`` (``Tool``, ``ToolSpec``,
    OpenAI-style dicts or Python functions)."""

    tools: Iterable[Any] | None


class AsyncClient:
    """Talks to any configured provider. Models are ``PROVIDER/MODEL`` (a
    configured provider name or a known kind with its standard environment
    variables) or a model-group name (from the config or ``models=``).

    Every call goes through the router: retries, timeouts, breakers,
    failover and fallbacks per ``routing`` (the config's ``routing:`` section
    by default); ``PROVIDER/MODEL`` is a group of one deployment. ``state``
    holds breakers, health, cooldowns and rate windows (in memory by default);
    ``hooks`` receive an ``AttemptRecord`` after every attempt.

    Use one ``AsyncClient`` per event loop: its pooled connections belong to the
    loop that opened them, and ``aclose`` closes those of the current loop."""

    def __init__(
        self,
        config: str | os.PathLike[str] | Settings | None = None,
        *,
        providers: Iterable[Provider] = (),
        transport: Transport | None = None,
        env: Mapping[str, str] | None = None,
        check_context_window: bool = True,
        models: Iterable[ModelGroup] = (),
        routing: RoutingSettings | None = None,
        state: StateBackend | None = None,
        hooks: Iterable[Callable[[AttemptRecord], None]] = (),
        cache: CacheBackend | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.settings = config if isinstance(config, Settings) else load_settings(config, env)
        if telemetry is None:
            telemetry = telemetry_for(self.settings.file.telemetry if self.settings.file is not None else None, env)
        self.telemetry = telemetry
        """Trace spans (``llmrelay.telemetry``), or ``None``: off, and nothing of OpenTelemetry loaded."""
        if transport is None:
            from ._http1 import Http1Transport

            transport = Http1Transport()
        if self.telemetry is not None:
            from .telemetry.spans import TracingTransport

            transport = TracingTransport(transport)
        self.providers = ProviderRegistry(self.settings, env, transport, providers)
        """The provider instances, made on first use."""
        _configure_logging(env)
        groups = dict(self.settings.models)
        for group in models:
            groups[group.name] = group
        self._own_state: StateBackend | None = None  # made here from the config: closed here
        url = self.settings.state_url
        if state is None and url:
            from .state.redis import RedisState

            s = self.settings
            state = self._own_state = RedisState(url, prefix=s.state_prefix, timeout_s=s.state_timeout_s)
        self.router = Router(
            groups,
            self.providers.get,
            settings=routing or self.settings.routing or RoutingSettings(),
            state=state,
            hooks=hooks,
            check_context_window=check_context_window,
        )
        self.router.telemetry = self.telemetry
        self.cache = CacheLayer(self.router, self.settings.cache, backend=cache)
        """The response cache and in-flight coalescing in front of the router."""
        self._implicit: dict[str, None] = {}

    @property
    def check_context_window(self) -> bool:
        """Whether a prompt that cannot fit a deployment's model is refused before sending."""
        return self.router.check_context_window

    @check_context_window.setter
    def check_context_window(self, value: bool) -> None:
        self.router.check_context_window = value

    @property
    def state(self) -> StateBackend:
        """Where breakers, health, cooldowns and rate windows are kept (shared by processes with Redis)."""
        return self.router.state

    @property
    def groups(self) -> Mapping[str, ModelGroup]:
        """The model groups, by name (configured, passed in, and made for ``PROVIDER/MODEL`` names)."""
        return self.router.groups

    def add_hook(self, hook: Callable[[AttemptRecord], None]) -> None:
        """``hook(record)`` after every attempt (keep it quick; it runs inline)."""
        self.router.add_hook(hook)

    # ---- resolution ---------------------------------------------------------------------

    def provider(self, name: str) -> Provider:
        """The provider instance called ``name`` (created on first use)."""
        return self.providers.get(name)

    def default_model(self) -> str:
        """``LLMRELAY_DEFAULT_MODEL`` / the config's ``default_model``; with no provider
        configured at all, the local model (said once, at INFO level)."""
        model = self.settings.default_model
        if model:
            return model
        given = self.providers.given
        if self.settings.providers or given:
            configured = ", ".join(sorted({*self.settings.providers, *given}))
            raise errors.InvalidRequest(
                f"no model given and no default: pass PROVIDER/MODEL (configured providers: {configured}) "
                "or set LLMRELAY_DEFAULT_MODEL"
            )
        global _said_local
        if not _said_local:
            _said_local = True
            log.info("no provider configured and no default model: using %s", LOCAL_DEFAULT)
        return LOCAL_DEFAULT

    def resolve(self, model: str | None) -> tuple[Provider, str]:
        """``(provider, model name at that provider)`` for a model string."""
        if not model or model == "default":
            model = self.default_model()
        group = self.router.groups.get(model)
        if group is not None:
            first = group.members[0]
            return self.provider(first.provider), first.model
        name, sep, rest = model.partition("/")
        if not sep or not name or not rest:
            raise errors.InvalidRequest(
                f"model {model!r} names no provider: write PROVIDER/MODEL, e.g. openai/{model or 'gpt-4o-mini'}"
            )
        return self.provider(name), rest

    def route(self, model: str | None) -> str:
        """The model group a model string is served by (``PROVIDER/MODEL``: a
        group of that one deployment, made on first use)."""
        if not model or model == "default":
            model = self.default_model()
        if model in self.router.groups:
            return model
        provider, name = self.resolve(model)  # unknown providers and missing keys fail here
        if len(self._implicit) >= _IMPLICIT_GROUPS_MAX:  # many one-off model names: forget the oldest
            oldest = next(iter(self._implicit))
            del self._implicit[oldest]
            self.router.remove_group(oldest)
        self.router.add_group(ModelGroup(model, [Deployment(provider.name, name)]), check=False)
        self._implicit[model] = None
        return model

    # ---- requests -----------------------------------------------------------------------

    def build_request(
        self,
        messages: MessagesIn,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        user: str | None = None,
        tools: Iterable[Any] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        response_format: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> ChatRequest:
        check_params(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop, user=user)
        return ChatRequest(
            model="",
            messages=to_messages(messages),
            tools=to_tools(tools),
            tool_choice=tool_choice,
            response_format=to_response_format(response_format),
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            stop=[stop] if isinstance(stop, str) else list(stop) if stop else None,
            seed=seed,
            user=user,
            extra=dict(extra) if extra else {},
        )

    async def chat(
        self,
        model: str | None,
        messages: MessagesIn,
        *,
        cache: bool | dict[str, Any] | CacheOptions | None = None,
        **params: Unpack[ChatParams],
    ) -> ChatResponse:
        """One answer. ``params``: temperature, top_p, max_tokens, stop, seed, user,
        tools, tool_choice, response_format (a pydantic model -> ``r.parsed``), extra.
        ``r.route`` says which deployment answered. ``cache``: ``True``, or a dict
        (``ttl``, ``no_cache``, ``no_store``, ``semantic``, ``tenant``), caches this call
        even when its model group does not; ``False`` never caches it; ``r.cache``
        says what the cache did (docs/caching.md)."""
        group = self.route(model)
        return await self.send(group, self.build_request(messages, **params), cache=cache_options(cache))

    def stream(
        self,
        model: str | None,
        messages: MessagesIn,
        *,
        raise_errors: bool = True,
        cache: bool | dict[str, Any] | CacheOptions | None = None,
        **params: Unpack[ChatParams],
    ) -> AsyncGenerator[StreamEvent, None]:
        """Events as they arrive; the last is ``Finish`` with the whole response.

        A failure raises an ``LLMError`` (``StreamInterrupted`` once text has been
        given, with ``.partial``); with ``raise_errors=False`` it ends the stream
        with an ``ErrorEvent`` instead. Nothing is sent before the first iteration.
        ``cache`` as for ``chat``: a cached stream is replayed with the same events."""
        try:
            group = self.route(model)
            request = self.build_request(messages, **params)
            options = cache_options(cache)
        except errors.LLMError as exc:
            return _raising(exc)
        events = self.send_stream(group, request, cache=options)
        return events if raise_errors else _errors_as_events(events)

    async def embed(
        self,
        model: str | None,
        inputs: str | Sequence[str],
        *,
        dimensions: int | None = None,
        user: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> EmbeddingResponse:
        """One vector per input text, in order. ``dimensions`` asks for shorter vectors
        where the model can give them; ``extra`` is merged into the provider's request."""
        group = self.route(model)
        texts = embed_inputs(inputs)
        return await self.send(group, EmbeddingRequest("", texts, dimensions, user, dict(extra or {})))

    # ---- the one way in: a request already built, to a model group ----------------------

    @overload
    async def send(
        self, group: str, request: ChatRequest, *, cache: CacheOptions = ..., trace: CallTrace | None = ...
    ) -> ChatResponse: ...

    @overload
    async def send(
        self, group: str, request: EmbeddingRequest, *, cache: CacheOptions = ..., trace: CallTrace | None = ...
    ) -> EmbeddingResponse: ...

    async def send(
        self,
        group: str,
        request: ChatRequest | EmbeddingRequest,
        *,
        cache: CacheOptions = DEFAULT_OPTIONS,
        trace: CallTrace | None = None,
    ) -> ChatResponse | EmbeddingResponse:
        """Send a checked request to ``group`` (from ``route``): through the cache and the
        router for chat, the router for embeddings. ``chat``, ``embed``, the gateway's
        routes and ``batch`` all come in here; ``trace`` follows the attempt under way."""
        answer = self._send(group, request, cache, trace)
        return await (answer if self.telemetry is None else self.telemetry.call(group, request, answer))

    async def _send(
        self, group: str, request: ChatRequest | EmbeddingRequest, cache: CacheOptions, trace: CallTrace | None
    ) -> ChatResponse | EmbeddingResponse:
        if isinstance(request, EmbeddingRequest):
            return await self.router.embed(group, request, trace)
        return await self.cache.chat(group, request, cache, trace)

    def send_stream(
        self, group: str, request: ChatRequest, *, cache: CacheOptions = DEFAULT_OPTIONS, trace: CallTrace | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """``send`` for a streamed answer (uncached: the router's own events, no extra step each)."""
        events = self.cache.stream(group, request, cache, trace)
        return events if self.telemetry is None else self.telemetry.stream(group, request, events)

    def caches(self, group: str) -> bool:
        """Whether answers of ``group`` are cached unless a call says otherwise."""
        return self.cache.applies(group)

    async def run_tools(
        self,
        model: str | None,
        messages: MessagesIn,
        tools: Sequence[Callable[..., Any]],
        *,
        max_rounds: int = 5,
        **params: Unpack[GenerationParams],
    ) -> ChatResponse:
        """Let the model call ``tools`` (Python functions) until it answers; at most
        ``max_rounds`` rounds. The full conversation is in ``r.extra["messages"]``."""
        runnable = runnable_tools(tools)
        group = self.route(model)
        specs = [t.spec for t in runnable.values()]

        async def ask(history: list[Message]) -> ChatResponse:
            return await self.send(group, self.build_request(history, tools=specs, **params))

        return await tool_loop(ask, to_messages(messages), runnable, max_rounds)

    async def batch(
        self,
        requests: RequestsIn,
        *,
        concurrency: int = 8,
        on_result: Callable[[BatchResult], object] | None = None,
    ) -> list[BatchResult]:
        """Run requests in OpenAI's Batch input format (``custom_id``, ``method``,
        ``url``: chat completions or embeddings, ``body``), at most ``concurrency`` at
        once; one result per request, in input order, each an OpenAI Batch output line
        (a failure is that request's error, never the whole run's). See docs/batch.md."""
        from .batch import run_batch

        return await run_batch(self, requests, concurrency=concurrency, on_result=on_result)

    async def models(self, provider: str | None = None) -> list[ModelInfo]:
        """Models the provider lists (every configured provider when ``provider`` is None)."""
        names = [provider] if provider else sorted(self.settings.providers)
        found: list[ModelInfo] = []
        for name in names:
            found.extend(await self.provider(name).models())
        return found

    def model_info(self, model: str) -> ModelInfo:
        """What is known about ``model`` (context window, output limit, prices), without a request."""
        provider, name = self.resolve(model)
        return provider.model_info(name)

    def count_tokens(self, model: str, messages: MessagesIn, tools: Iterable[Any] | None = None) -> int:
        """The prompt's tokens for ``model``, without a request: exact where its tokenizer is
        known (OpenAI models, the local model), else an estimate on the high side."""
        provider, name = self.resolve(model)
        return provider.count_prompt(name, to_messages(messages), to_tools(tools) or None)

    async def test_connection(
        self, provider: str | None = None, *, timeout_s: float = CHECK_TIMEOUT_S
    ) -> list[ConnectionCheck]:
        """One verdict per provider (every configured one when ``provider`` is None); a
        provider that has not answered within ``timeout_s`` fails its check."""
        names = [provider] if provider else sorted(self.settings.providers)
        checks = []
        for name in names:
            try:
                instance = self.provider(name)
            except errors.LLMError as exc:
                checks.append(ConnectionCheck(name, False, exc.message, error=exc))
                continue
            start = time.perf_counter()
            try:
                async with asyncio.timeout(timeout_s):
                    checks.append(await instance.test_connection())
            except TimeoutError:
                elapsed = time.perf_counter() - start
                checks.append(ConnectionCheck(name, False, f"no answer within {timeout_s:g}s", elapsed))
        return checks

    # ---- health -------------------------------------------------------------------------

    async def health(self, group: str | None = None) -> list[DeploymentHealth]:
        """The health of every deployment of the configured model groups (or one group)."""
        return await self.router.health(group)

    async def check_now(self, group: str | None = None) -> list[DeploymentHealth]:
        """Check every deployment actively now, then report as ``health``."""
        return await self.router.check_now(group)

    async def set_health(self, deployment: str, healthy: bool | None) -> None:
        """Take a deployment (``provider/model``) out of service (False), force it
        in (True), or give it back to automatic health (None)."""
        await self.router.set_health(deployment, healthy)

    # ---- lifetime -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop background work and close the providers and the connections of this loop."""
        await self.router.aclose()
        await self.cache.aclose()
        if self._own_state is not None:
            await self._own_state.aclose()
        await self.providers.aclose()
        if self.telemetry is not None:
            self.telemetry.shutdown()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _raising(exc: errors.LLMError) -> AsyncGenerator[StreamEvent, None]:
    """A stream whose first step raises ``exc`` (bad arguments surface when iterated)."""
    raise exc
    yield  # pragma: no cover - makes this an async generator


async def _errors_as_events(events: AsyncGenerator[StreamEvent, None]) -> AsyncGenerator[StreamEvent, None]:
    """``events``, ending with an ``ErrorEvent`` instead of raising an ``LLMError``."""
    try:
        async with aclosing(events):  # a caller that stops closes the stream at once
            async for event in events:
                yield event
    except errors.LLMError as exc:
        yield ErrorEvent(exc, getattr(exc, "partial", None))


_logging_configured = False


def _configure_logging(env: Mapping[str, str]) -> None:
    global _logging_configured
    level = (env.get("LLMRELAY_LOG_LEVEL") or "").upper()
    if _logging_configured or not level:
        return
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise errors.ConfigError(f"LLMRELAY_LOG_LEVEL is {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    _logging_configured = True
    logger = logging.getLogger("llmrelay")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)


__all__ = ["AsyncClient", "ChatParams", "GenerationParams"]
