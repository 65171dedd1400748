"""Tests for the Observatory grading rules behind ``renderkit verify`` (a pure function)."""

from __future__ import annotations

import httpx
import pytest

from renderkit.cli._observatory import (
    HSTS_MIN_MAX_AGE,
    grade_for_score,
    grade_headers,
    parse_csp,
    parse_set_cookie,
)

STRONG = {
    "content-security-policy": "default-src 'none'; script-src 'nonce-abc'; frame-ancestors 'none'",
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cross-origin-resource-policy": "same-origin",
}


def result(headers: object, test: str, **kwargs: object) -> str:
    return grade_headers(headers, **kwargs).outcome(test).result  # type: ignore[arg-type]


def test_strong_headers_score_a_plus_with_every_bonus() -> None:
    """default-src 'none' (+10), frame-ancestors (+5) and a private referrer (+5) give 120."""
    report = grade_headers(STRONG)
    assert report.score == 120
    assert report.grade == "A+"
    assert all(t.passed for t in report.tests)


def test_no_headers_at_all_grade_d() -> None:
    """No CSP (-25), HSTS (-20), nosniff (-5), XFO (-20): 30, a D."""
    report = grade_headers({})
    assert report.score == 30
    assert report.grade == "D"
    failed = {t.test for t in report.tests if not t.passed}
    assert failed == {
        "content-security-policy",
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
    }


def test_bonuses_only_count_from_ninety() -> None:
    """With HSTS missing (80 before bonuses) the CSP and referrer bonuses are withheld."""
    headers = {k: v for k, v in STRONG.items() if k != "strict-transport-security"}
    report = grade_headers(headers)
    assert report.score == 80
    assert report.grade == "B+"


def test_score_never_goes_below_zero() -> None:
    """Many penalties floor at 0 (F)."""
    headers = {
        "set-cookie": "session=1",
        "access-control-allow-origin": "https://evil.example",
        "access-control-allow-credentials": "true",
    }
    report = grade_headers(headers, origin="https://evil.example")
    assert report.score == 0
    assert report.grade == "F"


@pytest.mark.parametrize(
    ("score", "grade"),
    [(135, "A+"), (100, "A+"), (99, "A"), (90, "A"), (89, "A-"), (85, "A-"), (84, "B+"),
     (70, "B"), (65, "B-"), (60, "C+"), (50, "C"), (45, "C-"), (40, "D+"), (30, "D"),
     (25, "D-"), (24, "F"), (0, "F")],
)  # fmt: skip
def test_grade_chart(score: int, grade: str) -> None:
    """The letter grades follow Observatory's chart at every boundary."""
    assert grade_for_score(score) == grade


@pytest.mark.parametrize(
    ("csp", "expected", "modifier"),
    [
        ("default-src 'none'", "csp-implemented-with-no-unsafe-default-src-none", 10),
        ("default-src 'self'", "csp-implemented-with-no-unsafe", 5),
        ("default-src 'self'; script-src 'self' 'unsafe-inline'",
         "csp-implemented-with-unsafe-inline", -20),
        ("default-src 'self'; script-src 'nonce-r4nd' 'unsafe-inline'",
         "csp-implemented-with-no-unsafe", 5),
        ("default-src 'self'; script-src 'self' 'unsafe-eval'",
         "csp-implemented-with-unsafe-eval", -10),
        ("default-src 'self'; script-src http://cdn.example",
         "csp-implemented-with-insecure-scheme", -20),
        ("default-src 'self'; style-src 'self' 'unsafe-inline'",
         "csp-implemented-with-unsafe-inline-in-style-src-only", 0),
        ("img-src 'self'", "csp-implemented-with-unsafe-inline", -20),
        ("default-src 'self'; script-src data:", "csp-implemented-with-unsafe-inline", -20),
        ("default-src *", "csp-implemented-with-unsafe-inline", -20),
        ("", "csp-header-invalid", -25),
        ("default-src 'self'; 'bogus", "csp-header-invalid", -25),
        ("DEFAULT-SRC 'NONE'", "csp-implemented-with-no-unsafe-default-src-none", 10),
    ],
)  # fmt: skip
def test_csp_rules(csp: str, expected: str, modifier: int) -> None:
    """Each CSP shape gets Observatory's result and modifier."""
    outcome = grade_headers({"content-security-policy": csp}).outcome("content-security-policy")
    assert (outcome.result, outcome.modifier) == (expected, modifier)


