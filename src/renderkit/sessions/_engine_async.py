# twins: source
# twins: rename aopen=open afinish=finish acommit=commit _amerge_changes=_merge_changes
# twins: rename aload=load asave=save
# twins: rename amerge=merge atouch=touch adelete=delete
"""The session engine's I/O (async source; ``_engine_sync`` is generated; private module)."""

from __future__ import annotations

from collections.abc import Sequence

from renderkit.sessions._base import SessionConflict
from renderkit.sessions._core import EngineBase, Plan
from renderkit.sessions._session import Session

__all__ = ["AsyncEngineIO"]


class AsyncEngineIO(EngineBase):
    """Load the session at request start; carry out the plan at its end."""

    async def aopen(self, values: Sequence[str], factory: type[Session] = Session) -> Session:
        """The request's Session: loaded when a cookie value verifies, else a new empty one.

        A store that fails costs the request its session (empty, not saved), never a 500.
        """
        found = self.verified(values) if values else None
        if found is None:
            return factory()
        store = self.store
        try:
            record = await store.aload(found[0])
        except store.errors as exc:
            self._store_failed(exc)
            return self._session(found, None, factory, unavailable=True)
        self._store_ok()
        return self._session(found, record, factory)

    async def afinish(self, session: Session, had_cookie: bool) -> bytes | None:
        """Save what the request changed; the ``Set-Cookie`` value to send, if any."""
        plan = self.plan(session, had_cookie)
        if plan is None:
            return None
        await self.acommit(plan)
        return plan.cookie

    async def acommit(self, plan: Plan) -> None:
        """Carry out ``plan`` against the store, merging on a version conflict."""
        store = self.store
        try:
            if plan.touch_id is not None:
                await store.atouch(plan.touch_id, plan.ttl)
            if plan.save_id is not None:
                try:  # a version-checked write
                    await store.asave(
                        plan.save_id,
                        plan.data,
                        version=plan.version,
                        user_id=plan.session.user_id,
                        ttl=plan.ttl,
                    )
                except SessionConflict:
                    if self.on_conflict == "raise":
                        raise
                    await self._amerge_changes(plan, plan.save_id)
            if plan.delete_id is not None:
                await store.adelete(plan.delete_id)
        except store.errors as exc:
            self._store_failed(exc)
            if plan.new_cookie_value is not None:
                plan.cookie = None  # nothing was saved under that id: leave the cookie alone
            return
        self._store_ok()

    async def _amerge_changes(self, plan: Plan, session_id: str) -> None:
        """Another request wrote first: apply this request's changed keys on top of it."""
        session = plan.session
        changes = self._changes(plan)
        new = await self.store.amerge(
            session_id,
            changes,
            user_id=session.user_id,
            set_user=session.pending().user_changed,
            ttl=plan.ttl,
        )
        if new is None:
            self._dropped(plan)
        else:
            self._merged()
