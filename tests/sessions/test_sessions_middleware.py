"""SessionMiddleware (ASGI): drop-in behaviour, lazy loading, commits, cookies, bad input."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _sessions_helpers import SECRET, CountingStore, cookie_value, set_cookies
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware as StarletteSessionMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from renderkit.errors import ConfigError, SessionError
from renderkit.sessions import MemoryStore, SessionMiddleware, Signer, new_session_id

# --- the same handlers, written for Starlette's SessionMiddleware -------------------------


async def login(request: Any) -> JSONResponse:
    request.session["user"] = request.query_params["name"]
    return JSONResponse({"ok": True})


async def visit(request: Any) -> JSONResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JSONResponse({"user": request.session.get("user"), "visits": request.session["visits"]})


async def whoami(request: Any) -> JSONResponse:
    return JSONResponse({"user": request.session.get("user"), "keys": sorted(request.session)})


async def logout(request: Any) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"ok": True})


async def plain(request: Any) -> JSONResponse:
    return JSONResponse({"plain": True})


HANDLERS = {"/login": login, "/visit": visit, "/whoami": whoami, "/logout": logout, "/plain": plain}


def starlette_app(middleware: type, **options: Any) -> Starlette:
    app = Starlette(routes=[Route(path, fn) for path, fn in HANDLERS.items()])
    app.add_middleware(middleware, **options)
    return app


def fastapi_app(middleware: type, **options: Any) -> FastAPI:
    app = FastAPI()
    for path, fn in HANDLERS.items():

        async def endpoint(request: Request, fn: Any = fn) -> Any:
            return await fn(request)

        app.add_api_route(path, endpoint)
    app.add_middleware(middleware, **options)
    return app


def scenario(client: TestClient) -> list[Any]:
    """A user's journey; returns every response body."""
    return [
        client.get("/whoami").json(),
        client.get("/login?name=ada").json(),
        client.get("/visit").json(),
        client.get("/visit").json(),
        client.get("/whoami").json(),
        client.get("/plain").json(),
        client.get("/logout").json(),
        client.get("/whoami").json(),
    ]


STARLETTE_OPTIONS = {
    "secret_key": SECRET,
    "session_cookie": "sid",
    "max_age": 3600,
    "path": "/",
    "same_site": "lax",
    "https_only": False,
    "domain": None,
}


