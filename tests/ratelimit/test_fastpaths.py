"""The cheap per-request paths give the same answers as the general ones they short-cut."""

from __future__ import annotations

from typing import Any

import pytest
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from renderkit._asgi import Message
from renderkit._http import ProxyTrust
from renderkit.ratelimit import (
    RateLimiter,
    RateLimitMiddleware,
    RateLimitPolicy,
    RateLimitResult,
    RequestInfo,
    Rule,
    _rules,
    client_ip_key,
    rate_limit_headers,
)
from renderkit.ratelimit._keys import ip_key


def _info(method: str, path: str, peer: str | None, xff: str | None = None) -> RequestInfo:
    headers = [(b"x-forwarded-for", xff.encode("latin-1"))] if xff is not None else []
    return RequestInfo(method, path, headers, peer)


REQUESTS = [
    _info("GET", "/", "203.0.113.9"),
    _info("get", "/api/analyze", "203.0.113.9"),
    _info("POST", "/api/analyze", "203.0.113.9"),
    _info("POST", "/api/analyze/deep", "10.1.2.3", "1.1.1.1, 198.51.100.7, 172.70.1.1"),
    _info("PUT", "/files/a/b", "10.1.2.3", "[2001:db8:1:2:3:4:5:6]:443, 172.70.1.1"),
    _info("GET", "/health/ready", "203.0.113.9"),
    _info("GET", "/public/x", "203.0.113.9"),
    _info("GET", "/", "10.1.2.3", "garbage, 172.70.1.1"),
    _info("GET", "/", None),
    _info("GET", "/", "192.0.2.1"),  # an exempt key
    _info("DELETE", "/other", "10.1.2.3", ", , "),
    _info("GET", "/free", "203.0.113.9"),  # a rule with no quota for this tier
]


def _policies(limit_unmatched: bool) -> tuple[RateLimitPolicy, RateLimitPolicy]:
    """The same policy twice: client-IP keys (the fast path) and an equivalent key function."""
    trust = ProxyTrust.render()
    options: dict[str, Any] = {
        "rules": [
            Rule("/api/analyze", "5/day", methods=["POST"], name="analyses"),
            Rule(["/api/*", "/files/*"], "20/minute", cost=2),
            Rule("/free", {"pro": "9/minute"}),
        ],
        "exempt_paths": ["/public/*"],
        "exempt_keys": ["192.0.2.1"],
        "limit_unmatched": limit_unmatched,
        "tiers": {"free": "7/minute"},
    }
    limiter = RateLimiter("memory://", default="50/minute", strategy="fixed-window")
    fast = RateLimitPolicy(limiter, trust=trust, **options)
    ip = client_ip_key(trust)
    slow = RateLimitPolicy(limiter, key=lambda request: ip(request), **options)
    return fast, slow


@pytest.mark.parametrize("limit_unmatched", [True, False])
def test_ip_only_policy_decides_like_the_general_path(limit_unmatched: bool) -> None:
    """Same key, quota, cost and name with and without the RequestInfo-free path."""
    fast, slow = _policies(limit_unmatched)
    assert fast._ip_only and not slow._ip_only
    for request in REQUESTS * 2:  # twice: the second round answers from the route memo
        expected = slow.check_for(request)
        got = fast.check_for(request)
        direct = fast._check_ip(request.method, request.path, request.peer, request.headers)
        assert got == expected == direct, request
    assert fast.check_for(REQUESTS[2]) is not None
    assert fast.check_for(REQUESTS[2]).name == "analyses"  # type: ignore[union-attr]


def test_route_memo_stays_bounded_and_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many distinct paths (ids in URLs) never grow the memo past its bound."""
    monkeypatch.setattr(_rules, "_RULE_CACHE_SIZE", 8)
    fast, _slow = _policies(True)
    for n in range(50):
        check = fast._check_ip("PUT", f"/files/{n}", "203.0.113.9", [])
        assert check is not None and check.cost == 2
        assert len(fast._rule_cache) <= 8
    assert fast._check_ip("GET", "/elsewhere", "203.0.113.9", []).name == "default"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.9", "ip:203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "ip:2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "ip:198.51.100.7"),
        ("unknown", "ip:unknown"),
        ("", "ip:unknown"),
        ("x" * 500, None),
        ("bad\x00value", None),
    ],
)
def test_ip_key_memo_gives_stable_bounded_keys(address: str, expected: str | None) -> None:
    """Memoised or not, an address maps to the same short printable key."""
    first, second = ip_key(address), ip_key(address)
    assert first == second
    if expected is not None:
        assert first == expected
    else:
        assert first.startswith("ip:sha256:") and len(first) < 64
    assert ip_key.cache_info().maxsize == 4096


def test_memory_sliding_window_matches_limits_own_strategy() -> None:
    """The memory sliding-window check reports what limits' hit() + get_window_stats() do."""
    limiter = RateLimiter("memory://", default="5/minute")
    theirs = SlidingWindowCounterRateLimiter(MemoryStorage())
    item = parse("5/minute")
    for cost in (1, 2, 1, 1, 3, 1):
        ours = limiter.hit("client", cost=cost)
        allowed = theirs.hit(item, "client", cost=cost)
        stats = theirs.get_window_stats(item, "client")
        assert ours.allowed == allowed
        assert ours.remaining == max(0, stats.remaining)
        assert ours.limit == 5 and ours.window == 60
        assert 0 <= ours.reset_after <= 120


def test_rate_limit_headers_from_the_cached_policy_value() -> None:
    """The policy value is built once per quota; remaining and reset stay per request."""
    result = RateLimitResult(True, 10, 4, 12.2, window=60, policy="10-per-60s")
    again = RateLimitResult(True, 10, 3, 0.0, window=60, policy="10-per-60s")
    assert rate_limit_headers(result, name='api "v1";x') == [
        (b"ratelimit-policy", b'"api -v1--x";q=10;w=60'),
        (b"ratelimit", b'"api -v1--x";r=4;t=13'),
    ]
    assert rate_limit_headers(again)[1] == (b"ratelimit", b'"10-per-60s";r=3;t=0')
    negative = RateLimitResult(True, 10, 3, -5.0, window=60)
    assert rate_limit_headers(negative, legacy=True)[-1] == (b"x-ratelimit-reset", b"0")


@pytest.mark.parametrize("app_headers", [None, [], [(b"content-type", b"text/plain")]])
async def test_headers_are_added_whatever_the_app_sent(app_headers: Any) -> None:
    """The RateLimit headers follow the app's own (or stand alone when it sent none)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        start: Message = {"type": "http.response.start", "status": 200}
        if app_headers is not None:
            start["headers"] = list(app_headers)
        await send(start)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    limiter = RateLimiter("memory://", default="3/minute", strategy="fixed-window")
    middleware = RateLimitMiddleware(app, limiter=limiter)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": None}
    await middleware(scope, receive, send)
    names = [name for name, _ in sent[0]["headers"]]
    assert names[: len(app_headers or [])] == [name for name, _ in app_headers or []]
    assert names[-2:] == [b"ratelimit-policy", b"ratelimit"]
    assert dict(sent[0]["headers"])[b"ratelimit"].startswith(b'"default";r=2;t=')
