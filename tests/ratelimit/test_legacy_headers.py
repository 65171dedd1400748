"""Legacy ``X-RateLimit-*`` headers stand once per response, for the limit that speaks.

slowapi and flask-limiter send one ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` trio
(clients parse each as one integer); the structured ``RateLimit`` pairs stay one per limit.
"""

from __future__ import annotations

import time

from renderkit.ratelimit import (
    RateLimiter,
    RateLimitPolicy,
    RequestInfo,
    RouteLimit,
    rate_limit_headers,
)

TIGHT = RouteLimit("2/minute")
ROOMY = RouteLimit("10/minute")


def _policy(legacy: bool = True) -> RateLimitPolicy:
    return RateLimitPolicy(RateLimiter("memory://"), default=None, legacy_headers=legacy)


def _info(peer: str = "198.51.100.20") -> RequestInfo:
    return RequestInfo("GET", "/export", [], peer, route="/export", limits=(ROOMY, TIGHT))


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


def test_stacked_limits_send_one_legacy_trio_for_the_tightest() -> None:
    verdict = _policy().decide(_info())
    assert verdict.allowed
    assert _values(verdict.headers, b"x-ratelimit-limit") == [b"2"]
    assert _values(verdict.headers, b"x-ratelimit-remaining") == [b"1"]
    (reset,) = _values(verdict.headers, b"x-ratelimit-reset")  # one value, not a list
    now = int(time.time())
    assert now + 1 <= int(reset) <= now + 61  # the Unix time the 2/minute window resets at
    assert len(_values(verdict.headers, b"ratelimit")) == 2  # one structured pair per limit
    assert len(_values(verdict.headers, b"ratelimit-policy")) == 2


def test_a_refusal_sends_the_trio_of_the_limit_that_refused() -> None:
    policy = _policy()
    info = _info("198.51.100.21")
    assert [policy.decide(info).allowed for _ in range(3)] == [True, True, False]
    refused = policy.decide(info)
    assert refused.status == 429
    assert _values(refused.headers, b"x-ratelimit-limit") == [b"2"]
    assert _values(refused.headers, b"x-ratelimit-remaining") == [b"0"]
    assert len(_values(refused.headers, b"retry-after")) == 1
    assert len(_values(refused.headers, b"ratelimit")) == 2


def test_no_legacy_trio_unless_asked() -> None:
    verdict = _policy(legacy=False).decide(_info("198.51.100.22"))
    assert not [key for key, _ in verdict.headers if key.startswith(b"x-ratelimit")]
    assert len(_values(verdict.headers, b"ratelimit")) == 2


def test_one_result_with_legacy_keeps_its_own_trio() -> None:
    result = RateLimiter("memory://").hit("one-result", "5/minute")
    headers = rate_limit_headers(result, legacy=True)
    assert _values(headers, b"x-ratelimit-limit") == [b"5"]
    assert _values(headers, b"x-ratelimit-remaining") == [b"4"]
