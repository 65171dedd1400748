"""``renderkit verify URL``: check a running app the way its users and Render will meet it.

Checks, in order (each prints a progress line on stderr, then its verdict):

1. ``health``: the health path answers 2xx within Render's 5 s, as JSON with a ``status``.
2. ``health-endpoints``: ``<health>/live``, ``<health>/ready`` and ``<health>/instance`` (the
   path for Render's ``healthCheckPath``) answer (404 is reported, not failed: apps may expose
   a single path).
3. ``https-redirect``: plain http is answered with 301/308 to https on the same host (the
   whole redirect chain is followed, up to 10 hops, as Mozilla's scanner does).
4. ``security-headers``: the page graded exactly as Mozilla's HTTP Observatory scanner
   (``@mdn/mdn-http-observatory`` 1.4.8) grades it: its headers, its HTML (meta CSP,
   Subresource Integrity), a CORS preflight (``OPTIONS`` with ``Origin``), and the redirect
   (:func:`renderkit.cli._observatory.grade_headers`); A or better passes, B warns.
5. ``request-id``: a valid ``X-Request-ID`` is echoed; a hostile one is replaced.
6. ``rate-limit-headers``: ``RateLimit`` / ``RateLimit-Policy`` are present.
7. ``cookies``: every cookie set by the page has Secure, HttpOnly (sessions) and SameSite.

Against an ``http://`` URL (an app on this machine), verify plays Render's proxy: it sends
``X-Forwarded-Proto: https`` on the page requests and ``X-Forwarded-Proto: http`` for the
redirect check. An app only believes them from a proxy it trusts (``ProxyTrust``); an app
that trusts nobody answers every request with its redirect, which the report explains.

Exit codes: 0 nothing failed (warnings allowed), 1 a check failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TextIO
from urllib.parse import urljoin, urlsplit, urlunsplit

from renderkit.cli._observatory import (
    ObservatoryReport,
    grade_headers,
    parse_set_cookie,
    redirection_result,
    split_url,
)
from renderkit.cli._output import EXIT_USAGE as EXIT_USAGE
from renderkit.cli._output import Verdict, add_command, usage_error

if TYPE_CHECKING:
    import httpx

__all__ = ["CheckStatus", "VerifyCheck", "VerifyReport", "run_verify"]

CheckStatus = Literal["pass", "warn", "fail", "skip"]

EXIT_OK = 0
EXIT_FAILED = 1
_MAX_REDIRECTS = 10  # as the scanner

RENDER_HEALTH_DEADLINE = 5.0
"""Render counts a health check as failed when it takes longer than this."""
_ORIGIN = "https://renderkit-verify.invalid"
_HOSTILE_ID = ('hostile "id" <script>alert(1)</script>; ' * 8).strip()
_ID_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~/:=@"
)
_GOOD_GRADES = ("A+", "A")
_FAIR_GRADES = ("A-", "B+", "B", "B-")


@dataclass(frozen=True, slots=True)
class VerifyCheck(Verdict):
    """The verdict of one check: status, what was seen, what to do, and the raw facts."""

    status: CheckStatus

    @property
    def name(self) -> str:
        """The check's name (``health``, ``https-redirect``, ...)."""
        return self.check


