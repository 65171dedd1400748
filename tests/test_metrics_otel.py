"""With the OpenTelemetry SDK: semconv metrics, server spans continuing traceparent, OTLP."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

pytest.importorskip("opentelemetry.sdk", reason="needs renderkit[otel]")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from renderkit._otel import OtelExport
from renderkit.metrics import DURATION_BUCKETS, RequestMetrics, RequestMetricsMiddleware

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def build() -> tuple[TestClient, InMemoryMetricReader, InMemorySpanExporter, OtelExport]:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    otel = OtelExport(
        meter_provider=MeterProvider(metric_readers=[reader]),
        tracer_provider=tracer_provider,
        buckets=DURATION_BUCKETS,
    )
    seen: dict[str, str] = {}

    async def item(request: Request) -> PlainTextResponse:
        seen.update(otel.inject({}))
        return PlainTextResponse("ok")

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("no")

    metrics = RequestMetrics(otel=otel, public=True)
    app = Starlette(routes=[Route("/items/{item_id}", item), Route("/boom", boom)])
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    client = TestClient(app, raise_server_exceptions=False)
    client.seen = seen  # type: ignore[attr-defined]
    return client, reader, spans, otel


def test_request_duration_uses_the_semantic_convention_name_and_attributes() -> None:
    """http.server.request.duration, unit s, with method, route, status and error.type."""
    client, reader, _, _ = build()
    client.get("/items/1")
    client.get("/boom")
    data = reader.get_metrics_data()
    (metric,) = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "http.server.request.duration"
    ]
    assert metric.unit == "s"
    points = {
        (p.attributes["http.route"], p.attributes["http.response.status_code"]): p
        for p in metric.data.data_points
    }
    assert points[("/items/{item_id}", 200)].count == 1
    failed = points[("/boom", 500)]
    assert failed.attributes["error.type"] == "500"
    assert tuple(failed.explicit_bounds) == DURATION_BUCKETS


def test_server_span_continues_the_callers_traceparent_and_propagates_it() -> None:
    """The span is a child of the incoming trace; outgoing headers carry the same trace id."""
    client, _, spans, _ = build()
    client.get("/items/7", headers={"traceparent": TRACEPARENT})
    (span,) = spans.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.name == "GET /items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert client.seen["traceparent"].split("-")[1] == TRACE_ID  # type: ignore[attr-defined]


def test_a_failing_request_marks_its_span_as_an_error() -> None:
    """A handler that raises gives an ERROR span with error.type 500."""
    client, _, spans, _ = build()
    client.get("/boom")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "500"


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        type(self).received.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_from_env_exports_over_otlp_to_the_configured_endpoint(collector: str, monkeypatch) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT turns on OTLP/HTTP export: the collector gets both signals."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
    _Collector.received.clear()
    metrics = RequestMetrics.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector}, public=True)
    assert metrics.otel is not None

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/x", item)])
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    TestClient(app).get("/x")
    metrics.otel.shutdown()
    assert "/v1/metrics" in _Collector.received
    assert "/v1/traces" in _Collector.received
