"""RateLimiter: strategies, results, config errors, env, fail-open and fail-closed, fakeredis."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from renderkit.errors import ConfigError
from renderkit.ratelimit import RateLimiter, RateLimitResult, limit, parse_limits

STRATEGIES = ["fixed-window", "moving-window", "sliding-window-counter"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_hit_counts_down_then_refuses(strategy: str) -> None:
    """Each strategy allows exactly the limit, then refuses with a positive reset."""
    limiter = RateLimiter("memory://", default="3/minute", strategy=strategy)
    results = [limiter.hit("k") for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert all(r.limit == 3 and r.window == 60 for r in results)
    assert 0 < results[-1].reset_after <= 60
    assert results[-1].retry_after >= 1


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_async_hit_shares_memory_counts(strategy: str) -> None:
    """ahit and hit count against the same memory storage."""
    limiter = RateLimiter("memory://", default="2/minute", strategy=strategy)
    assert limiter.hit("k").allowed
    assert (await limiter.ahit("k")).allowed
    assert not (await limiter.ahit("k")).allowed
    assert not (await limiter.apeek("k")).allowed


def test_peek_does_not_consume() -> None:
    """peek reports the quota without spending it."""
    limiter = RateLimiter("memory://", default="2/minute", strategy="fixed-window")
    for _ in range(5):
        assert limiter.peek("k").remaining == 2
    assert limiter.hit("k").remaining == 1


def test_keys_are_independent_and_cost_counts() -> None:
    """Different keys have separate quotas; cost consumes several units."""
    limiter = RateLimiter("memory://", default="5/minute", strategy="fixed-window")
    assert limiter.hit("a", cost=5).remaining == 0
    assert not limiter.hit("a").allowed
    assert limiter.hit("b").remaining == 4
    with pytest.raises(ValueError, match="cost"):
        limiter.hit("a", cost=0)


def test_several_limits_report_the_most_restrictive() -> None:
    """With '10/minute;2/hour' the hourly quota decides and is the one reported."""
    limiter = RateLimiter("memory://", default="10/minute;2/hour", strategy="fixed-window")
    first = limiter.hit("k")
    assert (first.limit, first.remaining, first.window) == (2, 1, 3600)
    limiter.hit("k")
    third = limiter.hit("k")
    assert not third.allowed and third.limit == 2


def test_limit_override_per_call() -> None:
    """hit(limit=...) replaces the default for that call."""
    limiter = RateLimiter("memory://", default="1/minute")
    assert limiter.hit("k", limit="5/minute").remaining == 4


def test_reset_forgets_counts() -> None:
    """reset() gives the key its full quota back."""
    limiter = RateLimiter("memory://", default="1/minute")
    limiter.hit("k")
    assert not limiter.hit("k").allowed
    limiter.reset("k")
    assert limiter.hit("k").allowed


def test_result_is_frozen() -> None:
    """RateLimitResult is immutable."""
    result = RateLimitResult(True, 10, 9, 1.0)
    with pytest.raises(AttributeError):
        result.allowed = False  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad", ["", "abc", "10/fortnight", "ten per minute", "0/minute", "/minute", "10//hour"]
)
def test_invalid_limit_strings_fail_at_construction(bad: str) -> None:
    """A bad default is a ConfigError when the limiter is built, naming the option."""
    with pytest.raises(ConfigError) as info:
        RateLimiter("memory://", default=bad)
    assert info.value.errors[0].variable == "default"


def test_a_function_or_a_number_as_a_limit_is_a_named_config_error() -> None:
    """slowapi and flask-limiter take a function returning the limit; renderkit names the
    argument and points to tiers (it was a bare TypeError from inside the parser)."""
    limiter = RateLimiter("memory://")
    with pytest.raises(ConfigError) as info:
        limit(lambda key: "5/minute", limiter=limiter)
    assert info.value.errors[0].variable == "limit"
    assert "tier" in str(info.value)
    with pytest.raises(ConfigError) as info:
        RateLimiter("memory://", default=lambda: "1/second")  # type: ignore[arg-type]
    assert info.value.errors[0].variable == "default"
    with pytest.raises(ConfigError, match="not int"):
        limit(5, limiter=limiter)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        limit({"free": lambda: "1/second"}, limiter=limiter)  # type: ignore[dict-item]
    assert info.value.errors[0].variable == "limit['free']"


def test_every_construction_problem_is_listed_at_once() -> None:
    """Storage, strategy, default and timeout problems arrive together."""
    with pytest.raises(ConfigError) as info:
        RateLimiter("mysql://x", default="x", strategy="leaky", timeout=0)
    assert {p.variable for p in info.value.errors} == {"storage", "strategy", "default", "timeout"}


def test_parse_limits_accepts_lists_and_semicolons() -> None:
    """parse_limits understands '1/second;5 per minute' and lists of strings."""
    assert [i.amount for i in parse_limits("1/second;5 per minute")] == [1, 5]
    assert [i.amount for i in parse_limits(["1/second", "7/day"])] == [1, 7]


def test_from_env_reads_documented_variables() -> None:
    """from_env builds the limiter from RATELIMIT_* variables."""
    limiter = RateLimiter.from_env(
        {
            "RATELIMIT_DEFAULT": "7/minute",
            "RATELIMIT_STRATEGY": "fixed_window",
            "RATELIMIT_FAIL_OPEN": "false",
            "RATELIMIT_TIMEOUT": "250ms",
        }
    )
    assert limiter.strategy == "fixed-window"
    assert limiter.fail_open is False
    assert limiter.timeout == 0.25
    assert limiter.hit("k").limit == 7
    assert limiter.stats()["storage"] == "memory"


def test_from_env_reports_every_bad_variable_without_echoing_urls() -> None:
    """Bad RATELIMIT_* values are all listed; the storage URL's value is masked."""
    with pytest.raises(ConfigError) as info:
        RateLimiter.from_env(
            {
                "RATELIMIT_STORAGE_URL": "postgres://user:hunter2@db/x",
                "RATELIMIT_DEFAULT": "lots",
                "RATELIMIT_STRATEGY": "token-bucket",
                "RATELIMIT_FAIL_OPEN": "maybe",
                "RATELIMIT_TIMEOUT": "-1s",
            }
        )
    names = {p.variable for p in info.value.errors}
    assert names == {
        "RATELIMIT_STORAGE_URL",
        "RATELIMIT_DEFAULT",
        "RATELIMIT_STRATEGY",
        "RATELIMIT_FAIL_OPEN",
        "RATELIMIT_TIMEOUT",
    }
    assert "hunter2" not in str(info.value)


