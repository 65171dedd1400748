"""Degrade to a fallback while a primary dependency fails, and say so once.

:class:`Degrader` is the one place where cache, sessions and rate limiting decide "primary or
fallback". Its state and reporting live in ``_degrade_core``; ``call``/``acall`` and the probe
loops are written once in ``_degrade_async`` (``_degrade_sync`` is generated from it).
"""

from __future__ import annotations

from renderkit.resilience._degrade_async import AsyncDegraderRunner
from renderkit.resilience._degrade_sync import DegraderRunner

__all__ = ["Degrader"]


class Degrader(DegraderRunner, AsyncDegraderRunner):
    """Run each operation on the primary while it answers, on the fallback while it fails.

    ``component`` names what degrades in log lines and health messages (``"cache"``);
    ``primary`` and ``fallback`` name the two sides (``"redis"``, ``"memory"``); ``logger`` is
    the component's logger (a name or a ``logging.Logger``), so the lines carry its name.
    ``outage_errors`` are the exceptions that mean "the primary is down"; anything else raised
    by the primary propagates to the caller and says nothing about the dependency.

    The circuit opens after ``failure_threshold`` outage errors in a row. From then on calls go
    straight to the fallback, and the primary is tried again every ``recovery_timeout`` seconds,
    one call at a time: by ``probe`` (sync, run in a daemon thread) or ``aprobe`` (a coroutine
    function, run as a task on the event loop that saw the failure) when given, so recovery is
    noticed without traffic and the probe, waking as the timeout ends, usually takes the one
    half-open slot before a request does; without a probe the next request after the timeout
    is the probe. A probe raises one of ``outage_errors`` while the primary is still down; its
    return value is ignored. Nothing starts before the first outage; the probe ends when the
    circuit closes or :meth:`close` is called.

    Logging: one ``WARNING`` when the circuit opens (the last error, the fallback, the probe
    interval) and one ``INFO`` when the primary answers again (outage length, calls the fallback
    served). The breaker itself stays quiet (``CircuitBreaker(log=False)``), so an outage is
    one line, not two. A failure below the threshold is served by the fallback and logged at
    ``DEBUG`` only.

    Two ways to drive it:

    - ``call(primary_fn, fallback_fn, *args)`` / ``await acall(...)``: the same ``args`` go to
      either function, so bound methods need no closure per call
      (``degrader.call(primary.get, fallback.get, key)``); for ``acall`` both are coroutine
      functions.
    - The protocol those are built on, for callers with their own flow: ``if allow():`` call
      the primary, then ``succeeded()``, ``failed(exc)`` on an outage error or ``neutral()`` on
      any other exception; when ``allow()`` is False, or after ``failed``, use the fallback.

    Report with :meth:`health_check` (``degraded`` while the circuit is not closed) and
    :meth:`stats`. :meth:`close` stops a running probe.
    """
