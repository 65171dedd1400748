"""The dict-like Session handed to request handlers (private module)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from renderkit.sessions._base import SessionRecord

__all__ = ["Session"]

_DELETED: Any = object()
Loader = Callable[[str], SessionRecord | None]


class Session(MutableMapping[str, Any]):
    """A session: a mutable mapping of JSON values, loaded on first access, saved if changed.

    Reading never marks it modified; assigning, deleting, ``pop``, ``update``, ``clear`` and
    ``regenerate`` do. Values must be JSON-serialisable, and nested objects are stored by
    value: after mutating a nested list or dict in place, assign it back (or set
    ``session.modified = True``) so the change is saved.
    """

    __slots__ = (
        "_changes",
        "_cleared",
        "_data",
        "_exists",
        "_expires_at",
        "_id",
        "_loader",
        "_regenerate",
        "_user_changed",
        "_user_id",
        "_version",
        "accessed",
        "cookie_stale",
        "modified",
    )

    def __init__(
        self,
        session_id: str | None = None,
        loader: Loader | None = None,
        *,
        cookie_stale: bool = False,
    ) -> None:
        self._id = session_id
        self._loader = loader
        self._data: dict[str, Any] | None = None if session_id is not None else {}
        self._exists = False
        self._version = 0
        self._user_id: str | None = None
        self._user_changed = False
        self._expires_at = 0.0
        self._changes: dict[str, Any] = {}
        self._cleared = False
        self._regenerate = False
        #: True once the handler read or wrote the session.
        self.accessed = False
        #: True when the session must be written back at the end of the request.
        self.modified = False
        #: True when the cookie was signed with an older key and should be re-signed.
        self.cookie_stale = cookie_stale

    # -- loading -----------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            record = None
            loader, self._loader = self._loader, None
            if loader is not None and self._id is not None:
                record = loader(self._id)
            self._apply(record)
            data = self._data
            assert data is not None
        return data

    def _apply(self, record: SessionRecord | None) -> None:
        """Fill the session from a loaded record (None: a fresh, empty session)."""
        if record is None:
            self._data = {}
            self._exists = False
        else:
            self._data = record.data
            self._exists = True
            self._version = record.version
            self._user_id = record.user_id
            self._expires_at = record.expires_at

    @property
    def loaded(self) -> bool:
        """True once the stored data has been read (or there was none to read)."""
        return self._data is not None

    # -- mapping -----------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return self._load()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.accessed = True
        self._load()[key] = value
        self._changes[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        self.accessed = True
        del self._load()[key]
        self._changes[key] = _DELETED
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return iter(list(self._load()))

    def __len__(self) -> int:
        self.accessed = True
        return len(self._load())

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return key in self._load()

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return self._load().get(key, default)

    def __repr__(self) -> str:
        shown = "not loaded" if self._data is None else repr(self._data)
        return f"<Session {shown}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Session):
            return self._load() == other._load()
        if isinstance(other, dict):
            return self._load() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def clear(self) -> None:
        """Empty the session; the stored record is deleted and the cookie removed ("log out").

        Values set after ``clear()`` start a new session under a new id.
        """
        self.accessed = True
        self._load()
        self._data = {}
        self._changes.clear()
        self._cleared = True
        self._user_id = None
        self.modified = True

    def regenerate(self) -> None:
        """Move the data to a new session id (call it at login, against session fixation).

        The old id stops working at the end of this request.
        """
        self.accessed = True
        self._load()
        self._regenerate = True
        self.modified = True

    # -- metadata ------------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The session id from the request's cookie when a stored session exists, else None."""
        self._load()
        return self._id if self._exists else None

    @property
    def is_new(self) -> bool:
        """True when no stored session backs this one (yet)."""
        self._load()
        return not self._exists

    @property
    def version(self) -> int:
        """The stored write version this request loaded (0 for a new session)."""
        self._load()
        return self._version

    @property
    def user_id(self) -> str | None:
        """The user this session belongs to, for ``store.delete_user_sessions(user_id)``."""
        self._load()
        return self._user_id

    @user_id.setter
    def user_id(self, value: str | int | None) -> None:
        self.accessed = True
        self._load()
        self._user_id = None if value is None else str(value)
        self._user_changed = True
        self.modified = True

    @property
    def expires_at(self) -> float | None:
        """When the stored session expires (unix seconds), or None for a new session."""
        self._load()
        return self._expires_at if self._exists else None

    # -- for the commit logic --------------------------------------------------------------------
    def _merged_onto(self, record: SessionRecord) -> dict[str, Any]:
        """This request's changes applied on top of a newer stored version."""
        if not self._changes:
            # Only ``modified = True`` was set (a nested value changed in place): the whole
            # dict this request holds is the change.
            return dict(self._load())
        data = dict(record.data)
        for key, value in self._changes.items():
            if value is _DELETED:
                data.pop(key, None)
            else:
                data[key] = value
        if not self._user_changed:
            self._user_id = record.user_id
        return data
