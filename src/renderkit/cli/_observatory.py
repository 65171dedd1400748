"""Grade a page the way Mozilla's HTTP Observatory scanner does (pure functions, no I/O).

The rules follow the scanner ``@mdn/mdn-http-observatory`` at :data:`SCANNER_VERSION` test
by test: its result ids, its modifiers (:data:`MODIFIERS`, the scanner's grading chart), its
pass/fail verdicts and its quirks, checked against the scanner itself run on loopback
(``tests/test_cli_observatory.py`` holds the table). Every site starts at 100; a test's
penalty always counts, its bonus only when the score without bonuses is at least 90.

What the scanner reads, and what :func:`grade_headers` takes for it:

- the page's response headers (``headers``), as Node.js joins repeated ones (``, ``);
- the page's HTML (``body``): ``<meta http-equiv="Content-Security-Policy">``,
  ``<meta name="referrer">`` and the ``<script src>`` tags for Subresource Integrity;
- the headers of a CORS preflight (``preflight``): ``OPTIONS`` with ``Origin`` and
  ``Access-Control-Request-Method: GET``;
- the http->https redirect chain (``redirection``, from :func:`redirection_result`).

renderkit adds one rule of its own: a preflight that echoes the ``Origin`` it was sent and
allows credentials is ``cross-origin-resource-sharing-implemented-with-universal-access``
(-50). The scanner defines that result but 1.4.8 never reaches it (it never reads back the
Origin it sent); ``reflected_origin_rule=False`` grades exactly as 1.4.8 does.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "HSTS_MIN_MAX_AGE",
    "MODIFIERS",
    "SCANNER_VERSION",
    "ObservatoryReport",
    "TestOutcome",
    "grade_for_score",
    "grade_headers",
    "parse_csp",
    "parse_set_cookie",
    "redirection_result",
    "split_url",
]

SCANNER_VERSION = "1.4.8"
"""The ``@mdn/mdn-http-observatory`` release these rules were checked against."""

HSTS_MIN_MAX_AGE = 15768000
"""Six months in seconds, as the scanner advises (it accepts from 15552000, 180 days)."""
_HSTS_ACCEPTED = 15552000

MODIFIERS: dict[str, int] = {
    # content-security-policy
    "csp-implemented-with-no-unsafe-default-src-none": 10,
    "csp-implemented-with-no-unsafe": 5,
    "csp-implemented-with-unsafe-inline-in-style-src-only": 0,
    "csp-implemented-but-duplicate-directives": 0,
    "csp-implemented-with-insecure-scheme-in-passive-content-only": -10,
    "csp-implemented-with-unsafe-eval": -10,
    "csp-implemented-with-unsafe-inline": -20,
    "csp-implemented-with-insecure-scheme": -20,
    "csp-header-invalid": -25,
    "csp-not-implemented": -25,
    "csp-not-implemented-but-reporting-enabled": -25,
    # cookies
    "cookies-secure-with-httponly-sessions-and-samesite": 5,
    "cookies-secure-with-httponly-sessions": 0,
    "cookies-not-found": 0,
    "cookies-without-secure-flag-but-protected-by-hsts": -5,
    "cookies-session-without-secure-flag-but-protected-by-hsts": -10,
    "cookies-without-secure-flag": -20,
    "cookies-samesite-flag-invalid": -20,
    "cookies-anticsrf-without-samesite-flag": -20,
    "cookies-session-without-httponly-flag": -30,
    "cookies-session-without-secure-flag": -40,
    # cross-origin-resource-sharing
    "cross-origin-resource-sharing-not-implemented": 0,
    "cross-origin-resource-sharing-implemented-with-public-access": 0,
    "cross-origin-resource-sharing-implemented-with-restricted-access": 0,
    "cross-origin-resource-sharing-implemented-with-universal-access": -50,
    # redirection
    "redirection-all-redirects-preloaded": 0,
    "redirection-to-https": 0,
    "redirection-not-needed-no-http": 0,
    "redirection-off-host-from-http": -5,
    "redirection-not-to-https-on-initial-redirection": -10,
    "redirection-not-to-https": -20,
    "redirection-missing": -20,
    "redirection-invalid-cert": -20,
    # referrer-policy
    "referrer-policy-private": 5,
    "referrer-policy-not-implemented": 0,
    "referrer-policy-unsafe": -5,
    "referrer-policy-header-invalid": -5,
    # strict-transport-security ("hsts-not-tested" is renderkit's: a local http app)
    "hsts-preloaded": 5,
    "hsts-implemented-max-age-at-least-six-months": 0,
    "hsts-not-tested": 0,
    "hsts-implemented-max-age-less-than-six-months": -10,
    "hsts-not-implemented": -20,
    "hsts-header-invalid": -20,
    "hsts-not-implemented-no-https": -20,
    "hsts-invalid-cert": -20,
    # subresource-integrity
    "sri-implemented-and-all-scripts-loaded-securely": 5,
    "sri-implemented-and-external-scripts-loaded-securely": 5,
    "sri-not-implemented-response-not-html": 0,
    "sri-not-implemented-but-no-scripts-loaded": 0,
    "sri-not-implemented-but-all-scripts-loaded-from-secure-origin": 0,
    "sri-not-implemented-but-external-scripts-loaded-securely": -5,
    "sri-implemented-but-external-scripts-not-loaded-securely": -20,
    "sri-not-implemented-and-external-scripts-not-loaded-securely": -50,
    # x-content-type-options
    "x-content-type-options-nosniff": 0,
    "x-content-type-options-not-implemented": -5,
    "x-content-type-options-header-invalid": -5,
    # x-frame-options
    "x-frame-options-implemented-via-csp": 5,
    "x-frame-options-sameorigin-or-deny": 0,
    "x-frame-options-allow-from-origin": 0,
    "x-frame-options-not-implemented": -20,
    "x-frame-options-header-invalid": -20,
    # cross-origin-resource-policy
    "corp-implemented-with-same-origin": 10,
    "corp-implemented-with-same-site": 10,
    "corp-implemented-with-cross-origin": 0,
    "corp-not-implemented": 0,
    "corp-header-invalid": -5,
    # the HTML could not be parsed (the scanner's parser, like Python's, never gives up)
    "html-not-parseable": -20,
}
"""Every result id the scanner can give, with its score modifier (its grading chart)."""

_PASSING = frozenset(
    [
        "csp-implemented-with-no-unsafe-default-src-none",
        "csp-implemented-with-no-unsafe",
        "csp-implemented-with-unsafe-inline-in-style-src-only",
        "csp-implemented-but-duplicate-directives",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
        "cookies-secure-with-httponly-sessions-and-samesite",
        "cookies-secure-with-httponly-sessions",
        "cookies-not-found",
        "cross-origin-resource-sharing-not-implemented",
        "cross-origin-resource-sharing-implemented-with-public-access",
        "cross-origin-resource-sharing-implemented-with-restricted-access",
        "redirection-all-redirects-preloaded",
        "redirection-to-https",
        "redirection-not-needed-no-http",
        "referrer-policy-private",
        "referrer-policy-not-implemented",
        "hsts-preloaded",
        "hsts-implemented-max-age-at-least-six-months",
        "hsts-not-tested",
        "sri-implemented-and-all-scripts-loaded-securely",
        "sri-implemented-and-external-scripts-loaded-securely",
        "sri-not-implemented-response-not-html",
        "sri-not-implemented-but-no-scripts-loaded",
        "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
        "x-content-type-options-nosniff",
        "x-frame-options-implemented-via-csp",
        "x-frame-options-sameorigin-or-deny",
        "x-frame-options-allow-from-origin",
        "corp-implemented-with-same-origin",
        "corp-implemented-with-same-site",
        "corp-implemented-with-cross-origin",
        "corp-not-implemented",
    ]
)

_FIXES = {
    "content-security-policy": "send a Content-Security-Policy with default-src 'none' (or "
    "'self') and a per-request nonce for scripts (renderkit.security.SecurityHeadersMiddleware)",
    "cookies": "set every cookie Secure, session cookies HttpOnly, and SameSite=Lax or Strict "
    "(SessionMiddleware does in production)",
    "cross-origin-resource-sharing": "allow a fixed list of origins (CORS_ALLOWED_ORIGINS); "
    "never echo Origin back together with Access-Control-Allow-Credentials: true",
    "redirection": "redirect plain http to https on the same host first (HTTPSRedirectMiddleware)",
    "referrer-policy": "send Referrer-Policy: strict-origin-when-cross-origin",
    "strict-transport-security": "send Strict-Transport-Security: max-age=63072000; "
    "includeSubDomains, once, over https",
    "subresource-integrity": "load third-party scripts over https with an integrity= hash "
    "(and crossorigin=anonymous)",
    "x-content-type-options": "send X-Content-Type-Options: nosniff",
    "x-frame-options": "send CSP frame-ancestors 'none' (or 'self'), or X-Frame-Options: DENY",
    "cross-origin-resource-policy": "send Cross-Origin-Resource-Policy: same-origin (or same-site)",
}

_GRADES = (
    (100, "A+"),
    (90, "A"),
    (85, "A-"),
    (80, "B+"),
    (70, "B"),
    (65, "B-"),
    (60, "C+"),
    (50, "C"),
    (45, "C-"),
    (40, "D+"),
    (30, "D"),
    (25, "D-"),
    (0, "F"),
)
_EXTRA_CREDIT_FROM = 90
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Node.js keeps the first of these when a response repeats them; it joins any other repeated
# header with ", " (Set-Cookie stays a list). The scanner sees headers that way.
_NODE_FIRST_WINS = frozenset(
    [
        "age",
        "authorization",
        "content-length",
        "content-type",
        "etag",
        "expires",
        "from",
        "host",
        "if-modified-since",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "proxy-authorization",
        "referer",
        "retry-after",
        "server",
        "user-agent",
    ]
)

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """One test: its result id, score modifier, pass/fail and an explanation."""

    __test__ = False  # not a pytest test class, despite the name

    test: str
    result: str
    modifier: int
    passed: bool
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "test": self.test,
            "result": self.result,
            "modifier": self.modifier,
            "pass": self.passed,
            "message": self.message,
            "fix": self.fix,
        }


def _outcome(test: str, result: str, message: str) -> TestOutcome:
    passed = result in _PASSING
    return TestOutcome(
        test, result, MODIFIERS[result], passed, message, "" if passed else _FIXES[test]
    )


@dataclass(frozen=True, slots=True)
class ObservatoryReport:
    """The score, the letter grade, every scored test, and unscored extras (COOP)."""

    score: int
    grade: str
    tests: tuple[TestOutcome, ...] = field(default_factory=tuple)
    extras: tuple[TestOutcome, ...] = field(default_factory=tuple)

    def outcome(self, test: str) -> TestOutcome:
        """The outcome of ``test`` (``content-security-policy``, ``cookies``, ...)."""
        for t in (*self.tests, *self.extras):
            if t.test == test:
                return t
        raise KeyError(test)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "score": self.score,
            "grade": self.grade,
            "scanner_version": SCANNER_VERSION,
            "tests": [t.as_dict() for t in self.tests],
            "extras": [t.as_dict() for t in self.extras],
        }


def grade_for_score(score: int) -> str:
    """The letter grade for a score (100+ is A+, under 25 is F)."""
    for floor, grade in _GRADES:
        if score >= floor:
            return grade
    return "F"


class _Headers:
    """Response headers as the scanner (Node.js) sees them."""

    def __init__(self, headers: HeadersLike | None) -> None:
        self.values: dict[str, list[str]] = {}
        if headers is None:
            return
        multi = getattr(headers, "multi_items", None)  # httpx.Headers keeps repeats apart
        if callable(multi):
            items: Iterable[tuple[str, str]] = multi()
        elif isinstance(headers, Mapping):
            items = headers.items()
        else:
            items = headers
        for key, value in items:
            self.values.setdefault(str(key).lower(), []).append(str(value))

    def get(self, name: str) -> str | None:
        found = self.values.get(name)
        if not found:
            return None
        return found[0] if name in _NODE_FIRST_WINS else ", ".join(found)

    def all(self, name: str) -> list[str]:
        return list(self.values.get(name, ()))


# --- the page's HTML -------------------------------------------------------------------------


@dataclass(slots=True)
class _Page:
    """What the scanner reads from the HTML: meta policies and script tags."""

    html: bool = False
    meta_csp: list[str] = field(default_factory=list)
    meta_referrer: list[str] = field(default_factory=list)
    scripts: list[tuple[str, str | None]] = field(default_factory=list)  # (src, integrity)


class _PageParser(HTMLParser):
    def __init__(self, page: _Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v for k, v in attrs}
        if tag == "meta":
            equiv, content = a.get("http-equiv"), a.get("content")
            if equiv is not None and content is not None:
                if equiv.strip().lower() == "content-security-policy" and content:
                    self.page.meta_csp.append(content)
            elif (a.get("name") or "").strip().lower() == "referrer" and content:
                self.page.meta_referrer = [content]
        elif tag == "script":
            self.page.scripts.append((a.get("src") or "", a.get("integrity")))


def _read_page(headers: _Headers, body: str | None) -> _Page:
    mime = (headers.get("content-type") or "").split(";")[0]
    page = _Page(html=mime in _HTML_TYPES)
    if page.html and body:
        parser = _PageParser(page)
        parser.feed(body)
        parser.close()
    return page


# --- content-security-policy -----------------------------------------------------------------

_BROAD = frozenset(
    ("ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*")
)
_UNSAFE_INLINE = frozenset(("'unsafe-inline'", "data:"))
_BROAD_OR_INLINE = _BROAD | _UNSAFE_INLINE
_PASSIVE = ("img-src", "media-src")
_NONCES_HASHES = ("'sha256-", "'sha384-", "'sha512-", "'nonce-")
_ALLOWED_DUPLICATES = ("report-uri", "report-to")
_DUPLICATES_KEY = "_duplicate_directives"
_META_FORBIDDEN = ("frame-ancestors", "report-uri", "sandbox")


class _CspInvalid(ValueError):
    pass


@dataclass(slots=True)
class _Source:
    source: str
    index: int
    keep: bool


def _path_part_match(a: str, b: str) -> bool:
    if not a:
        return True
    if a == "/" and not b:
        return True
    exact = not a.endswith("/")
    parts_a, parts_b = a.split("/"), b.split("/")
    if len(parts_a) > len(parts_b) or (exact and len(parts_a) != len(parts_b)):
        return False
    if not exact:
        parts_a.pop()
    return all(unquote(x) == unquote(y) for x, y in zip(parts_a, parts_b, strict=False))


def _merge_sources(combined: list[_Source]) -> list[_Source]:
    combined.sort(key=lambda s: s.source)
    for prev, source in itertools.pairwise(combined):
        # In one policy, a longer source starting like a shorter one adds nothing; across
        # policies, a source must be allowed by both to count.
        if source.index == prev.index and source.source.startswith(prev.source):
            source.keep = False
        if source.index != prev.index and _path_part_match(prev.source, source.source):
            source.keep = True
    return [s for s in combined if s.keep]


def _parse_policies(policies: Sequence[str]) -> dict[str, set[str]]:
    """The scanner's CSP parser: several policies merge into what all of them allow."""
    clean = [p.replace("\r", "").replace("\n", "").strip() for p in policies]
    if any(len(p) < len("img-src") - 1 for p in clean):
        raise _CspInvalid("policy too short")
    csp: dict[str, list[_Source]] = {}
    duplicates: set[str] = set()
    for index, policy in enumerate(clean):
        seen: set[str] = set()
        for entry in policy.split(";"):
            tokens = entry.split()
            if not tokens:
                continue
            directive = tokens[0].lower()
            if directive in seen and directive not in _ALLOWED_DUPLICATES:
                raise _CspInvalid(f"duplicate directive {directive}")
            if directive in seen:
                duplicates.add(directive)
            seen.add(directive)
            values = [_Source(t.lower(), index, index == 0) for t in tokens[1:]]
            if not values and directive.endswith("-src"):
                values = [_Source("'none'", index, index == 0)]
            combined = values if index == 0 else [*csp.get(directive, []), *values]
            csp[directive] = _merge_sources(combined)
            if index == 0 and len(clean) > 1:
                for source in csp[directive]:
                    source.keep = False
    final = {d: ({s.source for s in v} or {"'none'"}) for d, v in csp.items()}
    if duplicates:
        final[_DUPLICATES_KEY] = duplicates
    return final


