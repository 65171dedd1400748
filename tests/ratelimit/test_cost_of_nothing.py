"""A cost function that takes no argument, as flask-limiter's ``cost=lambda: 2`` is written.

It is called without the request (like a nullary ``exempt_when``) and its value is charged: it
used to be called with the request, raise ``TypeError`` and be charged 1 with an error logged,
so a ``4/second`` limit of cost 2 let four requests through instead of two.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from renderkit.ratelimit import RateLimiter, RateLimitPolicy, RequestInfo, RouteLimit


def _passed(limit: RouteLimit, tries: int) -> int:
    policy = RateLimitPolicy(RateLimiter("memory://"), default=None)
    info = RequestInfo("POST", "/batch", [], "198.51.100.31", route="/batch", limits=(limit,))
    return sum(policy.decide(info).allowed for _ in range(tries))


def test_a_cost_of_nothing_is_charged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="renderkit.ratelimit"):
        assert _passed(RouteLimit("4/second", cost=lambda: 2), 5) == 2
        assert _passed(RouteLimit("10/minute", cost=lambda: 2.5), 5) == 3  # 3 each: rounds up
    assert not caplog.records


def test_a_cost_of_the_request_still_gets_it() -> None:
    seen: list[RequestInfo] = []

    def cost(request: RequestInfo) -> int:
        seen.append(request)
        return 5

    assert _passed(RouteLimit("10/minute", cost=cost), 3) == 2
    assert seen and all(isinstance(request, RequestInfo) for request in seen)


def test_a_flask_view_with_a_cost_of_nothing() -> None:
    flask = pytest.importorskip("flask")
    from renderkit.flask import RenderKit, limit

    app: Any = flask.Flask(__name__)
    limiter = RateLimiter("memory://", default="100/minute")
    RenderKit(app, limiter=limiter, https_redirect=False, metrics=False, environ={})

    @app.get("/root")
    @limit("4/minute", cost=lambda: 2)
    def root() -> str:
        return "root"

    client = app.test_client()
    assert [client.get("/root").status_code for _ in range(3)] == [200, 200, 429]
