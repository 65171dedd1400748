"""Tests for the Observatory grading rules behind ``renderkit verify`` (pure functions).

The table test grades every case of ``data/observatory-scanner-1.4.8.json``: header sets served
on loopback over TLS and scanned by Mozilla's own scanner (npm ``@mdn/mdn-http-observatory``
1.4.8); renderkit must agree on the score, the grade and every test's result id, modifier and
pass flag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from renderkit.cli._observatory import (
    HSTS_MIN_MAX_AGE,
    MODIFIERS,
    SCANNER_VERSION,
    grade_for_score,
    grade_headers,
    parse_csp,
    parse_set_cookie,
    redirection_result,
)

SCANNER_TABLE = json.loads(
    (Path(__file__).parent / "data" / "observatory-scanner-1.4.8.json").read_text("utf-8")
)
CASES: dict[str, dict[str, Any]] = SCANNER_TABLE["cases"]

STRONG = {
    "content-security-policy": "default-src 'none'; script-src 'nonce-abc'; frame-ancestors 'none'",
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cross-origin-resource-policy": "same-origin",
}


def result(headers: object, test: str, **kwargs: object) -> str:
    return grade_headers(headers, **kwargs).outcome(test).result  # type: ignore[arg-type]


def scanner_grade(case: dict[str, Any], *, reflected_origin_rule: bool = False) -> Any:
    # Cookies set by a redirect on the way to the page count too (the scanner's cookie jar).
    on_the_way = [("Set-Cookie", c) for c in case.get("redirect_cookies", [])]
    return grade_headers(
        [*(tuple(h) for h in case["headers"]), *on_the_way],
        body=case["body"],
        preflight=[tuple(h) for h in case["preflight"]],
        redirection=redirection_result(case["route"]),
        origin=SCANNER_TABLE["origin"],
        host=SCANNER_TABLE["host"],
        reflected_origin_rule=reflected_origin_rule,
    )


def test_the_table_was_made_by_the_version_the_rules_follow() -> None:
    """The recorded runs come from the scanner release named in the code, and there are many."""
    assert SCANNER_TABLE["scanner"] == "@mdn/mdn-http-observatory"
    assert SCANNER_TABLE["version"] == SCANNER_VERSION == "1.4.8"
    assert len(CASES) >= 15
    seen = {r[0] for case in CASES.values() for r in case["scanner"]["tests"].values()}
    assert len(seen) >= 50  # most of the scanner's result ids are exercised


@pytest.mark.parametrize("name", sorted(CASES))
def test_grades_exactly_as_the_scanner_did(name: str) -> None:
    """Score, grade, and every test's result id, modifier and pass flag equal the scanner's."""
    case = CASES[name]
    report = scanner_grade(case)
    expected = case["scanner"]
    got = {t.test: [t.result, t.modifier, t.passed] for t in report.tests}
    assert got == expected["tests"]
    assert (report.score, report.grade) == (expected["score"], expected["grade"])


def test_every_scanner_result_modifier_matches_the_chart() -> None:
    """Each result the scanner reported carries the modifier MODIFIERS gives it."""
    for case in CASES.values():
        for result_id, modifier, _ in case["scanner"]["tests"].values():
            assert MODIFIERS[result_id] == modifier


def test_renderkit_flags_a_reflected_origin_with_credentials_where_1_4_8_does_not() -> None:
    """The scanner (1.4.8) never compares the Origin it sent; renderkit's rule costs -50."""
    case = CASES["cors-reflected-credentials"]
    assert scanner_grade(case).score == case["scanner"]["score"] == 130
    strict = scanner_grade(case, reflected_origin_rule=True)
    outcome = strict.outcome("cross-origin-resource-sharing")
    assert (outcome.result, outcome.modifier, outcome.passed) == (
        "cross-origin-resource-sharing-implemented-with-universal-access",
        -50,
        False,
    )
    assert (strict.score, strict.grade) == (50, "C")


