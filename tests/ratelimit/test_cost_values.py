"""What a cost function's value charges: fractions round up, bad values cost 1 and are logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from renderkit.ratelimit import RateLimiter, RateLimitPolicy, RequestInfo, RouteLimit


def _passed(cost: Callable[[RequestInfo], Any], limit: str, tries: int) -> int:
    policy = RateLimitPolicy(RateLimiter("memory://"), default=None)
    info = RequestInfo(
        "POST",
        "/batch",
        [],
        "198.51.100.30",
        route="/batch",
        limits=(RouteLimit(limit, cost=cost),),
    )
    return sum(policy.decide(info).allowed for _ in range(tries))


def test_a_fractional_cost_rounds_up() -> None:
    # 7.5 charges 8: six requests use 48 of 50, a seventh would need 56.
    assert _passed(lambda request: 7.5, "50/minute", 10) == 6


def test_a_whole_float_cost_is_charged_as_it_is() -> None:
    assert _passed(lambda request: 5.0, "50/minute", 12) == 10


def test_a_decimal_or_fraction_cost_rounds_up_too() -> None:
    from decimal import Decimal
    from fractions import Fraction

    assert _passed(lambda request: Decimal("7.5"), "50/minute", 10) == 6
    assert _passed(lambda request: Fraction(15, 2), "50/minute", 10) == 6


@pytest.mark.parametrize("value", [0, -3, 0.2])
def test_a_cost_below_one_charges_one(value: float) -> None:
    assert _passed(lambda request: value, "3/minute", 5) == 3


@pytest.mark.parametrize("value", ["many", "3", None, float("nan"), float("inf")])
def test_a_value_that_is_no_number_charges_one_and_is_logged(
    value: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="renderkit.ratelimit"):
        assert _passed(lambda request: value, "3/minute", 5) == 3
    assert "cost function raised or returned something that is not a number" in caplog.text


def test_a_cost_function_that_raises_charges_one(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: RequestInfo) -> int:
        raise RuntimeError("no batch header")

    with caplog.at_level(logging.ERROR, logger="renderkit.ratelimit"):
        assert _passed(broken, "2/minute", 4) == 2
    assert "charging 1" in caplog.text
