"""Tests for renderkit.security: HTTPS redirect and security headers (Observatory A+ rules)."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from renderkit.proxy import ProxyTrust
from renderkit.security import (
    NONCE,
    HTTPSRedirectMiddleware,
    SecurityHeaders,
    SecurityHeadersMiddleware,
    https_redirect_enabled,
)

PROXY = ProxyTrust(hops=1)  # TestClient's peer is "testclient": trust one hop from anyone


def parse_csp(value: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in value.split(";"):
        tokens = part.split()
        if tokens:
            directives[tokens[0]] = tokens[1:]
    return directives


def assert_observatory_a_plus(headers: object) -> None:
    """Mozilla HTTP Observatory's header rules for a top grade, one assertion per rule."""
    h = headers  # httpx / werkzeug headers: case-insensitive .get
    csp_value = h.get("content-security-policy")  # type: ignore[attr-defined]
    assert csp_value, "CSP must be enforced (not only report-only)"
    csp = parse_csp(csp_value)
    script = csp.get("script-src", csp.get("default-src", []))
    assert "'unsafe-eval'" not in script
    if "'unsafe-inline'" in script:
        assert any(s.startswith("'nonce-") for s in script), "unsafe-inline needs a nonce"
    assert csp.get("object-src", csp.get("default-src")) in (["'none'"], ["'self'"])
    assert csp.get("default-src") in (["'none'"], ["'self'"])
    hsts = h.get("strict-transport-security")  # type: ignore[attr-defined]
    max_age = int(hsts.split("max-age=")[1].split(";")[0])
    assert max_age >= 15552000
    assert csp.get("frame-ancestors") == ["'none'"] or h.get("x-frame-options") in (  # type: ignore[attr-defined]
        "DENY",
        "SAMEORIGIN",
    )
    assert h.get("x-content-type-options") == "nosniff"  # type: ignore[attr-defined]
    assert h.get("referrer-policy") in (  # type: ignore[attr-defined]
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    )
    assert h.get("cross-origin-opener-policy") == "same-origin"  # type: ignore[attr-defined]
    assert h.get("cross-origin-resource-policy") == "same-origin"  # type: ignore[attr-defined]


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(f"<script nonce='{request.state.csp_nonce}'>1</script>")


async def boom(request: Request) -> HTMLResponse:
    raise RuntimeError("handler failed")


def starlette_client(policy: SecurityHeaders | None = None, **kw: object) -> TestClient:
    async def custom(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            "x",
            headers={"X-Frame-Options": "SAMEORIGIN", "Server": "uvicorn", "X-Powered-By": "php"},
        )

    async def cached(request: Request) -> HTMLResponse:
        return HTMLResponse("x", headers={"Cache-Control": "public, max-age=60"})

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/boom", boom),
            Route("/custom", custom),
            Route("/cached", cached),
            Route("/json", lambda r: JSONResponse({"a": 1})),
        ]
    )
    app.add_middleware(SecurityHeadersMiddleware, policy=policy, trust=PROXY, **kw)  # type: ignore[arg-type]
    return TestClient(app, base_url="https://testserver", raise_server_exceptions=False)


def test_html_preset_scores_a_plus_on_starlette() -> None:
    """The default policy meets every Observatory header rule on an https response."""
    response = starlette_client().get("/")
    assert_observatory_a_plus(response.headers)


def test_nonce_is_fresh_per_request_and_matches_the_body() -> None:
    """Each response has a new nonce, the same one in the CSP and in request.state."""
    client = starlette_client()
    nonces = set()
    for _ in range(3):
        response = client.get("/")
        nonce = response.text.split("nonce='")[1].split("'")[0]
        assert len(nonce) >= 22
        assert (
            f"'nonce-{nonce}'"
            in parse_csp(response.headers["content-security-policy"])["script-src"]
        )
        nonces.add(nonce)
    assert len(nonces) == 3


def test_html_with_nonce_is_private_unless_the_handler_set_cache_control() -> None:
    """A shared cache must never replay a nonce: HTML gets Cache-Control private."""
    client = starlette_client()
    assert client.get("/").headers["cache-control"] == "private"
    assert client.get("/cached").headers["cache-control"] == "public, max-age=60"
    assert "cache-control" not in client.get("/json").headers


