"""One contract for every store, sync and async: versions, conflicts, expiry, users, corruption."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from renderkit.errors import BackendUnavailable, SessionError
from renderkit.sessions import (
    FallbackStore,
    MemoryStore,
    PostgresStore,
    RedisStore,
    SessionConflict,
    SessionStore,
    new_session_id,
)

KEY = secrets.token_hex(32)


class Driver:
    """Runs the store API through its sync methods, or through its async twins."""

    def __init__(self, store: SessionStore, mode: str) -> None:
        self.store = store
        self.mode = mode

    async def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "async":
            return await getattr(self.store, "a" + name)(*args, **kwargs)
        return await asyncio.to_thread(getattr(self.store, name), *args, **kwargs)


def _pg_store(url: str, **kwargs: Any) -> PostgresStore:
    table = "rk_sess_" + uuid.uuid4().hex[:10]
    store = PostgresStore.from_url(url, table=table, **kwargs)
    store.create_table()
    return store


def _drop(store: PostgresStore) -> None:
    store._db_sync().execute(f"DROP TABLE IF EXISTS {store.table}")


def _combos() -> list[Any]:
    """Every store kind driven through its sync and its async methods, except a store built on
    an asyncio client, which serves only the async ones (tested on its own below)."""
    kinds = ["memory", "fakeredis-sync", "fakeredis-async", "fallback", "redis", "postgres"]
    combos = []
    for kind in kinds:
        for mode in ("sync", "async"):
            if kind == "fakeredis-async" and mode == "sync":
                continue
            marks = [pytest.mark.integration] if kind in ("redis", "postgres") else []
            combos.append(pytest.param((kind, mode), id=f"{kind}-{mode}", marks=marks))
    return combos


@pytest.fixture(params=_combos())
async def run(request: Any, renderkit_fakeredis_server: Any) -> AsyncIterator[Driver]:
    import fakeredis

    kind, mode = request.param
    if kind == "memory":
        yield Driver(MemoryStore(), mode)
    elif kind == "fakeredis-sync":
        yield Driver(RedisStore(fakeredis.FakeRedis(server=renderkit_fakeredis_server)), mode)
    elif kind == "fakeredis-async":
        client = fakeredis.FakeAsyncRedis(server=renderkit_fakeredis_server)
        yield Driver(RedisStore(client), mode)
        await client.aclose()
    elif kind == "fallback":
        primary = RedisStore(fakeredis.FakeRedis(server=renderkit_fakeredis_server))
        yield Driver(FallbackStore(primary, MemoryStore()), mode)
    elif kind == "redis":
        url = request.getfixturevalue("renderkit_redis_url")
        store = RedisStore.from_url(url, prefix=f"rk-test-{uuid.uuid4().hex}:")
        yield Driver(store, mode)
        await store.aclose()
    else:
        url = request.getfixturevalue("renderkit_database_url")
        pg = _pg_store(url)
        yield Driver(pg, mode)
        _drop(pg)
        await pg.aclose()


async def test_save_load_roundtrip_with_versions(run: Driver) -> None:
    """A new session saves as version 1; an update with the right version gets 2."""
    sid = new_session_id()
    assert await run("load", sid) is None
    assert await run("save", sid, {"a": 1, "ü": ["x"]}, user_id="7", ttl=60) == 1
    record = await run("load", sid)
    assert record.data == {"a": 1, "ü": ["x"]}
    assert record.version == 1 and record.user_id == "7"
    assert record.expires_at > time.time() + 50
    assert await run("save", sid, {"a": 2}, version=1, user_id="7", ttl=60) == 2
    assert (await run("load", sid)).data == {"a": 2}


async def test_stale_version_conflicts(run: Driver) -> None:
    """Saving with an old version, or creating an existing id, raises SessionConflict."""
    sid = new_session_id()
    await run("save", sid, {"a": 1}, ttl=60)
    await run("save", sid, {"a": 2}, version=1, ttl=60)
    with pytest.raises(SessionConflict):
        await run("save", sid, {"a": 3}, version=1, ttl=60)
    with pytest.raises(SessionConflict):
        await run("save", sid, {"a": 3}, version=0, ttl=60)
    assert (await run("load", sid)).data == {"a": 2}
    assert run.store.stats().get("conflicts", 0) >= 2 or isinstance(run.store, FallbackStore)


async def test_deleted_session_is_not_resurrected_by_update(run: Driver) -> None:
    """An update of a deleted session conflicts instead of recreating it."""
    sid = new_session_id()
    await run("save", sid, {"a": 1}, ttl=60)
    assert await run("delete", sid) is True
    with pytest.raises(SessionConflict):
        await run("save", sid, {"a": 2}, version=1, ttl=60)
    assert await run("load", sid) is None
    assert await run("delete", sid) is False


async def test_expiry_and_touch(run: Driver) -> None:
    """A record expires after its TTL; touch extends a live one and ignores a missing one."""
    sid = new_session_id()
    await run("save", sid, {"a": 1}, ttl=1.2)
    assert await run("touch", sid, 60) is True
    assert (await run("load", sid)).expires_at > time.time() + 50
    short = new_session_id()
    await run("save", short, {"a": 1}, ttl=0.2)
    await asyncio.sleep(0.35)
    assert await run("load", short) is None
    assert await run("touch", short, 60) is False
    assert await run("touch", new_session_id(), 60) is False


async def test_delete_user_sessions(run: Driver) -> None:
    """Log out everywhere removes every session of one user and nobody else's."""
    mine = [new_session_id() for _ in range(3)]
    other = new_session_id()
    for sid in mine:
        await run("save", sid, {"x": 1}, user_id="u1", ttl=60)
    await run("save", other, {"x": 1}, user_id="u2", ttl=60)
    moved = new_session_id()
    await run("save", moved, {"x": 1}, user_id="u1", ttl=60)
    await run("save", moved, {"x": 1}, version=1, user_id="u3", ttl=60)  # changed owner
    assert await run("delete_user_sessions", "u1") == 3
    for sid in mine:
        assert await run("load", sid) is None
    assert await run("load", other) is not None
    assert await run("load", moved) is not None
    assert await run("delete_user_sessions", "nobody") == 0


