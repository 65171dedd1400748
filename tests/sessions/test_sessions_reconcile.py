"""Nothing done while the primary is away is undone by its return; concurrent writers converge.

Every store kind runs the same scenarios through its sync and its async methods (issue #15):
a log-out, a ``regenerate()`` and a write made during an outage survive the primary's return
(which still holds its older copy: a hung Redis, not an empty one), also when another worker
(a second FallbackStore on the same stores) reads first; six requests adding one key each to
one session all keep their key and none raises.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from renderkit.sessions import (
    DELETED,
    FallbackStore,
    MemoryStore,
    PostgresStore,
    RedisStore,
    SessionStore,
    new_session_id,
)
from renderkit.sessions._engine import SessionEngine

SECRET = "reconcile-secret-" + "x" * 40


class Switch:
    """Makes a RedisStore's script calls raise ConnectionError while ``down`` (a hung Redis
    whose socket timed out): its data stays, as after SIGSTOP/SIGCONT."""

    def __init__(self, store: RedisStore) -> None:
        self.down = False
        sync_eval, async_eval = store._eval, store._aeval

        def _eval(*args: Any) -> Any:
            if self.down:
                raise ConnectionError("redis hung")
            return sync_eval(*args)

        async def _aeval(*args: Any) -> Any:
            if self.down:
                raise ConnectionError("redis hung")
            return await async_eval(*args)

        store._eval = _eval  # type: ignore[method-assign]
        store._aeval = _aeval  # type: ignore[method-assign]


class Call:
    """One store API call through the sync method (in a thread) or its async twin."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def __call__(self, store: SessionStore, name: str, *args: Any, **kw: Any) -> Any:
        if self.mode == "async":
            return await getattr(store, "a" + name)(*args, **kw)
        return await asyncio.to_thread(getattr(store, name), *args, **kw)


def _fallback_kinds() -> list[Any]:
    return [
        pytest.param(("memory", mode), id=f"memory-fallback-{mode}") for mode in ("sync", "async")
    ] + [
        pytest.param(
            ("postgres", mode), id=f"postgres-fallback-{mode}", marks=pytest.mark.integration
        )
        for mode in ("sync", "async")
    ]


@pytest.fixture(params=_fallback_kinds())
async def outage(request: Any, renderkit_fakeredis_server: Any) -> AsyncIterator[Any]:
    """(call, primary switch, make_worker) where make_worker() builds one more FallbackStore
    on the same Redis and fallback (another uvicorn worker)."""
    import fakeredis

    kind, mode = request.param
    made: list[PostgresStore] = []
    if kind == "memory":
        shared_fallback: SessionStore = MemoryStore()
    else:
        url = request.getfixturevalue("renderkit_database_url")
        pg = PostgresStore.from_url(url, table="rk_rec_" + uuid.uuid4().hex[:10])
        pg.create_table()
        made.append(pg)
        shared_fallback = pg
    primary = RedisStore(fakeredis.FakeRedis(server=renderkit_fakeredis_server))
    switch = Switch(primary)

    def worker() -> FallbackStore:
        return FallbackStore(primary, shared_fallback, failure_threshold=1, recovery_timeout=0.01)

    yield Call(mode), switch, worker
    for pg in made:
        pg._db_sync().execute(f"DROP TABLE IF EXISTS {pg.table}")
        await pg.aclose()


async def test_a_log_out_during_the_outage_is_not_undone(outage: Any) -> None:
    """Redis (hung) still holds the session; the log-out went to the fallback only."""
    call, switch, worker = outage
    store = worker()
    sid = new_session_id()
    await call(store, "save", sid, {"user": "ada"})
    switch.down = True
    assert (await call(store, "load", sid)) is None or True  # served by the fallback
    assert await call(store, "delete", sid) is True  # log-out while Redis is away
    switch.down = False
    await asyncio.sleep(0.02)  # past recovery_timeout: the breaker lets Redis in again
    assert await call(store, "load", sid) is None  # the stolen cookie stays dead
    assert await call(store, "load", sid) is None
    assert store.stats()["tombstones"] == 1


