"""FastAPI ``Depends(RateLimit(...))``: the one problem+json refusal and the RateLimit headers,
with ``RateLimitMiddleware`` and with ``install(app)`` alone, for endpoints returning data and
endpoints returning a ``Response`` of their own; stacked limits refused by one charge none."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

fastapi = pytest.importorskip("fastapi")

from fastapi import Depends, FastAPI  # noqa: E402
from fastapi.responses import JSONResponse, PlainTextResponse  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from renderkit.ratelimit import (  # noqa: E402
    PROBLEM_TYPE,
    RateLimit,
    RateLimiter,
    RateLimitExceeded,
    RateLimitMiddleware,
    install,
    rate_limit_handler,
)

WIRINGS = ["middleware", "install"]


def _wire(app: FastAPI, limiter: RateLimiter, wiring: str) -> None:
    if wiring == "middleware":
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    elif wiring == "install":
        install(app)


def _endpoints(app: FastAPI, limit: RateLimit) -> None:
    @app.get("/data", dependencies=[Depends(limit)])
    async def data() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/raw", dependencies=[Depends(limit)])
    async def raw() -> Response:
        return JSONResponse({"ok": True}, headers={"x-own": "kept"})


def _assert_problem(response: Any, limit: str) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["type"] == PROBLEM_TYPE and body["status"] == 429 and body["limit"] == limit
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["cache-control"] == "no-store"
    assert response.headers.get_list("ratelimit-policy")
    assert response.headers.get_list("ratelimit")


@pytest.mark.parametrize("wiring", WIRINGS)
@pytest.mark.parametrize("path", ["/data", "/raw"])
def test_headers_and_the_problem_json_refusal(wiring: str, path: str) -> None:
    """JSON-returning and Response-returning endpoints both carry exactly one header pair; the
    third call is the documented problem+json 429, not FastAPI's {"detail": ...}."""
    limiter = RateLimiter("memory://", default="100/hour", strategy="fixed-window")
    app = FastAPI()
    _endpoints(app, RateLimit("2/minute", limiter=limiter))
    _wire(app, limiter, wiring)
    client = TestClient(app)
    first, second, third = (client.get(path) for _ in range(3))
    assert [first.status_code, second.status_code] == [200, 200]
    assert first.headers.get_list("ratelimit-policy") == ['"2/minute";q=2;w=60']
    assert first.headers.get_list("ratelimit")[0].startswith('"2/minute";r=1;t=')
    assert second.headers.get_list("ratelimit")[0].startswith('"2/minute";r=0;t=')
    if path == "/raw":
        assert first.headers["x-own"] == "kept"  # the endpoint's own headers stay
    _assert_problem(third, "2/minute")
    assert third.headers.get_list("ratelimit-policy") == ['"2/minute";q=2;w=60']


@pytest.mark.parametrize("wiring", [*WIRINGS, "none"])
def test_stacked_dependencies_refused_by_one_charge_none(wiring: str) -> None:
    """1/minute and a shared 3/minute on one route: refusals by 1/minute leave the shared
    quota untouched, so the other route of that quota still has two calls."""
    limiter = RateLimiter("memory://", default="100/hour", strategy="fixed-window")
    app = FastAPI()
    tight = RateLimit("1/minute", limiter=limiter)
    quota = RateLimit("3/minute", limiter=limiter, shared="quota")

    @app.get("/stacked", dependencies=[Depends(tight), Depends(quota)])
    async def stacked() -> Response:
        return PlainTextResponse("stacked")

    @app.get(
        "/other", dependencies=[Depends(RateLimit("3/minute", limiter=limiter, shared="quota"))]
    )
    async def other() -> dict[str, bool]:
        return {"ok": True}

    _wire(app, limiter, wiring)
    client = TestClient(app)
    stacked_codes = [client.get("/stacked").status_code for _ in range(4)]
    other_codes = [client.get("/other").status_code for _ in range(3)]
    assert stacked_codes == [200, 429, 429, 429]
    assert other_codes == [200, 200, 429]  # 3 = 1 charged by /stacked + 2 here