async def test_size_limit(run: Driver) -> None:
    """Data over max_size raises SessionError and stores nothing."""
    sid = new_session_id()
    with pytest.raises(SessionError, match="over the limit"):
        await run("save", sid, {"blob": "x" * (70 * 1024)}, ttl=60)
    assert await run("load", sid) is None


async def test_health_and_stats(run: Driver) -> None:
    """health_check is healthy on a working store; stats is a plain dict with counters."""
    result = await run("health_check")
    assert result.status == "healthy"
    stats = run.store.stats()
    assert isinstance(stats, dict) and stats["store"]


# --- corruption and encryption ------------------------------------------------------------------


def test_corrupt_json_in_redis_reads_as_missing(renderkit_fakeredis: Any) -> None:
    """A record whose JSON is corrupt (or the wrong Redis type) loads as None and is counted."""
    store = RedisStore(renderkit_fakeredis)
    sid, other = new_session_id(), new_session_id()
    store.save(sid, {"a": 1})
    renderkit_fakeredis.hset("session:" + sid, "d", b"{not json")
    renderkit_fakeredis.set("session:" + other, b"a plain string")
    assert store.load(sid) is None
    assert store.load(other) is None
    assert store.stats()["corrupt"] == 2


def test_encryption_at_rest(renderkit_fakeredis: Any) -> None:
    """With encryption_key nothing in Redis is plaintext; blobs are bound to their id."""
    store = RedisStore(renderkit_fakeredis, encryption_key=KEY)
    sid, other = new_session_id(), new_session_id()
    store.save(sid, {"card": "4111-secret"})
    blob = renderkit_fakeredis.hget("session:" + sid, "d")
    assert b"secret" not in blob and blob[:1] == b"\x01"
    assert store.load(sid).data == {"card": "4111-secret"}  # type: ignore[union-attr]
    # A blob moved under another id fails authentication.
    renderkit_fakeredis.hset("session:" + other, mapping={"d": blob, "v": 1, "u": ""})
    renderkit_fakeredis.expire("session:" + other, 60)
    assert store.load(other) is None
    # A store with a different key cannot read it.
    assert RedisStore(renderkit_fakeredis, encryption_key=secrets.token_hex(32)).load(sid) is None


