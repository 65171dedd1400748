"""Health checks: the check protocol every component speaks, and the ``Health`` registry.

A check is any sync or async callable taking no arguments. It passes by returning ``None`` or
``True``, fails by returning ``False`` or raising, and can say more by returning a
:class:`CheckResult` (for example ``CheckResult.degraded("serving from memory")`` while a cache
runs on its fallback). Components never import ``Health``; they hand it their ``health_check``.

:class:`Health` runs every check concurrently, each under its own timeout (sync checks in a
daemon thread, so a blocking driver never stalls the event loop and a hung one never blocks
process exit), caches the report for a short interval, and serves four endpoints:

- ``/health``: the aggregate (healthy / degraded 200, unhealthy 503), for load balancers.
- ``/health/live``: the process answers; never touches a dependency.
- ``/health/ready``: the aggregate, and 503 once shutdown begins.
- ``/health/instance``: the path for a platform health check that *restarts* instances
  (Render's ``healthCheckPath``): it fails before the app first reached its critical
  dependencies, and afterwards only for instance-local faults (checks added with
  ``restart=True``, such as memory at the hard limit or event-loop lag measured by
  :class:`EventLoopMonitor`) or shutdown. A shared database outage
  reads ``degraded`` with 200 there, because restarting every instance would not fix it.

The public gets ``{"status": ...}`` alone; per-check detail (messages, latency, observed
values, uptime, version) goes only to callers presenting the configured token or coming from a
trusted network.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import ipaddress
import json
import logging
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Mapping,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from renderkit._http import ProxyTrust, client_ip, header

if TYPE_CHECKING:
    from starlette.routing import Route

    from renderkit.platform import Platform

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
    "RequestFacts",
    "ShutdownState",
    "Status",
    "cpu_check",
    "disk_check",
    "memory_check",
    "shutdown_check",
]

Status = Literal["healthy", "degraded", "unhealthy"]

DEFAULT_CHECK_TIMEOUT = 5.0
"""Seconds one check may take before it counts as failed (Render waits 5 s for an answer)."""
DEFAULT_CACHE_TTL = 1.0
"""Seconds a report is reused, so a storm of probes is not a storm of database queries."""
HEALTH_JSON = "application/health+json"
"""The media type of the IETF health check response format (draft-inadarei-api-health-check)."""
INSTANCE_HEALTH_PATH = "/health/instance"
"""The path to give a platform health check that restarts instances (Render's healthCheckPath)."""

_STATUSES: tuple[Status, ...] = ("healthy", "degraded", "unhealthy")
_RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}
_IETF = {"healthy": "pass", "degraded": "warn", "unhealthy": "fail"}
_MAX_MESSAGE = 300

logger = logging.getLogger("renderkit.health")


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


Check = Callable[[], Any]


class ShutdownState(Protocol):
    """What :class:`Health` needs from a shutdown coordinator: is shutdown under way?"""

    @property
    def is_shutting_down(self) -> bool: ...


