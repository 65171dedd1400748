"""Tests for ``renderkit verify``: each check against in-process apps, then end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from renderkit.cli import main
from renderkit.cli._verify import VerifyReport, format_table, normalise_url, run_verify
from renderkit.correlation import CorrelationIdMiddleware
from renderkit.security import SecurityHeadersMiddleware

ROOT = Path(__file__).resolve().parent.parent


async def home(request: Request) -> Response:
    response = HTMLResponse("<p>hello</p>")
    response.set_cookie("session", "abc", secure=True, httponly=True, samesite="lax")
    response.headers["RateLimit"] = '"default";r=99;t=60'
    response.headers["RateLimit-Policy"] = '"default";q=100;w=60'
    return response


async def health(request: Request) -> Response:
    return JSONResponse({"status": "pass"}, media_type="application/health+json")


async def live(request: Request) -> Response:
    return JSONResponse({"status": "pass"})


def good_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/health", health),
            Route("/health/live", live),
            Route("/health/ready", live),
            Route("/health/instance", live),
        ]
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(CorrelationIdMiddleware)
    return app


async def careless_home(request: Request) -> Response:
    response = HTMLResponse("<p>hello</p>")
    response.set_cookie("session", "abc")  # no Secure, no HttpOnly, Starlette's SameSite=lax
    rid = request.headers.get("x-request-id", "")
    response.headers["X-Request-ID"] = rid[:1000]  # echoes anything
    return response


async def careless_health(request: Request) -> Response:
    response = PlainTextResponse("OK")
    response.headers["X-Request-ID"] = request.headers.get("x-request-id", "")
    return response


def careless_app() -> Starlette:
    return Starlette(routes=[Route("/", careless_home), Route("/health", careless_health)])


def verify(app: Starlette, **kwargs: object) -> VerifyReport:
    with TestClient(app) as client:
        return run_verify("http://testserver", client=client, **kwargs)  # type: ignore[arg-type]


def test_well_configured_app_passes_every_check() -> None:
    """Health JSON, sub-paths, A+ headers, request ids, RateLimit headers and cookie flags pass."""
    report = verify(good_app())
    statuses = {c.name: c.status for c in report.checks}
    assert statuses == {
        "health": "pass",
        "health-endpoints": "pass",
        # testserver is plain http and the app does not redirect: a warning, locally.
        "https-redirect": "warn",
        "security-headers": "pass",
        "request-id": "pass",
        "rate-limit-headers": "pass",
        "cookies": "pass",
    }
    assert report.ok
    assert report.observatory is not None
    assert report.observatory.grade in ("A+", "A")


def test_careless_app_fails_where_it_is_careless() -> None:
    """No headers, echoed hostile ids and a bare session cookie each fail with a fix."""
    report = verify(careless_app())
    assert not report.ok
    assert report.check("health").status == "warn"  # 200, but not JSON
    headers = report.check("security-headers")
    assert headers.status == "fail"
    assert "content-security-policy -25" in headers.message
    request_id = report.check("request-id")
    assert request_id.status == "fail"
    assert "hostile" in request_id.message
    cookies = report.check("cookies")
    assert cookies.status == "fail"
    assert "session: no Secure" in cookies.message
    assert "session: no HttpOnly" in cookies.message
    assert report.check("rate-limit-headers").status == "warn"
    assert report.check("health-endpoints").status == "skip"


def test_health_failures() -> None:
    """A 503, a redirect and a missing route are each a failing health check."""

    async def down(request: Request) -> Response:
        return JSONResponse({"status": "fail"}, status_code=503)

    async def redirect(request: Request) -> Response:
        return Response(status_code=308, headers={"location": "https://x.example/health"})

    for endpoint, text in ((down, "answered 503"), (redirect, "redirects (308")):
        report = verify(Starlette(routes=[Route("/health", endpoint)]))
        assert report.check("health").status == "fail"
        assert text in report.check("health").message
    missing = verify(Starlette(routes=[]), health_path="/healthz")
    assert "GET /healthz answered 404" in missing.check("health").message


def test_app_redirecting_everything_is_explained() -> None:
    """An app that redirects the probe (it does not trust our proxy header) gets a clear fail."""

    async def everything(request: Request) -> Response:
        return Response(status_code=308, headers={"location": "https://testserver/"})

    report = verify(Starlette(routes=[Route("/", everything), Route("/health", health)]))
    assert report.check("https-redirect").status == "pass"
    headers = report.check("security-headers")
    assert headers.status == "fail"
    assert "does not trust it as a proxy" in headers.message


def test_request_id_not_kept() -> None:
    """An app that always generates its own id, ignoring the client's, fails the echo part."""

    async def own_id(request: Request) -> Response:
        return JSONResponse({"status": "pass"}, headers={"X-Request-ID": "always-mine"})

    report = verify(Starlette(routes=[Route("/health", own_id)]))
    assert "the client's id is not kept" in report.check("request-id").message


