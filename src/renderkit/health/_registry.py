"""The :class:`Health` registry: checks, their aggregation and caching, and its endpoints."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from renderkit._http import ProxyTrust, parse_networks
from renderkit._options import seconds_option
from renderkit.health import _endpoint
from renderkit.health._calls import DaemonPool, is_async_callable
from renderkit.health._endpoint import HealthHTTP
from renderkit.health._loop import EventLoopMonitor, run_blocking
from renderkit.health._report import HealthReport, aggregate
from renderkit.health._result import Check, ShutdownState, Status
from renderkit.health._runner import CheckSpec, describe, run_check, scrub_value, settle
from renderkit.health._system import cpu_check, disk_check, memory_check

if TYPE_CHECKING:
    from renderkit.platform import Platform

__all__ = ["DEFAULT_CACHE_TTL", "DEFAULT_CHECK_TIMEOUT", "Health"]

DEFAULT_CHECK_TIMEOUT = 5.0
"""Seconds one check may take before it counts as failed (Render waits 5 s for an answer)."""
DEFAULT_CACHE_TTL = 1.0
"""Seconds a report is reused, so a storm of probes is not a storm of database queries."""
DEFAULT_THREADS = 16
"""Sync checks running at once in the registry's reusable daemon threads."""

logger = logging.getLogger("renderkit.health")


def _at_least_zero(value: object, what: str) -> float:
    return seconds_option(value, what, allow_zero=True)


def _optional_callable(value: object, what: str) -> Callable[[], Any] | None:
    if value is not None and not callable(value):
        raise TypeError(f"Health({what}=...): use a callable taking no arguments, or None")
    return value


def _stats_of(check: Check, stats: Callable[[], Any] | bool | None) -> Callable[[], Any] | None:
    """``stats=None``: a bound ``x.health_check`` brings ``x.stats``; False: none."""
    if stats is False:
        return None
    if stats is None or stats is True:
        owner = getattr(check, "__self__", None)
        found = getattr(owner, "stats", None) if owner is not None else None
        return found if callable(found) and not is_async_callable(found) else None
    if not callable(stats):
        raise TypeError("Health.add(stats=...): use a callable returning a dict, or False")
    return stats


