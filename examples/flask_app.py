"""The renderkit demo on Flask: every module through ``renderkit.flask.RenderKit``.

Run it under gunicorn (no environment variables needed; memory backends)::

    gunicorn -c examples/gunicorn.conf.py examples.flask_app:app
    open http://127.0.0.1:8000/

``gunicorn.conf.py`` chains renderkit's shutdown coordinator into each worker (readiness flips
to 503 on SIGTERM, cleanup hooks run after the drain). ``flask --app examples.flask_app run``
works too, without the shutdown hooks.

Routes: ``/`` (the same nonce'd HTML page as the FastAPI demo, counting views in a
server-side session), ``/api/visits`` (GET/POST), ``/api/slow-square/<n>``
(cache), ``/api/limited`` (5/minute), ``/health`` (+ ``/live``, ``/ready``, ``/instance``),
``/metrics`` and ``/metrics/json``.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, g, session

from renderkit.cache import Cache
from renderkit.config import environment
from renderkit.flask import RenderKit, limit
from renderkit.health import Health
from renderkit.platform import detect
from renderkit.ratelimit import RateLimiter
from renderkit.sessions import FallbackStore, MemoryStore, RedisStore, SessionStore
from renderkit.shutdown import ShutdownCoordinator

PAGE = (Path(__file__).parent / "index.html").read_text(encoding="utf-8")
log = logging.getLogger("examples.flask_app")


def session_store(env: Mapping[str, str]) -> SessionStore:
    """Redis (falling back to memory while it is down) when REDIS_URL is set, else memory."""
    url = env.get("REDIS_URL")
    return FallbackStore(RedisStore.from_url(url), MemoryStore()) if url else MemoryStore()


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the Flask demo from ``environ`` (default: ``os.environ``); nothing connects yet."""
    env = dict(os.environ if environ is None else environ)
    platform = detect(env)
    env_name = environment(env)

    store = session_store(env)
    cache = Cache.from_env(env)
    limiter = RateLimiter.from_env(env)
    coordinator = ShutdownCoordinator.from_env(env)
    coordinator.on_shutdown(cache.close, name="cache", timeout=2.0)
    coordinator.on_shutdown(limiter.close, name="ratelimit", timeout=2.0)
    coordinator.on_shutdown(store.close, name="sessions", timeout=2.0)
    health = Health.from_env(env, shutdown=coordinator)
    health.add("cache", cache.health_check, critical=False, component_type="datastore")
    health.add("ratelimit", limiter.health_check, critical=False, component_type="datastore")
    health.add("sessions", store.health_check, critical=False, component_type="datastore")
    health.add_system_checks()

    app = Flask(__name__)
    if not env.get("SESSION_SECRET") and env_name == "development":
        log.warning("SESSION_SECRET is not set: using a random one for this process (demo only)")
        app.secret_key = secrets.token_urlsafe(64)
    RenderKit(app, limiter=limiter, health=health, session_store=store, environ=env)
    app.extensions["renderkit.demo"] = {"cache": cache, "coordinator": coordinator}

    @app.get("/")
    def home() -> tuple[str, int, dict[str, str]]:
        session["views"] = int(session.get("views", 0)) + 1
        page = (
            PAGE.replace("__NONCE__", g.csp_nonce)
            .replace("__REQUEST_ID__", g.request_id or "-")
            .replace("__ENVIRONMENT__", env_name)
            .replace("__PROVIDER__", platform.provider)
            .replace("__VIEWS__", str(session["views"]))
        )
        return page, 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/api/visits")
    def visits() -> dict[str, Any]:
        return {"views": session.get("views", 0), "visits": session.get("visits", 0)}

    @app.post("/api/visits")
    def count_visit() -> dict[str, Any]:
        session["visits"] = int(session.get("visits", 0)) + 1
        return {"visits": session["visits"], "views": session.get("views", 0)}

    @cache.cached(ttl=30)
    def slow_square(n: int) -> dict[str, Any]:
        time.sleep(0.2)  # an expensive computation or a slow upstream
        return {"n": n, "square": n * n}

    @app.get("/api/slow-square/<int:n>")
    def square(n: int) -> dict[str, Any]:
        return {"result": slow_square(n), "cache": cache.stats()}

    @app.get("/api/limited")
    @limit("5/minute")
    def limited() -> dict[str, Any]:
        return {"ok": True, "request_id": g.request_id}

    return app


app = create_app()
coordinator: ShutdownCoordinator = app.extensions["renderkit.demo"]["coordinator"]
