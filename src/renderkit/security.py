"""HTTPS redirect and security headers for Starlette / FastAPI (pure ASGI).

::

    from renderkit.security import (
        HTTPSRedirectMiddleware, SecurityHeaders, SecurityHeadersMiddleware,
    )

    app.add_middleware(SecurityHeadersMiddleware)                     # HTML preset, A+
    app.add_middleware(SecurityHeadersMiddleware, policy=SecurityHeaders.api())
    app.add_middleware(HTTPSRedirectMiddleware)   # honours X-Forwarded-Proto; /health* exempt

:class:`SecurityHeaders` is a frozen policy that renders every header value once, at
construction. Per request the middleware only draws a CSP nonce (18 urandom bytes, base64url),
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
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

from renderkit._asgi import (
    Message,
    Receive,
    Scope,
    Send,
    answers_errors_itself,
    path_matcher,
    send_error_response,
)
from renderkit._http import ProxyTrust, effective_scheme, header
from renderkit._variables import FORCE_HTTPS
from renderkit.config import Settings, env
from renderkit.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from renderkit._asgi import ASGIApp

__all__ = [
    "CSP_DIRECTIVES",
    "DEFAULT_EXEMPT_PATHS",
    "DOCS_PATHS",
    "NONCE",
    "PROTECTIONS",
    "HTTPSRedirect",
    "HTTPSRedirectMiddleware",
    "HeadersOptions",
    "ProxyTrust",
    "RedirectOptions",
    "SecurityHeaders",
    "SecurityHeadersMiddleware",
    "SecuritySettings",
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
_NONCE_BYTES = 18  # 144 bits, 24 base64url characters

# CSP directives :meth:`SecurityHeaders.extend` / :meth:`~SecurityHeaders.replace` take as
# keywords (``script_src=`` -> ``script-src``); anything else there is a typo, not a directive.
CSP_DIRECTIVES: frozenset[str] = frozenset(
    {
        "base-uri", "block-all-mixed-content", "child-src", "connect-src", "default-src",
        "fenced-frame-src", "font-src", "form-action", "frame-ancestors", "frame-src",
        "img-src", "manifest-src", "media-src", "object-src", "prefetch-src", "report-to",
        "report-uri", "require-trusted-types-for", "sandbox", "script-src", "script-src-attr",
        "script-src-elem", "style-src", "style-src-attr", "style-src-elem", "trusted-types",
        "upgrade-insecure-requests", "worker-src",
    }
)  # fmt: skip
"""The CSP directive names the policy helpers accept as keywords."""

PROTECTIONS: tuple[str, ...] = ("default-src", "object-src", "frame-ancestors", "nonce")
"""What a policy built from a directive mapping or string must keep unless
``csp_allow_missing`` names it: the fallback for every fetch directive, the ban on plugins, the
clickjacking guard, and the per-request nonce on ``script-src``."""

_PROTECTION_REASONS = {
    "default-src": "default-src (the fallback for every resource type)",
    "object-src": "object-src 'none' (plugins; needed unless default-src is 'none')",
    "frame-ancestors": "frame-ancestors (clickjacking: who may frame your pages)",
    "nonce": "the {nonce} source on script-src (inline scripts of your own templates)",
}


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _client_scheme(scope: Scope, trust: ProxyTrust) -> str:
    """The scheme the client used, as far as ``trust`` lets us believe the proxies."""
    client = scope.get("client")
    return effective_scheme(
        scope.get("scheme", "http"), client[0] if client else None, scope["headers"], trust
    )


def _directive_name(keyword: str) -> str:
    """``script_src`` -> ``script-src``; a TypeError for anything that is not a directive."""
    name = keyword.replace("_", "-").lower()
    if name not in CSP_DIRECTIVES:
        raise TypeError(
            f"{keyword!r} is neither a SecurityHeaders option nor a CSP directive "
            f"(directives as keywords: script_src=, img_src=, frame_ancestors=, ...)"
        )
    return name


def _directives(csp: Mapping[str, Sequence[str]] | str) -> dict[str, list[str]]:
    """A CSP as ``{directive: [sources]}`` (a policy string is split on ``;``)."""
    if isinstance(csp, str):
        out: dict[str, list[str]] = {}
        for part in csp.split(";"):
            tokens = part.split()
            if tokens:
                out.setdefault(tokens[0].lower(), tokens[1:])
        return out
    return {name: [*sources] for name, sources in csp.items() if not isinstance(sources, str)}


def _missing_protections(csp: Mapping[str, Sequence[str]] | str) -> list[str]:
    """Which of :data:`PROTECTIONS` a CSP lacks."""
    directives = _directives(csp)
    default = directives.get("default-src")
    missing = []
    if default is None:
        missing.append("default-src")
    if "object-src" not in directives and default != ["'none'"]:
        missing.append("object-src")
    if "frame-ancestors" not in directives:
        missing.append("frame-ancestors")
    script = directives.get("script-src")
    if script is not None and NONCE not in script and "'none'" not in script:
        missing.append("nonce")
    return missing


def _check_sources(csp: Mapping[str, Sequence[str]], problems: list[str]) -> list[str]:
    """Render a directive mapping to ``directive source ...`` parts, noting bad entries."""
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
    return parts


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
        parts = _check_sources(csp, problems)
    if report_uri:
        parts.append(f"report-uri {report_uri}")
    if report_to:
        parts.append("report-to csp-endpoint")
    text = "; ".join(parts)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        problems.append("csp contains non-Latin-1 characters; use ASCII (punycode hosts)")
    if _CONTROL_CHARS.search(text):
        # report_uri and a policy string reach the header unchecked otherwise.
        problems.append(
            "csp (with report_uri) contains a control character such as CR, LF or NUL, "
            "which would break or inject headers; remove it"
        )
    return text


def _permissions(value: Mapping[str, Sequence[str]] | str) -> str:
    if isinstance(value, str):
        return value
    return ", ".join(f"{feature}=({' '.join(allow)})" for feature, allow in value.items())


def _encode_headers(
    pairs: Iterable[tuple[str, str]], problems: list[str]
) -> tuple[tuple[bytes, bytes], ...]:
    """Header pairs as lower-case ASGI bytes; a bad name or value becomes a problem."""
    encoded: list[tuple[bytes, bytes]] = []
    for name, value in pairs:
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
    return tuple(encoded)


def _nonce_pieces(csp_text: str) -> tuple[bytes, ...]:
    """The CSP split around each :data:`NONCE`, with the quoting attached, so one response's
    value is one ``bytes.join``: ``b"...script-src 'self' 'nonce-" + nonce + b"'; ..."``."""
    pieces = [piece.encode("latin-1") for piece in csp_text.split(NONCE)] if csp_text else []
    for i in range(len(pieces) - 1):
        pieces[i] += b"'nonce-"
        pieces[i + 1] = b"'" + pieces[i + 1]
    return tuple(pieces)


def _path_table(
    overrides: Mapping[str, SecurityHeaders], docs_paths: Sequence[str], problems: list[str]
) -> tuple[tuple[tuple[Callable[[str], bool], SecurityHeaders], ...], Callable[[str], bool] | None]:
    """Matchers for ``path_overrides`` (in order) and for ``docs_paths``."""
    table = []
    for pattern, policy in overrides.items():
        if not isinstance(policy, SecurityHeaders):
            problems.append(  # type: ignore[unreachable]
                f"path_overrides[{pattern!r}] must be a SecurityHeaders policy"
            )
            continue
        try:
            table.append((path_matcher((pattern,)), policy))
        except ValueError as exc:
            problems.append(str(exc))
    docs_match = None
    if docs_paths:
        try:
            docs_match = path_matcher(tuple(docs_paths))
        except ValueError as exc:
            problems.append(f"docs_paths: {exc}")
    return tuple(table), docs_match


@dataclass(frozen=True)
class SecurityHeaders:
    """A security-header policy, rendered to bytes once at construction.

    The defaults are the HTML preset (:meth:`html`): a nonce-based CSP without
    ``'unsafe-inline'`` or ``'unsafe-eval'``, HSTS for two years on https responses, ``DENY``
    framing, ``nosniff``, ``strict-origin-when-cross-origin``, a Permissions-Policy denying
    powerful features, COOP and CORP ``same-origin``, and ``Server`` / ``X-Powered-By``
    removed. Headers a handler already set win unless ``overwrite=True``.

    ``csp``: directive -> sources (use :data:`NONCE` for the per-request nonce) or a complete
    policy string (``{nonce}`` placeholders allowed); None sends no CSP. A CSP that lacks one
    of :data:`PROTECTIONS` is refused unless ``csp_allow_missing`` names it: add sources with
    :meth:`extend` instead of writing a whole new ``csp``. ``path_overrides``:
    ``{"/path" or "/prefix/*": SecurityHeaders}`` used instead of this policy on those paths
    (:meth:`override` builds one). ``docs_paths``: paths that get :meth:`docs_relaxation`
    (FastAPI's ``/docs`` and ``/redoc``) unless ``path_overrides`` names them; ``()`` turns it
    off. ``enabled=False`` adds nothing (``SECURITY_HEADERS_ENABLED=false``).
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
    csp_allow_missing: Sequence[str] = ()
    enabled: bool = True

    # Rendered at construction.
    uses_nonce: bool = field(init=False, repr=False, compare=False)
    csp_header: bytes = field(init=False, repr=False, compare=False)
    static_headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)
    hsts_header: tuple[bytes, bytes] | None = field(init=False, repr=False, compare=False)
    managed_names: frozenset[bytes] = field(init=False, repr=False, compare=False)
    removed_names: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _dropped_names: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _static_names: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _csp_pieces: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    _paths: tuple[tuple[Callable[[str], bool], SecurityHeaders], ...] = field(
        init=False, repr=False, compare=False
    )
    _docs_match: Callable[[str], bool] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = self._option_problems()
        csp_text = ""
        if self.csp is not None:
            csp_text = _render_csp(self.csp, self.report_uri, self.report_to, problems)
        static = _encode_headers(self._static_pairs(), problems)
        paths, docs_match = _path_table(self.path_overrides, self.docs_paths, problems)
        if problems:
            raise ValueError(
                "SecurityHeaders: " + "; ".join(problems) + ". Fix these options and restart."
            )
        csp_header = (
            b"content-security-policy-report-only"
            if self.csp_report_only
            else b"content-security-policy"
        )
        hsts = None
        if self.hsts_max_age:
            hsts = (b"strict-transport-security", self._hsts_value().encode())
        managed = {name for name, _ in static} | {b"strict-transport-security"}
        if csp_text:
            managed.add(csp_header)
        removed = frozenset(n.lower().encode("latin-1") for n in self.remove_headers)
        set_ = object.__setattr__
        set_(self, "uses_nonce", self.enabled and NONCE in csp_text)
        set_(self, "csp_header", csp_header)
        set_(self, "static_headers", static)
        set_(self, "_static_names", frozenset(name for name, _ in static))
        set_(self, "hsts_header", hsts)
        set_(self, "managed_names", frozenset(managed))
        set_(self, "removed_names", removed)
        set_(self, "_dropped_names", removed | (frozenset(managed) if self.overwrite else set()))
        set_(self, "_csp_pieces", _nonce_pieces(csp_text))
        set_(self, "_paths", paths)
        set_(self, "_docs_match", docs_match)

    def _option_problems(self) -> list[str]:
        """Every bad scalar option, each named as the caller wrote it."""
        problems = []
        if not isinstance(self.hsts_max_age, int) or self.hsts_max_age < 0:
            problems.append(f"hsts_max_age={self.hsts_max_age!r} must be seconds >= 0")
        elif self.hsts_preload and (
            self.hsts_max_age < 31536000 or not self.hsts_include_subdomains
        ):
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
        if isinstance(self.csp_allow_missing, str) or not set(self.csp_allow_missing) <= set(
            PROTECTIONS
        ):
            problems.append(
                f"csp_allow_missing={self.csp_allow_missing!r} takes a list drawn from "
                f"{', '.join(PROTECTIONS)}"
            )
        elif self.csp is not None:
            problems.extend(self._protection_problems(self.csp))
        return problems

    def _protection_problems(self, csp: Mapping[str, Sequence[str]] | str) -> list[str]:
        dropped = [m for m in _missing_protections(csp) if m not in self.csp_allow_missing]
        if not dropped:
            return []
        return [
            "this csp drops "
            + ", ".join(_PROTECTION_REASONS[m] for m in dropped)
            + ". To add sources keep the preset and use policy.extend(script_src=[...]); "
            + f"to drop them on purpose pass csp_allow_missing={tuple(dropped)!r}"
        ]

    def _static_pairs(self) -> list[tuple[str, str]]:
        """The headers whose value never changes, in the order they are sent."""
        optional = [
            ("X-Content-Type-Options", "nosniff" if self.content_type_options else None),
            ("X-Frame-Options", self.frame_options),
            ("Referrer-Policy", self.referrer_policy),
            (
                "Permissions-Policy",
                _permissions(self.permissions_policy) if self.permissions_policy else None,
            ),
            ("Cross-Origin-Opener-Policy", self.cross_origin_opener_policy),
            ("Cross-Origin-Resource-Policy", self.cross_origin_resource_policy),
            ("Cross-Origin-Embedder-Policy", self.cross_origin_embedder_policy),
            ("Reporting-Endpoints", f'csp-endpoint="{self.report_to}"' if self.report_to else None),
        ]
        pairs = [(name, value) for name, value in optional if value]
        pairs.extend(self.extra_headers.items())
        return pairs

    def _hsts_value(self) -> str:
        value = f"max-age={self.hsts_max_age}"
        if self.hsts_include_subdomains:
            value += "; includeSubDomains"
        if self.hsts_preload:
            value += "; preload"
        return value

    # --- presets and derived policies -------------------------------------------------------

    @classmethod
    def html(cls, **changes: Any) -> SecurityHeaders:
        """The default for server-rendered HTML apps: nonce-based CSP, scores A+ on Observatory.

        Keywords change options or CSP directives as :meth:`replace` does
        (``SecurityHeaders.html(hsts_preload=True)``).
        """
        return cls().replace(**changes) if changes else cls()

    @classmethod
    def api(cls, **changes: Any) -> SecurityHeaders:
        """For JSON APIs: CSP ``default-src 'none'; frame-ancestors 'none'`` (OWASP's advice), no
        nonce, no Permissions-Policy; FastAPI's docs pages still get :meth:`docs_relaxation`."""
        policy = cls(csp=dict(_API_CSP), permissions_policy=None)
        return policy.replace(**changes) if changes else policy

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, base: SecurityHeaders | None = None
    ) -> SecurityHeaders:
        """``base`` (default: the HTML preset) with the environment's toggles applied:
        ``SECURITY_HEADERS_ENABLED=false`` adds nothing, ``CSP_ENABLED=false`` sends no CSP,
        ``HSTS_MAX_AGE`` sets the HSTS max-age (0: no HSTS). Raises ``ConfigError``."""
        settings = SecuritySettings.load(environ)
        policy = base if base is not None else cls()
        changes: dict[str, Any] = {}
        if not settings.headers_enabled:
            changes["enabled"] = False
        if not settings.csp_enabled:
            changes["csp"] = None
        if settings.hsts_max_age is not None:
            changes["hsts_max_age"] = settings.hsts_max_age
        try:
            return policy.replace(**changes) if changes else policy
        except ValueError as exc:
            raise ConfigError(ConfigProblem("HSTS_MAX_AGE", str(exc))) from None

    def replace(self, **changes: Any) -> SecurityHeaders:
        """A copy with options and CSP directives changed (the policy itself is immutable).

        A keyword naming an option replaces it (``frame_options="SAMEORIGIN"``); any other
        keyword names a CSP directive whose sources it replaces (``img_src=["'self'",
        "https://img.example"]``; ``None`` removes the directive).
        """
        options = {k: v for k, v in changes.items() if k in _OPTION_NAMES}
        directives = {k: v for k, v in changes.items() if k not in _OPTION_NAMES}
        if directives:
            if "csp" in options:
                raise TypeError("replace(): give csp= or directive keywords, not both")
            csp = self._editable_csp("replace")
            for keyword, sources in directives.items():
                name = _directive_name(keyword)
                if sources is None:
                    csp.pop(name, None)
                else:
                    csp[name] = _source_list(keyword, sources)
            options["csp"] = csp
        return dataclasses.replace(self, **options)

    def extend(self, **directives: Iterable[str]) -> SecurityHeaders:
        """A copy whose CSP directives gain sources: ``policy.extend(script_src=["https://
        cdn.example"])``. A directive the policy lacks starts from ``default-src``'s sources
        (so extending never narrows what was allowed); ``'none'`` gives way to the new sources.
        """
        csp = self._editable_csp("extend")
        for keyword, sources in directives.items():
            name = _directive_name(keyword)
            added = _source_list(keyword, sources)
            current = csp.get(name, csp.get("default-src", []) if name.endswith("-src") else [])
            merged = [s for s in current if s != "'none'"]
            merged.extend(s for s in added if s not in merged)
            csp[name] = merged
        return dataclasses.replace(self, csp=csp)

    def override(
        self, pattern: str, policy: SecurityHeaders | None = None, **changes: Any
    ) -> SecurityHeaders:
        """A copy that serves ``pattern`` (``"/embed"`` or ``"/embed/*"``) with ``policy``, or
        with this policy changed by ``changes`` as :meth:`replace` takes them: a per-route
        override (``policy.override("/widgets/*", frame_ancestors=["https://partner.example"],
        frame_options=None)``)."""
        if policy is None:
            policy = self.replace(path_overrides={}, **changes)
        elif changes:
            raise TypeError("override(): give a policy or changes, not both")
        return dataclasses.replace(self, path_overrides={**self.path_overrides, pattern: policy})

    @classmethod
    def checked(cls, policy: SecurityHeaders | None) -> SecurityHeaders:
        """The policy a security-headers middleware (ASGI or WSGI) was given, or the HTML
        preset; a TypeError with a hint for anything else."""
        if policy is None:
            return cls()
        if not isinstance(policy, SecurityHeaders):
            raise TypeError(
                f"SecurityHeadersMiddleware(policy=...) needs a SecurityHeaders, got "
                f"{type(policy).__name__}; build one with SecurityHeaders.html() or .api()"
            )
        return policy

    def _editable_csp(self, verb: str) -> dict[str, list[str]]:
        if self.csp is None:
            raise ValueError(
                f"{verb}(): this policy sends no CSP; start from SecurityHeaders.html() or .api()"
            )
        return _directives(self.csp)

    def docs_relaxation(self) -> SecurityHeaders:
        """This policy with a CSP that lets FastAPI's ``/docs`` and ``/redoc`` render (jsDelivr
        scripts and styles, the inline bootstrap script, the FastAPI favicon, redoc's fonts and
        worker). Used only on ``docs_paths``."""
        return dataclasses.replace(
            self,
            csp=dict(_DOCS_CSP),
            path_overrides={},
            docs_paths=(),
            csp_allow_missing=("nonce",),  # a nonce would switch 'unsafe-inline' off
        )

    @functools.cached_property
    def _docs_policy(self) -> SecurityHeaders:
        return self.docs_relaxation()

    def for_path(self, path: str) -> SecurityHeaders:
        """The policy that applies to ``path`` (an override, the docs relaxation, or this)."""
        for matches, policy in self._paths:
            if matches(path):
                return policy
        if self._docs_match is not None and self._docs_match(path):
            return self._docs_policy
        return self

    # --- per request ------------------------------------------------------------------------

    def new_nonce(self) -> str | None:
        """A fresh nonce when the CSP uses one, else None."""
        if not self.uses_nonce:
            return None
        # secrets.token_urlsafe's bytes, base64url-encoded in C (18 bytes need no padding).
        raw = os.urandom(_NONCE_BYTES)
        return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).decode()

    def csp_value(self, nonce: str | None) -> bytes | None:
        """The CSP header value for one response (None when no CSP is configured)."""
        pieces = self._csp_pieces
        if not pieces:
            return None
        if len(pieces) == 1:
            return pieces[0]
        return (nonce or "").encode("latin-1").join(pieces)

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
        With ``enabled=False`` the headers come back unchanged.
        """
        out = list(headers)
        if not self.enabled:
            return out
        present: dict[bytes, bytes] = {}  # a loop: no comprehension function per response
        for key, value in out:
            present[key.lower()] = value
        dropped = self._dropped_names
        if not dropped.isdisjoint(present):
            out = [(key, value) for key, value in out if key.lower() not in dropped]
            present = {key.lower(): value for key, value in out}
        if self._static_names.isdisjoint(present):
            out.extend(self.static_headers)
        else:  # the handler set some of them: its values win
            out.extend(pair for pair in self.static_headers if pair[0] not in present)
        csp = self.csp_value(nonce)
        if csp is not None and self.csp_header not in present:
            out.append((self.csp_header, csp))
        if https and self.hsts_header is not None and b"strict-transport-security" not in present:
            out.append(self.hsts_header)
        if nonce is not None and self.private_cache_with_nonce and b"cache-control" not in present:
            content_type = present.get(b"content-type")
            if content_type is not None and content_type[:9].lower() == b"text/html":
                out.append((b"cache-control", b"private"))
        return out


_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(SecurityHeaders) if f.init)


def _source_list(keyword: str, sources: Iterable[str]) -> list[str]:
    if isinstance(sources, str):
        raise TypeError(
            f"{keyword}= takes a list of sources, e.g. [\"'self'\"], not the string {sources!r}"
        )
    return list(sources)


class SecuritySettings(Settings):
    """The variables :meth:`SecurityHeaders.from_env` and :func:`https_redirect_enabled` read."""

    force_https: bool | None = FORCE_HTTPS
    headers_enabled: bool = env("SECURITY_HEADERS_ENABLED", default=True)
    """false sends none of the security headers of SecurityHeaders.from_env() (CSP, HSTS,
    X-Frame-Options, ...)."""
    csp_enabled: bool = env("CSP_ENABLED", default=True)
    """false drops the Content-Security-Policy header (the other headers stay)."""
    hsts_max_age: int | None = env("HSTS_MAX_AGE", default=None, minimum=0)
    """Strict-Transport-Security max-age in seconds (0: no HSTS); unset: two years (63072000)."""


def default_trust() -> ProxyTrust:
    """The proxy trust for the detected platform (Render: its Cloudflare + proxy chain).

    The same object for every call on one platform, so every middleware built with the
    default shares one ``ProxyTrust`` (and its per-peer answers).
    """
    from renderkit.platform import detect

    return _trust_for(detect().provider)


@functools.cache
def _trust_for(provider: str) -> ProxyTrust:
    return ProxyTrust.for_provider(provider)


def https_redirect_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """The wiring helpers' decision: ``FORCE_HTTPS`` when set, else True in production only."""
    from renderkit.config import environment

    forced = SecuritySettings.load(environ).force_https
    return forced if forced is not None else environment(environ) == "production"