def test_hsts_only_over_https() -> None:
    """HSTS is sent when the client used https (per trusted X-Forwarded-Proto), not over http."""
    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(SecurityHeadersMiddleware, trust=PROXY)
    client = TestClient(app)  # http://testserver
    assert "strict-transport-security" not in client.get("/").headers
    forwarded = client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert forwarded.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    # An untrusted peer cannot switch HSTS on with a forged header.
    app2 = Starlette(routes=[Route("/", page)])
    app2.add_middleware(SecurityHeadersMiddleware, trust=ProxyTrust.none())
    forged = TestClient(app2).get("/", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in forged.headers


def test_handler_headers_win_and_server_headers_are_removed() -> None:
    """A header the handler set is kept; Server and X-Powered-By are dropped."""
    response = starlette_client().get("/custom")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert "server" not in response.headers and "x-powered-by" not in response.headers


def test_overwrite_replaces_handler_headers() -> None:
    """With overwrite=True the policy's value replaces the handler's."""
    response = starlette_client(SecurityHeaders(overwrite=True)).get("/custom")
    assert response.headers.get_list("x-frame-options") == ["DENY"]


def test_headers_are_on_an_unhandled_500() -> None:
    """A handler that raises still gets every security header on its 500."""
    response = starlette_client().get("/boom")
    assert response.status_code == 500
    assert_observatory_a_plus(response.headers)


def test_api_preset() -> None:
    """The API preset sends OWASP's CSP for JSON APIs and no nonce."""
    response = starlette_client(SecurityHeaders.api()).get("/json")
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert "permissions-policy" not in response.headers
    assert_observatory_a_plus(response.headers)


def test_report_only_and_reporting_endpoints() -> None:
    """Report-only mode uses the -Report-Only header with report-uri and report-to."""
    policy = SecurityHeaders(
        csp_report_only=True, report_uri="/csp", report_to="https://r.example/csp"
    )
    response = starlette_client(policy).get("/")
    assert "content-security-policy" not in response.headers
    csp = response.headers["content-security-policy-report-only"]
    assert "report-uri /csp" in csp and csp.endswith("report-to csp-endpoint")
    assert response.headers["reporting-endpoints"] == 'csp-endpoint="https://r.example/csp"'


def test_path_overrides() -> None:
    """A per-path override replaces the policy on matching paths only."""
    policy = SecurityHeaders(path_overrides={"/json": SecurityHeaders.api()})
    client = starlette_client(policy)
    assert client.get("/json").headers["content-security-policy"].startswith("default-src 'none'")
    assert "nonce-" in client.get("/").headers["content-security-policy"]


def test_fastapi_docs_render_with_the_relaxation_and_the_rest_stays_strict() -> None:
    """FastAPI's /docs and /redoc get a CSP allowing their CDN assets; other paths stay strict."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.add_middleware(SecurityHeadersMiddleware, trust=PROXY)
    client = TestClient(app, base_url="https://testserver")
    docs = client.get("/docs")
    csp = parse_csp(docs.headers["content-security-policy"])
    assert "https://cdn.jsdelivr.net" in csp["script-src"]
    assert "'unsafe-inline'" in csp["script-src"]
    assert not any(s.startswith("'nonce-") for s in csp["script-src"])  # would disable inline
    assert "https://fastapi.tiangolo.com" in csp["img-src"]
    assert "cdn.jsdelivr.net" in docs.text  # the page really loads from there
    redoc = parse_csp(client.get("/redoc").headers["content-security-policy"])
    assert "https://fonts.googleapis.com" in redoc["style-src"] and "blob:" in redoc["worker-src"]
    strict = client.get("/items/3")
    assert "cdn.jsdelivr.net" not in strict.headers["content-security-policy"]
    assert_observatory_a_plus(strict.headers)
    no_docs = SecurityHeaders(docs_paths=())
    assert no_docs.for_path("/docs") is no_docs


def test_custom_csp_with_nonce_placeholder_and_string_form() -> None:
    """NONCE placeholders work in dict and string CSPs; no placeholder means no nonce."""
    policy = SecurityHeaders(
        csp={"default-src": ["'self'"], "script-src": ["'self'", NONCE]},
        csp_allow_missing=("object-src", "frame-ancestors"),
    )
    assert policy.uses_nonce
    value = policy.csp_value("abc")
    assert value == b"default-src 'self'; script-src 'self' 'nonce-abc'"
    text = SecurityHeaders(csp="default-src 'none'; script-src {nonce}; frame-ancestors 'none'")
    assert (
        text.csp_value("n1") == b"default-src 'none'; script-src 'nonce-n1'; frame-ancestors 'none'"
    )
    assert SecurityHeaders.api().new_nonce() is None
    assert SecurityHeaders(csp=None).csp_value(None) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"csp": {"script-src": "'self'"}}, "list of sources"),
        ({"csp": {"script-src": ["'self' https://x"]}}, "one source per list item"),
        ({"csp": {"Bad Directive": []}}, "not a CSP directive"),
        ({"hsts_preload": True, "hsts_max_age": 100}, "hsts_preload"),
        ({"frame_options": "ALLOW"}, "frame_options"),
        ({"extra_headers": {"X-A": "a\r\nb"}}, "CR, LF"),
        ({"extra_headers": {"Bad Name": "v"}}, "header name"),
        ({"path_overrides": {"docs": SecurityHeaders()}}, "must start with '/'"),
    ],
)
def test_bad_policy_options_raise_clear_errors(options: dict[str, object], message: str) -> None:
    """Policy mistakes fail at construction with a message naming the option."""
    with pytest.raises(ValueError, match=message):
        SecurityHeaders(**options)  # type: ignore[arg-type]


def test_middleware_rejects_a_non_policy() -> None:
    """Passing something else than SecurityHeaders as policy is a TypeError with a hint."""
    with pytest.raises(TypeError, match=r"SecurityHeaders\.html"):
        SecurityHeadersMiddleware(page, policy={"csp": None})  # type: ignore[arg-type]


# --- HTTPS redirect -----------------------------------------------------------------------


def redirect_client(**options: object) -> TestClient:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/{path:path}", ok, methods=["GET", "HEAD", "POST"]), Route("/", ok)]
    )
    options.setdefault("trust", PROXY)
    app.add_middleware(HTTPSRedirectMiddleware, **options)  # type: ignore[arg-type]
    return TestClient(app, follow_redirects=False)


def test_redirects_get_with_301_and_post_with_308_keeping_the_query() -> None:
    """Plain HTTP gets 301 (GET/HEAD) or 308 (other methods) to the same URL on https."""
    client = redirect_client()
    response = client.get("/a/b?x=1&y=%20", headers={"X-Forwarded-Proto": "http"})
    assert response.status_code == 301
    assert response.headers["location"] == "https://testserver/a/b?x=1&y=%20"
    assert client.head("/a").status_code == 301
    post = client.post("/form", headers={"X-Forwarded-Proto": "http"})
    assert post.status_code == 308
    assert post.headers["location"] == "https://testserver/form"


def test_https_via_proxy_passes_through() -> None:
    """A request the trusted proxy marks https reaches the app."""
    response = redirect_client().get("/a", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200


def test_health_paths_are_exempt_by_default() -> None:
    """Health checkers calling over plain HTTP are never redirected."""
    client = redirect_client()
    for path in ("/health", "/health/ready", "/healthz", "/readyz", "/livez"):
        assert client.get(path).status_code == 200, path
    assert client.get("/healthcheck").status_code == 301


def test_forwarded_proto_list_uses_the_trusted_hop() -> None:
    """'https, http' with one trusted hop reads the right-most entry (the proxy's): http."""
    client = redirect_client()
    assert client.get("/a", headers={"X-Forwarded-Proto": "https, http"}).status_code == 301
    assert client.get("/a", headers={"X-Forwarded-Proto": "http, https"}).status_code == 200
    two_hops = redirect_client(trust=ProxyTrust(hops=2))
    assert two_hops.get("/a", headers={"X-Forwarded-Proto": "https, http"}).status_code == 200
    assert two_hops.get("/a", headers={"X-Forwarded-Proto": "garbage"}).status_code == 301


def test_untrusted_forwarded_proto_is_ignored() -> None:
    """Without trusted proxies the TCP scheme counts; a forged https header does not help."""
    client = redirect_client(trust=ProxyTrust.none())
    assert client.get("/a", headers={"X-Forwarded-Proto": "https"}).status_code == 301


def test_allowed_hosts_block_host_steering() -> None:
    """With allowed hosts, a foreign Host gets 400 and no Location."""
    client = redirect_client(allowed_hosts=["example.com", "*.example.org"])
    evil = client.get("/a", headers={"Host": "evil.com"})
    assert evil.status_code == 400 and "location" not in evil.headers
    assert client.get("/a", headers={"Host": "example.com:80"}).headers["location"] == (
        "https://example.com/a"
    )
    assert client.get("/a", headers={"Host": "api.example.org"}).status_code == 301


@pytest.mark.parametrize(
    "host", [b"", b"exa mple.com", b"a/b", b"example.com:abc@x", "\u00e9.com".encode()]
)
def test_malformed_host_is_a_400(host: bytes) -> None:
    """A missing or malformed Host header gets 400, never a redirect built from it."""
    response = redirect_client().get("/a", headers={"Host": host})
    assert response.status_code == 400
    assert "location" not in response.headers


def test_https_port_and_ipv6_host() -> None:
    """A non-default https_port is put in the Location; IPv6 literals work."""
    client = redirect_client(https_port=8443)
    assert client.get("/a", headers={"Host": "example.com"}).headers["location"] == (
        "https://example.com:8443/a"
    )
    plain = redirect_client()
    assert plain.get("/", headers={"Host": "[::1]:8000"}).headers["location"] == "https://[::1]/"


def test_redirect_option_errors() -> None:
    """String instead of list, or a bad port, fails at construction."""
    with pytest.raises(ValueError, match="list"):
        HTTPSRedirectMiddleware(page, trust=PROXY, allowed_hosts="example.com")
    with pytest.raises(ValueError, match="https_port"):
        HTTPSRedirectMiddleware(page, trust=PROXY, https_port=0)


def test_https_redirect_enabled_by_environment() -> None:
    """The wiring decision: FORCE_HTTPS wins, else production only."""
    assert https_redirect_enabled({"APP_ENV": "production"}) is True
    assert https_redirect_enabled({"APP_ENV": "development"}) is False
    assert https_redirect_enabled({"APP_ENV": "development", "FORCE_HTTPS": "true"}) is True
    assert https_redirect_enabled({"APP_ENV": "production", "FORCE_HTTPS": "0"}) is False
    from renderkit.errors import ConfigError

    with pytest.raises(ConfigError, match="FORCE_HTTPS"):
        https_redirect_enabled({"FORCE_HTTPS": "maybe"})


def test_fastapi_full_stack_nonce_request_id_and_500() -> None:
    """On FastAPI the nonce reaches the handler and a raising route keeps id and headers."""
    from renderkit.correlation import CorrelationIdMiddleware

    app = FastAPI()

    @app.get("/page", response_class=HTMLResponse)
    async def fastapi_page(request: Request) -> str:
        return f"<script nonce='{request.state.csp_nonce}'>1</script>"

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("handler failed")

    app.add_middleware(HTTPSRedirectMiddleware, trust=PROXY)
    app.add_middleware(SecurityHeadersMiddleware, trust=PROXY)
    app.add_middleware(CorrelationIdMiddleware)
    client = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
    page_response = client.get("/page", headers={"X-Forwarded-Proto": "https"})
    nonce = page_response.text.split("nonce='")[1].split("'")[0]
    assert f"'nonce-{nonce}'" in page_response.headers["content-security-policy"]
    assert_observatory_a_plus(page_response.headers)
    failed = client.get("/fail", headers={"X-Forwarded-Proto": "https", "X-Request-ID": "f-1"})
    assert failed.status_code == 500 and failed.headers["x-request-id"] == "f-1"
    assert_observatory_a_plus(failed.headers)
    redirected = client.get("/page", headers={"X-Forwarded-Proto": "http"}, follow_redirects=False)
    assert redirected.status_code == 301 and redirected.headers["x-request-id"]


def test_websockets_plain_ws_is_refused_and_wss_passes() -> None:
    """A plain ws:// upgrade is closed with 1008; a wss one (via the proxy) is accepted."""
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def ws_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws_endpoint)])
    app.add_middleware(HTTPSRedirectMiddleware, trust=PROXY)
    client = TestClient(app)
    with client.websocket_connect("/ws", headers={"X-Forwarded-Proto": "https"}) as ws:
        assert ws.receive_text() == "hi"
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/ws", headers={"X-Forwarded-Proto": "http"}):
            pass
    assert refused.value.code == 1008