def test_report_only_csp_does_not_count() -> None:
    """A Report-Only policy enforces nothing: csp-not-implemented, said so in the message."""
    outcome = grade_headers({"content-security-policy-report-only": "default-src 'none'"}).outcome(
        "content-security-policy"
    )
    assert outcome.result == "csp-not-implemented"
    assert "Report-Only" in outcome.message


def test_parse_csp_keeps_the_first_of_repeated_directives() -> None:
    """Browsers ignore a repeated directive; so does the parser."""
    assert parse_csp("script-src 'none'; script-src *") == {"script-src": ["'none'"]}
    assert parse_csp(" ; ; ") is None


@pytest.mark.parametrize(
    ("value", "expected", "modifier"),
    [
        (f"max-age={HSTS_MIN_MAX_AGE}", "hsts-implemented-max-age-at-least-six-months", 0),
        ("max-age=63072000; includeSubDomains; preload",
         "hsts-implemented-max-age-at-least-six-months", 0),
        ("max-age=86400", "hsts-implemented-max-age-less-than-six-months", -10),
        ("max-age=abc", "hsts-header-invalid", -20),
        ("includeSubDomains", "hsts-header-invalid", -20),
        ('max-age="31536000"', "hsts-implemented-max-age-at-least-six-months", 0),
    ],
)  # fmt: skip
def test_hsts_rules(value: str, expected: str, modifier: int) -> None:
    """HSTS needs a max-age of six months or more."""
    outcome = grade_headers({"strict-transport-security": value}).outcome(
        "strict-transport-security"
    )
    assert (outcome.result, outcome.modifier) == (expected, modifier)


def test_hsts_over_plain_http_cannot_pass() -> None:
    """Over http HSTS is meaningless: hsts-not-implemented-no-https, even when sent."""
    assert (
        result(STRONG, "strict-transport-security", https=False) == "hsts-not-implemented-no-https"
    )


@pytest.mark.parametrize(
    ("headers", "expected", "modifier"),
    [
        ({"x-frame-options": "DENY"}, "x-frame-options-sameorigin-or-deny", 0),
        ({"x-frame-options": " sameorigin "}, "x-frame-options-sameorigin-or-deny", 0),
        ({"x-frame-options": "ALLOW-FROM https://a.example"}, "x-frame-options-allow-from-origin",
         0),
        ({"x-frame-options": "nope"}, "x-frame-options-header-invalid", -20),
        ({}, "x-frame-options-not-implemented", -20),
        ({"content-security-policy": "frame-ancestors 'self'"},
         "x-frame-options-implemented-via-csp", 5),
    ],
)  # fmt: skip
def test_framing_rules(headers: dict[str, str], expected: str, modifier: int) -> None:
    """frame-ancestors earns the bonus; XFO DENY/SAMEORIGIN passes; nothing fails."""
    outcome = grade_headers(headers).outcome("x-frame-options")
    assert (outcome.result, outcome.modifier) == (expected, modifier)


@pytest.mark.parametrize(
    ("value", "expected", "modifier"),
    [
        ("no-referrer", "referrer-policy-private", 5),
        ("same-origin", "referrer-policy-private", 5),
        ("strict-origin", "referrer-policy-private", 5),
        ("unsafe-url", "referrer-policy-unsafe", -5),
        ("origin-when-cross-origin", "referrer-policy-unsafe", -5),
        ("no-referrer-when-downgrade", "referrer-policy-no-referrer-when-downgrade", 0),
        ("unsafe-url, strict-origin-when-cross-origin", "referrer-policy-private", 5),
        ("strict-origin, bogus", "referrer-policy-private", 5),
        ("bogus", "referrer-policy-header-invalid", -5),
    ],
)
def test_referrer_policy_rules(value: str, expected: str, modifier: int) -> None:
    """The last policy a browser understands decides."""
    outcome = grade_headers({"referrer-policy": value}).outcome("referrer-policy")
    assert (outcome.result, outcome.modifier) == (expected, modifier)


