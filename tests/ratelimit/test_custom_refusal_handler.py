"""An app's own handler for ``RateLimitExceeded`` answers refusals (slowapi's way to shape the
429): registered with ``app.add_exception_handler``, it is used by ``RateLimitMiddleware``,
``@limit`` and the FastAPI dependency; without one, the documented problem+json is sent."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from renderkit.ratelimit import (
    RateLimiter,
    RateLimitExceeded,
    RateLimitMiddleware,
    install,
    limit,
)

seen: list[RateLimitExceeded] = []


async def slow_down(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimitExceeded)
    seen.append(exc)
    return JSONResponse({"slow": "down", "path": request.url.path}, 429, headers=exc.headers)


def slow_down_sync(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimitExceeded)
    return PlainTextResponse("wait a bit", 429, headers=exc.headers)


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def _middleware_app(handler: Any) -> TestClient:
    limiter = RateLimiter("memory://", default="1/minute")
    app = Starlette(routes=[Route("/", hello)])
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    if handler is not None:
        app.add_exception_handler(RateLimitExceeded, handler)
    return TestClient(app)


def _decorator_app(handler: Any) -> TestClient:
    limiter = RateLimiter("memory://", default="1000/minute")

    @limit("1/minute", limiter=limiter)
    async def limited(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", limited)])
    if handler is not None:
        app.add_exception_handler(RateLimitExceeded, handler)
    return TestClient(app)


@pytest.mark.parametrize("build", [_middleware_app, _decorator_app])
def test_the_apps_handler_answers_the_refusal(build: Any) -> None:
    seen.clear()
    client = build(slow_down)
    assert client.get("/").status_code == 200
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused.json() == {"slow": "down", "path": "/"}
    # exc.headers carries what a client needs to back off, for the handler to pass on
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"].endswith(";q=1;w=60")
    assert "content-type" not in seen[-1].headers  # the handler chooses its own body
    assert seen[-1].verdict.status == 429 and not seen[-1].verdict.allowed
    assert seen[-1].status_code == 429


@pytest.mark.parametrize("build", [_middleware_app, _decorator_app])
def test_a_plain_function_handler_works_too(build: Any) -> None:
    client = build(slow_down_sync)
    client.get("/")
    refused = client.get("/")
    assert (refused.status_code, refused.text) == (429, "wait a bit")


@pytest.mark.parametrize("build", [_middleware_app, _decorator_app])
def test_without_a_handler_the_refusal_is_problem_json(build: Any) -> None:
    client = build(None)
    client.get("/")
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429


@pytest.mark.parametrize("build", [_middleware_app, _decorator_app])
def test_a_handler_that_fails_is_a_500_not_a_pass(build: Any) -> None:
    def broken(request: Request, exc: Exception) -> Response:
        raise RuntimeError("the handler has a bug")

    client = TestClient(build(broken).app, raise_server_exceptions=False)
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 500


def test_a_generic_http_exception_handler_does_not_replace_the_refusal() -> None:
    """Only a handler for RateLimitExceeded itself counts: FastAPI registers one for every
    HTTPException, which would turn the 429 into {"detail": ...}."""
    from starlette.exceptions import HTTPException

    def generic(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("generic", 418)

    limiter = RateLimiter("memory://", default="1/minute")
    app = Starlette(routes=[Route("/", hello)], exception_handlers={HTTPException: generic})
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    client = TestClient(app)
    client.get("/")
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"


def test_fastapi_dependency_uses_the_handler_registered_after_install() -> None:
    fastapi = pytest.importorskip("fastapi")
    from renderkit.ratelimit import RateLimit

    limiter = RateLimiter("memory://", default="1000/minute")
    app = fastapi.FastAPI()
    install(app)
    app.add_exception_handler(RateLimitExceeded, slow_down)

    @app.get("/", dependencies=[fastapi.Depends(RateLimit("1/minute", limiter=limiter))])
    async def root() -> dict[str, str]:
        return {"ok": "yes"}

    client = TestClient(app)
    assert client.get("/").status_code == 200
    refused = client.get("/")
    assert refused.status_code == 429 and refused.json()["slow"] == "down"


def test_a_plain_function_handler_runs_off_the_event_loop() -> None:
    """As in Starlette's exception middleware: a sync handler never blocks the loop."""
    import threading

    threads: dict[str, threading.Thread] = {}

    async def where(request: Request) -> PlainTextResponse:
        threads["loop"] = threading.current_thread()
        return PlainTextResponse("ok")

    def handler(request: Request, exc: Exception) -> Response:
        threads["handler"] = threading.current_thread()
        return PlainTextResponse("later", 429)

    app = Starlette(routes=[Route("/", where)])
    app.add_middleware(RateLimitMiddleware, limiter=RateLimiter("memory://", default="1/minute"))
    app.add_exception_handler(RateLimitExceeded, handler)
    client = TestClient(app)
    client.get("/")
    assert client.get("/").text == "later"
    assert threads["handler"] is not threads["loop"]


def test_a_callable_object_with_an_async_call_is_awaited() -> None:
    class Handler:
        async def __call__(self, request: Request, exc: Exception) -> Response:
            return PlainTextResponse("object", 429)

    client = _middleware_app(Handler())
    client.get("/")
    assert client.get("/").text == "object"
