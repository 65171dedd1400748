"""Graceful shutdown: no request lost on deploy, cleanup inside the platform's grace period.

:class:`ShutdownCoordinator` listens for SIGTERM/SIGINT by *chaining* the handler already in
place (uvicorn's, gunicorn's worker's), never replacing it, so the server's own graceful path
still runs after ours. On the first signal it:

1. flips readiness (``is_shutting_down``; ``Health(shutdown=coordinator)`` answers 503) and sets
   :attr:`~ShutdownCoordinator.shutting_down`, the event SSE and WebSocket handlers await to
   close their streams; from now on every response carries ``Connection: close``, so clients
   retire their keep-alive connections after their next request instead of having them cut;
2. waits ``drain_delay`` seconds while still serving (Kubernetes needs this to take the pod out
   of its endpoints; on Render traffic already moved, so the default is 0), then up to
   ``keepalive_window`` seconds more while requests still arrive on open connections (it ends
   after 0.5 s without one);
3. passes the signal on to the server, which stops listening and closes idle connections, and
   from then on answers new requests on open connections with 503, ``Connection: close`` and
   ``Retry-After``;
4. waits for in-flight requests tracked by :class:`ShutdownMiddleware`, cancelling any still
   running when the drain budget is spent;
5. runs cleanup hooks in reverse order of registration, each under its own timeout, all within
   ``grace_period`` counted from the signal, and logs a one-line summary.

A second signal during shutdown exits at once. Nothing happens at import time: handlers are
installed when the lifespan starts (or :meth:`~ShutdownCoordinator.install_signal_handlers`).
"""

from renderkit.shutdown._coordinator import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_KEEPALIVE_WINDOW,
    Phase,
    ShutdownCoordinator,
)
from renderkit.shutdown._env import ShutdownSettings
from renderkit.shutdown._event import ShutdownEvent
from renderkit.shutdown._gunicorn import gunicorn_hooks
from renderkit.shutdown._hooks import HookOutcome, ShutdownSummary
from renderkit.shutdown._middleware import ShutdownMiddleware

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_KEEPALIVE_WINDOW",
    "HookOutcome",
    "Phase",
    "ShutdownCoordinator",
    "ShutdownEvent",
    "ShutdownMiddleware",
    "ShutdownSettings",
    "ShutdownSummary",
    "gunicorn_hooks",
]
