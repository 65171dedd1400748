# DO NOT EDIT: generated from src/renderkit/sessions/_fallback_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""FallbackStore's operations (async source; ``_fallback_sync`` is generated; private module)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from renderkit.errors import BackendUnavailable
from renderkit.health import CheckResult
from renderkit.sessions._base import DEFAULT_TTL, DELETED, Changes, SessionConflict, SessionRecord
from renderkit.sessions._fallback_base import FallbackBase, is_tombstone, logger, stamp_of, visible

__all__ = ["FallbackOps"]


class FallbackOps(FallbackBase):
    """load/save/merge/delete/touch on the primary while it answers, else on the fallback."""

    def _primary(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """``(True, fn(...))`` when the primary answered; ``(False, None)`` when it is away."""
        degrader = self.degrader
        if not degrader.allow():
            self._went_away()
            return False, None
        try:
            result = fn(*args, **kwargs)
        except self.primary.errors as exc:
            degrader.failed(exc)
            self._went_away()
            return False, None
        except BaseException:
            degrader.neutral()
            raise
        degrader.succeeded()
        if self._came_back():
            self._replay()
        return True, result

    def _replay(self) -> int:
        """Copy one batch of the journal onto the primary (newest wins; tombstones delete)."""
        self._replaying = True
        done = 0
        try:
            for session_id in self._replay_batch():
                found, primary = self._primary(self.primary.load, session_id)
                if not found:
                    break
                self._reconcile(session_id, primary, self.fallback.load(session_id))
                self._count_event("replayed")
                done += 1
        except self.fallback.errors:
            pass  # the fallback is away too: the journal waits for the next success
        finally:
            self._replaying = False
        return done

    def _drain(self) -> None:
        """Replay the whole journal (started by the probe that saw the primary return, so a
        worker that gets no request after the outage still repairs the primary)."""
        try:
            while self._journal and not self._replaying and self._replay():
                pass
        except Exception as exc:  # a background task: never let it die loudly
            logger.debug("%s: replaying the outage journal failed: %r", self.name, exc)

    def _reconcile(
        self, session_id: str, primary: SessionRecord | None, fallback: SessionRecord | None
    ) -> SessionRecord | None:
        """The newer of the two states, written back to the primary when it is the fallback's."""
        if fallback is None or stamp_of(primary) >= stamp_of(fallback):
            self._journal_done(session_id)
            return visible(primary)
        if is_tombstone(fallback):
            done = True
            if primary is not None:
                done, _ = self._primary(self.primary.delete, session_id)
            if done:
                self._journal_done(session_id)
            return None
        ttl = max(1.0, fallback.expires_at - time.time())
        try:
            done, version = self._primary(
                self.primary.save,
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

    def load(self, session_id: str) -> SessionRecord | None:
        found, primary = self._primary(self.primary.load, session_id)
        if not found:
            held = visible(self.fallback.load(session_id))
            if held is not None and session_id in self._mirror_debt:
                held.tentative = True  # its last mirror write failed: this copy is older
            return held
        if not self._consult(session_id, primary):
            return visible(primary)
        try:
            fallback = self.fallback.load(session_id)
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
        return self._reconcile(session_id, primary, fallback)

    def save(
        self,
        session_id: str,
        data: Mapping[str, Any],
        *,
        version: int = 0,
        user_id: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> int:
        stamped = self._stamped(data)
        write = self.primary.save
        try:
            done, new = self._primary(
                write, session_id, stamped, version=version, user_id=user_id, ttl=ttl
            )
        except SessionConflict:
            if not (self.mirror or self._fallback_used):
                raise
            seen, current = self._primary(self.primary.load, session_id)
            if not seen or current is not None:
                raise
            # After an outage the primary takes back a session that lived in the fallback.
            done, new = self._primary(
                write, session_id, stamped, version=0, user_id=user_id, ttl=ttl
            )
        if done:
            self._journal_done(session_id)
            if self.mirror:
                self._mirror(session_id, stamped, user_id, ttl)
            return int(new)
        self._journal_add(session_id)
        try:
            return self.fallback.save(
                session_id, stamped, version=version, user_id=user_id, ttl=ttl
            )
        except SessionConflict:
            if self.fallback.load(session_id) is not None:
                raise  # changed meanwhile, or a tombstone: the session was ended
            # The fallback takes over a session it never held (it lived in the primary).
            return self.fallback.save(session_id, stamped, version=0, user_id=user_id, ttl=ttl)

    def _mirror(
        self, session_id: str, data: Mapping[str, Any], user_id: str | None, ttl: float
    ) -> None:
        """Copy a save the primary accepted; the primary's version check already decided."""
        self._mirror_paid(session_id)
        try:
            current = self.fallback.load(session_id)
            version = current.version if current is not None else 0
            self.fallback.save(session_id, data, version=version, user_id=user_id, ttl=ttl)
        except self._mirror_errors as exc:
            self._owe_mirror(session_id)
            self._count_event("mirror_errors")
            logger.debug("%s: mirror write to the fallback failed: %r", self.name, exc)

    def merge(
        self,
        session_id: str,
        changes: Changes,
        *,
        user_id: str | None = None,
        set_user: bool = False,
        ttl: float = DEFAULT_TTL,
    ) -> int | None:
        stamped = {**changes, **self._stamp_change()}
        options: dict[str, Any] = {"user_id": user_id, "set_user": set_user, "ttl": ttl}
        done, new = self._primary(self.primary.merge, session_id, stamped, **options)
        if not done:
            self._journal_add(session_id)
            return self.fallback.merge(session_id, stamped, **options)
        if new is None and (self.mirror or self._fallback_used):
            # The primary lacks it, but it may live in the fallback (not repaired yet).
            held = visible(self.fallback.load(session_id))
            if held is None:
                return None
            data = {k: v for k, v in {**held.data, **stamped}.items() if v is not DELETED}
            owner = user_id if set_user else held.user_id
            try:
                done, new = self._primary(
                    self.primary.save, session_id, data, version=0, user_id=owner, ttl=ttl
                )
            except SessionConflict:  # the journal replay repaired it meanwhile: merge onto it
                done, new = self._primary(self.primary.merge, session_id, stamped, **options)
            if not done:
                return self.fallback.merge(session_id, stamped, **options)
        if new is not None and self.mirror:
            seen, merged = self._primary(self.primary.load, session_id)
            if seen and merged is not None:
                self._mirror(session_id, merged.data, merged.user_id, ttl)
        return None if new is None else int(new)

    def _tombstone(self, session_id: str) -> None:
        """Mark ``session_id`` ended in the fallback, so the primary's copy loses on return."""
        for _ in range(3):
            current = self.fallback.load(session_id)
            version = 0 if current is None else current.version
            try:
                self.fallback.save(
                    session_id, self._tomb(), version=version, ttl=self.tombstone_ttl
                )
            except SessionConflict:
                continue
            self._count_event("tombstones")
            return

    def _primary_tombstone(self, session_id: str) -> None:
        try:
            self._primary(
                self.primary.save, session_id, self._tomb(), version=0, ttl=self.tombstone_ttl
            )
        except SessionConflict:
            pass  # written meanwhile: a new write is newer than the copy the fallback kept

    def delete(self, session_id: str) -> bool:
        done, existed = self._primary(self.primary.delete, session_id)
        if done:
            self._journal_done(session_id)
            if self.mirror or self._fallback_used:
                try:
                    existed = self.fallback.delete(session_id) or bool(existed)
                except self.fallback.errors:
                    # The fallback keeps its copy for now; a tombstone in the primary outranks
                    # it, so a later miss in the primary cannot bring the session back.
                    self._primary_tombstone(session_id)
            return bool(existed)
        self._journal_add(session_id)
        self._tombstone(session_id)
        return True

    def touch(self, session_id: str, ttl: float = DEFAULT_TTL) -> bool:
        done, touched = self._primary(self.primary.touch, session_id, ttl)
        if done and self.mirror:
            try:
                self.fallback.touch(session_id, ttl)
            except self.fallback.errors:
                self._count_event("mirror_errors")
        if not done or (self._fallback_used and not touched):
            touched = self.fallback.touch(session_id, ttl)
        return bool(touched)

    def delete_user_sessions(self, user_id: str) -> int:
        done, removed = self._primary(self.primary.delete_user_sessions, user_id)
        also = 0
        if self.mirror or self._fallback_used or not done:
            also = self.fallback.delete_user_sessions(user_id)
        if not done:
            raise BackendUnavailable(
                f"{type(self.primary).__name__} is unavailable: {also} session(s) of this "
                "user were deleted from the fallback, but those in the primary store would "
                "come back when it recovers; retry delete_user_sessions() later"
            )
        return int(removed or 0) + also

    def health_check(self) -> CheckResult:
        """Healthy while the primary answers; degraded while sessions come from the fallback."""
        return self._verdict(self.primary.health_check())