def test_strong_headers_score_a_plus_with_every_bonus() -> None:
    """default-src 'none' (+10), frame-ancestors (+5), a private referrer (+5) and CORP
    same-origin (+10) give 130."""
    report = grade_headers(STRONG)
    assert report.score == 130
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
        ("a", "csp-header-invalid", -25),
        ("default-src 'self'; default-src 'none'", "csp-header-invalid", -25),
        ("default-src 'self'; script-src 'strict-dynamic'", "csp-header-invalid", -25),
        ("default-src 'self'; 'bogus", "csp-implemented-with-no-unsafe", 5),
        ("default-src 'none'; report-uri /a; report-uri /b",
         "csp-implemented-but-duplicate-directives", 0),
        ("default-src 'self'; img-src http:",
         "csp-implemented-with-insecure-scheme-in-passive-content-only", -10),
        ("DEFAULT-SRC 'NONE'", "csp-implemented-with-no-unsafe-default-src-none", 10),
    ],
)  # fmt: skip
def test_csp_rules(csp: str, expected: str, modifier: int) -> None:
    """Each CSP shape gets Observatory's result and modifier."""
    outcome = grade_headers({"content-security-policy": csp}).outcome("content-security-policy")
    assert (outcome.result, outcome.modifier) == (expected, modifier)


def test_report_only_csp_does_not_count() -> None:
    """A Report-Only policy enforces nothing: -25 like no policy, said so in the message."""
    outcome = grade_headers({"content-security-policy-report-only": "default-src 'none'"}).outcome(
        "content-security-policy"
    )
    assert (outcome.result, outcome.modifier) == ("csp-not-implemented-but-reporting-enabled", -25)
    assert "Report-Only" in outcome.message


def test_parse_csp_follows_the_scanner() -> None:
    """A repeated directive makes the policy invalid (None); sources come lower-cased, sorted."""
    assert parse_csp("script-src 'none'; script-src *") is None
    assert parse_csp(" ; ; ") is None
    assert parse_csp("Script-Src 'SELF' https://b.example https://a.example; img-src") == {
        "script-src": ["'self'", "https://a.example", "https://b.example"],
        "img-src": ["'none'"],
    }


def test_a_meta_csp_counts_but_not_its_frame_ancestors_for_the_header_only_rules() -> None:
    """<meta http-equiv> CSP in an HTML page is graded like the header."""
    body = "<html><head><meta http-equiv='Content-Security-Policy' content=\"default-src 'none'\">"
    headers = {"content-type": "text/html"}
    outcome = grade_headers(headers, body=body).outcome("content-security-policy")
    assert outcome.result == "csp-implemented-with-no-unsafe-default-src-none"
    plain = grade_headers({"content-type": "text/plain"}, body=body)
    assert plain.outcome("content-security-policy").result == "csp-not-implemented"


@pytest.mark.parametrize(
    ("value", "expected", "modifier"),
    [
        (f"max-age={HSTS_MIN_MAX_AGE}", "hsts-implemented-max-age-at-least-six-months", 0),
        ("max-age=63072000; includeSubDomains; preload",
         "hsts-implemented-max-age-at-least-six-months", 0),
        ("max-age=86400", "hsts-implemented-max-age-less-than-six-months", -10),
        ("max-age=15552000", "hsts-implemented-max-age-at-least-six-months", 0),
        ("max-age=-1", "hsts-implemented-max-age-less-than-six-months", -10),
        ("max-age=abc", "hsts-implemented-max-age-at-least-six-months", 0),  # the scanner's NaN
        ("max-age=1, max-age=63072000", "hsts-header-invalid", -20),
        ("max-age = 63072000", "hsts-header-invalid", -20),
        ("includeSubDomains", "hsts-header-invalid", -20),
        ('max-age="31536000"', "hsts-implemented-max-age-at-least-six-months", 0),
    ],
)  # fmt: skip
def test_hsts_rules(value: str, expected: str, modifier: int) -> None:
    """HSTS needs a max-age of 180 days or more, sent once (quirks included)."""
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
        ("no-referrer-when-downgrade", "referrer-policy-unsafe", -5),
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


