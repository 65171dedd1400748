"""What every session store shares: records, counters, encoding, and the sync/async twins.

A store implements a handful of raw I/O hooks twice (``_get``/``_aget``, ``_put``/``_aput``,
...); everything else (encoding, the size limit, encryption, version checks, counters) is
written once here and drives both sides.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from renderkit.errors import SessionError
from renderkit.health import CheckResult
from renderkit.sessions._crypto import Codec

__all__ = ["DEFAULT_TTL", "RawRecord", "SessionConflict", "SessionRecord", "SessionStore"]

DEFAULT_TTL = 7 * 24 * 3600
logger = logging.getLogger("renderkit.sessions")


class SessionConflict(SessionError):
    """A save lost a version check: another request changed (or ended) the session first."""


@dataclass(slots=True)
class SessionRecord:
    """One stored session: its data, write version, owner and expiry (unix seconds)."""

    data: dict[str, Any]
    version: int
    user_id: str | None
    expires_at: float


@dataclass(slots=True)
class RawRecord:
    """A record as a backend holds it: the encoded blob, not yet decoded."""

    blob: bytes
    version: int
    user_id: str | None
    expires_at: float


class SessionStore:
    """Base of every store: sync methods for WSGI/Flask, ``a``-prefixed twins for ASGI.

    Subclasses implement ``_get/_put/_remove/_expire/_remove_user`` and their async twins.
    ``_put(id, blob, expected_version, user_id, ttl)`` writes only when the stored version
    equals ``expected_version`` (0 meaning "must not exist"), and returns the new version or
    None on a mismatch.
    """

    #: True when the sync methods do network I/O: the ASGI middleware then loads a session
    #: with the async method before the handler runs instead of lazily on first access.
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
        self._counters = {
            "loads": 0,
            "hits": 0,
            "misses": 0,
            "corrupt": 0,
            "saves": 0,
            "conflicts": 0,
            "deletes": 0,
            "touches": 0,
            "errors": 0,
        }
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

    def _decoded(self, session_id: str, raw: RawRecord | None) -> SessionRecord | None:
        if raw is None or raw.expires_at <= time.time():
            self._count2("loads", "misses")
            return None
        data = self.codec.decode(session_id, raw.blob)
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

    def _encode(self, session_id: str, data: Mapping[str, Any]) -> bytes:
        return self.codec.encode(session_id, data)

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

    def _remove(self, session_id: str) -> bool:
        raise self._missing_hook("_remove")

    def _expire(self, session_id: str, ttl: float) -> bool:
        raise self._missing_hook("_expire")

    def _remove_user(self, user_id: str) -> int:
        raise self._missing_hook("_remove_user")

    async def _aget(self, session_id: str) -> RawRecord | None:
        return await asyncio.to_thread(self._get, session_id)

    async def _aput(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        return await asyncio.to_thread(self._put, session_id, blob, expected, user_id, ttl)

    async def _aremove(self, session_id: str) -> bool:
        return await asyncio.to_thread(self._remove, session_id)

    async def _aexpire(self, session_id: str, ttl: float) -> bool:
        return await asyncio.to_thread(self._expire, session_id, ttl)

    async def _aremove_user(self, user_id: str) -> int:
        return await asyncio.to_thread(self._remove_user, user_id)

    # -- sync API ------------------------------------------------------------------------------
    def load(self, session_id: str) -> SessionRecord | None:
        """Return the live record for ``session_id``; None when missing, expired or corrupt."""
        return self._decoded(session_id, self._get(session_id))

    def save(
        self,
        session_id: str,
        data: Mapping[str, Any],
        *,
        version: int = 0,
        user_id: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> int:
        """Write ``data`` if the stored version is still ``version`` (0: a new session).

        Returns the new version. Raises :class:`SessionConflict` when another write got there
        first (or the session was deleted meanwhile), and :class:`SessionError` when the data
        is not JSON-serialisable or larger than ``max_size``.
        """
        blob = self._encode(session_id, data)
        return self._saved(session_id, self._put(session_id, blob, version, user_id, ttl), version)

    def delete(self, session_id: str) -> bool:
        """Delete one session; True when it existed."""
        self._count("deletes")
        return self._remove(session_id)

    def touch(self, session_id: str, ttl: float = DEFAULT_TTL) -> bool:
        """Push the expiry of a live session to ``ttl`` seconds from now (rolling expiry)."""
        self._count("touches")
        return self._expire(session_id, ttl)

    def delete_user_sessions(self, user_id: str) -> int:
        """Delete every session carrying ``user_id`` ("log out everywhere"); return how many."""
        removed = self._remove_user(str(user_id))
        self._count("deletes", removed)
        return removed

    # -- async API -----------------------------------------------------------------------------
    async def aload(self, session_id: str) -> SessionRecord | None:
        """Async :meth:`load`."""
        return self._decoded(session_id, await self._aget(session_id))

    async def asave(
        self,
        session_id: str,
        data: Mapping[str, Any],
        *,
        version: int = 0,
        user_id: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> int:
        """Async :meth:`save`."""
        blob = self._encode(session_id, data)
        new = await self._aput(session_id, blob, version, user_id, ttl)
        return self._saved(session_id, new, version)

    async def adelete(self, session_id: str) -> bool:
        """Async :meth:`delete`."""
        self._count("deletes")
        return await self._aremove(session_id)

    async def atouch(self, session_id: str, ttl: float = DEFAULT_TTL) -> bool:
        """Async :meth:`touch`."""
        self._count("touches")
        return await self._aexpire(session_id, ttl)

    async def adelete_user_sessions(self, user_id: str) -> int:
        """Async :meth:`delete_user_sessions`."""
        removed = await self._aremove_user(str(user_id))
        self._count("deletes", removed)
        return removed

    # -- observability -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters (loads, hits, misses, corrupt, saves, conflicts, ...) as a plain dict."""
        return self._base_stats()

    def health_check(self) -> CheckResult:
        """Healthy unless the backend fails (stores override with a real probe)."""
        return CheckResult.healthy(**{"store": type(self).__name__})

    async def ahealth_check(self) -> CheckResult:
        """Async :meth:`health_check`."""
        return await asyncio.to_thread(self.health_check)

    def close(self) -> None:
        """Release connections (idempotent)."""

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()
