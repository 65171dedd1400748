"""The check protocol every component speaks: :class:`CheckResult` and what a check may return.

Kept apart from the registry so that every component (cache, sessions, db, ...) can import it
without pulling in the runner, the HTTP endpoints or psutil.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["STATUSES", "Check", "CheckResult", "ShutdownState", "Status", "coerce"]

Status = Literal["healthy", "degraded", "unhealthy"]
STATUSES: tuple[Status, ...] = ("healthy", "degraded", "unhealthy")

Check = Callable[[], Any]
"""A check: a sync or async callable taking no arguments."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: a status, a short message, and observed values."""

    status: Status = "healthy"
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None

    @classmethod
    def healthy(cls, message: str = "", **details: Any) -> CheckResult:
        """The component works as intended."""
        return cls("healthy", message, details)

    @classmethod
    def degraded(cls, message: str = "", **details: Any) -> CheckResult:
        """The component serves, but on a fallback or with reduced capacity."""
        return cls("degraded", message, details)

    @classmethod
    def unhealthy(cls, message: str = "", **details: Any) -> CheckResult:
        """The component cannot do its job."""
        return cls("unhealthy", message, details)


class ShutdownState(Protocol):
    """What :class:`Health` needs from a shutdown coordinator: is shutdown under way?"""

    @property
    def is_shutting_down(self) -> bool: ...


def coerce(value: object) -> CheckResult:
    """Turn whatever a check returned into a CheckResult; garbage counts as a failure."""
    if value is None or value is True:
        return CheckResult()
    if value is False:
        return CheckResult.unhealthy("check returned False")
    if isinstance(value, CheckResult):
        if value.status not in STATUSES:
            return CheckResult.unhealthy(
                "check returned a CheckResult with an invalid status "
                f"(expected one of {', '.join(STATUSES)})"
            )
        return value
    return CheckResult.unhealthy(
        f"check returned an unexpected {type(value).__name__}; return None/True, False, a "
        "CheckResult, or raise"
    )
