"""Sessions for WSGI and Flask: same stores, same cookie format as the ASGI middleware."""

from __future__ import annotations

from typing import Any

import pytest
from _sessions_helpers import SECRET, CountingStore, cookie_value
from flask import Flask, session
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client

from renderkit.errors import ConfigError
from renderkit.flask import RenderKit, RenderKitSessionInterface
from renderkit.sessions import MemoryStore, RedisStore
from renderkit.sessions import SessionMiddleware as AsgiSessionMiddleware
from renderkit.wsgi import SessionMiddleware


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    sess = environ["renderkit.session"]
    path = environ["PATH_INFO"]
    if path == "/set":
        sess["n"] = sess.get("n", 0) + 1
    elif path == "/clear":
        sess.clear()
    body = str(sess.get("n")).encode() if path != "/plain" else b"plain"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def test_wsgi_middleware_save_and_clear() -> None:
    """WSGI: an untouched request loads once and writes nothing; clear removes the cookie."""
    store = CountingStore()
    client = Client(SessionMiddleware(wsgi_app, store=store, secret_key=SECRET))
    assert client.get("/set").get_data() == b"1"
    second = client.get("/set")
    assert second.get_data() == b"2"
    assert second.headers["Vary"] == "Cookie"
    store.calls.clear()
    response = client.get("/plain")
    assert [c for c, _ in store.calls] == ["get"] and "Set-Cookie" not in response.headers
    cleared = client.get("/clear")
    assert "Max-Age=0" in cleared.headers["Set-Cookie"]
    assert len(store) == 0


def test_wsgi_bad_cookie_is_a_fresh_session() -> None:
    """WSGI: a tampered cookie gives an empty session and no store lookup."""
    store = CountingStore()
    client = Client(SessionMiddleware(wsgi_app, store=store, secret_key=SECRET))
    client.set_cookie("session", "A" * 43 + "." + "B" * 43)
    assert client.get("/read").get_data() == b"None"
    assert store.calls == []


def flask_app(**kwargs: Any) -> Flask:
    app = Flask(__name__)

    @app.get("/login/<name>")
    def login(name: str) -> str:
        session["user"] = name
        return "ok"

    @app.get("/whoami")
    def whoami() -> str:
        return str(session.get("user"))

    @app.get("/logout")
    def logout() -> str:
        session.clear()
        return "bye"

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    return app


def test_renderkit_extension_wires_server_side_sessions() -> None:
    """RenderKit(app, session_store=...) installs the interface; flask.session works."""
    store = CountingStore()
    app = flask_app()
    RenderKit(
        app,
        session_store=store,
        environ={"SESSION_SECRET": SECRET},
        metrics=False,
        correlation=False,
    )
    assert isinstance(app.session_interface, RenderKitSessionInterface)
    client = app.test_client()
    login = client.get("/login/ada")
    assert login.status_code == 200
    header = login.headers["Set-Cookie"]
    assert "httponly" in header and "samesite=lax" in header
    assert "ada" not in header  # the data stays server-side
    assert client.get("/whoami").get_data() == b"ada"
    store.calls.clear()
    client.get("/plain")
    assert [c for c, _ in store.calls] == ["get"]  # loaded, never written
    assert client.get("/logout").status_code == 200
    assert client.get("/whoami").get_data() == b"None"
    assert len(store) == 0


def test_flask_uses_app_secret_key_when_no_other_secret() -> None:
    """Without secret_key or SESSION_SECRET, app.secret_key signs; with none, ConfigError."""
    app = flask_app()
    app.secret_key = SECRET
    app.session_interface = RenderKitSessionInterface(MemoryStore(), environ={})
    client = app.test_client()
    client.get("/login/ada")
    assert client.get("/whoami").get_data() == b"ada"
    bare = flask_app()
    bare.session_interface = RenderKitSessionInterface(MemoryStore(), environ={})
    bare.testing = True
    with pytest.raises(ConfigError, match="SESSION_SECRET"):
        bare.test_client().get("/whoami")


def test_flask_and_asgi_share_sessions_through_one_store(renderkit_fakeredis: Any) -> None:
    """A session made by the Flask app is read by the Starlette app (same cookie format)."""
    store = RedisStore(renderkit_fakeredis)
    app = flask_app()
    app.session_interface = RenderKitSessionInterface(store, secret_key=SECRET)
    cookie = cookie_value(app.test_client().get("/login/ada").headers["Set-Cookie"])

    async def whoami(request: Any) -> JSONResponse:
        return JSONResponse({"user": request.session.get("user")})

    asgi = Starlette(routes=[Route("/whoami", whoami)])
    asgi.add_middleware(AsgiSessionMiddleware, store=store, secret_key=SECRET)
    with TestClient(asgi) as client:
        response = client.get("/whoami", headers={"cookie": f"session={cookie}"})
    assert response.json() == {"user": "ada"}


def test_renderkit_rejects_a_non_store() -> None:
    """RenderKit(session_store=<something else>) fails at init with what it accepts."""
    with pytest.raises(TypeError, match="MemoryStore"):
        RenderKit(flask_app(), session_store="redis://x", metrics=False, correlation=False)


def test_example_app_login_visit_logout_everywhere(monkeypatch: Any) -> None:
    """examples/sessions_example.py runs as documented with the memory store."""
    import importlib.util
    from pathlib import Path

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("SESSION_SECRET", SECRET)
    path = Path(__file__).resolve().parents[2] / "examples" / "sessions_example.py"
    spec = importlib.util.spec_from_file_location("sessions_example_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with TestClient(module.app) as phone, TestClient(module.app) as laptop:
        assert phone.get("/").json()["user"] is None
        phone.get("/login?user=ada")
        laptop.get("/login?user=ada")
        assert phone.get("/").json() == {"user": "ada", "visits": 1}
        assert laptop.post("/logout-everywhere").json() == {"sessions_ended": 2}
        assert phone.get("/").json()["user"] is None
        assert phone.get("/health").json()["status"] == "healthy"
