"""HTTPS redirect and security headers for Starlette / FastAPI (pure ASGI).

::

    from renderkit.security import (
        HTTPSRedirectMiddleware, SecurityHeaders, SecurityHeadersMiddleware,
    )

    app.add_middleware(SecurityHeadersMiddleware)                     # HTML preset, A+
    app.add_middleware(SecurityHeadersMiddleware, policy=SecurityHeaders.api())
    app.add_middleware(HTTPSRedirectMiddleware)   # honours X-Forwarded-Proto; /health* exempt

:class:`SecurityHeaders` is a frozen policy that renders every header value once, at
construction. Per request the middleware only draws a CSP nonce (``secrets.token_urlsafe(16)``),
joins it into the precomputed CSP pieces, and merges header lists. Handlers read the nonce from
``request.state.csp_nonce``.

A middleware the app adds explicitly always does its job, whatever the environment; only wiring
helpers (:func:`https_redirect_enabled`, the Flask ``RenderKit``) decide by environment.
"""

from __future__ import annotations

import binascii
import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from renderkit._asgi import (
    Message,
    Receive,
    Scope,
    Send,
    answers_errors_itself,
    path_matcher,
    random_chunk,
    send_error_response,
)
from renderkit._http import ProxyTrust, effective_scheme, header

if TYPE_CHECKING:
    from renderkit._asgi import ASGIApp

# Plain sorted() order, as tests/test_public_api.py checks (not ruff's isort-style order).
__all__ = [
    "DEFAULT_EXEMPT_PATHS",
    "DOCS_PATHS",
    "NONCE",
    "HTTPSRedirect",
    "HTTPSRedirectMiddleware",
    "SecurityHeaders",
    "SecurityHeadersMiddleware",
    "default_trust",
    "https_redirect_enabled",
]

logger = logging.getLogger("renderkit.security")

NONCE = "{nonce}"
"""Placeholder in a CSP source list: replaced per request by ``'nonce-<fresh value>'``."""

DEFAULT_EXEMPT_PATHS: tuple[str, ...] = ("/health", "/health/*", "/healthz", "/readyz", "/livez")
"""Paths never redirected: platform health checkers call them over plain HTTP."""

DOCS_PATHS: tuple[str, ...] = ("/docs", "/docs/oauth2-redirect", "/redoc")
"""FastAPI's interactive docs pages, which load assets from a CDN and run an inline script."""

_HTML_CSP: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "script-src": ("'self'", NONCE),
    "style-src": ("'self'", NONCE),
    "img-src": ("'self'", "data:"),
    "font-src": ("'self'",),
    "connect-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'self'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}
_API_CSP: dict[str, tuple[str, ...]] = {
    "default-src": ("'none'",),
    "frame-ancestors": ("'none'",),
}
# What FastAPI's get_swagger_ui_html / get_redoc_html pull in: swagger-ui and redoc from
# jsDelivr, an inline bootstrap script (so no nonce: a nonce would disable 'unsafe-inline'),
# the FastAPI favicon, Google Fonts for redoc, and redoc's blob: web worker.
_DOCS_CSP: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "script-src": ("'self'", "'unsafe-inline'", "https://cdn.jsdelivr.net"),
    "style-src": (
        "'self'",
        "'unsafe-inline'",
        "https://cdn.jsdelivr.net",
        "https://fonts.googleapis.com",
    ),
    "img-src": ("'self'", "data:", "https://fastapi.tiangolo.com", "https://cdn.redoc.ly"),
    "font-src": ("'self'", "https://fonts.gstatic.com"),
    "connect-src": ("'self'",),
    "worker-src": ("'self'", "blob:"),
    "object-src": ("'none'",),
    "base-uri": ("'self'",),
    "frame-ancestors": ("'none'",),
}
_DEFAULT_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "accelerometer": (),
    "browsing-topics": (),
    "camera": (),
    "geolocation": (),
    "gyroscope": (),
    "magnetometer": (),
    "microphone": (),
    "payment": (),
    "usb": (),
}
_DIRECTIVE = re.compile(r"[a-z][a-z0-9-]*")
_BAD_SOURCE_CHARS = re.compile(r"[;,\s\x00-\x1f\x7f]")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_NONCE_BYTES = 18  # 144 bits, 24 base64url characters without padding


