"""MemoryStore: sessions in this process (development, tests, single-instance apps)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from renderkit.health import CheckResult
from renderkit.sessions._base import Changes, RawRecord
from renderkit.sessions._store import SessionStore

__all__ = ["MemoryStore"]


class MemoryStore(SessionStore):
    """Sessions in a dict, bounded by ``max_sessions`` (least recently used evicted first).

    Per process: several workers or instances do not share it, and a restart loses it. Use
    :class:`RedisStore` or :class:`PostgresStore` in production. Thread-safe; its async
    methods do no I/O, so the ASGI middleware loads from it lazily, on first access.
    """

    blocking = False

    def __init__(
        self,
        *,
        max_sessions: int = 100_000,
        encryption_key: str | bytes | None = None,
        max_size: int = 64 * 1024,
        name: str = "sessions",
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"MemoryStore(max_sessions={max_sessions}): must be >= 1")
        super().__init__(encryption_key=encryption_key, max_size=max_size, name=name)
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._records: OrderedDict[str, RawRecord] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self._evicted = 0

    def _drop(self, session_id: str) -> RawRecord | None:
        record = self._records.pop(session_id, None)
        if record is not None and record.user_id is not None:
            ids = self._by_user.get(record.user_id)
            if ids is not None:
                ids.discard(session_id)
                if not ids:
                    del self._by_user[record.user_id]
        return record

    def _get(self, session_id: str) -> RawRecord | None:
        with self._lock:
            record = self._records.get(session_id)
            if record is None:
                return None
            if record.expires_at <= time.time():
                self._drop(session_id)
                return None
            self._records.move_to_end(session_id)
            return record

    def _put(
        self, session_id: str, blob: bytes, expected: int, user_id: str | None, ttl: float
    ) -> int | None:
        now = time.time()
        with self._lock:
            current = self._records.get(session_id)
            if current is not None and current.expires_at <= now:
                self._drop(session_id)
                current = None
            have = 0 if current is None else current.version
            if have != expected:
                return None
            if current is not None:
                self._drop(session_id)
            record = RawRecord(blob, expected + 1, user_id, now + ttl)
            self._records[session_id] = record
            if user_id is not None:
                self._by_user.setdefault(user_id, set()).add(session_id)
            while len(self._records) > self.max_sessions:
                oldest = next(iter(self._records))
                self._drop(oldest)
                self._evicted += 1
            return record.version

    def _merge(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> int | None:
        with self._lock:
            current = self._records.get(session_id)
            if current is None or current.expires_at <= time.time():
                return None
            blob = self._apply(session_id, current, changes)
            owner = user_id if set_user else current.user_id
            self._drop(session_id)
            record = RawRecord(blob, current.version + 1, owner, time.time() + ttl)
            self._records[session_id] = record
            if owner is not None:
                self._by_user.setdefault(owner, set()).add(session_id)
            return record.version

    def _remove(self, session_id: str) -> bool:
        with self._lock:
            return self._drop(session_id) is not None

    def _expire(self, session_id: str, ttl: float) -> bool:
        with self._lock:
            record = self._records.get(session_id)
            if record is None or record.expires_at <= time.time():
                return False
            record.expires_at = time.time() + ttl
            return True

    def _remove_user(self, user_id: str) -> int:
        with self._lock:
            ids = list(self._by_user.get(user_id, ()))
            for session_id in ids:
                self._drop(session_id)
            return len(ids)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def stats(self) -> dict[str, Any]:
        """Counters plus ``sessions`` (held now), ``max_sessions`` and ``evicted``."""
        stats = self._base_stats()
        with self._lock:
            stats["sessions"] = len(self._records)
        stats["max_sessions"] = self.max_sessions
        stats["evicted"] = self._evicted
        return stats

    def health_check(self) -> CheckResult:
        """Always healthy; reports how many sessions are held."""
        return CheckResult.healthy(sessions=len(self), max_sessions=self.max_sessions)