def test_from_env_uses_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """REDIS_URL selects Redis storage when RATELIMIT_STORAGE_URL is unset."""
    limiter = RateLimiter.from_env({"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert limiter.stats()["storage"] == "redis"


def test_memory_under_several_workers_warns(caplog: pytest.LogCaptureFixture) -> None:
    """memory:// with WEB_CONCURRENCY > 1 logs that each process counts alone."""
    with caplog.at_level(logging.WARNING, "renderkit.ratelimit"):
        RateLimiter("memory://", environ={"WEB_CONCURRENCY": "4"})
        RateLimiter("memory://", environ={"RATELIMIT_PROCESSES": "3"})
        RateLimiter("memory://", environ={"WEB_CONCURRENCY": "1"})
    warnings = [r.getMessage() for r in caplog.records if "processes" in r.getMessage()]
    assert len(warnings) == 2
    assert "under 4 processes" in warnings[0]


def test_fail_open_to_memory_when_redis_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    """A dead Redis costs little, logs once, answers from memory and reports degraded."""
    limiter = RateLimiter(
        f"redis://127.0.0.1:{_closed_port()}/0",
        default="3/minute",
        timeout=0.05,
        failure_threshold=2,
        recovery_timeout=60,
    )
    with caplog.at_level(logging.WARNING, "renderkit"):
        results = [limiter.hit("k") for _ in range(20)]
    stats = limiter.stats()
    assert (stats["errors"], stats["circuit"]) == (2, "open")  # 2 failed tries, then none
    assert all(r.fallback for r in results)
    assert [r.allowed for r in results[:4]] == [True, True, True, False]
    assert limiter.health_check().status == "degraded"
    assert limiter.stats()["fallback_active"] is True
    fallback_logs = [r for r in caplog.records if "serving from process memory" in r.getMessage()]
    assert len(fallback_logs) == 1


async def test_fail_open_async() -> None:
    """The async path falls back to memory as well."""
    limiter = RateLimiter(f"redis://127.0.0.1:{_closed_port()}/0", default="1/minute", timeout=0.05)
    first = await limiter.ahit("k")
    second = await limiter.ahit("k")
    assert first.fallback and first.allowed
    assert second.fallback and not second.allowed


def test_fail_closed_refuses_as_unavailable() -> None:
    """fail_open=False: results are unavailable (503 upstream) and health is unhealthy."""
    limiter = RateLimiter(
        f"redis://127.0.0.1:{_closed_port()}/0",
        default="100/minute",
        timeout=0.05,
        fail_open=False,
    )
    result = limiter.hit("k")
    assert result.unavailable and not result.allowed
    assert result.retry_after >= 1
    assert limiter.health_check().status == "unhealthy"


def _fake_storage(server: Any) -> Any:
    import fakeredis
    from limits.storage import RedisStorage

    client = fakeredis.FakeRedis(server=server)
    return RedisStorage("redis://fake", connection_pool=client.connection_pool)


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter"])
def test_fakeredis_one_pipelined_round_trip(strategy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a limits Redis storage the check and its stats go out in one socket write."""
    import fakeredis

    server = fakeredis.FakeServer()
    storage = _fake_storage(server)
    limiter = RateLimiter(storage, default="3/minute", strategy=strategy)
    pool = storage.get_connection().connection_pool
    connection_class = type(pool.get_connection())
    calls: list[int] = []
    original = connection_class.send_packed_command

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(connection_class, "send_packed_command", counting)
    limiter.hit("warm-up")  # first use loads limits' scripts (NOSCRIPT once)
    calls.clear()
    results = [limiter.hit("k") for _ in range(4)]
    assert len(calls) == 4
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert all(0 < r.reset_after <= 60 for r in results[1:])
    assert limiter.stats()["errors"] == 0


def test_repr_hides_urls() -> None:
    """repr names the storage kind, never its URL (which may hold a password)."""
    limiter = RateLimiter("redis://:secret@127.0.0.1:1/0")
    assert "secret" not in repr(limiter)
    assert "redis" in repr(limiter)


def test_from_env_reports_env_sources_and_validates_redis_urls() -> None:
    """A bad RATELIMIT_DEFAULT is attributed to the environment, a Redis URL with an impossible
    port is refused at start-up, and the URL's password never appears in the error."""
    with pytest.raises(ConfigError) as info:
        RateLimiter.from_env(
            {"RATELIMIT_DEFAULT": "lots", "REDIS_URL": "redis://:hunter2@cache:99999/0"}
        )
    problems = {problem.variable: problem for problem in info.value.errors}
    assert problems["RATELIMIT_DEFAULT"].source == "environment"
    assert "REDIS_URL" in problems
    assert "hunter2" not in str(info.value)


def test_processes_find_redis_again_within_a_second_by_default() -> None:
    """After an outage each process counts its share in memory until its own probe answers;
    the default probe interval bounds how long processes may disagree (docs/ratelimit.md)."""
    limiter = RateLimiter("redis://127.0.0.1:1/0")
    assert limiter.breaker.recovery_timeout == 1.0
    limiter.close()
