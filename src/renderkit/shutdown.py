"""Graceful shutdown: no request lost on deploy, cleanup inside the platform's grace period.

:class:`ShutdownCoordinator` listens for SIGTERM/SIGINT by *chaining* the handler already in
place (uvicorn's, gunicorn's worker's), never replacing it, so the server's own graceful path
still runs after ours. On the first signal it:

1. flips readiness (``is_shutting_down``; ``Health(shutdown=coordinator)`` answers 503) and sets
   :attr:`~ShutdownCoordinator.shutting_down`, the event SSE and WebSocket handlers await to
   close their streams;
2. waits ``drain_delay`` seconds while still serving (Kubernetes needs this to take the pod out
   of its endpoints; on Render traffic already moved, so the default is 0);
3. passes the signal on to the server, which stops listening, and from then on answers new
   requests on open connections with 503, ``Connection: close`` and ``Retry-After``;
4. waits for in-flight requests tracked by :class:`ShutdownMiddleware`, cancelling any still
   running when the drain budget is spent;
5. runs cleanup hooks in reverse order of registration, each under its own timeout, all within
   ``grace_period`` counted from the signal, and logs a one-line summary.

A second signal during shutdown exits at once. Nothing happens at import time: handlers are
installed when the lifespan starts (or :meth:`~ShutdownCoordinator.install_signal_handlers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from renderkit.health import CheckResult

if TYPE_CHECKING:
    from renderkit._asgi import ASGIApp, Receive, Scope, Send
    from renderkit.platform import Platform

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "HookOutcome",
    "Phase",
    "ShutdownCoordinator",
    "ShutdownEvent",
    "ShutdownMiddleware",
    "ShutdownSummary",
    "gunicorn_hooks",
]

DEFAULT_GRACE_PERIOD = 25.0
"""Seconds from SIGTERM to the end of cleanup: inside Render's and Heroku's 30 s."""

Phase = Literal["running", "draining", "closing", "cleanup", "stopped"]
T = TypeVar("T")
Hook = Callable[[], Any]
SignalHandler = Callable[[int, FrameType | None], Any] | int | None

logger = logging.getLogger("renderkit.shutdown")

_POLL = 0.02  # seconds between in-flight checks while draining


class ShutdownEvent:
    """A set-once event that any thread may set and any event loop (or thread) may await.

    ``await event`` / ``await event.wait()`` in async code, ``event.wait_sync(timeout)`` in a
    thread, ``event.is_set()`` anywhere.
    """

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._lock = threading.RLock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_set(self) -> bool:
        """True once shutdown began."""
        return self._flag.is_set()

    def set(self) -> None:
        """Set the event and wake every waiter, on whichever loop it waits."""
        with self._lock:
            if self._flag.is_set():
                return
            self._flag.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to wake
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> bool:
        """Wait until the event is set; returns True."""
        if self._flag.is_set():
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.append((loop, future))
        # set() may have run between the check and the append (a signal handler): look again.
        if self._flag.is_set():
            _resolve(future)
        try:
            await future
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, future))
        return True

    def wait_sync(self, timeout: float | None = None) -> bool:
        """Block this thread until the event is set or ``timeout`` passes; True if set."""
        return self._flag.wait(timeout)

    def __await__(self) -> Any:
        return self.wait().__await__()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """How one cleanup hook went: ``ok``, ``error``, ``timeout`` or ``skipped`` (no time left)."""

    name: str
    status: Literal["ok", "error", "timeout", "skipped"]
    seconds: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ShutdownSummary:
    """What a shutdown did: why, how long, what it drained, and each hook's outcome."""

    reason: str
    seconds: float
    drained: bool
    cancelled_requests: int
    hooks: tuple[HookOutcome, ...] = ()

    def describe(self) -> str:
        """One log line: reason, duration, drain result and hook outcomes."""
        hooks = ", ".join(
            f"{h.name} {h.status} {h.seconds:.2f}s" + (f" ({h.error})" if h.error else "")
            for h in self.hooks
        )
        drain = (
            "all requests finished"
            if self.drained
            else f"{self.cancelled_requests} request(s) cancelled at the drain deadline"
        )
        return (
            f"shutdown ({self.reason}) finished in {self.seconds:.2f}s: {drain}; "
            f"hooks: {hooks or 'none'}"
        )


