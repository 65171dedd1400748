"""HTTP presentation of a health registry: who sees detail, status codes, bodies, ASGI apps.

Framework-free: :func:`render` turns a report into ``(status, body, content type)``;
:class:`HealthEndpoint` (ASGI), ``renderkit.wsgi.HealthApp`` and the Flask blueprint only
translate a request into :class:`RequestFacts` and the answer back.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from renderkit._http import ProxyTrust, access_client, header
from renderkit.health._calls import is_async_callable, start_in_thread
from renderkit.health._loop import run_blocking
from renderkit.health._report import IETF, HealthReport
from renderkit.health._result import STATUSES, Status
from renderkit.health._runner import describe, scrub_value

if TYPE_CHECKING:
    from starlette.routing import Route

    from renderkit.platform import Platform


__all__ = [
    "HEALTH_JSON",
    "KINDS",
    "RESERVED_NAMES",
    "EndpointKind",
    "HealthEndpoint",
    "HealthHTTP",
    "RequestFacts",
    "authorized",
    "check_words",
    "render",
    "response_headers",
]

HEALTH_JSON = "application/health+json"
"""The media type of the IETF health check response format (draft-inadarei-api-health-check)."""

EndpointKind = Literal["health", "live", "ready", "instance", "check", "diagnostics"]
KINDS = frozenset({"health", "live", "ready", "instance", "diagnostics"})
RESERVED_NAMES = frozenset({"live", "ready", "instance", "diagnostics"})
"""Paths under the prefix that a per-check endpoint can never answer."""

logger = logging.getLogger("renderkit.health")


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a health endpoint needs from a request: peer, headers, query string."""

    peer: str | None
    headers: list[tuple[bytes, bytes]]
    query: str = ""


def check_words(words: Mapping[str, str] | None) -> dict[Status, str]:
    """Validate a status vocabulary (``{"healthy": "ok", "unhealthy": "error"}``)."""
    chosen: dict[Status, str] = {status: status for status in STATUSES}
    if words is None:
        return chosen
    if not isinstance(words, Mapping):
        raise TypeError("Health(status_words=...): use a dict such as {'healthy': 'ok'}")
    for key, value in words.items():
        if key not in chosen:
            raise ValueError(
                f"Health(status_words=...): unknown status {key!r}; use {', '.join(STATUSES)}"
            )
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"Health(status_words[{key!r}]={value!r}): use a non-empty string")
        chosen[key] = value.strip()
    return chosen


def authorized(
    token: str | None,
    networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
    authorization: str | None,
    client: str | None,
    *,
    token_only: bool = False,
) -> bool:
    """True when a caller may see detail: the bearer token, or (unless ``token_only``) an
    address inside ``networks``."""
    if token is not None and authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(
            value.strip().encode("utf-8", "replace"), token.encode("utf-8")
        ):
            return True
    if token_only or not client or not networks:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in network for network in networks)


def presentation(health: HealthHTTP, request: RequestFacts) -> dict[str, bool]:
    """Detail or not (the token, or the real client in a trusted network) and the format."""
    client = access_client(request.peer, request.headers, health.trust)
    accept = header(request.headers, b"accept") or ""
    return {
        "detail": health.authorized(header(request.headers, b"authorization"), client),
        "health_json": HEALTH_JSON in accept or "format=ietf" in request.query,
    }


