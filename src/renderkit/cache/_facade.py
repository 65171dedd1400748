"""What ``Cache`` and ``AsyncCache`` share: keys, serialization, stats, construction.

Everything that is not I/O (the key check, codec, TTL and jitter, counters, logging, the
decorator's key builder, construction from URLs and the environment) lives in
:class:`CacheCore`. The facades' I/O methods are written once, in ``_cache_async.py``
(:class:`AsyncCache`); ``_cache_sync.py`` (:class:`Cache`) is generated from it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any, Literal, Self

from renderkit._redis import SCHEMES
from renderkit._variables import REDIS_URL
from renderkit.cache._base import Backend
from renderkit.cache._fallback import FallbackBackend
from renderkit.cache._memory import ABSENT, MemoryBackend
from renderkit.cache._null import NullBackend
from renderkit.cache._redis import RedisBackend
from renderkit.cache._serde import CorruptValue, Serializer
from renderkit.cache._tiered import TieredBackend
from renderkit.config import ByteSize, RedisUrl, Seconds, Settings, env
from renderkit.errors import ConfigError, ConfigProblem, RenderKitError

__all__ = ["CacheKeyError", "CacheSettings"]

logger = logging.getLogger("renderkit.cache")

MAX_KEY_BYTES = 1024
MISSING: Any = object()
STALE_SUFFIX = "\x00stale"
Ttl = float | int | timedelta | None


class CacheKeyError(RenderKitError, ValueError, TypeError):
    """A cache key is not a non-empty ``str`` of at most 1024 UTF-8 bytes."""

    __module__ = "renderkit.cache"


def _utf8_size(key: str) -> int:
    """The key's UTF-8 length, or -1 when it cannot be encoded (a lone surrogate)."""
    try:
        return len(key.encode())
    except UnicodeEncodeError:
        return -1


def _bad_key(key: object) -> CacheKeyError:
    if not isinstance(key, str):
        return CacheKeyError(
            f"cache keys must be str, got {type(key).__name__}: convert it with str() or "
            "build the key yourself (f'user:{user_id}')"
        )
    if not key:
        return CacheKeyError("cache key is empty: pass a non-empty string")
    if _utf8_size(key) < 0:
        return CacheKeyError(
            f"cache key is not valid Unicode (it holds a lone surrogate, key starts {key[:40]!r}): "
            "build keys from decoded text, or hash the raw bytes"
        )
    return CacheKeyError(
        f"cache key is {len(key.encode())} bytes long (limit {MAX_KEY_BYTES}): "
        f"hash long keys, e.g. hashlib.sha256(key.encode()).hexdigest() (key starts {key[:40]!r})"
    )


def ttl_seconds(ttl: Ttl, what: str = "ttl") -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if not seconds > 0:
        raise ValueError(f"{what}={ttl!r}: must be a positive number of seconds, or None")
    return seconds


