"""A health run's outcome (:class:`HealthReport`) and its two JSON shapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from renderkit.health._result import CheckResult, Status

__all__ = ["IETF", "RANK", "HealthReport", "aggregate", "iso", "pool_figures"]

RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}
IETF = {"healthy": "pass", "degraded": "warn", "unhealthy": "fail"}


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The outcome of one run of every check, and how to present it."""

    status: Status
    checks: Mapping[str, CheckResult]
    critical: frozenset[str]
    restart: frozenset[str]
    timestamp: datetime
    uptime: float
    duration_ms: float
    started: bool
    shutting_down: bool = False
    version: str | None = None
    service_id: str | None = None
    release_id: str | None = None
    component_types: Mapping[str, str] = field(default_factory=dict)
    stats: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Each component's ``stats()`` at the end of the run (shown to detail callers only)."""

    @property
    def http_status(self) -> int:
        """200 for healthy and degraded, 503 for unhealthy."""
        return 503 if self.status == "unhealthy" else 200

    def instance_status(self) -> Status:
        """The status for a restart-gating health check (see the module docstring)."""
        if self.shutting_down:
            return "unhealthy"
        gating = self.restart if self.started else self.restart | self.critical
        if any(self.checks[n].status == "unhealthy" for n in gating if n in self.checks):
            return "unhealthy"
        return "healthy" if self.status == "healthy" else "degraded"

    def to_dict(
        self, *, detail: bool = True, words: Mapping[Status, str] | None = None
    ) -> dict[str, Any]:
        """The JSON shape of the seed apps: status, timestamp, uptime, per-check status/latency.

        ``detail=False`` gives ``{"status": ...}`` alone (what the public sees). ``words``
        renames the statuses (``{"healthy": "ok", "unhealthy": "error"}``).
        """
        say = words or {}
        if not detail:
            return {"status": say.get(self.status, self.status)}
        checks: dict[str, Any] = {}
        for name, result in self.checks.items():
            entry: dict[str, Any] = {"status": say.get(result.status, result.status)}
            if result.latency_ms is not None:
                entry["latency"] = round(result.latency_ms, 1)
            if result.message:
                entry["message"] = result.message
            entry["critical"] = name in self.critical
            for key, value in result.details.items():
                entry.setdefault(key, value)
            stats = self.stats.get(name)
            if stats:
                pool = pool_figures(stats)
                if pool:
                    entry.setdefault("pool", pool)
                entry.setdefault("stats", dict(stats))
            checks[name] = entry
        body: dict[str, Any] = {
            "status": say.get(self.status, self.status),
            "timestamp": iso(self.timestamp),
            "uptime": round(self.uptime),
        }
        if self.version is not None:
            body["version"] = self.version
        if self.release_id is not None:
            body["commit"] = self.release_id
        if self.shutting_down:
            body["shutting_down"] = True
        body["checks"] = checks
        return body

    def to_health_json(self, *, detail: bool = True) -> dict[str, Any]:
        """The IETF ``application/health+json`` shape (pass / warn / fail).

        ``checks`` are keyed ``component:measurement``; each holds one observation list.
        ``detail=False`` gives ``{"status": ...}`` alone.
        """
        body: dict[str, Any] = {"status": IETF[self.status]}
        if not detail:
            return body
        if self.version is not None:
            body["version"] = self.version
        if self.release_id is not None:
            body["releaseId"] = self.release_id
        if self.service_id is not None:
            body["serviceId"] = self.service_id
        notes = ["shutting down"] if self.shutting_down else []
        if notes:
            body["notes"] = notes
        stamp = iso(self.timestamp)
        checks: dict[str, list[dict[str, Any]]] = {
            "uptime": [
                {
                    "componentType": "system",
                    "observedValue": round(self.uptime, 1),
                    "observedUnit": "s",
                    "status": "pass",
                    "time": stamp,
                }
            ]
        }
        for name, result in self.checks.items():
            base: dict[str, Any] = {
                "componentType": self.component_types.get(name, "component"),
                "status": IETF[result.status],
                "time": stamp,
            }
            if result.status != "healthy" and result.message:
                base["output"] = result.message
            checks[f"{name}:responseTime"] = [
                {**base, "observedValue": round(result.latency_ms or 0.0, 1), "observedUnit": "ms"}
            ]
            usage = result.details.get("usage")
            if isinstance(usage, int | float) and not isinstance(usage, bool):
                checks[f"{name}:utilization"] = [
                    {**base, "observedValue": usage, "observedUnit": "percent"}
                ]
        body["checks"] = checks
        return body


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def aggregate(checks: Mapping[str, CheckResult], critical: frozenset[str]) -> Status:
    """Unhealthy when a critical check is; degraded when any check is not healthy."""
    status: Status = "healthy"
    for name, result in checks.items():
        if result.status == "healthy":
            continue
        level: Status = (
            "unhealthy" if name in critical and result.status == "unhealthy" else "degraded"
        )
        if RANK[level] > RANK[status]:
            status = level
    return status


def pool_figures(stats: Mapping[str, Any]) -> dict[str, int]:
    """``size / active / idle / waiting / max`` of a connection pool, from a component's
    ``stats()`` (``renderkit.db``'s ``pool_size``, ``pool_available``, ``requests_waiting``,
    ``pool_max``); empty when the component has no pool."""
    size = stats.get("pool_size")
    if not isinstance(size, int) or isinstance(size, bool):
        return {}
    idle = stats.get("pool_available", stats.get("pool_idle", 0))
    idle = idle if isinstance(idle, int) else 0
    figures = {"size": size, "active": max(size - idle, 0), "idle": idle}
    waiting = stats.get("requests_waiting")
    if isinstance(waiting, int):
        figures["waiting"] = waiting
    most = stats.get("pool_max")
    if isinstance(most, int):
        figures["max"] = most
    return figures