def _json(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def render(
    health: HealthHTTP,
    kind: EndpointKind,
    report: HealthReport | None,
    *,
    detail: bool,
    health_json: bool,
    check: str | None = None,
) -> tuple[int, bytes, bytes]:
    """Decide status code, body and content type for one endpoint (framework-free)."""
    words = health.status_words
    content_type = (HEALTH_JSON if health_json else "application/json").encode()

    def word(status: Status) -> str:
        return IETF[status] if health_json else words[status]

    if kind == "live":
        body: dict[str, Any] = {"status": word("healthy")}
        if detail:
            body["uptime"] = round(health.uptime)
        return 200, _json(body), content_type
    if report is None:  # shutting down: answered without running checks
        body = {"status": word("unhealthy")}
        if detail:
            body["notes" if health_json else "message"] = (
                ["shutting down"] if health_json else "shutting down"
            )
        return 503, _json(body), content_type
    if kind == "check":
        return _render_check(health, report, check or "", detail, word, content_type)
    status = report.instance_status() if kind == "instance" else report.status
    shown = replace(report, status=status) if status != report.status else report
    if health_json:
        body = shown.to_health_json(detail=detail)
    else:
        body = shown.to_dict(detail=detail, words=words)
        if detail:
            body.update(health.extra_detail())
    return (503 if status == "unhealthy" else 200), _json(body), content_type


def _render_check(
    health: HealthHTTP,
    report: HealthReport,
    name: str,
    detail: bool,
    word: Callable[[Status], str],
    content_type: bytes,
) -> tuple[int, bytes, bytes]:
    result = report.checks.get(name)
    if result is None:
        return 404, _json({"error": "no such health check"}), b"application/json"
    body: dict[str, Any] = {"status": word(result.status)}
    if detail:
        if result.latency_ms is not None:
            body["latency"] = round(result.latency_ms, 1)
        if result.message:
            body["error" if result.status == "unhealthy" else "message"] = result.message
        entry = report.to_dict(detail=True)["checks"][name]
        for key, value in entry.items():
            if key not in ("status", "latency", "message"):
                body.setdefault(key, value)
    return (503 if result.status == "unhealthy" else 200), _json(body), content_type


def render_diagnostics(findings: object, *, error: str | None = None) -> tuple[int, bytes, bytes]:
    """The JSON answer of the diagnostics endpoint, every string masked."""
    if error is not None:
        return 500, _json({"error": error}), b"application/json"
    items: list[Any] = []
    for finding in findings if isinstance(findings, Iterable) else ():
        as_dict = getattr(finding, "as_dict", None)
        items.append(as_dict() if callable(as_dict) else finding)
    counts: dict[str, int] = {}
    for item in items:
        status = item.get("status") if isinstance(item, Mapping) else None
        if isinstance(status, str):
            counts[status] = counts.get(status, 0) + 1
    body = {"findings": scrub_value(items), "counts": counts}
    return 200, _json(body), b"application/json"


NOT_FOUND = (404, b'{"error":"not found"}', b"application/json")
UNAUTHORIZED = (
    401,
    b'{"error":"send Authorization: Bearer <HEALTH_TOKEN> to read diagnostics"}',
    b"application/json",
)


def response_headers(code: int, body: bytes, content_type: bytes) -> list[tuple[str, str]]:
    """Headers of every health answer (ASGI, WSGI and Flask send the same)."""
    headers = [
        ("content-type", content_type.decode("latin-1")),
        ("content-length", str(len(body))),
        ("cache-control", "no-store"),
    ]
    if code == 401:
        headers.append(("www-authenticate", 'Bearer realm="health"'))
    return headers


_PLATFORM_FIELDS = (
    "provider", "service_name", "service_type", "instance_id", "region", "git_commit",
    "git_branch", "is_preview", "memory_limit", "cpu_limit",
)  # fmt: skip


class HealthHTTP:
    """The HTTP face of :class:`Health` (a mixin): who sees what, and the endpoints.

    Uses only the registry's public attributes and methods.
    """

    token: str | None
    trusted_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    trust: ProxyTrust
    timeout: float
    platform: Platform | None
    metrics: Callable[[], Mapping[str, Any]] | None
    diagnostics: Callable[[], Any] | None
    status_words: dict[Status, str]

    if TYPE_CHECKING:  # implemented by the class this is mixed into

        @property
        def shutting_down(self) -> bool: ...

        @property
        def uptime(self) -> float: ...

        async def run(self, *, fresh: bool = False) -> HealthReport: ...

        def run_sync(self, *, fresh: bool = False) -> HealthReport: ...

    def extra_detail(self) -> dict[str, Any]:
        """The blocks a detailed report adds: ``platform`` and the ``metrics`` summary."""
        extra: dict[str, Any] = {}
        if self.platform is not None:
            facts = self.platform
            extra["platform"] = {
                key: getattr(facts, key)
                for key in _PLATFORM_FIELDS
                if getattr(facts, key, None) not in (None, "")
            }
        if self.metrics is not None:
            try:
                summary = self.metrics()
                extra["metrics"] = scrub_value(dict(summary))
            except Exception as exc:
                extra["metrics"] = {"error": describe(exc)}
        return extra

    # --- HTTP -----------------------------------------------------------------------------------

    def authorized(self, authorization: str | None, client: str | None) -> bool:
        """True when a caller may see the detailed report (token or trusted address)."""
        return authorized(self.token, self.trusted_networks, authorization, client)

    render = render  # the function above, called as health.render(kind, report, ...)

    def _diagnostics_gate(self, request: RequestFacts) -> tuple[int, bytes, bytes] | None:
        if self.diagnostics is None or self.token is None:
            return NOT_FOUND  # off unless a token is configured
        authorization = header(request.headers, b"authorization")
        if not authorized(self.token, (), authorization, None, token_only=True):
            return UNAUTHORIZED
        return None

    async def respond(
        self, kind: EndpointKind, request: RequestFacts, *, check: str | None = None
    ) -> tuple[int, bytes, bytes]:
        """Answer one request to endpoint ``kind`` (async: runs checks on this loop)."""
        if kind == "diagnostics":
            refused = self._diagnostics_gate(request)
            if refused is not None:
                return refused
            return await self._run_diagnostics()
        report = None
        if kind != "live" and not self.shutting_down:
            report = await self.run()
        return self.render(kind, report, check=check, **presentation(self, request))

    def respond_sync(
        self, kind: EndpointKind, request: RequestFacts, *, check: str | None = None
    ) -> tuple[int, bytes, bytes]:
        """Blocking twin of :meth:`respond` for WSGI."""
        if kind == "diagnostics":
            refused = self._diagnostics_gate(request)
            return refused if refused is not None else run_blocking(self._run_diagnostics())
        report = None
        if kind != "live" and not self.shutting_down:
            report = self.run_sync()
        return self.render(kind, report, check=check, **presentation(self, request))

    async def _run_diagnostics(self) -> tuple[int, bytes, bytes]:
        diagnostics = self.diagnostics
        assert diagnostics is not None
        limit = max(self.timeout, 10.0)
        try:
            if is_async_callable(diagnostics):
                findings = await asyncio.wait_for(diagnostics(), limit)
            else:
                future = start_in_thread(diagnostics, name="renderkit-diagnostics", pool=None)
                findings = await asyncio.wait_for(future, limit)
                if inspect.isawaitable(findings):
                    findings = await asyncio.wait_for(findings, limit)
        except TimeoutError:
            return render_diagnostics(None, error=f"diagnostics took over {limit:g} s")
        except Exception as exc:
            logger.warning("health diagnostics failed: %s", describe(exc))
            return render_diagnostics(None, error=describe(exc))
        return render_diagnostics(findings)

    def endpoint(
        self, kind: EndpointKind = "health", *, check: str | None = None
    ) -> HealthEndpoint:
        """A pure ASGI app answering ``kind`` ("health", "live", "ready", "instance",
        "diagnostics", or "check" for the one check ``check``)."""
        if kind not in KINDS and kind != "check":
            raise ValueError(
                f"Health.endpoint(kind={kind!r}): use one of {', '.join(sorted(KINDS | {'check'}))}"
            )
        return HealthEndpoint(self, kind, check)

    def paths(self, prefix: str = "/health") -> dict[str, EndpointKind]:
        """The fixed paths below ``prefix`` and the endpoint each serves."""
        if (
            not isinstance(prefix, str)
            or not prefix.startswith("/")
            or (prefix.endswith("/") and prefix != "/")
        ):
            raise ValueError(f"prefix={prefix!r}: start with '/' and do not end with '/'")
        base = prefix.rstrip("/")
        paths: dict[str, EndpointKind] = {
            base or "/": "health",
            f"{base}/live": "live",
            f"{base}/ready": "ready",
            f"{base}/instance": "instance",
        }
        if self.diagnostics is not None:
            paths[f"{base}/diagnostics"] = "diagnostics"
        return paths

    def routes(self, prefix: str = "/health", *, per_check: bool = False) -> list[Route]:
        """Starlette routes: ``prefix``, ``prefix/live``, ``prefix/ready``, ``prefix/instance``
        (and ``prefix/diagnostics`` with ``diagnostics``); ``per_check=True`` adds
        ``prefix/{check}`` answering one registered check (404 for an unknown name)."""
        from starlette.routing import Route

        try:
            paths = self.paths(prefix)
        except ValueError as exc:
            raise ValueError(f"Health.routes({exc})") from None
        routes = [
            Route(path, self.endpoint(kind), methods=["GET", "HEAD"], name=f"health_{kind}")
            for path, kind in paths.items()
        ]
        if per_check:
            base = prefix.rstrip("/")
            routes.append(
                Route(
                    f"{base}/{{check}}",
                    self.endpoint("check"),
                    methods=["GET", "HEAD"],
                    name="health_check",
                )
            )
        return routes


class HealthEndpoint:
    """Pure ASGI app for one health endpoint (built by :meth:`Health.endpoint`).

    ``kind="check"`` answers one check, named by ``check`` or, when None, by the path
    parameter ``check`` (the ``/health/{check}`` route).
    """

    def __init__(self, health: HealthHTTP, kind: EndpointKind, check: str | None = None) -> None:
        self.health = health
        self.kind = kind
        self.check = check

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            raise RuntimeError("HealthEndpoint serves HTTP only")
        client = scope.get("client")
        facts = RequestFacts(
            peer=client[0] if client else None,
            headers=list(scope.get("headers") or ()),
            query=(scope.get("query_string") or b"").decode("latin-1"),
        )
        name = self.check
        if self.kind == "check" and name is None:
            name = str((scope.get("path_params") or {}).get("check", ""))
        code, body, content_type = await self.health.respond(self.kind, facts, check=name)
        headers = [
            (key.encode("latin-1"), value.encode("latin-1"))
            for key, value in response_headers(code, body, content_type)
        ]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        head = scope.get("method") == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})
