"""RateLimitMiddleware (ASGI), RateLimit (FastAPI), limit (Starlette), keys, rules, bad input."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from renderkit._http import ProxyTrust
from renderkit.errors import ConfigError
from renderkit.ratelimit import (
    PROBLEM_TYPE,
    RateLimit,
    RateLimiter,
    RateLimitMiddleware,
    RateLimitPolicy,
    RequestInfo,
    Rule,
    api_key,
    client_ip_key,
    first_of,
    limit,
    session_user,
)


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _app(**options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", _ok),
            Route("/api/analyze", _ok, methods=["GET", "POST"]),
            Route("/health", _ok),
            Route("/health/ready", _ok),
            Route("/public/x", _ok),
        ]
    )
    limiter = options.pop("limiter", None) or RateLimiter(
        "memory://", default="2/minute", strategy="fixed-window"
    )
    app.add_middleware(RateLimitMiddleware, limiter=limiter, **options)
    return app


def _client(app: Any, peer: tuple[str, int] | None = ("203.0.113.9", 1234)) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_headers_then_429_with_retry_after_and_json_body() -> None:
    """Allowed responses carry RateLimit headers; the third request gets a JSON 429."""
    async with _client(_app()) as client:
        first = await client.get("/")
        second = await client.get("/")
        third = await client.get("/")
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"default";q=2;w=60'
    assert first.headers["ratelimit"].startswith('"default";r=1;t=')
    assert second.headers["ratelimit"].startswith('"default";r=0;t=')
    assert third.status_code == 429
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert third.headers["content-type"] == "application/problem+json"
    body = third.json()
    assert body["status"] == 429 and body["retry_after"] >= 1
    assert third.headers["ratelimit-policy"] == '"default";q=2;w=60'
    assert "x-ratelimit-limit" not in third.headers


async def test_problem_json_and_legacy_headers() -> None:
    """problem_json answers with the quota-exceeded type; legacy_headers adds X-RateLimit-*."""
    async with _client(_app(problem_json=True, legacy_headers=True)) as client:
        ok = await client.get("/")
        await client.get("/")
        refused = await client.get("/")
    assert ok.headers["x-ratelimit-limit"] == "2"
    assert ok.headers["x-ratelimit-remaining"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == PROBLEM_TYPE
    assert refused.json()["status"] == 429


async def test_health_paths_are_always_exempt_and_extra_exempt_paths() -> None:
    """/health and /health/* are never limited, nor configured exempt paths."""
    async with _client(_app(exempt_paths=["/public/*"])) as client:
        for _ in range(5):
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/health/ready")).status_code == 200
            response = await client.get("/public/x")
            assert response.status_code == 200
            assert "ratelimit" not in response.headers


async def test_rules_with_methods_and_tiers() -> None:
    """A POST rule has its own per-tier quota; GET falls back to the tier default."""
    limiter = RateLimiter("memory://", default="50/minute", strategy="fixed-window")

    def tier(request: RequestInfo) -> str | None:
        return "pro" if request.header("x-plan") == "pro" else None

    app = _app(
        limiter=limiter,
        tiers={"free": "3/hour", "pro": "100/hour"},
        tier=tier,
        rules=[Rule("/api/analyze", {"free": "1/day", "pro": "10/day"}, methods=["POST"],
                    name="analyses")],
    )  # fmt: skip
    async with _client(app) as client:
        free_post = await client.post("/api/analyze")
        free_post_2 = await client.post("/api/analyze")
        pro_post = await client.post("/api/analyze", headers={"x-plan": "pro"})
        free_get = await client.get("/api/analyze")
    assert free_post.status_code == 200
    assert free_post.headers["ratelimit-policy"] == '"analyses";q=1;w=86400'
    assert free_post_2.status_code == 429
    # The pro client shares the IP but has its own tier quota for the rule.
    assert pro_post.headers["ratelimit-policy"] == '"analyses";q=10;w=86400'
    assert free_get.headers["ratelimit-policy"] == '"free";q=3;w=3600'


async def test_exempt_keys_are_not_counted() -> None:
    """An allow-listed address is never limited and gets no headers."""
    async with _client(_app(exempt_keys=["203.0.113.9"])) as client:
        responses = [await client.get("/") for _ in range(5)]
    assert all(r.status_code == 200 and "ratelimit" not in r.headers for r in responses)


async def test_websocket_and_lifespan_scopes_pass_through() -> None:
    """Non-HTTP scopes reach the app untouched."""
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = RateLimitMiddleware(inner, limiter=RateLimiter("memory://", default="1/hour"))
    for kind in ("websocket", "lifespan", "websocket"):
        await middleware({"type": kind, "path": "/"}, None, None)  # type: ignore[arg-type]
    assert seen == ["websocket", "lifespan", "websocket"]


async def test_fail_closed_answers_503_never_500() -> None:
    """A dead Redis with fail_open=False answers 503 with Retry-After."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    limiter = RateLimiter(f"redis://127.0.0.1:{port}/0", fail_open=False, timeout=0.05)
    async with _client(_app(limiter=limiter)) as client:
        response = await client.get("/")
        health = await client.get("/health")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["status"] == 503
    assert health.status_code == 200


async def test_fail_open_serves_from_memory_with_headers() -> None:
    """A dead Redis with the default fail-open keeps limiting from memory."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    limiter = RateLimiter(f"redis://127.0.0.1:{port}/0", default="2/minute", timeout=0.05)
    async with _client(_app(limiter=limiter)) as client:
        codes = [(await client.get("/")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


# --- keys and bad input ------------------------------------------------------------------


def _info(peer: str | None, *headers: tuple[str, str], session: Any = None) -> RequestInfo:
    pairs = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers]
    return RequestInfo("GET", "/", pairs, peer, session)


RENDER = client_ip_key(ProxyTrust.render())


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        # Render: "client, cloudflare edge" from a private 10.x peer -> the client.
        ("10.1.2.3", "198.51.100.7, 172.70.1.1", "ip:198.51.100.7"),
        # Render as observed in arcjet/arcjet-js#5411: "client, edge, own 10.x hop".
        ("10.1.2.3", "198.51.100.7, 172.70.247.28, 10.19.6.53", "ip:198.51.100.7"),
        ("10.1.2.3", "2.2.2.2,198.51.100.7, 172.71.95.118, 10.19.64.237", "ip:198.51.100.7"),
        # A forged left-most entry is ignored.
        ("10.1.2.3", "1.1.1.1, 198.51.100.7, 172.70.1.1", "ip:198.51.100.7"),
        ("10.1.2.3", "evil, garbage, 198.51.100.7, 172.70.1.1", "ip:198.51.100.7"),
        # Garbage where the client should be: the nearest valid entry to its right.
        ("10.1.2.3", "not-an-ip, 172.70.1.1", "ip:172.70.1.1"),
        # A public peer is not Render's proxy: its headers count for nothing.
        ("203.0.113.5", "198.51.100.7, 172.70.1.1", "ip:203.0.113.5"),
        # IPv6 clients are keyed by /64; brackets and ports are understood.
        ("10.1.2.3", "[2001:db8:1:2:3:4:5:6]:443, 172.70.1.1", "ip:2001:db8:1:2::/64"),
        ("10.1.2.3", "::ffff:198.51.100.7, 172.70.1.1", "ip:198.51.100.7"),
        # No header at all: the peer.
        ("10.1.2.3", "", "ip:10.1.2.3"),
    ],
)
def test_render_client_ip_key(peer: str, xff: str, expected: str) -> None:
    """The Render preset keys on the right hop, never on a forgeable left-most value."""
    headers = [("X-Forwarded-For", xff)] if xff else []
    assert RENDER(_info(peer, *headers)) == expected


def test_default_key_ignores_forwarded_headers() -> None:
    """Without trusted proxies a spoofed X-Forwarded-For changes nothing."""
    key = client_ip_key()
    assert key(_info("203.0.113.9", ("X-Forwarded-For", "1.2.3.4"))) == "ip:203.0.113.9"


def test_unix_socket_and_huge_headers_give_stable_keys() -> None:
    """No peer gives ip:unknown; a 100 kB header is bounded; keys stay short."""
    key = client_ip_key(ProxyTrust.render())
    assert key(_info(None)) == "ip:unknown"
    huge = ", ".join(["1.2.3.4"] * 20000)
    assert key(_info("10.0.0.1", ("X-Forwarded-For", huge))) == "ip:1.2.3.4"
    api = api_key()
    long_key = api(_info("10.0.0.1", ("X-API-Key", "k" * 100_000)))
    assert long_key is not None and len(long_key) < 64


async def test_unix_socket_request_is_limited_not_crashed() -> None:
    """scope['client'] is None (unix socket): the request is keyed 'unknown' and limited."""
    async with _client(_app(), peer=None) as client:
        codes = [(await client.get("/")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_api_key_and_user_keys_with_fallback() -> None:
    """API keys are hashed; session users keyed; first_of falls through to the IP."""
    key = first_of(api_key(), session_user())
    by_key = key(_info("1.2.3.4", ("X-API-Key", "secret-token")))
    assert by_key is not None and by_key.startswith("key:") and "secret-token" not in by_key
    assert key(_info("1.2.3.4", session={"user_id": 42})) == "user:42"
    assert key(_info("1.2.3.4")) is None
    bearer = api_key("Authorization", prefix="Bearer ")
    assert bearer(_info("1.2.3.4", ("Authorization", "Basic x"))) is None


async def test_key_function_returning_none_falls_back_to_ip() -> None:
    """Anonymous requests (no API key) are counted by client IP, not in one shared bucket."""
    app = _app(key=api_key())
    async with (
        _client(app, peer=("198.51.100.1", 1)) as one,
        _client(app, peer=("198.51.100.2", 1)) as two,
    ):
        codes_one = [(await one.get("/")).status_code for _ in range(3)]
        codes_two = [(await two.get("/")).status_code for _ in range(2)]
    assert codes_one == [200, 200, 429]
    assert codes_two == [200, 200]


async def test_warns_once_when_every_request_comes_from_one_private_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Behind an untrusted proxy all requests share one private address: warn once."""
    limiter = RateLimiter("memory://", default="1000/minute")
    with caplog.at_level(logging.WARNING, "renderkit.ratelimit"):
        async with _client(_app(limiter=limiter), peer=("10.0.0.7", 1)) as client:
            for _ in range(120):
                await client.get("/")
    warnings = [r for r in caplog.records if "same private address" in r.getMessage()]
    assert len(warnings) == 1
    assert "ProxyTrust.render()" in warnings[0].getMessage()


def test_bad_rule_limits_fail_at_construction() -> None:
    """Every bad limit in tiers and rules is reported when the policy is built."""
    limiter = RateLimiter("memory://")
    with pytest.raises(ConfigError) as info:
        RateLimitPolicy(limiter, tiers={"free": "lots", "pro": "x"})
    assert [p.variable for p in info.value.errors] == ["tiers['free']", "tiers['pro']"]
    with pytest.raises(ConfigError) as info:
        Rule("/x", "1/fortnight")
    assert [p.variable for p in info.value.errors] == ["Rule('/x').limit"]
    with pytest.raises(ConfigError) as info:
        Rule("/y", {"pro": "x"})
    assert [p.variable for p in info.value.errors] == ["Rule('/y').limit['pro']"]


def test_middleware_requires_a_limiter() -> None:
    """A missing or wrong limiter is a clear TypeError at start-up."""
    with pytest.raises(TypeError, match="limiter=RateLimiter"):
        RateLimitMiddleware(_ok)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RateLimiter"):
        RateLimitPolicy("memory://")  # type: ignore[arg-type]


# --- FastAPI dependency and Starlette decorator ------------------------------------------


async def test_fastapi_dependency() -> None:
    """Depends(RateLimit(...)) adds headers and raises 429 with Retry-After."""
    from fastapi import Depends, FastAPI

    limiter = RateLimiter("memory://", strategy="fixed-window")
    app = FastAPI()

    @app.get("/items", dependencies=[Depends(RateLimit("1/minute", limiter=limiter))])
    async def items() -> dict[str, str]:
        return {"ok": "yes"}

    async with _client(app) as client:
        first = await client.get("/items")
        second = await client.get("/items")
    assert first.status_code == 200
    assert first.headers["ratelimit"].startswith('"1/minute";r=0;t=')
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    assert "ratelimit-policy" in second.headers


async def test_starlette_route_decorator() -> None:
    """@limit on a Starlette endpoint counts that route only."""
    limiter = RateLimiter("memory://", strategy="fixed-window")

    @limit("1/minute", limiter=limiter, problem_json=True)
    async def limited(request: Request) -> PlainTextResponse:
        return PlainTextResponse("limited")

    app = Starlette(routes=[Route("/limited", limited), Route("/free", _ok)])
    async with _client(app) as client:
        first = await client.get("/limited")
        second = await client.get("/limited")
        free = [await client.get("/free") for _ in range(3)]
    assert first.status_code == 200 and "ratelimit" in first.headers
    assert second.status_code == 429
    assert json.loads(second.content)["type"] == PROBLEM_TYPE
    assert all(r.status_code == 200 and "ratelimit" not in r.headers for r in free)
