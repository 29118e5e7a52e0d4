"""Where cache entries live: in this process (``MemoryCache``: LRU with TTL and a
byte cap) or in Redis (``RedisCache``: shared by every gateway instance).

A cache may fail; a request must not. ``RedisCache`` turns every Redis error into
a miss (or a store not made), logs the outage once, skips Redis for a few seconds
so requests don't each wait on a dead server, and logs again when it is back.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("llmrelay.cache")
Clock = Callable[[], float]
T = TypeVar("T")


class CacheBackend(Protocol):
    """Bytes by key, with a time to live. Vectors (the semantic cache) are kept per
    namespace: ``add_vector`` keeps at most ``max_entries`` per namespace (the oldest go)."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def add_vector(self, namespace: str, key: str, vector: bytes, ttl_s: float, max_entries: int) -> None: ...

    async def vectors(self, namespace: str) -> list[tuple[str, bytes]]: ...

    async def remove_vector(self, namespace: str, key: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryCache:
    """An LRU of entries, each with an expiry; the values' bytes (plus keys, plus the
    question vectors kept with them) never pass ``max_bytes``: the least recently used
    go first, and a value larger than the whole cap is not kept at all. A question's
    vector lives with its entry's answer: it goes when the answer goes."""

    def __init__(self, max_bytes: int = 64_000_000, *, clock: Clock = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._vectors: dict[str, OrderedDict[str, tuple[float, bytes]]] = {}
        self._namespace_of: dict[str, str] = {}  # entry key -> the namespace holding its question's vector
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return found[1]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        size = len(key) + len(value)
        self._pop(key)  # a new answer to the same question: its vector stays
        if size > self.max_bytes:
            self._drop_vector(key)
            return
        self._entries[key] = (self._clock() + ttl_s, value)
        self.bytes += size
        self._evict()

    async def delete(self, key: str) -> None:
        self._remove(key)

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            self._remove(next(iter(self._entries)))

    def _pop(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.bytes -= len(key) + len(found[1])

    def _remove(self, key: str) -> None:
        self._pop(key)
        self._drop_vector(key)

    def _drop_vector(self, key: str) -> None:
        namespace = self._namespace_of.pop(key, None)
        if namespace is None:
            return
        kept = self._vectors[namespace]
        _, vector = kept.pop(key)
        self.bytes -= len(vector)
        if not kept:
            del self._vectors[namespace]

    async def add_vector(self, namespace: str, key: str, vector: bytes, ttl_s: float, max_entries: int) -> None:
        if key not in self._entries:  # its answer is not kept: nothing to find with it
            return
        self._drop_vector(key)
        kept = self._vectors.setdefault(namespace, OrderedDict())
        kept[key] = (self._clock() + ttl_s, vector)
        self._namespace_of[key] = namespace
        self.bytes += len(vector)
        while len(kept) > max_entries:
            self._drop_vector(next(iter(kept)))
        self._evict()

    async def vectors(self, namespace: str) -> list[tuple[str, bytes]]:
        kept = self._vectors.get(namespace)
        if not kept:
            return []
        now = self._clock()
        for key in [k for k, (expires, _) in kept.items() if expires <= now]:
            self._drop_vector(key)
        return [(k, v) for k, (_, v) in kept.items()]

    async def remove_vector(self, namespace: str, key: str) -> None:
        if self._namespace_of.get(key) == namespace:
            self._drop_vector(key)

    async def aclose(self) -> None:
        self._entries.clear()
        self._vectors.clear()
        self._namespace_of.clear()
        self.bytes = 0


class RedisCache:
    """Entries in Redis under ``prefix``; vectors of a namespace in one hash (the
    member's score in a companion sorted set orders them, to drop the oldest), in
    base64: text, so that a client that decodes answers (``decode_responses=True``)
    reads them back too."""

    RETRY_S = 5.0
    """After a Redis error, how long to serve without the cache before trying again."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "llmrelay:cache:",
        client: Redis | None = None,
        timeout_s: float = 0.5,
        clock: Clock = time.monotonic,
    ) -> None:
        if client is None:
            from redis.asyncio import Redis

            client = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._redis = client
        self._prefix = prefix
        self._clock = clock
        self._down_until = 0.0
        self._down = False

    @property
    def available(self) -> bool:
        """False while the cache is skipped after a Redis failure."""
        return not self._down or self._clock() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        if not self._down:
            log.warning("cache: Redis unavailable (%s: %s); serving without the cache", type(exc).__name__, exc)
        self._down = True
        self._down_until = self._clock() + self.RETRY_S

    def _ok(self) -> None:
        if self._down:
            self._down = False
            log.warning("cache: Redis is back; the cache is on again")

    async def _guarded(self, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        """``await call()``; ``fallback`` while Redis is skipped, or when the call fails
        (then Redis is skipped for ``RETRY_S``)."""
        if not self.available:
            return fallback
        try:
            result = await call()
        except Exception as exc:
            self._failed(exc)
            return fallback
        self._ok()
        return result

    def _vector_keys(self, namespace: str) -> tuple[str, str]:
        """The namespace's hash of vectors and the sorted set that orders them."""
        return f"{self._prefix}vec:{namespace}", f"{self._prefix}vecorder:{namespace}"

    async def get(self, key: str) -> bytes | None:
        value = await self._guarded(lambda: self._redis.get(self._prefix + key), None)
        return value if isinstance(value, bytes) or value is None else str(value).encode()

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._guarded(lambda: self._redis.set(self._prefix + key, value, px=_milliseconds(ttl_s)), None)

    async def delete(self, key: str) -> None:
        await self._guarded(lambda: self._redis.delete(self._prefix + key), None)

    async def add_vector(self, namespace: str, key: str, vector: bytes, ttl_s: float, max_entries: int) -> None:
        vectors, order = self._vector_keys(namespace)
        ttl_ms = _milliseconds(ttl_s)

        async def add() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(vectors, key, base64.b64encode(vector))
                pipe.zadd(order, {key: time.time()})
                pipe.pexpire(vectors, ttl_ms)
                pipe.pexpire(order, ttl_ms)
                await pipe.execute()
            excess = await self._redis.zcard(order) - max_entries
            if excess > 0:
                oldest = await self._redis.zrange(order, 0, excess - 1)
                if oldest:
                    await self._redis.hdel(vectors, *oldest)
                    await self._redis.zrem(order, *oldest)

        await self._guarded(add, None)

    async def vectors(self, namespace: str) -> list[tuple[str, bytes]]:
        vectors, _ = self._vector_keys(namespace)
        found: dict[bytes | str, bytes | str] = await self._guarded(lambda: self._redis.hgetall(vectors), {})
        kept: list[tuple[str, bytes]] = []
        for k, v in found.items():
            try:
                kept.append((_text(k), base64.b64decode(v, validate=True)))
            except ValueError:  # not base64 (written by an earlier version): not comparable
                continue
        return kept

    async def remove_vector(self, namespace: str, key: str) -> None:
        """Forget a question whose answer has expired (Redis expires the answer, not the vector)."""
        vectors, order = self._vector_keys(namespace)

        async def remove() -> None:
            await self._redis.hdel(vectors, key)
            await self._redis.zrem(order, key)

        await self._guarded(remove, None)

    async def aclose(self) -> None:
        try:
            await self._redis.aclose()
        except Exception:  # closing a connection to a dead server: nothing to save
            pass


_MAX_TTL_MS = 10**13  # about 300 years: "forever", within what Redis takes


def _milliseconds(ttl_s: float) -> int:
    """A time to live as Redis takes it: whole milliseconds, at least 1, at most ``_MAX_TTL_MS``."""
    ms = ttl_s * 1000
    return max(int(ms), 1) if ms < _MAX_TTL_MS else _MAX_TTL_MS  # (NaN too: the longest)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def make_backend(backend: str, *, url: str, prefix: str, max_bytes: int) -> CacheBackend:
    """The backend the config names; a ``ConfigError`` when it cannot be made (no
    redis package, a URL Redis cannot read), so it shows at start-up, not per request."""
    if backend != "redis":
        return MemoryCache(max_bytes)
    from .. import errors

    try:
        return RedisCache(url, prefix=prefix)
    except ImportError:
        raise errors.ConfigError("cache: backend redis needs the redis package (llmrelay[redis])") from None
    except ValueError as exc:
        raise errors.ConfigError(f"cache.url: {exc}") from None


__all__ = ["CacheBackend", "MemoryCache", "RedisCache", "make_backend"]
