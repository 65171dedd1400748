"""Tests for renderkit.metrics: per-route counting, percentiles, bounds, endpoints, slow log."""

from __future__ import annotations

import logging
import random
import threading

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from renderkit._context import correlation_id_var
from renderkit.metrics import (
    UNMATCHED_ROUTE,
    RequestMetrics,
    RequestMetricsMiddleware,
    metrics_endpoint,
)


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("handler failed")


def make_app(metrics: RequestMetrics, token: str | None = None) -> TestClient:
    api = [Route("/users/{user_id:int}", item)]
    app = Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/boom", boom),
            Mount("/api", routes=api),
            *metrics.routes("/metrics", token=token),
        ]
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, exclude_paths=["/metrics/*"])
    return TestClient(app, raise_server_exceptions=False)


def by_route(snapshot: dict, route: str) -> dict:
    return next(r for r in snapshot["routes"] if r["route"] == route)


def test_routes_are_grouped_by_template_not_raw_path() -> None:
    """Ids in URLs collapse into the route template; unmatched paths share one label."""
    metrics = RequestMetrics()
    client = make_app(metrics)
    for i in range(5):
        client.get(f"/items/{i}")
        client.get(f"/no/such/{i}")
    client.get("/api/users/7")
    snap = metrics.snapshot()
    assert by_route(snap, "/items/{item_id}")["count"] == 5
    assert by_route(snap, UNMATCHED_ROUTE)["statuses"] == {"404": 5}
    assert by_route(snap, "/api/users/{user_id:int}")["count"] == 1
    assert not any("/no/such" in r["route"] or "/items/1" in r["route"] for r in snap["routes"])


def test_errors_are_counted_when_a_handler_raises() -> None:
    """An unhandled exception counts as an error with status 500."""
    metrics = RequestMetrics()
    client = make_app(metrics)
    client.get("/boom")
    client.get("/items/1")
    snap = metrics.snapshot()
    assert by_route(snap, "/boom")["errors"] == 1
    assert by_route(snap, "/boom")["statuses"] == {"500": 1}
    assert snap["errors"] == 1 and snap["requests"] == 2


def test_percentiles_are_accurate_within_bucket_resolution() -> None:
    """p50/p95/p99 from the histogram are within ~12% of the exact values."""
    metrics = RequestMetrics(slow_threshold=None)
    rng = random.Random(7)
    samples = [rng.lognormvariate(-4, 1) for _ in range(20_000)]
    for s in samples:
        metrics.record("GET", "/x", 200, s)
    samples.sort()
    latency = metrics.snapshot()["routes"][0]["latency_ms"]
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        exact = samples[int(q * len(samples)) - 1] * 1000
        assert abs(latency[key] - exact) / exact < 0.12, (key, latency[key], exact)
    assert latency["max"] == pytest.approx(samples[-1] * 1000, rel=1e-3)


def test_memory_is_bounded_by_max_series(caplog) -> None:
    """Beyond max_series, new routes share the <other> label, with one warning."""
    metrics = RequestMetrics(max_series=3)
    with caplog.at_level(logging.WARNING, logger="renderkit.metrics"):
        for i in range(50):
            metrics.record("GET", f"/r{i}", 200, 0.001)
    routes = {r["route"] for r in metrics.snapshot()["routes"]}
    assert routes == {"/r0", "/r1", "/r2", "<other>"}
    assert sum("max_series" in r.message for r in caplog.records) == 1
    # Unknown methods collapse too.
    metrics.record("BREW", "/r0", 200, 0.001)
    assert {r["method"] for r in metrics.snapshot()["routes"]} == {"GET", "OTHER"}