def test_presets_and_replace_keep_the_rest_of_the_policy() -> None:
    """html(**changes) and replace() change only the named fields."""
    preload = SecurityHeaders.html(hsts_preload=True)
    assert preload.hsts_header == (
        b"strict-transport-security",
        b"max-age=63072000; includeSubDomains; preload",
    )
    sameorigin = preload.replace(frame_options="SAMEORIGIN")
    assert (b"x-frame-options", b"SAMEORIGIN") in sameorigin.static_headers
    assert sameorigin.hsts_preload and sameorigin.uses_nonce
    assert SecurityHeaders.api(frame_options=None).static_headers == tuple(
        h for h in SecurityHeaders.api().static_headers if h[0] != b"x-frame-options"
    )


def test_proxy_trust_peer_answers_are_remembered_correctly_and_bounded() -> None:
    """The per-peer memo of ProxyTrust gives the same answers as the check it saves, and stays
    bounded when every request comes from a different peer."""
    trust = ProxyTrust.render()
    for _ in range(3):
        assert trust.trusts_peer("10.1.2.3") is True
        assert trust.trusts_peer("203.0.113.9") is False
        assert trust.trusts_peer(None) is False
        assert trust.trusts_peer("garbage") is False
    for i in range(600):
        assert trust.trusts_peer(f"198.51.{i // 256}.{i % 256}") is False
    assert len(trust._peer_cache) <= 256
    assert trust == ProxyTrust.render()  # the memo is not part of equality