def parse_csp(value: str) -> dict[str, list[str]] | None:
    """Parse one CSP header into ``{directive: [sources]}`` (lower-cased, sorted), as the
    scanner does; None when the scanner would call it invalid (a repeated directive other
    than report-uri/report-to, or a policy shorter than 6 characters)."""
    try:
        parsed = _parse_policies([value])
    except _CspInvalid:
        return None
    parsed.pop(_DUPLICATES_KEY, None)
    return {k: sorted(v) for k, v in parsed.items()} or None


def _csp_sources(csp: dict[str, set[str]]) -> tuple[set[str], set[str], set[str]]:
    """script-src, style-src and object-src with the scanner's fallbacks and nonce rules."""
    star = {"*"}
    default = csp.get("default-src")
    script = csp.get("script-src", default if default is not None else set(star))
    style = csp.get("style-src", default if default is not None else set(star))
    objects = csp.get("object-src", default if default is not None else set(star))
    for sources in (script, style):  # a nonce or hash makes browsers ignore 'unsafe-inline'
        if any(s.startswith(_NONCES_HASHES) for s in sources):
            sources.discard("'unsafe-inline'")
    return script, style, objects


def _csp_result(csp: dict[str, set[str]], secure: bool) -> str:
    script, style, objects = _csp_sources(csp)
    result: str | None = None
    if "'strict-dynamic'" in script:
        if any(s.startswith(_NONCES_HASHES) for s in script):
            drop = {
                s
                for s in script
                if s.startswith(tuple(_BROAD)) or s in ("'self'", "'unsafe-inline'")
            }
            script -= drop
        else:
            result = "csp-header-invalid"
    active = [s for d, v in csp.items() if d not in (*_PASSIVE, "script-src") for s in v]
    active += script
    default = csp.get("default-src", set())
    passive = [s for d in _PASSIVE for s in csp.get(d, default)]
    insecure = ("http:", "ftp:")
    checks = (
        (
            bool(script & _BROAD_OR_INLINE) or bool(objects & _BROAD),
            "csp-implemented-with-unsafe-inline",
        ),
        (
            secure and any(s.startswith(insecure) for s in active),
            "csp-implemented-with-insecure-scheme",
        ),
        ("'unsafe-eval'" in script | style, "csp-implemented-with-unsafe-eval"),
        (
            secure and any(s.startswith(insecure) for s in passive),
            "csp-implemented-with-insecure-scheme-in-passive-content-only",
        ),
        (bool(style & _BROAD_OR_INLINE), "csp-implemented-with-unsafe-inline-in-style-src-only"),
        (default == {"'none'"}, "csp-implemented-with-no-unsafe-default-src-none"),
    )
    for hit, candidate in checks:
        if result is None and hit:
            result = candidate
    result = result or "csp-implemented-with-no-unsafe"
    if result in _PASSING and _DUPLICATES_KEY in csp:
        result = "csp-implemented-but-duplicate-directives"
    return result