@pytest.mark.parametrize("build", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
def test_same_handlers_work_under_starlettes_middleware_and_ours(build: Any) -> None:
    """Changing the import line is the whole migration: identical bodies under both."""
    with TestClient(build(StarletteSessionMiddleware, **STARLETTE_OPTIONS)) as client:
        theirs = scenario(client)
    with TestClient(build(SessionMiddleware, **STARLETTE_OPTIONS)) as client:
        ours = scenario(client)
    assert ours == theirs
    assert ours[4] == {"user": "ada", "keys": ["user", "visits"]}
    assert ours[7] == {"user": None, "keys": []}


def test_cookie_holds_only_a_signed_id_and_secure_flags() -> None:
    """The cookie is <43-char id>.<43-char HMAC>, HttpOnly, SameSite=Lax, Path=/, Max-Age
    (attributes spelled as Starlette spells them; Starlette's 14-day default)."""
    store = MemoryStore()
    app = starlette_app(SessionMiddleware, store=store, secret_key=SECRET, https_only=True)
    with TestClient(app, base_url="https://testserver") as client:
        response = client.get("/login?name=a-very-secret-user-name")
    [header] = set_cookies(response)
    value = cookie_value(header)
    assert "secret-user" not in header
    assert len(value) == 87 and value[43] == "."
    assert Signer(SECRET, option="t").unsign(value) == (value[:43], True)
    flags = [part.strip() for part in header.split(";")]
    assert {"httponly", "samesite=lax", "path=/", "secure", "Max-Age=1209600"} <= set(flags)
    assert store.load(value[:43]).data == {"user": "a-very-secret-user-name"}  # type: ignore[union-attr]


def test_secure_flag_defaults_to_the_environment() -> None:
    """https_only=None: Secure in production, not in development."""
    prod = SessionMiddleware(plain, secret_key=SECRET, environ={"APP_ENV": "production"})
    dev = SessionMiddleware(plain, secret_key=SECRET, environ={"APP_ENV": "development"})
    forced = SessionMiddleware(
        plain, secret_key=SECRET, https_only=False, environ={"APP_ENV": "production"}
    )
    assert prod.engine.cookie.secure is True
    assert dev.engine.cookie.secure is False
    assert forced.engine.cookie.secure is False


def test_untouched_session_loads_once_and_sends_no_cookie() -> None:
    """No cookie: no store call. A valid cookie: one load (the session is a real dict, so
    it must hold the data before the handler runs), and no write, no cookie."""
    store = CountingStore()
    with TestClient(starlette_app(SessionMiddleware, store=store, secret_key=SECRET)) as client:
        assert set_cookies(client.get("/plain")) == []
        assert store.calls == []
        client.get("/login?name=ada")
        store.calls.clear()
        response = client.get("/plain")
    assert [call for call, _ in store.calls] == ["get"]
    assert set_cookies(response) == []


def test_read_only_request_never_writes() -> None:
    """A request that only reads loads once and never saves nor re-sends the cookie."""
    store = CountingStore()
    with TestClient(starlette_app(SessionMiddleware, store=store, secret_key=SECRET)) as client:
        client.get("/login?name=ada")
        store.calls.clear()
        response = client.get("/whoami")
        untouched = client.get("/plain")
    assert response.json()["user"] == "ada"
    assert [call for call, _ in store.calls] == ["get", "get"]
    assert set_cookies(response) == []
    assert response.headers["vary"] == "Cookie"  # session-dependent: never shared by a cache
    assert "vary" not in untouched.headers


def test_network_store_preloads_only_with_a_valid_cookie() -> None:
    """A store doing I/O is loaded before the handler, but only for a validly signed cookie."""
    store = CountingStore(blocking=True)
    app = starlette_app(SessionMiddleware, store=store, secret_key=SECRET)
    with TestClient(app) as client:
        client.get("/plain")
        client.get("/plain", headers={"cookie": "session=" + "A" * 43 + "." + "B" * 43})
        assert store.calls == []
        client.get("/login?name=ada")
        store.calls.clear()
        assert client.get("/whoami").json()["user"] == "ada"
    assert [call for call, _ in store.calls] == ["get"]


def test_empty_session_is_never_stored() -> None:
    """Reading a missing key on a new session stores nothing (no DoS by empty sessions)."""
    store = CountingStore()
    with TestClient(starlette_app(SessionMiddleware, store=store, secret_key=SECRET)) as client:
        response = client.get("/whoami")
    assert set_cookies(response) == []
    assert len(store) == 0


def test_clear_deletes_the_record_and_the_cookie() -> None:
    """clear() ("log out") deletes the stored record and expires the cookie."""
    store = MemoryStore()
    with TestClient(starlette_app(SessionMiddleware, store=store, secret_key=SECRET)) as client:
        client.get("/login?name=ada")
        assert len(store) == 1
        response = client.get("/logout")
    assert len(store) == 0
    [header] = set_cookies(response)
    assert header.startswith("session=;") and "Max-Age=0" in header


def test_regenerate_moves_data_to_a_new_id() -> None:
    """regenerate() issues a new id carrying the data; the old id no longer loads."""
    store = MemoryStore()

    async def rotate(request: Any) -> JSONResponse:
        request.session["role"] = "admin"
        request.session.regenerate()
        return JSONResponse({})

    app = Starlette(routes=[Route("/login", login), Route("/rotate", rotate)])
    app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET)
    with TestClient(app) as client:
        old = cookie_value(set_cookies(client.get("/login?name=ada"))[0])
        new = cookie_value(set_cookies(client.get("/rotate"))[0])
    assert old[:43] != new[:43]
    assert store.load(old[:43]) is None
    assert store.load(new[:43]).data == {"user": "ada", "role": "admin"}  # type: ignore[union-attr]


def test_oversized_session_raises_a_clear_session_error() -> None:
    """Data over max_size raises SessionError naming the size and the limit."""

    async def big(request: Any) -> JSONResponse:
        request.session["blob"] = "x" * 2000
        return JSONResponse({})

    app = Starlette(routes=[Route("/big", big)])
    app.add_middleware(SessionMiddleware, store=MemoryStore(max_size=1000), secret_key=SECRET)
    with TestClient(app) as client, pytest.raises(SessionError, match="over the limit of 1000"):
        client.get("/big")


def test_non_json_value_raises_session_error_naming_the_key() -> None:
    """A value that is not JSON raises SessionError naming the key."""
    store = MemoryStore()
    with pytest.raises(SessionError, match="'when'"):
        store.save(new_session_id(), {"when": object()})


def test_missing_secret_is_a_config_error_naming_the_variable() -> None:
    """No secret_key and no SESSION_SECRET: ConfigError naming SESSION_SECRET."""
    with pytest.raises(ConfigError, match="SESSION_SECRET"):
        SessionMiddleware(plain, environ={})
    middleware = SessionMiddleware(plain, environ={"SESSION_SECRET": SECRET})
    assert middleware.engine.signer.key_count == 1


