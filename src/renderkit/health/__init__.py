"""Health checks: the check protocol every component speaks, and the ``Health`` registry.

A check is any sync or async callable taking no arguments. It passes by returning ``None`` or
``True``, fails by returning ``False`` or raising, and can say more by returning a
:class:`CheckResult` (for example ``CheckResult.degraded("serving from memory")`` while a cache
runs on its fallback). Components never import ``Health``; they hand it their ``health_check``.

:class:`Health` runs every check concurrently, each under its own timeout (sync checks on a
small pool of reusable daemon threads, so a blocking driver never stalls the event loop and a
hung one never blocks process exit), caches the report for a short interval, and serves:

- ``/health``: the aggregate (healthy / degraded 200, unhealthy 503), for load balancers.
- ``/health/live``: the process answers; never touches a dependency.
- ``/health/ready``: the aggregate, and 503 once shutdown begins.
- ``/health/instance``: the path for a platform health check that *restarts* instances
  (Render's ``healthCheckPath``): it fails before the app first reached its critical
  dependencies, and afterwards only for instance-local faults (checks added with
  ``restart=True``, such as memory at the hard limit or event-loop lag measured by
  :class:`EventLoopMonitor`) or shutdown. A shared database outage
  reads ``degraded`` with 200 there, because restarting every instance would not fix it.
- optionally ``/health/{check}`` (one check) and ``/health/diagnostics`` (token holders).

The public gets ``{"status": ...}`` alone; per-check detail (messages, latency, observed
values, pool figures, platform, metrics, uptime, version) goes only to callers presenting the
configured token or coming from a trusted network.

Modules: ``_result`` (the protocol), ``_runner`` (one check), ``_report`` (aggregation and
JSON), ``_registry`` (:class:`Health`), ``_endpoint`` (HTTP), ``_system`` and ``_loop``
(built-in checks), ``_env`` (environment variables).
"""

from renderkit.health._endpoint import HEALTH_JSON, EndpointKind, HealthEndpoint, RequestFacts
from renderkit.health._env import HealthSettings
from renderkit.health._loop import EventLoopMonitor
from renderkit.health._registry import DEFAULT_CACHE_TTL, DEFAULT_CHECK_TIMEOUT, Health
from renderkit.health._report import HealthReport
from renderkit.health._result import CheckResult, ShutdownState, Status
from renderkit.health._runner import CheckSpec
from renderkit.health._system import (
    cpu_check,
    disk_check,
    memory_check,
    redis_check,
    shutdown_check,
)

__all__ = [
    "DEFAULT_CACHE_TTL",
    "DEFAULT_CHECK_TIMEOUT",
    "HEALTH_JSON",
    "INSTANCE_HEALTH_PATH",
    "CheckResult",
    "CheckSpec",
    "EndpointKind",
    "EventLoopMonitor",
    "Health",
    "HealthEndpoint",
    "HealthReport",
    "HealthSettings",
    "RequestFacts",
    "ShutdownState",
    "Status",
    "cpu_check",
    "disk_check",
    "memory_check",
    "redis_check",
    "shutdown_check",
]

INSTANCE_HEALTH_PATH = "/health/instance"
"""The path to give a platform health check that restarts instances (Render's healthCheckPath)."""