@dataclass
class _Hook:
    fn: Hook
    name: str
    timeout: float
    is_async: bool = field(default=False)


def _default_exit(code: int) -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(code)


def _seconds(value: object, what: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and (value >= 0 if allow_zero else value > 0):  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{what}={value!r}: use a number of seconds {bound}")


class ShutdownCoordinator:
    """Drain in-flight requests and run cleanup hooks within the platform's grace period.

    ``grace_period``: seconds from the first signal to the end of cleanup (keep it below the
    platform's SIGKILL delay). ``drain_delay``: seconds to keep serving after the signal before
    the server stops listening (readiness already fails). ``drain_timeout``: seconds the drain
    may take before in-flight requests are cancelled (default: what the grace period leaves
    after the drain delay and the hooks' timeouts, at least half of it).
    ``retry_after``: the ``Retry-After`` seconds on 503s during the drain. ``exit``: called
    with ``128 + signal`` on a second signal (default: flush logs, ``os._exit``).
    ``signals``: the signals to handle.
    """

    def __init__(
        self,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        *,
        drain_delay: float = 0.0,
        drain_timeout: float | None = None,
        retry_after: int = 5,
        exit: Callable[[int], Any] = _default_exit,
        signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace_period = _seconds(grace_period, "ShutdownCoordinator(grace_period)")
        self.drain_delay = _seconds(
            drain_delay, "ShutdownCoordinator(drain_delay)", allow_zero=True
        )
        if self.drain_delay >= self.grace_period:
            raise ValueError(
                f"ShutdownCoordinator(drain_delay={drain_delay}, grace_period={grace_period}): "
                "the drain delay must be shorter than the grace period"
            )
        self.drain_timeout = (
            None
            if drain_timeout is None
            else _seconds(drain_timeout, "ShutdownCoordinator(drain_timeout)")
        )
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError(
                f"ShutdownCoordinator(retry_after={retry_after!r}): use whole seconds >= 0"
            )
        self.retry_after = retry_after
        self.signals = tuple(signals)
        self._exit = exit
        self._clock = clock
        self._hooks: list[_Hook] = []
        self._phase: Phase = "running"
        self.accepting = True
        """False once new requests get 503 (after the drain delay)."""
        self.shutting_down = ShutdownEvent()
        """Set when shutdown begins: ``await coordinator.shutting_down`` in long-lived streams."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sync_active = 0
        self._sync_lock = threading.Lock()
        self._shutdown_lock = threading.Lock()
        self._began_at: float | None = None
        self._reason = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, SignalHandler] = {}
        self._installed = False
        self._lock = threading.RLock()
        self._done = threading.Event()
        self._summary: ShutdownSummary | None = None
        self._shutdown_task: asyncio.Task[ShutdownSummary] | None = None
        self._deadline_task: asyncio.Task[None] | None = None
        self._counts = {"refused": 0, "cancelled": 0, "signals": 0}

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
        """Platform defaults (see :meth:`from_platform`), overridden by ``SHUTDOWN_GRACE_PERIOD``
        and ``SHUTDOWN_DRAIN_DELAY`` ("25s", "5s"); every bad variable is reported at once."""
        from renderkit.config import parse_duration
        from renderkit.errors import ConfigError, ConfigProblem
        from renderkit.platform import detect

        env = os.environ if environ is None else environ
        problems: list[ConfigProblem] = []
        values: dict[str, Any] = {}
        for variable, option in (
            ("SHUTDOWN_GRACE_PERIOD", "grace_period"),
            ("SHUTDOWN_DRAIN_DELAY", "drain_delay"),
        ):
            raw = env.get(variable)
            if raw is None or not raw.strip():
                continue
            try:
                seconds = parse_duration(raw).total_seconds()
                if seconds < 0 or (option == "grace_period" and seconds == 0):
                    raise ValueError("must be a positive duration such as 25s")
                values[option] = seconds
            except ValueError as exc:
                problems.append(
                    ConfigProblem(variable, f"{exc}; got {raw!r}", "environment", found=repr(raw))
                )
        if problems:
            raise ConfigError(problems)
        values.update(options)
        return cls.from_platform(detect(env), **values)

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
        seconds = _seconds(timeout, "on_shutdown(timeout)")

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
                self._hooks.append(_Hook(hook, label, seconds, _is_async(hook)))
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
        return len(self._tasks) + self._sync_active

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
            **self._counts,
            "last_shutdown": summary.describe() if summary else None,
        }

    # --- signals --------------------------------------------------------------------------------

    def install_signal_handlers(self) -> bool:
        """Chain a handler for each signal in front of the one installed now; False when not in
        the main thread (signals can only be handled there) or already installed."""
        if threading.current_thread() is not threading.main_thread():
            logger.debug("not in the main thread: signal handlers not installed")
            return False
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        with self._lock:
            if self._installed:
                return False
            for sig in self.signals:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle_signal)
            self._installed = True
        return True

    def uninstall_signal_handlers(self) -> None:
        """Put back the handlers found at install time (where ours is still the one in place)."""
        if threading.current_thread() is not threading.main_thread():
            return
        with self._lock:
            if not self._installed:
                return
            for sig, previous in self._previous.items():
                if signal.getsignal(sig) == self._handle_signal:
                    signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            self._installed = False

    def _handle_signal(self, signum: int, frame: FrameType | None) -> None:
        self._counts["signals"] += 1
        name = signal.Signals(signum).name
        if self._phase != "running":
            logger.warning("second %s during shutdown: exiting now", name)
            self._exit(128 + signum)
            return
        self.begin(name, _forward=(signum, frame))

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        """Hand the signal to the handler that was in place before ours."""
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL and signum == signal.SIGINT:
            raise KeyboardInterrupt
        # SIG_DFL for SIGTERM would kill the process before cleanup and SIG_IGN means "ignore":
        # without a server handler the app awaits `shutting_down` and calls shutdown() itself.

    # --- shutdown ---------------------------------------------------------------------------------

    def begin(self, reason: str = "requested", *, _forward: tuple[int, Any] | None = None) -> None:
        """Start shutting down (what the first signal does); safe from any thread, idempotent."""
        with self._lock:
            if self._phase != "running":
                return
            self._phase = "draining"
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
        if self.drain_delay <= 0:
            self._close(_forward)
        elif loop is not None:
            loop.call_soon_threadsafe(loop.call_later, self.drain_delay, self._close, _forward)
        else:
            timer = threading.Timer(self.drain_delay, self._close, args=(_forward,))
            timer.daemon = True
            timer.start()
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._start_deadline)

    def _close(self, forward: tuple[int, Any] | None) -> None:
        with self._lock:
            if self._phase == "draining":
                self._phase = "closing"
            self.accepting = False
        if forward is not None:
            self._forward(*forward)

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
        self._cancel_stragglers()

    def _cancel_stragglers(self) -> int:
        stragglers = [t for t in self._tasks if not t.done()]
        for task in stragglers:
            task.cancel("renderkit: drain deadline reached during shutdown")
        if stragglers:
            self._counts["cancelled"] += len(stragglers)
            logger.warning(
                "drain deadline reached: cancelled %d request(s) still running", len(stragglers)
            )
        return len(stragglers)

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
            done = self._last_summary()
            return done if done is not None else asyncio.run(self._shutdown(reason))

    def _last_summary(self) -> ShutdownSummary | None:
        return self._summary

    async def _shutdown(self, reason: str) -> ShutdownSummary:
        if self._phase == "running":
            self.begin(reason)
        began = self._began_at if self._began_at is not None else self._clock()
        deadline = began + self.grace_period
        if self._phase == "draining":  # the lifespan ended before the drain delay did
            self._close(None)
        drained, cancelled = await self._drain(began + self._drain_budget())
        with self._lock:
            self._phase = "cleanup"
            hooks = list(reversed(self._hooks))
        outcomes = [await self._run_hook(hook, deadline) for hook in hooks]
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
        level = (
            logging.INFO if drained and all(o.status == "ok" for o in outcomes) else logging.WARNING
        )
        logger.log(level, summary.describe())
        self._done.set()
        return summary

    async def _drain(self, deadline: float) -> tuple[bool, int]:
        while self.inflight and self._clock() < deadline:
            await asyncio.sleep(_POLL)
        if not self.inflight:
            return True, 0
        cancelled = self._cancel_stragglers() + self._sync_active
        # Give cancelled requests a moment to unwind (their finally blocks, 500s).
        end = min(self._clock() + 0.5, deadline + 0.5)
        while self._tasks and self._clock() < end:
            await asyncio.sleep(_POLL)
        return False, cancelled

    async def _run_hook(self, hook: _Hook, deadline: float) -> HookOutcome:
        remaining = deadline - self._clock()
        if remaining <= 0:
            logger.error("shutdown hook %r skipped: the grace period is spent", hook.name)
            return HookOutcome(hook.name, "skipped", 0.0, "grace period spent")
        limit = min(hook.timeout, remaining)
        start = self._clock()
        try:
            if hook.is_async:
                await asyncio.wait_for(_call_async(hook.fn), limit)
            else:
                await asyncio.wait_for(_in_daemon_thread(hook.fn, hook.name), limit)
        except TimeoutError:
            logger.error("shutdown hook %r timed out after %.1fs; skipped", hook.name, limit)
            return HookOutcome(hook.name, "timeout", self._clock() - start, f"after {limit:g}s")
        except Exception as exc:
            logger.error(
                "shutdown hook %r failed: %s: %s", hook.name, type(exc).__name__, exc,
                exc_info=exc,
            )  # fmt: skip
            return HookOutcome(
                hook.name, "error", self._clock() - start, f"{type(exc).__name__}: {exc}"[:200]
            )
        return HookOutcome(hook.name, "ok", self._clock() - start)

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
            self.shutting_down = ShutdownEvent()
            self._began_at = None
            self._reason = ""
            self._summary = None
            self._shutdown_task = None
            self._deadline_task = None
            self._done = threading.Event()
            self._tasks.clear()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until shutdown finished its hooks (True) or ``timeout`` passed."""
        return self._done.wait(timeout)

    # --- lifespan -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """ASGI lifespan for ``Starlette(lifespan=coordinator.lifespan)``: installs the signal
        handlers at start-up; at shutdown drains and runs the hooks."""
        if self._phase == "stopped":
            self.reset()  # a new serving cycle (a test suite starting the app again)
        self.install_signal_handlers()
        try:
            yield
        finally:
            try:
                await self.shutdown("lifespan shutdown")
            finally:
                self.uninstall_signal_handlers()

    def wrap_lifespan(
        self, inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]
    ) -> Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]:
        """Compose with the app's own lifespan: ours outside, so its shutdown code runs after
        the drain and before our hooks. Its yielded state passes through."""

        @contextlib.asynccontextmanager
        async def combined(app: Any) -> AsyncIterator[Any]:
            async with self.lifespan(app), inner(app) as state:
                yield state

        return combined

    # --- streams --------------------------------------------------------------------------------

    async def until_shutdown(self, source: AsyncIterable[T]) -> AsyncIterator[T]:
        """Yield from ``source`` until shutdown begins, then stop (for SSE generators)."""
        iterator = aiter(source)
        stop = asyncio.ensure_future(self.shutting_down.wait())
        try:
            while not self.shutting_down.is_set():
                step = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
                    return
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            stop.cancel()
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    # --- WSGI tracking (used by renderkit.wsgi.ShutdownMiddleware) ------------------------------

    def _enter_sync(self) -> bool:
        with self._sync_lock:
            if not self.accepting:
                self._counts["refused"] += 1
                return False
            self._sync_active += 1
            return True

    def _exit_sync(self) -> None:
        with self._sync_lock:
            self._sync_active -= 1


def _is_async(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


async def _call_async(fn: Hook) -> None:
    await fn()


async def _in_daemon_thread(fn: Hook, name: str) -> None:
    """Run ``fn`` in a daemon thread (a hung hook must not block exit); await its end."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

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
            value = fn()
        except BaseException as exc:  # handed to the awaiting side, which logs it
            error = exc
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=work, name=f"renderkit-shutdown-{name}", daemon=True).start()
    value = await future
    if inspect.isawaitable(value):
        await value


_REFUSAL_BODY = b'{"error":"service is restarting, retry shortly"}'


class ShutdownMiddleware:
    """Pure ASGI middleware: track in-flight requests for the drain, and once the coordinator
    stops accepting, answer new requests with 503, ``Connection: close`` and ``Retry-After``
    (new WebSocket connections are closed with code 1012, "service restart")."""

    def __init__(self, app: ASGIApp, *, coordinator: ShutdownCoordinator) -> None:
        if not isinstance(coordinator, ShutdownCoordinator):
            raise TypeError(
                "ShutdownMiddleware(coordinator=...) needs a ShutdownCoordinator, got "
                f"{type(coordinator).__name__}"
            )
        self.app = app
        self.coordinator = coordinator
        self._tasks = coordinator._tasks
        self._start = {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_REFUSAL_BODY)).encode()),
                (b"connection", b"close"),
                (b"retry-after", str(coordinator.retry_after).encode()),
                (b"cache-control", b"no-store"),
            ],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if not self.coordinator.accepting:
            await self._refuse(scope, send)
            return
        task = asyncio.current_task()
        tasks = self._tasks
        tasks.add(task)  # type: ignore[arg-type]
        try:
            await self.app(scope, receive, send)
        finally:
            tasks.discard(task)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        self.coordinator._counts["refused"] += 1
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1012, "reason": "service restart"})
            return
        await send(dict(self._start))
        await send({"type": "http.response.body", "body": _REFUSAL_BODY})


