"""``Client``: the synchronous client, with the same methods as ``AsyncClient``.

It runs the async core on a private event loop in a background thread: one code
path, and it works inside programs that already run a loop (notebooks).
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import errors
from .cache import CacheLayer
from .client import CHECK_TIMEOUT_S, AsyncClient, MessagesIn
from .config import Settings
from .types import ChatResponse, ConnectionCheck, EmbeddingResponse, ModelInfo, StreamEvent

if TYPE_CHECKING:
    from .batch import BatchResult, RequestsIn
    from .providers.base import Provider
    from .router import DeploymentHealth, Router

T = TypeVar("T")


class Client:
    """The synchronous client: same methods as ``AsyncClient``."""

    def __init__(self, config: str | os.PathLike[str] | Settings | None = None, **kwargs: Any) -> None:
        self.aio = AsyncClient(config, **kwargs)  # first: a bad config must not leave a thread behind
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

    def chat(self, model: str | None, messages: MessagesIn, **params: Any) -> ChatResponse:
        return self._run(self.aio.chat(model, messages, **params))

    def stream(self, model: str | None, messages: MessagesIn, **params: Any) -> Generator[StreamEvent, None, None]:
        agen = self.aio.stream(model, messages, **params)
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

    def embed(self, model: str | None, inputs: str | Sequence[str], **params: Any) -> EmbeddingResponse:
        return self._run(self.aio.embed(model, inputs, **params))

    def run_tools(
        self, model: str | None, messages: MessagesIn, tools: Sequence[Callable[..., Any]], **params: Any
    ) -> ChatResponse:
        return self._run(self.aio.run_tools(model, messages, tools, **params))

    def batch(self, requests: RequestsIn, **options: Any) -> list[BatchResult]:
        """As ``AsyncClient.batch`` (``requests`` and ``on_result`` run on the client's loop thread)."""
        return self._run(self.aio.batch(requests, **options))

    @property
    def cache(self) -> CacheLayer:
        return self.aio.cache

    def models(self, provider: str | None = None) -> list[ModelInfo]:
        return self._run(self.aio.models(provider))

    def model_info(self, model: str) -> ModelInfo:
        return self.aio.model_info(model)

    def count_tokens(self, model: str, messages: MessagesIn, tools: Iterable[Any] | None = None) -> int:
        return self.aio.count_tokens(model, messages, tools)

    def test_connection(
        self, provider: str | None = None, *, timeout_s: float = CHECK_TIMEOUT_S
    ) -> list[ConnectionCheck]:
        return self._run(self.aio.test_connection(provider, timeout_s=timeout_s))

    def provider(self, name: str) -> Provider:
        return self.aio.provider(name)

    @property
    def router(self) -> Router:
        return self.aio.router

    def health(self, group: str | None = None) -> list[DeploymentHealth]:
        return self._run(self.aio.health(group))

    def check_now(self, group: str | None = None) -> list[DeploymentHealth]:
        return self._run(self.aio.check_now(group))

    def set_health(self, deployment: str, healthy: bool | None) -> None:
        self._run(self.aio.set_health(deployment, healthy))

    def close(self) -> None:
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
