"""Tests for the WSGI health app, the WSGI ShutdownMiddleware and the Flask health wiring."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client

from renderkit.flask import RenderKit, health_blueprint
from renderkit.health import HEALTH_JSON, CheckResult, Health
from renderkit.shutdown import ShutdownCoordinator
from renderkit.wsgi import HealthApp, ShutdownMiddleware

PUBLIC = {"REMOTE_ADDR": "203.0.113.7"}
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def make_health(**options: Any) -> Health:
    health = Health(**options)
    health.add("database", lambda: True)
    health.add("cache", lambda: CheckResult.degraded("serving from memory"), critical=False)
    return health


def test_wsgi_health_app_paths_and_fallthrough() -> None:
    """HealthApp answers the four paths, hands the rest to the wrapped app."""
    client = Client(HealthApp(make_health(), app=hello))
    response = client.get("/health", environ_base=LOCAL)
    assert response.status_code == 200
    assert response.json is not None and response.json["status"] == "degraded"
    assert response.json["checks"]["cache"]["message"] == "serving from memory"
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    assert client.get("/health/instance").status_code == 200
    assert client.get("/other").get_data() == b"hello"
    assert client.post("/health").status_code == 405
    assert client.head("/health").get_data() == b""


def test_wsgi_health_app_hides_detail_from_the_public() -> None:
    """A public caller gets status alone, in either format; a token unlocks detail."""
    health = Health(token="tok")
    health.add("database", lambda: 1 / 0)
    client = Client(HealthApp(health))
    plain = client.get("/health", environ_base=PUBLIC)
    ietf = client.get("/health", environ_base=PUBLIC, headers={"Accept": HEALTH_JSON})
    authed = client.get("/health", environ_base=PUBLIC, headers={"Authorization": "Bearer tok"})
    assert (plain.status_code, plain.json) == (503, {"status": "unhealthy"})
    assert ietf.json == {"status": "fail"}
    assert ietf.headers["Content-Type"] == HEALTH_JSON
    assert (
        authed.json is not None
        and "ZeroDivisionError" in authed.json["checks"]["database"]["message"]
    )
    assert client.get("/nope").status_code == 404


def test_wsgi_health_app_rejects_bad_options() -> None:
    """A wrong registry type or prefix fails at construction."""
    with pytest.raises(TypeError, match="Health"):
        HealthApp(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefix"):
        HealthApp(Health(), prefix="health/")


def test_wsgi_shutdown_middleware_counts_and_refuses() -> None:
    """In-flight WSGI requests are counted until the body closes; after begin() new ones 503."""
    coordinator = ShutdownCoordinator(grace_period=5, retry_after=3, keepalive_window=0)
    started = threading.Event()
    release = threading.Event()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        started.set()
        release.wait(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    app = ShutdownMiddleware(slow, coordinator=coordinator)
    results: list[str] = []
    worker = threading.Thread(
        target=lambda: results.append(Client(app).get("/").get_data(as_text=True))
    )
    worker.start()
    assert started.wait(5)
    assert coordinator.inflight == 1
    coordinator.begin("test")
    refused = Client(app).get("/")
    assert refused.status_code == 503
    assert refused.headers["Connection"] == "close" and refused.headers["Retry-After"] == "3"
    release.set()
    worker.join(5)
    assert results == ["done"]
    assert coordinator.inflight == 0
    summary = coordinator.shutdown_sync()
    assert summary.drained


def test_wsgi_shutdown_middleware_releases_on_error() -> None:
    """A request whose app raises is no longer counted as in flight."""
    coordinator = ShutdownCoordinator()

    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("boom")

    app = ShutdownMiddleware(broken, coordinator=coordinator)
    with pytest.raises(RuntimeError):
        Client(app).get("/")
    assert coordinator.inflight == 0


def test_shutdown_sync_waits_for_inflight_wsgi_requests() -> None:
    """shutdown_sync drains: hooks run only after the in-flight WSGI request finished."""
    coordinator = ShutdownCoordinator(grace_period=5)
    order: list[str] = []
    coordinator.on_shutdown(lambda: order.append("hook"), name="hook")
    started = threading.Event()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        started.set()
        time.sleep(0.3)
        order.append("request")
        start_response("200 OK", [])
        return [b""]

    app = ShutdownMiddleware(slow, coordinator=coordinator)
    worker = threading.Thread(target=lambda: Client(app).get("/"))
    worker.start()
    assert started.wait(5)
    coordinator.shutdown_sync()
    worker.join(5)
    assert order == ["request", "hook"]


def test_flask_blueprint_and_renderkit_wiring() -> None:
    """health_blueprint serves the endpoints; RenderKit(health=...) wires the same."""
    app = Flask(__name__)
    app.register_blueprint(health_blueprint(make_health(), url_prefix="/status"))
    client = app.test_client()
    response = client.get("/status", environ_base=LOCAL)
    assert response.status_code == 200 and response.json is not None
    assert response.json["status"] == "degraded"
    assert client.get("/status/live").status_code == 200
    assert client.get("/status", environ_base=PUBLIC).json == {"status": "degraded"}

    wired = Flask("wired")
    health = make_health()
    RenderKit(wired, health=health, security=False, metrics=False, https_redirect=False)
    assert wired.extensions["renderkit"].extras["health"] is health
    response = wired.test_client().get("/health/ready")
    response.close()  # ends the request: the correlation middleware unbinds its request id
    assert response.status_code == 200


def test_flask_wiring_rejects_bad_health_option() -> None:
    """RenderKit(health=...) with the wrong type fails at init with a clear message."""
    with pytest.raises(TypeError, match=r"renderkit\.health\.Health"):
        RenderKit(Flask("bad"), health="yes", security=False, metrics=False)
    with pytest.raises(ValueError, match="url_prefix"):
        health_blueprint(Health(), url_prefix="status")


def test_renderkit_health_true_builds_one_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """RenderKit(health=True) serves a Health.from_env() with the system checks."""
    monkeypatch.setenv("HEALTH_TOKEN", "tok")
    app = Flask("auto")
    RenderKit(app, health=True, security=False, metrics=False, correlation=False)
    health = app.extensions["renderkit"].extras["health"]
    assert health.names == ["memory", "cpu", "disk"] and health.token == "tok"
    response = app.test_client().get("/health", headers={"Authorization": "Bearer tok"})
    assert response.status_code == 200
    assert response.json is not None and set(response.json["checks"]) == {"memory", "cpu", "disk"}


def test_wsgi_responses_say_connection_close_once_shutdown_began() -> None:
    """While still serving after begin() (the drain delay, or the keep-alive window after a
    signal) WSGI responses carry Connection: close."""
    coordinator = ShutdownCoordinator(grace_period=5, drain_delay=3)
    client = Client(ShutdownMiddleware(hello, coordinator=coordinator))
    assert "Connection" not in client.get("/").headers
    coordinator.begin("test")
    response = client.get("/")
    assert response.status_code == 200 and response.get_data() == b"hello"
    assert response.headers["Connection"] == "close"
    assert coordinator.accepting
