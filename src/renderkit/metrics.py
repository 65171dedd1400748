"""Request metrics per route template: counts, errors, latency percentiles, slow-request log.

::

    from renderkit.metrics import RequestMetrics, RequestMetricsMiddleware

    metrics = RequestMetrics(slow_threshold=1.0)
    app = Starlette(routes=[*routes, *metrics.routes("/metrics")])   # Prometheus + /metrics/json
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)

Requests are grouped by method and *route template* (``/items/{id}``, read from Starlette's
``scope["route"]`` or the Flask URL rule), never the raw path, so ids in URLs cannot explode
the number of series; requests no route matched share one label. Latencies go into a fixed
log-scale histogram per series (about 120 integer counters), so memory is bounded whatever the
traffic, and p50/p95/p99 are read from it within a few per cent.
"""

from __future__ import annotations

import bisect
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from renderkit._asgi import Message, Receive, Scope, Send, path_matcher
from renderkit._context import correlation_id_var
from renderkit.health import CheckResult

if TYPE_CHECKING:
    from starlette.routing import Route

    from renderkit._asgi import ASGIApp

# Plain sorted() order, as tests/test_public_api.py checks (not ruff's isort-style order).
__all__ = [
    "PROMETHEUS_BUCKETS",
    "UNMATCHED_ROUTE",
    "RequestMetrics",
    "RequestMetricsMiddleware",
    "metrics_endpoint",
    "route_template",
]

logger = logging.getLogger("renderkit.metrics")

UNMATCHED_ROUTE = "<unmatched>"
"""The one label shared by every request no route matched (404s, scans)."""
OTHER_ROUTE = "<other>"

