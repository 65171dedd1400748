"""Request metrics per route template: counts, errors, latency, slow-request log.

::

    from renderkit.metrics import RequestMetrics, RequestMetricsMiddleware

    metrics = RequestMetrics.from_env(slow_threshold=1.0)
    app = Starlette(routes=[*routes, *metrics.routes("/metrics")])   # Prometheus + /metrics/json
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)

Counting is done by prometheus_client under OpenTelemetry's HTTP semantic-convention names
(``http_server_request_duration_seconds`` with ``http_request_method``, ``http_route``,
``http_response_status_code`` and ``error_type``; ``http_server_active_requests``). With
``PROMETHEUS_MULTIPROC_DIR`` set, every worker process writes to that directory and
``/metrics`` adds them all up, whichever worker answers. Requests are grouped by *route
template* (``/items/{id}``), never the raw path, and at most ``max_series`` (method, route)
pairs exist, so ids in URLs cannot explode the number of series.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from renderkit._asgi import Message, Receive, Scope, Send, path_matcher
from renderkit._context import correlation_id_var
from renderkit._http import ProxyTrust, access_client, parse_networks
from renderkit._optional import require
from renderkit._otel import OtelExport
from renderkit.config import Settings, env, environment
from renderkit.health import CheckResult

if TYPE_CHECKING:
    from starlette.routing import Route

    from renderkit._asgi import ASGIApp

# Plain sorted() order, as tests/test_public_api.py checks (not ruff's isort-style order).
__all__ = [
    "DURATION_BUCKETS",
    "PROMETHEUS_BUCKETS",
    "UNMATCHED_ROUTE",
    "MetricsSettings",
    "OtelExport",
    "RequestMetrics",
    "RequestMetricsMiddleware",
    "metrics_endpoint",
    "route_template",
]

logger = logging.getLogger("renderkit.metrics")

UNMATCHED_ROUTE = "<unmatched>"
"""The one label shared by every request no route matched (404s, scans)."""
OTHER_ROUTE = "<other>"

DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of ``http.server.request.duration``: OpenTelemetry's advice."""
PROMETHEUS_BUCKETS = DURATION_BUCKETS  # the name earlier releases exported

DURATION = "http_server_request_duration_seconds"
ACTIVE = "http_server_active_requests"
SLOW = "renderkit_http_server_slow_requests_total"
LABELS = ("http_request_method", "http_route", "http_response_status_code", "error_type")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LOOPBACK = ("127.0.0.0/8", "::1/128")


class MetricsSettings(Settings):
    """Where worker processes share metrics, and who may read them."""

    multiprocess_dir: str | None = env("PROMETHEUS_MULTIPROC_DIR", default=None)
    """An empty directory shared by the server's worker processes (uvicorn --workers, gunicorn);
    with it /metrics adds every worker up. Read by prometheus_client at import."""
    token: str | None = env("METRICS_TOKEN", default=None, secret=True)
    """Bearer token for /metrics and /metrics/json. In production without it, only loopback callers
    may read metrics."""
    otlp_endpoint: str | None = env("OTEL_EXPORTER_OTLP_ENDPOINT", default=None)
    """Where to export request metrics and spans over OTLP/HTTP as well (needs renderkit[otel]); the
    exporter reads the other OTEL_EXPORTER_OTLP_* variables."""


_MEMO_SIZE = 4096
"""Most (method, route, status, failed) keys :meth:`RequestMetrics.record` remembers."""


class _InFlight:
    """The requests in flight for one method, in a single process: a deque's ``append`` and
    ``pop`` are atomic, so ``inc``/``dec`` take no lock, and the gauge reads the length only
    when scraped (prometheus_client's ``set_function``). In multiprocess mode the gauge's own
    ``inc``/``dec`` are used instead: only they reach the files every worker shares."""

    __slots__ = ("_marks", "dec", "inc")

    def __init__(self) -> None:
        self._marks: deque[None] = deque()
        # The deque's own methods (a partial is called in C): no Python frame per request.
        self.inc: Callable[[], None] = functools.partial(self._marks.append, None)
        self.dec: Callable[[], object] = self._marks.pop

    def __len__(self) -> int:
        return len(self._marks)


class _Bucket:
    """One histogram child with the labels it was made for (what :meth:`RequestMetrics.record`
    needs after its one dict lookup)."""

    __slots__ = ("child", "error_type", "method", "route")

    def __init__(self, child: Any, method: str, route: str, error_type: str) -> None:
        self.child = child
        self.method = method
        self.route = route
        self.error_type = error_type