def test_each_edge_middleware_judges_the_scheme_with_its_own_trust() -> None:
    """HTTPS redirect and security headers each believe only their own proxies: a middleware
    trusting nobody still judges a forwarded 'https' as plain http (no HSTS)."""

    async def ok(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def run(app, headers):  # type: ignore[no-untyped-def]
        sent: list[dict] = []  # type: ignore[type-arg]

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "scheme": "http",
                 "headers": headers, "client": ("10.0.0.2", 1), "state": {}}  # fmt: skip
        await app(scope, None, send)
        return scope, sent[0]["status"], dict(sent[0]["headers"])

    trusted = ProxyTrust(hops=1)
    forwarded = [(b"host", b"example.com"), (b"x-forwarded-proto", b"https")]
    shared = SecurityHeadersMiddleware(HTTPSRedirectMiddleware(ok, trust=trusted), trust=trusted)
    _, status, headers = asyncio.run(run(shared, forwarded))
    assert status == 200 and b"strict-transport-security" in headers

    distrustful = SecurityHeadersMiddleware(
        HTTPSRedirectMiddleware(ok, trust=trusted), trust=ProxyTrust.none()
    )
    _, status, headers = asyncio.run(run(distrustful, forwarded))
    assert status == 200  # the redirect middleware believed its proxy: no redirect
    assert b"strict-transport-security" not in headers  # plain http as far as it can tell