@pytest.mark.parametrize(
    ("value", "expected", "modifier"),
    [
        (None, "x-content-type-options-not-implemented", -5),
        ("nosniff", "x-content-type-options-nosniff", 0),
        (" NoSniff ", "x-content-type-options-nosniff", 0),
        ("sniff-please", "x-content-type-options-header-invalid", -5),
    ],
)
def test_nosniff_rules(value: str | None, expected: str, modifier: int) -> None:
    """X-Content-Type-Options must be nosniff."""
    headers = {} if value is None else {"x-content-type-options": value}
    outcome = grade_headers(headers).outcome("x-content-type-options")
    assert (outcome.result, outcome.modifier) == (expected, modifier)


def test_corp_values() -> None:
    """CORP same-origin/same-site/cross-origin pass; anything else is invalid."""
    assert (
        result({"cross-origin-resource-policy": "same-site"}, "cross-origin-resource-policy")
        == "cross-origin-resource-policy-implemented-with-same-site"
    )
    bad = grade_headers({"cross-origin-resource-policy": "everyone"}).outcome(
        "cross-origin-resource-policy"
    )
    assert (bad.result, bad.modifier) == ("cross-origin-resource-policy-header-invalid", -5)


@pytest.mark.parametrize(
    ("cookies", "expected", "modifier"),
    [
        ([], "cookies-not-found", 0),
        (["session=1; Secure; HttpOnly; SameSite=Lax"],
         "cookies-secure-with-httponly-sessions-and-samesite", 5),
        (["session=1; Secure; HttpOnly"], "cookies-secure-with-httponly-sessions", 0),
        (["session=1; HttpOnly; SameSite=Lax"], "cookies-session-without-secure-flag", -40),
        (["session=1; Secure; SameSite=Lax"], "cookies-session-without-httponly-flag", -30),
        (["theme=dark; SameSite=Lax", "session=1; Secure; HttpOnly; SameSite=Lax"],
         "cookies-without-secure-flag", -20),
        (["session=1; Secure; HttpOnly; SameSite=Sideways"], "cookies-samesite-flag-invalid", -20),
        (["theme=dark; SameSite=None"], "cookies-samesite-flag-invalid", -20),
    ],
)  # fmt: skip
def test_cookie_rules_without_hsts(cookies: list[str], expected: str, modifier: int) -> None:
    """Session cookies need Secure and HttpOnly; every cookie needs Secure; SameSite earns +5."""
    pairs = [("Set-Cookie", c) for c in cookies]
    outcome = grade_headers(pairs).outcome("cookies")
    assert (outcome.result, outcome.modifier) == (expected, modifier)


def test_hsts_softens_missing_secure_flags() -> None:
    """With valid HSTS, a missing Secure flag costs -10 (session) / -5 (other) instead."""
    hsts = [("strict-transport-security", "max-age=63072000")]
    session = grade_headers([*hsts, ("set-cookie", "sid=1; HttpOnly")]).outcome("cookies")
    other = grade_headers(
        [*hsts, ("set-cookie", "theme=1"), ("set-cookie", "sid=1; Secure; HttpOnly")]
    ).outcome("cookies")
    assert (session.result, session.modifier) == (
        "cookies-session-without-secure-flag-but-protected-by-hsts",
        -10,
    )
    assert (other.result, other.modifier) == (
        "cookies-without-secure-flag-but-protected-by-hsts",
        -5,
    )


