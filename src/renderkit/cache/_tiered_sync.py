# DO NOT EDIT: generated from src/renderkit/cache/_tiered_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""TieredBackend's I/O methods (async source; ``_tiered_sync`` is generated)."""

from __future__ import annotations

from renderkit.cache._base import Backend
from renderkit.health import CheckResult

__all__ = ["TieredMethods"]


class TieredMethods:
    """Reads from L1 then L2 (filling L1); writes and deletes to L2, then L1."""

    l1: Backend
    l2: Backend
    l1_ttl: float
    _l1_hits: int

    def get(self, key: str) -> bytes | None:
        value = self.l1.get(key)
        if value is not None:
            self._l1_hits += 1
            return value
        value = self.l2.get(key)
        if value is not None:
            self.l1.set(key, value, self.l1_ttl)
        return value

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.l2.set(key, value, ttl)
        self.l1.set(key, value, self.l1_ttl if ttl is None else min(ttl, self.l1_ttl))

    def delete(self, key: str) -> bool:
        found = self.l2.delete(key)
        return self.l1.delete(key) or found

    def clear(self, prefix: str = "") -> int:
        self.l1.clear(prefix)
        return self.l2.clear(prefix)

    def acquire_lock(self, key: str, lease: float) -> str | None:
        return self.l2.acquire_lock(key, lease)

    def release_lock(self, key: str, token: str) -> None:
        self.l2.release_lock(key, token)

    def health_check(self) -> CheckResult:
        return self.l2.health_check()

    def close(self) -> None:
        self.l1.close()
        self.l2.close()
