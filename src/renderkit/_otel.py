"""The OpenTelemetry side of request metrics: OTLP export and W3C trace context.

Used only when the OpenTelemetry SDK is installed (``pip install 'renderkit[otel]'``) and
asked for (``RequestMetrics(otel=OtelExport())``, or ``RequestMetrics.from_env()`` with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set). Each request then also lands in OpenTelemetry's
``http.server.request.duration`` histogram and runs inside a server span continued from the
caller's ``traceparent``, so outgoing calls made while it runs carry the same trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from renderkit._optional import require

__all__ = ["OtelExport"]


def _carrier(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's trace headers as the text map OpenTelemetry's propagators read."""
    wanted = (b"traceparent", b"tracestate", b"baggage")
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in wanted}


class OtelExport:
    """Record request durations and server spans with OpenTelemetry's providers.

    ``meter_provider`` / ``tracer_provider``: the SDK providers to use (default: the global
    ones, which an app configured with ``opentelemetry-instrument`` already has).
    """

    def __init__(
        self,
        *,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        buckets: Sequence[float] = (),
    ) -> None:
        metrics = require("opentelemetry.metrics", extra="otel", feature="OtelExport")
        trace = require("opentelemetry.trace", extra="otel", feature="OtelExport")
        self._propagate = require("opentelemetry.propagate", extra="otel", feature="OtelExport")
        self._kind = trace.SpanKind.SERVER
        self._error = trace.StatusCode.ERROR
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("renderkit")
        advice = {"explicit_bucket_boundaries_advisory": list(buckets)} if buckets else {}
        self._duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            **advice,
        )
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("renderkit")
        self._owned: list[Any] = []  # providers built by otlp(), flushed by shutdown()

    @classmethod
    def otlp(cls, buckets: Sequence[float] = ()) -> OtelExport:
        """Export metrics and spans over OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``.

        The exporters read the standard ``OTEL_EXPORTER_OTLP_*`` variables themselves.
        """
        feature = "OtelExport.otlp"
        sdk_metrics = require("opentelemetry.sdk.metrics", extra="otel", feature=feature)
        readers = require("opentelemetry.sdk.metrics.export", extra="otel", feature=feature)
        sdk_trace = require("opentelemetry.sdk.trace", extra="otel", feature=feature)
        spans = require("opentelemetry.sdk.trace.export", extra="otel", feature=feature)
        otlp_metrics = require(
            "opentelemetry.exporter.otlp.proto.http.metric_exporter", extra="otel", feature=feature
        )
        otlp_spans = require(
            "opentelemetry.exporter.otlp.proto.http.trace_exporter", extra="otel", feature=feature
        )
        reader = readers.PeriodicExportingMetricReader(otlp_metrics.OTLPMetricExporter())
        tracer_provider = sdk_trace.TracerProvider()
        tracer_provider.add_span_processor(spans.BatchSpanProcessor(otlp_spans.OTLPSpanExporter()))
        meter_provider = sdk_metrics.MeterProvider(metric_readers=[reader])
        export = cls(
            meter_provider=meter_provider, tracer_provider=tracer_provider, buckets=buckets
        )
        export._owned = [meter_provider, tracer_provider]
        return export

    def shutdown(self) -> None:
        """Flush and stop the exporters :meth:`otlp` started (register it as a shutdown hook)."""
        for provider in self._owned:
            provider.shutdown()

    def record(
        self, method: str, route: str, status: int, duration: float, error_type: str
    ) -> None:
        """Add one request to ``http.server.request.duration`` with the semconv attributes."""
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": status,
        }
        if error_type:
            attributes["error.type"] = error_type
        self._duration.record(duration, attributes)

    @contextlib.contextmanager
    def server_span(self, scope: Mapping[str, Any]) -> Iterator[Any]:
        """A SERVER span for the request, continuing the caller's ``traceparent`` if any."""
        parent = self._propagate.extract(_carrier(scope.get("headers", ())))
        method = scope.get("method", "GET")
        with self._tracer.start_as_current_span(
            method, context=parent, kind=self._kind, attributes={"http.request.method": method}
        ) as span:
            yield span

    def finish_span(self, span: Any, route: str | None, status: int, failed: bool) -> None:
        """Name the span after its route and record the status (an error above 499)."""
        if route:
            span.update_name(f"{span.name} {route}")
            span.set_attribute("http.route", route)
        if status:
            span.set_attribute("http.response.status_code", status)
        if failed or status >= 500:
            span.set_status(self._error)
            span.set_attribute("error.type", str(status or 500))

    def inject(self, headers: dict[str, str]) -> dict[str, str]:
        """Add the current trace context (``traceparent``) to outgoing ``headers``."""
        self._propagate.inject(headers)
        return headers