# --- extending, replacing and guarding the CSP ------------------------------------------------


def test_extend_adds_sources_and_keeps_the_rest_of_the_preset() -> None:
    """extend() adds to a directive; default-src, object-src, frame-ancestors and the nonce
    stay, and the page still scores A+."""
    policy = SecurityHeaders.html().extend(script_src=["https://cdn.example"], img_src=["blob:"])
    csp = parse_csp(policy.csp_value("n1").decode())  # type: ignore[union-attr]
    assert csp["script-src"] == ["'self'", "'nonce-n1'", "https://cdn.example"]
    assert csp["img-src"] == ["'self'", "data:", "blob:"]
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    response = starlette_client(policy).get("/")
    assert_observatory_a_plus(response.headers)
    assert "https://cdn.example" in response.headers["content-security-policy"]


def test_extend_starts_a_missing_directive_from_default_src_and_drops_none() -> None:
    """A directive the policy lacks starts from default-src (extending never narrows), and
    'none' gives way to the added sources."""
    worker = parse_csp(SecurityHeaders.html().extend(worker_src=["blob:"]).csp_value(None).decode())  # type: ignore[union-attr]
    assert worker["worker-src"] == ["'self'", "blob:"]
    api = parse_csp(
        SecurityHeaders.api().extend(connect_src=["https://api.example"]).csp_value(None).decode()
    )  # type: ignore[union-attr]
    assert api["connect-src"] == ["https://api.example"]
    assert api["default-src"] == ["'none'"]
    framed = SecurityHeaders.html().extend(frame_ancestors=["https://partner.example"])
    assert parse_csp(framed.csp_value(None).decode())["frame-ancestors"] == [  # type: ignore[union-attr]
        "https://partner.example"
    ]