_CSP_MESSAGES = {
    "csp-implemented-with-no-unsafe-default-src-none": (
        "CSP with default-src 'none' and no unsafe source"
    ),
    "csp-implemented-with-no-unsafe": "CSP without unsafe-inline or unsafe-eval",
    "csp-implemented-with-unsafe-inline-in-style-src-only": (
        "CSP allows unsafe sources in style-src only"
    ),
    "csp-implemented-but-duplicate-directives": "CSP repeats report-uri/report-to (bonus lost)",
    "csp-implemented-with-insecure-scheme-in-passive-content-only": (
        "CSP lets images or media load over http"
    ),
    "csp-implemented-with-unsafe-eval": "CSP allows 'unsafe-eval'",
    "csp-implemented-with-unsafe-inline": (
        "CSP allows inline or arbitrary scripts (unsafe-inline, data:, a broad source such as "
        "https: or *, or no script-src/object-src/default-src at all)"
    ),
    "csp-implemented-with-insecure-scheme": (
        "CSP allows scripts, styles or other active content over http"
    ),
    "csp-header-invalid": (
        "CSP cannot be parsed (a repeated directive, a too-short policy, or "
        "'strict-dynamic' without a nonce or hash)"
    ),
    "csp-not-implemented": "no Content-Security-Policy",
    "csp-not-implemented-but-reporting-enabled": (
        "only Content-Security-Policy-Report-Only, which enforces nothing"
    ),
}


