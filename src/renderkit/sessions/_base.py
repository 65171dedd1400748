"""What every session store shares: records, counters, encoding and the raw-hook contract.

A store implements a handful of raw I/O hooks (``_get``, ``_put``, ``_merge``, ``_remove``,
``_expire``, ``_remove_user`` and their ``_a`` twins, the sync side generated from the async
one); the public API (``load``/``aload``, ``save``/``asave``, ...) is written once in
``_store_async.py`` and drives both sides through these hooks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from renderkit.errors import SessionError
from renderkit.health import CheckResult
from renderkit.sessions._crypto import Codec

__all__ = [
    "DEFAULT_TTL",
    "DELETED",
    "Changes",
    "RawRecord",
    "SessionConflict",
    "SessionData",
    "SessionRecord",
    "StoreCore",
    "thread_if_sync_only",
]

DEFAULT_TTL = 7 * 24 * 3600
logger = logging.getLogger("renderkit.sessions")


class _Deleted:
    """The value of a key a request deleted, in a change set (see ``SessionStore.merge``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETED"


DELETED: Any = _Deleted()
#: key -> new value, or :data:`DELETED` for a key the request removed.
Changes = Mapping[str, Any]
#: A session's whole data as a store writes it (JSON-serialisable values).
SessionData = Mapping[str, Any]


_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def thread_if_sync_only(method: _F) -> _F:
    """Run an async method's sync twin in a worker thread when the store has no asyncio client.

    ``_aget`` -> ``_get``, ``ahealth_check`` -> ``health_check``; the store's ``_threaded()``
    says whether it was given a sync client only.
    """
    sync_name = re.sub(r"^(_?)a", r"\1", method.__name__)

    @functools.wraps(method)
    async def run(self: Any, *args: Any) -> Any:
        if self._threaded():
            return await asyncio.to_thread(getattr(self, sync_name), *args)
        return await method(self, *args)

    return run  # type: ignore[return-value]


class SessionConflict(SessionError):
    """A save lost a version check: another request changed (or ended) the session first."""


@dataclass(slots=True)
class SessionRecord:
    """One stored session: its data, write version, owner and expiry (unix seconds).

    ``tentative``: a newer state exists that could not be read (a FallbackStore whose fallback,
    holding this worker's outage write, failed while both stores were compared); the session
    is shown but a write based on it is skipped, so it cannot overwrite that newer state.
    """

    data: dict[str, Any]
    version: int
    user_id: str | None
    expires_at: float
    tentative: bool = False


@dataclass(slots=True)
class RawRecord:
    """A record as a backend holds it: the encoded blob, not yet decoded.

    ``parts`` are per-key changes merged on top of ``blob`` and not yet folded into it (Redis
    keeps them as hash fields until the next full write); each decodes to ``{"k": key, "v":
    value}`` (a set) or ``{"k": key}`` (a delete).
    """

    blob: bytes
    version: int
    user_id: str | None
    expires_at: float
    parts: tuple[bytes, ...] = ()


class StoreCore:
    """Counters, encoding and the default raw hooks every store shares (no I/O here)."""

    #: True when the sync methods do network I/O: the ASGI middleware then loads a session
    #: with the async method before the handler runs instead of lazily on first access, and
    #: the async hooks of a store that only implements the sync ones run them in a thread.
    blocking: bool = True
    #: Exceptions that mean "the backend is unavailable" (FallbackStore switches on these).
    errors: tuple[type[BaseException], ...] = (OSError,)

    def __init__(
        self,
        *,
        encryption_key: str | bytes | None = None,
        max_size: int = 64 * 1024,
        name: str = "sessions",
    ) -> None:
        self.codec = Codec(max_size=max_size, encryption_key=encryption_key)
        self.name = name
        self._counter_lock = threading.Lock()
        self._counters = dict.fromkeys(
            ("loads", "hits", "misses", "corrupt", "saves", "conflicts", "merges", "deletes",
             "touches", "errors"),
            0,
        )  # fmt: skip
        self._corrupt_logged = False

    # -- shared logic --------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._counter_lock:
            self._counters[key] += n

    def _count2(self, first: str, second: str) -> None:
        with self._counter_lock:
            counters = self._counters
            counters[first] += 1
            counters[second] += 1

    def _data(self, session_id: str, raw: RawRecord) -> dict[str, Any] | None:
        """The decoded data of ``raw`` with its pending parts applied; None when corrupt."""
        data = self.codec.decode(session_id, raw.blob)
        for part in raw.parts:
            change = self.codec.decode(session_id, part)
            if data is None or change is None or not isinstance(change.get("k"), str):
                return None
            if "v" in change:
                data[change["k"]] = change["v"]
            else:
                data.pop(change["k"], None)
        return data

    def _decoded(self, session_id: str, raw: RawRecord | None) -> SessionRecord | None:
        if raw is None or raw.expires_at <= time.time():
            self._count2("loads", "misses")
            return None
        data = self._data(session_id, raw)
        if data is None:
            with self._counter_lock:
                counters = self._counters
                counters["loads"] += 1
                counters["corrupt"] += 1
                counters["misses"] += 1
            if not self._corrupt_logged:
                self._corrupt_logged = True
                logger.warning(
                    "%s: a stored session could not be decoded (corrupt JSON, a wrong "
                    "SESSION_ENCRYPTION_KEY, or data written by another program); such "
                    "sessions start empty (counted in stats()['corrupt'])",
                    self.name,
                )
            return None
        self._count2("loads", "hits")
        return SessionRecord(data, raw.version, raw.user_id, raw.expires_at)

    def _encode(self, session_id: str, data: SessionData) -> bytes:
        return self.codec.encode(session_id, data)

    def _apply(self, session_id: str, raw: RawRecord, changes: Changes) -> bytes:
        """The blob of ``raw`` with ``changes`` applied (a corrupt record starts empty)."""
        data = self._data(session_id, raw) or {}
        for key, value in changes.items():
            if value is DELETED:
                data.pop(key, None)
            else:
                data[key] = value
        return self._encode(session_id, data)

    def _saved(self, session_id: str, version: int | None, expected: int) -> int:
        if version is None:
            self._count("conflicts")
            raise SessionConflict(
                f"session {session_id[:8]}... changed since this request loaded it "
                f"(expected version {expected}); the write was not applied"
            )
        self._count("saves")
        return version

    def _base_stats(self) -> dict[str, Any]:
        with self._counter_lock:
            stats: dict[str, Any] = dict(self._counters)
        stats["store"] = type(self).__name__
        stats["encrypted"] = self.codec.encrypted
        return stats

    # -- raw hooks (backends override) -----------------------------------------------------
    def _missing_hook(self, hook: str) -> TypeError:
        return TypeError(
            f"{type(self).__name__} does not implement {hook}(); a SessionStore subclass must "
            "override _get, _put, _remove, _expire and _remove_user (or the public methods)"
        )

    def _get(self, session_id: str) -> RawRecord | None:
        raise self._missing_hook("_get")

    def _put(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        raise self._missing_hook("_put")

    def _merge(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> int | None:
        """Apply ``changes`` to the live record atomically; None when there is none.

        The default is a read and a version-checked write, retried on a conflict: atomic for
        a store whose ``_put`` is, and what a custom store gets without writing a merge.
        """
        for _ in range(64):
            raw = self._get(session_id)
            if raw is None or raw.expires_at <= time.time():
                return None
            blob = self._apply(session_id, raw, changes)
            owner = user_id if set_user else raw.user_id
            version = self._put(session_id, blob, raw.version, owner, ttl)
            if version is not None:
                return version
        return None

    def _remove(self, session_id: str) -> bool:
        raise self._missing_hook("_remove")

    def _expire(self, session_id: str, ttl: float) -> bool:
        raise self._missing_hook("_expire")

    def _remove_user(self, user_id: str) -> int:
        raise self._missing_hook("_remove_user")

    # The async hooks of a store that implements only the sync ones: called directly when the
    # store does no I/O (``blocking = False``), else in a worker thread.
    async def _aget(self, session_id: str) -> RawRecord | None:
        if not self.blocking:
            return self._get(session_id)
        return await asyncio.to_thread(self._get, session_id)

    async def _aput(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        if not self.blocking:
            return self._put(session_id, blob, expected, user_id, ttl)
        return await asyncio.to_thread(self._put, session_id, blob, expected, user_id, ttl)

    async def _amerge(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> int | None:
        if not self.blocking:
            return self._merge(session_id, changes, user_id, set_user, ttl)
        return await asyncio.to_thread(self._merge, session_id, changes, user_id, set_user, ttl)

    async def _aremove(self, session_id: str) -> bool:
        if not self.blocking:
            return self._remove(session_id)
        return await asyncio.to_thread(self._remove, session_id)

    async def _aexpire(self, session_id: str, ttl: float) -> bool:
        if not self.blocking:
            return self._expire(session_id, ttl)
        return await asyncio.to_thread(self._expire, session_id, ttl)

    async def _aremove_user(self, user_id: str) -> int:
        if not self.blocking:
            return self._remove_user(user_id)
        return await asyncio.to_thread(self._remove_user, user_id)

    # -- observability -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters (loads, hits, misses, corrupt, saves, conflicts, ...) as a plain dict."""
        return self._base_stats()

    def health_check(self) -> CheckResult:
        """Healthy unless the backend fails (stores override with a real probe)."""
        return CheckResult.healthy(**{"store": type(self).__name__})

    async def ahealth_check(self) -> CheckResult:
        """Async :meth:`health_check`."""
        if not self.blocking:
            return self.health_check()
        return await asyncio.to_thread(self.health_check)

    def close(self) -> None:
        """Release connections (idempotent)."""

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()
