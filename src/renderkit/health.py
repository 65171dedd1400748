"""Health checks: the check protocol every component speaks, and the ``Health`` registry.

A check is any sync or async callable taking no arguments. It passes by returning ``None`` or
``True``, fails by returning ``False`` or raising, and can say more by returning a
:class:`CheckResult` (for example ``CheckResult.degraded("serving from memory")`` while a cache
runs on its fallback). Components never import ``Health``; they hand it their ``health_check``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CheckResult", "Status"]

Status = Literal["healthy", "degraded", "unhealthy"]


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