def _new_nonce() -> str:
    return (
        binascii.b2a_base64(random_chunk(_NONCE_BYTES), newline=False).translate(_URLSAFE).decode()
    )


def _scheme(scope: Scope, trust: ProxyTrust) -> str:
    """The scheme the client used, computed once per request for every edge middleware.

    The HTTPS redirect and the security headers both need it; the second one reuses the
    first's answer when it trusts the same proxies and nothing rewrote the scheme, peer or
    headers in between (an inner proxy-headers middleware that does gets a fresh answer).
    """
    scheme = scope.get("scheme", "http")
    client = scope.get("client")
    headers = scope["headers"]
    cached = scope.get("renderkit.scheme")
    if (
        cached is not None
        and cached[0] is trust
        and cached[1] == scheme
        and cached[2] is client
        and cached[3] is headers
    ):
        return cached[4]  # type: ignore[no-any-return]
    result = effective_scheme(scheme, client[0] if client else None, headers, trust)
    scope["renderkit.scheme"] = (trust, scheme, client, headers, result)
    return result


def _render_csp(
    csp: Mapping[str, Sequence[str]] | str,
    report_uri: str | None,
    report_to: str | None,
    problems: list[str],
) -> str:
    if isinstance(csp, str):
        text = csp.strip().rstrip(";")
        if "\n" in text or "\r" in text:
            problems.append("csp must be a single line (no CR/LF)")
        parts = [text] if text else []
    else:
        parts = []
        for directive, sources in csp.items():
            if not _DIRECTIVE.fullmatch(directive):
                problems.append(f"csp directive {directive!r} is not a CSP directive name")
                continue
            if isinstance(sources, str):
                problems.append(
                    f"csp[{directive!r}] must be a list of sources, e.g. [\"'self'\"], "
                    f"not the string {sources!r}"
                )
                continue
            for source in sources:
                if source != NONCE and _BAD_SOURCE_CHARS.search(source):
                    problems.append(
                        f"csp[{directive!r}] source {source!r} contains a space, ';', ',' or a "
                        "control character; give one source per list item"
                    )
            parts.append(" ".join((directive, *sources)) if sources else directive)
    if report_uri:
        parts.append(f"report-uri {report_uri}")
    if report_to:
        parts.append("report-to csp-endpoint")
    return "; ".join(parts)


def _permissions(value: Mapping[str, Sequence[str]] | str) -> str:
    if isinstance(value, str):
        return value
    rendered = []
    for feature, allow in value.items():
        rendered.append(f"{feature}=({' '.join(allow)})")
    return ", ".join(rendered)