PROMETHEUS_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of the exported histogram: the Prometheus client defaults."""


def _fine_bounds() -> tuple[float, ...]:
    # 12% steps from 0.1 ms to 5 min, plus the exported bounds, so exported buckets are exact.
    bounds = set(PROMETHEUS_BUCKETS)
    value = 0.0001
    while value < 300.0:
        bounds.add(round(value, 7))
        value *= 1.12
    return tuple(sorted(bounds))


_BOUNDS = _fine_bounds()
_PROM_INDEX = tuple(_BOUNDS.index(b) for b in PROMETHEUS_BUCKETS)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Series:
    __slots__ = ("buckets", "count", "errors", "max", "statuses", "total")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.total = 0.0
        self.max = 0.0
        self.statuses: dict[int, int] = {}
        self.buckets = [0] * (len(_BOUNDS) + 1)  # last one: above the largest bound

    def quantile(self, q: float) -> float:
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for index, n in enumerate(self.buckets):
            if not n:
                continue
            if seen + n >= rank:
                lower = _BOUNDS[index - 1] if index else 0.0
                upper = _BOUNDS[index] if index < len(_BOUNDS) else self.max
                value = lower + (upper - lower) * ((rank - seen) / n)
                return min(value, self.max)
            seen += n
        return self.max


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RequestMetrics:
    """The store: thread-safe counters and histograms per (method, route template).

    ``slow_threshold``: seconds after which a request is logged at WARNING with its correlation
    id (None: never). ``max_series``: bound on distinct (method, route) pairs; more are counted
    under ``<other>`` (a warning is logged once). ``namespace``: prefix of Prometheus names.
    """

    def __init__(
        self,
        *,
        slow_threshold: float | None = 1.0,
        max_series: int = 1000,
        namespace: str = "renderkit",
    ) -> None:
        if slow_threshold is not None and not slow_threshold > 0:
            raise ValueError(
                f"RequestMetrics(slow_threshold={slow_threshold!r}): use seconds > 0, or None"
            )
        if not isinstance(max_series, int) or max_series < 1:
            raise ValueError(f"RequestMetrics(max_series={max_series!r}): use an integer >= 1")
        if not namespace.replace("_", "").isalnum() or namespace[0].isdigit():
            raise ValueError(
                f"RequestMetrics(namespace={namespace!r}): use letters, digits and '_' only"
            )
        self.slow_threshold = slow_threshold
        self.max_series = max_series
        self.namespace = namespace
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Series] = {}
        self._started = time.time()
        self._overflow_logged = False
        self._slow = 0

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
        method = method if method in _METHODS else "OTHER"
        key = (method, route or UNMATCHED_ROUTE)
        duration = max(duration, 0.0)
        index = bisect.bisect_left(_BOUNDS, duration)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                if len(self._series) >= self.max_series:
                    if not self._overflow_logged:
                        self._overflow_logged = True
                        logger.warning(
                            "request metrics reached max_series=%d distinct (method, route) "
                            "pairs; further routes are counted as %r. Raise max_series if your "
                            "app really has that many routes.",
                            self.max_series,
                            OTHER_ROUTE,
                        )
                    key = (method, OTHER_ROUTE)
                    series = self._series.get(key)
                if series is None:
                    series = self._series[key] = _Series()
            series.count += 1
            if error or status >= 500:
                series.errors += 1
            series.total += duration
            if duration > series.max:
                series.max = duration
            series.statuses[status] = series.statuses.get(status, 0) + 1
            series.buckets[index] += 1
        if self.slow_threshold is not None and duration >= self.slow_threshold:
            self._slow += 1
            logger.warning(
                "slow request: %s %s took %.0f ms (status %d, request_id %s)",
                method,
                key[1],
                duration * 1000,
                status,
                correlation_id_var.get() or "-",
                extra={
                    "method": method,
                    "route": key[1],
                    "status": status,
                    "duration_ms": round(duration * 1000, 1),
                    "request_id": correlation_id_var.get(),
                },
            )

    def reset(self) -> None:
        """Forget every series (for tests and for a deliberate restart of the counters)."""
        with self._lock:
            self._series.clear()
            self._started = time.time()
            self._slow = 0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view: totals, then one entry per series with latency percentiles (ms)."""
        with self._lock:
            items = [(key, _copy(series)) for key, series in self._series.items()]
            slow = self._slow
        routes = []
        total = errors = 0
        for (method, route), s in sorted(items, key=lambda item: (item[0][1], item[0][0])):
            total += s.count
            errors += s.errors
            routes.append(
                {
                    "method": method,
                    "route": route,
                    "count": s.count,
                    "errors": s.errors,
                    "error_rate": round(s.errors / s.count, 4) if s.count else 0.0,
                    "statuses": {str(k): v for k, v in sorted(s.statuses.items())},
                    "latency_ms": {
                        "mean": round(s.total / s.count * 1000, 3) if s.count else 0.0,
                        "p50": round(s.quantile(0.50) * 1000, 3),
                        "p95": round(s.quantile(0.95) * 1000, 3),
                        "p99": round(s.quantile(0.99) * 1000, 3),
                        "max": round(s.max * 1000, 3),
                    },
                }
            )
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
        }

    def health_check(self) -> CheckResult:
        """Always healthy (metrics never fail a request); details carry the totals."""
        return CheckResult.healthy("collecting request metrics", **self.stats())

    def prometheus_text(self) -> str:
        """The Prometheus text exposition (format 0.0.4) of every series."""
        with self._lock:
            items = sorted(
                ((key, _copy(series)) for key, series in self._series.items()),
                key=lambda item: (item[0][1], item[0][0]),
            )
        ns = self.namespace
        lines = [
            f"# HELP {ns}_http_requests_total HTTP requests by method, route template and status.",
            f"# TYPE {ns}_http_requests_total counter",
        ]
        for (method, route), s in items:
            labels = f'method="{method}",route="{_escape(route)}"'
            for status, n in sorted(s.statuses.items()):
                lines.append(f'{ns}_http_requests_total{{{labels},status="{status}"}} {n}')
        lines += [
            f"# HELP {ns}_http_request_errors_total Requests that raised or answered 5xx.",
            f"# TYPE {ns}_http_request_errors_total counter",
        ]
        for (method, route), s in items:
            labels = f'method="{method}",route="{_escape(route)}"'
            lines.append(f"{ns}_http_request_errors_total{{{labels}}} {s.errors}")
        lines += [
            f"# HELP {ns}_http_request_duration_seconds Time to handle a request.",
            f"# TYPE {ns}_http_request_duration_seconds histogram",
        ]
        for (method, route), s in items:
            labels = f'method="{method}",route="{_escape(route)}"'
            cumulative = 0
            position = 0
            for bound, index in zip(PROMETHEUS_BUCKETS, _PROM_INDEX, strict=True):
                while position <= index:
                    cumulative += s.buckets[position]
                    position += 1
                lines.append(
                    f'{ns}_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                    f"{cumulative}"
                )
            lines.append(
                f'{ns}_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {s.count}'
            )
            lines.append(f"{ns}_http_request_duration_seconds_sum{{{labels}}} {s.total:.6f}")
            lines.append(f"{ns}_http_request_duration_seconds_count{{{labels}}} {s.count}")
        return "\n".join(lines) + "\n"

    def routes(self, path: str = "/metrics", *, token: str | None = None) -> list[Route]:
        """Starlette routes: ``GET path`` (Prometheus text) and ``GET path/json`` (snapshot).

        With ``token`` both require ``Authorization: Bearer <token>`` (401 otherwise).
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


def _copy(series: _Series) -> _Series:
    clone = _Series()
    clone.count, clone.errors, clone.total, clone.max = (
        series.count,
        series.errors,
        series.total,
        series.max,
    )
    clone.statuses = dict(series.statuses)
    clone.buckets = list(series.buckets)
    return clone


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
    """An ASGI endpoint serving ``metrics`` as Prometheus text or JSON (optionally token-gated)."""
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = None
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        if not bearer_ok(authorization, self.token):
            body, ctype, status = (
                b"metrics need 'Authorization: Bearer <token>'",
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
        start = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = 0

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        except BaseException:
            # Raised (or cancelled) mid-request: an error, with the status the client got if
            # the response had started, else the 500 the server will send.
            self.metrics.record(
                scope.get("method", "GET"),
                route_template(scope, root_path),
                status or 500,
                time.perf_counter() - start,
                error=True,
            )
            raise
        self.metrics.record(
            scope.get("method", "GET"),
            route_template(scope, root_path),
            status,
            time.perf_counter() - start,
        )
