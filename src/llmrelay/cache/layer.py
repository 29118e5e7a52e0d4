"""``CacheLayer``: the exact cache, the semantic cache and in-flight coalescing,
in front of the router. The client and the gateway both call through it.

A call whose model group has neither ``cache`` nor ``coalesce`` (and no
``cache=`` of its own) goes straight to the router: no key is computed. Otherwise:

1. the key (keys.request_key: the normalised request, scoped by tenant);
2. unless ``no_cache``: an entry under that key is a hit; else, for a request
   that opts in to the semantic cache, the closest earlier question's entry;
3. a miss goes upstream, through a shared flight when the group coalesces;
   a complete answer (stop, length or tool calls) is stored unless ``no_store``.

The cache never fails a call: an unreadable entry is a miss (and is dropped),
a cache backend that is down is a miss (backends.RedisCache).
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import errors
from ..structured import structured_value
from ..types import ChatRequest, ChatResponse, Finish, StreamEvent
from .backends import CacheBackend, make_backend
from .entries import CorruptEntry, decode, encode
from .flights import Flights
from .keys import Kind, request_key, semantic_parts
from .options import DEFAULT_OPTIONS, CacheInfo, CacheOptions, CacheSettings
from .semantic import Embedder, SemanticIndex, Vector

if TYPE_CHECKING:
    from ..router import ModelGroup, Router
    from ..router.records import CallTrace

log = logging.getLogger("llmrelay.cache")
STORED_REASONS = frozenset(("stop", "length", "tool_calls"))
"""Answers worth keeping: complete ones (not errors, not content filtered)."""
_Semantic = tuple[str, Vector] | None  # (namespace, question vector)


class CacheLayer:
    def __init__(
        self,
        router: Router,
        settings: CacheSettings | None = None,
        *,
        backend: CacheBackend | None = None,
        embed: Embedder | None = None,
    ) -> None:
        """``backend``: where entries live (default: as ``settings`` say, made on first
        use); ``embed``: the semantic cache's embedder (default: the local MiniLM)."""
        self.router = router
        self.settings = settings or CacheSettings()
        self._backend = backend
        if backend is None and self.settings.backend == "redis":
            self._backend = self.backend  # made now: a bad URL is a ConfigError at start-up
        self._embed = embed
        self._semantic: SemanticIndex | None = None
        self.flights = Flights()
        self.stats: Counter[str] = Counter()
        """``hit``, ``semantic_hit``, ``miss``, ``coalesced``, ``corrupt``: counts since start."""

    @property
    def backend(self) -> CacheBackend:
        if self._backend is None:
            s = self.settings
            self._backend = make_backend(s.backend, url=s.url, prefix=s.prefix, max_bytes=s.max_bytes)
        return self._backend

    def _index(self) -> SemanticIndex:
        if self._semantic is None:
            s = self.settings
            self._semantic = SemanticIndex(
                self.backend, threshold=s.threshold, max_entries=s.max_entries, embed=self._embed
            )
        return self._semantic

    def applies(self, group: str) -> bool:
        """Whether ``group`` caches or coalesces (else only a call's own ``cache=`` can)."""
        caching, coalescing, _ = self._plan(group, DEFAULT_OPTIONS)
        return caching or coalescing

    def _plan(self, group: str, options: CacheOptions) -> tuple[bool, bool, bool]:
        """``(caching, coalescing, semantic)`` for a call to ``group``."""
        g: ModelGroup | None = self.router.groups.get(group)
        group_caches = g is not None and (g.cache or g.semantic_cache)  # the semantic cache keeps entries too
        caching = options.enabled if options.enabled is not None else group_caches
        semantic = caching and options.semantic and g is not None and g.semantic_cache
        return caching, g is not None and g.coalesce, semantic

    # ---- JSON answers -----------------------------------------------------------------------

    async def chat(
        self,
        group: str,
        request: ChatRequest,
        options: CacheOptions = DEFAULT_OPTIONS,
        trace: CallTrace | None = None,
    ) -> ChatResponse:
        """``trace`` follows the deployment of the upstream attempt (``Router.chat``)."""
        caching, coalescing, semantic = self._plan(group, options)
        if not caching and not coalescing:
            return await self.router.chat(group, request, trace)
        key = request_key("chat", group, request, options.tenant)
        near: _Semantic = None
        if caching and not options.no_cache:
            hit = await self._hit(key, request)
            if hit is not None:
                return hit[0]
            if semantic:
                found, near = await self._nearest("chat", group, request, options)
                if found is not None:
                    return found[0]
        store = caching and not options.no_store

        async def upstream() -> ChatResponse:
            response = await self.router.chat(group, request, trace)
            response.cache = CacheInfo("miss", key, time.time())
            if store:
                await self._store(key, response, None, options, near)
            return response

        if not coalescing:
            self.stats["miss"] += 1
            return await upstream()
        response, shared = await self.flights.call(key, upstream)
        self.stats["coalesced" if shared else "miss"] += 1
        return _own_copy(response, request, shared)

    # ---- streams ------------------------------------------------------------------------------

    def stream(
        self,
        group: str,
        request: ChatRequest,
        options: CacheOptions = DEFAULT_OPTIONS,
        trace: CallTrace | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        caching, coalescing, semantic = self._plan(group, options)
        if not caching and not coalescing:
            return self.router.stream(group, request, trace)
        return self._stream(group, request, options, (caching, coalescing, semantic), trace)

    async def _stream(
        self,
        group: str,
        request: ChatRequest,
        options: CacheOptions,
        plan: tuple[bool, bool, bool],
        trace: CallTrace | None,
    ) -> AsyncGenerator[StreamEvent, None]:
        caching, coalescing, semantic = plan
        key = request_key("stream", group, request, options.tenant)
        near: _Semantic = None
        if caching and not options.no_cache:
            hit = await self._hit(key, request)
            if hit is None and semantic:
                hit, near = await self._nearest("stream", group, request, options)
            if hit is not None and hit[1] is not None:
                if options.report is not None and hit[0].cache is not None:
                    options.report(hit[0].cache)
                for event in hit[1]:
                    yield event
                return
        store = caching and not options.no_store
        report = options.report

        async def upstream() -> AsyncGenerator[StreamEvent, None]:
            given: list[StreamEvent] = []
            async with aclosing(self.router.stream(group, request, trace)) as events:
                async for event in events:
                    given.append(event)
                    if type(event) is Finish:
                        event.response.cache = CacheInfo("miss", key, time.time())
                        if store:
                            await self._store(key, event.response, given, options, near)
                    yield event

        if not coalescing:
            self.stats["miss"] += 1
            if report is not None:
                report(CacheInfo("miss", key, time.time()))
            async with aclosing(upstream()) as events:
                async for event in events:
                    yield event
            return
        counted = False
        try:
            async with aclosing(self.flights.stream(key, upstream)) as shared_events:
                async for event, shared in shared_events:
                    if not counted:
                        counted = True
                        self.stats["coalesced" if shared else "miss"] += 1
                        if report is not None:
                            report(CacheInfo("miss", key, time.time(), coalesced=shared))
                    if type(event) is Finish:
                        event = Finish(event.reason, _own_copy(event.response, request, shared))
                    yield event
        finally:
            if trace is not None and self.flights.streaming(key):
                trace.handed_over = True  # it goes on for the others: the one who takes its end pays

    # ---- entries ------------------------------------------------------------------------------

    async def _hit(
        self, key: str, request: ChatRequest, similarity: float | None = None
    ) -> tuple[ChatResponse, list[StreamEvent] | None] | None:
        data = await self.backend.get(key)
        if data is None:
            return None
        try:
            response, stored_at, events = decode(data)
        except CorruptEntry as exc:
            self.stats["corrupt"] += 1
            log.warning("cache: dropped an unreadable entry (%s)", exc)
            await self.backend.delete(key)
            return None
        response.cache = CacheInfo("hit", key, stored_at, similarity)
        response.cost_usd, response.latency_s = 0.0, 0.0  # nothing was asked upstream
        if response.route is not None:
            response.route = replace(response.route, attempts=0)
        try:
            response.parsed = structured_value(response, request.response_format)
        except errors.LLMError:
            return None  # stored for another schema object with the same shape: ask again
        self.stats["semantic_hit" if similarity is not None else "hit"] += 1
        return response, events

    async def _nearest(
        self, kind: Kind, group: str, request: ChatRequest, options: CacheOptions
    ) -> tuple[tuple[ChatResponse, list[StreamEvent] | None] | None, _Semantic]:
        """The entry of the closest earlier question, and (namespace, vector) to store under."""
        parts = semantic_parts(kind, group, request, options.tenant)
        if parts is None:
            return None, None
        namespace, question = parts
        index = self._index()
        try:
            vector = await index.vector(question)
        except Exception as exc:  # no local model installed, say: the exact cache still works
            log.warning("cache: semantic lookup unavailable (%s: %s)", type(exc).__name__, exc)
            return None, None
        for key, similarity in await index.nearest(namespace, vector):
            hit = await self._hit(key, request, similarity=similarity)
            if hit is not None:
                return hit, (namespace, vector)
            await index.forget(namespace, key)  # its answer expired (or was unreadable): try the next
        return None, (namespace, vector)

    async def _store(
        self,
        key: str,
        response: ChatResponse,
        events: list[StreamEvent] | None,
        options: CacheOptions,
        near: _Semantic,
    ) -> None:
        if response.finish_reason not in STORED_REASONS:
            return
        info = response.cache
        try:
            data = encode(response, info.stored_at if info is not None else time.time(), events)
        except (TypeError, ValueError) as exc:  # an answer carrying something JSON cannot hold
            log.warning("cache: answer not stored (%s)", exc)
            return
        ttl = options.ttl_s or self.settings.ttl_s
        await self.backend.set(key, data, ttl)
        if near is not None:
            await self._index().add(near[0], near[1], key, ttl)

    async def aclose(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()


def _own_copy(response: ChatResponse, request: ChatRequest, shared: bool) -> ChatResponse:
    """A caller's own copy of a flight's answer: callers share nothing one of them could
    change. A structured value is validated again into this caller's own model (an
    identical request may name another class of that shape); a ``shared`` one cost nothing."""
    own = copy.deepcopy(replace(response, parsed=None))
    own.parsed = structured_value(own, request.response_format)
    if shared:
        if own.cache is not None:
            own.cache.coalesced = True
        own.cost_usd = 0.0
    return own


__all__ = ["STORED_REASONS", "CacheLayer"]