def test_redirect_check_against_https_url() -> None:
    """For an https URL the http variant must answer 301/308 to https on the same host."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            return httpx.Response(
                301, headers={"location": f"https://app.example{request.url.path}"}
            )
        if request.url.path.startswith("/health"):
            return httpx.Response(200, json={"status": "pass"})
        return httpx.Response(200, text="<p>hi</p>")

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        report = run_verify("https://app.example", client=client)
    assert report.check("https-redirect").status == "pass"
    assert report.observatory is not None
    assert report.observatory.outcome("redirection").result == "redirection-to-https"

    def temporary(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            return httpx.Response(302, headers={"location": "https://other.example/"})
        return httpx.Response(200, json={"status": "pass"})

    with httpx.Client(transport=httpx.MockTransport(temporary)) as client:
        report = run_verify("https://app.example", client=client)
    assert report.check("https-redirect").status == "warn"
    assert "another host" in report.check("https-redirect").message


def test_unreachable_app_fails_every_check_without_crashing() -> None:
    """Connection errors become failing checks that name the error."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        report = run_verify("https://down.example", client=client)
    assert [c.status for c in report.checks if c.name != "https-redirect"] == ["fail"] * 6
    assert "ConnectError" in report.check("health").message
    # Nothing listening on plain http is fine for Observatory: no redirect needed.
    assert report.check("https-redirect").status == "pass"


@pytest.mark.parametrize("url", ["ftp://x.example", "http://", "://nothing", "https:///path"])
def test_bad_urls_are_rejected(url: str) -> None:
    """A non-http URL is a usage error naming the argument."""
    with pytest.raises(ValueError, match="not an http"):
        normalise_url(url)


def test_bare_host_defaults_to_https() -> None:
    """A bare host name means its https URL; a trailing slash is dropped."""
    assert normalise_url("app.onrender.com/") == "https://app.onrender.com"


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad URL, bad paths and bad timeouts exit 2 with a message."""
    assert main(["verify", "ftp://x"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err
    assert main(["verify", "http://127.0.0.1:9", "--health-path", "health"]) == 2
    assert "--health-path 'health' must start with /" in capsys.readouterr().err
    for bad in ("0", "-1", "abc", "500"):
        with pytest.raises(SystemExit):
            main(["verify", "http://127.0.0.1:9", "--timeout", bad])


def test_table_lists_every_check_and_the_fixes() -> None:
    """The table shows one row per check, the fixes for failures and a summary line."""
    text = format_table(verify(careless_app()))
    for name in ("health", "https-redirect", "security-headers", "request-id", "cookies"):
        assert f"  {name}" in text
    assert "To fix:" in text
    assert "CorrelationIdMiddleware" in text
    assert text.rstrip().endswith("1 skipped")


# --- end to end: a real uvicorn ------------------------------------------------------------

MISCONFIGURED = """
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

async def home(request):
    response = HTMLResponse("<p>no headers here</p>")
    response.set_cookie("session", "abc")
    return response

async def health(request):
    return PlainTextResponse("OK")