def test_bad_options_are_listed_together() -> None:
    """Bad same_site and cookie name are reported in one ConfigError."""
    with pytest.raises(ConfigError) as info:
        SessionMiddleware(plain, secret_key=SECRET, same_site="sideways", session_cookie="a b")
    assert len(info.value.errors) == 2


# --- bad cookies ------------------------------------------------------------------------------


def _seeded() -> tuple[TestClient, CountingStore, str]:
    store = CountingStore()
    client = TestClient(starlette_app(SessionMiddleware, store=store, secret_key=SECRET))
    value = cookie_value(set_cookies(client.get("/login?name=ada"))[0])
    client.cookies.clear()
    store.calls.clear()
    return client, store, value


BAD_COOKIES = {
    "tampered": lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),
    "tampered-id": lambda v: ("A" if v[0] != "A" else "B") + v[1:],
    "truncated": lambda v: v[:60],
    "oversized": lambda v: v + "A" * 5000,
    "non-ascii": lambda v: v[:10] + "é" + v[11:],
    "empty": lambda v: "",
    "unsigned-raw-id": lambda v: v[:43],
    "quoted-garbage": lambda v: '"' + "x" * 20 + '"',
}


@pytest.mark.parametrize("name", sorted(BAD_COOKIES))
def test_bad_cookie_gives_fresh_session_without_store_lookup(name: str) -> None:
    """Tampered, truncated, oversized, non-ASCII, empty or unsigned: empty session, no lookup."""
    client, store, value = _seeded()
    bad = BAD_COOKIES[name](value)
    with client:
        response = client.get("/whoami", headers={b"cookie": f"session={bad}".encode()})
    assert response.status_code == 200
    assert response.json() == {"user": None, "keys": []}
    assert store.calls == []


def test_double_cookie_uses_the_first_genuine_value() -> None:
    """Two session cookies: garbage is skipped, the genuine one is used; two garbage: fresh."""
    client, store, value = _seeded()
    with client:
        both = client.get("/whoami", headers={"cookie": f"session=junk; session={value}"})
        garbage = client.get("/whoami", headers={"cookie": "session=junk; session=more-junk"})
    assert both.json()["user"] == "ada"
    assert garbage.json() == {"user": None, "keys": []}
    assert [call for call, _ in store.calls] == ["get"]


def test_valid_signature_unknown_id_gives_fresh_session_and_new_id() -> None:
    """A genuine signature over an id the store lacks: empty session; a write gets a new id."""
    store = CountingStore()
    forged_id = new_session_id()
    cookie = Signer(SECRET, option="t").sign(forged_id)
    app = starlette_app(SessionMiddleware, store=store, secret_key=SECRET)
    with TestClient(app) as client:
        assert client.get("/whoami", headers={"cookie": f"session={cookie}"}).json()["keys"] == []
        response = client.get("/login?name=eve", headers={"cookie": f"session={cookie}"})
    new_value = cookie_value(set_cookies(response)[0])
    assert new_value[:43] != forged_id
    assert store.load(forged_id) is None


def test_expired_record_gives_fresh_session() -> None:
    """An expired record reads as a fresh empty session."""
    store = MemoryStore()
    app = starlette_app(SessionMiddleware, store=store, secret_key=SECRET)
    with TestClient(app) as client:
        client.get("/login?name=ada")
        for record in store._records.values():
            record.expires_at = 0
        assert client.get("/whoami").json() == {"user": None, "keys": []}


def test_retired_key_cookie_gives_fresh_session_and_rotation_keeps_sessions() -> None:
    """Old key still listed: session kept and cookie re-signed; key retired: fresh session."""
    store = MemoryStore()
    old, new = "old-" + SECRET, "new-" + SECRET
    with TestClient(starlette_app(SessionMiddleware, store=store, secret_key=old)) as client:
        client.get("/login?name=ada")
        cookie = client.cookies["session"]
    rotated = starlette_app(SessionMiddleware, store=store, secret_key=[new, old])
    with TestClient(rotated) as client:
        response = client.get("/whoami", headers={"cookie": f"session={cookie}"})
        assert response.json()["user"] == "ada"
        resigned = cookie_value(set_cookies(response)[0])
    assert resigned[:43] == cookie[:43] and resigned != cookie
    assert Signer(new, option="t").unsign(resigned) == (cookie[:43], True)
    retired = starlette_app(SessionMiddleware, store=store, secret_key=new)
    with TestClient(retired) as client:
        assert client.get("/whoami", headers={"cookie": f"session={cookie}"}).json()["keys"] == []


