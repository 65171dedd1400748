"""The backend contract shared by every cache backend (sync and asyncio methods)."""

from __future__ import annotations

import abc
from typing import Any, Protocol, runtime_checkable

from renderkit.health import CheckResult

__all__ = ["Backend", "SyncOnlyBackend"]


@runtime_checkable
class Backend(Protocol):
    """What ``Cache`` and ``AsyncCache`` need from a backend: bytes in, bytes out.

    Sync methods serve :class:`~renderkit.cache.Cache`, ``a``-prefixed ones
    :class:`~renderkit.cache.AsyncCache`. ``ttl`` is in seconds (``None``: no expiry).
    """

    name: str

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: float | None) -> None: ...
    def delete(self, key: str) -> bool: ...
    def clear(self, prefix: str = "") -> int: ...
    def acquire_lock(self, key: str, lease: float) -> str | None: ...
    def release_lock(self, key: str, token: str) -> None: ...
    def health_check(self) -> CheckResult: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...

    async def aget(self, key: str) -> bytes | None: ...
    async def aset(self, key: str, value: bytes, ttl: float | None) -> None: ...
    async def adelete(self, key: str) -> bool: ...
    async def aclear(self, prefix: str = "") -> int: ...
    async def aacquire_lock(self, key: str, lease: float) -> str | None: ...
    async def arelease_lock(self, key: str, token: str) -> None: ...
    async def ahealth_check(self) -> CheckResult: ...
    async def aclose(self) -> None: ...


class SyncOnlyBackend(abc.ABC):
    """Base for backends without I/O: the asyncio methods call the sync ones directly."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """Implemented by each backend."""

    @abc.abstractmethod
    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Implemented by each backend."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Implemented by each backend."""

    @abc.abstractmethod
    def clear(self, prefix: str = "") -> int:
        """Implemented by each backend."""

    @abc.abstractmethod
    def acquire_lock(self, key: str, lease: float) -> str | None:
        """Implemented by each backend."""

    @abc.abstractmethod
    def release_lock(self, key: str, token: str) -> None:
        """Implemented by each backend."""

    @abc.abstractmethod
    def health_check(self) -> CheckResult:
        """Implemented by each backend."""

    def close(self) -> None:
        return None

    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        self.set(key, value, ttl)

    async def adelete(self, key: str) -> bool:
        return self.delete(key)

    async def aclear(self, prefix: str = "") -> int:
        return self.clear(prefix)

    async def aacquire_lock(self, key: str, lease: float) -> str | None:
        return self.acquire_lock(key, lease)

    async def arelease_lock(self, key: str, token: str) -> None:
        self.release_lock(key, token)

    async def ahealth_check(self) -> CheckResult:
        return self.health_check()

    async def aclose(self) -> None:
        self.close()


# Constant fallbacks for Degrader.call / acall (a closure per call would cost more).
def _none(*_: object) -> None:
    return None


def _false(*_: object) -> bool:
    return False


def _zero(*_: object) -> int:
    return 0


async def anone(*_: object) -> None:
    return None


async def afalse(*_: object) -> bool:
    return False


async def azero(*_: object) -> int:
    return 0
