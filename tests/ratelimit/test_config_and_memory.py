"""Configuration that exists, a bounded memory store, and a Redis timeout that measures Redis."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from renderkit.config import ConfigError
from renderkit.ratelimit import (
    Charge,
    MemoryCounts,
    RateLimiter,
    RateLimitPolicy,
    RateLimitSettings,
    RequestInfo,
    Rule,
)
from renderkit.ratelimit._deadline import answered


def test_kirby_gen_variables_become_the_default_limit() -> None:
    """RATE_LIMIT_MAX_REQUESTS per RATE_LIMIT_WINDOW_MS (express-rate-limit's names)."""
    limiter = RateLimiter.from_env(
        {"RATE_LIMIT_WINDOW_MS": "60000", "RATE_LIMIT_MAX_REQUESTS": "100"}
    )
    assert [(i.amount, i.get_expiry()) for i in limiter.default] == [(100, 60)]
    odd = RateLimiter.from_env({"RATE_LIMIT_WINDOW_MS": "1500", "RATE_LIMIT_MAX_REQUESTS": "3"})
    assert [(i.amount, i.get_expiry()) for i in odd.default] == [(3, 2)]  # rounded up
    explicit = RateLimiter.from_env(
        {"RATELIMIT_DEFAULT": "5/minute", "RATE_LIMIT_MAX_REQUESTS": "100"}
    )
    assert [(i.amount, i.get_expiry()) for i in explicit.default] == [(5, 60)]


def test_bad_variables_are_reported_together() -> None:
    """Every bad variable at once, named, no secret echoed."""
    with pytest.raises(ConfigError) as info:
        RateLimiter.from_env(
            {
                "RATELIMIT_DEFAULT": "lots",
                "RATE_LIMIT_MAX_REQUESTS": "0",
                "RATE_LIMIT_WINDOW_MS": "soon",
                "RATELIMIT_MEMORY_MAX_KEYS": "-3",
                "REDIS_URL": "redis://:hunter2@cache:99999/0",
            }
        )
    names = {p.variable for p in info.value.errors}
    assert {
        "RATELIMIT_DEFAULT",
        "RATE_LIMIT_MAX_REQUESTS",
        "RATE_LIMIT_WINDOW_MS",
        "RATELIMIT_MEMORY_MAX_KEYS",
    } <= names
    assert "hunter2" not in str(info.value)


def test_trusted_hops_and_cidrs_are_read() -> None:
    """RATELIMIT_TRUSTED_HOPS / RATELIMIT_TRUSTED_CIDRS configure the default client-IP key."""
    limiter = RateLimiter("memory://")
    environ = {"RATELIMIT_TRUSTED_HOPS": "2", "RATELIMIT_TRUSTED_CIDRS": "10.0.0.0/8"}
    policy = RateLimitPolicy(limiter, environ=environ)
    headers = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.5, 172.70.1.1")]
    behind = RequestInfo("GET", "/", headers, "10.1.2.3")
    assert policy.key(behind) == "ip:203.0.113.5"
    outsider = RequestInfo("GET", "/", headers, "198.51.100.9")  # not a trusted proxy
    assert policy.key(outsider) == "ip:198.51.100.9"
    with pytest.raises(ConfigError) as info:
        RateLimitPolicy(limiter, environ={"RATELIMIT_TRUSTED_CIDRS": "10.0.0.0/99"})
    assert info.value.errors[0].variable == "RATELIMIT_TRUSTED_CIDRS"


def test_forged_forwarded_for_never_picks_the_key() -> None:
    """Without trust, X-Forwarded-For is ignored: a client cannot pick its own quota."""
    limiter = RateLimiter("memory://", default="1/minute")
    policy = RateLimitPolicy(limiter, environ={})
    for forged in (b"1.1.1.1", b"2.2.2.2", b"3.3.3.3, 4.4.4.4"):
        verdict = policy.decide(
            RequestInfo("GET", "/", [(b"x-forwarded-for", forged)], "203.0.113.7")
        )
        assert verdict.allowed is (forged == b"1.1.1.1")


def test_loopback_peer_gets_no_proxy_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Fifty requests from 127.0.0.1 (a local run) log nothing; from 10.x they warn once."""
    with caplog.at_level(logging.WARNING, "renderkit.ratelimit"):
        for peer in ("127.0.0.1", "10.0.0.2"):
            policy = RateLimitPolicy(RateLimiter("memory://", default="1000/minute"), environ={})
            for _ in range(60):
                policy.decide(RequestInfo("GET", "/", [], peer))
    warnings = [r.getMessage() for r in caplog.records if "private address" in r.getMessage()]
    assert len(warnings) == 1 and "10.0.0.2" in warnings[0]
    assert "RATELIMIT_TRUSTED_HOPS" in warnings[0]


def test_settings_declare_what_from_env_reads() -> None:
    """Every variable from_env reads is declared (docs/environment.md lists them)."""
    variables = {info.variable for info in RateLimitSettings.describe()}
    assert {"RATELIMIT_DEFAULT", "RATE_LIMIT_WINDOW_MS", "RATE_LIMIT_MAX_REQUESTS"} <= variables


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter", "moving-window"])
def test_memory_counts_stay_under_the_cap(strategy: str) -> None:
    """A spray of distinct clients never holds more than max_keys counters."""
    counts = MemoryCounts(strategy, max_keys=1000)  # type: ignore[arg-type]
    for n in range(5000):
        counts.acquire([Charge(f"ip:{n}", 5, 60)], now=1000.0)
    assert len(counts) == 1000
    assert counts.evicted == 4000
    # The newest clients are the ones kept, and they still count.
    assert [counts.acquire([Charge("ip:4999", 5, 60)], now=1000.5)[0] for _ in range(5)] == [
        True,
        True,
        True,
        True,
        False,
    ]


def test_memory_counts_expire_by_bucket() -> None:
    """Expired counters go within a second of expiring, without a timer walking every key."""
    counts = MemoryCounts("fixed-window")
    for n in range(100):
        counts.acquire([Charge(f"k{n}", 5, 10)], now=1000.0)
    assert len(counts) == 100
    counts.acquire([Charge("late", 5, 10)], now=1011.0)
    assert len(counts) == 1 and counts.expired == 100


def test_memory_fixed_window_starts_at_the_first_hit() -> None:
    """A burst that straddles a clock boundary gets one quota, not two."""
    counts = MemoryCounts("fixed-window")
    charge = [Charge("k", 3, 60)]
    answers = [counts.acquire(charge, now=1019.5 + i / 10)[0] for i in range(10)]  # 1019.5-1020.4
    assert answers.count(True) == 3


def test_sliding_window_burst_over_the_boundary_gets_no_extra() -> None:
    """Sliding window: just after a full window ends, the previous count still weighs fully."""
    counts = MemoryCounts("sliding-window-counter")
    charge = [Charge("k", 3, 60)]
    first = [counts.acquire(charge, now=1019.9)[0] for _ in range(3)]
    after = [counts.acquire(charge, now=1020.05)[0] for _ in range(3)]
    assert first == [True] * 3 and after == [False] * 3


def test_fallback_shares_each_limit_among_processes() -> None:
    """Redis down, processes=4: each process allows limit // 4 from memory (bounded overshoot)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    limiter = RateLimiter(
        f"redis://127.0.0.1:{port}/0", default="20/minute", timeout=0.05, processes=4,
        recovery_timeout=60,
    )  # fmt: skip
    results = [limiter.hit("k") for _ in range(8)]
    assert [r.allowed for r in results] == [True] * 5 + [False] * 3
    assert all(r.fallback for r in results) and results[0].limit == 5
    limiter.close()


