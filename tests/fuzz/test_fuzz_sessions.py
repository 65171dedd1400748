"""Property tests for session cookies: signature checking and hostile Cookie headers."""

from __future__ import annotations

import asyncio
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

sessions = pytest.importorskip("renderkit.sessions")

from renderkit.sessions import MemoryStore, SessionMiddleware, Signer, new_session_id  # noqa: E402

FUZZ = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
B64 = string.ascii_letters + string.digits + "-_"

SIGNER = Signer(["current-secret-" + "x" * 32, "old-secret-" + "y" * 32], option="secret_key")
OLD = Signer(["old-secret-" + "y" * 32], option="secret_key")
GENUINE = SIGNER.sign(new_session_id())


def _mutations(value: str) -> st.SearchStrategy[str]:
    position = st.integers(min_value=0, max_value=len(value) - 1)
    return st.builds(
        lambda i, ch: value[:i] + ch + value[i + 1 :], position, st.sampled_from(B64 + ".=+/ ")
    ).filter(lambda v: v != value)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=120),
        st.text(alphabet=B64 + ".", min_size=87, max_size=87),
        _mutations(GENUINE),
    )
)
@example("")
@example(GENUINE + "=")
@example(GENUINE[:-1])
@example("é" * 87)
def test_unsign_accepts_only_genuine_cookies(value: str) -> None:
    """unsign returns None for anything but a value our keys signed; never raises."""
    result = SIGNER.unsign(value)
    if result is None:
        return
    session_id, current = result
    assert current and SIGNER.sign(session_id) == value


@FUZZ
@given(st.just(None))
def test_a_cookie_signed_with_the_old_key_is_accepted_and_flagged(_: None) -> None:
    """Key rotation: the previous key still verifies, flagged for re-signing."""
    sid = new_session_id()
    assert SIGNER.unsign(OLD.sign(sid)) == (sid, False)
    assert SIGNER.unsign(SIGNER.sign(sid)) == (sid, True)


async def _call(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {"sent": sent}


def _app() -> Any:
    seen: dict[str, Any] = {}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        session = scope["session"]
        seen["data"] = dict(session)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = SessionMiddleware(
        inner, store=MemoryStore(), secret_key="current-secret-" + "x" * 32, https_only=False
    )
    return app, seen


COOKIE_HEADERS = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.tuples(
            st.sampled_from(["session", "Session", "other", "", "session "]),
            st.one_of(st.text(max_size=100), _mutations(GENUINE), st.just(GENUINE)),
        ),
        max_size=4,
    ).map(lambda pairs: "; ".join(f"{k}={v}" for k, v in pairs).encode("utf-8")),
)


@FUZZ
@given(st.lists(COOKIE_HEADERS, max_size=3))
@example([b"session=" + b"\xff" * 90])
@example([b"session=" + GENUINE.encode() + b"; session=" + GENUINE.encode()])
def test_hostile_cookie_headers_give_an_empty_session_never_a_500(headers: list[bytes]) -> None:
    """Whatever the Cookie headers hold, the request is served with an empty fresh session."""
    app, seen = _app()
    status, _ = asyncio.run(_call(app, [(b"cookie", h) for h in headers]))
    assert status == 200
    assert seen["data"] == {}