def test_bad_encryption_key_is_config_error_without_echo() -> None:
    """A key that is not 64 hex characters is rejected without printing it."""
    from renderkit.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        MemoryStore(encryption_key="hunter2-not-hex")
    assert "hunter2" not in str(info.value)
    assert "64 hex" in str(info.value)


def test_memory_store_is_bounded() -> None:
    """MemoryStore evicts the least recently used session beyond max_sessions."""
    store = MemoryStore(max_sessions=2)
    a, b, c = new_session_id(), new_session_id(), new_session_id()
    store.save(a, {"n": 1})
    store.save(b, {"n": 2})
    store.load(a)
    store.save(c, {"n": 3})
    assert store.load(b) is None and store.load(a) is not None
    assert store.stats()["evicted"] == 1


def test_async_client_store_refuses_sync_use_clearly(renderkit_fakeredis_server: Any) -> None:
    """A store given an asyncio client says how to serve WSGI when used synchronously."""
    import fakeredis

    store = RedisStore(fakeredis.FakeAsyncRedis(server=renderkit_fakeredis_server))
    with pytest.raises(TypeError, match="from_url"):
        store.load(new_session_id())


# --- fallback ---------------------------------------------------------------------------------


class BrokenRedis:
    """A redis.Redis stand-in whose every command fails like a dead server."""

    def __init__(self) -> None:
        self.calls = 0

    def register_script(self, script: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            import redis

            self.calls += 1
            raise redis.ConnectionError("Connection refused")

        return call

    def ping(self) -> bool:
        import redis

        raise redis.ConnectionError("Connection refused")


def test_fallback_serves_from_memory_and_reports_degraded(caplog: Any) -> None:
    """Redis down: sessions go to memory, the switch is logged once, health is degraded."""
    broken = BrokenRedis()
    store = FallbackStore(RedisStore(broken), MemoryStore(), recovery_timeout=60)
    with caplog.at_level("WARNING", logger="renderkit.sessions"):
        for _ in range(5):
            sid = new_session_id()
            assert store.save(sid, {"a": 1}) == 1
            assert store.load(sid).data == {"a": 1}  # type: ignore[union-attr]
    switches = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(switches) == 1
    assert broken.calls == 2  # the breaker opened after two failures
    assert store.health_check().status == "degraded"
    assert store.stats()["fallback_active"] is True
    with pytest.raises(BackendUnavailable, match="retry"):
        store.delete_user_sessions("u1")


async def test_fallback_recovers_and_still_reads_outage_sessions(renderkit_fakeredis: Any) -> None:
    """After recovery the primary is used again and sessions made during the outage still load."""
    primary = RedisStore(renderkit_fakeredis)
    store = FallbackStore(primary, MemoryStore(), failure_threshold=1, recovery_timeout=0.05)
    working = primary._sync_client
    primary._sync_client = BrokenRedis()  # type: ignore[assignment]
    during = new_session_id()
    store.save(during, {"made": "during outage"})
    primary._sync_client = working
    await asyncio.sleep(0.1)
    after = new_session_id()
    store.save(after, {"made": "after"})
    assert renderkit_fakeredis.exists("session:" + after)
    assert store.load(during).data == {"made": "during outage"}  # type: ignore[union-attr]
    assert store.health_check().status == "healthy"


# --- Postgres specifics (integration) -----------------------------------------------------------


@pytest.mark.integration
def test_postgres_create_table_idempotent_prune_and_corrupt(renderkit_database_url: str) -> None:
    """create_table twice is fine; prune deletes expired rows; corrupt JSON reads as missing."""
    store = _pg_store(renderkit_database_url, prune_interval=None)
    try:
        store.create_table()
        live, dead, bad = new_session_id(), new_session_id(), new_session_id()
        store.save(live, {"a": 1}, ttl=60)
        store.save(dead, {"a": 1}, ttl=60)
        store.save(bad, {"a": 1}, ttl=60)
        db = store._db_sync()
        db.execute(
            f"UPDATE {store.table} SET expires_at = now() - interval '1 s' WHERE id = %s", (dead,)
        )
        db.execute(f"UPDATE {store.table} SET data = %s WHERE id = %s", (b"{broken", bad))
        assert store.load(dead) is None
        assert store.load(bad) is None
        assert store.stats()["corrupt"] == 1
        assert store.prune() == 1
        assert db.fetch_one(f"SELECT count(*) FROM {store.table}")[0] == 2
        assert store.stats()["pruned"] == 1
    finally:
        _drop(store)
        store.close()


@pytest.mark.integration
def test_postgres_prune_runs_on_one_instance_at_a_time(renderkit_database_url: str) -> None:
    """While one instance holds the advisory lock, another instance's prune skips."""
    store = _pg_store(renderkit_database_url, prune_interval=None)
    other = PostgresStore.from_url(renderkit_database_url, table=store.table, prune_interval=None)
    try:
        with store._db_sync().transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (store._lock_key,))
            assert other.prune() == 0
        assert other.stats()["prune_skipped"] == 1
        assert other.prune() == 0
        assert other.stats()["prune_runs"] == 1
    finally:
        _drop(store)
        store.close()
        other.close()