app = Starlette(routes=[Route("/", home), Route("/health", health)])
"""


def _serve(module: str, directory: Path, env: dict[str, str]) -> Iterator[str]:
    import contextlib
    import socket
    import time

    from _uvicorn_server import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", module, "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--app-dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(f"uvicorn exited: {process.stderr.read().decode()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start listening within 20 s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


def _clean_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(extra)
    return env


def _cli_json(url: str) -> tuple[int, dict[str, object], str]:
    result = subprocess.run(
        [sys.executable, "-m", "renderkit", "verify", url, "--json", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, json.loads(result.stdout), result.stderr


@pytest.mark.e2e
def test_verify_end_to_end_example_versus_misconfigured(tmp_path: Path) -> None:
    """The FastAPI example under uvicorn passes; a bare app fails; the CLI shows the difference."""
    (tmp_path / "bare_app.py").write_text(MISCONFIGURED)
    # RENDER=true: the example trusts Render's proxy chain (private peers), like in production.
    example_env = _clean_env(RENDER="true", SESSION_SECRET="e2e-" + "s" * 60)
    good_gen = _serve("examples.fastapi_app:app", ROOT, example_env)
    good_url = next(good_gen)
    try:
        bad_gen = _serve("bare_app:app", tmp_path, _clean_env())
        bad_url = next(bad_gen)
        try:
            good_code, good, good_err = _cli_json(good_url)
            bad_code, bad, _ = _cli_json(bad_url)
        finally:
            bad_gen.close()
    finally:
        good_gen.close()

    def statuses(report: dict[str, object]) -> dict[str, str]:
        return {c["check"]: c["status"] for c in report["checks"]}  # type: ignore[attr-defined, index]

    good_status, bad_status = statuses(good), statuses(bad)
    assert good_code == 0, good
    assert bad_code == 1
    assert "[1/7] health ..." in good_err  # a progress line per check on stderr
    assert good_status["https-redirect"] == "pass"
    assert good_status["security-headers"] == "pass"
    assert good["observatory"]["grade"] == "A+"  # type: ignore[index]
    assert good_status["request-id"] == "pass"
    assert good_status["health"] == "pass"
    assert good_status["cookies"] == "pass"  # the home page's session cookie: Secure, HttpOnly
    assert good_status["rate-limit-headers"] == "pass"
    assert bad_status["cookies"] == "fail"
    for check in ("security-headers", "request-id"):
        assert bad_status[check] == "fail", bad
    assert bad_status["https-redirect"] == "warn"
    assert bad["observatory"]["score"] < good["observatory"]["score"]  # type: ignore[index]


def _mock_site(routes: dict[tuple[str, str], httpx.Response]) -> httpx.Client:
    """A client whose answers come from (scheme, path) -> response; OPTIONS sees its own key."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/health"):
            return httpx.Response(200, json={"status": "pass"})
        key = (
            request.method if request.method == "OPTIONS" else request.url.scheme,
            request.url.path,
        )
        return routes.get(key, httpx.Response(404))

    return httpx.Client(transport=httpx.MockTransport(handler))


