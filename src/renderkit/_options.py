"""Validation of constructor options (seconds, fractions, counts), written once.

Every renderkit class that takes a number of seconds, a fraction or a count checks it the
same way and says the same thing when it is wrong: ``Supervisor(stagger=-1): use a number of
seconds >= 0``. A foundation module: it imports nothing of renderkit.
"""

from __future__ import annotations

from typing import Literal, overload

__all__ = ["count_option", "fraction_option", "ordered_options", "seconds_option"]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def seconds_option(value: object, what: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float seconds; ``what`` (``"Supervisor(stagger)"``) names it."""
    if _is_number(value) and (value >= 0 if allow_zero else value > 0):  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{what}={value!r}: use a number of seconds {bound}")


def fraction_option(value: object, what: str) -> float:
    """Return ``value`` as a fraction in (0, 1] (``0.8`` means 80 %)."""
    if _is_number(value) and 0 < value <= 1:  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    raise ValueError(f"{what}={value!r}: use a fraction between 0 and 1 (0.8 means 80 %)")


@overload
def count_option(
    value: object, what: str, *, minimum: int = 0, optional: Literal[False] = False
) -> int: ...
@overload
def count_option(value: object, what: str, *, minimum: int = 0, optional: bool) -> int | None: ...
def count_option(
    value: object, what: str, *, minimum: int = 0, optional: bool = False
) -> int | None:
    """Return ``value`` as an int >= ``minimum`` (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    tail = " or None" if optional else ""
    raise ValueError(f"{what}={value!r}: use a whole number >= {minimum}{tail}")


def ordered_options(what: str, low: str, low_value: float, high: str, high_value: float) -> None:
    """Refuse a lower threshold above its upper one, said one way everywhere:
    ``MemoryWatchdog(soft=0.9, hard=0.8): soft must not exceed hard``."""
    if low_value > high_value:
        raise ValueError(
            f"{what}({low}={low_value}, {high}={high_value}): {low} must not exceed {high}"
        )