@pytest.mark.integration
async def test_postgres_prunes_by_itself_after_the_interval(renderkit_database_url: str) -> None:
    """With a short prune_interval a write triggers a background prune (no thread at start)."""
    store = _pg_store(renderkit_database_url, prune_interval=0.05)
    try:
        dead = new_session_id()
        await store.asave(dead, {"a": 1}, ttl=0.5)
        await asyncio.sleep(1.0)
        await store.asave(new_session_id(), {"b": 1}, ttl=60)
        for _ in range(50):
            if store.stats()["pruned"]:
                break
            await asyncio.sleep(0.05)
        assert store.stats()["pruned"] == 1
    finally:
        _drop(store)
        await store.aclose()


@pytest.mark.integration
def test_postgres_missing_table_error_says_how_to_create_it(renderkit_database_url: str) -> None:
    """Using a store whose table does not exist raises SessionError naming the migrate command."""
    store = PostgresStore.from_url(renderkit_database_url, table="rk_no_such_table_xyz")
    try:
        with pytest.raises(SessionError, match="renderkit sessions migrate"):
            store.load(new_session_id())
    finally:
        store.close()


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_sessions_survive_a_deploy(kind: str, request: Any) -> None:
    """A brand-new store object (a new process after a deploy) reads the old sessions."""
    sid = new_session_id()
    if kind == "redis":
        url = request.getfixturevalue("renderkit_redis_url")
        prefix = f"rk-deploy-{uuid.uuid4().hex}:"
        old = RedisStore.from_url(url, prefix=prefix, encryption_key=KEY)
        old.save(sid, {"user": "ada"}, user_id="1")
        old.close()
        new = RedisStore.from_url(url, prefix=prefix, encryption_key=KEY)
        try:
            assert new.load(sid).data == {"user": "ada"}  # type: ignore[union-attr]
            assert new.delete_user_sessions("1") == 1
        finally:
            new.close()
    else:
        url = request.getfixturevalue("renderkit_database_url")
        first = _pg_store(url)
        first.save(sid, {"user": "ada"}, user_id="1")
        first.close()
        second = PostgresStore.from_url(url, table=first.table)
        try:
            assert second.load(sid).data == {"user": "ada"}  # type: ignore[union-attr]
        finally:
            _drop(second)
            second.close()


# --- store_from_env ----------------------------------------------------------------------------


def test_store_from_env_picks_the_store() -> None:
    """auto: Redis with a fallback if REDIS_URL is set, Postgres with DATABASE_URL, else memory."""
    from renderkit.sessions import store_from_env

    assert isinstance(store_from_env({}), MemoryStore)
    redis_only = store_from_env({"REDIS_URL": "redis://127.0.0.1:6399/3"})
    assert isinstance(redis_only, FallbackStore)
    assert isinstance(redis_only.fallback, MemoryStore)
    both = store_from_env(
        {"REDIS_URL": "redis://127.0.0.1:6399/3", "DATABASE_URL": "postgres://u@h/db"}
    )
    assert isinstance(both, FallbackStore) and isinstance(both.fallback, PostgresStore)
    pg = store_from_env({"DATABASE_URL": "postgres://u@h/db", "SESSION_PRUNE_INTERVAL": "5m"})
    assert isinstance(pg, PostgresStore) and pg.prune_interval == 300
    bare = store_from_env({"REDIS_URL": "redis://h:6379/0", "SESSION_FALLBACK": "none"})
    assert isinstance(bare, RedisStore)
    sealed = store_from_env({"SESSION_ENCRYPTION_KEY": KEY, "SESSION_MAX_SIZE": "1KiB"})
    assert sealed.codec.encrypted and sealed.codec.max_size == 1024