def _test_csp(
    headers: _Headers, page: _Page, secure: bool
) -> tuple[TestOutcome, dict[str, set[str]] | None]:
    """The CSP outcome, and the merged policy (X-Frame-Options reads its frame-ancestors)."""
    header = headers.get("content-security-policy")
    from_header = [header] if header is not None else []
    try:
        csp = _parse_policies([*from_header, *page.meta_csp])
    except _CspInvalid:
        return _outcome(
            "content-security-policy", "csp-header-invalid", _CSP_MESSAGES["csp-header-invalid"]
        ), None
    # A <meta> policy cannot carry frame-ancestors, report-uri or sandbox: one holding only
    # those enforces nothing (the merged policy still keeps them, as the scanner's does).
    meta = _parse_policies(page.meta_csp)
    enforced = {d for d in meta if d not in _META_FORBIDDEN} | set(_parse_policies(from_header))
    if not enforced:
        result = "csp-not-implemented"
        if headers.get("content-security-policy-report-only"):
            result = "csp-not-implemented-but-reporting-enabled"
        return _outcome("content-security-policy", result, _CSP_MESSAGES[result]), None
    result = _csp_result(csp, secure)
    return _outcome("content-security-policy", result, _CSP_MESSAGES[result]), csp


# --- cookies ---------------------------------------------------------------------------------

