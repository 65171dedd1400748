# twins: source
# twins: rename aload=load asave=save amerge=merge adelete=delete atouch=touch
# twins: rename adelete_user_sessions=delete_user_sessions _aget=_get _aput=_put _amerge=_merge
# twins: rename _aremove=_remove _aexpire=_expire _aremove_user=_remove_user
# twins: rename _asave_op=_save_op _amerge_op=_merge_op
"""The session-store API on top of the raw hooks (async source; ``_store_sync`` is generated)."""

from __future__ import annotations

from renderkit.sessions._base import (
    DEFAULT_TTL,
    DELETED,
    Changes,
    SessionData,
    SessionRecord,
    StoreCore,
)

__all__ = ["AsyncStoreAPI"]


class AsyncStoreAPI(StoreCore):
    """``aload``, ``asave``, ``amerge``, ``adelete``, ``atouch``, ``adelete_user_sessions``."""

    async def aload(self, session_id: str) -> SessionRecord | None:
        """Return the live record for ``session_id``; None when missing, expired or corrupt."""
        return self._decoded(session_id, await self._aget(session_id))

    async def asave(
        self,
        session_id: str,
        data: SessionData,
        *,
        version: int = 0,
        user_id: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> int:
        """Write ``data`` if the stored version is still ``version`` (0: a new session).

        Returns the new version. Raises :class:`SessionConflict` when another write got there
        first (or the session was deleted meanwhile), and :class:`SessionError` when the data
        is not JSON-serialisable or larger than ``max_size``.
        """
        return await self._asave_op(session_id, data, version, user_id, ttl)

    async def _asave_op(
        self, session_id: str, data: SessionData, version: int, user_id: str | None, ttl: float
    ) -> int:
        """The work behind :meth:`asave` (one signature for every store): encode, then a
        version-checked ``_aput``. A store that routes whole operations elsewhere
        (FallbackStore) overrides this, not the public method."""
        blob = self._encode(session_id, data)
        new = await self._aput(session_id, blob, version, user_id, ttl)
        return self._saved(session_id, new, version)

    async def amerge(
        self,
        session_id: str,
        changes: Changes,
        *,
        user_id: str | None = None,
        set_user: bool = False,
        ttl: float = DEFAULT_TTL,
    ) -> int | None:
        """Apply per-key ``changes`` on top of whatever is stored now, atomically.

        ``changes`` maps a key to its new value, or to :data:`DELETED` to remove it; keys it
        does not name keep the stored value (another request's write survives). The owner is
        replaced only with ``set_user``. Returns the new version, or None when no live
        session exists (ended or expired: a merge never brings one back).
        """
        return await self._amerge_op(session_id, changes, user_id, set_user, ttl)

    async def _amerge_op(
        self, session_id: str, changes: Changes, user_id: str | None, set_user: bool, ttl: float
    ) -> int | None:
        """The work behind :meth:`amerge` (overridden like :meth:`_asave_op`): refuse what
        cannot be stored, then the raw ``_amerge`` hook."""
        # Refuse what is not JSON (or too large) before touching the store.
        self._encode(session_id, {k: v for k, v in changes.items() if v is not DELETED})
        new = await self._amerge(session_id, changes, user_id, set_user, ttl)
        self._count("merges" if new is not None else "conflicts")
        return new

    async def adelete(self, session_id: str) -> bool:
        """Delete one session; True when it existed."""
        self._count("deletes")
        return await self._aremove(session_id)

    async def atouch(self, session_id: str, ttl: float = DEFAULT_TTL) -> bool:
        """Push the expiry of a live session to ``ttl`` seconds from now (rolling expiry)."""
        self._count("touches")
        return await self._aexpire(session_id, ttl)

    async def adelete_user_sessions(self, user_id: str) -> int:
        """Delete every session carrying ``user_id`` ("log out everywhere"); return how many."""
        removed = await self._aremove_user(str(user_id))
        self._count("deletes", removed)
        return removed
