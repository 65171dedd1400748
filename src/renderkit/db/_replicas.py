"""Which read replica serves the next read-only query: rotation and one breaker per replica.

No I/O here: the database twins open each replica's pool and report every outcome back, so a
replica that fails is skipped (its breaker open) until a probe finds it again, and reads go to
the primary meanwhile.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from renderkit.resilience import CircuitBreaker

# What a replica's health probe asks: is it a standby, and how far behind is its replay
# (0 when it has replayed everything it received; an idle primary is not lag).
REPLICA_PROBE = (
    "SELECT pg_is_in_recovery(), CASE WHEN NOT pg_is_in_recovery() THEN NULL "
    "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
)


def replica_facts(row: Any) -> dict[str, Any]:
    """``standby`` and ``lag_s`` for the health details, from :data:`REPLICA_PROBE`'s row."""
    standby, lag = (row or (None, None))[:2]
    return {"standby": standby, "lag_s": None if lag is None else round(float(lag), 3)}


class Replica:
    """One read replica: its URL, name, pool (set by ``open()``) and circuit breaker."""

    __slots__ = ("breaker", "name", "pool", "url")

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.pool: Any = None
        # One failure opens it: a read waiting on a dead replica pays replica_timeout, so
        # the next reads go to the primary at once; a probe every 5 s finds it again.
        self.breaker = CircuitBreaker(
            name, failure_threshold=1, recovery_timeout=5.0, expected_exceptions=(Exception,)
        )


class ReplicaSet:
    """The replicas of one database, taken in turn; those whose breaker is open are skipped."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.all = replicas
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.all)

    def candidates(self) -> list[Replica]:
        """Open replicas allowed to serve now, starting with the next one in turn."""
        if not self.all:
            return []
        with self._lock:
            start = next(self._turn) % len(self.all)
        ordered = self.all[start:] + self.all[:start]
        return [r for r in ordered if r.pool is not None and r.breaker.allow()]

    @staticmethod
    def failed(replica: Replica, exc: BaseException) -> None:
        """The replica could not serve (its breaker logs the outage once, then skips it)."""
        replica.breaker.record_failure(exc)

    @staticmethod
    def succeeded(replica: Replica) -> None:
        replica.breaker.record_success()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for r in self.all:
            pool = r.pool.get_stats() if r.pool is not None else {}
            out[r.name] = {
                "state": r.breaker.state,
                "pool_size": pool.get("pool_size", 0),
                "pool_available": pool.get("pool_available", 0),
            }
        return out