@pytest.mark.parametrize(
    ("value", "expected", "modifier"),
    [
        (None, "corp-not-implemented", 0),
        ("   ", "corp-not-implemented", 0),
        ("same-origin", "corp-implemented-with-same-origin", 10),
        (" Same-Site ", "corp-implemented-with-same-site", 10),
        ("cross-origin", "corp-implemented-with-cross-origin", 0),
        ("everyone", "corp-header-invalid", -5),
    ],
)
def test_corp_values(value: str | None, expected: str, modifier: int) -> None:
    """CORP same-origin and same-site earn +10, cross-origin 0, anything else -5."""
    headers = {} if value is None else {"cross-origin-resource-policy": value}
    outcome = grade_headers(headers).outcome("cross-origin-resource-policy")
    assert (outcome.result, outcome.modifier) == (expected, modifier)


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
    session = grade_headers([*hsts, ("set-cookie", "session=1; HttpOnly")]).outcome("cookies")
    other = grade_headers(
        [*hsts, ("set-cookie", "theme=1"), ("set-cookie", "session=1; Secure; HttpOnly")]
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
    cookie = parse_set_cookie("MySession=x;secure ; HTTPONLY; samesite = Strict")
    assert cookie is not None
    assert (cookie.secure, cookie.httponly, cookie.samesite, cookie.is_session) == (
        True,
        True,
        "strict",
        True,
    )
    # The scanner knows a session cookie by "login" or "sess" in its name, nothing else.
    assert [parse_set_cookie(f"{n}=1").is_session for n in ("sid", "LOGIN_x", "auth")] == [  # type: ignore[union-attr]
        False,
        True,
        False,
    ]


def test_anti_csrf_cookie_needs_samesite() -> None:
    """A cookie named like a CSRF token without SameSite costs -20."""
    outcome = grade_headers({"set-cookie": "csrftoken=1; Secure"}).outcome("cookies")
    assert (outcome.result, outcome.modifier) == ("cookies-anticsrf-without-samesite-flag", -20)


def test_cors_reflecting_any_origin_with_credentials_is_the_worst() -> None:
    """Echoing the probe's Origin with credentials is universal access: -50 (renderkit)."""
    headers = {
        "access-control-allow-origin": "https://probe.invalid",
        "access-control-allow-credentials": "true",
    }
    outcome = grade_headers({}, preflight=headers, origin="https://probe.invalid").outcome(
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


def test_cors_is_read_from_the_preflight_when_one_was_made() -> None:
    """Like the scanner, a preflight's answer decides, not the page's own headers."""
    page = {"access-control-allow-origin": "*"}
    outcome = grade_headers(page, preflight={}).outcome("cross-origin-resource-sharing")
    assert outcome.result == "cross-origin-resource-sharing-not-implemented"


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (None, "redirection-not-needed-no-http"),
        (["http://a.example/"], "redirection-missing"),
        (["http://a.example/", "https://a.example/"], "redirection-to-https"),
        (["http://a.example/", "https://www.a.example/"], "redirection-off-host-from-http"),
        (["http://a.example/", "http://a.example/x", "https://a.example/"],
         "redirection-not-to-https-on-initial-redirection"),
        (["http://a.example/", "http://b.example/"], "redirection-not-to-https"),
    ],
)  # fmt: skip
def test_redirection_result_from_the_route(route: list[str] | None, expected: str) -> None:
    """The redirect chain maps to the scanner's redirection result."""
    assert redirection_result(route) == expected


@pytest.mark.parametrize(
    ("body", "expected", "modifier"),
    [
        ("<p>no scripts</p>", "sri-not-implemented-but-no-scripts-loaded", 0),
        ("<script src='/a.js'></script>",
         "sri-not-implemented-but-all-scripts-loaded-from-secure-origin", 0),
        ("<script src='https://static.app.example/a.js' integrity='sha384-x'></script>",
         "sri-implemented-and-all-scripts-loaded-securely", 5),
        ("<script src='https://cdn.example.net/a.js'></script>",
         "sri-not-implemented-but-external-scripts-loaded-securely", -5),
        ("<script src='https://cdn.example.net/a.js' integrity='sha384-x'></script>",
         "sri-implemented-and-external-scripts-loaded-securely", 5),
        ("<script src='http://cdn.example.net/a.js'></script>",
         "sri-not-implemented-and-external-scripts-not-loaded-securely", -50),
        ("<script src='//cdn.example.net/a.js' integrity='sha384-x'></script>",
         "sri-implemented-but-external-scripts-not-loaded-securely", -20),
    ],
)  # fmt: skip
def test_subresource_integrity(body: str, expected: str, modifier: int) -> None:
    """Third-party scripts need https and an integrity hash; first-party ones earn a bonus."""
    report = grade_headers({"content-type": "text/html"}, body=body, host="www.app.example")
    outcome = report.outcome("subresource-integrity")
    assert (outcome.result, outcome.modifier) == (expected, modifier)
    json_page = grade_headers({"content-type": "application/json"}, body=body)
    assert json_page.outcome("subresource-integrity").result == (
        "sri-not-implemented-response-not-html"
    )