async def test_a_write_during_the_outage_wins_over_the_primarys_older_copy(outage: Any) -> None:
    """cart goes before -> during (fallback) and stays 'during' after Redis returns."""
    call, switch, worker = outage
    store = worker()
    sid = new_session_id()
    version = await call(store, "save", sid, {"cart": "before"})
    switch.down = True
    record = await call(store, "load", sid)
    version = record.version if record is not None else 0
    await call(store, "save", sid, {"cart": "during"}, version=version)
    switch.down = False
    await asyncio.sleep(0.02)
    for _ in range(2):
        again = await call(store, "load", sid)
        assert again is not None and again.data == {"cart": "during"}
    # and Redis itself is repaired (by a load, or by the probe's replay): a worker that never
    # saw the outage reads 'during' too
    for _ in range(100):
        if store.journal_size == 0:
            break
        await asyncio.sleep(0.02)
    assert store.primary.load(sid).data["cart"] == "during"  # type: ignore[union-attr]


async def test_regenerate_at_log_in_during_the_outage_kills_the_planted_id(outage: Any) -> None:
    """Session fixation: the planted pre-login id must not work again after recovery."""
    call, switch, worker = outage
    store = worker()
    engine = SessionEngine(store, secret_key=SECRET, environ={})
    planted = new_session_id()
    await call(store, "save", planted, {"cart": 1})
    switch.down = True
    session = engine.open([engine.signer.sign(planted)])
    session["user"] = "ada"
    session.regenerate()
    plan = engine.plan(session, True)
    assert plan is not None and plan.delete_id == planted
    if call.mode == "async":
        await engine.acommit(plan)
    else:
        await asyncio.to_thread(engine.commit, plan)
    switch.down = False
    await asyncio.sleep(0.02)
    assert await call(store, "load", planted) is None
    assert plan.save_id is not None
    fresh = await call(store, "load", plan.save_id)
    assert fresh is not None and fresh.data["user"] == "ada"


async def test_another_worker_sees_the_outage_writes_after_recovery(outage: Any) -> None:
    """Worker A logs out during the outage; worker B, which saw the outage too, reads after
    Redis returns and before A replays: B must not serve Redis's older copy."""
    call, switch, worker = outage
    a, b = worker(), worker()
    sid = new_session_id()
    await call(a, "save", sid, {"user": "ada"})
    switch.down = True
    assert await call(b, "load", sid) is None or True  # B notices the outage
    await call(a, "delete", sid)
    switch.down = False
    await asyncio.sleep(0.02)
    if isinstance(a.fallback, MemoryStore):
        # A per-process fallback: B cannot see A's tombstone; A's replay repairs Redis.
        await call(a, "load", new_session_id())  # any call: A recovers and replays
    assert await call(b, "load", sid) is None
    assert await call(a, "load", sid) is None


async def test_the_journal_is_bounded(renderkit_fakeredis_server: Any) -> None:
    """At most max_journal ids are remembered; the oldest go first (counted)."""
    import fakeredis

    primary = RedisStore(fakeredis.FakeRedis(server=renderkit_fakeredis_server))
    switch = Switch(primary)
    store = FallbackStore(primary, MemoryStore(), failure_threshold=1, max_journal=3)
    switch.down = True
    for _ in range(5):
        store.save(new_session_id(), {"n": 1})
    assert store.journal_size == 3
    assert store.stats()["journal_dropped"] == 2
    with pytest.raises(ValueError, match="max_journal"):
        FallbackStore(primary, MemoryStore(), max_journal=0)


# --- concurrent writers -----------------------------------------------------------------


