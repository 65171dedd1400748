"""A backend that stores nothing: what ``CACHE_ENABLED=false`` gives."""

from __future__ import annotations

from typing import Any

from renderkit.cache._base import SyncOnlyBackend
from renderkit.health import CheckResult

__all__ = ["NullBackend"]


class NullBackend(SyncOnlyBackend):
    """Every read misses and every write is dropped; ``get_or_set`` always computes."""

    name = "null"

    def get(self, key: str) -> bytes | None:
        return None

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        return None

    def delete(self, key: str) -> bool:
        return False

    def clear(self, prefix: str = "") -> int:
        return 0

    def acquire_lock(self, key: str, lease: float) -> str | None:
        return "null"

    def release_lock(self, key: str, token: str) -> None:
        return None

    def health_check(self) -> CheckResult:
        return CheckResult.healthy("cache disabled (CACHE_ENABLED=false)")

    def stats(self) -> dict[str, Any]:
        return {"backend": self.name}