class Health(HealthHTTP):
    """A registry of health checks, their aggregation, caching and HTTP endpoints.

    ``timeout``: default seconds per check. ``cache_ttl``: seconds a report is reused (0: never).
    ``stale_while_revalidate``: once the cache expired, serve a report up to this many seconds
    old at once while one background run refreshes it (0: callers wait for the fresh run).
    ``token``: callers sending ``Authorization: Bearer <token>`` get the detailed report.
    ``trusted_networks``: client addresses (CIDRs) that get it without a token (default:
    loopback only); the client address is resolved with ``trust`` (default: the TCP peer), and
    a forwarded address only counts where no sender could have forged it.
    ``shutdown``: an object with ``is_shutting_down`` (a ``ShutdownCoordinator``); once true,
    ``/health``, ``/health/ready`` and ``/health/instance`` answer 503 without running checks.
    ``version`` / ``service_id`` / ``release_id`` appear in detailed reports; ``service_id``
    and ``release_id`` default to the platform's service name and git commit, and ``platform``
    adds a ``platform`` block. ``metrics``: a callable whose dict becomes the ``metrics`` block
    (``request_metrics.stats``). ``diagnostics``: a callable returning findings (dicts or
    objects with ``as_dict()``), served at ``/health/diagnostics`` to token holders only.
    ``status_words``: rename statuses in the JSON bodies (``{"healthy": "ok", "degraded":
    "ok", "unhealthy": "error"}``). ``threads``: sync checks running at once.
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
        metrics: Callable[[], Mapping[str, Any]] | None = None,
        diagnostics: Callable[[], Any] | None = None,
        status_words: Mapping[str, str] | None = None,
        threads: int = DEFAULT_THREADS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = seconds_option(timeout, "Health(timeout)")
        self.cache_ttl = _at_least_zero(cache_ttl, "Health(cache_ttl)")
        self.stale_while_revalidate = _at_least_zero(
            stale_while_revalidate, "Health(stale_while_revalidate)"
        )
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ValueError("Health(token=...): use a non-empty string, or None for no token")
        self.token = token
        self.trusted_networks = parse_networks(trusted_networks)
        self.trust = trust if trust is not None else ProxyTrust.none()
        self.shutdown = shutdown
        self.version = version
        if platform is not None:
            service_id = service_id if service_id is not None else platform.service_name
            release_id = release_id if release_id is not None else platform.git_commit
        self.service_id = service_id
        self.release_id = release_id
        self.platform = platform
        self.metrics = _optional_callable(metrics, "metrics")
        self.diagnostics = _optional_callable(diagnostics, "diagnostics")
        self.status_words = _endpoint.check_words(status_words)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"Health(threads={threads!r}): use an int >= 1 (sync checks at once)")
        self._pool = DaemonPool(threads, name="renderkit-health", idle=15.0)
        self._clock = clock
        self._created = clock()
        self._checks: dict[str, CheckSpec] = {}
        self._stats: dict[str, Callable[[], Any]] = {}
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
        """Build from the ``HEALTH_*`` variables (:class:`HealthSettings`); ``service_id``,
        ``release_id``, the ``platform`` block and the proxy ``trust`` come from
        ``renderkit.platform.detect``. Keyword ``options`` override the environment; every
        bad variable is reported at once."""
        from renderkit.health._env import health_options
        from renderkit.platform import detect

        values = {**health_options(environ), **options}
        platform = values.setdefault("platform", detect(environ))
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
        stats: Callable[[], Mapping[str, Any]] | bool | None = None,
    ) -> None:
        """Register ``check`` (sync or async, no arguments) under ``name``.

        ``critical``: its failure makes the report unhealthy (503); a non-critical failure only
        degrades it. ``timeout``: seconds before it counts as failed (default: the registry's).
        ``restart``: a failure means restarting *this instance* helps (a local fault such as
        memory at its limit), so ``/health/instance`` fails on it after start-up.
        ``failure_threshold``: report a failure only after this many in a row (hysteresis).
        ``stats``: a callable whose dict joins the detailed entry (pool figures are drawn from
        it); by default a bound ``component.health_check`` brings ``component.stats``.
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
        seconds = (
            self.timeout if timeout is None else seconds_option(timeout, f"Health.add({name!r})")
        )
        stats_fn = _stats_of(check, stats)
        self._checks[name] = CheckSpec(
            name=name,
            check=check,
            critical=bool(critical),
            timeout=seconds,
            restart=bool(restart),
            failure_threshold=failure_threshold,
            component_type=component_type,
            is_async=is_async_callable(check),
        )
        if stats_fn is not None:
            self._stats[name] = stats_fn
        self._cached = None

    def remove(self, name: str) -> None:
        """Unregister the check ``name`` (KeyError when there is none)."""
        del self._checks[name]
        self._stats.pop(name, None)
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
        platform = platform or self.platform
        if memory:
            check = memory_check(platform=platform)
            self.add("memory", check, critical=True, restart=True, component_type="system")
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
                stats=False,
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

    @property
    def uptime(self) -> float:
        """Seconds since this registry was created."""
        return self._clock() - self._created

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
            return run_blocking(self._evaluate())

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
                        run_blocking(self._evaluate())
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
        results = await asyncio.gather(*(run_check(spec, self._pool) for spec in specs))
        checks = {s.name: settle(s, r) for s, r in zip(specs, results, strict=True)}
        critical = frozenset(s.name for s in specs if s.critical)
        status: Status = aggregate(checks, critical)
        if not self._started and all(checks[n].status != "unhealthy" for n in critical):
            self._started = True
        shutting_down = self.shutting_down
        end = self._clock()
        report = HealthReport(
            status="unhealthy" if shutting_down else status,
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
            stats=self._collect_stats(),
        )
        self._counts["runs"] += 1
        self._cached, self._cached_at = report, end
        return report

    def _collect_stats(self) -> dict[str, dict[str, Any]]:
        collected: dict[str, dict[str, Any]] = {}
        for name, stats in self._stats.items():
            try:
                value = stats()
            except Exception as exc:  # a broken stats() must not break the health answer
                value = {"error": describe(exc)}
            if isinstance(value, Mapping):
                collected[name] = scrub_value(dict(value))
        return collected

    def stats(self) -> dict[str, Any]:
        """Run counters, cache hits, the sync-check threads and the last status per check."""
        return {
            **self._counts,
            "started": self._started,
            "threads": self._pool.stats(),
            "checks": {name: spec.reported for name, spec in self._checks.items()},
        }