def _merge_kinds() -> list[Any]:
    kinds = ["memory", "fakeredis", "fallback", "redis", "postgres"]
    return [
        pytest.param(
            (kind, mode),
            id=f"{kind}-{mode}",
            marks=[pytest.mark.integration] if kind in ("redis", "postgres") else [],
        )
        for kind in kinds
        for mode in ("sync", "async")
    ]


@pytest.fixture(params=_merge_kinds())
async def merging(request: Any, renderkit_fakeredis_server: Any) -> AsyncIterator[Any]:
    import fakeredis

    kind, mode = request.param
    cleanup: list[Any] = []
    store: SessionStore
    if kind == "memory":
        store = MemoryStore()
    elif kind == "fakeredis":
        store = RedisStore(fakeredis.FakeRedis(server=renderkit_fakeredis_server))
    elif kind == "fallback":
        store = FallbackStore(
            RedisStore(fakeredis.FakeRedis(server=renderkit_fakeredis_server)), MemoryStore()
        )
    elif kind == "redis":
        store = RedisStore.from_url(
            request.getfixturevalue("renderkit_redis_url"), prefix=f"rk-{uuid.uuid4().hex}:"
        )
        cleanup.append(store.aclose)
    else:
        pg = PostgresStore.from_url(
            request.getfixturevalue("renderkit_database_url"),
            table="rk_mrg_" + uuid.uuid4().hex[:10],
        )
        pg.create_table()
        store = pg

        async def drop() -> None:
            pg._db_sync().execute(f"DROP TABLE IF EXISTS {pg.table}")
            await pg.aclose()

        cleanup.append(drop)
    yield Call(mode), store
    for fn in cleanup:
        await fn()


async def test_six_parallel_requests_each_adding_a_key_lose_nothing(merging: Any) -> None:
    """All six loaded version 1; each adds its own key; every key is there, nobody raised."""
    call, store = merging
    engine = SessionEngine(store, secret_key=SECRET, environ={})
    sid = new_session_id()
    await call(store, "save", sid, {"base": 0})
    cookie = engine.signer.sign(sid)
    sessions = []
    for n in range(6):
        session = (
            await engine.aopen([cookie])
            if call.mode == "async"
            else await asyncio.to_thread(engine.open, [cookie])
        )
        session[f"k{n}"] = n
        sessions.append(session)
    plans = [engine.plan(s, True) for s in sessions]

    async def commit(plan: Any) -> None:
        if call.mode == "async":
            await engine.acommit(plan)
        else:
            await asyncio.to_thread(engine.commit, plan)

    await asyncio.gather(*(commit(p) for p in plans))
    record = await call(store, "load", sid)
    assert record is not None
    assert record.data == {"base": 0, **{f"k{n}": n for n in range(6)}}
    assert engine.stats()["dropped_stale"] == 0


async def test_merge_sets_and_deletes_only_the_named_keys(merging: Any) -> None:
    """merge() keeps keys it does not name; DELETED removes one; an ended session stays ended."""
    call, store = merging
    sid = new_session_id()
    await call(store, "save", sid, {"a": 1, "b": 2}, user_id="u1")
    version = await call(store, "merge", sid, {"b": DELETED, "c": [3]})
    assert isinstance(version, int) and version >= 2
    record = await call(store, "load", sid)
    assert record.data == {"a": 1, "c": [3]} and record.user_id == "u1"
    await call(store, "merge", sid, {"a": 9}, user_id="u2", set_user=True)
    record = await call(store, "load", sid)
    assert record.data == {"a": 9, "c": [3]} and record.user_id == "u2"
    assert await call(store, "delete_user_sessions", "u2") == 1
    assert await call(store, "merge", sid, {"a": 1}) is None
    assert await call(store, "load", sid) is None


async def test_a_merge_after_recovery_keeps_a_session_born_in_the_outage(outage: Any) -> None:
    """Created in the fallback while Redis was away, then merged after it returned: the
    session's keys all survive (the merge takes the session over into Redis)."""
    call, switch, worker = outage
    store = worker()
    sid = new_session_id()
    switch.down = True
    await call(store, "save", sid, {"a": 1})
    switch.down = False
    await asyncio.sleep(0.02)
    version = await call(store, "merge", sid, {"b": 2})
    assert version is not None
    record = await call(store, "load", sid)
    assert record is not None and record.data == {"a": 1, "b": 2}


