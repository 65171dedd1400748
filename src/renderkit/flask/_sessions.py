"""Flask: a ``SessionInterface`` backed by renderkit's session stores and cookie format."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack, cast

from renderkit._optional import require
from renderkit.sessions._base import DEFAULT_TTL
from renderkit.sessions._core import cookie_values
from renderkit.sessions._engine import SessionEngine
from renderkit.sessions._env import CookieSettings
from renderkit.sessions._middleware import EngineOptions, engine_options
from renderkit.sessions._session import Session
from renderkit.sessions._signing import SecretKey
from renderkit.sessions._store import SessionStore

if TYPE_CHECKING:
    from flask import Flask, Request, Response
    from flask.sessions import SessionInterface as _FlaskInterface
    from flask.sessions import SessionMixin
else:
    # Flask stays out of import time; its defaults are reached through __getattr__ below.
    # For type checkers the class is a SessionInterface, so `app.session_interface = ...`
    # type-checks in the app.
    _FlaskInterface = object

__all__ = ["EXTRAS_KEY", "RenderKitSessionInterface", "wire_sessions"]

EXTRAS_KEY = "sessions"


def _session_class() -> type[Session]:
    sessions_mod = require("flask.sessions", extra="flask", feature="RenderKitSessionInterface")

    class FlaskSession(Session, sessions_mod.SessionMixin):  # type: ignore[misc,name-defined]
        """A renderkit Session that Flask accepts as ``flask.session``."""

        had_cookie = False

    return FlaskSession


def _flask_values() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Flask's tagged-JSON conversions per value: datetime, UUID, bytes, tuples, Markup."""
    tag_mod = require("flask.json.tag", extra="flask", feature="RenderKitSessionInterface")
    serializer = tag_mod.TaggedJSONSerializer()

    def untag(value: Any) -> Any:
        # What json.loads(object_hook=untag) does in Flask: innermost objects first.
        if isinstance(value, dict):
            return serializer.untag({k: untag(v) for k, v in value.items()})
        if isinstance(value, list):
            return [untag(v) for v in value]
        return value

    return serializer.tag, untag