def test_replace_takes_options_and_directives() -> None:
    """replace() changes options by name and the sources of a directive by keyword."""
    policy = SecurityHeaders.html().replace(
        img_src=["'self'", "https://img.example"], hsts_preload=True
    )
    csp = parse_csp(policy.csp_value(None).decode())  # type: ignore[union-attr]
    assert csp["img-src"] == ["'self'", "https://img.example"]
    assert "{nonce}" in policy.csp_value(None).decode() or policy.csp_value("n").count(b"nonce-n")  # type: ignore[union-attr]
    assert policy.uses_nonce and policy.hsts_preload
    no_fonts = SecurityHeaders.html(font_src=None)
    assert "font-src" not in no_fonts.csp_value(None).decode()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("csp", "dropped"),
    [
        (
            {"script-src": ["'self'", "https://cdn.example"]},
            ["default-src", "object-src", "frame-ancestors", "nonce"],
        ),
        (
            {"default-src": ["'self'"], "script-src": ["'self'", NONCE]},
            ["object-src", "frame-ancestors"],
        ),
        ("default-src 'self'; object-src 'none'; script-src 'self'", ["frame-ancestors", "nonce"]),
        ({"default-src": ["'none'"]}, ["frame-ancestors"]),
    ],
)
def test_a_csp_that_drops_a_protection_needs_an_explicit_opt_out(
    csp: dict[str, list[str]] | str, dropped: list[str]
) -> None:
    """The old trap: html(csp={"script-src": [...]}) silently lost default-src, object-src,
    frame-ancestors and the nonce. Now it is refused, naming each, until opted out."""
    with pytest.raises(ValueError) as refused:
        SecurityHeaders.html(csp=csp)
    message = str(refused.value)
    for name in dropped:
        assert name in message
    assert "extend(" in message and "csp_allow_missing" in message
    policy = SecurityHeaders(csp=csp, csp_allow_missing=dropped)
    assert policy.csp_value("x") is not None


def test_removing_a_protected_directive_by_replace_needs_the_opt_out() -> None:
    """replace(frame_ancestors=None) is a drop like any other."""
    with pytest.raises(ValueError, match="frame-ancestors"):
        SecurityHeaders.html().replace(frame_ancestors=None)
    relaxed = SecurityHeaders.html().replace(
        frame_ancestors=None, csp_allow_missing=["frame-ancestors"]
    )
    assert "frame-ancestors" not in relaxed.csp_value(None).decode()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: SecurityHeaders.html().replace(hsts_maxage=5), TypeError, "hsts_maxage"),
        (
            lambda: SecurityHeaders.html().extend(script_src="https://x"),
            TypeError,
            "list of sources",
        ),
        (lambda: SecurityHeaders(csp=None).extend(img_src=["x"]), ValueError, "sends no CSP"),
        (
            lambda: SecurityHeaders.html().extend(script_src=["'self'; script-src *"]),
            ValueError,
            "one source per list item",
        ),
        (
            lambda: SecurityHeaders.html().extend(img_src=["https://x\r\nSet-Cookie: a=1"]),
            ValueError,
            "control character",
        ),
        (lambda: SecurityHeaders(csp_allow_missing=["nonse"]), ValueError, "csp_allow_missing"),
        (lambda: SecurityHeaders(csp_allow_missing="nonce"), ValueError, "csp_allow_missing"),  # type: ignore[arg-type]
        (lambda: SecurityHeaders.html().replace(csp={}, img_src=[]), TypeError, "not both"),
        (
            lambda: SecurityHeaders.html().override(
                "/x", SecurityHeaders.api(), frame_options=None
            ),
            TypeError,
            "not both",
        ),
    ],
)
def test_policy_helpers_refuse_typos_and_bad_values(
    call: object, error: type[Exception], message: str
) -> None:
    """A misspelt option is never taken for a CSP directive; bad values name the option."""
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]


