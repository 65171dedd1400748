"""Cookie policy and the end-of-request commit, shared by the ASGI, WSGI and Flask adapters.

``SessionEngine.open`` turns the request's cookie values into a :class:`Session` (no I/O);
``SessionEngine.plan`` decides what the response must do (no I/O); ``commit`` and
``acommit`` carry the plan out against the store, merging on a version conflict.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from renderkit.errors import ConfigError, ConfigProblem
from renderkit.sessions._base import DEFAULT_TTL, SessionConflict, SessionRecord, SessionStore
from renderkit.sessions._session import Session
from renderkit.sessions._signing import SecretKey, Signer, new_session_id

__all__ = ["CookieOptions", "Plan", "SessionEngine", "cookie_values"]

logger = logging.getLogger("renderkit.sessions")

SameSite = Literal["lax", "strict", "none"]
OnConflict = Literal["merge", "raise"]
SECRET_VAR = "SESSION_SECRET"
_MAX_MERGES = 3
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


@dataclass(frozen=True, slots=True)
class CookieOptions:
    """How the session cookie is written."""

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    same_site: SameSite = "lax"
    secure: bool = False
    max_age: int | None = DEFAULT_TTL

    def header(self, value: str, max_age: int | None) -> bytes:
        parts = [f"{self.name}={value}", f"Path={self.path}"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        parts.append("HttpOnly")
        parts.append(f"SameSite={self.same_site.capitalize()}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts).encode("latin-1")

    def deletion(self) -> bytes:
        parts = [f"{self.name}=", f"Path={self.path}", "Max-Age=0", f"Expires={_EPOCH}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        parts.append("HttpOnly")
        parts.append(f"SameSite={self.same_site.capitalize()}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts).encode("latin-1")


@dataclass(slots=True)
class Plan:
    """What the end of one request must do to the store and the cookie."""

    session: Session
    delete_id: str | None = None
    save_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    ttl: float = DEFAULT_TTL
    touch_id: str | None = None
    cookie: bytes | None = None
    new_cookie_value: str | None = None


def cookie_values(raw_headers: Iterable[str], name: str) -> list[str]:
    """Every value of cookie ``name`` in the Cookie header(s), in order (duplicates kept)."""
    values: list[str] = []
    prefix = name + "="
    for raw in raw_headers:
        if prefix not in raw:
            continue
        for part in raw.split(";"):
            part = part.strip()
            if part.startswith(prefix):
                values.append(part[len(prefix) :].strip('"'))
    return values


def _default_secure(environ: Mapping[str, str] | None) -> bool:
    """Secure cookies when HTTPS is served: ``FORCE_HTTPS`` when set, else production only.

    The same rule as the HTTPS redirect (SPEC principle 7), so an app that sets
    ``FORCE_HTTPS=false`` in production (plain HTTP behind a private network) still gets its
    session cookie back, and ``FORCE_HTTPS=true`` in development marks it Secure.
    """
    from renderkit.config import environment, parse_bool

    forced = (os.environ if environ is None else environ).get("FORCE_HTTPS", "").strip()
    if forced:
        try:
            return parse_bool(forced)
        except ValueError as exc:
            raise ConfigError(
                ConfigProblem("FORCE_HTTPS", f"{exc}; use true or false", "environment")
            ) from None
    return environment(environ) == "production"


class SessionEngine:
    """Everything the adapters share: signer, cookie options, TTL policy, commit with merge."""

    def __init__(
        self,
        store: SessionStore,
        *,
        secret_key: SecretKey | Sequence[SecretKey] | None,
        cookie_name: str = "session",
        max_age: int | None = DEFAULT_TTL,
        ttl: float | None = None,
        path: str = "/",
        domain: str | None = None,
        same_site: str = "lax",
        https_only: bool | None = None,
        rolling: bool = False,
        on_conflict: OnConflict = "merge",
        environ: Mapping[str, str] | None = None,
        option_prefix: str = "SessionMiddleware",
    ) -> None:
        problems: list[ConfigProblem] = []
        if secret_key is None:
            secret_key = (os.environ if environ is None else environ).get(SECRET_VAR) or None
        if secret_key is None:
            raise ConfigError(
                ConfigProblem(
                    SECRET_VAR,
                    f"{option_prefix} needs secret_key=... or the {SECRET_VAR} variable: a "
                    "long random string (generate one with `renderkit secret`)",
                )
            )
        same = str(same_site).lower()
        if same not in ("lax", "strict", "none"):
            problems.append(
                ConfigProblem(
                    f"{option_prefix}(same_site=)",
                    f"must be 'lax', 'strict' or 'none', got {same_site!r}",
                    "code",
                )
            )
        if not cookie_name or any(c in cookie_name for c in ' ;,="\t\r\n'):
            problems.append(
                ConfigProblem(
                    f"{option_prefix}(session_cookie=)",
                    f"{cookie_name!r} is not a valid cookie name (no spaces, ';', ',', '=')",
                    "code",
                )
            )
        if on_conflict not in ("merge", "raise"):
            problems.append(
                ConfigProblem(
                    f"{option_prefix}(on_conflict=)",
                    f"must be 'merge' or 'raise', got {on_conflict!r}",
                    "code",
                )
            )
        if max_age is not None and max_age <= 0:
            problems.append(
                ConfigProblem(
                    f"{option_prefix}(max_age=)",
                    f"must be a positive number of seconds or None, got {max_age}",
                    "code",
                )
            )
        if ttl is not None and ttl <= 0:
            problems.append(
                ConfigProblem(
                    f"{option_prefix}(ttl=)",
                    f"must be a positive number of seconds, got {ttl}",
                    "code",
                )
            )
        if problems:
            raise ConfigError(problems)
        self.signer = Signer(secret_key, option=f"{option_prefix}(secret_key=)")
        secure = _default_secure(environ) if https_only is None else bool(https_only)
        if same == "none" and not secure:
            logger.warning(
                "%s: same_site='none' without Secure: browsers reject such cookies; "
                "set https_only=True",
                option_prefix,
            )
        self.store = store
        self.cookie = CookieOptions(
            name=cookie_name,
            path=path,
            domain=domain,
            same_site=same,  # type: ignore[arg-type]
            secure=secure,
            max_age=None if max_age is None else int(max_age),
        )
        # Record lifetime: ttl, else the cookie's max_age, else the 7-day default.
        self.ttl = float(ttl if ttl is not None else (max_age or DEFAULT_TTL))
        self.rolling = rolling
        self.on_conflict = on_conflict
        self._name_bytes = cookie_name.encode("latin-1") + b"="
        self._state_lock = threading.Lock()
        self._failing = False
        self._counters = {"store_errors": 0, "merged": 0, "dropped_stale": 0}

    # -- request start ---------------------------------------------------------------------
    def verified(self, values: Sequence[str]) -> tuple[str, bool] | None:
        """The first cookie value whose signature verifies: ``(id, signed_with_current_key)``."""
        for value in values:
            found = self.signer.unsign(value)
            if found is not None:
                return found
        return None

    def open(
        self, values: Sequence[str], *, lazy: bool, factory: type[Session] = Session
    ) -> Session:
        """A Session for the request's cookie values; with ``lazy`` it loads on first access."""
        found = self.verified(values) if values else None
        if found is None:
            return factory()
        session_id, current = found
        loader = self._safe_load if lazy else None
        return factory(session_id, loader, cookie_stale=not current)

    def _safe_load(self, session_id: str) -> SessionRecord | None:
        try:
            record = self.store.load(session_id)
        except self.store.errors as exc:
            self._store_failed(exc)
            return None
        self._store_ok()
        return record

    async def apreload(self, session: Session) -> None:
        """Load ``session`` with the store's async method (for stores doing network I/O)."""
        if session.loaded or session._id is None:
            return
        try:
            record = await self.store.aload(session._id)
        except self.store.errors as exc:
            self._store_failed(exc)
            record = None
        else:
            self._store_ok()
        session._loader = None
        session._apply(record)

    def _store_failed(self, exc: BaseException) -> None:
        with self._state_lock:
            self._counters["store_errors"] += 1
            first = not self._failing
            self._failing = True
        if first:
            logger.warning(
                "session store %s failed (%s: %s); requests continue with empty, unsaved "
                "sessions until it answers again (use FallbackStore to keep serving sessions)",
                self.store.name,
                type(exc).__name__,
                exc,
            )

    def _store_ok(self) -> None:
        if self._failing:
            with self._state_lock:
                was, self._failing = self._failing, False
            if was:
                logger.warning("session store %s answers again", self.store.name)

    # -- request end -------------------------------------------------------------------------
    def _set_cookie(self, plan: Plan, session_id: str) -> None:
        value = self.signer.sign(session_id)
        plan.new_cookie_value = value
        plan.cookie = self.cookie.header(value, self.cookie.max_age)

    def plan(self, session: Session, had_cookie: bool) -> Plan | None:
        """Decide what to write; None when the response needs nothing (the common case)."""
        if not session.modified:
            if session._id is None or not session.loaded:
                if session.cookie_stale and session._id is not None:
                    # Re-sign with the current key without touching the store.
                    plan = Plan(session)
                    self._set_cookie(plan, session._id)
                    return plan
                return None
            if not session._exists:
                return None
            plan = Plan(session)
            if self.rolling and self._touch_due(session):
                plan.touch_id = session._id
                plan.ttl = self.ttl
                self._set_cookie(plan, session._id)
            elif session.cookie_stale:
                self._set_cookie(plan, session._id)
            else:
                return None
            return plan

        data = session._load()
        old_id = session._id if session._exists else None
        plan = Plan(session, data=data, ttl=self.ttl)
        replace = session._cleared or session._regenerate
        if replace:
            plan.delete_id = old_id
            if data:
                plan.save_id = new_session_id()
                self._set_cookie(plan, plan.save_id)
            elif had_cookie:
                plan.cookie = self.cookie.deletion()
            return plan
        if not data:
            if old_id is not None:
                plan.delete_id = old_id
                plan.cookie = self.cookie.deletion()
                return plan
            return None
        if old_id is None:
            plan.save_id = new_session_id()
            self._set_cookie(plan, plan.save_id)
            return plan
        plan.save_id = old_id
        plan.version = session._version
        if self.rolling:
            self._set_cookie(plan, old_id)
        else:
            # Absolute expiry: a write does not extend the session's life.
            plan.ttl = max(1.0, session._expires_at - time.time())
            if session.cookie_stale:
                self._set_cookie(plan, old_id)
        return plan

    def _touch_due(self, session: Session) -> bool:
        # Refresh at most about once per 1% of the TTL (7 days: every ~100 minutes).
        remaining = session._expires_at - time.time()
        return remaining < self.ttl * 0.99

    def _on_conflict(self, plan: Plan, record: SessionRecord | None, exc: SessionConflict) -> bool:
        """Prepare a retry after a conflict; False when the write must be dropped."""
        if self.on_conflict == "raise":
            raise exc
        if record is None:
            # Another request ended the session (logout, "log out everywhere", expiry): a
            # stale request must not bring it back.
            with self._state_lock:
                self._counters["dropped_stale"] += 1
            logger.info("session write dropped: the session was ended by another request")
            plan.cookie = self.cookie.deletion()
            return False
        plan.data = plan.session._merged_onto(record)
        plan.version = record.version
        with self._state_lock:
            self._counters["merged"] += 1
        return True

    def commit(self, plan: Plan) -> None:
        """Carry out ``plan`` with the store's sync methods (WSGI, Flask)."""
        store = self.store
        session = plan.session
        try:
            if plan.touch_id is not None:
                store.touch(plan.touch_id, plan.ttl)
            if plan.save_id is not None:
                for _ in range(_MAX_MERGES):
                    try:
                        store.save(
                            plan.save_id,
                            plan.data,
                            version=plan.version,
                            user_id=session._user_id,
                            ttl=plan.ttl,
                        )
                        break
                    except SessionConflict as exc:
                        if not self._on_conflict(plan, store.load(plan.save_id), exc):
                            break
                else:
                    raise SessionConflict(
                        f"session kept changing under this request ({_MAX_MERGES} merges); "
                        "the write was not applied"
                    )
            if plan.delete_id is not None:
                store.delete(plan.delete_id)
        except store.errors as exc:
            self._store_failed(exc)
            if plan.new_cookie_value is not None:
                plan.cookie = None  # nothing was saved under that id: leave the cookie alone
            return
        self._store_ok()

    async def acommit(self, plan: Plan) -> None:
        """Carry out ``plan`` with the store's async methods (ASGI)."""
        store = self.store
        session = plan.session
        try:
            if plan.touch_id is not None:
                await store.atouch(plan.touch_id, plan.ttl)
            if plan.save_id is not None:
                for _ in range(_MAX_MERGES):
                    try:
                        await store.asave(
                            plan.save_id,
                            plan.data,
                            version=plan.version,
                            user_id=session._user_id,
                            ttl=plan.ttl,
                        )
                        break
                    except SessionConflict as exc:
                        if not self._on_conflict(plan, await store.aload(plan.save_id), exc):
                            break
                else:
                    raise SessionConflict(
                        f"session kept changing under this request ({_MAX_MERGES} merges); "
                        "the write was not applied"
                    )
            if plan.delete_id is not None:
                await store.adelete(plan.delete_id)
        except store.errors as exc:
            self._store_failed(exc)
            if plan.new_cookie_value is not None:
                plan.cookie = None  # nothing was saved under that id: leave the cookie alone
            return
        self._store_ok()

    def stats(self) -> dict[str, Any]:
        """The store's stats plus the engine's (store_errors, merged, dropped_stale)."""
        stats = self.store.stats()
        with self._state_lock:
            stats.update(self._counters)
        return stats
