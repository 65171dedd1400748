# DO NOT EDIT: generated from src/renderkit/cache/_cache_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""The cache facade's I/O (async source: :class:`Cache`; ``_cache_sync`` is generated)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from renderkit import _compat_sync as compat
from renderkit.cache._base import Backend
from renderkit.cache._facade import MISSING, STALE_SUFFIX, CacheCore, Ttl, ttl_seconds
from renderkit.cache._memory import ABSENT
from renderkit.health import CheckResult

__all__ = ["Cache"]

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class CachedFunction(Protocol[P, T_co]):
    """What ``cached`` returns: the decorated function, with ``key_for`` and ``invalidate``
    typed (so ``fn.invalidate("EUR")`` type-checks in the caller's code)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T_co: ...

    def key_for(self, *args: Any, **kwargs: Any) -> str:
        """The cache key a call with these arguments uses."""
        ...

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete the cached result of a call with these arguments."""
        ...


class _AsyncFlights:
    """Per-key locks with reference counts, so the table never grows unbounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the table: held for a dict operation only
        self._table: dict[str, tuple[compat.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._lock:
            entry = self._table.get(key)
            if entry is None:
                entry = self._table[key] = (compat.Lock(), [0])
            entry[1][0] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1][0] -= 1
                if entry[1][0] == 0 and self._table.get(key) is entry:
                    del self._table[key]


class Cache(CacheCore):
    """A cache facade: ``get``/``set``/``delete``/``get_or_set``/``cached`` over a backend.

    Backend failures never reach the caller (unless ``raise_errors=True``): a failed read is
    a miss, a failed write is counted and logged once. ``Cache`` awaits an asyncio
    backend; ``Cache`` has the same methods for synchronous code.
    """

    _awaited = False

    def __init__(self, backend: Backend | None = None, **options: Any) -> None:
        super().__init__(backend, **options)
        self._flights = _AsyncFlights()

    def get(self, key: str, default: Any = None) -> Any:
        """Return the cached value, or ``default`` on a miss (or a backend failure)."""
        full = self._key(key)
        if self._l1_value is not None:
            value = self._from_l1(full, default)
            if value is not ABSENT:
                return value
            if self._local_only:
                self.misses += 1
                return default
        try:
            raw = self.backend.get(full)
        except Exception as exc:
            self._backend_failed(exc, "get")
            self.misses += 1
            return default
        if self._failing:
            self._backend_ok()
        return self._decoded(full, raw, default)

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
            self.backend.delete(full + STALE_SUFFIX)
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
        value = self.get(key, MISSING)
        if value is not MISSING:
            return value  # type: ignore[no-any-return]
        full = self._key(key)
        with self._flights.hold(full):
            value = self.get(key, MISSING)
            if value is not MISSING:
                return value  # type: ignore[no-any-return]
            token = None
            if lock:
                token, value = self._distributed_wait(key, full, lock_lease)
                if value is not MISSING:
                    return value  # type: ignore[no-any-return]
            try:
                return self._compute(full, factory, ttl, stale_if_error)
            finally:
                if token is not None:
                    self._release(full, token)

    def _compute(self, full: str, factory: Callable[[], T], ttl: Ttl, stale_if_error: Ttl) -> T:
        try:
            value = factory()
        except Exception:
            if stale_if_error is not None:
                stale = self._stale_value(full, self._raw_stale(full))
                if stale is not MISSING:
                    return stale  # type: ignore[no-any-return]
            raise
        raw = self.serializer.dumps(value)
        seconds = self._ttl(ttl, jitter=True)
        self._store(full, raw, seconds)
        if stale_if_error is not None:
            keep = ttl_seconds(stale_if_error, "stale_if_error") or 0
            self._store(full + STALE_SUFFIX, raw, (seconds or 0) + keep or None)
        return value

    def _distributed_wait(self, key: str, full: str, lease: float) -> tuple[str | None, Any]:
        deadline = time.monotonic() + lease
        delay = 0.01
        while True:
            try:
                token = self.backend.acquire_lock(full + "\x00lock", lease)
            except Exception as exc:
                self._backend_failed(exc, "lock")
                return None, MISSING
            if token is not None:
                # Another instance may have filled the key just before releasing its lock.
                value = self.get(key, MISSING)
                if value is not MISSING:
                    self._release(full, token)
                    return None, value
                return token, MISSING
            value = self.get(key, MISSING)
            if value is not MISSING or time.monotonic() >= deadline:
                return None, value  # lease over: compute anyway rather than wait forever
            compat.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _release(self, full: str, token: str) -> None:
        try:
            self.backend.release_lock(full + "\x00lock", token)
        except Exception as exc:
            self._backend_failed(exc, "unlock")

    def _raw_stale(self, full: str) -> bytes | None:
        try:
            return self.backend.get(full + STALE_SUFFIX)
        except Exception:
            return None

    def cached(
        self,
        ttl: Ttl = None,
        *,
        key: Callable[..., str] | None = None,
        lock: bool = False,
        stale_if_error: Ttl = None,
    ) -> Callable[[Callable[P, T]], CachedFunction[P, T]]:
        """Decorate a function so its result is cached per arguments (stable, hashed key).

        The wrapper has ``key_for(*args, **kwargs)`` and ``invalidate(*args, **kwargs)``.
        """

        def decorate(fn: Callable[P, T]) -> CachedFunction[P, T]:
            self._check_target(fn)
            key_for = self._key_builder(fn, key)

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
                return self.get_or_set(
                    key_for(*args, **kwargs),
                    lambda: fn(*args, **kwargs),
                    ttl,
                    lock=lock,
                    stale_if_error=stale_if_error,
                )

            def invalidate(*args: Any, **kwargs: Any) -> bool:
                return self.delete(key_for(*args, **kwargs))

            wrapper.key_for = key_for  # type: ignore[attr-defined]
            wrapper.invalidate = invalidate  # type: ignore[attr-defined]
            return cast(CachedFunction[P, T], wrapper)

        return decorate

    def health_check(self) -> CheckResult:
        """Healthy, degraded while a fallback serves, unhealthy when a lone Redis is down."""
        return self.backend.health_check()

    def close(self) -> None:
        """Close the backend's connections."""
        self.backend.close()