class RequestMetrics:
    """The store: request duration, status and error counts per (method, route template).

    ``slow_threshold``: seconds after which a request is logged at WARNING with its correlation
    id (None: never). ``max_series``: bound on distinct (method, route) pairs; more are counted
    under ``<other>`` (a warning is logged once). ``namespace``: an optional prefix for the
    metric names. ``token`` / ``trusted_networks`` / ``trust`` / ``public``: who may read the
    endpoints (see :meth:`may_read`). ``multiprocess_dir``: the ``PROMETHEUS_MULTIPROC_DIR``
    every worker writes to (default: that variable; it must be in the environment before
    prometheus_client is imported, which is how prometheus_client chooses its storage). The
    directory is created when missing.
    """

    def __init__(
        self,
        *,
        slow_threshold: float | None = 1.0,
        max_series: int = 1000,
        namespace: str = "",
        token: str | None = None,
        trusted_networks: Sequence[str] = LOOPBACK,
        trust: ProxyTrust | None = None,
        public: bool | None = None,
        multiprocess_dir: str | None = None,
        otel: OtelExport | None = None,
    ) -> None:
        _check_options(slow_threshold, max_series, namespace, token)
        prom = require("prometheus_client", extra="metrics", feature="renderkit.metrics")
        self.slow_threshold = slow_threshold
        self.max_series = max_series
        self.namespace = namespace
        self.token = token
        self.trusted_networks = parse_networks(trusted_networks)
        self.trust = trust or ProxyTrust.none()
        self.public = environment() == "development" if public is None else public
        if multiprocess_dir is None:
            # prometheus_client switches to files whenever the variable is set, so follow it.
            multiprocess_dir = MetricsSettings.load().multiprocess_dir
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir is not None:
            os.makedirs(multiprocess_dir, exist_ok=True)
        self._registry = prom.CollectorRegistry(auto_describe=True)
        prefix = f"{namespace}_" if namespace else ""
        self._duration = prom.Histogram(
            prefix + DURATION.removesuffix("_seconds"),
            "Duration of HTTP server requests.",
            LABELS,
            unit="seconds",
            buckets=DURATION_BUCKETS,
            registry=self._registry,
        )
        self._active = prom.Gauge(
            prefix + ACTIVE,
            "Number of active HTTP server requests.",
            ("http_request_method",),
            registry=self._registry,
            multiprocess_mode="livesum",
        )
        self._slow_total = prom.Counter(
            prefix + SLOW.removesuffix("_total"),
            "Requests slower than the slow-request threshold.",
            registry=self._registry,
        )
        self._lock = threading.Lock()
        # (method, route, status, failed) as record() gets them -> the labelled histogram child
        # and the labels it stands for, resolved once; at most _MEMO_SIZE entries are kept.
        self._buckets: dict[tuple[str, str | None, int, bool], _Bucket] = {}
        self._series: set[tuple[str, str]] = set()
        self._active_children: dict[str, Any] = {}
        self._started = time.time()
        self._overflow_logged = False
        self.otel = otel

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> RequestMetrics:
        """Build with METRICS_TOKEN and PROMETHEUS_MULTIPROC_DIR from the environment.

        With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, requests are also exported over OTLP (this
        needs ``renderkit[otel]``) and served inside spans continuing the caller's trace.
        """
        settings = MetricsSettings.load(environ)
        options.setdefault("token", settings.token)
        options.setdefault("multiprocess_dir", settings.multiprocess_dir)
        if settings.otlp_endpoint and "otel" not in options:
            options["otel"] = OtelExport.otlp(DURATION_BUCKETS)
        if "public" not in options and environ is not None:
            options["public"] = environment(environ) == "development"
        return cls(**options)

    # --- recording (the per-request path: one dict lookup and one observe) -----------------

    def _series_key(self, method: str, route: str | None) -> tuple[str, str]:
        method = method if method in _METHODS else "_OTHER"
        key = (method, route or UNMATCHED_ROUTE)
        if key in self._series:
            return key
        with self._lock:
            if len(self._series) < self.max_series:
                self._series.add(key)
                return key
            if not self._overflow_logged:
                self._overflow_logged = True
                logger.warning(
                    "request metrics reached max_series=%d distinct (method, route) pairs; "
                    "further routes are counted as %r. Raise max_series if your app really "
                    "has that many routes.",
                    self.max_series,
                    OTHER_ROUTE,
                )
        return (method, OTHER_ROUTE)

    def record(
        self,
        method: str,
        route: str | None,
        status: int,
        duration: float,
        *,
        error: bool = False,
    ) -> None:
        """Count one finished request (``error``: it raised; 5xx statuses count as errors too)."""
        duration = max(duration, 0.0)
        key = (method, route, status, error or status >= 500)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._bucket(key)
        bucket.child.observe(duration)
        if self.otel is not None:
            self.otel.record(bucket.method, bucket.route, status, duration, bucket.error_type)
        if self.slow_threshold is not None and duration >= self.slow_threshold:
            self._slow(bucket.method, bucket.route, status, duration)

    def _bucket(self, key: tuple[str, str | None, int, bool]) -> _Bucket:
        """Resolve the labels and the histogram child of one :meth:`record` key, and keep them.

        Methods and mounted paths come from clients, so a full memo starts over (the series
        themselves stay bounded by ``max_series``)."""
        method, route, status, failed = key
        method_label, route_label = self._series_key(method, route)
        error_type = str(status or 500) if failed else ""
        child = self._duration.labels(method_label, route_label, str(status), error_type)
        bucket = _Bucket(child, method_label, route_label, error_type)
        if len(self._buckets) >= _MEMO_SIZE:
            self._buckets.clear()
        self._buckets[key] = bucket
        return bucket

    def _slow(self, method: str, route: str, status: int, duration: float) -> None:
        self._slow_total.inc()
        request_id = correlation_id_var.get()
        logger.warning(
            "slow request: %s %s took %.0f ms (status %d, request_id %s)",
            method,
            route,
            duration * 1000,
            status,
            request_id or "-",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(duration * 1000, 1),
                "request_id": request_id,
            },
        )

    def active(self, method: str) -> Any:
        """The in-flight gauge for ``method`` (``inc()`` on entry, ``dec()`` on exit)."""
        method = method if method in _METHODS else "_OTHER"
        gauge = self._active_children.get(method)
        if gauge is None:
            with self._lock:  # one counter per method, even when two threads start at once
                gauge = self._active_children.get(method)
                if gauge is None:
                    gauge = child = self._active.labels(method)
                    if self.multiprocess_dir is None:
                        gauge = _InFlight()
                        child.set_function(gauge.__len__)
                    self._active_children[method] = gauge
        return gauge

    def reset(self) -> None:
        """Forget every series (for tests; not possible in multiprocess mode)."""
        if self.multiprocess_dir is not None:
            raise RuntimeError(
                "RequestMetrics.reset() cannot clear PROMETHEUS_MULTIPROC_DIR's files while "
                "workers write them; start the server with an empty directory instead"
            )
        with self._lock:
            self._duration.clear()
            self._buckets.clear()
            self._series.clear()
            self._started = time.time()

    # --- reading ----------------------------------------------------------------------------

    def _collected(self) -> Any:
        """The registry to read: this process's, or every worker's in multiprocess mode."""
        if self.multiprocess_dir is None:
            return self._registry
        prom = require("prometheus_client", extra="metrics", feature="renderkit.metrics")
        from prometheus_client import multiprocess

        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return registry

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view: totals, then one entry per series with latency percentiles (ms)."""
        series, slow = _read_series(self._collected(), self.namespace)
        routes = [_route_entry(method, route, s) for (method, route), s in sorted(
            series.items(), key=lambda item: (item[0][1], item[0][0])
        )]  # fmt: skip
        total = sum(r["count"] for r in routes)
        errors = sum(r["errors"] for r in routes)
        return {
            "uptime_seconds": round(time.time() - self._started, 1),
            "requests": total,
            "errors": errors,
            "error_rate": round(errors / total, 4) if total else 0.0,
            "slow_requests": slow,
            "routes": routes,
        }

    def stats(self) -> dict[str, Any]:
        """Totals only (requests, errors, error rate, slow requests, series)."""
        snap = self.snapshot()
        return {
            "requests": snap["requests"],
            "errors": snap["errors"],
            "error_rate": snap["error_rate"],
            "slow_requests": snap["slow_requests"],
            "series": len(snap["routes"]),
            "multiprocess": self.multiprocess_dir is not None,
        }

    def health_check(self) -> CheckResult:
        """Always healthy (metrics never fail a request); details carry the totals."""
        return CheckResult.healthy("collecting request metrics", **self.stats())

    def prometheus_text(self) -> str:
        """The Prometheus text exposition, written by prometheus_client."""
        prom = require("prometheus_client", extra="metrics", feature="renderkit.metrics")
        return str(prom.generate_latest(self._collected()).decode())

    def may_read(
        self, authorization: str | None, peer: str | None, headers: Iterable[tuple[bytes, bytes]]
    ) -> bool:
        """Whether a caller may read the endpoints: public, the bearer token, or a trusted client.

        The client address is the one ``trust`` resolves (the TCP peer by default), never a
        forwarded header the preset does not trust.
        """
        if self.public:
            return True
        if self.token is not None and bearer_ok(authorization, self.token):
            return True
        if not self.trusted_networks:
            return False
        address = _address(access_client(peer, headers, self.trust))
        return address is not None and any(address in n for n in self.trusted_networks)

    def routes(self, path: str = "/metrics", *, token: str | None = None) -> list[Route]:
        """Starlette routes: ``GET path`` (Prometheus text) and ``GET path/json`` (snapshot).

        ``token`` replaces the store's token for these routes. Callers :meth:`may_read`
        refuses get 401.
        """
        from starlette.routing import Route

        if not path.startswith("/") or path.endswith("/"):
            raise ValueError(f"metrics path {path!r} must start with '/' and not end with '/'")
        return [
            Route(path, metrics_endpoint(self, "prometheus", token=token), methods=["GET"]),
            Route(f"{path}/json", metrics_endpoint(self, "json", token=token), methods=["GET"]),
        ]

    def render(self, fmt: Literal["prometheus", "json"]) -> tuple[bytes, bytes]:
        """Return ``(body, content type)`` for one exposition format (used by the endpoints)."""
        if fmt == "json":
            return json.dumps(self.snapshot()).encode(), b"application/json"
        return self.prometheus_text().encode(), b"text/plain; version=0.0.4; charset=utf-8"


def _check_options(
    slow_threshold: float | None, max_series: int, namespace: str, token: str | None
) -> None:
    if slow_threshold is not None and not slow_threshold > 0:
        raise ValueError(
            f"RequestMetrics(slow_threshold={slow_threshold!r}): use seconds > 0, or None"
        )
    if not isinstance(max_series, int) or max_series < 1:
        raise ValueError(f"RequestMetrics(max_series={max_series!r}): use an integer >= 1")
    if namespace and (not namespace.replace("_", "").isalnum() or namespace[0].isdigit()):
        raise ValueError(
            f"RequestMetrics(namespace={namespace!r}): use letters, digits and '_' only"
        )
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ValueError("RequestMetrics(token=...): use a non-empty string, or None")


def _address(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value) if value else None
    except ValueError:
        return None


class _Series:
    __slots__ = ("buckets", "count", "errors", "statuses", "total")

    def __init__(self) -> None:
        self.count = 0.0
        self.errors = 0.0
        self.total = 0.0
        self.statuses: dict[str, float] = {}
        self.buckets: dict[float, float] = {}


def _read_series(registry: Any, namespace: str) -> tuple[dict[tuple[str, str], _Series], int]:
    """Fold the duration histogram's samples into one :class:`_Series` per (method, route)."""
    prefix = f"{namespace}_" if namespace else ""
    name, slow_name = prefix + DURATION, prefix + SLOW
    series: dict[tuple[str, str], _Series] = {}
    slow = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == slow_name:
                slow += sample.value
            if not sample.name.startswith(name):
                continue
            labels = sample.labels
            key = (labels["http_request_method"], labels["http_route"])
            entry = series.setdefault(key, _Series())
            if sample.name == name + "_count":
                entry.count += sample.value
                status = labels["http_response_status_code"]
                entry.statuses[status] = entry.statuses.get(status, 0) + sample.value
                if labels["error_type"]:
                    entry.errors += sample.value
            elif sample.name == name + "_sum":
                entry.total += sample.value
            elif sample.name == name + "_bucket":
                bound = float(labels["le"])
                entry.buckets[bound] = entry.buckets.get(bound, 0) + sample.value
    return series, int(slow)


