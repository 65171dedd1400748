"""In-process LRU cache with per-entry TTL, bounded by entry count and by bytes."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

from renderkit.cache._base import SyncOnlyBackend
from renderkit.health import CheckResult

__all__ = ["MemoryBackend"]

# Bytes charged per entry on top of key and value: the dict slot, the tuple, the bytes and
# str object headers. Keeps the byte bound honest for many small values.
_ENTRY_OVERHEAD = 200


class MemoryBackend(SyncOnlyBackend):
    """Thread-safe LRU + TTL store of bytes; evicts least recently used entries first.

    Counts per process: with several workers each holds its own copy.
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        name: str = "memory",
        clock: Any = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"MemoryBackend(max_entries={max_entries}): must be >= 1")
        if max_bytes < 1:
            raise ValueError(f"MemoryBackend(max_bytes={max_bytes}): must be >= 1")
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._locks: dict[str, tuple[str, float]] = {}
        self._evictions = 0
        self._expired = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            expires = item[1]
            if expires is not None and expires <= self._clock():
                self._remove(key, item[0])
                self._expired += 1
                return None
            self._data.move_to_end(key)
            return item[0]

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        size = len(value) + len(key) + _ENTRY_OVERHEAD
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= len(old[0]) + len(key) + _ENTRY_OVERHEAD
            if size > self.max_bytes:
                return  # larger than the whole cache: storing it would evict everything
            expires = None if ttl is None else self._clock() + ttl
            self._data[key] = (value, expires)
            self._bytes += size
            data = self._data
            while len(data) > self.max_entries or self._bytes > self.max_bytes:
                old_key, (old_value, _) = data.popitem(last=False)
                self._bytes -= len(old_value) + len(old_key) + _ENTRY_OVERHEAD
                self._evictions += 1

    def _remove(self, key: str, value: bytes) -> None:
        del self._data[key]
        self._bytes -= len(value) + len(key) + _ENTRY_OVERHEAD

    def delete(self, key: str) -> bool:
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return False
            self._bytes -= len(item[0]) + len(key) + _ENTRY_OVERHEAD
            return True

    def clear(self, prefix: str = "") -> int:
        with self._lock:
            if not prefix:
                count = len(self._data)
                self._data.clear()
                self._bytes = 0
                return count
            doomed = [k for k in self._data if k.startswith(prefix)]
            for k in doomed:
                self._remove(k, self._data[k][0])
            return len(doomed)

    def acquire_lock(self, key: str, lease: float) -> str | None:
        now = self._clock()
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[1] > now:
                return None
            token = secrets.token_hex(8)
            self._locks[key] = (token, now + lease)
            return token

    def release_lock(self, key: str, token: str) -> None:
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[0] == token:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._data)

    def health_check(self) -> CheckResult:
        return CheckResult.healthy(entries=len(self._data), bytes=self._bytes)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": self.name,
                "entries": len(self._data),
                "bytes": self._bytes,
                "max_entries": self.max_entries,
                "max_bytes": self.max_bytes,
                "evictions": self._evictions,
                "expired": self._expired,
            }
