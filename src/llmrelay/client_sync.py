"""``Client``: the synchronous client, with the same methods as ``AsyncClient``.

It runs the async core on a private event loop in a background thread: one code
path, and it works inside programs that already run a loop (notebooks).
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, overload

from . import errors
from .cache import DEFAULT_OPTIONS
from .client import CHECK_TIMEOUT_S, AsyncClient, ChatParams, GenerationParams, MessagesIn
from .config import Settings
from .types import (
    ChatRequest,
    ChatResponse,
    ConnectionCheck,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    StreamEvent,
)

if TYPE_CHECKING:
    from ._http import Transport
    from .batch import BatchResult, RequestsIn
    from .cache import CacheBackend, CacheLayer, CacheOptions
    from .providers.base import Provider
    from .registry import ProviderRegistry
    from .router import AttemptRecord, CallTrace, DeploymentHealth, ModelGroup, Router, RoutingSettings
    from .state.base import StateBackend
    from .telemetry.spans import Telemetry

T = TypeVar("T")


class Client:
    """The synchronous client: the same methods, arguments and defaults as
    ``AsyncClient`` (``close`` for ``aclose``), run on a private event loop."""

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
        # first: a bad config must not leave a thread behind
        self.aio = AsyncClient(
            config, providers=providers, transport=transport, env=env, check_context_window=check_context_window,
            models=models, routing=routing, state=state, hooks=hooks, cache=cache, telemetry=telemetry,
        )  # fmt: skip
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llmrelay-client", daemon=True)
        self._thread.start()
        # A Client dropped without close() still stops its thread and loop.
        self._finalizer = weakref.finalize(self, _stop_loop, self._loop, self._thread)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            raise errors.InvalidRequest("this Client is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise errors.InvalidRequest(
                "the sync Client was called from its own event loop (e.g. from an async tool): use AsyncClient there"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    @property
    def settings(self) -> Settings:
        return self.aio.settings

    @property
    def router(self) -> Router:
        return self.aio.router

    @property
    def telemetry(self) -> Telemetry | None:
        """Trace spans (``llmrelay.telemetry``), or ``None``: off."""
        return self.aio.telemetry

    @property
    def cache(self) -> CacheLayer:
        """The response cache and in-flight coalescing in front of the router."""
        return self.aio.cache

    @property
    def providers(self) -> ProviderRegistry:
        """The provider instances, made on first use."""
        return self.aio.providers

    @property
    def state(self) -> StateBackend:
        """Where breakers, health, cooldowns and rate windows are kept."""
        return self.aio.state

    @property
    def groups(self) -> Mapping[str, ModelGroup]:
        """The model groups, by name."""
        return self.aio.groups

    def add_hook(self, hook: Callable[[AttemptRecord], None]) -> None:
        """``hook(record)`` after every attempt (keep it quick; it runs inline, on the client's loop thread)."""
        self.aio.add_hook(hook)

    @property
    def check_context_window(self) -> bool:
        """Whether a prompt that cannot fit the model's context window is refused before sending."""
        return self.aio.check_context_window

    @check_context_window.setter
    def check_context_window(self, value: bool) -> None:
        self.aio.check_context_window = value

    # ---- resolution ---------------------------------------------------------------------

    def provider(self, name: str) -> Provider:
        """The provider instance called ``name`` (created on first use)."""
        return self.aio.provider(name)

    def default_model(self) -> str:
        """``LLMRELAY_DEFAULT_MODEL`` / the config's ``default_model``; with no provider
        configured at all, the local model."""
        return self.aio.default_model()

    def resolve(self, model: str | None) -> tuple[Provider, str]:
        """``(provider, model name at that provider)`` for a model string."""
        return self.aio.resolve(model)

    def route(self, model: str | None) -> str:
        """The model group a model string is served by."""
        return self.aio.route(model)

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
        """The canonical request these arguments make (checked), for ``model=""``."""
        return self.aio.build_request(
            messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=stop, seed=seed, user=user,
            tools=tools, tool_choice=tool_choice, response_format=response_format, extra=extra,
        )  # fmt: skip

    def chat(
        self,
        model: str | None,
        messages: MessagesIn,
        *,
        cache: bool | dict[str, Any] | CacheOptions | None = None,
        **params: Unpack[ChatParams],
    ) -> ChatResponse:
        """One answer (``r.route``: the deployment that answered). ``params``: temperature,
        top_p, max_tokens, stop, seed, user, tools, tool_choice, response_format (a pydantic
        model -> ``r.parsed``), extra. ``cache``: ``True``/a dict/``False`` overrides the
        group's caching for this call (docs/caching.md)."""
        return self._run(self.aio.chat(model, messages, cache=cache, **params))

    def stream(
        self,
        model: str | None,
        messages: MessagesIn,
        *,
        raise_errors: bool = True,
        cache: bool | dict[str, Any] | CacheOptions | None = None,
        **params: Unpack[ChatParams],
    ) -> Generator[StreamEvent, None, None]:
        """Events as they arrive; the last is ``Finish`` with the whole response. A failure
        raises an ``LLMError`` (``StreamInterrupted`` after text, with ``.partial``), or with
        ``raise_errors=False`` ends the stream with an ``ErrorEvent``. Nothing is sent
        before the first iteration. ``cache`` as for ``chat``."""
        return self._events(self.aio.stream(model, messages, raise_errors=raise_errors, cache=cache, **params))

    def _events(self, agen: AsyncGenerator[StreamEvent, None]) -> Generator[StreamEvent, None, None]:
        """An async stream's events, stepped on the client's loop."""
        try:
            while True:
                try:
                    event = self._run(_anext(agen))
                except StopAsyncIteration:
                    return
                yield event
        finally:
            if not self._loop.is_closed():
                self._run(_aclose(agen))

    def embed(
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
        return self._run(self.aio.embed(model, inputs, dimensions=dimensions, user=user, extra=extra))

    @overload
    def send(
        self, group: str, request: ChatRequest, *, cache: CacheOptions = ..., trace: CallTrace | None = ...
    ) -> ChatResponse: ...

    @overload
    def send(
        self, group: str, request: EmbeddingRequest, *, cache: CacheOptions = ..., trace: CallTrace | None = ...
    ) -> EmbeddingResponse: ...

    def send(
        self,
        group: str,
        request: ChatRequest | EmbeddingRequest,
        *,
        cache: CacheOptions = DEFAULT_OPTIONS,
        trace: CallTrace | None = None,
    ) -> ChatResponse | EmbeddingResponse:
        """Send a checked request to ``group`` (from ``route``): through the cache and the
        router for chat, the router for embeddings."""
        if isinstance(request, EmbeddingRequest):
            return self._run(self.aio.send(group, request, trace=trace))
        return self._run(self.aio.send(group, request, cache=cache, trace=trace))

    def send_stream(
        self, group: str, request: ChatRequest, *, cache: CacheOptions = DEFAULT_OPTIONS, trace: CallTrace | None = None
    ) -> Generator[StreamEvent, None, None]:
        """``send`` for a streamed answer."""
        return self._events(self.aio.send_stream(group, request, cache=cache, trace=trace))

    def caches(self, group: str) -> bool:
        """Whether answers of ``group`` are cached unless a call says otherwise."""
        return self.aio.caches(group)

    def run_tools(
        self,
        model: str | None,
        messages: MessagesIn,
        tools: Sequence[Callable[..., Any]],
        *,
        max_rounds: int = 5,
        **params: Unpack[GenerationParams],
    ) -> ChatResponse:
        """Let the model call ``tools`` (Python functions, run on the client's loop thread)
        until it answers; at most ``max_rounds`` rounds. The full conversation is in
        ``r.extra["messages"]``."""
        return self._run(self.aio.run_tools(model, messages, tools, max_rounds=max_rounds, **params))

    def batch(
        self,
        requests: RequestsIn,
        *,
        concurrency: int = 8,
        on_result: Callable[[BatchResult], object] | None = None,
    ) -> list[BatchResult]:
        """Run requests in OpenAI's Batch input format, at most ``concurrency`` at once; one
        result per request, in input order (a failure is that request's error). ``requests``
        and ``on_result`` run on the client's loop thread. See docs/batch.md."""
        return self._run(self.aio.batch(requests, concurrency=concurrency, on_result=on_result))

    def models(self, provider: str | None = None) -> list[ModelInfo]:
        """Models the provider lists (every configured provider when ``provider`` is None)."""
        return self._run(self.aio.models(provider))

    def model_info(self, model: str) -> ModelInfo:
        """What is known about ``model`` (context window, output limit, prices), without a request."""
        return self.aio.model_info(model)

    def count_tokens(self, model: str, messages: MessagesIn, tools: Iterable[Any] | None = None) -> int:
        """The prompt's tokens for ``model``, without a request: exact where its tokenizer is
        known (OpenAI models, the local model), else an estimate on the high side."""
        return self.aio.count_tokens(model, messages, tools)

    def test_connection(
        self, provider: str | None = None, *, timeout_s: float = CHECK_TIMEOUT_S
    ) -> list[ConnectionCheck]:
        """One verdict per provider (every configured one when ``provider`` is None); a
        provider that has not answered within ``timeout_s`` fails its check."""
        return self._run(self.aio.test_connection(provider, timeout_s=timeout_s))

    # ---- health -------------------------------------------------------------------------

    def health(self, group: str | None = None) -> list[DeploymentHealth]:
        """The health of every deployment of the configured model groups (or one group)."""
        return self._run(self.aio.health(group))

    def check_now(self, group: str | None = None) -> list[DeploymentHealth]:
        """Check every deployment actively now, then report as ``health``."""
        return self._run(self.aio.check_now(group))

    def set_health(self, deployment: str, healthy: bool | None) -> None:
        """Take a deployment (``provider/model``) out of service (False), force it
        in (True), or give it back to automatic health (None)."""
        self._run(self.aio.set_health(deployment, healthy))

    # ---- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop background work, close the providers and connections, then the loop's thread."""
        if self._loop.is_closed():
            return
        try:
            self._run(self.aio.aclose())
        finally:
            self._finalizer()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _anext(agen: AsyncGenerator[StreamEvent, None]) -> StreamEvent:
    return await agen.__anext__()


async def _aclose(agen: AsyncGenerator[StreamEvent, None]) -> None:
    # After Ctrl-C the interrupted step may still be unwinding in the loop: let it finish first.
    for _ in range(500):
        if not getattr(agen, "ag_running", False):
            break
        await asyncio.sleep(0.01)
    await agen.aclose()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if loop.is_closed():
        return
    loop.call_soon_threadsafe(loop.stop)
    if thread is not threading.current_thread():
        thread.join(timeout=5)
    if not loop.is_running():
        loop.close()


__all__ = ["Client"]
