"""``Cache`` and ``AsyncCache``: keys, serialization, stats and single-flight over a backend.

Everything that is not I/O (key checks, codec, TTL and jitter, counters, logging, the
decorator's key builder, construction from URLs and env) lives in :class:`_CacheCore`; the two
facades only drive the backend's sync or asyncio methods.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from renderkit.cache._base import Backend
from renderkit.cache._fallback import FallbackBackend
from renderkit.cache._memory import ABSENT, MemoryBackend
from renderkit.cache._null import NullBackend
from renderkit.cache._redis import RedisBackend
from renderkit.cache._serde import CorruptValue, Serializer
from renderkit.cache._tiered import TieredBackend
from renderkit.errors import ConfigError, ConfigProblem, RenderKitError
from renderkit.health import CheckResult

__all__ = ["AsyncCache", "Cache", "CacheKeyError"]

P = ParamSpec("P")
T = TypeVar("T")
logger = logging.getLogger("renderkit.cache")

MAX_KEY_BYTES = 1024
_MISSING: Any = object()
_STALE_SUFFIX = "\x00stale"
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


def _seconds(ttl: Ttl, what: str = "ttl") -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if not seconds > 0:
        raise ValueError(f"{what}={ttl!r}: must be a positive number of seconds, or None")
    return seconds


class _CacheCore:
    """State and decisions shared by :class:`Cache` and :class:`AsyncCache`."""

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
        self.backend: Backend = backend if backend is not None else MemoryBackend()
        self.namespace = namespace
        self._prefix = f"{namespace}:" if namespace else ""
        self.default_ttl = _seconds(default_ttl, "default_ttl")
        self.ttl_jitter = ttl_jitter
        self.serializer = serializer or Serializer()
        self.raise_errors = raise_errors
        self.name = name
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.deletes = 0
        self.errors = 0
        self.corrupt = 0
        self.stale_served = 0
        self._failing = False
        self._corrupt_logged = False
        # A TieredBackend whose L1 hands out decoded values: hot keys skip the JSON decode.
        backend_ = self.backend
        self._l1_value: Callable[[str, Any], Any] | None = (
            backend_.l1_value
            if isinstance(backend_, TieredBackend) and backend_.decodes_in_l1
            else None
        )

    # -- keys and values -----------------------------------------------------------------
    def _key(self, key: str) -> str:
        if key.__class__ is str and 0 < len(key) <= 256:
            return self._prefix + key
        if not isinstance(key, str) or not key or not 0 < _utf8_size(key) <= MAX_KEY_BYTES:
            raise _bad_key(key)
        return self._prefix + key

    def _ttl(self, ttl: Ttl, jitter: bool = False) -> float | None:
        seconds = self.default_ttl if ttl is None else _seconds(ttl)
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

    # -- decorator key -------------------------------------------------------------------
    @staticmethod
    def _call_key(
        fn: Callable[..., Any], signature: inspect.Signature | None, args: Any, kwargs: Any
    ) -> str:
        if signature is not None:
            try:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                args, kwargs = bound.args, bound.kwargs
            except TypeError:
                pass  # let the call itself raise the clear TypeError
        payload = json.dumps([args, kwargs], sort_keys=True, default=repr, separators=(",", ":"))
        digest = hashlib.sha256(payload.encode()).hexdigest()[:32]
        return f"{fn.__module__}.{fn.__qualname__}:{digest}"

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
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                ConfigProblem(
                    "REDIS_URL",
                    f"cache URL scheme {scheme or 'missing'!r} is not supported; use "
                    "redis://, rediss://, unix:// or memory:// (or None for memory)",
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

    @staticmethod
    def _read_env(environ: Mapping[str, str]) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
        """(url, backend options, cache options) from REDIS_URL and CACHE_* variables."""
        from renderkit.config import (
            parse_bool,
            parse_bytes,
            parse_duration,
            parse_int,
            parse_redis_url,
        )

        problems: list[ConfigProblem] = []
        backend_opts: dict[str, Any] = {}
        cache_opts: dict[str, Any] = {}

        def read(var: str, parse: Callable[[str], Any]) -> Any:
            raw = environ.get(var, "")
            if not raw.strip():
                return None
            try:
                return parse(raw)
            except ValueError as exc:
                shown = "a URL (value hidden)" if var == "REDIS_URL" else repr(raw[:80])
                problems.append(ConfigProblem(var, f"{exc}; got {shown}"))
                return None

        def seconds(raw: str) -> float:
            value = parse_duration(raw).total_seconds()
            if value <= 0:
                raise ValueError("expected a positive duration")
            return value

        url = read("REDIS_URL", parse_redis_url)
        enabled = read("CACHE_ENABLED", parse_bool)
        kind = read("CACHE_TYPE", lambda raw: raw.strip().lower())
        if kind not in (None, "memory", "redis", "hybrid"):
            problems.append(
                ConfigProblem("CACHE_TYPE", f"must be memory, redis or hybrid; got {kind!r}")
            )
        if (
            kind in ("redis", "hybrid")
            and url is None
            and "REDIS_URL" not in {p.variable for p in problems}
        ):
            problems.append(
                ConfigProblem(
                    "REDIS_URL",
                    f"is required when CACHE_TYPE={kind}; set it or use CACHE_TYPE=memory",
                )
            )
        ttl = read("CACHE_TTL", seconds)
        namespace = environ.get("CACHE_NAMESPACE", "").strip()
        max_entries = read("CACHE_MAX_ENTRIES", parse_int)
        max_bytes = read("CACHE_MAX_BYTES", parse_bytes)
        l1_ttl = read("CACHE_L1_TTL", seconds)
        probe = read("CACHE_PROBE_INTERVAL", seconds)
        timeout = read("CACHE_REDIS_TIMEOUT", seconds)
        for var, value in (("CACHE_MAX_ENTRIES", max_entries), ("CACHE_MAX_BYTES", max_bytes)):
            if value is not None and value < 1:
                problems.append(ConfigProblem(var, f"must be at least 1; got {value}"))
        if problems:
            raise ConfigError(problems)
        if enabled is False:
            return "null://", backend_opts, cache_opts
        if kind is None:
            kind = "redis" if url else "memory"
        backend_opts["hybrid"] = kind == "hybrid"
        for key, value in (
            ("max_entries", max_entries),
            ("max_bytes", max_bytes),
            ("l1_ttl", l1_ttl),
            ("probe_interval", probe),
            ("socket_timeout", timeout),
        ):
            if value is not None:
                backend_opts[key] = value
        if ttl is not None:
            cache_opts["default_ttl"] = ttl
        if namespace:
            cache_opts["namespace"] = namespace
        return (None if kind == "memory" else str(url)), backend_opts, cache_opts


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
            raise redis_backend._wrong_kind(f"{facade}")


def _fallback_active(backend: Backend) -> bool:
    if isinstance(backend, FallbackBackend):
        return backend.fallback_active
    if isinstance(backend, TieredBackend):
        return _fallback_active(backend.l2)
    return False


class _Flights:
    """Per-key threading locks with reference counts, so the table never grows unbounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: dict[str, list[Any]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._lock:
            entry = self._table.get(key)
            if entry is None:
                entry = self._table[key] = [threading.Lock(), 0]
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._table[key]


class Cache(_CacheCore):
    """A synchronous cache facade: ``get``/``set``/``delete``/``get_or_set``/``cached``.

    Backend failures never reach the caller (unless ``raise_errors=True``): a failed read is
    a miss, a failed write is counted and logged once.
    """

    def __init__(self, backend: Backend | None = None, **options: Any) -> None:
        super().__init__(backend, **options)
        _check_kind(self.backend, False, "synchronous code (Cache)")
        self._flights = _Flights()

    @classmethod
    def from_url(
        cls,
        url: str | None = None,
        *,
        fallback: bool = True,
        hybrid: bool = False,
        **options: Any,
    ) -> Cache:
        """Memory for ``None``/``memory://``; Redis with a memory fallback for ``redis://``."""
        backend = cls._backend_from_url(url, asyncio=False, fallback=fallback, hybrid=hybrid)
        return cls(backend, **options)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Cache:
        """Build from REDIS_URL, CACHE_ENABLED, CACHE_TYPE, CACHE_TTL, CACHE_NAMESPACE, ..."""
        url, backend_opts, cache_opts = cls._read_env(os.environ if environ is None else environ)
        backend = cls._backend_from_url(url, asyncio=False, fallback=True, **backend_opts)
        return cls(backend, **{**cache_opts, **options})

    def get(self, key: str, default: Any = None) -> Any:
        """Return the cached value, or ``default`` on a miss (or a backend failure)."""
        if key.__class__ is str and 0 < len(key) <= 256:  # _key's fast path, inlined
            full = self._prefix + key
        else:
            full = self._key(key)
        if self._l1_value is not None:
            value = self._from_l1(full, default)
            if value is not ABSENT:
                return value
        try:
            raw = self.backend.get(full)
        except Exception as exc:
            self._backend_failed(exc, "get")
            self.misses += 1
            return default
        if self._failing:
            self._backend_ok()
        if raw is None:
            self.misses += 1
            return default
        try:
            value = self.serializer.loads(raw)
        except CorruptValue as exc:
            return self._corrupt_miss(full, exc, default)
        self.hits += 1
        return value

    def set(self, key: str, value: Any, ttl: Ttl = None) -> bool:
        """Store ``value`` for ``ttl`` seconds (default ``default_ttl``); False if not stored."""
        full = self._key(key)
        raw = self.serializer.dumps(value)
        return self._store(full, raw, self._ttl(ttl))

    def _store(self, full: str, raw: bytes, ttl: float | None) -> bool:
        try:
            self.backend.set(full, raw, ttl)
        except Exception as exc:
            self._backend_failed(exc, "set")
            return False
        self.sets += 1
        return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        full = self._key(key)
        try:
            found = self.backend.delete(full)
            self.backend.delete(full + _STALE_SUFFIX)
        except Exception as exc:
            self._backend_failed(exc, "delete")
            return False
        self.deletes += 1
        return found

    def clear(self) -> int:
        """Remove every key of this cache's namespace (everything without a namespace)."""
        try:
            return self.backend.clear(self._prefix)
        except Exception as exc:
            self._backend_failed(exc, "clear")
            return 0

    def get_or_set(
        self,
        key: str,
        factory: Callable[[], T],
        ttl: Ttl = None,
        *,
        lock: bool = False,
        lock_lease: float = 10.0,
        stale_if_error: Ttl = None,
    ) -> T:
        """Return the cached value or compute it with ``factory()`` once per key at a time.

        Concurrent callers of one key in this process wait for one computation. ``lock=True``
        also takes a Redis lock (lease ``lock_lease`` seconds) so other instances wait too.
        ``stale_if_error`` keeps a copy for that many seconds past ``ttl`` and returns it when
        ``factory`` raises.
        """
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        full = self._key(key)
        with self._flights.hold(full):
            value = self.get(key, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[no-any-return]
            token = None
            if lock:
                token, value = self._distributed_wait(key, full, lock_lease)
                if value is not _MISSING:
                    return value  # type: ignore[no-any-return]
            try:
                try:
                    value = factory()
                except Exception:
                    if stale_if_error is not None:
                        stale = self._stale(full)
                        if stale is not _MISSING:
                            return stale  # type: ignore[no-any-return]
                    raise
                raw = self.serializer.dumps(value)
                seconds = self._ttl(ttl, jitter=True)
                self._store(full, raw, seconds)
                if stale_if_error is not None:
                    keep = _seconds(stale_if_error, "stale_if_error") or 0
                    self._store(full + _STALE_SUFFIX, raw, (seconds or 0) + keep or None)
            finally:
                if token is not None:
                    self._release(full, token)
            return value

    def _distributed_wait(self, key: str, full: str, lease: float) -> tuple[str | None, Any]:
        deadline = time.monotonic() + lease
        delay = 0.01
        while True:
            try:
                token = self.backend.acquire_lock(full + "\x00lock", lease)
            except Exception as exc:
                self._backend_failed(exc, "lock")
                return None, _MISSING
            if token is not None:
                # Another instance may have filled the key just before releasing its lock.
                value = self.get(key, _MISSING)
                if value is not _MISSING:
                    self._release(full, token)
                    return None, value
                return token, _MISSING
            value = self.get(key, _MISSING)
            if value is not _MISSING or time.monotonic() >= deadline:
                return None, value  # lease over: compute anyway rather than wait forever
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _release(self, full: str, token: str) -> None:
        try:
            self.backend.release_lock(full + "\x00lock", token)
        except Exception as exc:
            self._backend_failed(exc, "unlock")

    def _stale(self, full: str) -> Any:
        try:
            raw = self.backend.get(full + _STALE_SUFFIX)
        except Exception:
            return _MISSING
        if raw is None:
            return _MISSING
        try:
            value = self.serializer.loads(raw)
        except CorruptValue:
            return _MISSING
        self.stale_served += 1
        logger.warning("cache %s: factory failed; serving the stale value of %r", self.name, full)
        return value

    def cached(
        self,
        ttl: Ttl = None,
        *,
        key: Callable[..., str] | None = None,
        lock: bool = False,
        stale_if_error: Ttl = None,
    ) -> Callable[[Callable[P, T]], Callable[P, T]]:
        """Decorate a function so its result is cached per arguments (stable, hashed key)."""

        def decorate(fn: Callable[P, T]) -> Callable[P, T]:
            if inspect.iscoroutinefunction(fn):
                raise TypeError(
                    f"Cache.cached cannot wrap the coroutine function {fn.__qualname__}; "
                    "use AsyncCache.cached"
                )
            try:
                signature: inspect.Signature | None = inspect.signature(fn)
            except (TypeError, ValueError):
                signature = None

            def key_for(*args: Any, **kwargs: Any) -> str:
                return key(*args, **kwargs) if key else self._call_key(fn, signature, args, kwargs)

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
                return self.get_or_set(
                    key_for(*args, **kwargs),
                    lambda: fn(*args, **kwargs),
                    ttl,
                    lock=lock,
                    stale_if_error=stale_if_error,
                )

            wrapper.key_for = key_for  # type: ignore[attr-defined]
            wrapper.invalidate = lambda *a, **k: self.delete(key_for(*a, **k))  # type: ignore[attr-defined]
            return wrapper

        return decorate

    def health_check(self) -> CheckResult:
        """Healthy, degraded while a fallback serves, unhealthy when a lone Redis is down."""
        return self.backend.health_check()

    def close(self) -> None:
        """Close the backend's connections."""
        self.backend.close()


class _AsyncFlights:
    """Per-key asyncio locks with reference counts (one event loop per cache)."""

    def __init__(self) -> None:
        self._table: dict[str, list[Any]] = {}

    def enter(self, key: str) -> list[Any]:
        entry = self._table.get(key)
        if entry is None:
            entry = self._table[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        return entry

    def leave(self, key: str, entry: list[Any]) -> None:
        entry[1] -= 1
        if entry[1] == 0 and self._table.get(key) is entry:
            del self._table[key]


class AsyncCache(_CacheCore):
    """The asyncio twin of :class:`Cache`: same methods, awaited."""

    def __init__(self, backend: Backend | None = None, **options: Any) -> None:
        super().__init__(backend, **options)
        _check_kind(self.backend, True, "asyncio code (AsyncCache)")
        self._flights = _AsyncFlights()

    @classmethod
    def from_url(
        cls,
        url: str | None = None,
        *,
        fallback: bool = True,
        hybrid: bool = False,
        **options: Any,
    ) -> AsyncCache:
        """Memory for ``None``/``memory://``; Redis with a memory fallback for ``redis://``."""
        backend = cls._backend_from_url(url, asyncio=True, fallback=fallback, hybrid=hybrid)
        return cls(backend, **options)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> AsyncCache:
        """Build from REDIS_URL, CACHE_ENABLED, CACHE_TYPE, CACHE_TTL, CACHE_NAMESPACE, ..."""
        url, backend_opts, cache_opts = cls._read_env(os.environ if environ is None else environ)
        backend = cls._backend_from_url(url, asyncio=True, fallback=True, **backend_opts)
        return cls(backend, **{**cache_opts, **options})

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the cached value, or ``default`` on a miss (or a backend failure)."""
        if key.__class__ is str and 0 < len(key) <= 256:  # _key's fast path, inlined
            full = self._prefix + key
        else:
            full = self._key(key)
        if self._l1_value is not None:
            value = self._from_l1(full, default)
            if value is not ABSENT:
                return value
        try:
            raw = await self.backend.aget(full)
        except Exception as exc:
            self._backend_failed(exc, "get")
            self.misses += 1
            return default
        if self._failing:
            self._backend_ok()
        if raw is None:
            self.misses += 1
            return default
        try:
            value = self.serializer.loads(raw)
        except CorruptValue as exc:
            return self._corrupt_miss(full, exc, default)
        self.hits += 1
        return value

    async def set(self, key: str, value: Any, ttl: Ttl = None) -> bool:
        """Store ``value`` for ``ttl`` seconds (default ``default_ttl``); False if not stored."""
        full = self._key(key)
        raw = self.serializer.dumps(value)
        return await self._store(full, raw, self._ttl(ttl))

    async def _store(self, full: str, raw: bytes, ttl: float | None) -> bool:
        try:
            await self.backend.aset(full, raw, ttl)
        except Exception as exc:
            self._backend_failed(exc, "set")
            return False
        self.sets += 1
        return True

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        full = self._key(key)
        try:
            found = await self.backend.adelete(full)
            await self.backend.adelete(full + _STALE_SUFFIX)
        except Exception as exc:
            self._backend_failed(exc, "delete")
            return False
        self.deletes += 1
        return found

    async def clear(self) -> int:
        """Remove every key of this cache's namespace (everything without a namespace)."""
        try:
            return await self.backend.aclear(self._prefix)
        except Exception as exc:
            self._backend_failed(exc, "clear")
            return 0

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]],
        ttl: Ttl = None,
        *,
        lock: bool = False,
        lock_lease: float = 10.0,
        stale_if_error: Ttl = None,
    ) -> T:
        """Return the cached value or await ``factory()`` once per key at a time."""
        value = await self.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        full = self._key(key)
        entry = self._flights.enter(full)
        try:
            async with entry[0]:
                value = await self.get(key, _MISSING)
                if value is not _MISSING:
                    return value  # type: ignore[no-any-return]
                token = None
                if lock:
                    token, value = await self._distributed_wait(key, full, lock_lease)
                    if value is not _MISSING:
                        return value  # type: ignore[no-any-return]
                try:
                    try:
                        value = await factory()
                    except Exception:
                        if stale_if_error is not None:
                            stale = await self._stale(full)
                            if stale is not _MISSING:
                                return stale  # type: ignore[no-any-return]
                        raise
                    raw = self.serializer.dumps(value)
                    seconds = self._ttl(ttl, jitter=True)
                    await self._store(full, raw, seconds)
                    if stale_if_error is not None:
                        keep = _seconds(stale_if_error, "stale_if_error") or 0
                        await self._store(full + _STALE_SUFFIX, raw, (seconds or 0) + keep or None)
                finally:
                    if token is not None:
                        await self._release(full, token)
                return value
        finally:
            self._flights.leave(full, entry)

    async def _distributed_wait(self, key: str, full: str, lease: float) -> tuple[str | None, Any]:
        deadline = time.monotonic() + lease
        delay = 0.01
        while True:
            try:
                token = await self.backend.aacquire_lock(full + "\x00lock", lease)
            except Exception as exc:
                self._backend_failed(exc, "lock")
                return None, _MISSING
            if token is not None:
                value = await self.get(key, _MISSING)
                if value is not _MISSING:
                    await self._release(full, token)
                    return None, value
                return token, _MISSING
            value = await self.get(key, _MISSING)
            if value is not _MISSING or time.monotonic() >= deadline:
                return None, value
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _release(self, full: str, token: str) -> None:
        try:
            await self.backend.arelease_lock(full + "\x00lock", token)
        except Exception as exc:
            self._backend_failed(exc, "unlock")

    async def _stale(self, full: str) -> Any:
        try:
            raw = await self.backend.aget(full + _STALE_SUFFIX)
        except Exception:
            return _MISSING
        if raw is None:
            return _MISSING
        try:
            value = self.serializer.loads(raw)
        except CorruptValue:
            return _MISSING
        self.stale_served += 1
        logger.warning("cache %s: factory failed; serving the stale value of %r", self.name, full)
        return value

    def cached(
        self,
        ttl: Ttl = None,
        *,
        key: Callable[..., str] | None = None,
        lock: bool = False,
        stale_if_error: Ttl = None,
    ) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
        """Decorate a coroutine function so its result is cached per arguments."""

        def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
            if not inspect.iscoroutinefunction(fn):
                raise TypeError(
                    f"AsyncCache.cached wraps coroutine functions; {fn.__qualname__} is not "
                    "one (use Cache.cached)"
                )
            try:
                signature: inspect.Signature | None = inspect.signature(fn)
            except (TypeError, ValueError):
                signature = None

            def key_for(*args: Any, **kwargs: Any) -> str:
                return key(*args, **kwargs) if key else self._call_key(fn, signature, args, kwargs)

            @functools.wraps(fn)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
                return await self.get_or_set(
                    key_for(*args, **kwargs),
                    lambda: fn(*args, **kwargs),
                    ttl,
                    lock=lock,
                    stale_if_error=stale_if_error,
                )

            async def invalidate(*a: Any, **k: Any) -> bool:
                return await self.delete(key_for(*a, **k))

            wrapper.key_for = key_for  # type: ignore[attr-defined]
            wrapper.invalidate = invalidate  # type: ignore[attr-defined]
            return wrapper

        return decorate

    async def health_check(self) -> CheckResult:
        """Healthy, degraded while a fallback serves, unhealthy when a lone Redis is down."""
        return await self.backend.ahealth_check()

    async def close(self) -> None:
        """Close the backend's connections."""
        await self.backend.aclose()
