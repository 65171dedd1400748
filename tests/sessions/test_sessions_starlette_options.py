"""Starlette's own SessionMiddleware options keep working after the import line changes:
``secret_key`` as a ``starlette.datastructures.Secret`` and ``partitioned=`` (CHIPS), on ASGI
and in Flask (``SESSION_COOKIE_PARTITIONED``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _sessions_helpers import SECRET
from starlette.applications import Starlette
from starlette.config import Config
from starlette.datastructures import Secret
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from renderkit.errors import ConfigError
from renderkit.sessions import MemoryStore, SessionMiddleware


async def count(request: Request) -> JSONResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return JSONResponse({"n": request.session["n"]})


async def logout(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({})


def _app(**options: Any) -> Starlette:
    app = Starlette(routes=[Route("/count", count), Route("/logout", logout)])
    app.add_middleware(SessionMiddleware, environ={}, **options)
    return app


def test_a_starlette_secret_signs_like_its_text() -> None:
    config = Config(environ={"SECRET_KEY": SECRET})
    secret = config("SECRET_KEY", cast=Secret)
    store = MemoryStore()
    with TestClient(_app(secret_key=secret, store=store)) as client:
        assert [client.get("/count").json()["n"] for _ in range(3)] == [1, 2, 3]
        cookie = client.cookies["session"]
    # The same text as a str verifies the cookie the Secret signed.
    with TestClient(_app(secret_key=SECRET, store=store)) as other:
        other.cookies.set("session", cookie)
        assert other.get("/count").json() == {"n": 4}


def test_secrets_in_a_rotation_list_and_short_ones_in_production() -> None:
    with TestClient(_app(secret_key=[Secret("new-" + SECRET), Secret(SECRET)])) as client:
        assert client.get("/count").json() == {"n": 1}
    with pytest.raises(ConfigError, match="7 bytes"):
        SessionMiddleware(
            lambda *a: None, secret_key=Secret("example"), environ={"APP_ENV": "production"}
        )


def test_partitioned_adds_the_attribute_to_every_set_cookie() -> None:
    app = _app(secret_key=SECRET, partitioned=True, https_only=True)
    with TestClient(app, base_url="https://testserver") as client:
        written = client.get("/count").headers["set-cookie"]
        assert "; partitioned" in written and "; secure" in written
        deleted = client.get("/logout").headers["set-cookie"]
        assert "Max-Age=0" in deleted and "; partitioned" in deleted


def test_no_partitioned_attribute_unless_asked() -> None:
    with TestClient(_app(secret_key=SECRET)) as client:
        assert "partitioned" not in client.get("/count").headers["set-cookie"]


def test_partitioned_without_secure_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="renderkit.sessions"):
        SessionMiddleware(_app(), secret_key=SECRET, partitioned=True, https_only=False)
    assert "partitioned=True without Secure" in caplog.text
    assert "https_only=True" in caplog.text


@pytest.mark.parametrize(("config", "option", "expected"), [
    (True, None, True), (False, None, False), (True, False, False), (False, True, True),
])  # fmt: skip
def test_flask_reads_session_cookie_partitioned(
    config: bool, option: bool | None, expected: bool
) -> None:
    flask = pytest.importorskip("flask")
    from renderkit.flask import RenderKitSessionInterface

    app = flask.Flask(__name__)
    app.config.update(SESSION_COOKIE_PARTITIONED=config, SESSION_COOKIE_SECURE=True)
    app.session_interface = RenderKitSessionInterface(
        secret_key=SECRET, partitioned=option, environ={}
    )

    @app.get("/")
    def index() -> str:
        flask.session["n"] = 1
        return "ok"

    written = app.test_client().get("/").headers["Set-Cookie"]
    assert ("; partitioned" in written) is expected