_SESSION_MARKERS = ("login", "sess")  # the scanner's heuristic for a session cookie
_IGNORED_COOKIES = ("heroku-session-affinity",)  # the scanner skips Heroku's routing cookie
_COOKIE_ORDER = (  # best to worst: the worst finding wins
    "cookies-without-secure-flag-but-protected-by-hsts",
    "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid",
    "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag",
    "cookies-session-without-secure-flag",
)


@dataclass(frozen=True, slots=True)
class Cookie:
    """A ``Set-Cookie`` header, parsed: name and the flags that matter for security."""

    name: str
    secure: bool
    httponly: bool
    samesite: str | None  # "strict", "lax", "none", or an invalid value as sent

    @property
    def is_session(self) -> bool:
        """Named like a session or login cookie (the scanner's heuristic: login, sess)."""
        lowered = self.name.lower()
        return any(marker in lowered for marker in _SESSION_MARKERS)


def parse_set_cookie(value: str) -> Cookie | None:
    """Parse one ``Set-Cookie`` value; None when it has no ``name=``."""
    parts = value.split(";")
    name, sep, _ = parts[0].partition("=")
    if not sep or not name.strip():
        return None
    secure = httponly = False
    samesite: str | None = None
    for attribute in parts[1:]:
        key, _, val = attribute.strip().partition("=")
        key = key.strip().lower()
        if key == "secure":
            secure = True
        elif key == "httponly":
            httponly = True
        elif key == "samesite":
            samesite = val.strip().lower()
    return Cookie(name.strip(), secure, httponly, samesite)


def _samesite_invalid(raw: str) -> bool:
    for part in raw.strip().split(";"):
        pieces = part.strip().split("=")
        if pieces[0].strip().lower() == "samesite":
            value = pieces[1].strip().lower() if len(pieces) > 1 else ""
            if value not in ("lax", "strict", "none"):
                return True
    return False


def _cookie_findings(cookie: Cookie, hsts: bool) -> list[str]:
    """The scanner's findings for one cookie (result ids; the worst one counts)."""
    findings = []
    # A SameSite value other than Strict, Lax or None is dropped by the cookie jar.
    samesite = cookie.samesite if cookie.samesite in ("lax", "strict", "none") else None
    hsts_suffix = "-but-protected-by-hsts" if hsts else ""
    if not cookie.secure and samesite == "none":
        findings.append("cookies-samesite-flag-invalid")
    if not cookie.secure:
        findings.append("cookies-without-secure-flag" + hsts_suffix)
    if "csrf" in cookie.name.lower() and samesite is None:
        findings.append("cookies-anticsrf-without-samesite-flag")
    if cookie.is_session and not cookie.secure:
        findings.append("cookies-session-without-secure-flag" + hsts_suffix)
    if cookie.is_session and not cookie.httponly:
        findings.append("cookies-session-without-httponly-flag")
    return findings