def _quantile(buckets: Mapping[float, float], count: float, q: float) -> float:
    """Linear interpolation inside the bucket holding rank ``q`` (Prometheus' method)."""
    if not count:
        return 0.0
    rank = q * count
    lower, below = 0.0, 0.0
    for bound in sorted(buckets):
        cumulative = buckets[bound]
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            span = cumulative - below
            return lower + (bound - lower) * ((rank - below) / span if span else 1.0)
        lower, below = bound, cumulative
    return lower


def _route_entry(method: str, route: str, s: _Series) -> dict[str, Any]:
    count = int(s.count)
    return {
        "method": method,
        "route": route,
        "count": count,
        "errors": int(s.errors),
        "error_rate": round(s.errors / s.count, 4) if s.count else 0.0,
        "statuses": {k: int(v) for k, v in sorted(s.statuses.items()) if v},
        "latency_ms": {
            "mean": round(s.total / s.count * 1000, 3) if s.count else 0.0,
            "p50": round(_quantile(s.buckets, s.count, 0.50) * 1000, 3),
            "p95": round(_quantile(s.buckets, s.count, 0.95) * 1000, 3),
            "p99": round(_quantile(s.buckets, s.count, 0.99) * 1000, 3),
        },
    }


def bearer_ok(authorization: str | None, token: str | None) -> bool:
    """True when no token is required or ``authorization`` is ``Bearer <token>``."""
    if token is None:
        return True
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return secrets.compare_digest(authorization[7:].strip().encode(), token.encode())


