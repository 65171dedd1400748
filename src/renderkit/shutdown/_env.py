"""The environment variables :meth:`ShutdownCoordinator.from_env` reads, declared once."""

from __future__ import annotations

from renderkit.config import Seconds, Settings, env

__all__ = ["ShutdownSettings"]


class ShutdownSettings(Settings):
    """How long a shutdown may take and how long the app keeps serving after SIGTERM."""

    grace_period: Seconds | None = env("SHUTDOWN_GRACE_PERIOD", default=None, minimum="1ms")
    """Seconds from SIGTERM to the end of cleanup; keep it under the platform's SIGKILL delay
    (default: that delay minus a margin, 25s on Render and Heroku)."""
    drain_delay: Seconds | None = env("SHUTDOWN_DRAIN_DELAY", default=None)
    """Seconds to keep listening after SIGTERM while readiness already fails (default 0s; 5s on
    Kubernetes, where endpoints update late)."""
    keepalive_window: Seconds | None = env("SHUTDOWN_KEEPALIVE_WINDOW", default=None)
    """At most this many seconds after the drain delay, keep answering requests on open keep-alive
    connections (each with Connection: close) before the server stops; ends early after 0.5 s
    without a request (default 2s; 0s: stop at once)."""