def _test_cookies(headers: _Headers, hsts: bool) -> TestOutcome:
    raw = headers.all("set-cookie")
    jar: dict[str, Cookie] = {}  # a later cookie of the same name replaces the earlier one
    for value in raw:
        cookie = parse_set_cookie(value)
        if cookie is not None and cookie.name not in _IGNORED_COOKIES:
            jar[cookie.name] = cookie
    if not jar:
        return _outcome("cookies", "cookies-not-found", "no cookies set")
    found: list[tuple[str, str]] = [
        ("cookies-samesite-flag-invalid", value.split("=")[0].strip())
        for value in raw
        if _samesite_invalid(value)
    ]
    for cookie in jar.values():
        found += [(result, cookie.name) for result in _cookie_findings(cookie, hsts)]
    if found:
        worst = max((result for result, _ in found), key=_COOKIE_ORDER.index)
        names = ", ".join(sorted({name for result, name in found if result == worst}))
        return _outcome("cookies", worst, f"{worst.replace('-', ' ')}: {names}")
    names = ", ".join(jar)
    if all(c.samesite in ("lax", "strict", "none") for c in jar.values()):
        result = "cookies-secure-with-httponly-sessions-and-samesite"
        return _outcome("cookies", result, f"{names}: Secure, HttpOnly sessions, SameSite")
    result = "cookies-secure-with-httponly-sessions"
    return _outcome("cookies", result, f"{names}: Secure, HttpOnly sessions; SameSite missing")


# --- the other headers -----------------------------------------------------------------------


def _test_cors(preflight: _Headers, origin: str | None, reflected_rule: bool) -> TestOutcome:
    test = "cross-origin-resource-sharing"
    acao = preflight.get("access-control-allow-origin")
    if not acao:
        return _outcome(test, "cross-origin-resource-sharing-not-implemented", "no CORS headers")
    data = acao[:256].strip().lower()
    credentials = (preflight.get("access-control-allow-credentials") or "").strip().lower()
    if data == "*":
        return _outcome(
            test, "cross-origin-resource-sharing-implemented-with-public-access", "public CORS (*)"
        )
    if reflected_rule and origin and acao.strip() == origin and credentials == "true":
        message = (
            f"the Origin sent ({origin}) is echoed back with credentials allowed (renderkit's rule)"
        )
        return _outcome(
            test, "cross-origin-resource-sharing-implemented-with-universal-access", message
        )
    return _outcome(
        test,
        "cross-origin-resource-sharing-implemented-with-restricted-access",
        f"CORS restricted to {data}",
    )


def _js_parse_int(text: str) -> float:
    match = re.match(r"\s*([-+]?\d+)", text)
    return int(match.group(1)) if match else float("nan")


def _test_hsts(headers: _Headers, https: bool | None) -> TestOutcome:
    test = "strict-transport-security"
    if https is None:
        return _outcome(
            test, "hsts-not-tested", "not testable over plain http; verify the deployed https URL"
        )
    if not https:
        return _outcome(
            test,
            "hsts-not-implemented-no-https",
            "fetched over plain http, where HSTS cannot be set",
        )
    value = headers.get("strict-transport-security")
    if value is None:
        return _outcome(test, "hsts-not-implemented", "no Strict-Transport-Security header")
    data = value[:1024]
    max_age: float | None = None
    for parameter in (p.strip().lower() for p in data.split(";")):
        if parameter.startswith("max-age="):
            max_age = _js_parse_int(parameter[8:128])
    if "," in data or max_age is None:
        return _outcome(test, "hsts-header-invalid", f"HSTS {value!r}: sent twice, or no max-age=")
    if max_age < _HSTS_ACCEPTED:  # NaN (max-age="...") compares false: the scanner accepts it
        return _outcome(
            test,
            "hsts-implemented-max-age-less-than-six-months",
            f"HSTS max-age={max_age} is under six months",
        )
    return _outcome(test, "hsts-implemented-max-age-at-least-six-months", f"HSTS {data}")


_REFERRER_GOOD = ("no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin")
_REFERRER_BAD = ("origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade")


def _test_referrer(headers: _Headers, page: _Page) -> TestOutcome:
    test = "referrer-policy"
    values = [*headers.all("referrer-policy"), *page.meta_referrer]
    if not values:
        return _outcome(test, "referrer-policy-not-implemented", "no Referrer-Policy")
    data = ", ".join(values)
    # Browsers use the last policy they understand.
    known = [
        t.strip().lower()
        for t in data.split(",")
        if t.strip().lower() in (*_REFERRER_GOOD, *_REFERRER_BAD)
    ]
    policy = known[-1] if known else ""
    if policy in _REFERRER_GOOD:
        return _outcome(test, "referrer-policy-private", f"Referrer-Policy: {policy}")
    if policy in _REFERRER_BAD:
        return _outcome(
            test,
            "referrer-policy-unsafe",
            f"Referrer-Policy {policy} sends full URLs to other sites",
        )
    return _outcome(
        test, "referrer-policy-header-invalid", f"Referrer-Policy {data!r} is not a known policy"
    )


