"""A session written to the fallback during a primary outage stays readable and writable after
the primary recovers (the chaos run, benchmarks/chaos.py, exercises the same path on Redis)."""

from __future__ import annotations

import pytest

pytest.importorskip("renderkit.sessions")

from renderkit.sessions import FallbackStore, MemoryStore


class FlakyStore(MemoryStore):
    """A memory store that raises ConnectionError while ``down`` and forgets all on restart."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("primary is down")

    def load(self, session_id):  # type: ignore[no-untyped-def]
        self._check()
        return super().load(session_id)

    def save(self, session_id, data, **kw):  # type: ignore[no-untyped-def]
        self._check()
        return super().save(session_id, data, **kw)

    async def aload(self, session_id):  # type: ignore[no-untyped-def]
        self._check()
        return await super().aload(session_id)

    async def asave(self, session_id, data, **kw):  # type: ignore[no-untyped-def]
        self._check()
        return await super().asave(session_id, data, **kw)


def _store() -> tuple[FlakyStore, FallbackStore]:
    primary = FlakyStore()
    store = FallbackStore(primary, MemoryStore(), failure_threshold=1, recovery_timeout=0.001)
    return primary, store


def test_a_session_from_the_outage_stays_writable_after_recovery_sync() -> None:
    """Save during the outage (fallback), recover, save again with the fallback's version."""
    primary, store = _store()
    primary.down = True
    version = store.save("sid", {"n": 1})
    version = store.save("sid", {"n": 2}, version=version)
    primary.down = False
    record = store.load("sid")
    assert record is not None and record.data == {"n": 2}
    store.save("sid", {"n": 3}, version=record.version)
    again = store.load("sid")
    assert again is not None and again.data == {"n": 3}


async def test_a_session_from_the_outage_stays_writable_after_recovery_async() -> None:
    """The async twin behaves the same."""
    primary, store = _store()
    primary.down = True
    version = await store.asave("sid", {"n": 1})
    version = await store.asave("sid", {"n": 2}, version=version)
    primary.down = False
    record = await store.aload("sid")
    assert record is not None and record.data == {"n": 2}
    await store.asave("sid", {"n": 3}, version=record.version)
    again = await store.aload("sid")
    assert again is not None and again.data == {"n": 3}
