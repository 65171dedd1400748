# DO NOT EDIT: generated from src/renderkit/sessions/_store_async.py by tools/twins.py.
# Edit the async source and run `nox -s twins` (or `python tools/twins.py`).
"""The session-store API on top of the raw hooks (async source; ``_store_sync`` is generated)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from renderkit.sessions._base import DEFAULT_TTL, DELETED, Changes, SessionRecord, StoreCore

__all__ = ["StoreAPI"]


class StoreAPI(StoreCore):
    """``load``, ``save``, ``merge``, ``delete``, ``touch``, ``delete_user_sessions``."""

    def load(self, session_id: str) -> SessionRecord | None:
        """Return the live record for ``session_id``; None when missing, expired or corrupt."""
        return self._decoded(session_id, self._get(session_id))

    def save(
        self,
        session_id: str,
        data: Mapping[str, Any],
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
        blob = self._encode(session_id, data)
        new = self._put(session_id, blob, version, user_id, ttl)
        return self._saved(session_id, new, version)

    def merge(
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
        # Refuse what is not JSON (or too large) before touching the store.
        self._encode(session_id, {k: v for k, v in changes.items() if v is not DELETED})
        new = self._merge(session_id, changes, user_id, set_user, ttl)
        self._count("merges" if new is not None else "conflicts")
        return new

    def delete(self, session_id: str) -> bool:
        """Delete one session; True when it existed."""
        self._count("deletes")
        return self._remove(session_id)

    def touch(self, session_id: str, ttl: float = DEFAULT_TTL) -> bool:
        """Push the expiry of a live session to ``ttl`` seconds from now (rolling expiry)."""
        self._count("touches")
        return self._expire(session_id, ttl)

    def delete_user_sessions(self, user_id: str) -> int:
        """Delete every session carrying ``user_id`` ("log out everywhere"); return how many."""
        removed = self._remove_user(str(user_id))
        self._count("deletes", removed)
        return removed