# --- gunicorn -------------------------------------------------------------------------------------


def _resolve_coordinator(target: ShutdownCoordinator | str) -> ShutdownCoordinator:
    if isinstance(target, ShutdownCoordinator):
        return target
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"gunicorn_hooks({target!r}): use a ShutdownCoordinator or 'module:attribute'"
        )
    found = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(found, ShutdownCoordinator):
        raise TypeError(
            f"gunicorn_hooks({target!r}): {module_name}.{attribute} is "
            f"{type(found).__name__}, not a ShutdownCoordinator"
        )
    return found


def gunicorn_hooks(coordinator: ShutdownCoordinator | str) -> dict[str, Callable[..., None]]:
    """Server hooks for a gunicorn config file: ``globals().update(gunicorn_hooks("app:co"))``.

    ``post_worker_init`` chains the coordinator's handlers in front of the worker's own (so
    readiness flips on SIGTERM), and ``worker_exit`` runs the cleanup hooks after gunicorn
    drained the worker. Pass the coordinator as ``"module:attribute"`` unless the app is
    preloaded: without ``--preload`` each worker imports the app, and so its own coordinator.
    Under ``uvicorn`` workers the ASGI lifespan already ran the hooks; ``worker_exit`` is then a
    no-op. gunicorn treats SIGINT and SIGQUIT as a *quick* shutdown (no drain).
    """

    def post_worker_init(worker: Any) -> None:
        _resolve_coordinator(coordinator).install_signal_handlers()

    def worker_exit(server: Any, worker: Any) -> None:
        target = _resolve_coordinator(coordinator)
        if target.phase == "stopped":
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            target.shutdown_sync("gunicorn worker exit")
        else:  # pragma: no cover - gunicorn calls worker_exit outside any running loop
            logger.error("worker_exit inside a running loop: use the ASGI lifespan instead")

    return {"post_worker_init": post_worker_init, "worker_exit": worker_exit}
