"""The session adapters' shared engine options (``EngineOptions``, passed through ``Unpack``)
type-check where users write them, and a wrong name or type stays a mypy error.

Not a test module: ``tools/typecheck_usage.py`` (``nox -s typecheck``) runs mypy --strict on it;
each ``type: ignore`` is a misuse that must stay an error (strict mode reports an unneeded one).
"""

from __future__ import annotations

from flask import Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware

from renderkit.flask import RenderKitSessionInterface
from renderkit.sessions import MemoryStore, SessionMiddleware
from renderkit.wsgi import SessionMiddleware as WSGISessionMiddleware

SECRET = "x" * 32
store = MemoryStore()
stack = [
    Middleware(
        SessionMiddleware, store=store, secret_key=SECRET, ttl=60.0, rolling=True, environ={}
    ),
    Middleware(SessionMiddleware, store=store, secret_key=SECRET, on_conflict="raise"),
]
app = Starlette(middleware=stack)
app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET, rolling=True, ttl=None)
SessionMiddleware(app, store, SECRET, "sid", 3600, "/", "strict", True, None, rolling=True)
WSGISessionMiddleware(lambda environ, start: [], store=store, ttl=60.0, on_conflict="merge")
flask_app = Flask(__name__)
flask_app.session_interface = RenderKitSessionInterface(store, rolling=True, ttl=60.0, environ={})

# Misuses mypy must catch.
app.add_middleware(SessionMiddleware, store=store, rolling="yes")  # type: ignore[arg-type]
app.add_middleware(SessionMiddleware, store=store, on_conflict="drop")  # type: ignore[arg-type]
Middleware(SessionMiddleware, store=store, rollin=True)  # type: ignore[call-arg]
RenderKitSessionInterface(store, tll=60.0)  # type: ignore[call-arg]
WSGISessionMiddleware(lambda environ, start: [], environ="prod")  # type: ignore[arg-type]
