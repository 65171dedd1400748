"""``@limit`` on FastAPI endpoints, as slowapi users write them.

The wrapper keeps the endpoint's own parameters (the request in any position, under any name,
or not at all), counts the limit without the middleware, refuses with the one problem+json
429, and puts the headers on the response: directly on a ``Response`` the endpoint returns,
through ``install(app)`` for a returned value.
"""

from __future__ import annotations

import json
import logging

import pytest

fastapi = pytest.importorskip("fastapi")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import PlainTextResponse  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from renderkit.ratelimit import (  # noqa: E402
    PROBLEM_TYPE,
    RateLimiter,
    RateLimitMiddleware,
    install,
    limit,
)


def _app(wiring: str) -> tuple[FastAPI, RateLimiter]:
    limiter = RateLimiter("memory://", default="1000/minute")
    app = FastAPI()
    if wiring == "middleware":
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    elif wiring == "install":
        install(app)
    return app, limiter


@pytest.mark.parametrize("wiring", ["middleware", "install", "alone"])
def test_request_after_a_path_parameter(wiring: str) -> None:
    app, limiter = _app(wiring)

    @app.get("/items/{item}")
    @limit("2/minute", limiter=limiter)
    async def item(item: str, request: Request) -> dict[str, str]:
        return {"item": item, "path": request.url.path}

    client = TestClient(app)
    first = client.get("/items/a")
    assert first.status_code == 200
    assert first.json() == {"item": "a", "path": "/items/a"}
    assert client.get("/items/b").status_code == 200
    refused = client.get("/items/c")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert json.loads(refused.content)["type"] == PROBLEM_TYPE
    if wiring != "alone":  # without the middleware or install(), a dict gets no headers
        assert first.headers.get_list("ratelimit")


@pytest.mark.parametrize("wiring", ["middleware", "install", "alone"])
def test_an_endpoint_without_a_request_parameter(wiring: str) -> None:
    app, limiter = _app(wiring)

    @app.get("/ping/{n}")
    @limit("2/minute", limiter=limiter)
    def ping(n: int) -> dict[str, int]:  # sync, and no Request anywhere
        return {"n": n * 2}

    client = TestClient(app)
    assert client.get("/ping/3").json() == {"n": 6}
    assert client.get("/ping/4").status_code == 200
    assert client.get("/ping/5").status_code == 429


def test_the_request_under_another_name_and_a_response_of_its_own() -> None:
    app, limiter = _app("alone")

    @app.get("/report")
    @limit("1/minute", limiter=limiter)
    async def report(req: Request, fmt: str = "txt") -> PlainTextResponse:
        return PlainTextResponse(f"{fmt}:{req.method}")

    client = TestClient(app)
    response = client.get("/report?fmt=csv")
    assert response.text == "csv:GET"
    assert response.headers["ratelimit-policy"] == '"1/minute";q=1;w=60'
    assert client.get("/report").status_code == 429


def test_the_injected_request_is_not_an_api_parameter() -> None:
    app, limiter = _app("install")

    @app.get("/things")
    @limit("5/minute", limiter=limiter)
    async def things(q: str = "") -> dict[str, str]:
        return {"q": q}

    schema = TestClient(app).get("/openapi.json").json()
    names = [p["name"] for p in schema["paths"]["/things"]["get"].get("parameters", [])]
    assert names == ["q"]


def test_a_value_without_middleware_or_install_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    from renderkit.ratelimit import _middleware

    _middleware._warned_value.clear()
    app, limiter = _app("alone")

    @app.get("/v")
    @limit("5/minute", limiter=limiter)
    async def v() -> dict[str, bool]:
        return {"ok": True}

    client = TestClient(app)
    with caplog.at_level(logging.WARNING, logger="renderkit.ratelimit"):
        assert client.get("/v").status_code == 200
        assert client.get("/v").status_code == 200
    warnings = [r for r in caplog.records if "returns a value, not a Response" in r.message]
    assert len(warnings) == 1
    assert "install(app)" in warnings[0].message
