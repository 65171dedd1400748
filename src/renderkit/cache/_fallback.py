"""Serve from a fallback (memory) while the primary (Redis) fails, behind a circuit breaker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from renderkit.cache._base import Backend
from renderkit.health import CheckResult
from renderkit.resilience import CircuitBreaker, CircuitState

__all__ = ["FallbackBackend"]

T = TypeVar("T")
logger = logging.getLogger("renderkit.cache")


class FallbackBackend:
    """Use ``primary`` while it answers; on errors switch to ``fallback`` and probe the
    primary again every ``probe_interval`` seconds (one call at a time), switching back as
    soon as it answers.

    Writes go to both while the primary is up (``mirror_writes``), so the fallback already
    holds this process's recent values when the primary goes away. The switch is logged once
    each way; ``health_check()`` reports ``degraded`` while the fallback serves.
    """

    def __init__(
        self,
        primary: Backend,
        fallback: Backend,
        *,
        probe_interval: float = 5.0,
        failure_threshold: int = 2,
        mirror_writes: bool = True,
        breaker: CircuitBreaker | None = None,
        name: str = "fallback",
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.mirror_writes = mirror_writes
        self.name = name
        self.breaker = breaker or CircuitBreaker(
            f"cache:{primary.name}",
            failure_threshold=failure_threshold,
            recovery_timeout=probe_interval,
            on_state_change=self._state_changed,
        )
        self._counts = {"primary_errors": 0, "fallback_served": 0, "switches": 0}
        # Failures that mean "the primary is down"; other exceptions propagate to the caller.
        self._outage: tuple[type[BaseException], ...] = getattr(primary, "errors", (Exception,))
        self._last_error = ""

    def _state_changed(self, old: CircuitState, new: CircuitState) -> None:
        self._counts["switches"] += 1
        if new == "open" and old == "closed":
            logger.warning(
                "cache %s failing (%s); serving from %s and probing every %.1fs",
                self.primary.name,
                self._last_error or "error",
                self.fallback.name,
                self.breaker.recovery_timeout,
            )
        elif new == "closed":
            logger.warning(
                "cache %s answers again; switched back from %s",
                self.primary.name,
                self.fallback.name,
            )

    @property
    def fallback_active(self) -> bool:
        """True while calls go to the fallback instead of the primary."""
        return self.breaker.state != "closed"

    def _failed(self, exc: BaseException) -> None:
        self._counts["primary_errors"] += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        self.breaker.record_failure(exc)

    # -- the one decision, driven by a sync and an async runner -----------------------------
    def _call(self, on_primary: Callable[[], T], on_fallback: Callable[[], T]) -> T:
        breaker = self.breaker
        if breaker.allow():
            try:
                result = on_primary()
            except self._outage as exc:
                self._failed(exc)
            except BaseException:
                breaker.record_neutral()  # not an outage: free a half-open probe slot
                raise
            else:
                self.breaker.record_success()
                return result
        self._counts["fallback_served"] += 1
        return on_fallback()

    async def _acall(
        self, on_primary: Callable[[], Awaitable[T]], on_fallback: Callable[[], Awaitable[T]]
    ) -> T:
        breaker = self.breaker
        if breaker.allow():
            try:
                result = await on_primary()
            except self._outage as exc:
                self._failed(exc)
            except BaseException:
                breaker.record_neutral()  # not an outage: free a half-open probe slot
                raise
            else:
                self.breaker.record_success()
                return result
        self._counts["fallback_served"] += 1
        return await on_fallback()

    # -- sync ------------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        # _call inlined: reads are the hot path, and two closures per get cost measurably.
        breaker = self.breaker
        if breaker.allow():
            try:
                value = self.primary.get(key)
            except self._outage as exc:
                self._failed(exc)
            except BaseException:
                breaker.record_neutral()  # not an outage: free a half-open probe slot
                raise
            else:
                breaker.record_success()
                return value
        self._counts["fallback_served"] += 1
        return self.fallback.get(key)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        if self.mirror_writes:
            self.fallback.set(key, value, ttl)
            self._call(lambda: self.primary.set(key, value, ttl), _none)
        else:
            self._call(
                lambda: self.primary.set(key, value, ttl),
                lambda: self.fallback.set(key, value, ttl),
            )

    def delete(self, key: str) -> bool:
        found = self.fallback.delete(key)
        return self._call(lambda: self.primary.delete(key), lambda: found) or found

    def clear(self, prefix: str = "") -> int:
        count = self.fallback.clear(prefix)
        return self._call(lambda: self.primary.clear(prefix), lambda: count)

    def acquire_lock(self, key: str, lease: float) -> str | None:
        return self._call(
            lambda: self.primary.acquire_lock(key, lease),
            lambda: self.fallback.acquire_lock(key, lease),
        )

    def release_lock(self, key: str, token: str) -> None:
        for backend in (self.primary, self.fallback):
            try:
                backend.release_lock(key, token)
            except Exception:
                pass  # an unreleased lease expires by itself

    def health_check(self) -> CheckResult:
        if self.fallback_active:
            return self._degraded()
        return self._healthy(self.primary.health_check())

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()

    # -- asyncio ---------------------------------------------------------------------------
    async def aget(self, key: str) -> bytes | None:
        # _acall inlined, as in get().
        breaker = self.breaker
        if breaker.allow():
            try:
                value = await self.primary.aget(key)
            except self._outage as exc:
                self._failed(exc)
            except BaseException:
                breaker.record_neutral()  # not an outage: free a half-open probe slot
                raise
            else:
                breaker.record_success()
                return value
        self._counts["fallback_served"] += 1
        return await self.fallback.aget(key)

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        if self.mirror_writes:
            await self.fallback.aset(key, value, ttl)
            await self._acall(lambda: self.primary.aset(key, value, ttl), _anone)
        else:
            await self._acall(
                lambda: self.primary.aset(key, value, ttl),
                lambda: self.fallback.aset(key, value, ttl),
            )

    async def adelete(self, key: str) -> bool:
        found = await self.fallback.adelete(key)

        async def fallback_result() -> bool:
            return found

        return await self._acall(lambda: self.primary.adelete(key), fallback_result) or found

    async def aclear(self, prefix: str = "") -> int:
        count = await self.fallback.aclear(prefix)

        async def fallback_result() -> int:
            return count

        return await self._acall(lambda: self.primary.aclear(prefix), fallback_result)

    async def aacquire_lock(self, key: str, lease: float) -> str | None:
        return await self._acall(
            lambda: self.primary.aacquire_lock(key, lease),
            lambda: self.fallback.aacquire_lock(key, lease),
        )

    async def arelease_lock(self, key: str, token: str) -> None:
        for backend in (self.primary, self.fallback):
            try:
                await backend.arelease_lock(key, token)
            except Exception:
                pass  # an unreleased lease expires by itself

    async def ahealth_check(self) -> CheckResult:
        if self.fallback_active:
            return self._degraded()
        return self._healthy(await self.primary.ahealth_check())

    async def aclose(self) -> None:
        await self.primary.aclose()
        await self.fallback.aclose()

    # -- reporting -------------------------------------------------------------------------
    def _degraded(self) -> CheckResult:
        return CheckResult.degraded(
            f"{self.primary.name} unavailable ({self._last_error or 'circuit open'}); "
            f"serving from {self.fallback.name}",
            fallback_active=True,
            retry_after=round(self.breaker.retry_after(), 3),
        )

    def _healthy(self, primary: CheckResult) -> CheckResult:
        if primary.status == "healthy":
            return CheckResult("healthy", "", {"fallback_active": False}, primary.latency_ms)
        # The primary fails its own check: we still serve (from the fallback), so degraded.
        return CheckResult.degraded(
            f"{primary.message}; serving from {self.fallback.name}", fallback_active=True
        )

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "fallback_active": self.fallback_active,
            **self._counts,
            "breaker": self.breaker.stats(),
            "primary": self.primary.stats(),
            "fallback": self.fallback.stats(),
        }


def _none() -> None:
    return None


async def _anone() -> None:
    return None