def test_httpx_headers_keep_each_set_cookie() -> None:
    """httpx.Headers joins repeated headers on .items(); the grader reads each Set-Cookie."""
    headers = httpx.Headers(
        [("set-cookie", "a=1; Secure; SameSite=Lax"), ("set-cookie", "session=2; Secure")]
    )
    outcome = grade_headers(headers).outcome("cookies")
    assert outcome.result == "cookies-session-without-httponly-flag"


def test_parse_set_cookie_handles_junk() -> None:
    """A Set-Cookie without name= is skipped; attribute case and spacing do not matter."""
    assert parse_set_cookie("garbage") is None
    assert parse_set_cookie("=value") is None
    cookie = parse_set_cookie("SID=x;secure ; HTTPONLY; samesite = Strict")
    assert cookie is not None
    assert (cookie.secure, cookie.httponly, cookie.samesite, cookie.is_session) == (
        True,
        True,
        "strict",
        True,
    )


def test_cors_reflecting_any_origin_with_credentials_is_the_worst() -> None:
    """Echoing the probe's Origin with credentials is universal access: -50."""
    headers = {
        "access-control-allow-origin": "https://probe.invalid",
        "access-control-allow-credentials": "true",
    }
    outcome = grade_headers(headers, origin="https://probe.invalid").outcome(
        "cross-origin-resource-sharing"
    )
    assert (outcome.result, outcome.modifier) == (
        "cross-origin-resource-sharing-implemented-with-universal-access",
        -50,
    )
    public = grade_headers({"access-control-allow-origin": "*"}).outcome(
        "cross-origin-resource-sharing"
    )
    assert public.modifier == 0
    assert public.passed


@pytest.mark.parametrize(
    ("redirection", "score"),
    [("redirection-to-https", 120), ("redirection-off-host-from-http", 115),
     ("redirection-missing", 80), ("redirection-not-to-https", 80)],
)  # fmt: skip
def test_measured_redirection_is_scored(redirection: str, score: int) -> None:
    """A measured redirection result adds its modifier (and can withhold the bonuses)."""
    assert grade_headers(STRONG, redirection=redirection).score == score


def test_unknown_redirection_result_is_rejected() -> None:
    """A typo in the redirection id raises, naming the valid ones."""
    with pytest.raises(ValueError, match="redirection-to-https"):
        grade_headers({}, redirection="redirect-ok")


def test_header_names_are_case_insensitive_and_report_is_json_ready() -> None:
    """Header names in any case count; as_dict() has every test."""
    report = grade_headers({k.upper(): v for k, v in STRONG.items()})
    assert report.score == 120
    data = report.as_dict()
    assert data["grade"] == "A+"
    assert {t["test"] for t in data["tests"]} >= {"content-security-policy", "cookies"}


def test_hsts_left_unscored_when_untestable() -> None:
    """https=None (a local app over plain http) leaves HSTS out of the score."""
    headers = {k: v for k, v in STRONG.items() if k != "strict-transport-security"}
    report = grade_headers(headers, https=None)
    assert report.outcome("strict-transport-security").result == "hsts-not-tested"
    assert report.score == 120


@pytest.mark.parametrize(
    ("value", "expected", "passed"),
    [
        (None, "coop-not-implemented", True),
        ("same-origin", "coop-implemented-with-same-origin", True),
        ("Same-Origin-Allow-Popups", "coop-implemented-with-same-origin-allow-popups", True),
        ('same-origin; report-to="x"', "coop-implemented-with-same-origin", True),
        ("everyone", "coop-header-invalid", False),
    ],
)
def test_coop_is_reported_but_not_scored(value: str | None, expected: str, passed: bool) -> None:
    """COOP gets a result id and a pass flag, and never moves the score."""
    headers = dict(STRONG)
    if value is not None:
        headers["cross-origin-opener-policy"] = value
    report = grade_headers(headers)
    outcome = report.outcome("cross-origin-opener-policy")
    assert (outcome.result, outcome.passed, outcome.modifier) == (expected, passed, 0)
    assert report.score == 120
