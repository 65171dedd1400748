# DO NOT EDIT: generated from src/renderkit/sessions/_engine_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""The session engine's I/O (async source; ``_engine_sync`` is generated; private module)."""

from __future__ import annotations

from collections.abc import Sequence

from renderkit.sessions._base import SessionConflict
from renderkit.sessions._core import EngineBase, Plan
from renderkit.sessions._session import Session

__all__ = ["EngineIO"]


class EngineIO(EngineBase):
    """Load the session at request start; carry out the plan at its end."""

    def open(self, values: Sequence[str], factory: type[Session] = Session) -> Session:
        """The request's Session: loaded when a cookie value verifies, else a new empty one.

        A store that fails costs the request its session (empty, not saved), never a 500.
        """
        found = self.verified(values) if values else None
        if found is None:
            return factory()
        store = self.store
        try:
            record = store.load(found[0])
        except store.errors as exc:
            self._store_failed(exc)
            return self._session(found, None, factory, unavailable=True)
        self._store_ok()
        return self._session(found, record, factory)

    def finish(self, session: Session, had_cookie: bool) -> bytes | None:
        """Save what the request changed; the ``Set-Cookie`` value to send, if any."""
        plan = self.plan(session, had_cookie)
        if plan is None:
            return None
        self.commit(plan)
        return plan.cookie

    def commit(self, plan: Plan) -> None:
        """Carry out ``plan`` against the store, merging on a version conflict."""
        store = self.store
        try:
            if plan.touch_id is not None:
                store.touch(plan.touch_id, plan.ttl)
            if plan.save_id is not None:
                self._save(plan, plan.save_id)
            if plan.delete_id is not None:
                store.delete(plan.delete_id)
        except store.errors as exc:
            self._store_failed(exc)
            if plan.new_cookie_value is not None:
                plan.cookie = None  # nothing was saved under that id: leave the cookie alone
            return
        self._store_ok()

    def _save(self, plan: Plan, session_id: str) -> None:
        """A version-checked write; when another request wrote first, a per-key merge."""
        session = plan.session
        user = session.user_id
        try:
            self.store.save(session_id, plan.data, version=plan.version, user_id=user, ttl=plan.ttl)
            return
        except SessionConflict:
            if self.on_conflict == "raise":
                raise
        changes = self._changes(plan)
        new = self.store.merge(
            session_id, changes, user_id=user, set_user=session.pending().user_changed, ttl=plan.ttl
        )
        if new is None:
            self._dropped(plan)
        else:
            self._merged()