def test_override_serves_one_route_with_a_changed_policy() -> None:
    """override() is a per-route policy: /custom may be framed by a partner, / stays strict."""
    policy = SecurityHeaders.html().override(
        "/custom", frame_options=None, frame_ancestors=["https://partner.example"]
    )
    client = starlette_client(policy)
    framed = client.get("/custom")
    assert "frame-ancestors https://partner.example" in framed.headers["content-security-policy"]
    assert framed.headers["x-frame-options"] == "SAMEORIGIN"  # the handler's own value
    strict = client.get("/")
    assert "frame-ancestors 'none'" in strict.headers["content-security-policy"]
    assert strict.headers["x-frame-options"] == "DENY"
    off = SecurityHeaders.html().override("/json", enabled=False)
    raw = starlette_client(off).get("/json")
    assert "content-security-policy" not in raw.headers and "x-frame-options" not in raw.headers


@pytest.mark.parametrize(
    ("environ", "present", "absent"),
    [
        ({}, ["content-security-policy", "strict-transport-security", "x-frame-options"], []),
        (
            {"SECURITY_HEADERS_ENABLED": "false"},
            [],
            ["content-security-policy", "strict-transport-security", "x-frame-options"],
        ),
        (
            {"CSP_ENABLED": "off"},
            ["strict-transport-security", "x-frame-options"],
            ["content-security-policy"],
        ),
        ({"HSTS_MAX_AGE": "0"}, ["content-security-policy"], ["strict-transport-security"]),
    ],
)
def test_from_env_reads_the_three_toggles(
    environ: dict[str, str], present: list[str], absent: list[str]
) -> None:
    """SECURITY_HEADERS_ENABLED, CSP_ENABLED and HSTS_MAX_AGE change the preset as documented."""
    response = starlette_client(SecurityHeaders.from_env(environ)).get("/")
    for name in present:
        assert name in response.headers
    for name in absent:
        assert name not in response.headers
    assert response.status_code == 200


def test_from_env_hsts_max_age_and_errors_name_the_variable() -> None:
    """HSTS_MAX_AGE sets max-age; bad values are ConfigErrors naming the variable."""
    from renderkit.errors import ConfigError

    policy = SecurityHeaders.from_env({"HSTS_MAX_AGE": "31536000"}, base=SecurityHeaders.api())
    assert policy.hsts_header == (
        b"strict-transport-security",
        b"max-age=31536000; includeSubDomains",
    )
    assert policy.csp_value(None) == b"default-src 'none'; frame-ancestors 'none'"
    for bad in ({"HSTS_MAX_AGE": "a year"}, {"HSTS_MAX_AGE": "-1"}, {"CSP_ENABLED": "sometimes"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            SecurityHeaders.from_env(bad)
    with pytest.raises(ConfigError, match="HSTS_MAX_AGE"):
        SecurityHeaders.from_env(
            {"HSTS_MAX_AGE": "60"}, base=SecurityHeaders.html(hsts_preload=True)
        )


def test_redirect_middleware_refuses_unknown_options() -> None:
    """A misspelt option is a TypeError naming it and the options there are."""
    with pytest.raises(TypeError, match=r"exempt_path.*it takes trust"):
        HTTPSRedirectMiddleware(page, exempt_path=["/x"])  # type: ignore[call-arg]


def test_proxy_trust_is_importable_from_public_modules() -> None:
    """ProxyTrust, needed to configure any trust, comes from renderkit.proxy and .security."""
    import renderkit.proxy
    import renderkit.security

    assert renderkit.proxy.ProxyTrust is renderkit.security.ProxyTrust is ProxyTrust