@pytest.mark.parametrize(
    ("redirection", "score"),
    [("redirection-to-https", 130), ("redirection-off-host-from-http", 125),
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
    assert report.score == 130
    data = report.as_dict()
    assert data["grade"] == "A+"
    assert {t["test"] for t in data["tests"]} >= {"content-security-policy", "cookies"}


def test_hsts_left_unscored_when_untestable() -> None:
    """https=None (a local app over plain http) leaves HSTS out of the score."""
    headers = {k: v for k, v in STRONG.items() if k != "strict-transport-security"}
    report = grade_headers(headers, https=None)
    assert report.outcome("strict-transport-security").result == "hsts-not-tested"
    assert report.score == 130


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
    assert report.score == 130
    assert "cross-origin-opener-policy" not in {t.test for t in report.tests}


def test_repeated_headers_are_joined_as_node_does() -> None:
    """The scanner sees a repeated header as one value joined by ", " (so nosniff twice fails)."""
    twice = [("x-content-type-options", "nosniff"), ("x-content-type-options", "nosniff")]
    assert result(twice, "x-content-type-options") == "x-content-type-options-header-invalid"


def test_docs_list_every_result_with_its_modifier() -> None:
    """docs/cli.md has a row for every result id, with the modifier MODIFIERS gives it."""
    import re

    text = (Path(__file__).parent.parent / "docs" / "cli.md").read_text("utf-8")
    minus = "\N{MINUS SIGN}"  # the docs print a minus sign, not a hyphen
    row = rf"^\|[^|]*\| `([a-z0-9-]+)`[^|]*\| ([+{minus}-]?\d+) \|$"
    rows = re.findall(row, text, re.MULTILINE)
    documented = {result: int(value.replace(minus, "-")) for result, value in rows}
    assert documented == MODIFIERS


@pytest.mark.parametrize(
    "src", ["https://[::1/x.js", "http://[zz]/a.js", "https://", "javascript:alert(1)", "//"]
)
def test_a_script_src_that_is_not_a_url_is_graded_not_raised(src: str) -> None:
    """A page can put anything in src=; grading never raises on it (found by attacking it)."""
    body = f'<script src="{src}"></script>'
    report = grade_headers({"content-type": "text/html"}, body=body, host="app.example")
    assert report.outcome("subresource-integrity").result.startswith("sri-")


def test_a_redirect_to_an_unparseable_url_is_graded_not_raised() -> None:
    """A Location such as https://[x is still a redirect to https on another (no) host."""
    assert redirection_result(["http://a.example/", "https://[x/"]) == (
        "redirection-off-host-from-http"
    )
    assert redirection_result(["http://[::1/"]) == "redirection-missing"


def test_herokus_routing_cookie_is_not_graded() -> None:
    """The scanner skips heroku-session-affinity (no Secure on it is not the app's doing)."""
    headers = [
        ("strict-transport-security", "max-age=63072000"),
        ("set-cookie", "SESSIONID=1; Secure; HttpOnly"),
        ("set-cookie", "heroku-session-affinity=x; Path=/"),
    ]
    assert result(headers, "cookies") == "cookies-secure-with-httponly-sessions"


def test_a_meta_policy_of_header_only_directives_enforces_nothing() -> None:
    """<meta> cannot carry frame-ancestors: such a policy is csp-not-implemented."""
    body = "<meta http-equiv='Content-Security-Policy' content=\"frame-ancestors 'none'\">"
    headers = {"content-type": "text/html"}
    assert result(headers, "content-security-policy", body=body) == "csp-not-implemented"
