"""FallbackStore: Redis first, another store while Redis is unavailable (private module)."""

from __future__ import annotations

from renderkit.sessions._fallback_async import AsyncFallbackOps
from renderkit.sessions._fallback_sync import FallbackOps

__all__ = ["FallbackStore"]


class FallbackStore(FallbackOps, AsyncFallbackOps):
    """Use ``primary`` (Redis) while it answers and ``fallback`` (Postgres or memory) while not.

    The switch is :class:`renderkit.resilience.Degrader`'s: a circuit breaker stops paying the
    primary's timeout once it failed, a background probe notices its return, the outage and
    the recovery are logged once each, and :meth:`health_check` reports ``degraded`` meanwhile.

    Nothing done while the primary is away is undone by its return: saves go to the fallback
    with their write time, deletes and ``regenerate()`` leave a tombstone there, and each id is
    journalled (at most ``max_journal`` ids per process). When the primary answers again the
    journal is replayed onto it, newest write winning, and for ``reconcile_window`` seconds
    (default ``2 * recovery_timeout + 5``) every load compares both stores, so the writes of a
    worker still falling back win too. During an outage, sessions held only by the primary
    cannot be read (those users get a fresh session). ``delete_user_sessions`` raises
    :class:`BackendUnavailable` when the primary cannot be reached.

    ``mirror`` (default: on when the fallback is durable, i.e. not a ``MemoryStore``) also
    writes every save, delete and expiry to the fallback while the primary answers, and reads
    the fallback when the primary has no record. A Redis that restarts empty (no persistence,
    ``kill -9``) then loses no session: the next request finds it in Postgres and Redis takes it
    back. It costs one fallback write per modified session.
    """
