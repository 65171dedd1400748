"""The engine options every session adapter passes on (``EngineOptions``): given ones reach
the engine, absent ones take the engine's defaults, and a misspelt one fails at construction."""

from __future__ import annotations

from typing import Any

import pytest
from _sessions_helpers import SECRET
from flask import Flask

from renderkit.flask import RenderKitSessionInterface
from renderkit.sessions import MemoryStore
from renderkit.sessions import SessionMiddleware as AsgiSessionMiddleware
from renderkit.sessions._engine import SessionEngine
from renderkit.wsgi import SessionMiddleware as WsgiSessionMiddleware

GIVEN: dict[str, Any] = {"ttl": 90.0, "rolling": True, "on_conflict": "raise"}


def _asgi(**options: Any) -> SessionEngine:
    return AsgiSessionMiddleware(lambda *a: None, secret_key=SECRET, **options).engine


def _wsgi(**options: Any) -> SessionEngine:
    return WsgiSessionMiddleware(lambda *a: [], secret_key=SECRET, **options).engine


def _flask(**options: Any) -> SessionEngine:
    interface = RenderKitSessionInterface(MemoryStore(), secret_key=SECRET, **options)
    return interface.engine(Flask(__name__))


@pytest.mark.parametrize("build", [_asgi, _wsgi, _flask])
def test_given_engine_options_reach_the_engine(build: Any) -> None:
    engine = build(environ={}, **GIVEN)
    assert (engine.ttl, engine.rolling, engine.on_conflict) == (90.0, True, "raise")


@pytest.mark.parametrize("build", [_asgi, _wsgi, _flask])
def test_absent_engine_options_take_the_engine_defaults(build: Any) -> None:
    engine = build(environ={}, max_age=600)
    assert (engine.ttl, engine.rolling, engine.on_conflict) == (600.0, False, "merge")


@pytest.mark.parametrize("build", [_asgi, _wsgi, _flask])
def test_environ_reaches_the_engine(build: Any) -> None:
    """``environ`` is what the engine reads: production here sets the Secure flag."""
    assert build(environ={"APP_ENV": "production"}).cookie.secure is True
    assert build(environ={"APP_ENV": "development"}).cookie.secure is False


def test_flask_interface_reads_session_secret_from_its_environ() -> None:
    interface = RenderKitSessionInterface(MemoryStore(), environ={"SESSION_SECRET": SECRET})
    assert interface.environ == {"SESSION_SECRET": SECRET}
    interface.engine(Flask(__name__))  # no ConfigError: the secret came from environ


@pytest.mark.parametrize(
    ("build", "owner"),
    [
        (lambda: AsgiSessionMiddleware(lambda *a: None, rollin=True), "SessionMiddleware"),
        (lambda: WsgiSessionMiddleware(lambda *a: [], rollin=True), "SessionMiddleware"),
        # Flask builds its engine on the first request: the name is checked before that.
        (lambda: RenderKitSessionInterface(rollin=True), "RenderKitSessionInterface"),
        (lambda: RenderKitSessionInterface(option_prefix="x"), "RenderKitSessionInterface"),
    ],
)
def test_a_misspelt_option_fails_at_construction_naming_it(build: Any, owner: str) -> None:
    with pytest.raises(TypeError, match=rf"^{owner}\(\) got an unexpected keyword .*'") as info:
        build()
    assert "environ, on_conflict, rolling, ttl" in str(info.value)
