"""The ``RenderKit`` Flask extension: one object wiring renderkit's policies into a Flask app."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import TYPE_CHECKING, Any

from renderkit._http import mapping_headers
from renderkit._optional import require
from renderkit.correlation import DEFAULT_MAX_LENGTH
from renderkit.metrics import RequestMetrics, bearer_ok
from renderkit.security import (
    DEFAULT_EXEMPT_PATHS,
    ProxyTrust,
    SecurityHeaders,
    default_trust,
    https_redirect_enabled,
)
from renderkit.wsgi._edge import (
    CSP_NONCE_KEY,
    REQUEST_ID_KEY,
    ROUTE_KEY,
    CorrelationIdMiddleware,
    HTTPSRedirectMiddleware,
    RequestMetricsMiddleware,
    SecurityHeadersMiddleware,
    WSGIApp,
)

if TYPE_CHECKING:
    from flask import Flask, Response

__all__ = ["RenderKit", "RenderKitState"]

EXTENSION_KEY = "renderkit"


@dataclass
class RenderKitState:
    """What ``init_app`` wired into one app, at ``app.extensions["renderkit"]``."""

    extension: RenderKit
    trust: ProxyTrust
    https_redirect: bool
    security: SecurityHeaders | None
    metrics: RequestMetrics | None
    correlation: bool
    extras: dict[str, Any] = field(default_factory=dict)
    """Room for the sessions, rate-limit and health wiring to keep their per-app objects."""


class _CurrentNonce:
    """Jinja global ``csp_nonce``: renders as the current request's nonce (``{{ csp_nonce }}``)."""

    def _value(self) -> str:
        from flask import g, has_app_context

        if not has_app_context():
            return ""
        value = g.get("csp_nonce")
        return value if isinstance(value, str) else ""

    def __str__(self) -> str:
        return self._value()

    def __html__(self) -> str:
        # token_urlsafe output needs no escaping; __html__ keeps autoescape from touching it.
        return self._value()

    def __bool__(self) -> bool:
        return bool(self._value())


