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


# -- Degrader: the one degrade-to-fallback helper ---------------------------------------------
import asyncio  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

from renderkit.resilience import Degrader  # noqa: E402


class Flaky:
    """A primary that fails with ConnectionError while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def get(self, key: str) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("refused")
        return f"primary:{key}"

    async def aget(self, key: str) -> str:
        return self.get(key)


def make_degrader(clock: Clock, **kwargs: object) -> Degrader:
    breaker = CircuitBreaker("t", failure_threshold=2, recovery_timeout=5, clock=clock)
    return Degrader(
        "widgets",
        primary="redis",
        fallback="memory",
        logger="renderkit.widgets",
        outage_errors=(ConnectionError,),
        breaker=breaker,
        **kwargs,  # type: ignore[arg-type]
    )


def wait_until(predicate: object, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_degrader_logs_one_warning_per_outage_and_one_info_per_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Many failing calls: one WARNING (not a second one from the breaker), one INFO back."""
    clock, primary = Clock(), Flaky()
    degrader = make_degrader(clock)
    primary.down = True
    with caplog.at_level(logging.DEBUG):
        for _ in range(20):
            assert degrader.call(primary.get, "fallback:{}".format, "k") == "fallback:k"
        primary.down = False
        clock.now += 5
        assert degrader.call(primary.get, "fallback:{}".format, "k") == "primary:k"
        assert degrader.call(primary.get, "fallback:{}".format, "k") == "primary:k"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [r.name for r in warnings] == ["renderkit.widgets"]
    assert "redis unavailable (ConnectionError: refused)" in warnings[0].getMessage()
    assert "serving from memory" in warnings[0].getMessage()
    assert [r.name for r in infos] == ["renderkit.widgets"]
    assert "answers again" in infos[0].getMessage()
    assert primary.calls == 4  # two to open the circuit, then one probe, then one normal call
    assert degrader.stats()["outages"] == 1


def test_degrader_one_blip_is_not_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    """A single failure below the threshold is served by the fallback and logged at DEBUG."""
    primary = Flaky()
    degrader = make_degrader(Clock())
    primary.down = True
    with caplog.at_level(logging.INFO):
        assert degrader.call(primary.get, lambda key: None, "k") is None
    primary.down = False
    assert degrader.call(primary.get, lambda key: None, "k") == "primary:k"
    assert caplog.records == []
    assert degrader.health_check().status == "healthy"


def test_degrader_health_is_degraded_while_the_fallback_serves() -> None:
    """Degraded with the last error and retry_after while open; a failing primary check too."""
    from renderkit.health import CheckResult

    clock, primary = Clock(), Flaky()
    degrader = make_degrader(clock)
    primary.down = True
    for _ in range(2):
        degrader.call(primary.get, lambda key: None, "k")
    result = degrader.health_check()
    assert result.status == "degraded"
    assert "ConnectionError: refused" in result.message
    assert result.details == {"fallback_active": True, "retry_after": 5.0}
    primary.down = False
    clock.now += 5
    degrader.call(primary.get, lambda key: None, "k")
    assert degrader.health_check().status == "healthy"
    broken = degrader.health_check(CheckResult.unhealthy("PING failed"))
    assert broken.status == "degraded"
    assert broken.message == "PING failed; serving from memory"


def test_degrader_other_errors_propagate_and_free_the_probe_slot() -> None:
    """A bug in the primary call is the caller's, not an outage; the half-open slot is freed."""
    clock, primary = Clock(), Flaky()
    degrader = make_degrader(clock)
    primary.down = True
    for _ in range(2):
        degrader.call(primary.get, lambda key: None, "k")
    clock.now += 5

    def bug(key: str) -> str:
        raise KeyError(key)

    with pytest.raises(KeyError):
        degrader.call(bug, lambda key: None, "k")
    assert degrader.stats()["primary_errors"] == 2
    primary.down = False
    assert degrader.call(primary.get, lambda key: None, "k") == "primary:k"  # slot was free


