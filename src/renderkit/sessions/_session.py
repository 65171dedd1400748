"""The Session handed to request handlers: a ``dict`` with renderkit's extras (private module)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from renderkit.sessions._base import DELETED, SessionRecord

__all__ = ["Session"]

_MISSING: Any = object()
_T = TypeVar("_T")


class Pending(NamedTuple):
    """What a request asked of the session's commit (see :meth:`Session.pending`)."""

    cleared: bool
    regenerate: bool
    unavailable: bool
    user_changed: bool


class Session(dict[str, Any]):
    """A session: a real ``dict`` of JSON values, loaded before the handler runs, saved if changed.

    Everything that works on Starlette's ``request.session`` works here
    (``JSONResponse({"session": request.session})`` included). Reading never marks it
    modified; assigning, deleting, ``pop``, ``popitem``, ``setdefault``, ``update``,
    ``clear`` and ``regenerate`` do. Nested objects are stored by value: after mutating a
    nested list or dict in place, assign it back (or set ``session.modified = True``).

    Extras: :meth:`regenerate` (new id at login), :attr:`user_id` (for "log out
    everywhere"), :attr:`id`, :attr:`is_new`, :attr:`version`, :attr:`expires_at`.
    """

    __slots__ = (
        "_changes",
        "_cleared",
        "_exists",
        "_expires_at",
        "_id",
        "_regenerate",
        "_unavailable",
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
        record: SessionRecord | None = None,
        *,
        cookie_stale: bool = False,
    ) -> None:
        if record is not None:  # dict.update: Session.update would mark it modified
            dict.update(self, record.data)
        self._id = session_id
        self._exists = record is not None
        self._version = 0 if record is None else record.version
        self._user_id = None if record is None else record.user_id
        self._expires_at = 0.0 if record is None else record.expires_at
        self._user_changed = False
        self._changes: dict[str, Any] = {}
        self._cleared = False
        self._regenerate = False
        self._unavailable = False  # the store failed to load it (see EngineBase.plan)
        #: True once the handler read or wrote the session.
        self.accessed = False
        #: True when the session must be written back at the end of the request.
        self.modified = False
        #: True when the cookie was signed with an older key and should be re-signed.
        self.cookie_stale = cookie_stale

    # -- reads (mark the session accessed: the response then varies on Cookie) ---------------
    # dict's positional reads (``[key]``, ``in``, iteration, ``len``, keys/values/items) are
    # set below the class by one wrapper; ``get`` takes ``default=`` by keyword, so it is here.
    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().get(key, default)

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` copy of the data."""
        self.accessed = True
        return dict(super().items())

    def __repr__(self) -> str:
        return f"<Session {dict.__repr__(self)}>"

    # -- writes ---------------------------------------------------------------------------------
    def _changed(self, key: str, value: Any) -> None:
        self.accessed = True
        self._changes[key] = value
        self.modified = True

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed(key, DELETED)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        if super().__contains__(key):
            value = super().pop(key)
            self._changed(key, DELETED)
            return value
        self.accessed = True
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        self._changed(key, DELETED)
        return key, value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if not super().__contains__(key):
            self[key] = default
        return self[key]

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        pairs: Iterable[tuple[str, Any]]
        if isinstance(other, Mapping):
            pairs = [(k, other[k]) for k in other]
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118 (not a Mapping)
        else:
            pairs = other
        for key, value in pairs:
            self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        """Empty the session; the stored record is deleted and the cookie removed ("log out").

        Values set after ``clear()`` start a new session under a new id.
        """
        super().clear()
        self.accessed = True
        self._changes.clear()
        self._cleared = True
        self._user_id = None
        self.modified = True

    def regenerate(self) -> None:
        """Move the data to a new session id (call it at login, against session fixation).

        The old id stops working at the end of this request.
        """
        self.accessed = True
        self._regenerate = True
        self.modified = True

    # -- metadata ------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        """Always True: the stored data is read before the handler runs."""
        return True

    @property
    def id(self) -> str | None:
        """The session id from the request's cookie when a stored session exists, else None."""
        return self._id if self._exists else None

    @property
    def is_new(self) -> bool:
        """True when no stored session backs this one (yet)."""
        return not self._exists

    @property
    def version(self) -> int:
        """The stored write version this request loaded (0 for a new session)."""
        return self._version

    @property
    def user_id(self) -> str | None:
        """The user this session belongs to, for ``store.delete_user_sessions(user_id)``."""
        return self._user_id

    @user_id.setter
    def user_id(self, value: str | int | None) -> None:
        self.accessed = True
        self._user_id = None if value is None else str(value)
        self._user_changed = True
        self.modified = True

    @property
    def expires_at(self) -> float | None:
        """When the stored session expires (unix seconds), or None for a new session."""
        return self._expires_at if self._exists else None

    # -- for the commit logic --------------------------------------------------------------------
    @property
    def cookie_id(self) -> str | None:
        """The id the request's cookie named, even when the store had no session under it."""
        return self._id

    def pending(self) -> Pending:
        """What ``clear()``, ``regenerate()`` and ``user_id = ...`` asked of the commit, and
        whether the store could not read the session (then the commit saves nothing)."""
        return Pending(self._cleared, self._regenerate, self._unavailable, self._user_changed)

    def mark_unavailable(self) -> None:
        """The store could not read this session: it may still exist there, so keep it."""
        self._unavailable = True

    def data(self) -> dict[str, Any]:
        """The data as a plain dict (not marking the session accessed)."""
        return dict(dict.items(self))

    def changes(self) -> dict[str, Any]:
        """What this request changed, per key (:data:`DELETED` for a removed key).

        Only ``modified = True`` (a nested value changed in place): every key it holds.
        """
        return dict(self._changes) if self._changes else self.data()


def _marking_access(read: Callable[..., Any]) -> Callable[..., Any]:
    """``dict``'s method ``read``, marking the session accessed before it reads."""

    def method(self: Session, *args: Any) -> Any:
        self.accessed = True
        return read(self, *args)

    method.__name__ = read.__name__
    method.__qualname__ = f"Session.{read.__name__}"
    method.__doc__ = read.__doc__
    return method


for _read in (
    dict.__getitem__,
    dict.__contains__,
    dict.__iter__,
    dict.__len__,
    dict.keys,
    dict.values,
    dict.items,
):
    setattr(Session, _read.__name__, _marking_access(_read))
del _read
