"""Response caching (exact and semantic) and in-flight coalescing; see docs/caching.md."""

from .backends import CacheBackend, MemoryCache, RedisCache
from .entries import CorruptEntry
from .layer import CacheLayer
from .options import CacheInfo, CacheOptions, CacheSettings, cache_options

__all__ = [
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
