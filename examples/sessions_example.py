"""Server-side sessions in a Starlette app: Redis when it answers, memory while it does not.

    SESSION_SECRET=$(renderkit secret) REDIS_URL=redis://127.0.0.1:6379/0 \
        uvicorn examples.sessions_example:app

Without REDIS_URL the sessions live in this process's memory. Try it:

    curl -c jar -b jar 'localhost:8000/login?user=ada'
    curl -c jar -b jar localhost:8000/            # {"user": "ada", "visits": 1}
    curl -c jar -b jar -X POST localhost:8000/logout-everywhere

Stop Redis while it runs: pages keep answering (new sessions go to memory) and /health says
"degraded" until Redis is back.
"""

from __future__ import annotations

import os
import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from renderkit.sessions import (
    FallbackStore,
    MemoryStore,
    RedisStore,
    SessionMiddleware,
    get_session,
)

redis_url = os.environ.get("REDIS_URL")
store = FallbackStore(RedisStore.from_url(redis_url), MemoryStore()) if redis_url else MemoryStore()
# A fixed SESSION_SECRET keeps sessions valid across restarts and instances; the random
# fallback only suits a quick local try.
secret = os.environ.get("SESSION_SECRET") or secrets.token_urlsafe(64)


async def home(request: Request) -> JSONResponse:
    if "user" not in request.session:
        return JSONResponse({"user": None, "hint": "GET /login?user=ada"})
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JSONResponse({"user": request.session["user"], "visits": request.session["visits"]})


async def login(request: Request) -> JSONResponse:
    user = request.query_params.get("user", "").strip()[:64]
    if not user:
        return JSONResponse({"error": "pass ?user=NAME"}, status_code=400)
    session = get_session(request)  # request.session, typed with renderkit's extras
    session.regenerate()  # a new id at login: defeats session fixation
    session["user"] = user
    session.user_id = user  # lets /logout-everywhere find every session of this user
    return JSONResponse({"logged_in": user})


async def logout(request: Request) -> JSONResponse:
    request.session.clear()  # deletes the stored session and the cookie
    return JSONResponse({"logged_out": True})


async def logout_everywhere(request: Request) -> JSONResponse:
    user = request.session.get("user")
    if user is None:
        return JSONResponse({"error": "not logged in"}, status_code=401)
    ended = await store.adelete_user_sessions(user)
    return JSONResponse({"sessions_ended": ended})


async def health(request: Request) -> JSONResponse:
    result = await store.ahealth_check()
    return JSONResponse({"status": result.status, "message": result.message})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(store.stats())


app = Starlette(
    routes=[
        Route("/", home),
        Route("/login", login),
        Route("/logout", logout, methods=["POST"]),
        Route("/logout-everywhere", logout_everywhere, methods=["POST"]),
        Route("/health", health),
        Route("/stats", stats),
    ]
)
app.add_middleware(SessionMiddleware, store=store, secret_key=secret)