class RenderKitSessionInterface(_FlaskInterface):
    """Server-side Flask sessions: ``app.session_interface = RenderKitSessionInterface(store)``.

    Same stores, cookie format and options as :class:`renderkit.sessions.SessionMiddleware`,
    so a Flask app and an ASGI app sharing ``secret_key`` and a Redis/Postgres store share
    their sessions. ``secret_key`` defaults to SESSION_SECRET, then ``app.secret_key``; the
    cookie name, domain, path, SameSite and Partitioned default to Flask's ``SESSION_COOKIE_*``
    settings.
    ``https_only`` None sets ``Secure`` when ``SESSION_COOKIE_SECURE`` is true or in
    production. Values round-trip like Flask's own session (its tagged JSON: datetime, UUID,
    bytes, tuples, Markup). Loads when the request carries a valid cookie; saves only when
    modified.
    """

    def __init__(
        self,
        store: SessionStore | None = None,
        *,
        secret_key: SecretKey | Sequence[SecretKey] | None = None,
        session_cookie: str | None = None,
        max_age: int | None = DEFAULT_TTL,
        path: str | None = None,
        same_site: str | None = None,
        https_only: bool | None = None,
        domain: str | None = None,
        partitioned: bool | None = None,
        **options: Unpack[EngineOptions],
    ) -> None:
        sessions_mod = require("flask.sessions", extra="flask", feature="RenderKitSessionInterface")
        from renderkit.sessions._memory import MemoryStore

        self._base = sessions_mod.SessionInterface
        self.store = store if store is not None else MemoryStore()
        self.options: dict[str, Any] = {
            "secret_key": secret_key,
            "session_cookie": session_cookie,
            "max_age": max_age,
            "path": path,
            "same_site": same_site,
            "https_only": https_only,
            "domain": domain,
            "partitioned": partitioned,
        }
        # Passed to each app's engine as given (the engine's defaults apply).
        self._engine_options = engine_options(type(self).__name__, options)
        self.environ = options.get("environ")
        self.session_class = _session_class()
        self._values = _flask_values()
        self._engines: dict[int, SessionEngine] = {}
        # Flask checks these on the interface.
        self.null_session_class = sessions_mod.NullSession
        self.pickle_based = False

    def engine(self, app: Flask) -> SessionEngine:
        """The engine for ``app`` (built on first use from the options and app.config)."""
        engine = self._engines.get(id(app))
        if engine is None:
            o = self.options
            cfg = app.config
            secret = o["secret_key"]
            if secret is None:
                secret = CookieSettings.load(self.environ).secret or app.secret_key
            https_only = o["https_only"]
            if https_only is None and cfg.get("SESSION_COOKIE_SECURE"):
                https_only = True
            engine = SessionEngine(
                self.store,
                secret_key=secret,
                cookie_name=o["session_cookie"] or cfg.get("SESSION_COOKIE_NAME") or "session",
                max_age=o["max_age"],
                path=o["path"] or cfg.get("SESSION_COOKIE_PATH") or "/",
                domain=o["domain"] or cfg.get("SESSION_COOKIE_DOMAIN") or None,
                same_site=o["same_site"] or cfg.get("SESSION_COOKIE_SAMESITE") or "lax",
                https_only=https_only,
                partitioned=bool(
                    cfg.get("SESSION_COOKIE_PARTITIONED", False)
                    if o["partitioned"] is None
                    else o["partitioned"]
                ),
                option_prefix="RenderKitSessionInterface",
                values=self._values,
                **self._engine_options,
            )
            self._engines[id(app)] = engine
        return engine

    # -- the SessionInterface protocol ----------------------------------------------------
    def make_null_session(self, app: Flask) -> Any:
        return self.null_session_class()

    def is_null_session(self, obj: object) -> bool:
        return isinstance(obj, self.null_session_class)

    def should_set_cookie(self, app: Flask, session: Any) -> bool:
        return bool(session.modified)

    def open_session(self, app: Flask, request: Request) -> SessionMixin:
        engine = self.engine(app)
        raw = request.headers.get("Cookie")
        values = cookie_values([raw], engine.cookie.name) if raw else []
        session = engine.open(values, factory=self.session_class)
        session.had_cookie = bool(values)  # type: ignore[attr-defined]
        return cast("SessionMixin", session)  # a FlaskSession: Session and SessionMixin

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if not isinstance(session, Session):
            return
        engine = self.engine(app)
        if session.accessed:
            response.vary.add("Cookie")
        cookie = engine.finish(session, bool(getattr(session, "had_cookie", False)))
        if cookie is not None:
            response.headers.add("Set-Cookie", cookie.decode("latin-1"))

    def __getattr__(self, name: str) -> Any:
        # Anything else Flask (or an extension) asks of a SessionInterface: Flask's defaults.
        attr = getattr(self._base, name)
        if callable(attr):
            return attr.__get__(self, type(self))
        return attr

    def stats(self) -> dict[str, Any]:
        """The store's stats plus the engines' merges, dropped writes and store errors."""
        stats = self.store.stats()
        for engine in self._engines.values():
            for key, value in engine.stats().items():
                if key in ("store_errors", "merged", "dropped_stale"):
                    stats[key] = stats.get(key, 0) + value
        return stats


def wire_sessions(
    app: Flask, store: SessionStore | RenderKitSessionInterface, environ: Mapping[str, str] | None
) -> RenderKitSessionInterface:
    """Install server-side sessions on ``app`` (used by ``RenderKit(session_store=...)``)."""
    if isinstance(store, RenderKitSessionInterface):
        interface = store
    elif isinstance(store, SessionStore):
        interface = RenderKitSessionInterface(store, environ=environ)
    else:
        raise TypeError(
            "RenderKit(session_store=...) takes a renderkit.sessions store (MemoryStore(), "
            "RedisStore.from_url(...), ...) or a RenderKitSessionInterface, got "
            f"{type(store).__name__}"
        )
    interface.engine(app)  # refuse a bad secret or cookie option now, not at the first request
    app.session_interface = interface
    return interface