async def test_the_journal_is_replayed_when_redis_returns_even_without_requests(
    outage: Any,
) -> None:
    """Worker A logs out during the outage and then gets no request; its background probe sees
    Redis return and replays the journal, so worker B, which never saw the outage and trusts
    Redis, does not serve the stolen cookie."""
    call, switch, worker = outage
    a = worker()
    sid = new_session_id()
    await call(a, "save", sid, {"user": "ada"})
    switch.down = True
    await call(a, "load", sid)  # the outage is noticed: the probe starts
    await call(a, "delete", sid)
    switch.down = False
    for _ in range(100):  # the probe runs every recovery_timeout (0.01 s), then the drain
        await asyncio.sleep(0.02)
        if a.journal_size == 0:
            break
    assert a.journal_size == 0
    b = worker()  # a worker that saw nothing
    assert await call(b, "load", sid) is None
    a.close()


class FlakyMemory(MemoryStore):
    """A durable-looking fallback (mirror on) that raises ConnectionError while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _get(self, session_id: str) -> Any:
        if self.down:
            raise ConnectionError("postgres restarting")
        return super()._get(session_id)

    def _remove(self, session_id: str) -> bool:
        if self.down:
            raise ConnectionError("postgres restarting")
        return super()._remove(session_id)


@pytest.fixture(params=["sync", "async"])
def mirrored(request: Any, renderkit_fakeredis_server: Any) -> Any:
    import fakeredis

    primary = RedisStore(fakeredis.FakeRedis(server=renderkit_fakeredis_server))
    fallback = FlakyMemory()
    store = FallbackStore(
        primary, fallback, mirror=True, failure_threshold=1, recovery_timeout=0.01
    )
    return Call(request.param), Switch(primary), fallback, store


async def test_a_fallback_failing_while_both_are_compared_keeps_the_session(mirrored: Any) -> None:
    """Right after a Redis outage every load also reads the fallback; Postgres restarting
    then (the chaos run's sequence) must not cost the user the session Redis holds."""
    call, switch, fallback, store = mirrored
    sid = new_session_id()
    await call(store, "save", sid, {"n": 5})
    switch.down = True
    await call(store, "load", sid)  # outage noticed
    switch.down = False
    await asyncio.sleep(0.02)
    await call(store, "load", sid)  # recovered: inside the reconcile window now
    fallback.down = True
    record = await call(store, "load", sid)
    assert record is not None and record.data == {"n": 5} and not record.tentative
    store.close()


async def test_a_journalled_id_is_shown_but_not_written_while_the_fallback_is_away(
    mirrored: Any,
) -> None:
    """This worker wrote the session to the fallback during the outage; Redis is back but not
    repaired yet and the fallback fails: Redis's older copy may be shown, never written on."""
    call, switch, fallback, store = mirrored
    sid = new_session_id()
    await call(store, "save", sid, {"n": 5})
    switch.down = True
    old = await call(store, "load", sid)
    await call(store, "save", sid, {"n": 6}, version=old.version)  # journalled, in the fallback
    store.degrader.close()  # no background replay in this test
    switch.down = False
    fallback.down = True
    await asyncio.sleep(0.02)
    record = await call(store, "load", sid)
    assert record is not None and record.data == {"n": 5} and record.tentative
    engine = SessionEngine(store, secret_key=SECRET, environ={})
    session = engine.open([engine.signer.sign(sid)])
    session["n"] = 7
    assert engine.plan(session, True) is None  # shown, not saved over the newer n=6
    fallback.down = False
    assert (await call(store, "load", sid)).data == {"n": 6}
    store.close()


async def test_a_log_out_while_the_fallback_is_away_is_not_undone_by_its_copy(
    mirrored: Any,
) -> None:
    """Redis up, Postgres (the mirror) away at log-out: its copy survives there, but the
    tombstone left in Redis outranks it, also when a later load compares both stores."""
    call, switch, fallback, store = mirrored
    sid = new_session_id()
    await call(store, "save", sid, {"user": "ada"})
    fallback.down = True
    assert await call(store, "delete", sid) is True
    fallback.down = False
    assert fallback.load(sid) is not None  # the stale copy is still there
    assert await call(store, "load", sid) is None
    store._recovered_at = store._recovered_at
    switch.down = True
    assert await call(store, "load", sid) is None or True  # outage: served by the fallback
    switch.down = False
    await asyncio.sleep(0.02)
    assert await call(store, "load", sid) is None  # compared after recovery: the tombstone wins
    store.close()


async def test_a_primary_miss_with_the_fallback_away_is_unavailable_not_empty(
    mirrored: Any,
) -> None:
    """Redis restarted empty and Postgres (the mirror) fails too: the session may exist, so the
    store says it cannot tell (an error the engine turns into a kept cookie), never "none"."""
    call, _switch, fallback, store = mirrored
    sid = new_session_id()
    await call(store, "save", sid, {"n": 1})
    store.primary.delete(sid)  # what a Redis restarted empty looks like for this id
    fallback.down = True
    with pytest.raises(ConnectionError):
        await call(store, "load", sid)
    fallback.down = False
    assert (await call(store, "load", sid)).data == {"n": 1}
    store.close()


async def test_a_failed_mirror_write_makes_the_outage_copy_read_only(mirrored: Any) -> None:
    """n=2 reached Redis but not the mirror (Postgres blinked); Redis then goes away: the
    mirror's n=1 is shown but not written on, so Redis's n=2 wins when it returns."""
    call, switch, fallback, store = mirrored
    sid = new_session_id()
    version = await call(store, "save", sid, {"n": 1})
    fallback.down = True
    version = await call(store, "save", sid, {"n": 2}, version=version)
    assert store.stats()["mirror_errors"] == 1
    fallback.down = False
    switch.down = True
    record = await call(store, "load", sid)
    assert record is not None and record.data == {"n": 1} and record.tentative
    store.degrader.close()
    switch.down = False
    await asyncio.sleep(0.02)
    assert (await call(store, "load", sid)).data == {"n": 2}
    store.close()


async def test_a_mirror_debt_is_settled_by_another_workers_newer_copy(
    mirrored: Any, renderkit_fakeredis_server: Any
) -> None:
    """Worker A failed to mirror n=2 (Postgres blinked); worker B later mirrored n=3. When
    Redis then hangs, A's fallback copy is the newest there is: A shows it and writes on it
    (the chaos run lost 201 writes while A treated B's copy as stale)."""
    import fakeredis

    call, switch, fallback, a = mirrored
    b = FallbackStore(
        RedisStore(fakeredis.FakeRedis(server=renderkit_fakeredis_server)), fallback,
        mirror=True, failure_threshold=1, recovery_timeout=0.01,
    )  # fmt: skip
    sid = new_session_id()
    version = await call(a, "save", sid, {"n": 1})
    fallback.down = True
    version = await call(a, "save", sid, {"n": 2}, version=version)
    fallback.down = False
    await asyncio.sleep(0.001)  # B's write is stamped later than A's failed mirror
    await call(b, "save", sid, {"n": 3}, version=version)
    switch.down = True  # A's primary hangs
    record = await call(a, "load", sid)
    assert record is not None and record.data == {"n": 3} and not record.tentative
    engine = SessionEngine(a, secret_key=SECRET, environ={})
    session = engine.open([engine.signer.sign(sid)])
    session["n"] = 4
    plan = engine.plan(session, True)
    assert plan is not None  # written on, not skipped
    a.close()
    b.close()