@dataclass(slots=True)
class VerifyReport:
    """Every check's verdict, plus the Observatory grade of the page."""

    url: str
    checks: list[VerifyCheck] = field(default_factory=list)
    observatory: ObservatoryReport | None = None

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.status != "fail" for c in self.checks)

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        out = {"pass": 0, "warn": 0, "fail": 0, "skip": 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    def check(self, name: str) -> VerifyCheck:
        """The verdict of check ``name``."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``--json`` prints)."""
        return {
            "url": self.url,
            "ok": self.ok,
            "summary": self.counts(),
            "checks": [c.as_dict() for c in self.checks],
            "observatory": self.observatory.as_dict() if self.observatory else None,
        }


@dataclass(slots=True)
class _Context:
    client: httpx.Client
    base: str
    https: bool
    local: bool
    health_path: str
    path: str
    cookie_path: str
    report: VerifyReport
    page: httpx.Response | None = None
    reflected_origin_rule: bool = True

    def url(self, path: str, *, scheme: str | None = None) -> str:
        parts = urlsplit(self.base)
        joined = parts.path.rstrip("/") + path
        return urlunsplit((scheme or parts.scheme, parts.netloc, joined, "", ""))

    def proxy_headers(self, proto: str = "https") -> dict[str, str]:
        return {"X-Forwarded-Proto": proto} if self.local else {}

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        merged = {**self.proxy_headers(), **(headers or {})}
        return self.client.get(self.url(path), headers=merged, follow_redirects=False)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _redirected_by_app(response: httpx.Response) -> VerifyCheck | None:
    """A fail explaining that the app redirected the probe instead of answering it."""
    location = response.headers.get("location", "")
    if response.status_code in (301, 302, 307, 308) and location.startswith("https://"):
        return VerifyCheck(
            "page",
            "fail",
            f"answered {response.status_code} -> {location}: the app redirects this client "
            "to https because it does not trust it as a proxy",
            "verify the deployed https URL, or run the app locally with the platform's proxy "
            "trust (e.g. RENDER=true) or without the HTTPS redirect (APP_ENV=development)",
        )
    return None


def check_health(ctx: _Context) -> VerifyCheck:
    """The health path answers 2xx within 5 s, as JSON carrying a status."""
    started = time.perf_counter()
    response = ctx.get(ctx.health_path)
    elapsed = time.perf_counter() - started
    details: dict[str, Any] = {
        "path": ctx.health_path,
        "status_code": response.status_code,
        "ms": round(elapsed * 1000, 1),
        "content_type": response.headers.get("content-type", ""),
    }
    if elapsed > RENDER_HEALTH_DEADLINE:
        return VerifyCheck(
            "health",
            "fail",
            f"GET {ctx.health_path} took {_ms(elapsed)}; Render fails checks over 5 s",
            "keep the health path fast: give each check a timeout (renderkit.health does)",
            details,
        )
    if 300 <= response.status_code < 400:
        return VerifyCheck(
            "health",
            "fail",
            f"GET {ctx.health_path} redirects ({response.status_code} -> "
            f"{response.headers.get('location', '?')})",
            "exempt the health paths from the HTTPS redirect (HTTPSRedirectMiddleware does)",
            details,
        )
    if not 200 <= response.status_code < 300:
        return VerifyCheck(
            "health",
            "fail",
            f"GET {ctx.health_path} answered {response.status_code}",
            "mount the health routes (Health.routes()) at this path, or pass --health-path",
            details,
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "status" not in body:
        return VerifyCheck(
            "health",
            "warn",
            f"GET {ctx.health_path}: {response.status_code} in {_ms(elapsed)}, but not JSON "
            "with a status",
            "answer application/health+json with a status (renderkit.health does)",
            details,
        )
    details["health_status"] = body["status"]
    status: CheckStatus = "pass" if elapsed < 1.0 else "warn"
    slow = "" if status == "pass" else " (slow: over 1 s)"
    return VerifyCheck(
        "health",
        status,
        f"{response.status_code} {body['status']} in {_ms(elapsed)}{slow}",
        "" if status == "pass" else "cache slow dependency checks",
        details,
    )


def check_health_endpoints(ctx: _Context) -> VerifyCheck:
    """Liveness, readiness and instance sub-paths answer (reported, not required)."""
    seen: dict[str, int] = {}
    for suffix in ("live", "ready", "instance"):
        path = ctx.health_path.rstrip("/") + "/" + suffix
        seen[path] = ctx.get(path).status_code
    missing = [p for p, code in seen.items() if code == 404]
    bad = [f"{p} {code}" for p, code in seen.items() if code != 404 and not 200 <= code < 300]
    text = ", ".join(f"{p} {code}" for p, code in seen.items())
    if bad:
        return VerifyCheck(
            "health-endpoints",
            "warn",
            f"{', '.join(bad)}",
            "a 503 from ready means the instance is draining or a critical dependency is down",
            {"status_codes": seen},
        )
    if missing:
        return VerifyCheck(
            "health-endpoints",
            "skip",
            f"not found: {', '.join(missing)}",
            "Health.routes() adds /live, /ready and /instance (for Render's healthCheckPath)",
            {"status_codes": seen},
        )
    return VerifyCheck("health-endpoints", "pass", text, details={"status_codes": seen})


def _follow(ctx: _Context, url: str, headers: Mapping[str, str]) -> list[httpx.Response]:
    """Every response of the redirect chain starting at ``url`` (10 hops at most)."""
    import httpx

    responses = [ctx.client.get(url, headers=headers, follow_redirects=False)]
    while (
        len(responses) <= _MAX_REDIRECTS
        and responses[-1].status_code in (301, 302, 303, 307, 308)
        and responses[-1].headers.get("location")
        and not ctx.local  # locally, verify plays the proxy: one hop is all it can judge
    ):
        target = _location(str(responses[-1].request.url), responses[-1])
        try:
            responses.append(ctx.client.get(target, follow_redirects=False))
        except (ValueError, httpx.InvalidURL, httpx.UnsupportedProtocol):
            break  # a Location nothing can follow ends the chain where it points
    return responses


def _location(base: str, response: httpx.Response) -> str:
    """The absolute URL a redirect points to (its Location as sent when it cannot be joined)."""
    location = str(response.headers.get("location", ""))
    try:
        return urljoin(base, location)
    except ValueError:
        return location


_REDIRECT_FIX = "add HTTPSRedirectMiddleware (renderkit.flask.RenderKit turns it on in production)"


def _redirect_verdict(
    ctx: _Context, result: str, route: list[str], first: httpx.Response
) -> VerifyCheck:
    details = {"route": route, "status_code": first.status_code}
    shown = " -> ".join(route)
    if result == "redirection-missing":
        # On this machine the app may well keep the redirect for production only.
        local = " (local app: it may enable the redirect in production only)" if ctx.local else ""
        message = f"plain http answered {first.status_code} instead of redirecting to https{local}"
        return VerifyCheck(
            "https-redirect", "warn" if ctx.local else "fail", message, _REDIRECT_FIX, details
        )
    if result == "redirection-not-to-https":
        return VerifyCheck(
            "https-redirect",
            "fail",
            f"plain http never reaches https: {shown}",
            _REDIRECT_FIX,
            details,
        )
    if result == "redirection-not-to-https-on-initial-redirection":
        message = f"the first redirect stays on plain http: {shown}"
        return VerifyCheck(
            "https-redirect", "warn", message, "redirect to https on the same host first", details
        )
    if result == "redirection-off-host-from-http":
        host, other = split_url(route[0])[1], split_url(route[1])[1]
        message = f"redirects to another host ({other}), so HSTS is never set for {host}"
        return VerifyCheck(
            "https-redirect", "warn", message, "redirect to https on the same host first", details
        )
    if first.status_code not in (301, 308):
        message = f"{first.status_code} -> {route[1]}: a temporary redirect"
        return VerifyCheck(
            "https-redirect",
            "warn",
            message,
            "use 308 (or 301) so browsers and crawlers remember it",
            details,
        )
    return VerifyCheck(
        "https-redirect", "pass", f"{first.status_code} -> {route[1]}", details=details
    )


def _redirection_result(ctx: _Context) -> tuple[str, VerifyCheck]:
    if ctx.local:
        url, headers = ctx.url(ctx.path), ctx.proxy_headers("http")
    else:
        url, headers = ctx.url(ctx.path, scheme="http"), {}
    try:
        responses = _follow(ctx, url, headers)
    except Exception as exc:  # httpx's transport errors; nothing listens on http
        if ctx.https:
            message = f"plain http is not served at all ({type(exc).__name__})"
            return "redirection-not-needed-no-http", VerifyCheck("https-redirect", "pass", message)
        raise
    route = [url] + [_location(str(r.request.url), r) for r in responses if r.is_redirect]
    if ctx.local:
        route = route[:2]
    result = redirection_result(route)
    return result, _redirect_verdict(ctx, result, route, responses[0])


def _preflight(ctx: _Context, url: str) -> httpx.Headers:
    """The answer to a CORS preflight for the page, as the scanner sends it."""
    import httpx

    headers = {"Origin": _ORIGIN, "Access-Control-Request-Method": "GET", **ctx.proxy_headers()}
    try:
        return ctx.client.request("OPTIONS", url, headers=headers).headers
    except Exception:  # the scanner counts a preflight that fails as no CORS at all
        return httpx.Headers()


def _fetch_page(ctx: _Context) -> tuple[httpx.Response, list[tuple[str, str]]]:
    """The page as the scanner sees it: the final answer after redirects (10 at most), with
    every cookie set on the way (locally, verify plays the proxy and follows nothing)."""
    if ctx.local:
        response = ctx.get(ctx.path)
        return response, response.headers.multi_items()
    response = ctx.client.get(ctx.url(ctx.path), follow_redirects=True)
    answers = [*response.history[:_MAX_REDIRECTS], response]
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "set-cookie"]
    cookies = [("set-cookie", v) for r in answers for v in r.headers.get_list("set-cookie")]
    return response, headers + cookies


_GRADED_STATUS = frozenset((401, 403))  # the scanner grades these errors, refuses the others


def check_security_headers(ctx: _Context, redirection: str | None) -> VerifyCheck:
    """The page graded with the HTTP Observatory scanner's rules."""
    response, headers = _fetch_page(ctx)
    ctx.page = response
    redirected = _redirected_by_app(response)
    if redirected is not None:
        return VerifyCheck("security-headers", "fail", redirected.message, redirected.fix)
    if response.status_code >= 400 and response.status_code not in _GRADED_STATUS:
        return VerifyCheck(
            "security-headers",
            "fail",
            f"GET {ctx.path} answered {response.status_code}: Mozilla's scanner refuses to "
            "grade a page that answers an error (other than 401/403)",
            "pass --path with a page that answers 200 (or 401/403 behind a login)",
        )
    # Locally, HSTS shows up only when the app believed our X-Forwarded-Proto: https; when it
    # did not, HSTS cannot be judged here and is left unscored.
    https: bool | None = ctx.https
    if ctx.local:
        https = True if "strict-transport-security" in response.headers else None
    report = grade_headers(
        headers,
        https=https,
        origin=_ORIGIN,
        redirection=redirection,
        body=response.text,
        preflight=_preflight(ctx, str(response.url)),
        reflected_origin_rule=ctx.reflected_origin_rule,
        host=urlsplit(ctx.base).hostname,  # the scanned host, as the scanner compares
    )
    ctx.report.observatory = report
    return _grade_verdict(report, ctx.path)


def _grade_verdict(report: ObservatoryReport, path: str) -> VerifyCheck:
    failed = [t for t in report.tests if not t.passed]
    details = {"score": report.score, "grade": report.grade, "path": path}
    message = f"grade {report.grade} ({report.score}, Observatory 1.4.8 rules)"
    if failed:
        message += ": " + "; ".join(f"{t.test} {t.modifier:+d} {t.message}" for t in failed)
    fix = "; ".join(t.fix for t in failed if t.fix)
    if report.grade in _GOOD_GRADES:
        return VerifyCheck("security-headers", "pass", message, fix, details)
    if report.grade in _FAIR_GRADES:
        return VerifyCheck("security-headers", "warn", message, fix, details)
    return VerifyCheck("security-headers", "fail", message, fix, details)


def _looks_like_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all(ch in _ID_SAFE for ch in value)


def check_request_id(ctx: _Context) -> VerifyCheck:
    """A valid X-Request-ID comes back unchanged; a hostile one is replaced by a clean id."""
    sent = f"verify-{secrets.token_hex(8)}"
    echoed = ctx.get(ctx.health_path, headers={"X-Request-ID": sent}).headers.get("x-request-id")
    fix = "add CorrelationIdMiddleware (it echoes valid ids and replaces the rest)"
    if echoed is None:
        return VerifyCheck("request-id", "fail", "no X-Request-ID on the response", fix)
    if echoed != sent:
        return VerifyCheck(
            "request-id",
            "fail",
            f"sent {sent!r}, got {echoed!r}: the client's id is not kept",
            "accept incoming ids so logs join up across services",
            {"sent": sent, "received": echoed},
        )
    hostile = ctx.get(ctx.health_path, headers={"X-Request-ID": _HOSTILE_ID})
    replaced = hostile.headers.get("x-request-id")
    details = {"sent": sent, "received": echoed, "hostile_replaced_by": replaced}
    if replaced is None:
        return VerifyCheck("request-id", "fail", "no X-Request-ID for a hostile id", fix, details)
    if replaced == _HOSTILE_ID or not _looks_like_id(replaced):
        return VerifyCheck(
            "request-id",
            "fail",
            "a hostile X-Request-ID (quotes, spaces, <script>, 351 chars) was echoed back",
            "validate incoming ids (CorrelationIdMiddleware does): a log injection waits here",
            details,
        )
    return VerifyCheck(
        "request-id", "pass", f"{sent} echoed; a hostile id became {replaced}", details=details
    )


def check_rate_limit_headers(ctx: _Context) -> VerifyCheck:
    """The page carries RateLimit and RateLimit-Policy headers."""
    response = ctx.page if ctx.page is not None else ctx.get(ctx.path)
    headers = response.headers
    current = {k: headers[k] for k in ("ratelimit", "ratelimit-policy") if k in headers}
    legacy = {
        k: headers[k]
        for k in ("ratelimit-limit", "ratelimit-remaining", "x-ratelimit-limit")
        if k in headers
    }
    if len(current) == 2:
        return VerifyCheck(
            "rate-limit-headers",
            "pass",
            f"RateLimit: {current['ratelimit']}; RateLimit-Policy: {current['ratelimit-policy']}",
            details=current,
        )
    if current or legacy:
        found = ", ".join(sorted({*current, *legacy}))
        return VerifyCheck(
            "rate-limit-headers",
            "warn",
            f"partial or older rate-limit headers: {found}",
            "send both RateLimit and RateLimit-Policy (RateLimitMiddleware does)",
            {**current, **legacy},
        )
    return VerifyCheck(
        "rate-limit-headers",
        "warn",
        f"no RateLimit headers on {ctx.path}",
        "add RateLimitMiddleware so clients see their budget (and abusers get 429s)",
    )


# Broader than the Observatory's "login"/"sess": this check is renderkit's own, and a session
# or auth cookie called sid or token needs HttpOnly just as much.
_SESSION_LIKE = ("sess", "sid", "login", "auth", "token")


def _session_like(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in _SESSION_LIKE)


def check_cookies(ctx: _Context) -> VerifyCheck:
    """Every cookie the page sets has Secure, HttpOnly (sessions) and SameSite."""
    if ctx.page is not None and ctx.cookie_path == ctx.path:
        response = ctx.page
    else:
        response = ctx.get(ctx.cookie_path)
    raw = response.headers.get_list("set-cookie")
    cookies = [c for c in (parse_set_cookie(v) for v in raw) if c is not None]
    if not cookies:
        return VerifyCheck(
            "cookies",
            "skip",
            f"GET {ctx.cookie_path} set no cookie",
            "pass --cookie-path with a route that starts a session",
        )
    problems: list[str] = []
    warnings: list[str] = []
    for c in cookies:
        if not c.secure:
            (problems if ctx.https or _session_like(c.name) else warnings).append(
                f"{c.name}: no Secure"
            )
        if _session_like(c.name) and not c.httponly:
            problems.append(f"{c.name}: no HttpOnly")
        if c.samesite is None:
            warnings.append(f"{c.name}: no SameSite")
        elif c.samesite not in ("lax", "strict", "none"):
            problems.append(f"{c.name}: SameSite={c.samesite} is invalid")
        elif c.samesite == "none" and not c.secure:
            problems.append(f"{c.name}: SameSite=None without Secure is dropped by browsers")
    details = {
        "cookies": [
            {"name": c.name, "secure": c.secure, "httponly": c.httponly, "samesite": c.samesite}
            for c in cookies
        ]
    }
    fix = (
        "set the session cookie Secure, HttpOnly, SameSite=Lax "
        "(SessionMiddleware does in production)"
    )
    if problems:
        return VerifyCheck("cookies", "fail", "; ".join(problems + warnings), fix, details)
    if warnings:
        return VerifyCheck("cookies", "warn", "; ".join(warnings), fix, details)
    names = ", ".join(c.name for c in cookies)
    return VerifyCheck("cookies", "pass", f"{names}: Secure, HttpOnly, SameSite", details=details)


Progress = Callable[[int, int, str, VerifyCheck | None], None]

_STEPS = (
    "health",
    "health-endpoints",
    "https-redirect",
    "security-headers",
    "request-id",
    "rate-limit-headers",
    "cookies",
)


def normalise_url(url: str) -> str:
    """Validate and normalise the URL argument (a bare host gets ``https://``)."""
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{url!r} is not an http(s) URL; pass the service URL, e.g. https://app.onrender.com"
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _is_local(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "testserver"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def _http_client(timeout: float) -> httpx.Client:
    try:
        import httpx
    except ImportError as exc:
        raise ImportError("renderkit verify needs httpx: pip install 'renderkit[cli]'") from exc
    return httpx.Client(
        timeout=timeout, headers={"User-Agent": "renderkit-verify"}, follow_redirects=False
    )


def _run_checks(ctx: _Context, progress: Progress | None) -> None:
    report = ctx.report
    redirection: str | None = None

    def step(index: int, name: str, fn: Callable[[], VerifyCheck]) -> None:
        if progress:
            progress(index, len(_STEPS), name, None)
        try:
            result = fn()
        except Exception as exc:  # connection refused, timeouts, TLS errors: report, go on
            result = VerifyCheck(
                name,
                "fail",
                f"request failed: {type(exc).__name__}: {exc}"[:300],
                "check the URL and that the service is up",
            )
        report.checks.append(result)
        if progress:
            progress(index, len(_STEPS), name, result)

    def redirect_step() -> VerifyCheck:
        nonlocal redirection
        result_id, verdict = _redirection_result(ctx)
        redirection = None if ctx.local else result_id
        return verdict

    step(1, "health", lambda: check_health(ctx))
    step(2, "health-endpoints", lambda: check_health_endpoints(ctx))
    step(3, "https-redirect", redirect_step)
    step(4, "security-headers", lambda: check_security_headers(ctx, redirection))
    step(5, "request-id", lambda: check_request_id(ctx))
    step(6, "rate-limit-headers", lambda: check_rate_limit_headers(ctx))
    step(7, "cookies", lambda: check_cookies(ctx))


def run_verify(
    url: str,
    *,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
    health_path: str = "/health",
    path: str = "/",
    cookie_path: str | None = None,
    progress: Progress | None = None,
    scanner_only: bool = False,
) -> VerifyReport:
    """Run every check against the app at ``url`` and return the report.

    ``client``: an ``httpx.Client`` to use (a Starlette ``TestClient`` works too); by default
    one is created with ``timeout`` seconds per request. A check that cannot connect or times
    out becomes a ``fail`` naming the error instead of stopping the others.
    ``scanner_only``: grade exactly as Mozilla's scanner 1.4.8, without renderkit's
    reflected-origin-with-credentials rule.
    """
    base = normalise_url(url)
    for name, value in (("--health-path", health_path), ("--path", path)):
        if not value.startswith("/"):
            raise ValueError(f"{name} {value!r} must start with /")
    parts = urlsplit(base)
    own_client = client is None
    active = client if client is not None else _http_client(timeout)
    report = VerifyReport(base)
    ctx = _Context(
        client=active,
        base=base,
        https=parts.scheme == "https",
        local=parts.scheme == "http" and _is_local(parts.hostname or ""),
        health_path=health_path,
        path=path,
        cookie_path=cookie_path or path,
        report=report,
        reflected_origin_rule=not scanner_only,
    )
    try:
        _run_checks(ctx, progress)
    finally:
        if own_client:
            active.close()
    return report


_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


def format_table(report: VerifyReport) -> str:
    """The human-readable report: one row per check, then the fixes."""
    width = max(len(c.name) for c in report.checks) if report.checks else 5
    lines = [f"renderkit verify {report.url}", ""]
    lines.append(f"  {'CHECK':<{width}}  STATUS  DETAIL")
    for c in report.checks:
        lines.append(f"  {c.name:<{width}}  {_MARK[c.status]:<6}  {c.message}")
    fixes = [c for c in report.checks if c.fix and c.status in ("fail", "warn")]
    if fixes:
        lines += ["", "To fix:"]
        lines += [f"  - {c.name}: {c.fix}" for c in fixes]
    counts = report.counts()
    lines += [
        "",
        f"{counts['pass']} passed, {counts['warn']} warning{'s' * (counts['warn'] != 1)}, "
        f"{counts['fail']} failed, "
        f"{counts['skip']} skipped",
    ]
    return "\n".join(lines)


def _stderr_progress(stream: TextIO) -> Progress:
    def show(index: int, total: int, name: str, result: VerifyCheck | None) -> None:
        if result is None:
            stream.write(f"[{index}/{total}] {name} ...\n")
        else:
            stream.write(f"[{index}/{total}] {name}: {_MARK[result.status]}\n")
        stream.flush()

    return show


def _run(args: argparse.Namespace) -> int:
    """check a running app: health, redirect, security headers, request id, cookies

    Check a deployed (or local) app: health endpoints and format, the http->https
    redirect, security headers graded with Mozilla HTTP Observatory's rules,
    X-Request-ID handling, rate-limit headers and cookie flags. Exit codes: 0 no
    check failed, 1 a check failed, 2 bad usage.
    """
    try:
        report = run_verify(
            args.url,
            timeout=args.timeout,
            health_path=args.health_path,
            path=args.path,
            cookie_path=args.cookie_path,
            progress=None if args.quiet else _stderr_progress(sys.stderr),
            scanner_only=args.scanner_only,
        )
    except (ValueError, ImportError) as exc:
        return usage_error("verify", [str(exc)])
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_table(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 120:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 and at most 120 seconds")
    return value


def register(subparsers: Any) -> None:
    """Add ``verify`` to the CLI."""
    p = add_command(subparsers, "verify", _run)
    p.add_argument("url", help="the app's base URL, e.g. https://app.onrender.com")
    p.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    p.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="per-request timeout (default: 10)",
    )
    p.add_argument("--health-path", default="/health", help="(default: /health)")
    p.add_argument("--path", default="/", help="the page whose headers are graded (default: /)")
    p.add_argument(
        "--cookie-path",
        default=None,
        help="a route that sets the session cookie (default: --path)",
    )
    p.add_argument(
        "--scanner-only",
        action="store_true",
        help="grade exactly as Mozilla's scanner 1.4.8 (without renderkit's rule against a "
        "reflected Origin with credentials)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
