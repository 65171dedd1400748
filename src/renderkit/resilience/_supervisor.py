"""A supervisor for background tasks: staggered start, restart with backoff, stop on shutdown.

Background loops (a queue consumer, a scheduler, a cache warmer) die silently in most apps: an
exception ends the task and nobody notices until the data is stale. :class:`Supervisor` runs
each as an asyncio task, restarts one that fails with full-jitter exponential backoff, staggers
their first start so N instances booting together do not hit a dependency at once, stops them
all on shutdown, and reports each one to health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from renderkit._options import count_option, seconds_option
from renderkit.health import CheckResult
from renderkit.resilience._retry import full_jitter

__all__ = ["RestartPolicy", "Supervisor", "TaskState"]

RestartPolicy = Literal["on_failure", "always", "never"]
TaskState = Literal["pending", "running", "backoff", "finished", "failed", "stopped"]

logger = logging.getLogger("renderkit.resilience")


@dataclass
class _Task:
    name: str
    factory: Callable[[], Awaitable[Any]]
    restart: RestartPolicy
    critical: bool
    state: TaskState = "pending"
    restarts: int = 0
    failures_in_a_row: int = 0
    last_error: str | None = None
    started_at: float | None = None
    task: asyncio.Task[None] | None = None


class Supervisor:
    """Run background coroutines, restarting failed ones.

    ``stagger``: seconds between the first starts of consecutive tasks (the first starts at
    once). ``initial_backoff`` / ``max_backoff``: the full-jitter restart delay grows from one
    to the other with consecutive failures; a run that lasted ``reset_after`` seconds resets it.
    ``max_restarts``: give up on a task after this many restarts in a row (None: never).
    """

    def __init__(
        self,
        *,
        stagger: float = 5.0,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        reset_after: float = 60.0,
        max_restarts: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stagger = seconds_option(stagger, "Supervisor(stagger)", allow_zero=True)
        self.initial_backoff = seconds_option(
            initial_backoff, "Supervisor(initial_backoff)", allow_zero=True
        )
        self.max_backoff = seconds_option(max_backoff, "Supervisor(max_backoff)", allow_zero=True)
        self.reset_after = seconds_option(reset_after, "Supervisor(reset_after)", allow_zero=True)
        self.max_restarts = count_option(max_restarts, "Supervisor(max_restarts)", optional=True)
        self._clock = clock
        self._tasks: dict[str, _Task] = {}
        self._runner: list[asyncio.Task[None]] = []
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(
        self,
        name: str,
        factory: Callable[[], Awaitable[Any]],
        *,
        restart: RestartPolicy = "on_failure",
        critical: bool = False,
    ) -> None:
        """Supervise ``factory`` (an async function of no arguments; called anew on restart).

        ``restart``: ``on_failure`` (an exception restarts it; returning ends it), ``always``
        (returning restarts it too: a loop that should never end), or ``never``.
        ``critical``: a failed or given-up task makes its health check unhealthy, not degraded.
        """
        if not name or name in self._tasks:
            raise ValueError(f"Supervisor.add(name={name!r}): use a unique, non-empty name")
        if not callable(factory):
            raise TypeError(
                f"Supervisor.add({name!r}, ...): pass the async function itself, not a "
                f"coroutine object (got {type(factory).__name__})"
            )
        if restart not in ("on_failure", "always", "never"):
            raise ValueError(
                f"Supervisor.add({name!r}, restart={restart!r}): use 'on_failure', 'always' or "
                "'never'"
            )
        self._tasks[name] = _Task(name, factory, restart, critical)
        if self._loop is not None and not self._stopping:  # started (even with no task yet)
            self._spawn(self._tasks[name], 0.0)

    async def start(self) -> None:
        """Start every task, ``stagger`` seconds apart (returns at once; starts continue)."""
        if self._runner:
            return
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        for index, entry in enumerate(self._tasks.values()):
            self._spawn(entry, index * self.stagger)

    def _spawn(self, entry: _Task, delay: float) -> None:
        # add() after start() may come from sync code, another thread or another loop: the
        # task belongs on the loop start() ran on.
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        target = self._loop or running
        if target is None or target.is_closed():
            raise RuntimeError(
                f"Supervisor.add({entry.name!r}): the event loop the supervisor was started on "
                "has closed; call add() before start(), or start() it again in the running app"
            )
        if running is not target:
            target.call_soon_threadsafe(self._spawn_here, entry, delay)
            return
        self._spawn_here(entry, delay)

    def _spawn_here(self, entry: _Task, delay: float) -> None:
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(
            self._supervise(entry, delay), name=f"renderkit-supervisor-{entry.name}"
        )
        entry.task = task
        self._runner.append(task)

    async def _supervise(self, entry: _Task, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        while not self._stopping:
            entry.state = "running"
            entry.started_at = self._clock()
            try:
                await entry.factory()
            except asyncio.CancelledError:
                entry.state = "stopped"
                raise
            except Exception as exc:
                entry.last_error = f"{type(exc).__name__}: {exc}"[:200]
                failed = True
                logger.error("background task %r failed: %s", entry.name, entry.last_error)
            else:
                failed = False
            ran = self._clock() - (entry.started_at or self._clock())
            if ran >= self.reset_after:
                entry.failures_in_a_row = 0
            if not failed and entry.restart != "always":
                entry.state = "finished"
                return
            if failed and entry.restart == "never":
                entry.state = "failed"
                return
            entry.failures_in_a_row += 1
            if self.max_restarts is not None and entry.failures_in_a_row > self.max_restarts:
                entry.state = "failed"
                logger.error(
                    "background task %r gave up after %d restart(s) in a row",
                    entry.name,
                    self.max_restarts,
                )
                return
            wait = full_jitter(
                entry.failures_in_a_row,
                initial=self.initial_backoff,
                max_delay=self.max_backoff,
            )
            entry.state = "backoff"
            entry.restarts += 1
            await asyncio.sleep(wait)

    async def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task and wait up to ``timeout`` seconds for them to end."""
        self._stopping = True
        runners, self._runner = self._runner, []
        for task in runners:
            task.cancel()
        if runners:
            _, pending = await asyncio.wait(runners, timeout=timeout)
            if pending:
                logger.warning(
                    "%d background task(s) did not stop within %.1fs", len(pending), timeout
                )
        for entry in self._tasks.values():
            if entry.state in ("pending", "running", "backoff"):
                entry.state = "stopped"

    @property
    def names(self) -> list[str]:
        """The supervised task names, in the order they were added."""
        return list(self._tasks)

    def state(self, name: str) -> TaskState:
        """The current state of task ``name``."""
        return self._tasks[name].state

    def task_check(self, name: str) -> Callable[[], CheckResult]:
        """A health check for one task: for ``health.add(f"task:{name}", ...)``-style wiring."""
        if name not in self._tasks:
            raise KeyError(f"Supervisor.task_check({name!r}): no task of that name")

        def check() -> CheckResult:
            return self._entry_result(self._tasks[name])

        return check

    def _entry_result(self, entry: _Task) -> CheckResult:
        details: dict[str, Any] = {"state": entry.state, "restarts": entry.restarts}
        if entry.state in ("running", "pending", "finished"):
            return CheckResult.healthy(**details)
        if entry.state == "stopped":
            return CheckResult.healthy("stopped", **details)
        message = f"task {entry.name!r} is {entry.state}"
        if entry.last_error:
            message += f" (last error {entry.last_error})"
        if entry.state == "failed" and entry.critical:
            return CheckResult.unhealthy(message, **details)
        return CheckResult.degraded(message, **details)

    def health_check(self) -> CheckResult:
        """The worst task state: unhealthy when a critical task gave up, degraded while any
        task is failed or backing off, healthy otherwise; per-task states in details."""
        results = {name: self._entry_result(entry) for name, entry in self._tasks.items()}
        tasks = {name: r.status for name, r in results.items()}
        bad = [r for r in results.values() if r.status != "healthy"]
        if any(r.status == "unhealthy" for r in bad):
            worst = next(r for r in bad if r.status == "unhealthy")
            return CheckResult.unhealthy(worst.message, tasks=tasks)
        if bad:
            return CheckResult.degraded("; ".join(r.message for r in bad), tasks=tasks)
        return CheckResult.healthy(tasks=tasks)

    def stats(self) -> dict[str, Any]:
        """Per-task state, restart count and last error as a plain dict."""
        return {
            name: {
                "state": entry.state,
                "restarts": entry.restarts,
                "last_error": entry.last_error,
            }
            for name, entry in self._tasks.items()
        }

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