@dataclass(frozen=True)
class SecurityHeaders:
    """A security-header policy, rendered to bytes once at construction.

    The defaults are the HTML preset (:meth:`html`): a nonce-based CSP without
    ``'unsafe-inline'`` or ``'unsafe-eval'``, HSTS for two years on https responses, ``DENY``
    framing, ``nosniff``, ``strict-origin-when-cross-origin``, a Permissions-Policy denying
    powerful features, COOP and CORP ``same-origin``, and ``Server`` / ``X-Powered-By``
    removed. Headers a handler already set win unless ``overwrite=True``.

    ``csp``: directive -> sources (use :data:`NONCE` for the per-request nonce) or a complete
    policy string (``{nonce}`` placeholders allowed); None sends no CSP. ``path_overrides``:
    ``{"/path" or "/prefix/*": SecurityHeaders}`` used instead of this policy on those paths.
    ``docs_paths``: paths that get :meth:`docs_relaxation` (FastAPI's ``/docs`` and ``/redoc``)
    unless ``path_overrides`` names them; ``()`` turns it off.
    """

    csp: Mapping[str, Sequence[str]] | str | None = field(default_factory=lambda: dict(_HTML_CSP))
    csp_report_only: bool = False
    report_uri: str | None = None
    report_to: str | None = None
    hsts_max_age: int = 63072000
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False
    frame_options: Literal["DENY", "SAMEORIGIN"] | None = "DENY"
    content_type_options: bool = True
    referrer_policy: str | None = "strict-origin-when-cross-origin"
    permissions_policy: Mapping[str, Sequence[str]] | str | None = field(
        default_factory=lambda: dict(_DEFAULT_PERMISSIONS)
    )
    cross_origin_opener_policy: str | None = "same-origin"
    cross_origin_resource_policy: str | None = "same-origin"
    cross_origin_embedder_policy: str | None = None
    remove_headers: Sequence[str] = ("Server", "X-Powered-By")
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    overwrite: bool = False
    private_cache_with_nonce: bool = True
    path_overrides: Mapping[str, SecurityHeaders] = field(default_factory=dict)
    docs_paths: Sequence[str] = DOCS_PATHS

    # Rendered at construction.
    uses_nonce: bool = field(init=False, repr=False, compare=False)
    csp_header: bytes = field(init=False, repr=False, compare=False)
    csp_pieces: tuple[str, ...] = field(init=False, repr=False, compare=False)
    static_headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)
    hsts_header: tuple[bytes, bytes] | None = field(init=False, repr=False, compare=False)
    managed_names: frozenset[bytes] = field(init=False, repr=False, compare=False)
    removed_names: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _touched_names: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _csp_pieces_bytes: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    _csp_nonce_pieces: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    _for_path: Callable[[str], SecurityHeaders] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        set_ = object.__setattr__
        if not isinstance(self.hsts_max_age, int) or self.hsts_max_age < 0:
            problems.append(f"hsts_max_age={self.hsts_max_age!r} must be seconds >= 0")
        if self.hsts_preload and (self.hsts_max_age < 31536000 or not self.hsts_include_subdomains):
            problems.append(
                "hsts_preload=True needs hsts_max_age >= 31536000 and "
                "hsts_include_subdomains=True (the preload list's requirements)"
            )
        if self.frame_options not in (None, "DENY", "SAMEORIGIN"):
            problems.append(
                f"frame_options={self.frame_options!r} must be 'DENY', 'SAMEORIGIN' or None"
            )
        if self.report_to is not None and not self.report_to.startswith(("https://", "/")):
            problems.append(f"report_to={self.report_to!r} must be an https:// URL or a path")

        static: list[tuple[str, str]] = []
        csp_text = ""
        if self.csp is not None:
            csp_text = _render_csp(self.csp, self.report_uri, self.report_to, problems)
        if self.content_type_options:
            static.append(("X-Content-Type-Options", "nosniff"))
        if self.frame_options:
            static.append(("X-Frame-Options", self.frame_options))
        if self.referrer_policy:
            static.append(("Referrer-Policy", self.referrer_policy))
        if self.permissions_policy:
            static.append(("Permissions-Policy", _permissions(self.permissions_policy)))
        if self.cross_origin_opener_policy:
            static.append(("Cross-Origin-Opener-Policy", self.cross_origin_opener_policy))
        if self.cross_origin_resource_policy:
            static.append(("Cross-Origin-Resource-Policy", self.cross_origin_resource_policy))
        if self.cross_origin_embedder_policy:
            static.append(("Cross-Origin-Embedder-Policy", self.cross_origin_embedder_policy))
        if self.report_to:
            static.append(("Reporting-Endpoints", f'csp-endpoint="{self.report_to}"'))
        static.extend(self.extra_headers.items())
        encoded: list[tuple[bytes, bytes]] = []
        for name, value in static:
            if not _TOKEN.fullmatch(name):
                problems.append(f"header name {name!r} is not a valid HTTP header name")
                continue
            try:
                raw = value.encode("latin-1")
            except UnicodeEncodeError:
                problems.append(f"header {name} value {value!r} is not Latin-1; use ASCII")
                continue
            if b"\r" in raw or b"\n" in raw or b"\x00" in raw:
                problems.append(f"header {name} value contains CR, LF or NUL")
                continue
            encoded.append((name.lower().encode("latin-1"), raw))
        try:
            csp_text.encode("latin-1")
        except UnicodeEncodeError:
            problems.append("csp contains non-Latin-1 characters; use ASCII (punycode hosts)")
        if _CONTROL_CHARS.search(csp_text):
            # report_uri and a policy string reach the header unchecked otherwise.
            problems.append(
                "csp (with report_uri) contains a control character such as CR, LF or NUL, "
                "which would break or inject headers; remove it"
            )
        hsts = f"max-age={self.hsts_max_age}"
        if self.hsts_include_subdomains:
            hsts += "; includeSubDomains"
        if self.hsts_preload:
            hsts += "; preload"
        override_matchers: list[tuple[Callable[[str], bool], SecurityHeaders]] = []
        for pattern, policy in self.path_overrides.items():
            if not isinstance(policy, SecurityHeaders):
                problems.append(  # type: ignore[unreachable]
                    f"path_overrides[{pattern!r}] must be a SecurityHeaders policy"
                )
                continue
            try:
                override_matchers.append((path_matcher((pattern,)), policy))
            except ValueError as exc:
                problems.append(str(exc))
        docs_match: Callable[[str], bool] | None = None
        if self.docs_paths:
            try:
                docs_match = path_matcher(tuple(self.docs_paths))
            except ValueError as exc:
                problems.append(f"docs_paths: {exc}")
        if problems:
            raise ValueError(
                "SecurityHeaders: " + "; ".join(problems) + ". Fix these options and restart."
            )

        set_(self, "uses_nonce", NONCE in csp_text)
        set_(
            self,
            "csp_header",
            b"content-security-policy-report-only"
            if self.csp_report_only
            else b"content-security-policy",
        )
        set_(self, "csp_pieces", tuple(csp_text.split(NONCE)) if csp_text else ())
        set_(self, "static_headers", tuple(encoded))
        set_(
            self,
            "hsts_header",
            (b"strict-transport-security", hsts.encode()) if self.hsts_max_age else None,
        )
        managed = {name for name, _ in encoded}
        if csp_text:
            managed.add(self.csp_header)
        managed.add(b"strict-transport-security")
        set_(self, "managed_names", frozenset(managed))
        set_(
            self,
            "removed_names",
            frozenset(n.lower().encode("latin-1") for n in self.remove_headers),
        )
        # A response naming none of these takes apply()'s fast path (plain list extension).
        set_(self, "_touched_names", self.managed_names | self.removed_names)
        set_(
            self,
            "_csp_pieces_bytes",
            tuple(piece.encode("latin-1") for piece in self.csp_pieces),
        )
        # The same pieces with the quoting around the nonce attached, so a response's CSP is
        # one bytes.join: b"...script-src 'self' 'nonce-" + nonce + b"'; style-src ...".
        nonce_pieces = [piece.encode("latin-1") for piece in self.csp_pieces]
        for i in range(len(nonce_pieces) - 1):
            nonce_pieces[i] += b"'nonce-"
            nonce_pieces[i + 1] = b"'" + nonce_pieces[i + 1]
        set_(self, "_csp_nonce_pieces", tuple(nonce_pieces))

        docs_policy: list[SecurityHeaders] = []

        def for_path(path: str) -> SecurityHeaders:
            for matches, policy in override_matchers:
                if matches(path):
                    return policy
            if docs_match is not None and docs_match(path):
                if not docs_policy:
                    docs_policy.append(self.docs_relaxation())
                return docs_policy[0]
            return self

        if override_matchers or docs_match is not None:
            set_(self, "_for_path", for_path)
        else:
            set_(self, "_for_path", lambda _path: self)

    # --- presets ----------------------------------------------------------------------------

    @classmethod
    def html(cls, **changes: Any) -> SecurityHeaders:
        """The default for server-rendered HTML apps: nonce-based CSP, scores A+ on Observatory.

        Keyword arguments replace fields (``SecurityHeaders.html(hsts_preload=True)``).
        """
        return cls(**changes)

    @classmethod
    def api(cls, **changes: Any) -> SecurityHeaders:
        """For JSON APIs: CSP ``default-src 'none'; frame-ancestors 'none'`` (OWASP's advice), no
        nonce, no Permissions-Policy; FastAPI's docs pages still get :meth:`docs_relaxation`."""
        fields: dict[str, Any] = {"csp": dict(_API_CSP), "permissions_policy": None}
        fields.update(changes)
        return cls(**fields)

    def docs_relaxation(self) -> SecurityHeaders:
        """This policy with a CSP that lets FastAPI's ``/docs`` and ``/redoc`` render (jsDelivr
        scripts and styles, the inline bootstrap script, the FastAPI favicon, redoc's fonts and
        worker). Used only on ``docs_paths``."""
        return dataclasses.replace(self, csp=dict(_DOCS_CSP), path_overrides={}, docs_paths=())

    def replace(self, **changes: Any) -> SecurityHeaders:
        """Return a copy with some fields changed (the policy itself is immutable)."""
        return dataclasses.replace(self, **changes)

    def for_path(self, path: str) -> SecurityHeaders:
        """The policy that applies to ``path`` (an override, the docs relaxation, or this)."""
        return self._for_path(path)

    # --- per request ------------------------------------------------------------------------

    def new_nonce(self) -> str | None:
        """A fresh nonce when the CSP uses one, else None."""
        return _new_nonce() if self.uses_nonce else None

    def csp_value(self, nonce: str | None) -> bytes | None:
        """The CSP header value for one response (None when no CSP is configured)."""
        pieces = self._csp_pieces_bytes
        if not pieces:
            return None
        if nonce is None or len(pieces) == 1:
            return pieces[0]
        return nonce.encode("latin-1").join(self._csp_nonce_pieces)

    def apply(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        *,
        https: bool,
        nonce: str | None,
    ) -> list[tuple[bytes, bytes]]:
        """Merge this policy into one response's headers (ASGI-style pairs), returning a new list.

        Removes ``remove_headers``; adds each managed header unless the response already has it
        (or replaces it with ``overwrite=True``); HSTS only when ``https``; ``Cache-Control:
        private`` on HTML responses whose CSP carries a nonce, unless Cache-Control is set.
        """
        if not isinstance(headers, list):
            headers = list(headers)
        present = {key.lower(): value for key, value in headers}
        if self._touched_names.isdisjoint(present):
            # The usual case: nothing to remove, keep or replace.
            out = [*headers, *self.static_headers]
        else:
            removed = self.removed_names
            managed = self.managed_names if self.overwrite else frozenset()
            out = [
                (key, value)
                for key, value in headers
                if key.lower() not in removed and key.lower() not in managed
            ]
            present = {key.lower(): value for key, value in out}
            out.extend((name, value) for name, value in self.static_headers if name not in present)
        if self._csp_pieces_bytes and self.csp_header not in present:
            if nonce is None or len(self._csp_nonce_pieces) == 1:
                out.append((self.csp_header, self._csp_pieces_bytes[0]))
            else:
                out.append((self.csp_header, nonce.encode().join(self._csp_nonce_pieces)))
        if https and self.hsts_header is not None and b"strict-transport-security" not in present:
            out.append(self.hsts_header)
        if nonce is not None and self.private_cache_with_nonce and b"cache-control" not in present:
            content_type = present.get(b"content-type")
            if content_type is not None and content_type[:9].lower() == b"text/html":
                out.append((b"cache-control", b"private"))
        return out


