"""Grade response headers the way Mozilla's HTTP Observatory does (a pure function, no I/O).

Observatory starts every site at 100 and applies one modifier per test; bonuses count only
when the score without them is at least 90. :func:`grade_headers` applies the header-based
tests (CSP, cookies, CORS, HSTS, redirection when measured, Referrer-Policy, X-Content-Type-
Options, X-Frame-Options, Cross-Origin-Resource-Policy) to a headers mapping; the rules and
modifiers follow Observatory's published scoring table. Cross-Origin-Opener-Policy is
reported too, with no effect on the score (Observatory does not grade it). Tests that need
the page body (Subresource Integrity) or a preload list are not scored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HSTS_MIN_MAX_AGE",
    "ObservatoryReport",
    "TestOutcome",
    "grade_for_score",
    "grade_headers",
    "parse_csp",
    "parse_set_cookie",
]

HSTS_MIN_MAX_AGE = 15768000
"""Six months in seconds: the HSTS max-age Observatory expects."""

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
_DIRECTIVE = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_SESSION_NAMES = ("sess", "sid", "login", "auth", "token")
_REFERRER_PRIVATE = {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
}
_REFERRER_UNSAFE = {"origin", "origin-when-cross-origin", "unsafe-url"}
_REFERRER_ALL = _REFERRER_PRIVATE | _REFERRER_UNSAFE | {"no-referrer-when-downgrade"}

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """One Observatory test: its result id, score modifier, pass/fail and an explanation."""

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


@dataclass(frozen=True, slots=True)
class ObservatoryReport:
    """The score, the letter grade, and every test outcome."""

    score: int
    grade: str
    tests: tuple[TestOutcome, ...] = field(default_factory=tuple)

    def outcome(self, test: str) -> TestOutcome:
        """The outcome of ``test`` (``content-security-policy``, ``cookies``, ...)."""
        for t in self.tests:
            if t.test == test:
                return t
        raise KeyError(test)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "score": self.score,
            "grade": self.grade,
            "tests": [t.as_dict() for t in self.tests],
        }


def grade_for_score(score: int) -> str:
    """The letter grade for a score (100+ is A+, under 25 is F)."""
    for floor, grade in _GRADES:
        if score >= floor:
            return grade
    return "F"


def _pairs(headers: HeadersLike) -> list[tuple[str, str]]:
    multi = getattr(headers, "multi_items", None)  # httpx.Headers keeps repeated headers apart
    if callable(multi):
        items: Iterable[tuple[str, str]] = multi()
    elif isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    return [(str(k).lower(), str(v)) for k, v in items]


def _first(pairs: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in pairs:
        if key == name:
            return value
    return None


def parse_csp(value: str) -> dict[str, list[str]] | None:
    """Parse a CSP header into ``{directive: [sources]}``; None when it cannot be parsed.

    Directive names are lower-cased; a repeated directive is ignored after its first
    occurrence, as browsers do.
    """
    policy: dict[str, list[str]] = {}
    if not value.strip():
        return None
    for part in value.split(";"):
        tokens = part.split()
        if not tokens:
            continue
        name = tokens[0]
        if not _DIRECTIVE.fullmatch(name):
            return None
        policy.setdefault(name.lower(), tokens[1:])
    return policy or None


def _is_nonce_or_hash(source: str) -> bool:
    s = source.lower()
    return s.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-"))


def _insecure(sources: Iterable[str]) -> bool:
    return any(s.lower() in ("http:", "ftp:") or s.lower().startswith("http://") for s in sources)


def _csp(pairs: Sequence[tuple[str, str]]) -> TestOutcome:
    test = "content-security-policy"
    fix = (
        "send a Content-Security-Policy with default-src 'none' or 'self' and a per-request nonce "
        "for scripts (renderkit.security.SecurityHeadersMiddleware does)"
    )
    raw = [v for k, v in pairs if k == "content-security-policy"]
    if not raw:
        only_report = any(k == "content-security-policy-report-only" for k, _ in pairs)
        note = " (only a Report-Only policy, which enforces nothing)" if only_report else ""
        return TestOutcome(test, "csp-not-implemented", -25, False, f"no CSP header{note}", fix)
    policy = parse_csp(raw[0])
    if policy is None:
        return TestOutcome(test, "csp-header-invalid", -25, False, "CSP cannot be parsed", fix)
    default = policy.get("default-src")
    script = policy.get("script-src", default)
    style = policy.get("style-src", default)
    script_l = [s.lower() for s in script] if script is not None else None
    nonce = script is not None and any(_is_nonce_or_hash(s) for s in script)
    if script_l is None:
        return TestOutcome(
            test,
            "csp-implemented-with-unsafe-inline",
            -20,
            False,
            "CSP has neither script-src nor default-src, so any script may run",
            fix,
        )
    if ("'unsafe-inline'" in script_l and not nonce) or "data:" in script_l or "*" in script_l:
        return TestOutcome(
            test,
            "csp-implemented-with-unsafe-inline",
            -20,
            False,
            "CSP allows inline or arbitrary scripts in script-src",
            fix,
        )
    active = [policy.get(d, default) or [] for d in ("script-src", "object-src", "style-src")]
    if any(_insecure(sources) for sources in active):
        return TestOutcome(
            test,
            "csp-implemented-with-insecure-scheme",
            -20,
            False,
            "CSP allows scripts, styles or objects over plain http",
            "allow https: sources only",
        )
    if "'unsafe-eval'" in script_l:
        return TestOutcome(
            test, "csp-implemented-with-unsafe-eval", -10, False, "CSP allows 'unsafe-eval'", fix
        )
    if style is not None and "'unsafe-inline'" in [s.lower() for s in style]:
        return TestOutcome(
            test,
            "csp-implemented-with-unsafe-inline-in-style-src-only",
            0,
            True,
            "CSP allows 'unsafe-inline' in style-src only",
        )
    if default is not None and [s.lower() for s in default] == ["'none'"]:
        return TestOutcome(
            test,
            "csp-implemented-with-no-unsafe-default-src-none",
            10,
            True,
            "CSP with default-src 'none' and no unsafe source",
        )
    return TestOutcome(
        test, "csp-implemented-with-no-unsafe", 5, True, "CSP without unsafe-inline or unsafe-eval"
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
        """Named like a session or login cookie (Observatory's heuristic)."""
        lowered = self.name.lower()
        return any(marker in lowered for marker in _SESSION_NAMES)


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


def _cookies(pairs: Sequence[tuple[str, str]], hsts: bool) -> TestOutcome:
    test = "cookies"
    cookies = [c for c in (parse_set_cookie(v) for k, v in pairs if k == "set-cookie") if c]
    if not cookies:
        return TestOutcome(test, "cookies-not-found", 0, True, "no cookies set")
    names = ", ".join(c.name for c in cookies)
    for c in cookies:
        if c.samesite is not None and c.samesite not in ("strict", "lax", "none"):
            return TestOutcome(
                test,
                "cookies-samesite-flag-invalid",
                -20,
                False,
                f"cookie {c.name}: SameSite={c.samesite!r} is not Strict, Lax or None",
                "use SameSite=Lax (or Strict)",
            )
        if c.samesite == "none" and not c.secure:
            return TestOutcome(
                test,
                "cookies-samesite-flag-invalid",
                -20,
                False,
                f"cookie {c.name}: SameSite=None without Secure is rejected by browsers",
                "add Secure, or use SameSite=Lax",
            )
    sessions = [c for c in cookies if c.is_session]
    if any(not c.secure for c in sessions):
        result, modifier = (
            ("cookies-session-without-secure-flag-but-protected-by-hsts", -10)
            if hsts
            else ("cookies-session-without-secure-flag", -40)
        )
        bad = ", ".join(c.name for c in sessions if not c.secure)
        return TestOutcome(
            test, result, modifier, False, f"session cookie {bad} lacks Secure", "add Secure"
        )
    if any(not c.httponly for c in sessions):
        bad = ", ".join(c.name for c in sessions if not c.httponly)
        return TestOutcome(
            test,
            "cookies-session-without-httponly-flag",
            -30,
            False,
            f"session cookie {bad} lacks HttpOnly",
            "add HttpOnly so scripts cannot read it",
        )
    if any(not c.secure for c in cookies):
        result, modifier = (
            ("cookies-without-secure-flag-but-protected-by-hsts", -5)
            if hsts
            else ("cookies-without-secure-flag", -20)
        )
        bad = ", ".join(c.name for c in cookies if not c.secure)
        message = f"cookie {bad} lacks Secure"
        return TestOutcome(test, result, modifier, False, message, "add Secure")
    if all(c.samesite in ("strict", "lax") for c in cookies):
        return TestOutcome(
            test,
            "cookies-secure-with-httponly-sessions-and-samesite",
            5,
            True,
            f"{names}: Secure, HttpOnly sessions, SameSite",
        )
    return TestOutcome(
        test,
        "cookies-secure-with-httponly-sessions",
        0,
        True,
        f"{names}: Secure and HttpOnly sessions (SameSite Lax or Strict missing on some)",
        "add SameSite=Lax to every cookie",
    )


def _cors(pairs: Sequence[tuple[str, str]], origin: str | None) -> TestOutcome:
    test = "cross-origin-resource-sharing"
    acao = _first(pairs, "access-control-allow-origin")
    if acao is None:
        return TestOutcome(
            test, "cross-origin-resource-sharing-not-implemented", 0, True, "no CORS headers"
        )
    credentials = (_first(pairs, "access-control-allow-credentials") or "").strip().lower()
    if origin and acao.strip() == origin and credentials == "true":
        return TestOutcome(
            test,
            "cross-origin-resource-sharing-implemented-with-universal-access",
            -50,
            False,
            f"any origin ({origin}) is echoed back with credentials allowed",
            "allow a fixed list of origins (CORS_ALLOWED_ORIGINS), never reflect Origin",
        )
    if acao.strip() == "*":
        return TestOutcome(
            test,
            "cross-origin-resource-sharing-implemented-with-public-access",
            0,
            True,
            "public CORS (Access-Control-Allow-Origin: *)",
        )
    return TestOutcome(
        test,
        "cross-origin-resource-sharing-implemented-with-restricted-access",
        0,
        True,
        f"CORS restricted to {acao.strip()}",
    )


def _hsts(pairs: Sequence[tuple[str, str]], https: bool | None) -> TestOutcome:
    test = "strict-transport-security"
    fix = f"send Strict-Transport-Security: max-age={HSTS_MIN_MAX_AGE * 4}; includeSubDomains"
    value = _first(pairs, "strict-transport-security")
    if https is None:
        return TestOutcome(
            test,
            "hsts-not-tested",
            0,
            True,
            "not testable here (plain http); verify the deployed https URL",
        )
    if not https:
        return TestOutcome(
            test,
            "hsts-not-implemented-no-https",
            -20,
            False,
            "fetched over plain http, where HSTS cannot be set",
            "verify the https URL of the deployed service",
        )
    if value is None:
        return TestOutcome(test, "hsts-not-implemented", -20, False, "no HSTS header", fix)
    max_age: int | None = None
    for directive in value.split(";"):
        key, _, val = directive.strip().partition("=")
        if key.strip().lower() == "max-age":
            try:
                max_age = int(val.strip().strip('"'))
            except ValueError:
                max_age = None
            break
    if max_age is None or max_age < 0:
        return TestOutcome(
            test, "hsts-header-invalid", -20, False, f"HSTS {value!r} has no valid max-age", fix
        )
    if max_age < HSTS_MIN_MAX_AGE:
        return TestOutcome(
            test,
            "hsts-implemented-max-age-less-than-six-months",
            -10,
            False,
            f"HSTS max-age={max_age} is under six months",
            fix,
        )
    return TestOutcome(
        test, "hsts-implemented-max-age-at-least-six-months", 0, True, f"HSTS max-age={max_age}"
    )


def _referrer(pairs: Sequence[tuple[str, str]]) -> TestOutcome:
    test = "referrer-policy"
    value = _first(pairs, "referrer-policy")
    if value is None:
        return TestOutcome(
            test,
            "referrer-policy-not-implemented",
            0,
            True,
            "no Referrer-Policy (browsers default to strict-origin-when-cross-origin)",
            "send Referrer-Policy: strict-origin-when-cross-origin",
        )
    # Browsers use the last policy they understand in a comma-separated list.
    known = [t.strip().lower() for t in value.split(",") if t.strip().lower() in _REFERRER_ALL]
    if not known:
        return TestOutcome(
            test,
            "referrer-policy-header-invalid",
            -5,
            False,
            f"Referrer-Policy {value!r} is not a known policy",
            "use strict-origin-when-cross-origin",
        )
    policy = known[-1]
    if policy in _REFERRER_PRIVATE:
        return TestOutcome(test, "referrer-policy-private", 5, True, f"Referrer-Policy: {policy}")
    if policy in _REFERRER_UNSAFE:
        return TestOutcome(
            test,
            "referrer-policy-unsafe",
            -5,
            False,
            f"Referrer-Policy {policy} leaks URLs to other sites",
            "use strict-origin-when-cross-origin",
        )
    return TestOutcome(
        test, "referrer-policy-no-referrer-when-downgrade", 0, True, f"Referrer-Policy: {policy}"
    )


def _nosniff(pairs: Sequence[tuple[str, str]]) -> TestOutcome:
    test = "x-content-type-options"
    value = _first(pairs, "x-content-type-options")
    fix = "send X-Content-Type-Options: nosniff"
    if value is None:
        result = "x-content-type-options-not-implemented"
        return TestOutcome(test, result, -5, False, "missing", fix)
    if value.strip().lower() != "nosniff":
        return TestOutcome(
            test, "x-content-type-options-header-invalid", -5, False, f"{value!r}", fix
        )
    return TestOutcome(test, "x-content-type-options-nosniff", 0, True, "nosniff")


def _framing(pairs: Sequence[tuple[str, str]]) -> TestOutcome:
    test = "x-frame-options"
    csp = _first(pairs, "content-security-policy")
    policy = parse_csp(csp) if csp else None
    if policy is not None and "frame-ancestors" in policy:
        sources = " ".join(policy["frame-ancestors"]) or "(empty)"
        return TestOutcome(
            test, "x-frame-options-implemented-via-csp", 5, True, f"frame-ancestors {sources}"
        )
    fix = "send CSP frame-ancestors 'none' (or 'self'), or X-Frame-Options: DENY"
    value = _first(pairs, "x-frame-options")
    if value is None:
        return TestOutcome(
            test, "x-frame-options-not-implemented", -20, False, "framing is not restricted", fix
        )
    normalised = value.strip().lower()
    if normalised in ("deny", "sameorigin"):
        return TestOutcome(test, "x-frame-options-sameorigin-or-deny", 0, True, value.strip())
    if normalised.startswith("allow-from "):
        return TestOutcome(test, "x-frame-options-allow-from-origin", 0, True, value.strip())
    return TestOutcome(test, "x-frame-options-header-invalid", -20, False, f"{value!r}", fix)


def _corp(pairs: Sequence[tuple[str, str]]) -> TestOutcome:
    test = "cross-origin-resource-policy"
    value = _first(pairs, "cross-origin-resource-policy")
    if value is None:
        return TestOutcome(
            test,
            "cross-origin-resource-policy-not-implemented",
            0,
            True,
            "no Cross-Origin-Resource-Policy",
            "send Cross-Origin-Resource-Policy: same-origin",
        )
    normalised = value.strip().lower()
    if normalised in ("same-origin", "same-site", "cross-origin"):
        return TestOutcome(
            test, f"cross-origin-resource-policy-implemented-with-{normalised}", 0, True, normalised
        )
    return TestOutcome(
        test,
        "cross-origin-resource-policy-header-invalid",
        -5,
        False,
        f"{value!r} is not same-origin, same-site or cross-origin",
        "send Cross-Origin-Resource-Policy: same-origin",
    )


_COOP_VALUES = ("same-origin", "same-origin-allow-popups", "noopener-allow-popups", "unsafe-none")


def _coop(pairs: Sequence[tuple[str, str]]) -> TestOutcome:
    """Cross-Origin-Opener-Policy: reported (Observatory does not score it), never scored."""
    test = "cross-origin-opener-policy"
    fix = "send Cross-Origin-Opener-Policy: same-origin"
    value = _first(pairs, "cross-origin-opener-policy")
    if value is None:
        return TestOutcome(test, "coop-not-implemented", 0, True, "no COOP (not scored)", fix)
    normalised = value.split(";")[0].strip().lower()
    if normalised not in _COOP_VALUES:
        return TestOutcome(
            test, "coop-header-invalid", 0, False, f"{value!r} is not a COOP value", fix
        )
    return TestOutcome(test, f"coop-implemented-with-{normalised}", 0, True, normalised)


_REDIRECT_MODIFIERS = {
    "redirection-to-https": 0,
    "redirection-not-needed-no-http": 0,
    "redirection-off-host-from-http": -5,
    "redirection-not-to-https-on-initial-redirection": -10,
    "redirection-missing": -20,
    "redirection-not-to-https": -20,
}


def grade_headers(
    headers: HeadersLike,
    *,
    https: bool | None = True,
    origin: str | None = None,
    redirection: str | None = None,
) -> ObservatoryReport:
    """Score a response's headers with the HTTP Observatory rules.

    ``headers``: a mapping or (name, value) pairs (``httpx.Headers`` keeps repeated
    ``Set-Cookie`` apart). ``https``: whether the response came over https (HSTS only
    counts then); None leaves HSTS unscored (a local app over plain http). ``origin``: the
    ``Origin`` the request sent, to spot a reflected CORS origin. ``redirection``: an
    Observatory redirection result id when the http->https redirect was measured
    (``redirection-to-https``, ``redirection-missing``, ...), else not scored.
    """
    pairs = _pairs(headers)
    hsts = _hsts(pairs, https)
    tests = [
        _csp(pairs),
        _cookies(pairs, hsts.passed),
        _cors(pairs, origin),
        hsts,
        _referrer(pairs),
        _nosniff(pairs),
        _framing(pairs),
        _corp(pairs),
        _coop(pairs),
    ]
    if redirection is not None:
        if redirection not in _REDIRECT_MODIFIERS:
            raise ValueError(
                f"unknown redirection result {redirection!r}; use one of "
                + ", ".join(_REDIRECT_MODIFIERS)
            )
        modifier = _REDIRECT_MODIFIERS[redirection]
        tests.insert(4, TestOutcome("redirection", redirection, modifier, modifier == 0, ""))
    penalties = sum(t.modifier for t in tests if t.modifier < 0)
    bonuses = sum(t.modifier for t in tests if t.modifier > 0)
    score = 100 + penalties
    if score >= 90:
        score += bonuses
    score = max(score, 0)
    return ObservatoryReport(score, grade_for_score(score), tuple(tests))
