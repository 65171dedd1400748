"""A Redis-or-memory cache that never takes a request down with it.

``Cache`` / ``AsyncCache`` sit over a backend: ``MemoryBackend`` (LRU + TTL, bounded by
entries and bytes), ``RedisBackend``, ``TieredBackend(l1, l2)`` and
``FallbackBackend(primary, fallback)``::

    from renderkit.cache import Cache
    cache = Cache.from_url(os.environ.get("REDIS_URL"))   # Redis, memory when it fails
    user = cache.get_or_set(f"user:{uid}", lambda: load_user(uid), ttl=60)
"""

from __future__ import annotations

from renderkit.cache._base import Backend
from renderkit.cache._cache_async import AsyncCache
from renderkit.cache._cache_sync import Cache
from renderkit.cache._facade import CacheKeyError, CacheSettings
from renderkit.cache._fallback import FallbackBackend
from renderkit.cache._memory import MemoryBackend
from renderkit.cache._null import NullBackend
from renderkit.cache._redis import RedisBackend
from renderkit.cache._serde import CacheValueError, Serializer
from renderkit.cache._tiered import TieredBackend

__all__ = [
    "AsyncCache",
    "Backend",
    "Cache",
    "CacheKeyError",
    "CacheSettings",
    "CacheValueError",
    "FallbackBackend",
    "MemoryBackend",
    "NullBackend",
    "RedisBackend",
    "Serializer",
    "TieredBackend",
]
