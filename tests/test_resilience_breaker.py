"""CircuitBreaker: opens after repeated failures, probes once, closes on success."""

from __future__ import annotations

import threading

import pytest

from renderkit.errors import CircuitOpenError
from renderkit.resilience import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def boom() -> None:
    raise ConnectionError("redis down")


def test_opens_after_threshold_and_fails_fast() -> None:
    """Three failures in a row open the circuit; the next call never reaches the dependency."""
    clock = Clock()
    breaker = CircuitBreaker("redis", failure_threshold=3, recovery_timeout=10, clock=clock)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.state == "open"
    calls = []
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: calls.append(1))
    assert calls == []
    assert info.value.retry_after == pytest.approx(10)
    assert breaker.stats()["rejected"] == 1


def test_half_open_allows_one_probe_then_closes_on_success() -> None:
    """After the recovery timeout exactly one probe goes through; success closes the circuit."""
    clock = Clock()
    changes: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        "pg",
        failure_threshold=1,
        recovery_timeout=5,
        clock=clock,
        on_state_change=lambda old, new: changes.append((old, new)),
    )
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    clock.now = 5.0
    assert breaker.state == "half_open"
    assert breaker.allow() is True
    assert breaker.allow() is False  # the probe slot is taken
    breaker.record_success()
    assert breaker.state == "closed"
    assert changes == [("closed", "open"), ("open", "closed")]


def test_failed_probe_reopens_for_a_full_timeout() -> None:
    """A failing probe re-opens the circuit and restarts the recovery clock."""
    clock = Clock()
    breaker = CircuitBreaker("x", failure_threshold=1, recovery_timeout=5, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    clock.now = 6.0
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    assert breaker.state == "open"
    assert breaker.retry_after() == pytest.approx(5)


def test_success_resets_the_failure_count() -> None:
    """Failures must be consecutive to open the circuit."""
    breaker = CircuitBreaker("x", failure_threshold=2)
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    assert breaker.call(lambda: 42) == 42
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    assert breaker.state == "closed"


def test_unexpected_exceptions_do_not_count() -> None:
    """Only ``expected_exceptions`` count as dependency failures."""
    breaker = CircuitBreaker("x", failure_threshold=1, expected_exceptions=(ConnectionError,))
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["missing"])
    assert breaker.state == "closed"


async def test_async_calls_share_the_state_machine() -> None:
    """``acall`` drives the same breaker as ``call``."""
    breaker = CircuitBreaker("x", failure_threshold=1, recovery_timeout=60)

    async def fail() -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        await breaker.acall(fail)

    async def ok() -> int:
        return 1

    with pytest.raises(CircuitOpenError):
        await breaker.acall(ok)


def test_health_check_reports_degraded_while_open() -> None:
    """Health sees the breaker: healthy when closed, degraded while open."""
    breaker = CircuitBreaker("x", failure_threshold=1)
    assert breaker.health_check().status == "healthy"
    breaker.record_failure()
    result = breaker.health_check()
    assert result.status == "degraded"
    assert result.details["state"] == "open"
    breaker.reset()
    assert breaker.state == "closed"


def test_invalid_options_are_rejected() -> None:
    """Thresholds below one and negative timeouts fail at construction."""
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="recovery_timeout"):
        CircuitBreaker(recovery_timeout=-1)


def test_concurrent_threads_allow_only_one_probe() -> None:
    """Under contention in half-open state exactly one thread wins the probe."""
    clock = Clock()
    breaker = CircuitBreaker("x", failure_threshold=1, recovery_timeout=1, clock=clock)
    breaker.record_failure()
    clock.now = 2.0
    results: list[bool] = []
    lock = threading.Lock()

    def try_allow() -> None:
        allowed = breaker.allow()
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=try_allow) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