def test_store_from_env_lists_every_problem_without_secrets() -> None:
    """Bad variables are all reported at once; URLs and keys are never echoed."""
    from renderkit.errors import ConfigError
    from renderkit.sessions import store_from_env

    with pytest.raises(ConfigError) as info:
        store_from_env(
            {
                "SESSION_STORE": "mongo",
                "REDIS_URL": "http://user:pw-secret@h",
                "SESSION_ENCRYPTION_KEY": "not-hex-secret",
                "SESSION_MAX_SIZE": "lots",
            }
        )
    names = {p.variable for p in info.value.errors}
    assert names == {"SESSION_STORE", "REDIS_URL", "SESSION_ENCRYPTION_KEY", "SESSION_MAX_SIZE"}
    assert "pw-secret" not in str(info.value) and "not-hex-secret" not in str(info.value)
    with pytest.raises(ConfigError, match="needs REDIS_URL"):
        store_from_env({"SESSION_STORE": "redis"})


# --- Mirroring into a durable fallback --------------------------------------------------------


def _mirrored(fake_primary: Any) -> tuple[FallbackStore, SessionStore]:
    import fakeredis

    durable = RedisStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    return FallbackStore(RedisStore(fake_primary), durable), durable


def test_mirror_is_on_for_a_durable_fallback_only(renderkit_fakeredis: Any) -> None:
    """A memory fallback is not mirrored by default; a durable one is; both can be forced."""
    assert FallbackStore(RedisStore(renderkit_fakeredis), MemoryStore()).mirror is False
    store, _ = _mirrored(renderkit_fakeredis)
    assert store.mirror is True
    forced = FallbackStore(RedisStore(renderkit_fakeredis), MemoryStore(), mirror=True)
    assert forced.mirror is True


def test_a_redis_restarted_empty_loses_no_mirrored_session(renderkit_fakeredis: Any) -> None:
    """After Redis comes back empty the session loads from the fallback, its counter goes on,
    and Redis takes the session back on the next save."""
    store, durable = _mirrored(renderkit_fakeredis)
    sid = new_session_id()
    version = 0
    for count in range(1, 4):
        version = store.save(sid, {"count": count}, version=version)
    assert durable.load(sid).data["count"] == 3  # type: ignore[union-attr]
    renderkit_fakeredis.flushall()  # kill -9 of a Redis without persistence
    record = store.load(sid)
    assert record is not None and record.data == {"count": 3}
    version = store.save(sid, {"count": 4}, version=record.version)
    assert renderkit_fakeredis.exists("session:" + sid)
    again = store.load(sid)
    assert again is not None and again.data == {"count": 4}
    assert durable.load(sid).data["count"] == 4  # type: ignore[union-attr]
    assert store.stats()["mirror_errors"] == 0


async def test_async_mirror_survives_an_empty_redis_and_deletes_both(
    renderkit_fakeredis: Any, renderkit_async_fakeredis: Any
) -> None:
    """The async twins mirror the same way, and a delete removes the session from both."""
    import fakeredis

    durable = RedisStore(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()))
    store = FallbackStore(RedisStore(renderkit_async_fakeredis), durable)
    sid = new_session_id()
    version = await store.asave(sid, {"n": 1})
    await renderkit_async_fakeredis.flushall()
    record = await store.aload(sid)
    assert record is not None and record.data == {"n": 1}
    await store.asave(sid, {"n": 2}, version=record.version)
    assert (await store.aload(sid)).data == {"n": 2}  # type: ignore[union-attr]
    assert await store.adelete(sid) is True
    assert await durable.aload(sid) is None
    assert await store.aload(sid) is None
    del version


def test_a_store_subclass_missing_a_hook_says_which() -> None:
    """A custom store that forgets a raw hook gets a TypeError naming the hook to override."""

    class Incomplete(SessionStore):
        pass

    with pytest.raises(TypeError, match=r"Incomplete does not implement _get\(\)"):
        Incomplete().load(new_session_id())