def test_a_refused_stack_reports_every_pair_once() -> None:
    """install(app): the 429 of a stacked route carries one pair per limit, not two."""
    limiter = RateLimiter("memory://", strategy="fixed-window")
    app = FastAPI()
    deps = [
        Depends(RateLimit("1/minute", limiter=limiter)),
        Depends(RateLimit("5/minute", limiter=limiter)),
    ]

    @app.get("/x", dependencies=deps)
    async def x() -> Response:
        return PlainTextResponse("x")

    install(app)
    client = TestClient(app)
    ok, refused = client.get("/x"), client.get("/x")
    assert ok.headers.get_list("ratelimit-policy") == ['"1/minute";q=1;w=60', '"5/minute";q=5;w=60']
    _assert_problem(refused, "1/minute")
    assert refused.headers.get_list("ratelimit-policy") == ok.headers.get_list("ratelimit-policy")
    assert refused.headers.get_list("ratelimit")[1].startswith('"5/minute";r=4;')


def test_install_charges_deduct_when_on_the_returned_status() -> None:
    """install(app): a deduct_when limit counts only failed calls, read from the Response the
    endpoint returned itself."""
    limiter = RateLimiter("memory://", strategy="fixed-window")
    app = FastAPI()
    failed = RateLimit("2/minute", limiter=limiter, deduct_when=lambda status: status >= 400)

    @app.post("/login", dependencies=[Depends(failed)])
    async def login(ok: bool = False) -> Response:
        return PlainTextResponse("in" if ok else "no", status_code=200 if ok else 401)

    install(app)
    client = TestClient(app)
    good = [client.post("/login?ok=true").status_code for _ in range(3)]
    bad = [client.post("/login").status_code for _ in range(3)]
    assert good == [200, 200, 200]  # successes are not charged
    assert bad == [401, 401, 429]


def test_without_install_or_middleware_it_still_limits_and_says_what_to_do(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bare dependency: the JSON endpoint gets its headers, a refusal is still a 429 with
    Retry-After and the pair (FastAPI's body), and one warning names install(app)."""
    from renderkit.ratelimit import _fastapi

    monkeypatch.setattr(_fastapi, "_warned", [])
    limiter = RateLimiter("memory://", strategy="fixed-window")
    app = FastAPI()
    _endpoints(app, RateLimit("1/minute", limiter=limiter))
    client = TestClient(app)
    with caplog.at_level(logging.WARNING, "renderkit.ratelimit"):
        first, second, third = client.get("/data"), client.get("/data"), client.get("/data")
    assert first.status_code == 200
    assert first.headers.get_list("ratelimit-policy") == ['"1/minute";q=1;w=60']
    assert [second.status_code, third.status_code] == [429, 429]
    assert int(second.headers["retry-after"]) >= 1
    assert second.headers["ratelimit-policy"] == '"1/minute";q=1;w=60'
    warnings = [r.getMessage() for r in caplog.records if "install(app)" in r.getMessage()]
    assert len(warnings) == 1


def test_the_exception_carries_the_verdict_and_the_handler_refuses_other_errors() -> None:
    """RateLimitExceeded is an HTTPException holding the verdict; the handler is for it only."""
    import asyncio

    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    from renderkit.errors import RenderKitError
    from renderkit.ratelimit import RateLimitPolicy, RequestInfo, RouteLimit

    limiter = RateLimiter("memory://", strategy="fixed-window", default="1/minute")
    policy = RateLimitPolicy(limiter, default=None)
    info = RequestInfo("GET", "/", [], "198.51.100.7", limits=(RouteLimit("1/minute"),))
    policy.decide(info)
    verdict = policy.decide(info)
    exc = RateLimitExceeded(verdict)
    assert isinstance(exc, HTTPException) and isinstance(exc, RenderKitError)
    assert exc.status_code == 429 and exc.verdict is verdict
    assert "content-type" not in exc.headers and "retry-after" in exc.headers
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    response = asyncio.run(rate_limit_handler(request, exc))
    assert response.status_code == 429 and response.body == verdict.body
    with pytest.raises(TypeError, match="RateLimitExceeded"):
        asyncio.run(rate_limit_handler(request, ValueError("boom")))
