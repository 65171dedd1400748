"""FallbackStore: Redis first, another store while Redis is unavailable (private module)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from renderkit.errors import BackendUnavailable, CircuitOpenError
from renderkit.health import CheckResult
from renderkit.resilience import CircuitBreaker
from renderkit.sessions._base import DEFAULT_TTL, SessionConflict, SessionRecord, SessionStore

__all__ = ["FallbackStore"]

T = TypeVar("T")
logger = logging.getLogger("renderkit.sessions")


class FallbackStore(SessionStore):
    """Use ``primary`` (Redis) while it answers and ``fallback`` (Postgres or memory) while not.

    A circuit breaker stops paying Redis's timeout on every request once it failed; it
    probes again after ``recovery_timeout`` seconds. The switch and the recovery are logged
    once each, and :meth:`health_check` reports ``degraded`` while falling back.

    During an outage, sessions held only by the primary cannot be read (those users get a
    fresh session); new and changed sessions go to the fallback. After recovery the primary
    is read first and the fallback answers for sessions created during the outage.
    ``delete_user_sessions`` raises :class:`BackendUnavailable` when the primary cannot be
    reached, because its sessions would come back when it recovers.

    ``mirror`` (default: on when the fallback is durable, i.e. not a ``MemoryStore``) also
    writes every save, delete and expiry to the fallback while the primary answers, and reads
    the fallback when the primary has no record. A Redis that restarts empty (no persistence,
    ``kill -9``) then loses no session: the next request finds it in Postgres and Redis takes it
    back. It costs one fallback write per modified session.
    """

    def __init__(
        self,
        primary: SessionStore,
        fallback: SessionStore,
        *,
        breaker: CircuitBreaker | None = None,
        failure_threshold: int = 2,
        recovery_timeout: float = 10.0,
        mirror: bool | None = None,
        name: str = "sessions",
    ) -> None:
        super().__init__(name=name)
        from renderkit.sessions._memory import MemoryStore

        self.primary = primary
        self.fallback = fallback
        self.mirror = not isinstance(fallback, MemoryStore) if mirror is None else mirror
        self.blocking = primary.blocking or fallback.blocking
        self.errors = fallback.errors
        self.breaker = breaker or CircuitBreaker(
            f"{name}:{type(primary).__name__}",
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            expected_exceptions=primary.errors,
        )
        self._mirror_errors: tuple[type[BaseException], ...] = (SessionConflict, *fallback.errors)
        self._mirror_error_count = 0
        self._lock = threading.Lock()
        self._falling_back = False
        self._fallback_used = False
        self._fallback_calls = 0

    # -- shared decisions ----------------------------------------------------------------
    def _failed(self, exc: BaseException | None) -> None:
        with self._lock:
            self._fallback_calls += 1
            self._fallback_used = True
            first = not self._falling_back
            self._falling_back = True
        if first:
            reason = f"{type(exc).__name__}: {exc}" if exc is not None else "circuit open"
            logger.warning(
                "%s: %s unavailable (%s); serving sessions from %s",
                self.name,
                type(self.primary).__name__,
                reason,
                type(self.fallback).__name__,
            )

    def _recovered(self) -> None:
        if self._falling_back:
            with self._lock:
                was, self._falling_back = self._falling_back, False
            if was:
                logger.warning(
                    "%s: %s answers again; back from %s",
                    self.name,
                    type(self.primary).__name__,
                    type(self.fallback).__name__,
                )

    @property
    def _consult_fallback(self) -> bool:
        """True when the fallback may hold sessions the primary lacks."""
        return self.mirror or self._fallback_used

    def _mirror_failed(self, exc: BaseException) -> None:
        with self._lock:
            self._mirror_error_count += 1
        logger.debug("%s: mirror write to the fallback failed: %r", self.name, exc)

    def _try(self, fn: Callable[[], T]) -> tuple[bool, T | None]:
        try:
            result = self.breaker.call(fn)
        except CircuitOpenError:
            self._failed(None)
            return False, None
        except self.primary.errors as exc:
            self._failed(exc)
            return False, None
        self._recovered()
        return True, result

    async def _atry(self, fn: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        try:
            result = await self.breaker.acall(fn)
        except CircuitOpenError:
            self._failed(None)
            return False, None
        except self.primary.errors as exc:
            self._failed(exc)
            return False, None
        self._recovered()
        return True, result

    # -- sync ------------------------------------------------------------------------------
    def load(self, session_id: str) -> SessionRecord | None:
        ok, record = self._try(lambda: self.primary.load(session_id))
        if ok and (record is not None or not self._consult_fallback):
            return record
        return self.fallback.load(session_id)

    def save(
        self,
        session_id: str,
        data: Mapping[str, Any],
        *,
        version: int = 0,
        user_id: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> int:
        try:
            ok, new = self._try(
                lambda: self.primary.save(
                    session_id, data, version=version, user_id=user_id, ttl=ttl
                )
            )
        except SessionConflict:
            if not self._consult_fallback or self.primary.load(session_id) is not None:
                raise
            # After an outage the primary takes back a session that lived in the fallback.
            ok, new = self._try(
                lambda: self.primary.save(session_id, data, version=0, user_id=user_id, ttl=ttl)
            )
        if ok:
            assert new is not None
            if self.mirror:
                self._mirror_save(session_id, data, user_id, ttl)
            return new
        try:
            return self.fallback.save(session_id, data, version=version, user_id=user_id, ttl=ttl)
        except SessionConflict:
            if self.fallback.load(session_id) is not None:
                raise
            # The fallback takes over a session it never held (it lived in the primary).
            return self.fallback.save(session_id, data, version=0, user_id=user_id, ttl=ttl)

    def _mirror_save(
        self, session_id: str, data: Mapping[str, Any], user_id: str | None, ttl: float
    ) -> None:
        """Copy a save the primary accepted; the primary's version check already decided."""
        try:
            current = self.fallback.load(session_id)
            version = current.version if current is not None else 0
            self.fallback.save(session_id, data, version=version, user_id=user_id, ttl=ttl)
        except self._mirror_errors as exc:
            self._mirror_failed(exc)

    def delete(self, session_id: str) -> bool:
        ok, existed = self._try(lambda: self.primary.delete(session_id))
        if not ok or self._consult_fallback:
            existed = self.fallback.delete(session_id) or bool(existed)
        return bool(existed)

    def touch(self, session_id: str, ttl: float = DEFAULT_TTL) -> bool:
        ok, done = self._try(lambda: self.primary.touch(session_id, ttl))
        if self.mirror and ok:
            self.fallback.touch(session_id, ttl)
        if not ok or (self._fallback_used and not done):
            done = self.fallback.touch(session_id, ttl)
        return bool(done)

    def delete_user_sessions(self, user_id: str) -> int:
        ok, removed = self._try(lambda: self.primary.delete_user_sessions(user_id))
        consult = self._consult_fallback or not ok
        also = self.fallback.delete_user_sessions(user_id) if consult else 0
        if not ok:
            raise BackendUnavailable(
                f"{type(self.primary).__name__} is unavailable: {also} session(s) of this "
                "user were deleted from the fallback, but those in the primary store would "
                "come back when it recovers; retry delete_user_sessions() later"
            )
        return int(removed or 0) + also

    # -- async -----------------------------------------------------------------------------
    async def aload(self, session_id: str) -> SessionRecord | None:
        ok, record = await self._atry(lambda: self.primary.aload(session_id))
        if ok and (record is not None or not self._consult_fallback):
            return record
        return await self.fallback.aload(session_id)

    async def asave(
        self,
        session_id: str,
        data: Mapping[str, Any],
        *,
        version: int = 0,
        user_id: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> int:
        try:
            ok, new = await self._atry(
                lambda: self.primary.asave(
                    session_id, data, version=version, user_id=user_id, ttl=ttl
                )
            )
        except SessionConflict:
            if not self._consult_fallback or await self.primary.aload(session_id) is not None:
                raise
            # After an outage the primary takes back a session that lived in the fallback.
            ok, new = await self._atry(
                lambda: self.primary.asave(session_id, data, version=0, user_id=user_id, ttl=ttl)
            )
        if ok:
            assert new is not None
            if self.mirror:
                await self._amirror_save(session_id, data, user_id, ttl)
            return new
        try:
            return await self.fallback.asave(
                session_id, data, version=version, user_id=user_id, ttl=ttl
            )
        except SessionConflict:
            if await self.fallback.aload(session_id) is not None:
                raise
            return await self.fallback.asave(session_id, data, version=0, user_id=user_id, ttl=ttl)

    async def _amirror_save(
        self, session_id: str, data: Mapping[str, Any], user_id: str | None, ttl: float
    ) -> None:
        """Async :meth:`_mirror_save`."""
        try:
            current = await self.fallback.aload(session_id)
            version = current.version if current is not None else 0
            await self.fallback.asave(session_id, data, version=version, user_id=user_id, ttl=ttl)
        except self._mirror_errors as exc:
            self._mirror_failed(exc)

    async def adelete(self, session_id: str) -> bool:
        ok, existed = await self._atry(lambda: self.primary.adelete(session_id))
        if not ok or self._consult_fallback:
            existed = await self.fallback.adelete(session_id) or bool(existed)
        return bool(existed)

    async def atouch(self, session_id: str, ttl: float = DEFAULT_TTL) -> bool:
        ok, done = await self._atry(lambda: self.primary.atouch(session_id, ttl))
        if self.mirror and ok:
            await self.fallback.atouch(session_id, ttl)
        if not ok or (self._fallback_used and not done):
            done = await self.fallback.atouch(session_id, ttl)
        return bool(done)

    async def adelete_user_sessions(self, user_id: str) -> int:
        ok, removed = await self._atry(lambda: self.primary.adelete_user_sessions(user_id))
        also = (
            await self.fallback.adelete_user_sessions(user_id)
            if self._consult_fallback or not ok
            else 0
        )
        if not ok:
            raise BackendUnavailable(
                f"{type(self.primary).__name__} is unavailable: {also} session(s) of this "
                "user were deleted from the fallback, but those in the primary store would "
                "come back when it recovers; retry adelete_user_sessions() later"
            )
        return int(removed or 0) + also

    # -- observability ---------------------------------------------------------------------
    @property
    def falling_back(self) -> bool:
        """True while the primary is considered unavailable."""
        return self._falling_back or self.breaker.state != "closed"

    def stats(self) -> dict[str, Any]:
        """``fallback_active``, ``fallback_calls``, the breaker, and both stores' stats."""
        return {
            "store": "FallbackStore",
            "fallback_active": self.falling_back,
            "mirror": self.mirror,
            "mirror_errors": self._mirror_error_count,
            "fallback_calls": self._fallback_calls,
            "breaker": self.breaker.stats(),
            "primary": self.primary.stats(),
            "fallback": self.fallback.stats(),
        }

    def _verdict(self, primary: CheckResult) -> CheckResult:
        if primary.status == "healthy" and not self.falling_back:
            return CheckResult(
                "healthy",
                primary.message,
                {"store": type(self.primary).__name__},
                primary.latency_ms,
            )
        return CheckResult.degraded(
            f"sessions served from {type(self.fallback).__name__}: "
            f"{type(self.primary).__name__} unavailable ({primary.message or 'circuit open'})",
            fallback_active=True,
            breaker=self.breaker.state,
        )

    def health_check(self) -> CheckResult:
        """Healthy while the primary answers; degraded while sessions come from the fallback."""
        return self._verdict(self.primary.health_check())

    async def ahealth_check(self) -> CheckResult:
        """Async :meth:`health_check`."""
        return self._verdict(await self.primary.ahealth_check())

    def close(self) -> None:
        """Close both stores."""
        self.primary.close()
        self.fallback.close()

    async def aclose(self) -> None:
        """Close both stores."""
        await self.primary.aclose()
        await self.fallback.aclose()