class HeadersOptions(TypedDict, total=False):
    """The keyword options of both security-headers middleware (ASGI and WSGI): ``policy``
    (default: the HTML preset) and ``trust`` (the proxies whose ``X-Forwarded-Proto`` makes a
    request https, for HSTS; default: the detected platform's)."""

    policy: SecurityHeaders | None
    trust: ProxyTrust | None


def headers_setup(options: HeadersOptions) -> tuple[SecurityHeaders, ProxyTrust]:
    """The checked policy and the trust a security-headers middleware runs with."""
    unknown = sorted(set(options) - {"policy", "trust"})
    if unknown:
        raise TypeError(
            f"SecurityHeadersMiddleware got unexpected option(s) {', '.join(unknown)}; it "
            "takes policy, trust"
        )
    trust = options.get("trust")
    policy = SecurityHeaders.checked(options.get("policy"))
    return policy, trust if trust is not None else default_trust()


class SecurityHeadersMiddleware:
    """Pure ASGI middleware adding the :class:`SecurityHeaders` policy to every HTTP response.

    The nonce is in ``scope["state"]["csp_nonce"]`` (``request.state.csp_nonce``; ``""`` when
    the policy uses none). HSTS goes on
    responses the client received over https (``X-Forwarded-Proto`` counts only from proxies in
    ``trust``; default: the detected platform's). An unhandled exception before the response
    started gets a 500 carrying the headers, then is re-raised.
    """

    def __init__(self, app: ASGIApp, **options: Unpack[HeadersOptions]) -> None:
        self.app = app
        self.policy, self.trust = headers_setup(options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy.for_path(scope["path"])
        nonce = policy.new_nonce()
        # "" when this path's policy has no nonce (CSP_ENABLED=false, the API preset), so a
        # template writing nonce="{{ request.state.csp_nonce }}" renders instead of failing.
        scope.setdefault("state", {})["csp_nonce"] = nonce or ""
        https = _client_scheme(scope, self.trust) == "https"
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


class RedirectOptions(TypedDict, total=False):
    """The keyword options of both HTTPS-redirect middleware (ASGI and WSGI).

    ``trust``: the proxies whose ``X-Forwarded-Proto`` counts (default: the detected
    platform's). ``exempt_paths``: never redirected (``"/x"`` exact, ``"/x/*"`` below it);
    default: health paths. ``allowed_hosts``: when set, a Host outside it gets 400 instead of a
    redirect (``"example.com"``, ``"*.example.com"``). ``https_port``: added to the Location
    when not 443.
    """

    trust: ProxyTrust | None
    exempt_paths: Sequence[str]
    allowed_hosts: Sequence[str] | None
    https_port: int | None


@dataclass(frozen=True)
class HTTPSRedirect:
    """The redirect decision, shared by the ASGI and WSGI middleware (options: see
    :class:`RedirectOptions`)."""

    trust: ProxyTrust
    exempt_paths: Sequence[str] = DEFAULT_EXEMPT_PATHS
    allowed_hosts: Sequence[str] | None = None
    https_port: int | None = None
    _exempt: Callable[[str], bool] = field(init=False, repr=False, compare=False)
    _exact_hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _any_host: bool = field(init=False, repr=False, compare=False)

    @classmethod
    def from_options(cls, options: RedirectOptions) -> HTTPSRedirect:
        """Build the decision from a middleware's keyword options (unknown ones: TypeError)."""
        unknown = sorted(set(options) - set(RedirectOptions.__annotations__))
        if unknown:
            raise TypeError(
                f"HTTPSRedirectMiddleware got unexpected option(s) {', '.join(unknown)}; it "
                f"takes {', '.join(RedirectOptions.__annotations__)}"
            )
        trust = options.get("trust")
        return cls(
            trust=trust if trust is not None else default_trust(),
            exempt_paths=options.get("exempt_paths", DEFAULT_EXEMPT_PATHS),
            allowed_hosts=options.get("allowed_hosts"),
            https_port=options.get("https_port"),
        )

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

    def __init__(self, app: ASGIApp, **options: Unpack[RedirectOptions]) -> None:
        self.app = app
        self.redirect = HTTPSRedirect.from_options(options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        redirect = self.redirect
        if redirect.is_exempt(scope["path"]) or _client_scheme(scope, redirect.trust) not in (
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
