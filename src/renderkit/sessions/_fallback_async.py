# twins: source
# twins: rename aload=load asave=save amerge=merge adelete=delete atouch=touch
# twins: rename adelete_user_sessions=delete_user_sessions ahealth_check=health_check
# twins: rename _aprimary=_primary _areconcile=_reconcile _areplay=_replay _amirror=_mirror
# twins: rename _adrain=_drain _aprimary_tombstone=_primary_tombstone
# twins: rename _atombstone=_tombstone _asave_op=_save_op _amerge_op=_merge_op
"""FallbackStore's operations (async source; ``_fallback_sync`` is generated; private module)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from renderkit.errors import BackendUnavailable
from renderkit.health import CheckResult
from renderkit.sessions._base import (
    DEFAULT_TTL,
    DELETED,
    Changes,
    SessionConflict,
    SessionData,
    SessionRecord,
)
from renderkit.sessions._fallback_base import (
    FallbackBase,
    is_tombstone,
    logger,
    stamp_of,
    visible,
)

__all__ = ["AsyncFallbackOps"]


class AsyncFallbackOps(FallbackBase):
    """load/save/merge/delete/touch on the primary while it answers, else on the fallback."""

    async def _aprimary(
        self, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[bool, Any]:
        """``(True, fn(...))`` when the primary answered; ``(False, None)`` when it is away."""
        degrader = self.degrader
        if not degrader.allow():
            self._went_away()
            return False, None
        try:
            result = await fn(*args, **kwargs)
        except self.primary.errors as exc:
            degrader.failed(exc, in_async=True)  # twins: sync: degrader.failed(exc)
            self._went_away()
            return False, None
        except BaseException:
            degrader.neutral()
            raise
        degrader.succeeded()
        if self._came_back():
            await self._areplay()
        return True, result

    async def _areplay(self) -> int:
        """Copy one batch of the journal onto the primary (newest wins; tombstones delete)."""
        self._replaying = True
        done = 0
        try:
            for session_id in self._replay_batch():
                found, primary = await self._aprimary(self.primary.aload, session_id)
                if not found:
                    break
                await self._areconcile(session_id, primary, await self.fallback.aload(session_id))
                self._count_event("replayed")
                done += 1
        except self.fallback.errors:
            pass  # the fallback is away too: the journal waits for the next success
        finally:
            self._replaying = False
        return done

    async def _adrain(self) -> None:
        """Replay the whole journal (started by the probe that saw the primary return, so a
        worker that gets no request after the outage still repairs the primary)."""
        try:
            while self._journal and not self._replaying and await self._areplay():
                pass
        except Exception as exc:  # a background task: never let it die loudly
            logger.debug("%s: replaying the outage journal failed: %r", self.name, exc)

    async def _areconcile(
        self, session_id: str, primary: SessionRecord | None, fallback: SessionRecord | None
    ) -> SessionRecord | None:
        """The newer of the two states, written back to the primary when it is the fallback's."""
        if fallback is None or stamp_of(primary) >= stamp_of(fallback):
            self._journal_done(session_id)
            return visible(primary)
        if is_tombstone(fallback):
            done = True
            if primary is not None:
                done, _ = await self._aprimary(self.primary.adelete, session_id)
            if done:
                self._journal_done(session_id)
            return None
        ttl = max(1.0, fallback.expires_at - time.time())
        try:
            done, version = await self._aprimary(
                self.primary.asave,
                session_id,
                fallback.data,
                version=0 if primary is None else primary.version,
                user_id=fallback.user_id,
                ttl=ttl,
            )
        except SessionConflict:
            return visible(fallback)  # a concurrent request wrote the primary: it decides next
        if done:
            self._journal_done(session_id)
            self._count_event("repaired")
            fallback.version = version
        return visible(fallback)

    async def aload(self, session_id: str) -> SessionRecord | None:
        found, primary = await self._aprimary(self.primary.aload, session_id)
        if not found:
            copy = await self.fallback.aload(session_id)
            stale = self._older_than_owed(session_id, copy)
            held = visible(copy)
            if held is not None and stale:
                held.tentative = True  # a newer write never reached the fallback
            return held
        if not self._consult(session_id, primary):
            return visible(primary)
        try:
            fallback = await self.fallback.aload(session_id)
        except self.fallback.errors:
            if primary is None:
                raise  # neither store can say whether this session exists: it is unavailable
            # The fallback is away: serve the primary's state. When this worker wrote the id
            # there during the outage (journalled, not replayed yet), the fallback's state is
            # known to be newer: no write may be based on the primary's (it would undo it).
            shown = visible(primary)
            if shown is not None and session_id in self._journal:
                shown.tentative = True
            return shown
        return await self._areconcile(session_id, primary, fallback)

    async def _asave_op(
        self, session_id: str, data: SessionData, version: int, user_id: str | None, ttl: float
    ) -> int:
        stamped = self._stamped(data)
        write = self.primary.asave
        try:
            done, new = await self._aprimary(
                write, session_id, stamped, version=version, user_id=user_id, ttl=ttl
            )
        except SessionConflict:
            if not (self.mirror or self._fallback_used):
                raise
            seen, current = await self._aprimary(self.primary.aload, session_id)
            if not seen or current is not None:
                raise
            # After an outage the primary takes back a session that lived in the fallback.
            done, new = await self._aprimary(
                write, session_id, stamped, version=0, user_id=user_id, ttl=ttl
            )
        if done:
            self._journal_done(session_id)
            if self.mirror:
                await self._amirror(session_id, stamped, user_id, ttl)
            return int(new)
        self._journal_add(session_id)
        try:
            return await self.fallback.asave(
                session_id, stamped, version=version, user_id=user_id, ttl=ttl
            )
        except SessionConflict:
            if await self.fallback.aload(session_id) is not None:
                raise  # changed meanwhile, or a tombstone: the session was ended
            # The fallback takes over a session it never held (it lived in the primary).
            return await self.fallback.asave(
                session_id, stamped, version=0, user_id=user_id, ttl=ttl
            )

    async def _amirror(
        self, session_id: str, data: SessionData, user_id: str | None, ttl: float
    ) -> None:
        """Copy a save the primary accepted; the primary's version check already decided."""
        self._mirror_paid(session_id)
        try:
            current = await self.fallback.aload(session_id)
            version = current.version if current is not None else 0
            await self.fallback.asave(session_id, data, version=version, user_id=user_id, ttl=ttl)
        except self._mirror_errors as exc:
            self._owe_mirror(session_id, data)
            self._count_event("mirror_errors")
            logger.debug("%s: mirror write to the fallback failed: %r", self.name, exc)

    async def _amerge_op(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> int | None:
        stamped = {**changes, **self._stamp_change()}
        options: dict[str, Any] = {"user_id": user_id, "set_user": set_user, "ttl": ttl}
        done, new = await self._aprimary(self.primary.amerge, session_id, stamped, **options)
        if not done:
            self._journal_add(session_id)
            return await self.fallback.amerge(session_id, stamped, **options)
        if new is None and (self.mirror or self._fallback_used):
            # The primary lacks it, but it may live in the fallback (not repaired yet).
            held = visible(await self.fallback.aload(session_id))
            if held is None:
                return None
            data = {k: v for k, v in {**held.data, **stamped}.items() if v is not DELETED}
            owner = user_id if set_user else held.user_id
            try:
                done, new = await self._aprimary(
                    self.primary.asave, session_id, data, version=0, user_id=owner, ttl=ttl
                )
            except SessionConflict:  # the journal replay repaired it meanwhile: merge onto it
                done, new = await self._aprimary(
                    self.primary.amerge, session_id, stamped, **options
                )
            if not done:
                return await self.fallback.amerge(session_id, stamped, **options)
        if new is not None and self.mirror:
            seen, merged = await self._aprimary(self.primary.aload, session_id)
            if seen and merged is not None:
                await self._amirror(session_id, merged.data, merged.user_id, ttl)
        return None if new is None else int(new)

    async def _atombstone(self, session_id: str) -> None:
        """Mark ``session_id`` ended in the fallback, so the primary's copy loses on return."""
        for _ in range(3):
            current = await self.fallback.aload(session_id)
            version = 0 if current is None else current.version
            try:
                await self.fallback.asave(
                    session_id, self._tomb(), version=version, ttl=self.tombstone_ttl
                )
            except SessionConflict:
                continue
            self._count_event("tombstones")
            return

    async def _aprimary_tombstone(self, session_id: str) -> None:
        try:
            await self._aprimary(
                self.primary.asave, session_id, self._tomb(), version=0, ttl=self.tombstone_ttl
            )
        except SessionConflict:
            pass  # written meanwhile: a new write is newer than the copy the fallback kept

    async def adelete(self, session_id: str) -> bool:
        done, existed = await self._aprimary(self.primary.adelete, session_id)
        if done:
            self._journal_done(session_id)
            if self.mirror or self._fallback_used:
                try:
                    existed = await self.fallback.adelete(session_id) or bool(existed)
                except self.fallback.errors:
                    # The fallback keeps its copy for now; a tombstone in the primary outranks
                    # it, so a later miss in the primary cannot bring the session back.
                    await self._aprimary_tombstone(session_id)
            return bool(existed)
        self._journal_add(session_id)
        await self._atombstone(session_id)
        return True

    async def atouch(self, session_id: str, ttl: float = DEFAULT_TTL) -> bool:
        done, touched = await self._aprimary(self.primary.atouch, session_id, ttl)
        if done and self.mirror:
            try:
                await self.fallback.atouch(session_id, ttl)
            except self.fallback.errors:
                self._count_event("mirror_errors")
        if not done or (self._fallback_used and not touched):
            touched = await self.fallback.atouch(session_id, ttl)
        return bool(touched)

    async def adelete_user_sessions(self, user_id: str) -> int:
        done, removed = await self._aprimary(self.primary.adelete_user_sessions, user_id)
        also = 0
        if self.mirror or self._fallback_used or not done:
            also = await self.fallback.adelete_user_sessions(user_id)
        if not done:
            raise BackendUnavailable(
                f"{type(self.primary).__name__} is unavailable: {also} session(s) of this "
                "user were deleted from the fallback, but those in the primary store would "
                "come back when it recovers; retry delete_user_sessions() later"
            )
        return int(removed or 0) + also

    async def ahealth_check(self) -> CheckResult:
        """Healthy while the primary answers; degraded while sessions come from the fallback."""
        return self._verdict(await self.primary.ahealth_check())