async def test_busy_event_loop_does_not_count_as_a_redis_timeout() -> None:
    """A reply that waits behind a blocked loop is an answer, not a timeout."""

    async def reply_soon() -> str:
        await asyncio.sleep(0.01)
        return "ok"

    async def block() -> None:
        await asyncio.sleep(0)
        time.sleep(0.2)  # the loop is stuck past the 50 ms deadline

    blocker = asyncio.create_task(block())
    assert await answered(reply_soon(), 0.05) == "ok"
    await blocker


async def test_a_server_that_never_answers_times_out() -> None:
    """An idle loop and no reply: TimeoutError (the 10 s reply would return None)."""
    with pytest.raises(TimeoutError):
        await answered(asyncio.sleep(10), 0.05)


def test_misspelt_tier_names_fail_at_start_up() -> None:
    """A rule or default_tier naming a tier that does not exist is a ConfigError naming it."""
    limiter = RateLimiter("memory://")
    with pytest.raises(ConfigError) as info:
        RateLimitPolicy(
            limiter,
            tiers={"free": "10/hour", "pro": "100/hour"},
            tier=lambda request: "free",
            default_tier="gold",
            rules=[Rule("/x", {"free": "1/minute", "prO": "5/minute"})],
            environ={},
        )
    assert [p.variable for p in info.value.errors] == ["Rule('/x').limit['prO']", "default_tier"]