class CacheCore:
    """State and decisions shared by :class:`Cache` and :class:`AsyncCache`."""

    _awaited = False  # True on AsyncCache: its backend must be asyncio

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        namespace: str = "",
        default_ttl: Ttl = 300.0,
        ttl_jitter: float = 0.1,
        serializer: Serializer | None = None,
        raise_errors: bool = False,
        name: str = "cache",
    ) -> None:
        if not 0 <= ttl_jitter < 1:
            raise ValueError(f"ttl_jitter={ttl_jitter}: must be a fraction in [0, 1)")
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be str, got {type(namespace).__name__}")
        if _utf8_size(namespace) < 0:
            raise CacheKeyError(
                f"namespace {namespace[:40]!r} is not valid Unicode (a lone surrogate): "
                "use plain text such as 'myapp'"
            )
        self.backend: Backend = backend if backend is not None else MemoryBackend()
        self.namespace = namespace
        self._prefix = f"{namespace}:" if namespace else ""
        self.default_ttl = ttl_seconds(default_ttl, "default_ttl")
        self.ttl_jitter = ttl_jitter
        # In-process bytes cross no network: compressing them would only cost every read.
        local = type(self.backend) is MemoryBackend
        self.serializer = serializer or Serializer(compress_threshold=None if local else 1024)
        self.raise_errors = raise_errors
        self.name = name
        _check_kind(self.backend, self._awaited, type(self).__name__)
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.deletes = 0
        self.errors = 0
        self.corrupt = 0
        self.stale_served = 0
        self._failing = False
        self._corrupt_logged = False
        # Backends in this process that hand out decoded values: a hot str/bytes/number is
        # decoded once, not on every read. A plain MemoryBackend is the whole store
        # (_local_only: not found there is a miss); a TieredBackend's L1 is the first level.
        backend_ = self.backend
        self._local_only = type(backend_) is MemoryBackend
        self._l1_value: Callable[[str, Any], Any] | None = None
        if self._local_only:
            self._l1_value = backend_.get_decoded  # type: ignore[attr-defined]
        elif isinstance(backend_, TieredBackend) and backend_.decodes_in_l1:
            self._l1_value = backend_.l1_value

    # -- keys and values -----------------------------------------------------------------
    def _key(self, key: str) -> str:
        """``key`` with the namespace prefix; :class:`CacheKeyError` unless it is valid."""
        # An ASCII str holds no surrogate and is one byte per character: exact, not a shortcut.
        if key.__class__ is str and key.isascii() and 0 < len(key) <= MAX_KEY_BYTES:
            return self._prefix + key
        if not isinstance(key, str) or not 0 < _utf8_size(key) <= MAX_KEY_BYTES:
            raise _bad_key(key)
        return self._prefix + key

    def _ttl(self, ttl: Ttl, jitter: bool = False) -> float | None:
        seconds = self.default_ttl if ttl is None else ttl_seconds(ttl)
        if jitter and seconds is not None and self.ttl_jitter:
            # Spread expiries of keys filled together so they do not all expire together.
            seconds *= 1 - random.random() * self.ttl_jitter
        return seconds

    def _corrupt_miss(self, full_key: str, exc: CorruptValue, default: Any) -> Any:
        self.corrupt += 1
        self.misses += 1
        if not self._corrupt_logged:
            self._corrupt_logged = True
            logger.warning(
                "cache %s: undecodable value under %r treated as a miss (%s); "
                "further ones are counted in stats()['corrupt'] without logging",
                self.name,
                full_key,
                exc,
            )
        return default

    def _from_l1(self, full_key: str, default: Any) -> Any:
        """The decoded L1 value of a tiered backend, or ``ABSENT`` (then ask the backend).

        Undecodable L1 bytes are a counted, logged miss: ``default`` is returned.
        """
        l1_value = self._l1_value
        if l1_value is None:
            return ABSENT
        try:
            value = l1_value(full_key, self.serializer.loads)
        except CorruptValue as exc:
            return self._corrupt_miss(full_key, exc, default)
        if value is not ABSENT:
            self.hits += 1
        return value

    def _decoded(self, full_key: str, raw: bytes | None, default: Any) -> Any:
        """The value of stored bytes (counted as a hit), or ``default`` for a miss."""
        if raw is None:
            self.misses += 1
            return default
        try:
            value = self.serializer.loads(raw)
        except CorruptValue as exc:
            return self._corrupt_miss(full_key, exc, default)
        self.hits += 1
        return value

    def _stale_value(self, full_key: str, raw: bytes | None) -> Any:
        """The kept stale copy's value for ``get_or_set(stale_if_error=...)``, or ``MISSING``."""
        if raw is None:
            return MISSING
        try:
            value = self.serializer.loads(raw)
        except CorruptValue:
            return MISSING
        self.stale_served += 1
        logger.warning(
            "cache %s: factory failed; serving the stale value of %r", self.name, full_key
        )
        return value

    # -- error policy --------------------------------------------------------------------
    def _backend_failed(self, exc: Exception, op: str) -> None:
        self.errors += 1
        if self.raise_errors:
            raise
        if not self._failing:
            self._failing = True
            logger.warning(
                "cache %s: %s failed on %s (%s: %s); serving misses until it answers",
                self.name,
                op,
                self.backend.name,
                type(exc).__name__,
                exc,
            )

    def _backend_ok(self) -> None:
        self._failing = False
        logger.info("cache %s: %s answers again", self.name, self.backend.name)

    # -- decorator ----------------------------------------------------------------------
    def _check_target(self, fn: Callable[..., Any]) -> None:
        """``cached`` wraps coroutine functions on ``AsyncCache``, plain ones on ``Cache``."""
        if inspect.iscoroutinefunction(fn) == self._awaited:
            return
        if self._awaited:
            raise TypeError(
                f"AsyncCache.cached wraps coroutine functions; {fn.__qualname__} is not "
                "one (use Cache.cached)"
            )
        raise TypeError(
            f"Cache.cached cannot wrap the coroutine function {fn.__qualname__}; "
            "use AsyncCache.cached"
        )

    @staticmethod
    def _key_builder(fn: Callable[..., Any], key: Callable[..., str] | None) -> Callable[..., str]:
        """``key_for(*args, **kwargs)``: ``key(...)`` if given, else a stable hash of the call."""
        if key is not None:
            return key
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        name = f"{fn.__module__}.{fn.__qualname__}"

        def key_for(*args: Any, **kwargs: Any) -> str:
            if signature is not None:
                try:
                    bound = signature.bind(*args, **kwargs)
                    bound.apply_defaults()
                    args, kwargs = bound.args, bound.kwargs
                except TypeError:
                    pass  # let the call itself raise the clear TypeError
            payload = json.dumps(
                [args, kwargs], sort_keys=True, default=repr, separators=(",", ":")
            )
            return f"{name}:{hashlib.sha256(payload.encode()).hexdigest()[:32]}"

        return key_for

    # -- reporting -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Hits, misses, hit rate, errors, fallback state and the backend's figures."""
        lookups = self.hits + self.misses
        backend_stats = self.backend.stats()
        return {
            "name": self.name,
            "namespace": self.namespace,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / lookups, 4) if lookups else 0.0,
            "sets": self.sets,
            "deletes": self.deletes,
            "errors": self.errors,
            "corrupt": self.corrupt,
            "stale_served": self.stale_served,
            "fallback_active": _fallback_active(self.backend),
            "backend": backend_stats,
        }

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_url(
        cls,
        url: str | None = None,
        *,
        fallback: bool = True,
        hybrid: bool = False,
        **options: Any,
    ) -> Self:
        """Memory for ``None``/``memory://``; Redis with a memory fallback for ``redis://``.

        ``hybrid=True`` puts a small in-process L1 before Redis; ``fallback=False`` leaves a
        lone Redis (a failing Redis then reads as misses). ``options`` go to the constructor.
        """
        backend = cls._backend_from_url(url, asyncio=cls._awaited, fallback=fallback, hybrid=hybrid)
        return cls(backend, **options)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """Build from ``REDIS_URL`` and the ``CACHE_*`` variables (:class:`CacheSettings`).

        Every bad variable is reported at once in one :class:`~renderkit.config.ConfigError`;
        ``options`` override what the environment says.
        """
        settings = CacheSettings.load(environ)
        if not settings.enabled:
            return cls(NullBackend(), **options)
        kind = settings.kind or ("redis" if settings.redis_url else "memory")
        backend = cls._backend_from_url(
            None if kind == "memory" else str(settings.redis_url),
            asyncio=cls._awaited,
            fallback=True,
            hybrid=kind == "hybrid",
            max_entries=settings.max_entries,
            max_bytes=settings.max_bytes,
            l1_ttl=settings.l1_ttl,
            probe_interval=settings.probe_interval,
            socket_timeout=settings.redis_timeout,
        )
        cache_options: dict[str, Any] = {"default_ttl": settings.ttl}
        if settings.namespace:
            cache_options["namespace"] = settings.namespace
        return cls(backend, **{**cache_options, **options})

    @classmethod
    def _backend_from_url(
        cls,
        url: str | None,
        *,
        asyncio: bool,
        fallback: bool,
        hybrid: bool = False,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        l1_ttl: float = 5.0,
        probe_interval: float = 5.0,
        socket_timeout: float = 0.25,
    ) -> Backend:
        if url is None or url.strip() in ("", "memory://"):
            return MemoryBackend(max_entries, max_bytes)
        if url.strip() == "null://":
            return NullBackend()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in SCHEMES:
            raise ConfigError(
                ConfigProblem(
                    "REDIS_URL",
                    f"cache URL scheme {scheme or 'missing'!r} is not supported; use "
                    "redis://, rediss://, unix://, valkey://, valkeys://, redis+cluster://, "
                    "redis+sentinel:// or memory:// (or None for memory)",
                    "code",
                )
            )
        redis_backend: Backend = RedisBackend.from_url(
            url,
            asyncio=asyncio,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
        )
        backend = redis_backend
        if fallback:
            backend = FallbackBackend(
                redis_backend, MemoryBackend(max_entries, max_bytes), probe_interval=probe_interval
            )
        if hybrid:
            backend = TieredBackend(
                MemoryBackend(max(1, max_entries // 10), max(1, max_bytes // 4)),
                backend,
                l1_ttl=l1_ttl,
            )
        return backend


class CacheSettings(Settings):
    """The variables ``Cache.from_env()`` and ``AsyncCache.from_env()`` read."""

    redis_url: RedisUrl | None = REDIS_URL
    enabled: bool = env("CACHE_ENABLED", default=True)
    """false turns caching off: every get misses and nothing is stored."""
    kind: Literal["memory", "redis", "hybrid"] | None = env("CACHE_TYPE", default=None)
    """memory, redis (Redis, memory while it is down) or hybrid (a small in-process copy before
    Redis); unset: redis when REDIS_URL is set, else memory."""
    ttl: Seconds = env("CACHE_TTL", default="300s", minimum="1ms")
    """Default time to live of an entry."""
    namespace: str | None = env("CACHE_NAMESPACE", default=None)
    """Prefix of every key (namespace:key), so apps can share one Redis."""
    max_entries: int = env("CACHE_MAX_ENTRIES", default=10_000, minimum=1)
    """Entries the memory cache (or Redis's memory fallback) keeps at most."""
    max_bytes: ByteSize = env("CACHE_MAX_BYTES", default="64MiB", minimum=1)
    """Bytes the memory cache keeps at most, per-entry overhead included (e.g. 64MiB)."""
    l1_ttl: Seconds = env("CACHE_L1_TTL", default="5s", minimum="1ms")
    """CACHE_TYPE=hybrid: how long the in-process copy is trusted before Redis is read."""
    probe_interval: Seconds = env("CACHE_PROBE_INTERVAL", default="5s", minimum="1ms")
    """While Redis is down: how often it is tried again in the background."""
    redis_timeout: Seconds = env("CACHE_REDIS_TIMEOUT", default="250ms", minimum="1ms")
    """Socket and connect timeout of each Redis call; a hung Redis costs this once."""

    def cross_check(self) -> Iterable[tuple[str, str]]:
        if self.kind in ("redis", "hybrid") and self.redis_url is None:
            yield (
                "REDIS_URL",
                f"is required when CACHE_TYPE={self.kind}; set it or use CACHE_TYPE=memory",
            )


def _redis_backends(backend: Any) -> Iterator[RedisBackend]:
    if isinstance(backend, RedisBackend):
        yield backend
    for child in ("primary", "fallback", "l1", "l2"):
        inner = getattr(backend, child, None)
        if inner is not None:
            yield from _redis_backends(inner)


def _check_kind(backend: Backend, want_async: bool, facade: str) -> None:
    for redis_backend in _redis_backends(backend):
        if redis_backend.is_async != want_async:
            code = "asyncio code" if want_async else "synchronous code"
            raise redis_backend.wrong_kind(f"{code} ({facade})")


def _fallback_active(backend: Backend) -> bool:
    if isinstance(backend, FallbackBackend):
        return backend.fallback_active
    if isinstance(backend, TieredBackend):
        return _fallback_active(backend.l2)
    return False
