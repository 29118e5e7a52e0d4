"""Response caching (exact and semantic) and in-flight coalescing; see docs/caching.md."""

from .backends import CacheBackend, MemoryCache, RedisCache
from .entries import CorruptEntry
from .layer import CacheLayer
from .options import DEFAULT_OPTIONS, CacheInfo, CacheOptions, CacheSettings, cache_options

__all__ = [
    "DEFAULT_OPTIONS",
    "CacheBackend",
    "CacheInfo",
    "CacheLayer",
    "CacheOptions",
    "CacheSettings",
    "CorruptEntry",
    "MemoryCache",
    "RedisCache",
    "cache_options",
]
