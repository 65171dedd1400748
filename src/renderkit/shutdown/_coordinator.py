"""The :class:`ShutdownCoordinator`: signal, drain, retire keep-alive connections, clean up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from renderkit._options import seconds_option
from renderkit.health import CheckResult
from renderkit.health._calls import is_async_callable
from renderkit.shutdown._event import ShutdownEvent
from renderkit.shutdown._hooks import CleanupHook, Hook, ShutdownSummary, run_hook
from renderkit.shutdown._lifespan import LifespanMixin
from renderkit.shutdown._signals import SignalChain
from renderkit.shutdown._tracker import RequestTracker

if TYPE_CHECKING:
    from renderkit.platform import Platform

__all__ = ["DEFAULT_GRACE_PERIOD", "DEFAULT_KEEPALIVE_WINDOW", "Phase", "ShutdownCoordinator"]

DEFAULT_GRACE_PERIOD = 25.0
"""Seconds from SIGTERM to the end of cleanup: inside Render's and Heroku's 30 s."""
DEFAULT_KEEPALIVE_WINDOW = 2.0
"""Seconds (at most) to keep answering requests on open keep-alive connections after the drain
delay, each with ``Connection: close``, before the server is told to stop."""

Phase = Literal["running", "draining", "closing", "cleanup", "stopped"]
T = TypeVar("T")

logger = logging.getLogger("renderkit.shutdown")

_POLL = 0.02  # seconds between in-flight checks while draining
_QUIET = 0.5  # seconds without a new request that end the keep-alive window early


def _default_exit(code: int) -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(code)


class ShutdownCoordinator(LifespanMixin):
    """Drain in-flight requests and run cleanup hooks within the platform's grace period.

    ``grace_period``: seconds from the first signal to the end of cleanup (keep it below the
    platform's SIGKILL delay). ``drain_delay``: seconds to keep serving after the signal before
    the server stops listening (readiness already fails). ``keepalive_window``: then, at most
    this many seconds more while requests still arrive on open keep-alive connections (every
    response says ``Connection: close`` from the signal on, so clients retire them; the window
    ends after 0.5 s without a new request; default 2 s, at most a quarter of what the grace
    period leaves after the drain delay; 0: tell the server at once). ``drain_timeout``:
    seconds the drain may take before in-flight requests are cancelled (default: what the grace
    period leaves after the drain delay and the hooks' timeouts, at least half of it).
    ``retry_after``: the ``Retry-After`` seconds on 503s after the server stopped. ``exit``:
    called with ``128 + signal`` on a second signal (default: flush logs, ``os._exit``).
    ``signals``: the signals to handle.
    """

    def __init__(
        self,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        *,
        drain_delay: float = 0.0,
        keepalive_window: float | None = None,
        drain_timeout: float | None = None,
        retry_after: int = 5,
        exit: Callable[[int], Any] = _default_exit,
        signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        where = "ShutdownCoordinator"
        self.grace_period = seconds_option(grace_period, f"{where}(grace_period)")
        self.drain_delay = seconds_option(drain_delay, f"{where}(drain_delay)", allow_zero=True)
        if keepalive_window is None:  # the default, within what the grace period leaves
            room = (self.grace_period - self.drain_delay) / 4
            keepalive_window = max(0.0, min(DEFAULT_KEEPALIVE_WINDOW, room))
        self.keepalive_window = seconds_option(
            keepalive_window, f"{where}(keepalive_window)", allow_zero=True
        )
        if self.drain_delay + self.keepalive_window >= self.grace_period:
            raise ValueError(
                f"{where}(drain_delay={drain_delay}, keepalive_window={keepalive_window}, "
                f"grace_period={grace_period}): the drain delay and the keep-alive window "
                "together must be shorter than the grace period"
            )
        self.drain_timeout = (
            None
            if drain_timeout is None
            else seconds_option(drain_timeout, f"{where}(drain_timeout)")
        )
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError(f"{where}(retry_after={retry_after!r}): use whole seconds >= 0")
        self.retry_after = retry_after
        self.signals = tuple(signals)
        self._exit = exit
        self._clock = clock
        self._hooks: list[CleanupHook] = []
        self._phase: Phase = "running"
        self.accepting = True
        """False once new requests get 503 (after the server was told to stop)."""
        self.retiring = False
        """True from the first signal on: responses carry ``Connection: close``."""
        self.shutting_down = ShutdownEvent()
        """Set when shutdown begins: ``await coordinator.shutting_down`` in long-lived streams."""
        self._requests = RequestTracker(clock)
        self._tasks = self._requests.tasks
        self._shutdown_lock = threading.Lock()
        self._began_at: float | None = None
        self._reason = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._chain = SignalChain(self.signals, self._handle_signal)
        self._lock = threading.RLock()
        self._done = threading.Event()
        self._summary: ShutdownSummary | None = None
        self._shutdown_task: asyncio.Task[ShutdownSummary] | None = None
        self._deadline_task: asyncio.Task[None] | None = None
        self._counts = {"refused": 0, "signals": 0}

    # --- construction from the platform -------------------------------------------------------

    @classmethod
    def from_platform(cls, platform: Platform | None = None, **options: Any) -> ShutdownCoordinator:
        """Defaults for where the app runs: the provider's SIGKILL delay minus a safety margin
        (Render and Heroku 30 s -> 25 s, Fly.io 5 s -> 4 s, Cloud Run 10 s -> 8 s), and a 5 s
        drain delay on Kubernetes (no delay elsewhere). ``options`` override."""
        if platform is None:
            from renderkit.platform import detect

            platform = detect()
        kill_after = platform.shutdown_grace_period
        grace = max(1.0, kill_after - min(5.0, kill_after * 0.2))
        delay = min(5.0, grace / 3) if platform.provider == "kubernetes" else 0.0
        options.setdefault("grace_period", grace)
        options.setdefault("drain_delay", delay)
        return cls(**options)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> ShutdownCoordinator:
        """Platform defaults (see :meth:`from_platform`), overridden by the ``SHUTDOWN_*``
        variables (:class:`ShutdownSettings`); every bad variable is reported at once."""
        from renderkit.platform import detect
        from renderkit.shutdown._env import ShutdownSettings

        values = {**ShutdownSettings.load(environ).options(), **options}
        return cls.from_platform(detect(environ), **values)

    # --- hooks ----------------------------------------------------------------------------------

    @overload
    def on_shutdown(self, fn: Hook, *, name: str | None = None, timeout: float = 5.0) -> Hook: ...

    @overload
    def on_shutdown(
        self, fn: None = None, *, name: str | None = None, timeout: float = 5.0
    ) -> Callable[[Hook], Hook]: ...

    def on_shutdown(
        self, fn: Hook | None = None, *, name: str | None = None, timeout: float = 5.0
    ) -> Hook | Callable[[Hook], Hook]:
        """Register a cleanup hook (sync or async, no arguments); hooks run last-in first-out.

        Usable as ``coordinator.on_shutdown(db.close, name="database", timeout=5.0)`` or as a
        decorator (``@coordinator.on_shutdown`` / ``@coordinator.on_shutdown(timeout=2)``).
        """
        seconds = seconds_option(timeout, "on_shutdown(timeout)")

        def register(hook: Hook) -> Hook:
            if not callable(hook):
                raise TypeError(
                    f"on_shutdown(...): the hook must be callable, got {type(hook).__name__} "
                    "(pass db.close, not db.close())"
                )
            label = name or getattr(hook, "__qualname__", None) or repr(hook)
            with self._lock:
                if self._phase in ("cleanup", "stopped"):
                    raise RuntimeError(
                        f"on_shutdown({label!r}): shutdown already ran its hooks; register "
                        "hooks at start-up"
                    )
                self._hooks.append(CleanupHook(hook, label, seconds, is_async_callable(hook)))
            return hook

        if fn is None:
            return register
        return register(fn)

    # --- state ------------------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        """``running`` -> ``draining`` -> ``closing`` -> ``cleanup`` -> ``stopped``."""
        return self._phase

    @property
    def is_shutting_down(self) -> bool:
        """True from the first signal (or :meth:`begin`) on."""
        return self._phase != "running"

    @property
    def inflight(self) -> int:
        """Requests tracked by the ASGI and WSGI middleware that have not finished yet."""
        return self._requests.count

    def health_check(self) -> CheckResult:
        """Healthy while running; unhealthy once shutdown began (readiness must fail)."""
        if self._phase == "running":
            return CheckResult.healthy(phase="running")
        return CheckResult.unhealthy("shutting down", phase=self._phase, inflight=self.inflight)

    def stats(self) -> dict[str, Any]:
        """Phase, in-flight requests, counters and the last summary as a plain dict."""
        summary = self._summary
        return {
            "phase": self._phase,
            "inflight": self.inflight,
            "hooks": [h.name for h in self._hooks],
            "grace_period": self.grace_period,
            "drain_delay": self.drain_delay,
            "keepalive_window": self.keepalive_window,
            **self._counts,
            "cancelled": self._requests.cancelled,
            "last_shutdown": summary.describe() if summary else None,
        }

    # --- request tracking (ShutdownMiddleware, ASGI and WSGI) --------------------------------

    def admit(self, task: asyncio.Task[Any] | None = None) -> bool:
        """Count a request as in flight (an ASGI request's ``task``, or a WSGI request when
        None); False, counted as refused, once the coordinator stops accepting."""
        if self.retiring:  # the keep-alive window watches for quiet
            if not self.accepting:
                self._counts["refused"] += 1
                return False
            self._requests.last_started = self._clock()
        if task is not None:
            self._tasks.add(task)  # the hot path: one set insertion per ASGI request
        else:
            self._requests.add_sync()
        return True

    def release(self, task: asyncio.Task[Any] | None = None) -> None:
        """The request admitted with ``task`` (or a WSGI request when None) finished."""
        if task is not None:
            self._tasks.discard(task)
        else:
            self._requests.discard_sync()

    # --- signals --------------------------------------------------------------------------------

    def install_signal_handlers(self) -> bool:
        """Chain a handler for each signal in front of the one installed now; False when not in
        the main thread (signals can only be handled there) or already installed."""
        if threading.current_thread() is not threading.main_thread():
            logger.debug("not in the main thread: signal handlers not installed")
            return False
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        return self._chain.install()

    def uninstall_signal_handlers(self) -> None:
        """Put back the handlers found at install time (where ours is still the one in place)."""
        self._chain.uninstall()

    def _handle_signal(self, signum: int, frame: FrameType | None) -> None:
        self._counts["signals"] += 1
        name = signal.Signals(signum).name
        if self._phase != "running":
            logger.warning("second %s during shutdown: exiting now", name)
            self._exit(128 + signum)
            return
        self.begin(name, _forward=(signum, frame))

    # --- shutdown ---------------------------------------------------------------------------------

    def begin(self, reason: str = "requested", *, _forward: tuple[int, Any] | None = None) -> None:
        """Start shutting down (what the first signal does); safe from any thread, idempotent."""
        with self._lock:
            if self._phase != "running":
                return
            self._phase = "draining"
            self.retiring = True
            self._began_at = self._clock()
            self._reason = reason
        logger.info(
            "shutdown started (%s): readiness fails now, %d request(s) in flight, "
            "grace period %.1fs",
            reason,
            self.inflight,
            self.grace_period,
        )
        self.shutting_down.set()
        loop = self._loop
        if loop is not None and loop.is_closed():
            loop = None
        # The keep-alive window lets connections go quiet before the server closes the idle
        # ones; begin() called from code has no server to tell, so it closes after the delay.
        window = self.keepalive_window if _forward is not None else 0.0
        if self.drain_delay <= 0 and window <= 0:
            self._close(_forward)
        elif window <= 0:
            self._later(self.drain_delay, lambda: self._close(_forward))
        else:
            self._later(self.drain_delay, lambda: self._keepalive_window(_forward))
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._start_deadline)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` after ``delay`` seconds on the serving loop, else in a timer thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.call_later, delay, fn)
                return
        timer = threading.Timer(delay, fn)
        timer.daemon = True
        timer.start()

    def _keepalive_window(self, forward: tuple[int, Any] | None) -> None:
        """Tell the server to stop once no request started for a moment (or the window is
        spent): idle keep-alive connections it then closes carry nothing in flight."""
        opened = self._clock()
        end = opened + self.keepalive_window

        def poll() -> None:
            if self._phase != "draining":
                return  # the lifespan ended first and closed already
            now = self._clock()
            if now >= end or now - max(self._requests.last_started, opened) >= _QUIET:
                self._close(forward)
            else:
                self._later(_POLL, poll)

        poll()

    def _close(self, forward: tuple[int, Any] | None) -> None:
        with self._lock:
            if self._phase == "draining":
                self._phase = "closing"
            self.accepting = False
        if forward is not None:
            self._chain.forward(*forward)

    def _drain_budget(self) -> float:
        if self.drain_timeout is not None:
            return min(self.drain_timeout, self.grace_period)
        hooks = sum(h.timeout for h in self._hooks)
        return max(self.grace_period - self.drain_delay - hooks, self.grace_period / 2)

    def _start_deadline(self) -> None:
        if self._deadline_task is None:
            self._deadline_task = asyncio.get_running_loop().create_task(
                self._enforce_drain_deadline()
            )

    async def _enforce_drain_deadline(self) -> None:
        began = self._began_at if self._began_at is not None else self._clock()
        await asyncio.sleep(max(0.0, began + self._drain_budget() - self._clock()))
        self._requests.cancel_stragglers()

    async def shutdown(self, reason: str = "lifespan") -> ShutdownSummary:
        """Drain and run the hooks (begins shutdown first if no signal did); idempotent: later
        and concurrent callers get the same summary."""
        if self._summary is not None:
            return self._summary
        loop = asyncio.get_running_loop()
        task = self._shutdown_task
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(self._shutdown(reason))
            self._shutdown_task = task
        return await asyncio.shield(task)

    def shutdown_sync(self, reason: str = "worker exit") -> ShutdownSummary:
        """Blocking twin of :meth:`shutdown` for WSGI servers (gunicorn's ``worker_exit``)."""
        if self._summary is not None:
            return self._summary
        with self._shutdown_lock:
            done = self._summary
            return done if done is not None else asyncio.run(self._shutdown(reason))

    async def _shutdown(self, reason: str) -> ShutdownSummary:
        if self._phase == "running":
            self.begin(reason)
        began = self._began_at if self._began_at is not None else self._clock()
        if self._phase == "draining":  # the lifespan ended before the drain delay did
            self._close(None)
        drained, cancelled = await self._requests.drain(began + self._drain_budget())
        with self._lock:
            self._phase = "cleanup"
            hooks = list(reversed(self._hooks))
        deadline = began + self.grace_period
        outcomes = [await run_hook(hook, deadline, self._clock) for hook in hooks]
        summary = ShutdownSummary(
            reason=self._reason,
            seconds=self._clock() - began,
            drained=drained,
            cancelled_requests=cancelled,
            hooks=tuple(outcomes),
        )
        with self._lock:
            self._phase = "stopped"
            self._summary = summary
        if self._deadline_task is not None:
            self._deadline_task.cancel()
        clean = drained and all(o.status == "ok" for o in outcomes)
        logger.log(logging.INFO if clean else logging.WARNING, summary.describe())
        self._done.set()
        return summary

    def reset(self) -> None:
        """Forget a finished shutdown so the app can serve again (the lifespan calls this when
        an app is started again in the same process, as test suites do); hooks are kept."""
        with self._lock:
            if self._phase not in ("running", "stopped"):
                raise RuntimeError(
                    f"ShutdownCoordinator.reset(): shutdown is under way ({self._phase}); "
                    "wait for it to finish"
                )
            self._phase = "running"
            self.accepting = True
            self.retiring = False
            self.shutting_down = ShutdownEvent()
            self._began_at = None
            self._reason = ""
            self._summary = None
            self._shutdown_task = None
            self._deadline_task = None
            self._done = threading.Event()
            self._requests.tasks.clear()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until shutdown finished its hooks (True) or ``timeout`` passed."""
        return self._done.wait(timeout)