def test_slow_request_log_carries_the_correlation_id(caplog) -> None:
    """A request over the threshold is logged once with its request id."""
    metrics = RequestMetrics(slow_threshold=0.5)
    token = correlation_id_var.set("slow-req-1")
    try:
        with caplog.at_level(logging.WARNING, logger="renderkit.metrics"):
            metrics.record("GET", "/x", 200, 0.7)
            metrics.record("GET", "/x", 200, 0.1)
    finally:
        correlation_id_var.reset(token)
    slow = [r for r in caplog.records if "slow request" in r.message]
    assert len(slow) == 1
    assert "slow-req-1" in slow[0].getMessage() and slow[0].request_id == "slow-req-1"  # type: ignore[attr-defined]
    assert metrics.stats()["slow_requests"] == 1


def test_prometheus_text_exposition() -> None:
    """Counters, errors and a cumulative histogram with the standard buckets, labels escaped."""
    metrics = RequestMetrics()
    metrics.record("GET", "/a", 200, 0.003)
    metrics.record("GET", "/a", 503, 0.2)
    metrics.record("POST", '/we"ird\\', 201, 20.0)
    text = metrics.prometheus_text()
    assert 'renderkit_http_requests_total{method="GET",route="/a",status="200"} 1' in text
    assert 'renderkit_http_requests_total{method="GET",route="/a",status="503"} 1' in text
    assert 'renderkit_http_request_errors_total{method="GET",route="/a"} 1' in text
    assert 'le="0.005"} 1' in text and 'le="0.25"} 2' in text
    assert 'renderkit_http_request_duration_seconds_count{method="GET",route="/a"} 2' in text
    assert 'route="/we\\"ird\\\\"' in text
    assert 'method="POST",route="/we\\"ird\\\\",le="10.0"} 0' in text
    assert 'method="POST",route="/we\\"ird\\\\",le="+Inf"} 1' in text
    assert text.endswith("\n")


def test_endpoints_serve_json_and_prometheus_with_optional_token() -> None:
    """/metrics (Prometheus text) and /metrics/json, 401 without the bearer token."""
    metrics = RequestMetrics()
    client = make_app(metrics, token="s3cret")
    client.get("/items/1")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    prom = client.get("/metrics", headers=auth)
    assert prom.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'route="/items/{item_id}"' in prom.text
    data = client.get("/metrics/json", headers=auth).json()
    assert data["requests"] == 1  # excluded metrics paths are not counted
    assert set(data["routes"][0]["latency_ms"]) == {"mean", "p50", "p95", "p99", "max"}


def test_thread_safe_recording() -> None:
    """Concurrent recording from threads loses no count."""
    metrics = RequestMetrics()

    def work() -> None:
        for _ in range(2000):
            metrics.record("GET", "/t", 200, 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert metrics.snapshot()["requests"] == 8000


def test_option_errors_and_health() -> None:
    """Bad options raise naming the option; health_check is healthy with totals."""
    with pytest.raises(ValueError, match="slow_threshold"):
        RequestMetrics(slow_threshold=0)
    with pytest.raises(ValueError, match="max_series"):
        RequestMetrics(max_series=0)
    with pytest.raises(ValueError, match="namespace"):
        RequestMetrics(namespace="bad-name")
    with pytest.raises(ValueError, match="fmt"):
        metrics_endpoint(RequestMetrics(), "xml")  # type: ignore[arg-type]
    result = RequestMetrics().health_check()
    assert result.status == "healthy" and result.details["requests"] == 0
    metrics = RequestMetrics()
    metrics.record("GET", "/", 200, 0.01)
    metrics.reset()
    assert metrics.snapshot()["requests"] == 0


def test_route_template_falls_back_to_the_endpoint_when_route_is_missing() -> None:
    """Without scope["route"] (older Starlette) the template comes from the matched endpoint."""
    from renderkit.metrics import route_template

    routes = [Route("/a/{x}", item), Route("/b/{y}", boom)]
    router = Starlette(routes=routes).router
    assert route_template({"endpoint": boom, "router": router}) == "/b/{y}"
    assert route_template({"endpoint": lambda r: None, "router": router}) is None
    assert route_template({}) is None
