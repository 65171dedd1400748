"""Shared helpers for the sessions tests (private)."""

from __future__ import annotations

from typing import Any

from renderkit.sessions import MemoryStore
from renderkit.sessions._base import RawRecord

SECRET = "test-secret-" + "x" * 40


class CountingStore(MemoryStore):
    """A MemoryStore that counts every backend call (optionally pretending to do I/O)."""

    def __init__(self, *, blocking: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.blocking = blocking
        self.calls: list[tuple[str, str]] = []

    def _get(self, session_id: str) -> RawRecord | None:
        self.calls.append(("get", session_id))
        return super()._get(session_id)

    def _put(self, session_id: str, blob: bytes, expected: int, user_id: Any, ttl: float) -> Any:
        self.calls.append(("put", session_id))
        return super()._put(session_id, blob, expected, user_id, ttl)

    def _remove(self, session_id: str) -> bool:
        self.calls.append(("remove", session_id))
        return super()._remove(session_id)

    def _expire(self, session_id: str, ttl: float) -> bool:
        self.calls.append(("expire", session_id))
        return super()._expire(session_id, ttl)


def set_cookies(response: Any) -> list[str]:
    return response.headers.get_list("set-cookie")


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]