def _test_nosniff(headers: _Headers) -> TestOutcome:
    test = "x-content-type-options"
    value = headers.get("x-content-type-options")
    if not value:
        return _outcome(test, "x-content-type-options-not-implemented", "no X-Content-Type-Options")
    if value[:256].strip().lower() != "nosniff":
        return _outcome(
            test, "x-content-type-options-header-invalid", f"{value!r} (sent twice, or not nosniff)"
        )
    return _outcome(test, "x-content-type-options-nosniff", "nosniff")


def _test_framing(headers: _Headers, csp: dict[str, set[str]] | None) -> TestOutcome:
    test = "x-frame-options"
    if csp is not None and "frame-ancestors" in csp:
        sources = " ".join(sorted(csp["frame-ancestors"]))
        return _outcome(
            test, "x-frame-options-implemented-via-csp", f"CSP frame-ancestors {sources}"
        )
    value = headers.get("x-frame-options")
    if not value:
        return _outcome(test, "x-frame-options-not-implemented", "framing is not restricted")
    normalised = value[:1024].strip().lower()
    if normalised in ("deny", "sameorigin"):
        return _outcome(test, "x-frame-options-sameorigin-or-deny", value.strip())
    if normalised.startswith("allow-from"):
        return _outcome(test, "x-frame-options-allow-from-origin", value.strip())
    return _outcome(
        test,
        "x-frame-options-header-invalid",
        f"X-Frame-Options {value!r} is not DENY or SAMEORIGIN",
    )


def _test_corp(headers: _Headers) -> TestOutcome:
    test = "cross-origin-resource-policy"
    value = headers.get("cross-origin-resource-policy") or ""
    normalised = value[:256].strip().lower()
    if not normalised:
        message = "no Cross-Origin-Resource-Policy (browsers default to cross-origin)"
        return _outcome(test, "corp-not-implemented", message)
    if normalised in ("same-origin", "same-site", "cross-origin"):
        return _outcome(test, f"corp-implemented-with-{normalised}", normalised)
    return _outcome(
        test, "corp-header-invalid", f"{value!r} is not same-origin, same-site or cross-origin"
    )


# --- subresource integrity -------------------------------------------------------------------

_TWO_LABEL_SUFFIXES = frozenset(
    [
        "co.uk",
        "org.uk",
        "ac.uk",
        "gov.uk",
        "com.au",
        "net.au",
        "org.au",
        "co.nz",
        "co.jp",
        "co.kr",
        "co.in",
        "com.br",
        "com.cn",
        "com.mx",
        "com.tr",
        "co.za",
        "com.sg",
        "com.hk",
    ]
)


