"""Flask ``@limit`` on functions a view calls, as flask-limiter users write them.

A refusal stops the request wherever the limited function is called (it raises werkzeug's
``TooManyRequests`` carrying the problem+json response), an allowed call returns the
function's own value unchanged, and the headers reach the request's response. An
``@app.errorhandler(429)`` of the app's own sees every refusal first.
"""

from __future__ import annotations

from typing import Any

import pytest

flask = pytest.importorskip("flask")

from renderkit.flask import RenderKit, limit  # noqa: E402
from renderkit.ratelimit import RateLimiter  # noqa: E402


def _app(wired: bool) -> tuple[Any, RateLimiter]:
    app = flask.Flask(__name__)
    limiter = RateLimiter("memory://", default="100/minute")
    if wired:
        RenderKit(app, limiter=limiter, https_redirect=False, metrics=False, environ={})
    return app, limiter


@pytest.mark.parametrize("wired", [True, False])
def test_a_refused_helper_stops_the_view_that_ignores_its_value(wired: bool) -> None:
    app, limiter = _app(wired)
    calls: list[str] = []

    @limit("1/minute", limiter=limiter)
    def audit() -> None:
        calls.append("audit")

    @app.get("/page")
    def page() -> str:
        audit()  # its return value is not used: a refusal must still stop the request
        return "page"

    client = app.test_client()
    first = client.get("/page")
    assert (first.status_code, first.text) == (200, "page")  # None from the helper is fine
    refused = client.get("/page")
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json is not None and refused.json["status"] == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert calls == ["audit"]


def test_helpers_keep_their_values_and_each_adds_its_headers() -> None:
    app, limiter = _app(wired=False)

    @limit("3/minute", limiter=limiter, shared="one")
    def one() -> int:
        return 1

    @limit("2/minute", limiter=limiter, shared="two")
    def two() -> int:
        return 2

    @app.get("/sum")
    def total() -> str:
        return str(one() + two())

    client = app.test_client()
    first = client.get("/sum")
    assert (first.status_code, first.text) == (200, "3")
    policies = first.headers.getlist("RateLimit-Policy")
    assert policies == ['"one";q=3;w=60', '"two";q=2;w=60']
    assert client.get("/sum").status_code == 200
    assert client.get("/sum").status_code == 429  # two() is out: 2 per minute


@pytest.mark.parametrize("wired", [True, False])
def test_an_errorhandler_for_429_sees_the_refusal(wired: bool) -> None:
    app, limiter = _app(wired)

    @app.errorhandler(429)
    def too_many(error: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
        retry = error.response.headers["Retry-After"]  # the problem+json response rides along
        return {"error": "slow down"}, 429, {"Retry-After": retry}

    @app.post("/login")
    @limit("1/minute", limiter=limiter)
    def login() -> str:
        return "welcome"

    client = app.test_client()
    assert client.post("/login").status_code == 200
    refused = client.post("/login")
    assert refused.status_code == 429
    assert refused.json == {"error": "slow down"}
    assert int(refused.headers["Retry-After"]) >= 1


def test_a_helper_deduct_when_is_settled_on_the_final_status() -> None:
    app, limiter = _app(wired=False)

    @limit("2/minute", limiter=limiter, deduct_when=lambda status: status >= 400)
    def check_password(ok: bool) -> bool:
        return ok

    @app.post("/login/<outcome>")
    def login(outcome: str) -> tuple[str, int]:
        ok = check_password(outcome == "good")
        return ("welcome", 200) if ok else ("no", 401)

    client = app.test_client()
    # Successes are not charged; two failures use the quota up.
    assert [client.post("/login/good").status_code for _ in range(3)] == [200, 200, 200]
    assert [client.post("/login/bad").status_code for _ in range(3)] == [401, 401, 429]