STRICT_HEADERS = {
    "content-type": "text/html",
    "strict-transport-security": "max-age=63072000",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


def test_verify_probes_cors_with_a_preflight_and_flags_a_reflected_origin() -> None:
    """verify sends OPTIONS with Origin like the scanner; echoing it with credentials is -50."""
    seen: list[httpx.Request] = []

    def preflight(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            204,
            headers={
                "access-control-allow-origin": request.headers["origin"],
                "access-control-allow-credentials": "true",
            },
        )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "OPTIONS":
            return preflight(request)
        if request.url.scheme == "http":
            return httpx.Response(
                308, headers={"location": f"https://app.example{request.url.path}"}
            )
        if request.url.path.startswith("/health"):
            return httpx.Response(200, json={"status": "pass"})
        return httpx.Response(200, headers=STRICT_HEADERS, text="<p>hi</p>")

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        report = run_verify("https://app.example", client=client)
    assert seen and seen[0].headers["access-control-request-method"] == "GET"
    assert report.observatory is not None
    cors = report.observatory.outcome("cross-origin-resource-sharing")
    assert (cors.result, cors.modifier) == (
        "cross-origin-resource-sharing-implemented-with-universal-access",
        -50,
    )
    assert (report.observatory.score, report.observatory.grade) == (50, "C")
    assert report.check("security-headers").status == "fail"
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        exact = run_verify("https://app.example", client=client, scanner_only=True)
    assert exact.observatory is not None
    assert (exact.observatory.score, exact.observatory.grade) == (130, "A+")  # as 1.4.8 grades


def test_verify_follows_the_redirect_chain_and_grades_subresource_integrity() -> None:
    """http -> http -> https costs -10; a third-party script without integrity costs -5."""
    page = '<html><script src="https://cdn.example.net/x.js"></script></html>'
    routes = {
        ("http", "/"): httpx.Response(301, headers={"location": "http://app.example/www"}),
        ("http", "/www"): httpx.Response(301, headers={"location": "https://app.example/"}),
        ("https", "/"): httpx.Response(200, headers=STRICT_HEADERS, text=page),
        ("OPTIONS", "/"): httpx.Response(204),
    }
    with _mock_site(routes) as client:
        report = run_verify("https://app.example", client=client)
    assert report.observatory is not None
    outcomes = {t.test: t.result for t in report.observatory.tests}
    assert outcomes["redirection"] == "redirection-not-to-https-on-initial-redirection"
    assert outcomes["subresource-integrity"] == (
        "sri-not-implemented-but-external-scripts-loaded-securely"
    )
    assert report.observatory.score == 85  # 100 - 10 - 5: below 90, so no bonus counts
    assert report.check("https-redirect").status == "warn"
    assert "http://app.example/www" in report.check("https-redirect").message


def test_a_redirect_nothing_can_follow_is_reported_not_crashed() -> None:
    """A Location of https://[broken ends the chain; the check says where it pointed."""
    routes = {
        ("http", "/"): httpx.Response(301, headers={"location": "https://[broken/"}),
        ("https", "/"): httpx.Response(
            200, headers=STRICT_HEADERS, text='<script src="https://[::1/x.js"></script>'
        ),
        ("OPTIONS", "/"): httpx.Response(204),
    }
    with _mock_site(routes) as client:
        report = run_verify("https://app.example", client=client)
    redirect = report.check("https-redirect")
    assert redirect.status == "warn"
    assert "another host" in redirect.message
    assert "request failed" not in report.check("security-headers").message
    assert report.observatory is not None
    assert report.observatory.outcome("redirection").result == "redirection-off-host-from-http"


def test_the_page_is_graded_after_its_redirects_with_every_cookie_on_the_way() -> None:
    """As the scanner does: / -> /login is graded at /login; the redirect's cookie counts."""
    login = httpx.Response(200, headers=STRICT_HEADERS, text="<p>login</p>")
    routes = {
        ("http", "/"): httpx.Response(308, headers={"location": "https://app.example/"}),
        ("https", "/"): httpx.Response(
            302, headers={"location": "/login", "set-cookie": "sessionid=1; Secure; SameSite=Lax"}
        ),
        ("https", "/login"): login,
        ("OPTIONS", "/login"): httpx.Response(204, headers={"access-control-allow-origin": "*"}),
    }
    with _mock_site(routes) as client:
        report = run_verify("https://app.example", client=client)
    assert report.observatory is not None
    outcomes = {t.test: t.result for t in report.observatory.tests}
    assert outcomes["cookies"] == "cookies-session-without-httponly-flag"  # set by the 302
    assert outcomes["cross-origin-resource-sharing"] == (
        "cross-origin-resource-sharing-implemented-with-public-access"  # preflight at /login
    )
    assert outcomes["content-security-policy"] == "csp-implemented-with-no-unsafe-default-src-none"


def test_an_error_page_is_not_graded() -> None:
    """The scanner refuses a page answering 404 or 500 (401/403 are graded): verify says so."""
    for status, graded in ((404, False), (500, False), (401, True)):
        routes = {
            ("http", "/"): httpx.Response(308, headers={"location": "https://app.example/"}),
            ("https", "/"): httpx.Response(status, headers=STRICT_HEADERS, text="<p>x</p>"),
            ("OPTIONS", "/"): httpx.Response(204),
        }
        with _mock_site(routes) as client:
            report = run_verify("https://app.example", client=client)
        check = report.check("security-headers")
        assert (report.observatory is not None) is graded, status
        if not graded:
            assert check.status == "fail"
            assert f"answered {status}" in check.message


def test_cookie_check_treats_sid_and_token_cookies_as_sessions() -> None:
    """verify's own cookie check is broader than the Observatory's: sid needs HttpOnly."""

    async def page(request: Request) -> Response:
        response = HTMLResponse("<p>hi</p>")
        response.set_cookie("sid", "1", secure=True, samesite="lax")  # no HttpOnly
        return response

    report = verify(Starlette(routes=[Route("/", page), Route("/health", health)]))
    check = report.check("cookies")
    assert check.status == "fail"
    assert "sid: no HttpOnly" in check.message
    assert report.observatory is not None  # the scanner's own rule ignores "sid"
    assert report.observatory.outcome("cookies").result != "cookies-session-without-httponly-flag"