def metrics_endpoint(
    metrics: RequestMetrics,
    fmt: Literal["prometheus", "json"] = "prometheus",
    *,
    token: str | None = None,
) -> ASGIApp:
    """An ASGI endpoint serving ``metrics`` as Prometheus text or JSON, for allowed callers."""
    if fmt not in ("prometheus", "json"):
        raise ValueError(f"metrics_endpoint(fmt={fmt!r}): use 'prometheus' or 'json'")

    return _MetricsEndpoint(metrics, fmt, token)


class _MetricsEndpoint:
    # A class instance (not a function) so Starlette's Route treats it as an ASGI app.
    def __init__(
        self, metrics: RequestMetrics, fmt: Literal["prometheus", "json"], token: str | None
    ) -> None:
        self.metrics = metrics
        self.fmt: Literal["prometheus", "json"] = fmt
        self.token = token

    def _allowed(self, scope: Scope) -> bool:
        headers = scope.get("headers", ())
        authorization = None
        for key, value in headers:
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        if self.token is not None:
            return bearer_ok(authorization, self.token)
        client = scope.get("client")
        return self.metrics.may_read(authorization, client[0] if client else None, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._allowed(scope):
            body, ctype, status = (
                b"metrics need 'Authorization: Bearer <token>' (METRICS_TOKEN) or a trusted "
                b"network",
                b"text/plain",
                401,
            )
        else:
            body, ctype = self.metrics.render(self.fmt)
            status = 200
        headers = [
            (b"content-type", ctype),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="metrics"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def route_template(scope: Scope, root_path: str = "") -> str | None:
    """The route template Starlette matched (``/api/items/{id}``), or None when none matched.

    ``root_path``: the scope's root path when the request entered the middleware, so the path
    of every ``Mount`` crossed since is kept in front of the inner route's template.
    """
    route = scope.get("route")
    if route is None:
        route = _route_by_endpoint(scope)
        if route is None:
            return None
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    current_root = scope.get("root_path", "")
    prefix = current_root[len(root_path) :] if current_root.startswith(root_path) else ""
    if prefix and not (template and prefix.endswith(template)):
        return prefix + template
    return prefix or template or "/"


def _route_by_endpoint(scope: Scope) -> Any:
    """Starlette releases that do not set ``scope["route"]`` still set the matched endpoint:
    find the router's route holding it (first match), else None."""
    endpoint = scope.get("endpoint")
    router = scope.get("router")
    if endpoint is None or router is None:
        return None
    for candidate in getattr(router, "routes", ()):
        if getattr(candidate, "endpoint", None) is endpoint:
            return candidate
    return None


class RequestMetricsMiddleware:
    """Pure ASGI middleware timing each HTTP request into a :class:`RequestMetrics`.

    The time runs from the call to the end of the response body. A request that raises counts
    as an error with status 500 (and the exception propagates). ``exclude_paths``: not counted
    (``"/x"`` or ``"/x/*"``), e.g. the metrics endpoint itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: RequestMetrics | None = None,
        exclude_paths: Sequence[str] | Iterable[str] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics if metrics is not None else RequestMetrics()
        patterns = tuple(exclude_paths)
        self._excluded = path_matcher(patterns) if patterns else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self._excluded is not None and self._excluded(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        otel = self.metrics.otel
        if otel is None:
            await self._timed(scope, receive, send, None)
            return
        with otel.server_span(scope) as span:
            await self._timed(scope, receive, send, span)

    async def _timed(self, scope: Scope, receive: Receive, send: Send, span: Any) -> None:
        start = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = 0
        method = scope.get("method", "GET")
        active = self.metrics.active(method)
        active.inc()

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        failed = True
        try:
            await self.app(scope, receive, send_timed)
            failed = False
        finally:
            # Raised (or cancelled) mid-request: an error, with the status the client got if
            # the response had started, else the 500 the server will send.
            active.dec()
            route = route_template(scope, root_path)
            status = status or (500 if failed else 0)
            self.metrics.record(method, route, status, time.perf_counter() - start, error=failed)
            if span is not None:
                self.metrics.otel.finish_span(span, route, status, failed)  # type: ignore[union-attr]