def default_trust() -> ProxyTrust:
    """The proxy trust for the detected platform (Render: its Cloudflare + proxy chain).

    The same object for every call on one platform, so the edge middleware can tell they
    trust the same proxies by identity and work out the request's scheme once.
    """
    from renderkit.platform import detect

    return _trust_for(detect().provider)


@functools.cache
def _trust_for(provider: str) -> ProxyTrust:
    return ProxyTrust.for_provider(provider)


def https_redirect_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """The wiring helpers' decision: ``FORCE_HTTPS`` when set, else True in production only."""
    import os

    from renderkit.config import environment, parse_bool

    env = os.environ if environ is None else environ
    forced = env.get("FORCE_HTTPS")
    if forced is not None and forced.strip():
        try:
            return parse_bool(forced)
        except ValueError as exc:
            from renderkit.errors import ConfigError, ConfigProblem

            raise ConfigError(ConfigProblem("FORCE_HTTPS", f"{exc}; use true or false")) from None
    return environment(environ) == "production"


def _checked_policy(policy: SecurityHeaders | None) -> SecurityHeaders:
    """The policy a security-headers middleware (ASGI or WSGI) was given, or the HTML preset."""
    if policy is None:
        return SecurityHeaders()
    if not isinstance(policy, SecurityHeaders):
        raise TypeError(
            f"SecurityHeadersMiddleware(policy=...) needs a SecurityHeaders, got "
            f"{type(policy).__name__}; build one with SecurityHeaders.html() or .api()"
        )
    return policy


