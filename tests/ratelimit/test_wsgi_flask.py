"""WSGI RateLimitMiddleware, Flask @limit and RenderKit(limiter=...) wiring."""

from __future__ import annotations

from typing import Any

import pytest

from renderkit._http import ProxyTrust
from renderkit.ratelimit import RateLimiter, RateLimitPolicy, Rule
from renderkit.wsgi import RateLimitMiddleware


def _wsgi_ok(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _call(app: Any, path: str = "/", **environ: Any) -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        captured["headers"] = {k.lower(): v for k, v in headers}
        return lambda data: None

    base = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REMOTE_ADDR": "203.0.113.9"}
    body = b"".join(app({**base, **environ}, start_response))
    return captured["status"], captured["headers"], body


def test_wsgi_headers_then_429() -> None:
    """The WSGI twin sends the same headers and refusal as the ASGI middleware."""
    limiter = RateLimiter("memory://", default="1/minute", strategy="fixed-window")
    app = RateLimitMiddleware(_wsgi_ok, limiter=limiter, legacy_headers=True)
    status, headers, _ = _call(app)
    assert status == "200 OK"
    assert headers["ratelimit-policy"] == '"default";q=1;w=60'
    assert headers["x-ratelimit-remaining"] == "0"
    status, headers, body = _call(app)
    assert status == "429 Too Many Requests"
    assert int(headers["retry-after"]) >= 1
    assert b"quota-exceeded" in body


def test_wsgi_health_exempt_and_missing_remote_addr() -> None:
    """/health is never limited; a request without REMOTE_ADDR is keyed, not crashed."""
    limiter = RateLimiter("memory://", default="1/minute", strategy="fixed-window")
    app = RateLimitMiddleware(_wsgi_ok, limiter=limiter)
    assert all(_call(app, "/health")[0] == "200 OK" for _ in range(3))
    assert _call(app, REMOTE_ADDR="")[0] == "200 OK"
    assert _call(app, REMOTE_ADDR="")[0].startswith("429")


def test_wsgi_trusts_render_chain() -> None:
    """Behind Render, two clients behind the same proxy peer get separate quotas."""
    limiter = RateLimiter("memory://", default="1/minute", strategy="fixed-window")
    app = RateLimitMiddleware(_wsgi_ok, limiter=limiter, trust=ProxyTrust.render())
    one = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.1, 172.70.0.1"}
    two = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.2, 172.70.0.1"}
    forged = {
        "REMOTE_ADDR": "10.0.0.2",
        "HTTP_X_FORWARDED_FOR": "9.9.9.9, 198.51.100.1, 172.70.0.1",
    }
    assert _call(app, **one)[0] == "200 OK"
    assert _call(app, **two)[0] == "200 OK"
    assert _call(app, **forged)[0].startswith("429")  # the forged entry is ignored


def test_wsgi_rejects_bad_options() -> None:
    """A missing limiter, or policy mixed with options, is a TypeError."""
    with pytest.raises(TypeError):
        RateLimitMiddleware(_wsgi_ok)
    policy = RateLimitPolicy(RateLimiter("memory://"))
    with pytest.raises(TypeError):
        RateLimitMiddleware(_wsgi_ok, policy=policy, legacy_headers=True)


def test_flask_renderkit_wiring_and_limit_decorator() -> None:
    """RenderKit(limiter=...) limits every route on its own; @limit replaces the default."""
    flask = pytest.importorskip("flask")
    from renderkit.flask import RenderKit, limit

    app = flask.Flask(__name__)
    limiter = RateLimiter("memory://", default="3/minute", strategy="fixed-window")

    @app.get("/")
    def index() -> str:
        return "ok"

    @app.post("/analyze")
    @limit("1/minute")
    def analyze() -> str:
        return "done"

    RenderKit(app, limiter=limiter, https_redirect=False, metrics=False, environ={})
    client = app.test_client()
    first = client.post("/analyze")
    second = client.post("/analyze")
    assert first.status_code == 200
    assert '"1/minute";q=1;w=60' in first.headers.getlist("RateLimit-Policy")
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1
    assert second.json is not None and second.json["status"] == 429
    # The default counts per route, and /analyze's own limit replaced it there: / has 3.
    assert [client.get("/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get("/health").status_code == 404  # exempt: reaches Flask (no route)


def test_flask_renderkit_accepts_a_policy_and_rejects_junk() -> None:
    """limiter= takes a RateLimitPolicy; anything else is a TypeError at init."""
    flask = pytest.importorskip("flask")
    from renderkit.flask import RenderKit

    app = flask.Flask(__name__)

    @app.get("/x")
    def x() -> str:
        return "x"

    policy = RateLimitPolicy(
        RateLimiter("memory://", default="100/minute"), rules=[Rule("/x", "1/minute")]
    )
    RenderKit(app, limiter=policy, https_redirect=False, metrics=False, environ={})
    client = app.test_client()
    assert client.get("/x").status_code == 200
    assert client.get("/x").status_code == 429
    with pytest.raises(TypeError, match="RateLimiter or RateLimitPolicy"):
        RenderKit(flask.Flask("other"), limiter="100/hour", environ={})


def test_flask_limit_without_a_limiter_is_a_clear_error() -> None:
    """@limit with no limiter anywhere says how to provide one."""
    flask = pytest.importorskip("flask")
    from renderkit.flask import limit

    app = flask.Flask(__name__)

    @app.get("/x")
    @limit("1/minute")
    def x() -> str:
        return "x"

    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(RuntimeError, match="RenderKit\\(app, limiter="):
        app.test_client().get("/x")


def test_flask_limit_on_async_views_and_on_helpers() -> None:
    """@limit works on an async view, and on a helper a view calls (counted when called)."""
    flask = pytest.importorskip("flask")
    pytest.importorskip("asgiref")
    from renderkit.flask import RenderKit, limit

    app = flask.Flask(__name__)
    limiter = RateLimiter("memory://", default="100/minute")

    @app.get("/async")
    @limit("1/minute")
    async def async_view() -> str:
        return "async"

    @limit("2/minute")
    def expensive() -> str:
        return "computed"

    @app.get("/uses-helper")
    def uses_helper() -> str:
        return expensive()

    RenderKit(app, limiter=limiter, https_redirect=False, metrics=False, environ={})
    client = app.test_client()
    first = client.get("/async")
    assert (first.status_code, first.text) == (200, "async")
    assert client.get("/async").status_code == 429
    assert [client.get("/uses-helper").status_code for _ in range(3)] == [200, 200, 429]
