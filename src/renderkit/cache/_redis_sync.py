# DO NOT EDIT: generated from src/renderkit/cache/_redis_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""RedisBackend's commands (async source; ``_redis_sync`` is generated).

Each command takes a client from :meth:`RedisBackend._slot` (this event loop's client and a
slot of its concurrency gate; the sync side: the sync client, no gate) and gives the slot
back in ``finally``. No context manager object per call: reads are the hot path.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from renderkit.health import CheckResult

__all__ = ["RedisMethods"]

# Compare-and-delete: release a lock only while we still hold it (the lease may have run out
# and another process taken it).
RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_SCAN_BATCH = 500
_MAX_SCAN_ROUNDS = 100_000


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisMethods:
    """The backend operations as Redis commands."""

    prefix: str
    cluster: bool

    def _slot(self) -> tuple[Any, asyncio.Semaphore | None]:
        raise NotImplementedError  # RedisBackend's

    def get(self, key: str) -> bytes | None:
        client, gate = self._slot()
        try:
            value: bytes | None = client.get(self.prefix + key)
        finally:
            if gate is not None:
                gate.release()
        return value

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        px = None if ttl is None else max(1, int(ttl * 1000))
        client, gate = self._slot()
        try:
            client.set(self.prefix + key, value, px=px)
        finally:
            if gate is not None:
                gate.release()

    def delete(self, key: str) -> bool:
        client, gate = self._slot()
        try:
            return bool(client.delete(self.prefix + key))
        finally:
            if gate is not None:
                gate.release()

    def clear(self, prefix: str = "") -> int:
        pattern = _escape_glob(self.prefix + prefix) + "*"
        if self.cluster:
            return self._clear_cluster(pattern)
        removed, cursor = 0, 0
        for _ in range(_MAX_SCAN_ROUNDS):
            client, gate = self._slot()
            try:
                cursor, keys = client.scan(cursor, match=pattern, count=_SCAN_BATCH)
                if keys:
                    removed += int(client.unlink(*keys))
            finally:
                if gate is not None:
                    gate.release()
            if cursor == 0:
                break
        return removed

    def _clear_cluster(self, pattern: str) -> int:
        """A cluster is scanned node by node (redis-py's scan_iter); UNLINK is sent per slot."""
        removed, batch = 0, []
        client, gate = self._slot()
        try:
            for key in client.scan_iter(match=pattern, count=_SCAN_BATCH):
                batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    removed += int(client.unlink(*batch))
                    batch = []
            if batch:
                removed += int(client.unlink(*batch))
        finally:
            if gate is not None:
                gate.release()
        return removed

    def acquire_lock(self, key: str, lease: float) -> str | None:
        token = secrets.token_hex(8)
        client, gate = self._slot()
        try:
            ok = client.set(self.prefix + key, token, nx=True, px=max(1, int(lease * 1000)))
        finally:
            if gate is not None:
                gate.release()
        return token if ok else None

    def release_lock(self, key: str, token: str) -> None:
        client, gate = self._slot()
        try:
            client.eval(RELEASE, 1, self.prefix + key, token)
        finally:
            if gate is not None:
                gate.release()

    def health_check(self) -> CheckResult:
        started = time.perf_counter()
        try:
            client, gate = self._slot()
            try:
                client.ping()
            finally:
                if gate is not None:
                    gate.release()
        except Exception as exc:
            return CheckResult.unhealthy(f"redis unreachable: {type(exc).__name__}: {exc}")
        return CheckResult("healthy", "", {}, (time.perf_counter() - started) * 1000)