class SecurityHeadersMiddleware:
    """Pure ASGI middleware adding the :class:`SecurityHeaders` policy to every HTTP response.

    The nonce is in ``scope["state"]["csp_nonce"]`` (``request.state.csp_nonce``). HSTS goes on
    responses the client received over https (``X-Forwarded-Proto`` counts only from proxies in
    ``trust``; default: the detected platform's). An unhandled exception before the response
    started gets a 500 carrying the headers, then is re-raised.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: SecurityHeaders | None = None,
        trust: ProxyTrust | None = None,
    ) -> None:
        self.app = app
        self.policy = _checked_policy(policy)
        self.trust = trust if trust is not None else default_trust()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy._for_path(scope["path"])
        nonce = _new_nonce() if policy.uses_nonce else None
        if nonce is not None:
            scope.setdefault("state", {})["csp_nonce"] = nonce
        https = _scheme(scope, self.trust) == "https"
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = policy.apply(
                    message.get("headers", ()), https=https, nonce=nonce
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started and not answers_errors_itself(scope):
                await send_error_response(send_with_headers)
            raise


_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?\.?|\[[0-9A-Fa-f:.]{2,45}\]"
)


@dataclass(frozen=True)
class HTTPSRedirect:
    """The redirect decision, shared by the ASGI and WSGI middleware.

    ``exempt_paths``: never redirected (``"/x"`` exact, ``"/x/*"`` below it); default: health
    paths. ``allowed_hosts``: when set, a Host outside it gets 400 instead of a redirect
    (``"example.com"``, ``"*.example.com"``). ``https_port``: added to the Location when not 443.
    """

    trust: ProxyTrust
    exempt_paths: Sequence[str] = DEFAULT_EXEMPT_PATHS
    allowed_hosts: Sequence[str] | None = None
    https_port: int | None = None
    _exempt: Callable[[str], bool] = field(init=False, repr=False, compare=False)
    _exact_hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _any_host: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.exempt_paths, str) or isinstance(self.allowed_hosts, str):
            raise ValueError(
                "HTTPSRedirectMiddleware: exempt_paths and allowed_hosts take a list, not a string"
            )
        if self.https_port is not None and not 1 <= self.https_port <= 65535:
            raise ValueError(
                f"HTTPSRedirectMiddleware: https_port={self.https_port} must be 1-65535"
            )
        object.__setattr__(self, "exempt_paths", tuple(self.exempt_paths))
        if self.allowed_hosts is not None:
            object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        object.__setattr__(self, "_exempt", path_matcher(tuple(self.exempt_paths)))
        hosts = [h.lower().strip() for h in self.allowed_hosts or ()]
        object.__setattr__(self, "_any_host", "*" in hosts)
        object.__setattr__(
            self, "_exact_hosts", frozenset(h for h in hosts if not h.startswith("*."))
        )
        object.__setattr__(self, "_suffixes", tuple(h[1:] for h in hosts if h.startswith("*.")))

    def is_exempt(self, path: str) -> bool:
        """True for paths that must stay reachable over plain HTTP (health checks)."""
        return self._exempt(path)

    def needs_redirect(
        self, scheme: str, peer: str | None, headers: list[tuple[bytes, bytes]]
    ) -> bool:
        """True when the client used plain http (per the trusted proxies)."""
        return effective_scheme(scheme, peer, headers, self.trust) in ("http", "ws")

    def host_allowed(self, host: str) -> bool:
        """True when ``host`` (no port) may appear in a redirect."""
        if self.allowed_hosts is None or self._any_host:
            return True
        return host in self._exact_hosts or (bool(self._suffixes) and host.endswith(self._suffixes))

    def location(
        self, host_header: str | None, raw_path: bytes, query: bytes
    ) -> tuple[int, bytes | str]:
        """Return ``(0, location)`` for a redirect, or ``(400, reason)`` for a bad Host."""
        if not host_header:
            return 400, "Missing Host header: cannot build the https redirect."
        host_header = host_header.strip()
        host, _, port = (
            host_header.rpartition(":") if not host_header.endswith("]") else (host_header, "", "")
        )
        if not host or (port and not port.isdigit()):
            host, port = host_header, ""
        if not _HOST.fullmatch(host) or len(host) > 253:
            return 400, "Invalid Host header: cannot build the https redirect."
        host = host.lower().rstrip(".")
        if not self.host_allowed(host):
            return 400, "Host not allowed: this server does not redirect for that host."
        netloc = host
        if self.https_port and self.https_port != 443:
            netloc = f"{host}:{self.https_port}"
        location = b"https://" + netloc.encode("ascii") + (raw_path or b"/")
        if query:
            location += b"?" + query
        return 0, location


def _reject_control(raw: bytes) -> bytes:
    # Servers refuse CR/LF in the request line, but never let one reach a response header.
    return (
        raw
        if not re.search(rb"[\x00-\x20\x7f]", raw)
        else re.sub(rb"[\x00-\x20\x7f]", lambda m: b"%%%02X" % m.group()[0], raw)
    )


class HTTPSRedirectMiddleware:
    """Pure ASGI middleware redirecting plain-HTTP requests to https.

    301 for GET/HEAD and 308 for other methods (so a POST body is re-sent), query string kept,
    health paths exempt, ``X-Forwarded-Proto`` believed only from ``trust``-ed proxies (default:
    the detected platform's; off a PaaS nothing is trusted and the TCP scheme counts). With
    ``allowed_hosts`` a foreign Host gets 400 and no redirect. Plain ``ws://`` upgrades are
    refused (closed with 1008).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trust: ProxyTrust | None = None,
        exempt_paths: Sequence[str] = DEFAULT_EXEMPT_PATHS,
        allowed_hosts: Sequence[str] | None = None,
        https_port: int | None = None,
    ) -> None:
        self.app = app
        self.redirect = HTTPSRedirect(
            trust=trust if trust is not None else default_trust(),
            exempt_paths=exempt_paths,
            allowed_hosts=allowed_hosts,
            https_port=https_port,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        redirect = self.redirect
        if redirect.is_exempt(scope["path"]) or _scheme(scope, redirect.trust) not in (
            "http",
            "ws",
        ):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "use wss://"})
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        status, result = redirect.location(
            header(scope["headers"], b"host"),
            _reject_control(raw_path),
            _reject_control(scope.get("query_string", b"")),
        )
        if status:
            assert isinstance(result, str)
            await send_error_response(send, 400, result.encode())
            return
        assert isinstance(result, bytes)
        code = 301 if scope.get("method") in ("GET", "HEAD") else 308
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [(b"location", result), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})