def test_websocket_scope_gets_a_session() -> None:
    """WebSocket handlers can read the session too."""
    from starlette.routing import WebSocketRoute

    async def ws(websocket: Any) -> None:
        await websocket.accept()
        await websocket.send_json({"user": websocket.session.get("user")})
        await websocket.close()

    app = Starlette(routes=[Route("/login", login), WebSocketRoute("/ws", ws)])
    app.add_middleware(SessionMiddleware, secret_key=SECRET)
    with TestClient(app) as client:
        client.get("/login?name=ada")
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_json() == {"user": "ada"}


# --- concurrency ------------------------------------------------------------------------------


async def test_concurrent_writes_merge_instead_of_losing_changes() -> None:
    """Two requests that loaded version 1 both write: the second merges onto the first's."""
    from renderkit.sessions._engine import SessionEngine

    store = MemoryStore()
    engine = SessionEngine(store, secret_key=SECRET, environ={})
    sid = new_session_id()
    store.save(sid, {"a": 1})
    cookie = engine.signer.sign(sid)
    first = engine.open([cookie])
    second = engine.open([cookie])
    first["cart"] = ["book"]
    second["theme"] = "dark"
    del second["a"]
    plan1 = engine.plan(first, True)
    plan2 = engine.plan(second, True)
    assert plan1 is not None and plan2 is not None
    await engine.acommit(plan1)
    await engine.acommit(plan2)
    record = store.load(sid)
    assert record is not None
    assert record.data == {"cart": ["book"], "theme": "dark"}
    assert record.version == 3
    assert engine.stats()["merged"] == 1


def test_stale_write_after_logout_is_dropped_not_resurrected(caplog: Any) -> None:
    """A slow request cannot bring back a session another request ended (documented)."""
    from renderkit.sessions._engine import SessionEngine

    store = MemoryStore()
    engine = SessionEngine(store, secret_key=SECRET, environ={})
    sid = new_session_id()
    store.save(sid, {"user": "ada"})
    slow = engine.open([engine.signer.sign(sid)])
    slow["seen"] = True
    store.delete(sid)
    plan = engine.plan(slow, True)
    assert plan is not None
    with caplog.at_level(logging.INFO, logger="renderkit.sessions"):
        engine.commit(plan)
    assert store.load(sid) is None
    assert plan.cookie is not None and b"Max-Age=0" in plan.cookie
    assert engine.stats()["dropped_stale"] == 1


def test_on_conflict_raise_surfaces_the_conflict() -> None:
    """on_conflict='raise' raises SessionConflict instead of merging."""
    from renderkit.sessions import SessionConflict
    from renderkit.sessions._engine import SessionEngine

    store = MemoryStore()
    engine = SessionEngine(store, secret_key=SECRET, on_conflict="raise", environ={})
    sid = new_session_id()
    store.save(sid, {"n": 1})
    a = engine.open([engine.signer.sign(sid)])
    a["n"] = 2
    store.save(sid, {"n": 5}, version=1)
    plan = engine.plan(a, True)
    assert plan is not None
    with pytest.raises(SessionConflict, match="changed since this request loaded it"):
        engine.commit(plan)


def test_rolling_expiry_refreshes_cookie_and_ttl_when_due() -> None:
    """rolling=True re-sends the cookie and pushes the record's expiry once it aged."""
    store = CountingStore()
    app = starlette_app(SessionMiddleware, store=store, secret_key=SECRET, rolling=True)
    with TestClient(app) as client:
        client.get("/login?name=ada")
        assert set_cookies(client.get("/whoami")) == []  # fresh: not due yet
        for record in store._records.values():
            record.expires_at -= 6 * 3600
        store.calls.clear()
        response = client.get("/whoami")
    assert [c for c, _ in store.calls] == ["get", "expire"]
    assert "Max-Age=1209600" in set_cookies(response)[0]


def test_user_id_and_log_out_everywhere() -> None:
    """session.user_id is stored; delete_user_sessions ends all of that user's sessions."""

    async def sign_in(request: Any) -> JSONResponse:
        request.session["user"] = "ada"
        request.session.user_id = 42
        return JSONResponse({})

    store = MemoryStore()
    app = Starlette(routes=[Route("/in", sign_in), Route("/whoami", whoami)])
    app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET)
    phone, laptop = TestClient(app), TestClient(app)
    with phone, laptop:
        phone.get("/in")
        laptop.get("/in")
        assert store.delete_user_sessions("42") == 2
        assert phone.get("/whoami").json()["user"] is None
        assert laptop.get("/whoami").json()["user"] is None
