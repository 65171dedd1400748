"""What users migrate from keeps working: Starlette's request.session idioms and max_age values,
Flask's session value types; and options that would break the cookie are refused up front."""

from __future__ import annotations

import datetime
import json
import re
import uuid
from typing import Any

import pytest
from _sessions_helpers import SECRET, set_cookies
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from renderkit.errors import ConfigError
from renderkit.sessions import MemoryStore, Session, SessionMiddleware, get_session


async def view(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.session})


async def update(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse({"session": request.session})


async def typed(request: Request) -> JSONResponse:
    session = get_session(request)
    session.user_id = 7
    session.regenerate()
    return JSONResponse({"user": session.user_id, "dict": isinstance(request.session, dict)})


def _app(**options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/view", view),
            Route("/update", update, methods=["POST"]),
            Route("/typed", typed),
        ]
    )
    app.add_middleware(SessionMiddleware, secret_key=SECRET, **options)
    return app


def test_request_session_is_a_dict_that_json_takes_as_it_is() -> None:
    """JSONResponse({"session": request.session}) and json.dumps work, loaded or new."""
    with TestClient(_app()) as client:
        assert client.get("/view").json() == {"session": {}}
        assert client.post("/update", json={"a": 1, "b": [2]}).json() == {
            "session": {"a": 1, "b": [2]}
        }
        assert client.get("/view").json() == {"session": {"a": 1, "b": [2]}}
        assert client.get("/typed").json() == {"user": "7", "dict": True}
    session = Session()
    session.update({"x": 1}, y=2)
    session |= {"z": 3}
    assert json.dumps(session) == '{"x": 1, "y": 2, "z": 3}'
    assert session.pop("x") == 1 and session.setdefault("w", 4) == 4
    assert session.changes()["x"] is not None and session.modified


def test_max_age_like_starlette() -> None:
    """Default 14 days; None: no Max-Age (browser session); -1: the session expires at once."""
    with TestClient(_app()) as client:
        header = set_cookies(client.post("/update", json={"a": 1}))[0]
    assert re.search(r"; Max-Age=1209600;", header)
    with TestClient(_app(max_age=None)) as client:
        header = set_cookies(client.post("/update", json={"a": 1}))[0]
        assert "Max-Age" not in header
        assert client.get("/view").json() == {"session": {"a": 1}}
    app = _app(max_age=-1)
    with TestClient(app) as client:
        response = client.post("/update", json={"a": 1})
        assert response.json() == {"session": {"a": 1}}
        value = set_cookies(response)[0].split(";", 1)[0].split("=", 1)[1]
    with TestClient(app, cookies={"session": value}) as client:
        assert client.get("/view").json() == {"session": {}}


def test_no_session_middleware_gives_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"add renderkit\.sessions\.SessionMiddleware"):
        get_session({"type": "http"})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("path", "/; Domain=evil.example"),
        ("path", "/app\r\nSet-Cookie: x=1"),
        ("path", "app"),
        ("domain", "example.com; Secure"),
        ("domain", "example.com\nX: y"),
    ],
)
def test_cookie_attributes_with_separators_are_refused_at_construction(
    option: str, value: str
) -> None:
    """A ';' or CR/LF in path=/domain= would inject cookie attributes or headers."""
    with pytest.raises(ConfigError, match=rf"SessionMiddleware\({option}=\)"):
        SessionMiddleware(lambda *a: None, secret_key=SECRET, **{option: value})


def test_short_secret_refused_in_production_only() -> None:
    """Under 32 bytes: refused in production, naming the argument or SESSION_SECRET."""
    prod = {"APP_ENV": "production"}
    with pytest.raises(ConfigError, match=r"SessionMiddleware\(secret_key=\).*5 bytes"):
        SessionMiddleware(lambda *a: None, secret_key="short", environ=prod)
    with pytest.raises(ConfigError, match=r"SESSION_SECRET.*at least 32") as info:
        SessionMiddleware(lambda *a: None, environ={**prod, "SESSION_SECRET": "tooshort"})
    assert "tooshort" not in str(info.value)
    with pytest.raises(ConfigError, match=r"key #2"):
        SessionMiddleware(lambda *a: None, secret_key=[SECRET, "old"], environ=prod)
    SessionMiddleware(lambda *a: None, secret_key="x" * 32, environ=prod)
    SessionMiddleware(lambda *a: None, secret_key="example", environ={})  # development


def test_flask_session_values_round_trip_like_flasks_own() -> None:
    """datetime, UUID, bytes, tuples and Markup come back as they went in (tagged JSON)."""
    flask = pytest.importorskip("flask")
    from markupsafe import Markup

    from renderkit.flask import RenderKitSessionInterface

    when = datetime.datetime(2026, 12, 3, 9, 30, tzinfo=datetime.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    app = flask.Flask(__name__)
    app.session_interface = RenderKitSessionInterface(  # type: ignore[assignment]
        MemoryStore(), secret_key=SECRET, environ={}
    )

    @app.get("/put")
    def put() -> str:
        flask.session.update(
            when=when, ident=ident, raw=b"\x00\xff", pair=(1, "a"), html=Markup("<b>x</b>")
        )
        flask.session["nested"] = {"at": [when]}
        return "ok"

    @app.get("/get")
    def get() -> Any:
        s = flask.session
        ok = (
            s["when"] == when
            and s["ident"] == ident
            and s["raw"] == b"\x00\xff"
            and s["pair"] == (1, "a")
            and isinstance(s["html"], Markup)
            and s["nested"] == {"at": [when]}
        )
        return {"ok": ok}

    client = app.test_client()
    assert client.get("/put").status_code == 200
    assert client.get("/get").get_json() == {"ok": True}


def test_flask_short_secret_refused_in_production() -> None:
    """RenderKit(app, session_store=...) refuses a short secret when wired, not per request."""
    flask = pytest.importorskip("flask")
    from renderkit.flask import RenderKitSessionInterface
    from renderkit.flask._sessions import wire_sessions

    app = flask.Flask(__name__)
    app.secret_key = "short"
    interface = RenderKitSessionInterface(MemoryStore(), environ={"APP_ENV": "production"})
    with pytest.raises(ConfigError, match="RenderKitSessionInterface"):
        wire_sessions(app, interface, {"APP_ENV": "production"})


def test_a_store_that_cannot_read_the_session_does_not_replace_the_cookie() -> None:
    """Load failed (the store is away): the session reads empty, a write is skipped instead of
    starting a new id (which would lose the stored session for good); log-out still works."""

    class Broken(MemoryStore):
        broken = False

        def _get(self, session_id: str) -> Any:
            if self.broken:
                raise ConnectionError("store away")
            return super()._get(session_id)

    async def bump(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse({"n": request.session["n"]})

    async def logout(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({})

    store = Broken()
    app = Starlette(routes=[Route("/bump", bump), Route("/logout", logout)])
    app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET)
    with TestClient(app) as client:
        assert client.get("/bump").json() == {"n": 1}
        store.broken = True
        during = client.get("/bump")
        assert during.json() == {"n": 1} and set_cookies(during) == []
        store.broken = False
        assert client.get("/bump").json() == {"n": 2}  # the stored session survived
        store.broken = True
        assert "Max-Age=0" in set_cookies(client.get("/logout"))[0]
        store.broken = False
        assert client.get("/bump").json() == {"n": 1}  # logged out: the old id was deleted
