"""Cookie policy and the end-of-request plan, shared by the ASGI, WSGI and Flask adapters.

``EngineBase.plan`` decides what the response must do (no I/O); the I/O (``open``/``aopen``
at request start, ``commit``/``acommit`` at its end) is in ``_engine_async.py``, the sync side
generated from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from renderkit.errors import ConfigError, ConfigProblem
from renderkit.sessions._base import DEFAULT_TTL, SessionRecord
from renderkit.sessions._session import Session
from renderkit.sessions._signing import SecretKey, Signer, new_session_id, plain_keys
from renderkit.sessions._store import SessionStore

__all__ = ["CookieOptions", "EngineBase", "Plan", "cookie_values", "vary_on_cookie"]

logger = logging.getLogger("renderkit.sessions")

SameSite = Literal["lax", "strict", "none"]
OnConflict = Literal["merge", "raise"]
SECRET_VAR = "SESSION_SECRET"
MIN_SECRET_BYTES = 32
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
_BAD_ATTRIBUTE = frozenset(';,\r\n\x00"')


@dataclass(frozen=True, slots=True)
class CookieOptions:
    """How the session cookie is written (attribute spelling as Starlette writes it)."""

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    same_site: SameSite = "lax"
    secure: bool = False
    max_age: int | None = DEFAULT_TTL
    partitioned: bool = False

    def _flags(self) -> str:
        flags = f"; httponly; samesite={self.same_site}"
        if self.secure:
            flags += "; secure"
        if self.domain:
            flags += f"; domain={self.domain}"
        if self.partitioned:
            flags += "; partitioned"
        return flags

    def header(self, value: str, max_age: int | None) -> bytes:
        age = "" if max_age is None else f"; Max-Age={max_age}"
        return f"{self.name}={value}; path={self.path}{age}{self._flags()}".encode("latin-1")

    def deletion(self) -> bytes:
        text = f"{self.name}=; path={self.path}; Max-Age=0; expires={_EPOCH}{self._flags()}"
        return text.encode("latin-1")


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


def vary_on_cookie(headers: list[tuple[Any, Any]], *, text: bool) -> None:
    """Add ``Vary: Cookie`` in place (a response that depends on the session is not shared).

    ``text``: WSGI's ``str`` headers; else ASGI's ``bytes`` ones.
    """
    vary, cookie, sep, star = (
        ("vary", "Cookie", ", ", "*") if text else (b"vary", b"Cookie", b", ", b"*")
    )
    for index, (key, current) in enumerate(headers):
        if key.lower() == vary:
            if cookie.lower() not in current.lower() and current.strip() != star:
                headers[index] = (key, current + sep + cookie)
            return
    headers.append(("Vary" if text else vary, cookie))


def _bad(value: str | None) -> bool:
    return value is not None and any(c in _BAD_ATTRIBUTE or ord(c) < 0x20 for c in value)


def _secure(force_https: bool | None, env_name: str) -> bool:
    """Secure cookies when HTTPS is served: ``FORCE_HTTPS`` when set, else production only.

    The same rule as the HTTPS redirect (SPEC principle 7), so an app that sets
    ``FORCE_HTTPS=false`` in production (plain HTTP behind a private network) still gets its
    session cookie back, and ``FORCE_HTTPS=true`` in development marks it Secure.
    """
    return env_name == "production" if force_https is None else force_https


def _problems(
    prefix: str,
    *,
    same_site: str,
    cookie_name: str,
    path: str,
    domain: str | None,
    on_conflict: str,
    ttl: float | None,
) -> list[ConfigProblem]:
    """Every bad option at once, each named as the caller wrote it."""
    checks = [
        ("same_site", same_site.lower() not in ("lax", "strict", "none"),
         f"must be 'lax', 'strict' or 'none', got {same_site!r}"),
        ("session_cookie", not cookie_name or any(c in cookie_name for c in ' ;,="\t\r\n'),
         f"{cookie_name!r} is not a valid cookie name (no spaces, ';', ',', '=')"),
        ("path", _bad(path) or not path.startswith("/"),
         f"{path!r} is not a cookie path: it must start with '/' and hold no ';', ',', quote, "
         "CR/LF or control character"),
        ("domain", _bad(domain) or (domain is not None and " " in domain),
         f"{domain!r} is not a cookie domain: no ';', ',', spaces, quotes, CR/LF or control "
         "characters"),
        ("on_conflict", on_conflict not in ("merge", "raise"),
         f"must be 'merge' or 'raise', got {on_conflict!r}"),
        ("ttl", ttl is not None and ttl <= 0, f"must be a positive number of seconds, got {ttl}"),
    ]  # fmt: skip
    return [ConfigProblem(f"{prefix}({opt}=)", msg, "code") for opt, bad, msg in checks if bad]


def _secret_key(
    given: SecretKey | Sequence[SecretKey] | None, from_env: str | None, option_prefix: str
) -> tuple[SecretKey | Sequence[SecretKey], str]:
    """The signing key(s) and where they came from: the option, else SESSION_SECRET."""
    if given is not None:
        return given, f"{option_prefix}(secret_key=)"
    if from_env is None:
        raise ConfigError(
            ConfigProblem(
                SECRET_VAR,
                f"{option_prefix} needs secret_key=... or the {SECRET_VAR} variable: a "
                "long random string (generate one with `renderkit secret`)",
            )
        )
    return from_env, SECRET_VAR


def _cookie(
    option_prefix: str,
    name: str,
    path: str,
    domain: str | None,
    same_site: str,
    secure: bool,
    max_age: int | None,
    partitioned: bool = False,
) -> CookieOptions:
    """The cookie's attributes; a warning when SameSite=None or Partitioned (CHIPS) comes
    without Secure, which browsers require for both."""
    same = str(same_site).lower()
    for asked, wanted in ((same == "none", "same_site='none'"), (partitioned, "partitioned=True")):
        if asked and not secure:
            logger.warning(
                "%s: %s without Secure: browsers reject such cookies; set https_only=True",
                option_prefix,
                wanted,
            )
    # max_age <= 0 (Starlette accepts -1): the cookie and the record expire at once.
    age = None if max_age is None else int(max_age)
    return CookieOptions(name, path, domain, same, bool(secure), age, bool(partitioned))  # type: ignore[arg-type]


def _short_secrets(
    keys: SecretKey | Sequence[SecretKey], where: str, env_name: str
) -> ConfigProblem | None:
    """In production, a signing key under 32 bytes is refused (it can be brute-forced)."""
    if env_name != "production":
        return None
    listed = plain_keys(keys)
    for index, key in enumerate(listed):
        raw = key.encode("utf-8") if isinstance(key, str) else key
        if isinstance(raw, bytes) and len(raw) < MIN_SECRET_BYTES:
            number = f"key #{index + 1} " if len(listed) > 1 else ""
            return ConfigProblem(
                where,
                f"{number}is {len(raw)} bytes; production needs at least {MIN_SECRET_BYTES} "
                "random bytes (run `renderkit secret` and set it)",
                "environment" if where == SECRET_VAR else "code",
            )
    return None


class EngineBase:
    """Everything the adapters share: signer, cookie options, TTL policy, the plan."""

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
        partitioned: bool = False,
        rolling: bool = False,
        on_conflict: OnConflict = "merge",
        environ: Mapping[str, str] | None = None,
        option_prefix: str = "SessionMiddleware",
        values: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None,
    ) -> None:
        from renderkit.config import environment
        from renderkit.sessions._env import CookieSettings

        settings = CookieSettings.load(environ)
        env_name = environment(environ)
        secret_key, where = _secret_key(secret_key, settings.secret, option_prefix)
        problems = _problems(
            option_prefix,
            same_site=str(same_site),
            cookie_name=cookie_name,
            path=path,
            domain=domain,
            on_conflict=on_conflict,
            ttl=ttl,
        )
        short = _short_secrets(secret_key, where, env_name)
        if short is not None:
            problems.append(short)
        if problems:
            raise ConfigError(problems)
        self.signer = Signer(secret_key, option=where)
        secure = _secure(settings.force_https, env_name) if https_only is None else https_only
        self.store = store
        self.cookie = _cookie(
            option_prefix, cookie_name, path, domain, same_site, secure, max_age, partitioned
        )
        age = self.cookie.max_age
        # Record lifetime: ttl, else the cookie's max_age, else the 7-day default.
        if ttl is not None:
            self.ttl = float(ttl)
        else:
            self.ttl = DEFAULT_TTL if age is None else max(0.001, float(age))
        self.rolling = rolling
        self.on_conflict = on_conflict
        self._dump: Callable[[Any], Any] | None = None if values is None else values[0]
        self._undump: Callable[[Any], Any] | None = None if values is None else values[1]
        self._state_lock = threading.Lock()
        self._failing = False
        self._counters = {"store_errors": 0, "merged": 0, "dropped_stale": 0, "unsaved": 0}

    # -- request start ---------------------------------------------------------------------
    def verified(self, values: Sequence[str]) -> tuple[str, bool] | None:
        """The first cookie value whose signature verifies: ``(id, signed_with_current_key)``."""
        for value in values:
            found = self.signer.unsign(value)
            if found is not None:
                return found
        return None

    def _session(
        self,
        found: tuple[str, bool],
        record: SessionRecord | None,
        factory: type[Session],
        *,
        unavailable: bool = False,
    ) -> Session:
        if record is not None and self._undump is not None:
            record.data = {k: self._undump(v) for k, v in record.data.items()}
        session = factory(found[0], record, cookie_stale=not found[1])
        if unavailable or (record is not None and record.tentative):
            session.mark_unavailable()
        return session

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

    def _stored(self, data: dict[str, Any]) -> dict[str, Any]:
        dump = self._dump
        return data if dump is None else {k: dump(v) for k, v in data.items()}

    def plan(self, session: Session, had_cookie: bool) -> Plan | None:
        """Decide what to write; None when the response needs nothing (the common case)."""
        if not session.modified:
            return self._unmodified(session)
        data = self._stored(session.data())
        old_id = session.id
        pending = session.pending()
        plan = Plan(session, data=data, ttl=self.ttl)
        if pending.cleared or pending.regenerate:
            # The cookie's id even when its record could not be read (the store was away):
            # its older copy must die with it (a log-out or a log-in during an outage).
            plan.delete_id = session.cookie_id
            if data:
                plan.save_id = new_session_id()
                self._set_cookie(plan, plan.save_id)
            elif had_cookie:
                plan.cookie = self.cookie.deletion()
            return plan
        if pending.unavailable:
            # The store could not be read: the session may still exist there. Saving this
            # request's data under a new id would replace the user's cookie and lose it for
            # good; the write is skipped instead (a log-out or regenerate() above still runs).
            with self._state_lock:
                self._counters["unsaved"] += 1
            return None
        if not data:
            if old_id is None:
                return None
            plan.delete_id = old_id
            plan.cookie = self.cookie.deletion()
            return plan
        if old_id is None:
            plan.save_id = new_session_id()
            self._set_cookie(plan, plan.save_id)
            return plan
        plan.save_id = old_id
        plan.version = session.version
        if self.rolling:
            self._set_cookie(plan, old_id)
        else:
            # Absolute expiry: a write does not extend the session's life.
            plan.ttl = max(1.0, (session.expires_at or 0.0) - time.time())
            if session.cookie_stale:
                self._set_cookie(plan, old_id)
        return plan

    def _unmodified(self, session: Session) -> Plan | None:
        session_id = session.cookie_id
        if session_id is None or session.is_new:
            return None
        plan = Plan(session)
        if self.rolling and self._touch_due(session):
            plan.touch_id = session_id
            plan.ttl = self.ttl
            self._set_cookie(plan, session_id)
        elif session.cookie_stale:
            self._set_cookie(plan, session_id)  # re-sign with the current key
        else:
            return None
        return plan

    def _touch_due(self, session: Session) -> bool:
        # Refresh at most about once per 1% of the TTL (7 days: every ~100 minutes).
        remaining = (session.expires_at or 0.0) - time.time()
        return remaining < self.ttl * 0.99

    def _changes(self, plan: Plan) -> dict[str, Any]:
        """The per-key changes of ``plan`` for a merge (a nested in-place change: all keys)."""
        return self._stored(plan.session.changes())

    def _dropped(self, plan: Plan) -> None:
        """Another request ended the session (log-out, expiry): this write must not revive it."""
        with self._state_lock:
            self._counters["dropped_stale"] += 1
        logger.info("session write dropped: the session was ended by another request")
        plan.cookie = self.cookie.deletion()

    def _merged(self) -> None:
        with self._state_lock:
            self._counters["merged"] += 1

    def stats(self) -> dict[str, Any]:
        """The store's stats plus the engine's (store_errors, merged, dropped_stale)."""
        stats = self.store.stats()
        with self._state_lock:
            stats.update(self._counters)
        return stats
