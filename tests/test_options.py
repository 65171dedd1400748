"""``renderkit._options.ordered_options``: one wording for a threshold pair in the wrong order."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from renderkit._options import ordered_options
from renderkit.health import EventLoopMonitor, memory_check
from renderkit.resilience import MemoryWatchdog


@pytest.mark.parametrize(("low", "high"), [(0.5, 0.9), (0.8, 0.8), (0, 1)])
def test_ordered_options_accepts_a_low_value_not_above_the_high_one(
    low: float, high: float
) -> None:
    assert ordered_options("memory_check", "warn", low, "fail", high) is None


def test_ordered_options_names_both_values_and_the_rule() -> None:
    with pytest.raises(ValueError) as caught:
        ordered_options("MemoryWatchdog", "soft", 0.9, "hard", 0.8)
    assert str(caught.value) == "MemoryWatchdog(soft=0.9, hard=0.8): soft must not exceed hard"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: memory_check(warn=0.9, fail=0.8), "memory_check(warn=0.9, fail=0.8): warn"),
        (lambda: MemoryWatchdog(soft=0.9, hard=0.8), "MemoryWatchdog(soft=0.9, hard=0.8): soft"),
        (lambda: EventLoopMonitor(warn=3, fail=2), "EventLoopMonitor(warn=3.0, fail=2.0): warn"),
    ],
)
def test_every_threshold_pair_is_refused_in_the_same_words(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=r"must not exceed") as caught:
        build()
    assert str(caught.value).startswith(message)