def split_url(url: str) -> tuple[str, str | None]:
    """Scheme and host name of ``url``; no host for a URL that cannot be parsed."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), parts.hostname
    except ValueError:  # "https://[::1/x": a page or a Location header can say anything
        return url.partition(":")[0].lower(), None


def _site(host: str | None) -> str | None:
    """The registrable domain (``example.co.uk``), None for an IP or a single label."""
    if not host:
        return None
    host = host.strip("[]").lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.split(".")
    if len(labels) < 2:
        return None
    size = 3 if ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES and len(labels) > 2 else 2
    return ".".join(labels[-size:])


_SRI_ORDER = (
    "sri-implemented-and-all-scripts-loaded-securely",
    "sri-implemented-and-external-scripts-loaded-securely",
    "sri-implemented-but-external-scripts-not-loaded-securely",
    "sri-not-implemented-but-external-scripts-loaded-securely",
    "sri-not-implemented-and-external-scripts-not-loaded-securely",
    "sri-not-implemented-response-not-html",
)


def _sri_script(src: str, integrity: str | None, host: str | None, secure: bool) -> str | None:
    """The SRI finding for one ``<script src>``; None when it adds nothing."""
    src = src.strip()
    if re.match(r"//[^/]", src):  # protocol-relative
        foreign, scheme_secure = True, False
    elif re.match(r"https?://", src, re.IGNORECASE):
        foreign = _site(split_url(src)[1]) != _site(host)
        scheme_secure = src.lower().startswith("https:")
    else:  # relative: same origin, as secure as the page
        foreign, scheme_secure = False, secure
    if not foreign:
        return (
            "sri-implemented-and-all-scripts-loaded-securely"
            if integrity and scheme_secure
            else None
        )
    if integrity and not scheme_secure:
        return "sri-implemented-but-external-scripts-not-loaded-securely"
    if not integrity and scheme_secure:
        return "sri-not-implemented-but-external-scripts-loaded-securely"
    if not integrity:
        return "sri-not-implemented-and-external-scripts-not-loaded-securely"
    return "foreign-with-integrity"


def _test_sri(page: _Page, host: str | None, secure: bool) -> TestOutcome:
    test = "subresource-integrity"
    if not page.html:
        return _outcome(test, "sri-not-implemented-response-not-html", "not an HTML page")
    if not page.scripts:
        return _outcome(test, "sri-not-implemented-but-no-scripts-loaded", "no <script> tags")
    result: str | None = None
    foreign = False
    for src, integrity in page.scripts:
        if not src:
            continue
        finding = _sri_script(src, integrity, host, secure)
        foreign = foreign or finding not in (
            None,
            "sri-implemented-and-all-scripts-loaded-securely",
        )
        if finding is None or finding == "foreign-with-integrity":
            continue
        if finding == "sri-implemented-and-all-scripts-loaded-securely":
            result = result or finding  # a bonus only while nothing worse was found
        elif result is None or _SRI_ORDER.index(finding) > _SRI_ORDER.index(result):
            result = finding
    if result is None:
        result = (
            "sri-implemented-and-external-scripts-loaded-securely"
            if foreign
            else "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"
        )
    return _outcome(test, result, result.replace("sri-", "SRI ").replace("-", " "))


# --- redirection and the score ---------------------------------------------------------------


def redirection_result(route: Sequence[str] | None) -> str:
    """The scanner's redirection result for the chain of URLs the http URL led to.

    ``route``: the http URL first, then every URL it redirected to (the last one answered
    without redirecting); None or empty when nothing answered on http.
    """
    if not route:
        return "redirection-not-needed-no-http"
    parts = [split_url(url) for url in route]  # (scheme, host)
    if len(parts) == 1:
        return "redirection-missing"
    if parts[-1][0] != "https":
        return "redirection-not-to-https"
    if parts[1][0] == "http":
        return "redirection-not-to-https-on-initial-redirection"
    if parts[0][0] == "http" and parts[0][1] != parts[1][1]:
        return "redirection-off-host-from-http"
    return "redirection-to-https"


_COOP_VALUES = ("same-origin", "same-origin-allow-popups", "noopener-allow-popups", "unsafe-none")


def _coop(headers: _Headers) -> TestOutcome:
    """Cross-Origin-Opener-Policy: reported by renderkit, not graded by the scanner."""
    test, fix = "cross-origin-opener-policy", "send Cross-Origin-Opener-Policy: same-origin"
    value = headers.get("cross-origin-opener-policy")
    if value is None:
        return TestOutcome(test, "coop-not-implemented", 0, True, "no COOP (not scored)", fix)
    normalised = value.split(";")[0].strip().lower()
    if normalised not in _COOP_VALUES:
        return TestOutcome(
            test, "coop-header-invalid", 0, False, f"{value!r} is not a COOP value", fix
        )
    return TestOutcome(test, f"coop-implemented-with-{normalised}", 0, True, normalised)


def _score(tests: Sequence[TestOutcome]) -> int:
    penalties = sum(t.modifier for t in tests if t.modifier < 0)
    bonuses = sum(t.modifier for t in tests if t.modifier > 0)
    score = 100 + penalties
    if score >= _EXTRA_CREDIT_FROM:
        score += bonuses
    return max(score, 0)


def grade_headers(
    headers: HeadersLike,
    *,
    https: bool | None = True,
    origin: str | None = None,
    redirection: str | None = None,
    body: str | None = None,
    preflight: HeadersLike | None = None,
    host: str | None = None,
    reflected_origin_rule: bool = True,
) -> ObservatoryReport:
    """Grade a page with the scanner's rules.

    ``headers``: the page's response headers, a mapping or (name, value) pairs
    (``httpx.Headers`` keeps repeated ``Set-Cookie`` apart). ``https``: whether the page came
    over https; None leaves HSTS unscored (``hsts-not-tested``, a local app over plain
    http). ``origin``: the ``Origin`` sent on the preflight, for renderkit's reflected-origin
    rule. ``redirection``: a redirection result id (see :func:`redirection_result`), else
    not scored. ``body``: the page's HTML (meta CSP and referrer, Subresource Integrity).
    ``preflight``: the headers of the CORS preflight; without one, CORS is read from
    ``headers``. ``host``: the page's host name (which scripts are third-party).
    """
    page_headers = _Headers(headers)
    page = _read_page(page_headers, body)
    secure = https is not False
    csp_outcome, csp = _test_csp(page_headers, page, secure)
    hsts = _test_hsts(page_headers, https)
    cors_headers = _Headers(preflight) if preflight is not None else page_headers
    tests = [
        csp_outcome,
        _test_cookies(page_headers, hsts.passed and hsts.result != "hsts-not-tested"),
        _test_cors(cors_headers, origin, reflected_origin_rule),
        hsts,
        _test_referrer(page_headers, page),
        _test_sri(page, host, secure),
        _test_nosniff(page_headers),
        _test_framing(page_headers, csp),
        _test_corp(page_headers),
    ]
    if redirection is not None:
        if redirection not in MODIFIERS or not redirection.startswith("redirection-"):
            choices = ", ".join(r for r in MODIFIERS if r.startswith("redirection-"))
            raise ValueError(f"unknown redirection result {redirection!r}; use one of {choices}")
        tests.insert(3, _outcome("redirection", redirection, redirection.replace("-", " ")))
    score = _score(tests)
    return ObservatoryReport(score, grade_for_score(score), tuple(tests), (_coop(page_headers),))