@dataclass
class CheckSpec:
    """One registered check and its policy (see :meth:`Health.add`)."""

    name: str
    check: Check
    critical: bool
    timeout: float
    restart: bool
    failure_threshold: int
    component_type: str
    is_async: bool
    # Hysteresis and logging state: the status last reported and the raw streak behind it.
    reported: Status | None = None
    failures_in_a_row: int = 0
    # A sync check still running in its thread (hung): not started again until it returns.
    running: threading.Event | None = None


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

    def to_dict(self, *, detail: bool = True) -> dict[str, Any]:
        """The JSON shape of the seed apps: status, timestamp, uptime, per-check status/latency.

        ``detail=False`` gives ``{"status": ...}`` alone (what the public sees).
        """
        if not detail:
            return {"status": self.status}
        checks: dict[str, Any] = {}
        for name, result in self.checks.items():
            entry: dict[str, Any] = {"status": result.status}
            if result.latency_ms is not None:
                entry["latency"] = round(result.latency_ms, 1)
            if result.message:
                entry["message"] = result.message
            entry["critical"] = name in self.critical
            for key, value in result.details.items():
                entry.setdefault(key, value)
            checks[name] = entry
        body: dict[str, Any] = {
            "status": self.status,
            "timestamp": _iso(self.timestamp),
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
        body: dict[str, Any] = {"status": _IETF[self.status]}
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
        stamp = _iso(self.timestamp)
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
                "status": _IETF[result.status],
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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{what}={value!r}: use a number of seconds > 0")
    return float(value)


def _is_async_callable(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return message[:_MAX_MESSAGE]


def _coerce(value: object) -> CheckResult:
    """Turn whatever a check returned into a CheckResult; garbage counts as a failure."""
    if value is None or value is True:
        return CheckResult()
    if value is False:
        return CheckResult.unhealthy("check returned False")
    if isinstance(value, CheckResult):
        if value.status not in _STATUSES:
            return CheckResult.unhealthy(
                "check returned a CheckResult with an invalid status "
                f"(expected one of {', '.join(_STATUSES)})"
            )
        return value
    return CheckResult.unhealthy(
        f"check returned an unexpected {type(value).__name__}; return None/True, False, a "
        "CheckResult, or raise"
    )


class Health:
    """A registry of health checks, their aggregation, caching and HTTP endpoints.

    ``timeout``: default seconds per check. ``cache_ttl``: seconds a report is reused (0: never).
    ``stale_while_revalidate``: once the cache expired, serve a report up to this many seconds
    old at once while one background run refreshes it (0: callers wait for the fresh run).
    ``token``: callers sending ``Authorization: Bearer <token>`` get the detailed report.
    ``trusted_networks``: client addresses (CIDRs) that get it without a token (default:
    loopback only); the client address is resolved with ``trust`` (default: the TCP peer).
    ``shutdown``: an object with ``is_shutting_down`` (a ``ShutdownCoordinator``); once true,
    ``/health``, ``/health/ready`` and ``/health/instance`` answer 503 without running checks.
    ``version`` / ``service_id`` / ``release_id`` appear in detailed reports; ``service_id``
    and ``release_id`` default to the platform's service name and git commit.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_CHECK_TIMEOUT,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        stale_while_revalidate: float = 0.0,
        token: str | None = None,
        trusted_networks: Sequence[str] = ("127.0.0.0/8", "::1/128"),
        trust: ProxyTrust | None = None,
        shutdown: ShutdownState | None = None,
        version: str | None = None,
        service_id: str | None = None,
        release_id: str | None = None,
        platform: Platform | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = _positive(timeout, "Health(timeout)")
        for name, value in (
            ("cache_ttl", cache_ttl),
            ("stale_while_revalidate", stale_while_revalidate),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"Health({name}={value!r}): use a number of seconds >= 0")
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ValueError("Health(token=...): use a non-empty string, or None for no token")
        self.cache_ttl = float(cache_ttl)
        self.stale_while_revalidate = float(stale_while_revalidate)
        self.token = token
        self.trusted_networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in trusted_networks
        )
        self.trust = trust if trust is not None else ProxyTrust.none()
        self.shutdown = shutdown
        self.version = version
        if platform is not None:
            service_id = service_id if service_id is not None else platform.service_name
            release_id = release_id if release_id is not None else platform.git_commit
        self.service_id = service_id
        self.release_id = release_id
        self._clock = clock
        self._created = clock()
        self._checks: dict[str, CheckSpec] = {}
        self._started = False
        self._cached: HealthReport | None = None
        self._cached_at = 0.0
        self._inflight: asyncio.Task[HealthReport] | None = None
        self._sync_lock = threading.Lock()
        self._counts = {"runs": 0, "cache_hits": 0, "stale_served": 0}
        self.loop_monitor: EventLoopMonitor | None = None
        """The monitor behind the ``event_loop`` check (see :meth:`add_system_checks`)."""

    # --- configuration ------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Health:
        """Build from ``HEALTH_TOKEN``, ``HEALTH_CHECK_TIMEOUT`` ("5s"), ``HEALTH_CACHE_TTL``
        ("1s"), ``HEALTH_STALE_WHILE_REVALIDATE`` ("0s") and ``HEALTH_TRUSTED_NETWORKS`` (comma
        list of CIDRs); ``service_id``/``release_id`` and the proxy ``trust`` come from
        ``renderkit.platform.detect``.

        Keyword ``options`` override the environment. Every bad variable is reported at once.
        """
        from renderkit.config import parse_duration, parse_list
        from renderkit.errors import ConfigError, ConfigProblem
        from renderkit.platform import detect

        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[ConfigProblem] = []
        durations = {
            "HEALTH_CHECK_TIMEOUT": "timeout",
            "HEALTH_CACHE_TTL": "cache_ttl",
            "HEALTH_STALE_WHILE_REVALIDATE": "stale_while_revalidate",
        }
        for variable, option in durations.items():
            raw = env.get(variable)
            if raw is None or not raw.strip():
                continue
            try:
                values[option] = parse_duration(raw).total_seconds()
            except ValueError as exc:
                problems.append(
                    ConfigProblem(variable, f"{exc}; got {raw!r}", "environment", found=repr(raw))
                )
        networks = env.get("HEALTH_TRUSTED_NETWORKS")
        if networks is not None and networks.strip():
            try:
                parsed: list[str] = parse_list(networks)
                for item in parsed:
                    ipaddress.ip_network(item, strict=False)
                values["trusted_networks"] = parsed
            except ValueError as exc:
                problems.append(
                    ConfigProblem(
                        "HEALTH_TRUSTED_NETWORKS",
                        f"{exc}; use comma-separated CIDRs such as 10.0.0.0/8,127.0.0.1",
                        "environment",
                        found=repr(networks),
                    )
                )
        token = env.get("HEALTH_TOKEN")
        if token is not None and token.strip():
            values["token"] = token.strip()
        if problems:
            raise ConfigError(problems)
        values.update(options)
        platform = values.setdefault("platform", detect(env))
        # Behind the platform's proxies, trusted networks apply to the real client address.
        values.setdefault("trust", ProxyTrust.for_provider(platform.provider))
        return cls(**values)

    def add(
        self,
        name: str,
        check: Check,
        *,
        critical: bool = True,
        timeout: float | None = None,
        restart: bool = False,
        failure_threshold: int = 1,
        component_type: str = "component",
    ) -> None:
        """Register ``check`` (sync or async, no arguments) under ``name``.

        ``critical``: its failure makes the report unhealthy (503); a non-critical failure only
        degrades it. ``timeout``: seconds before it counts as failed (default: the registry's).
        ``restart``: a failure means restarting *this instance* helps (a local fault such as
        memory at its limit), so ``/health/instance`` fails on it after start-up.
        ``failure_threshold``: report a failure only after this many in a row (hysteresis).
        """
        if not isinstance(name, str) or not name or len(name) > 100 or ":" in name:
            raise ValueError(
                f"Health.add(name={name!r}): use a short non-empty name without ':' "
                "(it becomes a JSON key and the IETF 'component:measurement' key)"
            )
        if name in self._checks:
            raise ValueError(f"Health.add: a check named {name!r} is already registered")
        if not callable(check):
            raise TypeError(
                f"Health.add({name!r}, check=...): the check must be callable, got "
                f"{type(check).__name__} (pass db.health_check, not db.health_check())"
            )
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int):
            raise TypeError(f"Health.add({name!r}, failure_threshold=...): use an int >= 1")
        if failure_threshold < 1:
            raise ValueError(
                f"Health.add({name!r}, failure_threshold={failure_threshold}): use 1 or more"
            )
        seconds = self.timeout if timeout is None else _positive(timeout, f"Health.add({name!r})")
        self._checks[name] = CheckSpec(
            name=name,
            check=check,
            critical=bool(critical),
            timeout=seconds,
            restart=bool(restart),
            failure_threshold=failure_threshold,
            component_type=component_type,
            is_async=_is_async_callable(check),
        )
        self._cached = None

    def remove(self, name: str) -> None:
        """Unregister the check ``name`` (KeyError when there is none)."""
        del self._checks[name]
        self._cached = None

    def add_system_checks(
        self,
        *,
        memory: bool = True,
        cpu: bool = True,
        disk: bool = True,
        platform: Platform | None = None,
        event_loop: bool | EventLoopMonitor = False,
    ) -> None:
        """Add the built-in ``memory`` (critical, restart-worthy), ``cpu`` and ``disk``
        (non-critical) checks, measured against the container's limits.

        ``event_loop=True`` (or an :class:`EventLoopMonitor` you start in the lifespan) also
        adds ``event_loop``: loop lag, critical and restart-worthy like memory. Off by default
        because WSGI apps have no event loop to watch; the monitor is kept in
        :attr:`loop_monitor`.
        """
        if event_loop is not False and not isinstance(event_loop, EventLoopMonitor | bool):
            raise TypeError(
                "Health.add_system_checks(event_loop=...): use True, False or an "
                f"EventLoopMonitor, got {type(event_loop).__name__}"
            )
        if memory:
            self.add(
                "memory",
                memory_check(platform=platform),
                critical=True,
                restart=True,
                component_type="system",
            )
        if cpu:
            self.add("cpu", cpu_check(platform=platform), critical=False, component_type="system")
        if disk:
            self.add("disk", disk_check(), critical=False, component_type="system")
        if event_loop is not False:
            monitor = event_loop if isinstance(event_loop, EventLoopMonitor) else EventLoopMonitor()
            self.add(
                "event_loop",
                monitor.health_check,
                critical=True,
                restart=True,
                component_type="system",
            )
            self.loop_monitor = monitor

    @property
    def names(self) -> list[str]:
        """The registered check names, in registration order."""
        return list(self._checks)

    @property
    def started(self) -> bool:
        """True once every critical check passed in one run (or :meth:`mark_started`)."""
        return self._started

    def mark_started(self) -> None:
        """Declare start-up done: from now on ``/health/instance`` ignores dependency outages."""
        self._started = True

    def invalidate(self) -> None:
        """Forget the cached report; the next call runs every check."""
        self._cached = None

    @property
    def shutting_down(self) -> bool:
        """True when the attached shutdown coordinator reports shutdown under way."""
        shutdown = self.shutdown
        return shutdown is not None and bool(shutdown.is_shutting_down)

    # --- running ------------------------------------------------------------------------------

    async def run(self, *, fresh: bool = False) -> HealthReport:
        """Run every check concurrently (or reuse a recent report) and aggregate them.

        Never raises because of a check: a check that raises, hangs past its timeout or returns
        garbage is reported as failed. ``fresh=True`` skips the cache.
        """
        if not fresh:
            cached = self._from_cache()
            if cached is not None:
                return cached
        loop = asyncio.get_running_loop()
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._evaluate())
            self._inflight = task
        # shield: a client disconnecting mid-run must not cancel the run others wait on.
        return await asyncio.shield(task)

    def run_sync(self, *, fresh: bool = False) -> HealthReport:
        """Blocking twin of :meth:`run` for WSGI threads (one run at a time; others reuse it).

        Must not be called from a thread running an event loop.
        """
        if not fresh:
            cached = self._from_cache()
            if cached is not None:
                return cached
        with self._sync_lock:
            if not fresh:
                cached = self._from_cache(count_hit=False)
                if cached is not None:
                    return cached
            return _run_blocking(self._evaluate())

    def _from_cache(self, *, count_hit: bool = True) -> HealthReport | None:
        cached = self._cached
        if cached is None or self.cache_ttl <= 0:
            return None
        age = self._clock() - self._cached_at
        if age < self.cache_ttl:
            if count_hit:
                self._counts["cache_hits"] += 1
            return cached
        if age < self.cache_ttl + self.stale_while_revalidate:
            self._revalidate_in_background()
            self._counts["stale_served"] += 1
            return cached
        return None

    def _revalidate_in_background(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop (a WSGI thread): refresh in a daemon thread so this caller is not held up.
            if self._sync_lock.acquire(blocking=False):

                def refresh() -> None:
                    try:
                        _run_blocking(self._evaluate())
                    finally:
                        self._sync_lock.release()

                threading.Thread(target=refresh, name="renderkit-health", daemon=True).start()
            return
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not loop:
            self._inflight = loop.create_task(self._evaluate())

    async def _evaluate(self) -> HealthReport:
        start = self._clock()
        specs = list(self._checks.values())
        results = await asyncio.gather(*(self._run_one(spec) for spec in specs))
        checks = {
            spec.name: self._settle(spec, result)
            for spec, result in zip(specs, results, strict=True)
        }
        critical = frozenset(s.name for s in specs if s.critical)
        status: Status = "healthy"
        for name, result in checks.items():
            if result.status == "healthy":
                continue
            level: Status = (
                "unhealthy" if name in critical and result.status == "unhealthy" else "degraded"
            )
            if _RANK[level] > _RANK[status]:
                status = level
        if not self._started and all(checks[n].status != "unhealthy" for n in critical):
            self._started = True
        shutting_down = self.shutting_down
        if shutting_down:
            status = "unhealthy"
        end = self._clock()
        report = HealthReport(
            status=status,
            checks=checks,
            critical=critical,
            restart=frozenset(s.name for s in specs if s.restart),
            timestamp=datetime.now(UTC),
            uptime=end - self._created,
            duration_ms=(end - start) * 1000.0,
            started=self._started,
            shutting_down=shutting_down,
            version=self.version,
            service_id=self.service_id,
            release_id=self.release_id,
            component_types={s.name: s.component_type for s in specs},
        )
        self._counts["runs"] += 1
        self._cached, self._cached_at = report, end
        return report

    async def _run_one(self, spec: CheckSpec) -> CheckResult:
        start = time.perf_counter()
        try:
            if spec.is_async:
                value = await asyncio.wait_for(spec.check(), spec.timeout)
            else:
                value = await self._run_in_thread(spec, start)
        except TimeoutError:
            result = CheckResult.unhealthy(f"timeout after {spec.timeout:g} s")
        except _StillRunning:
            result = CheckResult.unhealthy(
                f"previous run still in progress (hung for more than {spec.timeout:g} s)"
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            result = CheckResult.unhealthy(_describe(exc))
        else:
            result = _coerce(value)
        return replace(result, latency_ms=(time.perf_counter() - start) * 1000.0)

    async def _run_in_thread(self, spec: CheckSpec, start: float) -> Any:
        if spec.running is not None and not spec.running.is_set():
            raise _StillRunning
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        done = threading.Event()
        spec.running = done

        def settle(value: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

        def work() -> None:
            value: Any = None
            error: BaseException | None = None
            try:
                value = spec.check()
            except BaseException as exc:  # reported as the check's failure, never re-raised here
                error = exc
            finally:
                done.set()
            try:
                loop.call_soon_threadsafe(settle, value, error)
            except RuntimeError:
                pass  # the loop closed while the check hung: nobody waits for it any more

        # A daemon thread, not an executor: a check hung forever must not block process exit.
        threading.Thread(target=work, name=f"renderkit-health-{spec.name}", daemon=True).start()
        value = await asyncio.wait_for(future, spec.timeout)
        if inspect.isawaitable(value):
            remaining = max(spec.timeout - (time.perf_counter() - start), 0.001)
            value = await asyncio.wait_for(_await(value), remaining)
        return value

    def _settle(self, spec: CheckSpec, raw: CheckResult) -> CheckResult:
        """Apply hysteresis and log a status change once."""
        result = raw
        if raw.status == "healthy":
            spec.failures_in_a_row = 0
        else:
            spec.failures_in_a_row += 1
            if spec.failures_in_a_row < spec.failure_threshold and spec.reported in (
                None,
                "healthy",
            ):
                result = CheckResult(
                    "healthy",
                    f"{spec.failures_in_a_row} failure(s) in a row, reported after "
                    f"{spec.failure_threshold}: {raw.message}".rstrip(": "),
                    {**raw.details, "observed_status": raw.status},
                    raw.latency_ms,
                )
        previous, spec.reported = spec.reported, result.status
        if previous is not None and previous != result.status:
            log = logger.info if result.status == "healthy" else logger.warning
            log(
                "health check %r is now %s (was %s)%s",
                spec.name,
                result.status,
                previous,
                f": {result.message}" if result.message else "",
            )
        elif previous is None and result.status != "healthy":
            logger.warning(
                "health check %r is %s: %s", spec.name, result.status, result.message or "-"
            )
        return result

    # --- HTTP -----------------------------------------------------------------------------------

    def authorized(self, authorization: str | None, client: str | None) -> bool:
        """True when a caller may see the detailed report (token or trusted address)."""
        if self.token is not None and authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and secrets.compare_digest(
                value.strip().encode("utf-8", "replace"), self.token.encode("utf-8")
            ):
                return True
        if client and self.trusted_networks:
            try:
                address = ipaddress.ip_address(client)
            except ValueError:
                return False
            return any(address in network for network in self.trusted_networks)
        return False

    def render(
        self,
        kind: EndpointKind,
        report: HealthReport | None,
        *,
        detail: bool,
        health_json: bool,
    ) -> tuple[int, bytes, bytes]:
        """Decide status code, body and content type for one endpoint (framework-free)."""
        if kind == "live":
            status: Status = "healthy"
            code = 200
            body: dict[str, Any] = {"status": _IETF[status] if health_json else status}
            if detail:
                body["uptime"] = round(self._clock() - self._created)
        elif report is None:  # shutting down: answered without running checks
            code, status = 503, "unhealthy"
            body = {"status": _IETF[status] if health_json else status}
            if detail:
                body["notes" if health_json else "message"] = (
                    ["shutting down"] if health_json else "shutting down"
                )
        else:
            if kind == "instance":
                status = report.instance_status()
                shown = replace(report, status=status)
            else:
                status = report.status
                shown = report
            code = 503 if status == "unhealthy" else 200
            body = (
                shown.to_health_json(detail=detail) if health_json else shown.to_dict(detail=detail)
            )
        content_type = HEALTH_JSON if health_json else "application/json"
        payload = json.dumps(body, separators=(",", ":"), default=str).encode()
        return code, payload, content_type.encode()

    async def respond(self, kind: EndpointKind, request: RequestFacts) -> tuple[int, bytes, bytes]:
        """Answer one request to endpoint ``kind`` (async: runs checks on this loop)."""
        report = None
        if kind != "live" and not self.shutting_down:
            report = await self.run()
        return self.render(kind, report, **self._presentation(request))

    def respond_sync(self, kind: EndpointKind, request: RequestFacts) -> tuple[int, bytes, bytes]:
        """Blocking twin of :meth:`respond` for WSGI."""
        report = None
        if kind != "live" and not self.shutting_down:
            report = self.run_sync()
        return self.render(kind, report, **self._presentation(request))

    def _presentation(self, request: RequestFacts) -> dict[str, bool]:
        client = client_ip(request.peer, request.headers, self.trust)
        accept = header(request.headers, b"accept") or ""
        health_json = HEALTH_JSON in accept or "format=ietf" in request.query
        return {
            "detail": self.authorized(header(request.headers, b"authorization"), client),
            "health_json": health_json,
        }

    def endpoint(self, kind: EndpointKind = "health") -> HealthEndpoint:
        """A pure ASGI app answering ``kind`` ("health", "live", "ready" or "instance")."""
        if kind not in _KINDS:
            raise ValueError(
                f"Health.endpoint(kind={kind!r}): use one of {', '.join(sorted(_KINDS))}"
            )
        return HealthEndpoint(self, kind)

    def routes(self, prefix: str = "/health") -> list[Route]:
        """Starlette routes: ``prefix``, ``prefix/live``, ``prefix/ready``, ``prefix/instance``."""
        from starlette.routing import Route

        if not prefix.startswith("/") or (prefix.endswith("/") and prefix != "/"):
            raise ValueError(
                f"Health.routes(prefix={prefix!r}): start with '/' and do not end with '/'"
            )
        base = prefix.rstrip("/")
        paths: tuple[tuple[str, EndpointKind], ...] = (
            (base or "/", "health"),
            (f"{base}/live", "live"),
            (f"{base}/ready", "ready"),
            (f"{base}/instance", "instance"),
        )
        return [
            Route(path, self.endpoint(kind), methods=["GET", "HEAD"], name=f"health_{kind}")
            for path, kind in paths
        ]

    def stats(self) -> dict[str, Any]:
        """Run counters, cache hits and the last reported status per check."""
        return {
            **self._counts,
            "started": self._started,
            "checks": {name: spec.reported for name, spec in self._checks.items()},
        }


EndpointKind = Literal["health", "live", "ready", "instance"]
_KINDS = frozenset({"health", "live", "ready", "instance"})


class _StillRunning(Exception):
    """A sync check's previous invocation has not returned yet."""


async def _await(value: Awaitable[Any]) -> Any:
    return await value


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a health endpoint needs from a request: peer, headers, query string."""

    peer: str | None
    headers: list[tuple[bytes, bytes]]
    query: str = ""


_NO_STORE = (b"cache-control", b"no-store")


class HealthEndpoint:
    """Pure ASGI app for one health endpoint (built by :meth:`Health.endpoint`)."""

    def __init__(self, health: Health, kind: EndpointKind) -> None:
        self.health = health
        self.kind = kind

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            raise RuntimeError("HealthEndpoint serves HTTP only")
        client = scope.get("client")
        facts = RequestFacts(
            peer=client[0] if client else None,
            headers=list(scope.get("headers") or ()),
            query=(scope.get("query_string") or b"").decode("latin-1"),
        )
        code, body, content_type = await self.health.respond(self.kind, facts)
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            _NO_STORE,
        ]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        head = scope.get("method") == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})


# --- built-in checks -----------------------------------------------------------------------------


def _percent(part: float, whole: float) -> float:
    return round(part / whole * 100.0, 1) if whole > 0 else 0.0


def _fraction(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{what}={value!r}: use a fraction between 0 and 1 (0.8 means 80 %)")
    return float(value)


def memory_check(
    *,
    warn: float = 0.80,
    fail: float = 0.95,
    limit: int | None = None,
    platform: Platform | None = None,
) -> Callable[[], CheckResult]:
    """A check comparing this process's RSS with the container's memory limit.

    ``limit`` in bytes defaults to ``platform.memory_limit`` (cgroup-aware, from
    ``renderkit.platform.detect()``). Degraded at ``warn``, unhealthy at ``fail``.
    """
    warn = _fraction(warn, "memory_check(warn)")
    fail = _fraction(fail, "memory_check(fail)")
    if warn > fail:
        raise ValueError(f"memory_check(warn={warn}, fail={fail}): warn must not exceed fail")
    state: dict[str, Any] = {}

    def check() -> CheckResult:
        import psutil

        if "limit" not in state:
            found = limit
            if found is None:
                from renderkit.platform import detect

                found = (platform or detect()).memory_limit
            state["limit"] = found
            state["process"] = psutil.Process()
        rss = int(state["process"].memory_info().rss)
        cap = state["limit"]
        if not cap:
            return CheckResult.healthy("memory limit unknown", rss=rss)
        ratio = rss / cap
        details = {"usage": _percent(rss, cap), "rss": rss, "limit": cap}
        if ratio >= fail:
            return CheckResult.unhealthy(f"RSS at {ratio:.0%} of the memory limit", **details)
        if ratio >= warn:
            return CheckResult.degraded(f"RSS at {ratio:.0%} of the memory limit", **details)
        return CheckResult.healthy(**details)

    return check


def cpu_check(*, warn: float = 0.90, platform: Platform | None = None) -> Callable[[], CheckResult]:
    """A check reporting this process's CPU use as a share of the container's CPU limit.

    Degraded above ``warn`` (busy, not broken: CPU never makes the report unhealthy). The
    first call measures from the moment the check was created. Calls closer together than
    one second reuse the last figure: CPU time advances in scheduler ticks, so a window of a
    few milliseconds would report thousands of percent.
    """
    warn = _fraction(warn, "cpu_check(warn)")
    state: dict[str, Any] = {}

    def sample() -> tuple[float, float]:
        import psutil

        process = state.get("process")
        if process is None:
            process = state["process"] = psutil.Process()
        times = process.cpu_times()
        return float(times.user + times.system), time.monotonic()

    state["last"] = sample()

    def check() -> CheckResult:
        if "cpus" not in state:
            from renderkit.platform import detect

            state["cpus"] = (platform or detect()).cpu_limit or float(os.cpu_count() or 1)
        cpu, now = sample()
        last_cpu, last_now = state["last"]
        window = now - last_now
        if window >= _CPU_MIN_WINDOW or "share" not in state:
            # Never divide by less than the minimum window: a short first window then
            # under-reports instead of inflating the figure.
            state["share"] = (cpu - last_cpu) / max(window, _CPU_MIN_WINDOW) / state["cpus"]
            if window >= _CPU_MIN_WINDOW:
                state["last"] = (cpu, now)
        share = float(state["share"])
        details = {"usage": round(share * 100.0, 1), "cpus": state["cpus"]}
        if share >= warn:
            return CheckResult.degraded(f"CPU at {share:.0%} of the limit", **details)
        return CheckResult.healthy(**details)

    return check


_CPU_MIN_WINDOW = 1.0


def disk_check(
    path: str = "/", *, warn: float = 0.90, fail: float = 0.98
) -> Callable[[], CheckResult]:
    """A check on free space of the filesystem holding ``path`` (degraded at ``warn`` used,
    unhealthy at ``fail``)."""
    warn = _fraction(warn, "disk_check(warn)")
    fail = _fraction(fail, "disk_check(fail)")
    if warn > fail:
        raise ValueError(f"disk_check(warn={warn}, fail={fail}): warn must not exceed fail")

    def check() -> CheckResult:
        import psutil

        usage = psutil.disk_usage(path)
        ratio = usage.used / usage.total if usage.total else 0.0
        details: dict[str, Any] = {
            "usage": _percent(usage.used, usage.total),
            "free": int(usage.free),
        }
        if ratio >= fail:
            return CheckResult.unhealthy(f"disk {ratio:.0%} full", **details)
        if ratio >= warn:
            return CheckResult.degraded(f"disk {ratio:.0%} full", **details)
        return CheckResult.healthy(**details)

    return check


def shutdown_check(state: ShutdownState) -> Callable[[], Awaitable[CheckResult]]:
    """A check that turns unhealthy once ``state.is_shutting_down`` (a ShutdownCoordinator)."""

    async def check() -> CheckResult:
        if state.is_shutting_down:
            return CheckResult.unhealthy("shutting down")
        return CheckResult.healthy()

    return check


# --- event loop lag --------------------------------------------------------------------------

# Set while Health.run_sync / a WSGI-side refresh drives a throwaway event loop: there is no
# serving loop to watch then, and starting a monitor on that loop would measure nothing.
_BLOCKING_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "renderkit_health_blocking_run", default=False
)


def _run_blocking(coro: Coroutine[Any, Any, HealthReport]) -> HealthReport:
    token = _BLOCKING_RUN.set(True)
    try:
        return asyncio.run(coro)
    finally:
        _BLOCKING_RUN.reset(token)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


class EventLoopMonitor:
    """Measures event-loop lag: how late a periodic ``loop.call_later`` tick fires.

    Every ``interval`` seconds a tick is due; when handlers block the loop (sync I/O,
    ``time.sleep``, heavy CPU work) the tick runs late, and the delay is the time every other
    request on this instance waited too. The last ``window`` seconds of samples are kept (a
    bounded deque); :meth:`health_check` is healthy while the worst of them stays under
    ``warn``, degraded above it, unhealthy at ``fail``.

    Nothing runs until :meth:`start` (from the ASGI lifespan: :meth:`lifespan`), or until the
    first :meth:`health_check` starts it on the loop running the check. No task and no thread:
    one timer handle on the loop, cancelled by :meth:`stop`. Use it from one event loop.
    """

    def __init__(
        self,
        *,
        interval: float = 0.5,
        window: float = 10.0,
        warn: float = 0.1,
        fail: float = 2.0,
    ) -> None:
        self.interval = _positive(interval, "EventLoopMonitor(interval)")
        self.window = _positive(window, "EventLoopMonitor(window)")
        self.warn = _positive(warn, "EventLoopMonitor(warn)")
        self.fail = _positive(fail, "EventLoopMonitor(fail)")
        if self.warn > self.fail:
            raise ValueError(
                f"EventLoopMonitor(warn={warn}, fail={fail}): warn must not exceed fail"
            )
        if self.window < self.interval:
            raise ValueError(
                f"EventLoopMonitor(window={window}, interval={interval}): the window must "
                "hold at least one interval"
            )
        self._samples: deque[float] = deque(maxlen=max(1, math.ceil(self.window / interval)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | None = None
        self._due = math.inf
        self._ticks = 0
        self._worst_ever = 0.0

    @property
    def running(self) -> bool:
        """True while a tick is scheduled on a loop that has not been closed."""
        return self._handle is not None and self._loop is not None and not self._loop.is_closed()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start ticking on ``loop`` (default: the running loop). Calling it again is a no-op.

        ``loop`` may belong to another thread or not run yet: the first tick is then scheduled
        from inside it, so waiting for the loop to start never counts as lag. Raises
        ``RuntimeError`` when called outside a running loop without ``loop``.
        """
        if self.running:
            return
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "EventLoopMonitor.start() needs the event loop to watch: call it from the "
                    "app's lifespan (or pass loop=...), or let the first health run start it"
                ) from None
        if loop is not self._loop:
            self._samples.clear()  # samples of another (closed) loop say nothing about this one
        self._loop = loop
        try:
            own = asyncio.get_running_loop() is loop
        except RuntimeError:
            own = False
        if own:
            self._schedule()
        else:
            self._due = math.inf
            self._handle = loop.call_soon_threadsafe(self._begin)
        logger.debug("event loop monitor started (tick every %g s)", self.interval)

    def stop(self) -> None:
        """Cancel the pending tick; samples are kept for :meth:`stats`. Safe to call twice."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop and loop.is_running():
            # Another thread: TimerHandle.cancel is not thread-safe, let the loop do it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(handle.cancel)
            return
        handle.cancel()
        logger.debug("event loop monitor stopped")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """ASGI lifespan for ``Starlette(lifespan=monitor.lifespan)``: start, then stop."""
        self.start()
        try:
            yield
        finally:
            self.stop()

    def _begin(self) -> None:
        if self._handle is not None:  # not stopped before the loop got to it
            self._schedule()

    def _schedule(self) -> None:
        loop = self._loop
        assert loop is not None
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        if self._handle is None or loop is None:
            return  # stopped from another thread after this tick was already queued
        # Timers may fire up to the clock resolution early: that is no lag.
        lag = max(0.0, loop.time() - self._due)
        self._samples.append(lag)
        self._ticks += 1
        self._worst_ever = max(self._worst_ever, lag)
        self._schedule()

    def _overdue(self) -> float:
        """How late the pending tick already is (the loop may be blocked right now)."""
        loop = self._loop
        if not self.running or loop is None:
            return 0.0
        return max(0.0, loop.time() - self._due)

    def lag(self) -> dict[str, float]:
        """Recent lag in seconds: ``last``, ``max`` and ``p95`` of the window (0.0 when empty).

        ``max`` includes how late the pending tick already is.
        """
        samples = sorted(self._samples)
        overdue = self._overdue()
        if not samples:
            return {"last": overdue, "max": overdue, "p95": overdue}
        p95 = samples[max(0, math.ceil(0.95 * len(samples)) - 1)]
        return {
            "last": max(self._samples[-1], overdue),
            "max": max(samples[-1], overdue),
            "p95": p95,
        }

    def stats(self) -> dict[str, Any]:
        """Ticks measured, samples in the window, recent lag (ms) and the worst ever seen."""
        lag = self.lag()
        return {
            "running": self.running,
            "interval": self.interval,
            "ticks": self._ticks,
            "samples": len(self._samples),
            "lag_last_ms": _ms(lag["last"]),
            "lag_max_ms": _ms(lag["max"]),
            "lag_p95_ms": _ms(lag["p95"]),
            "lag_worst_ever_ms": _ms(self._worst_ever),
        }

    async def health_check(self) -> CheckResult:
        """Healthy under ``warn`` of lag, degraded above it, unhealthy at ``fail``.

        Starts the monitor on the running loop when nobody did (or its loop was closed).
        """
        if not self.running:
            if _BLOCKING_RUN.get():
                return CheckResult.healthy(
                    "no event loop to watch: served by threads (WSGI)", samples=0
                )
            self.start()
        lag = self.lag()
        details: dict[str, Any] = {
            "lag_max_ms": _ms(lag["max"]),
            "lag_p95_ms": _ms(lag["p95"]),
            "samples": len(self._samples),
        }
        worst = lag["max"]
        if not self._samples and worst == 0.0:
            return CheckResult.healthy("measuring: no sample yet", **details)
        span = f"worst in the last {self.window:g} s"
        if worst >= self.fail:
            return CheckResult.unhealthy(
                f"event loop blocked: lag {worst:.2f} s ({span}; fails at {self.fail:g} s)",
                **details,
            )
        if worst >= self.warn:
            return CheckResult.degraded(
                f"event loop sluggish: lag {worst:.2f} s ({span}; warns at {self.warn:g} s)",
                **details,
            )
        return CheckResult.healthy(**details)
