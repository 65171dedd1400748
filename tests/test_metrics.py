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
    """An app reading its metrics; TestClient's peer is "testclient", not loopback."""
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


def test_percentiles_fall_in_the_bucket_of_the_exact_value() -> None:
    """p50/p95/p99 are interpolated inside the histogram bucket holding the exact value."""
    from renderkit.metrics import DURATION_BUCKETS

    metrics = RequestMetrics(slow_threshold=None)
    rng = random.Random(7)
    samples = [rng.lognormvariate(-4, 1) for _ in range(20_000)]
    for s in samples:
        metrics.record("GET", "/x", 200, s)
    samples.sort()
    latency = metrics.snapshot()["routes"][0]["latency_ms"]
    bounds = (0.0, *DURATION_BUCKETS)
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        exact = samples[int(q * len(samples)) - 1]
        upper = next(i for i, b in enumerate(bounds) if b >= exact)
        low, high = bounds[upper - 1] * 1000, bounds[upper] * 1000
        assert low <= latency[key] <= high, (key, latency[key], exact * 1000)
    assert latency["mean"] == pytest.approx(sum(samples) / len(samples) * 1000, rel=1e-3)


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
    assert {r["method"] for r in metrics.snapshot()["routes"]} == {"GET", "_OTHER"}


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


def test_prometheus_text_uses_opentelemetry_names_and_labels() -> None:
    """http.server.request.duration with method, route, status and error.type labels."""
    metrics = RequestMetrics()
    metrics.record("GET", "/a", 200, 0.003)
    metrics.record("GET", "/a", 503, 0.2)
    metrics.record("POST", '/we"ird\\', 201, 20.0)
    text = metrics.prometheus_text()
    assert "# TYPE http_server_request_duration_seconds histogram" in text
    ok = 'error_type="",http_request_method="GET",http_response_status_code="200",http_route="/a"'
    assert f"http_server_request_duration_seconds_count{{{ok}}} 1.0" in text
    failed = 'error_type="503",http_request_method="GET",http_response_status_code="503"'
    assert f'http_server_request_duration_seconds_count{{{failed},http_route="/a"}} 1.0' in text
    assert f'http_server_request_duration_seconds_bucket{{{ok},le="0.005"}} 1.0' in text
    assert 'http_route="/we\\"ird\\\\"' in text
    assert "renderkit_http_" not in text.replace("renderkit_http_server_slow", "")
    assert text.endswith("\n")


def test_endpoints_are_closed_in_production_unless_token_or_trusted_client() -> None:
    """Outside development: 401 for a public client, even one forging X-Forwarded-For."""
    from renderkit._http import ProxyTrust

    metrics = RequestMetrics(public=False, trust=ProxyTrust.render(), token="t0k")
    assert not metrics.may_read(None, "203.0.113.9", [])
    forged = [(b"x-forwarded-for", b"127.0.0.1")]
    assert not metrics.may_read(None, "10.0.0.5", forged)
    assert metrics.may_read(None, "127.0.0.1", [])
    assert metrics.may_read("Bearer t0k", "203.0.113.9", [])
    assert not metrics.may_read("Bearer nope", "203.0.113.9", [])
    client = make_app(RequestMetrics(public=False, trusted_networks=()))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics/json").status_code == 401
    open_client = make_app(RequestMetrics(public=True))
    assert open_client.get("/metrics").status_code == 200


def test_from_env_reads_the_token_and_production_closes_the_endpoints() -> None:
    """METRICS_TOKEN is the bearer token; production without it is not public."""
    metrics = RequestMetrics.from_env({"APP_ENV": "production", "METRICS_TOKEN": "abc"})
    assert metrics.public is False and metrics.token == "abc"
    assert RequestMetrics.from_env({"APP_ENV": "development"}).public is True
    with pytest.raises(ValueError, match="token"):
        RequestMetrics(token="  ")


def test_active_requests_gauge_goes_up_and_down() -> None:
    """http.server.active_requests counts requests in flight and returns to zero."""
    metrics = RequestMetrics()
    client = make_app(metrics)
    client.get("/items/1")
    text = metrics.prometheus_text()
    assert 'http_server_active_requests{http_request_method="GET"} 0.0' in text


def test_active_requests_gauge_counts_the_request_in_flight() -> None:
    """While a request runs, the gauge of its method reads 1 (threads from TestClient too)."""
    metrics = RequestMetrics()
    seen: list[str] = []

    async def peek(request: Request) -> PlainTextResponse:
        seen.extend(line for line in metrics.prometheus_text().splitlines() if "active" in line)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/peek", peek, methods=["GET", "POST"])])
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    client = TestClient(app)
    client.post("/peek")
    assert 'http_server_active_requests{http_request_method="POST"} 1.0' in seen
    text = metrics.prometheus_text()
    assert 'http_server_active_requests{http_request_method="POST"} 0.0' in text


def test_a_full_label_memo_starts_over_and_loses_no_count(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """record() remembers resolved labels in a bounded memo; when full it is cleared, and
    every request is still counted under the right labels."""
    import renderkit.metrics as module

    monkeypatch.setattr(module, "_MEMO_SIZE", 3)
    metrics = RequestMetrics(max_series=2)
    for _ in range(4):
        for method in ("GET", "POST", "BREW", "PURGE"):
            metrics.record(method, "/a", 200, 0.001)
        metrics.record("GET", "/b", 503, 0.001)
        metrics.record("GET", "/c", 200, 0.001, error=True)
    snap = metrics.snapshot()
    assert snap["requests"] == 24 and snap["errors"] == 8
    counts = {(r["method"], r["route"]): r["count"] for r in snap["routes"]}
    assert counts == {("GET", "/a"): 4, ("POST", "/a"): 4, ("_OTHER", "<other>"): 8,
                      ("GET", "<other>"): 8}  # fmt: skip
    assert len(metrics._buckets) <= 3


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
    assert set(data["routes"][0]["latency_ms"]) == {"mean", "p50", "p95", "p99"}


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


def test_in_flight_gauge_counts_concurrent_threads_without_losing_one() -> None:
    """In one process the in-flight gauge is read when scraped: 8 threads x 500 entries and
    exits each, interleaved, leave it at 0, and 3 requests held open read 3."""
    metrics = RequestMetrics()
    start = threading.Barrier(8)

    def churn() -> None:
        start.wait()
        for _ in range(500):
            gauge = metrics.active("GET")
            gauge.inc()
            gauge.dec()

    threads = [threading.Thread(target=churn) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = metrics.active("GET")
    for _ in range(3):
        held.inc()
    assert 'http_server_active_requests{http_request_method="GET"} 3.0' in (
        metrics.prometheus_text()
    )
    for _ in range(3):
        held.dec()
    assert 'http_server_active_requests{http_request_method="GET"} 0.0' in (
        metrics.prometheus_text()
    )


def test_in_flight_gauge_reaches_the_shared_files_in_multiprocess_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With PROMETHEUS_MULTIPROC_DIR the gauge is prometheus_client's own (a value read at
    scrape time would never reach the files the other workers' /metrics adds up)."""
    import os
    import subprocess
    import sys

    script = (
        "from renderkit.metrics import RequestMetrics\n"
        "m = RequestMetrics()\n"
        "g = m.active('POST'); g.inc(); g.inc()\n"
        "print([l for l in m.prometheus_text().splitlines() if 'active_requests{' in l])\n"
        "g.dec(); g.dec()\n"
        "print([l for l in m.prometheus_text().splitlines() if 'active_requests{' in l])\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert 'http_request_method="POST"} 2.0' in first
    assert 'http_request_method="POST"} 0.0' in second
