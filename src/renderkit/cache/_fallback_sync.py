# DO NOT EDIT: generated from src/renderkit/cache/_fallback_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""FallbackBackend's I/O methods (async source; ``_fallback_sync`` is generated)."""

from __future__ import annotations

from renderkit.cache._base import Backend, _false, _none, _zero
from renderkit.health import CheckResult
from renderkit.resilience import Degrader

__all__ = ["FallbackMethods"]


class FallbackMethods:
    """Each backend operation on the primary through the degrader, else on the fallback."""

    primary: Backend
    fallback: Backend
    mirror_writes: bool
    degrader: Degrader

    def get(self, key: str) -> bytes | None:
        return self.degrader.call(self.primary.get, self.fallback.get, key)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        if self.mirror_writes:
            self.fallback.set(key, value, ttl)
            self.degrader.call(self.primary.set, _none, key, value, ttl)
        else:
            self.degrader.call(self.primary.set, self.fallback.set, key, value, ttl)

    def delete(self, key: str) -> bool:
        found = self.fallback.delete(key)
        return self.degrader.call(self.primary.delete, _false, key) or found

    def clear(self, prefix: str = "") -> int:
        count = self.fallback.clear(prefix)
        return self.degrader.call(self.primary.clear, _zero, prefix) or count

    def acquire_lock(self, key: str, lease: float) -> str | None:
        return self.degrader.call(self.primary.acquire_lock, self.fallback.acquire_lock, key, lease)

    def release_lock(self, key: str, token: str) -> None:
        for backend in (self.primary, self.fallback):
            try:
                backend.release_lock(key, token)
            except Exception:
                pass  # an unreleased lease expires by itself

    def health_check(self) -> CheckResult:
        if self.degrader.active:
            return self.degrader.health_check()
        return self.degrader.health_check(self.primary.health_check())

    def close(self) -> None:
        self.degrader.close()
        self.primary.close()
        self.fallback.close()