def test_degrader_background_probe_recovers_without_traffic(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After the outage starts, a daemon thread probes; the primary's return closes the circuit."""
    primary = Flaky()
    probes: list[int] = []

    def probe() -> None:
        probes.append(1)
        primary.get("probe")

    degrader = Degrader(
        "widgets",
        primary="redis",
        fallback="memory",
        logger="renderkit.widgets",
        outage_errors=(ConnectionError,),
        failure_threshold=1,
        recovery_timeout=0.02,
        probe=probe,
    )
    primary.down = True
    with caplog.at_level(logging.INFO, logger="renderkit.widgets"):
        degrader.call(primary.get, lambda key: None, "k")
        assert degrader.active
        assert wait_until(lambda: len(probes) >= 2)  # it keeps probing while down
        primary.down = False
        assert wait_until(lambda: not degrader.active)
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert degrader.stats()["probes"] >= 2
    degrader.close()


async def test_degrader_async_probe_runs_on_the_loop() -> None:
    """acall failures start ``aprobe`` as a task on the running loop; close() cancels it."""
    primary = Flaky()
    degrader = Degrader(
        "widgets",
        primary="redis",
        fallback="memory",
        logger="renderkit.widgets",
        outage_errors=(ConnectionError,),
        failure_threshold=1,
        recovery_timeout=0.02,
        aprobe=lambda: primary.aget("probe"),
    )
    primary.down = True

    async def constant(key: str) -> str:
        return "fallback"

    assert await degrader.acall(primary.aget, constant, "k") == "fallback"
    primary.down = False
    for _ in range(500):
        if not degrader.active:
            break
        await asyncio.sleep(0.01)
    assert not degrader.active
    assert await degrader.acall(primary.aget, constant, "k") == "primary:k"
    degrader.close()


def test_degrader_quiets_a_breaker_it_is_given(caplog: pytest.LogCaptureFixture) -> None:
    """A breaker passed in stops logging on its own: the degrader speaks for the outage."""
    breaker = CircuitBreaker("given", failure_threshold=1)
    Degrader("widgets", primary="a", fallback="b", logger="x", breaker=breaker)
    with caplog.at_level(logging.DEBUG):
        breaker.record_failure(ConnectionError())
    assert breaker.state == "open"
    assert caplog.records == []


def test_degrader_protocol_for_callers_with_their_own_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """allow/failed/succeeded/neutral drive the same state as call(): one warning, one info."""
    clock = Clock()
    degrader = make_degrader(clock)
    with caplog.at_level(logging.INFO, logger="renderkit.widgets"):
        for _ in range(3):
            if degrader.allow():
                degrader.failed(ConnectionError("refused"))
        assert degrader.active
        assert degrader.allow() is False  # open: straight to the fallback
        clock.now += 5
        assert degrader.allow() is True  # the half-open probe slot
        degrader.neutral()  # a caller bug: frees the slot, says nothing about the primary
        assert degrader.allow() is True
        degrader.succeeded()
    assert not degrader.active
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    stats = degrader.stats()
    assert (stats["primary_errors"], stats["outages"]) == (2, 1)
    assert stats["fallback_served"] == 4  # two failures, then two calls refused while open


def test_degrader_restarts_a_probe_whose_event_loop_is_gone() -> None:
    """A probe task left on a loop closed without cancelling it (a per-request loop) does
    not block the next one: the next failure on a live loop starts a new probe there."""
    primary = Flaky()
    primary.down = True
    degrader = Degrader(
        "widgets",
        primary="redis",
        fallback="memory",
        logger="renderkit.widgets",
        outage_errors=(ConnectionError,),
        failure_threshold=1,
        recovery_timeout=0.05,
        aprobe=lambda: primary.aget("probe"),
    )

    async def constant(key: str) -> str:
        return "fallback"

    first = asyncio.new_event_loop()
    first.run_until_complete(degrader.acall(primary.aget, constant, "k"))
    stranded = degrader._task
    assert isinstance(stranded, asyncio.Task)
    stranded._log_destroy_pending = False  # type: ignore[attr-defined]  # stranded on purpose
    first.close()  # its pending probe task will never run again

    async def second_loop() -> bool:
        await asyncio.sleep(0.1)  # past recovery_timeout: this call is the half-open probe
        assert await degrader.acall(primary.aget, constant, "k") == "fallback"
        primary.down = False  # from now on, no traffic: only a live probe can notice
        for _ in range(200):
            if not degrader.active:
                return True
            await asyncio.sleep(0.01)
        return False

    assert asyncio.run(second_loop()) is True
    degrader.close()
