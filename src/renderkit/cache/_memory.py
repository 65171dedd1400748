"""In-process LRU cache with per-entry TTL, bounded by entry count and by bytes."""

from __future__ import annotations

import secrets
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

from renderkit._options import count_option
from renderkit.cache._base import SyncOnlyBackend
from renderkit.health import CheckResult

__all__ = ["ABSENT", "MemoryBackend"]

# Bytes charged per entry on top of the key and value objects (their sys.getsizeof, headers
# included): the (value, expiry) tuple, the expiry float, the OrderedDict slot and node, and the
# hash table's spare room. Measured with tracemalloc on CPython 3.11 (tests/test_cache.py): with
# tiny values the process then holds 0.9-1.05x max_bytes (it was ~1.5x with 200 + len()).
_ENTRY_OVERHEAD = 210
_sizeof = sys.getsizeof


def _entry_size(key: str, value: bytes) -> int:
    return _sizeof(key) + _sizeof(value) + _ENTRY_OVERHEAD


ABSENT: Any = object()
# Decoded values that no caller can change: safe to hand the same object to everyone.
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes})


class MemoryBackend(SyncOnlyBackend):
    """Thread-safe LRU + TTL store of bytes; evicts least recently used entries first.

    ``max_bytes`` bounds what the entries really take in memory: each is charged its key and
    value objects plus a fixed overhead for the bookkeeping (210 bytes), and decoded
    values kept by :meth:`get_decoded` are charged too. Counts per process: with several
    workers each holds its own copy.
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        name: str = "memory",
        clock: Any = time.monotonic,
    ) -> None:
        self.name = name
        self.max_entries = count_option(max_entries, "MemoryBackend(max_entries)", minimum=1)
        self.max_bytes = count_option(max_bytes, "MemoryBackend(max_bytes)", minimum=1)
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        # Decoded values kept next to their bytes (see get_decoded); dropped with them.
        self._decoded: dict[str, Any] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self._locks: dict[str, tuple[str, float]] = {}
        self._evictions = 0
        self._expired = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._live(key)

    def _live(self, key: str) -> bytes | None:
        """The unexpired bytes of ``key`` (now most recently used), or None (lock held)."""
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

    def get_decoded(self, key: str, decode: Any, *, share: bool = False) -> Any:
        """Return ``decode(bytes)`` for ``key``, or the sentinel ``ABSENT`` when not held.

        A decoded value is kept next to its bytes and returned again on the next read when
        it is immutable (str, int, float, bool, None, bytes), or always with ``share=True``
        (then every caller gets the same object and must not mutate it). A kept value is
        dropped whenever its bytes are replaced, deleted, evicted or expire. Its size
        (``sys.getsizeof``: shallow for a shared dict or list) counts against ``max_bytes``.
        """
        with self._lock:
            raw = self._live(key)
            if raw is None:
                return ABSENT
            value = self._decoded.get(key, ABSENT)
            if value is not ABSENT:
                return value
        value = decode(raw)  # outside the lock: may be slow, may raise
        if share or value.__class__ in _IMMUTABLE:
            with self._lock:
                current = self._data.get(key)
                if current is not None and current[0] is raw and key not in self._decoded:
                    self._decoded[key] = value  # not replaced meanwhile
                    self._bytes += _sizeof(value)
                    self._evict()
        return value

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        size = _entry_size(key, value)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= _entry_size(key, old[0])
                self._drop_decoded(key)
            if size > self.max_bytes:
                return  # larger than the whole cache: storing it would evict everything
            expires = None if ttl is None else self._clock() + ttl
            self._data[key] = (value, expires)
            self._bytes += size
            self._evict()

    def _evict(self) -> None:
        """Drop least recently used entries until both bounds hold (lock held)."""
        data = self._data
        while len(data) > self.max_entries or self._bytes > self.max_bytes:
            old_key, (old_value, _) = data.popitem(last=False)
            self._bytes -= _entry_size(old_key, old_value)
            self._evictions += 1
            self._drop_decoded(old_key)

    def _drop_decoded(self, key: str) -> None:
        if self._decoded:
            value = self._decoded.pop(key, ABSENT)
            if value is not ABSENT:
                self._bytes -= _sizeof(value)

    def _remove(self, key: str, value: bytes) -> None:
        del self._data[key]
        self._bytes -= _entry_size(key, value)
        self._drop_decoded(key)

    def delete(self, key: str) -> bool:
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return False
            self._bytes -= _entry_size(key, item[0])
            self._drop_decoded(key)
            return True

    def clear(self, prefix: str = "") -> int:
        with self._lock:
            if not prefix:
                count = len(self._data)
                self._data.clear()
                self._decoded.clear()
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
                "decoded": len(self._decoded),
            }
