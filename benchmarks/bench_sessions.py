"""Per-request cost of renderkit's SessionMiddleware, called in-process on Starlette.

Two benchmarks, each with interleaved variants (no HTTP client: a hand-built ASGI scope):

1. **No session cookie, handler does not touch the session** — ``bare`` (no middleware) vs
   ``renderkit`` (SessionMiddleware, MemoryStore). Target (issue 5): at most 3 µs added.
2. **Read and write one value** with an existing session's cookie — ``renderkit`` (MemoryStore)
   vs ``starsessions`` (InMemoryStore + SessionAutoloadMiddleware) vs Starlette's signed-cookie
   ``SessionMiddleware``. Targets: renderkit / starsessions <= 1.0; renderkit / starlette < 1.0.

Run: ``.venv/bin/python benchmarks/bench_sessions.py`` (needs ``pip install 'renderkit[bench]'``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from _harness import Result, Target, asgi_caller, measure, report
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware as StarletteSessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from renderkit.sessions import MemoryStore, SessionMiddleware

SECRET = "benchmark-secret-" + "x" * 48


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def counter(request: Request) -> PlainTextResponse:
    count = request.session.get("count", 0) + 1
    request.session["count"] = count
    return PlainTextResponse(str(count))


def app_with(*middleware: tuple[type, dict[str, Any]]) -> Starlette:
    app = Starlette(routes=[Route("/plain", plain), Route("/count", counter)])
    for cls, options in middleware:
        app.add_middleware(cls, **options)
    return app


def caller(app: Any, path: str, cookie: bytes | None = None) -> Any:
    headers = [(b"host", b"bench"), (b"user-agent", b"bench")]
    return asgi_caller(app, path, headers=headers, client=("127.0.0.1", 50000), cookie=cookie)


def with_session(app: Any, loop: asyncio.AbstractEventLoop) -> Any:
    """A caller replaying the cookie of a session created by a first request."""
    first = caller(app, "/count")
    loop.run_until_complete(first())
    cookie = first.set_cookie[0].split(b";", 1)[0]
    return caller(app, "/count", cookie)


def no_cookie(loop: asyncio.AbstractEventLoop) -> Result:
    bare = app_with()
    ours = app_with((SessionMiddleware, {"store": MemoryStore(), "secret_key": SECRET}))
    result = measure(
        "no session cookie, handler does not touch the session",
        {"bare": caller(bare, "/plain"), "renderkit": caller(ours, "/plain")},
        baseline="bare",
        rounds=25,
        number=400,
        loop=loop,
    )
    by_name = {v.name: v.median_us for v in result.variants}
    result.check(
        Target("renderkit adds at most 3 µs (µs added)", "renderkit", "bare", max_ratio=3.0),
        by_name["renderkit"] - by_name["bare"],
    )
    return result


def read_write(loop: asyncio.AbstractEventLoop) -> Result:
    from starsessions import InMemoryStore, SessionAutoloadMiddleware
    from starsessions import SessionMiddleware as StarSessionMiddleware

    ours = app_with((SessionMiddleware, {"store": MemoryStore(), "secret_key": SECRET}))
    star = app_with(
        (SessionAutoloadMiddleware, {}),
        (StarSessionMiddleware, {"store": InMemoryStore(), "cookie_https_only": False}),
    )
    cookie = app_with((StarletteSessionMiddleware, {"secret_key": SECRET}))
    variants = {
        "renderkit": with_session(ours, loop),
        "starsessions": with_session(star, loop),
        "starlette": with_session(cookie, loop),
    }
    result = measure(
        "read and write one value (existing session)",
        variants,
        baseline="starsessions",
        rounds=25,
        number=300,
        loop=loop,
    )
    result.check(
        Target("renderkit / starsessions <= 1.0", "renderkit", "starsessions", max_ratio=1.0),
        result.ratio("renderkit", "starsessions"),
    )
    result.check(
        Target("renderkit / starlette < 1.0", "renderkit", "starlette", max_ratio=0.999),
        result.ratio("renderkit", "starlette"),
    )
    return result


def main() -> None:
    loop = asyncio.new_event_loop()
    try:
        report([no_cookie(loop), read_write(loop)], "sessions")
    finally:
        loop.close()


if __name__ == "__main__":
    main()
