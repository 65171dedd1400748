"""Every redis-py client renderkit builds reconnects once after a broken connection, never
retries a timeout."""

from __future__ import annotations

import pytest
import redis.exceptions

from renderkit._redis import reconnect_once


def _flaky(error: Exception, failures: int) -> tuple[list[int], object]:
    calls: list[int] = []

    def do() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "ok"

    return calls, do


def test_a_broken_connection_is_retried_once() -> None:
    """A socket that died with a Redis restart costs one reconnect, not an error."""
    retry = reconnect_once(asyncio=False, extra="redis", feature="test")
    calls, do = _flaky(redis.exceptions.ConnectionError("closed by server"), failures=1)
    assert retry.call_with_retry(do, lambda error: None) == "ok"
    assert len(calls) == 2


def test_a_second_broken_connection_is_an_outage() -> None:
    """Two failures in a row surface, so the circuit breaker can take over."""
    retry = reconnect_once(asyncio=False, extra="redis", feature="test")
    calls, do = _flaky(redis.exceptions.ConnectionError("refused"), failures=2)
    with pytest.raises(redis.exceptions.ConnectionError):
        retry.call_with_retry(do, lambda error: None)
    assert len(calls) == 2


def test_a_timeout_is_never_retried() -> None:
    """A hung Redis costs one socket timeout, not four."""
    retry = reconnect_once(asyncio=False, extra="redis", feature="test")
    calls, do = _flaky(redis.exceptions.TimeoutError("timed out"), failures=1)
    with pytest.raises(redis.exceptions.TimeoutError):
        retry.call_with_retry(do, lambda error: None)
    assert len(calls) == 1


async def test_the_asyncio_policy_matches() -> None:
    """The asyncio twin reconnects once too."""
    retry = reconnect_once(asyncio=True, extra="redis", feature="test")
    calls: list[int] = []

    async def do() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise redis.exceptions.ConnectionError("closed")
        return "ok"

    async def on_error(error: Exception) -> None:
        return None

    assert await retry.call_with_retry(do, on_error) == "ok"
    assert len(calls) == 2