@dataclass(eq=False)
class RenderKit:
    """Wire renderkit into Flask: ``RenderKit(app, ...)`` or ``RenderKit(...).init_app(app)``.

    Edge policies (outermost first): correlation id -> request metrics -> security headers ->
    HTTPS redirect -> the app. Per request: ``g.request_id``, ``g.csp_nonce``; templates get
    ``{{ csp_nonce }}`` and ``{{ request_id }}``.

    ``https_redirect``: None decides by environment (``FORCE_HTTPS``, else production only;
    SPEC principle 7), True/False forces it. ``security``: True (HTML preset), a
    :class:`SecurityHeaders` policy, or False. ``metrics``: True (a new store), a
    :class:`RequestMetrics`, or False; ``metrics_path`` serves Prometheus text and
    ``metrics_path + "/json"`` (None: no endpoint), gated by ``metrics_token`` when given.
    ``trust``: the proxies whose X-Forwarded-* count (default: the detected platform's).

    ``session_store``, ``limiter`` and ``health`` are wired by :meth:`_init_sessions`,
    :meth:`_init_ratelimit` and :meth:`_init_health`; each does nothing when its option is None.
    """

    app: InitVar[Flask | None] = None
    correlation: bool = field(default=True, kw_only=True)
    request_id_header: str = field(default="X-Request-ID", kw_only=True)
    request_id_max_length: int = field(default=DEFAULT_MAX_LENGTH, kw_only=True)
    security: SecurityHeaders | bool = field(default=True, kw_only=True)
    https_redirect: bool | None = field(default=None, kw_only=True)
    https_exempt_paths: Sequence[str] = field(default=DEFAULT_EXEMPT_PATHS, kw_only=True)
    allowed_hosts: Sequence[str] | None = field(default=None, kw_only=True)
    trust: ProxyTrust | None = field(default=None, kw_only=True)
    metrics: RequestMetrics | bool = field(default=True, kw_only=True)
    metrics_path: str | None = field(default="/metrics", kw_only=True)
    metrics_token: str | None = field(default=None, kw_only=True)
    session_store: Any = field(default=None, kw_only=True)
    limiter: Any = field(default=None, kw_only=True)
    health: Any = field(default=None, kw_only=True)
    environ: Mapping[str, str] | None = field(default=None, kw_only=True)

    def __post_init__(self, app: Flask | None) -> None:
        security, metrics, metrics_path = self.security, self.metrics, self.metrics_path
        if (
            security is not True
            and security is not False
            and not isinstance(security, SecurityHeaders)
        ):
            raise TypeError(
                "RenderKit(security=...) takes True, False or a SecurityHeaders policy, got "
                f"{type(security).__name__}"
            )
        if metrics is not True and metrics is not False and not isinstance(metrics, RequestMetrics):
            raise TypeError(
                "RenderKit(metrics=...) takes True, False or a RequestMetrics store, got "
                f"{type(metrics).__name__}"
            )
        if metrics_path is not None and (
            not metrics_path.startswith("/") or metrics_path.endswith("/")
        ):
            raise ValueError(
                f"RenderKit(metrics_path={metrics_path!r}) must start with '/' and not end "
                "with '/' (or be None for no endpoint)"
            )
        self.https_exempt_paths = tuple(self.https_exempt_paths)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wire everything into ``app`` (once per app; a second call raises)."""
        require("flask", extra="flask", feature="renderkit.flask.RenderKit")
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "RenderKit is already initialised on this Flask app; call init_app once per app"
            )
        state = self._state()
        app.extensions[EXTENSION_KEY] = state

        # Hooks run first: whatever they wrap around app.wsgi_app ends up *inside* the edge
        # stack, so their responses (429s, health answers) carry the request id and headers.
        self._init_sessions(app, state)
        self._init_ratelimit(app, state)
        self._init_health(app, state)

        app.before_request(_bind_request_globals)
        app.context_processor(_template_context)
        app.jinja_env.globals["csp_nonce"] = _CurrentNonce()
        if state.metrics is not None and self.metrics_path is not None:
            self._add_metrics_routes(app, state.metrics)
        app.wsgi_app = self._edge_stack(app.wsgi_app, state)  # type: ignore[method-assign, assignment]

    def _state(self) -> RenderKitState:
        """What this extension wires, with every "decide for me" option decided."""
        policy: SecurityHeaders | None
        if isinstance(self.security, SecurityHeaders):
            policy = self.security
        else:
            policy = SecurityHeaders.html() if self.security else None
        store: RequestMetrics | None
        if isinstance(self.metrics, RequestMetrics):
            store = self.metrics
        else:
            # METRICS_TOKEN, and closed outside development like every renderkit endpoint.
            trust = self.trust if self.trust is not None else default_trust()
            store = RequestMetrics.from_env(self.environ, trust=trust) if self.metrics else None
        return RenderKitState(
            extension=self,
            trust=self.trust if self.trust is not None else default_trust(),
            https_redirect=(
                self.https_redirect
                if self.https_redirect is not None
                else https_redirect_enabled(self.environ)
            ),
            security=policy,
            metrics=store,
            correlation=self.correlation,
        )

    def _edge_stack(self, wsgi: WSGIApp, state: RenderKitState) -> WSGIApp:
        """Wrap ``wsgi`` in the edge middleware, outermost first: correlation id -> metrics ->
        security headers -> HTTPS redirect."""
        if state.https_redirect:
            wsgi = HTTPSRedirectMiddleware(
                wsgi,
                trust=state.trust,
                exempt_paths=self.https_exempt_paths,
                allowed_hosts=self.allowed_hosts,
            )
        if state.security is not None:
            wsgi = SecurityHeadersMiddleware(wsgi, policy=state.security, trust=state.trust)
        if state.metrics is not None:
            wsgi = RequestMetricsMiddleware(wsgi, metrics=state.metrics)
        if self.correlation:
            wsgi = CorrelationIdMiddleware(
                wsgi, header_name=self.request_id_header, max_length=self.request_id_max_length
            )
        return wsgi

    # --- hooks the sessions / rate-limit / health wiring fills in ----------------------------

    def _init_sessions(self, app: Flask, state: RenderKitState) -> None:
        """Wire server-side sessions from ``session_store`` (nothing when it is None)."""
        if self.session_store is None:
            return
        from renderkit.flask._sessions import EXTRAS_KEY as SESSIONS_KEY
        from renderkit.flask._sessions import wire_sessions

        state.extras[SESSIONS_KEY] = wire_sessions(app, self.session_store, self.environ)

    def _init_ratelimit(self, app: Flask, state: RenderKitState) -> None:
        """Wire rate limiting from ``limiter`` (nothing when it is None)."""
        if self.limiter is None:
            return
        from renderkit.flask._ratelimit import EXTRAS_KEY, wire_ratelimit

        state.extras[EXTRAS_KEY] = wire_ratelimit(app, self.limiter, state.trust)

    def _init_health(self, app: Flask, state: RenderKitState) -> None:
        """Serve ``health`` (a ``renderkit.health.Health``) under /health (nothing when None)."""
        if self.health is None:
            return
        from renderkit.flask._health import init_health

        init_health(app, self.health, state.extras)

    # --- metrics endpoints --------------------------------------------------------------------

    def _add_metrics_routes(self, app: Flask, store: RequestMetrics) -> None:
        token = self.metrics_token
        path = self.metrics_path
        assert path is not None

        def serve(fmt: str) -> Response:
            from flask import Response, request

            authorization = request.headers.get("Authorization")
            if token is not None:
                allowed = bearer_ok(authorization, token)
            else:  # the store's rule: public in development, else token or trusted client
                headers = mapping_headers(request.environ)
                allowed = store.may_read(authorization, request.remote_addr, headers)
            if not allowed:
                return Response(
                    "metrics need 'Authorization: Bearer <token>' (METRICS_TOKEN)",
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                    mimetype="text/plain",
                )
            body, content_type = store.render("json" if fmt == "json" else "prometheus")
            return Response(
                body,
                content_type=content_type.decode(),
                headers={"Cache-Control": "no-store"},
            )

        app.add_url_rule(path, endpoint="renderkit_metrics", view_func=lambda: serve("prometheus"))
        app.add_url_rule(
            f"{path}/json", endpoint="renderkit_metrics_json", view_func=lambda: serve("json")
        )


def _bind_request_globals() -> None:
    from flask import g, request

    environ = request.environ
    g.request_id = environ.get(REQUEST_ID_KEY)
    g.csp_nonce = environ.get(CSP_NONCE_KEY)
    rule = request.url_rule
    environ[ROUTE_KEY] = rule.rule if rule is not None else None


def _template_context() -> dict[str, Any]:
    from flask import g

    return {"request_id": g.get("request_id")}
