"""What a limit counts, written from the behaviours users expect (slowapi's and flask-limiter's).

Per-route scope by default (template and method, HEAD as GET), explicit shared quotas, the
default replaced by a route's own limit, stacked limits all-or-nothing, callable cost,
``exempt_when``, ``deduct_when``, ``on_breach``; every backend: memory, fakeredis, real Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from renderkit.ratelimit import (
    PROBLEM_TYPE,
    RateLimit,
    RateLimiter,
    RateLimitMiddleware,
    RateLimitPolicy,
    RequestInfo,
    RouteLimit,
    Rule,
    limit,
)

MakeLimiter = Callable[..., RateLimiter]


@pytest.fixture(
    params=["memory", "fakeredis", pytest.param("redis", marks=pytest.mark.integration)]
)
def make_limiter(request: pytest.FixtureRequest) -> Iterator[MakeLimiter]:
    """Build limiters on one backend; each gets its own key namespace."""
    made: list[RateLimiter] = []

    def make(default: str = "100/minute", **options: Any) -> RateLimiter:
        prefix = f"rk-scope-{uuid.uuid4().hex[:8]}"
        if request.param == "memory":
            limiter = RateLimiter("memory://", default=default, **options)
        elif request.param == "fakeredis":
            import fakeredis
            from limits.storage import RedisStorage

            pool = fakeredis.FakeRedis(server=fakeredis.FakeServer()).connection_pool
            storage = RedisStorage("redis://fake", connection_pool=pool)
            limiter = RateLimiter(storage, default=default, key_prefix=prefix, **options)
        else:
            url = request.getfixturevalue("renderkit_redis_url")
            limiter = RateLimiter(url, default=default, key_prefix=prefix, **options)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        assert limiter.stats()["errors"] == 0, "the backend failed: counts came from memory"
        limiter.close()


def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _aok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def test_two_routes_with_the_same_limit_string_count_apart(make_limiter: MakeLimiter) -> None:
    """@limit("3/minute") on /login and on /reset: each has its own 3 (was: one shared 3)."""
    limiter = make_limiter()
    app = Starlette(
        routes=[
            Route("/login", limit("3/minute", limiter=limiter)(_aok), methods=["POST"]),
            Route("/reset", limit("3/minute", limiter=limiter)(_aok), methods=["POST"]),
        ]
    )
    client = TestClient(app)
    assert [client.post("/login").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [client.post("/reset").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_shared_quota_is_one_counter(make_limiter: MakeLimiter) -> None:
    """shared="auth" on two routes: three calls in all, whichever route they hit."""
    limiter = make_limiter()
    shared = {"limiter": limiter, "shared": "auth"}
    app = Starlette(
        routes=[
            Route("/login", limit("3/minute", **shared)(_aok), methods=["POST"]),
            Route("/reset", limit("3/minute", **shared)(_aok), methods=["POST"]),
        ]
    )
    client = TestClient(app)
    codes = [client.post(path).status_code for path in ("/login", "/reset", "/login", "/reset")]
    assert codes == [200, 200, 200, 429]
    assert client.post("/reset").json()["limit"] == "auth"


def test_default_counts_per_route_template_and_method(make_limiter: MakeLimiter) -> None:
    """The app-wide default: /items/1 and /items/2 share the route's quota, /other has its own,
    POST is apart from GET, HEAD counts as GET."""
    limiter = make_limiter("2/minute")
    app = Starlette(
        routes=[
            Route("/items/{id}", _aok, methods=["GET", "POST"]),
            Route("/other", _aok),
        ]
    )
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    client = TestClient(app)
    assert [client.get(f"/items/{n}").status_code for n in (1, 2)] == [200, 200]
    assert client.head("/items/3").status_code == 429  # HEAD is GET's quota
    assert client.post("/items/1").status_code == 200
    assert client.get("/other").status_code == 200
    ok = client.get("/other")
    assert ok.headers["ratelimit"].startswith('"default";r=0;')


def test_route_limit_replaces_the_default_unless_asked_to_add(make_limiter: MakeLimiter) -> None:
    """flask-limiter's model: a route's own limit replaces the default; override_defaults=False
    adds to it (then both apply, all or nothing)."""
    limiter = make_limiter("2/minute")
    app = Starlette(
        routes=[
            Route("/own", limit("5/minute", limiter=limiter)(_aok)),
            Route("/both", limit("5/minute", limiter=limiter, override_defaults=False)(_aok)),
        ]
    )
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    client = TestClient(app)
    assert [client.get("/own").status_code for _ in range(6)] == [200] * 5 + [429]
    both = [client.get("/both") for _ in range(3)]
    assert [r.status_code for r in both] == [200, 200, 429]
    # One RateLimit pair per applied limit.
    assert both[0].headers.get_list("ratelimit-policy") == [
        '"5/minute";q=5;w=60',
        '"default";q=2;w=60',
    ]


def test_stacked_limits_refused_by_one_charge_none(make_limiter: MakeLimiter) -> None:
    """Two decorators: the request the 2/minute limit refuses is not charged to the 3/minute
    one, so after the minute-limit refusals the other still has its full count left."""
    limiter = make_limiter()
    endpoint = limit("2/minute", limiter=limiter, name="burst")(
        limit("3/hour", limiter=limiter, name="hourly")(_aok)
    )
    app = Starlette(routes=[Route("/x", endpoint)])
    client = TestClient(app)
    responses = [client.get("/x") for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 429, 429, 429]
    last = responses[-1]
    pairs = dict(
        zip(
            last.headers.get_list("ratelimit-policy"),
            last.headers.get_list("ratelimit"),
            strict=True,
        )
    )
    assert pairs['"hourly";q=3;w=3600'].startswith('"hourly";r=1;')  # 2 used, not 5
    assert last.headers["content-type"] == "application/problem+json"
    assert last.json()["type"] == PROBLEM_TYPE and last.json()["limit"] == "burst"


def test_limiter_hit_with_several_limits_is_all_or_nothing(make_limiter: MakeLimiter) -> None:
    """hit(key, "2/minute;5/hour"): refusals by the minute limit leave the hour limit alone."""
    limiter = make_limiter("2/minute;5/hour")
    results = [limiter.hit("client") for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, False, False]
    hourly = limiter.peek("client", "5/hour")
    assert hourly.remaining == 3


def test_rule_for_get_also_limits_head(make_limiter: MakeLimiter) -> None:
    """Rule("/export", methods=["GET"]): HEAD requests count against it (and are refused)."""
    limiter = make_limiter()
    app = Starlette(routes=[Route("/export", _aok)])
    app.add_middleware(
        RateLimitMiddleware,
        limiter=limiter,
        rules=[Rule("/export", "2/minute", methods=["GET"])],
        default=None,
    )
    client = TestClient(app)
    assert [client.head("/export").status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/export").status_code == 429


def test_callable_cost_exempt_when_and_on_breach(make_limiter: MakeLimiter) -> None:
    """cost from the request, exempt_when skipping a limit, on_breach told once per refusal."""
    limiter = make_limiter()
    breaches: list[tuple[str, int]] = []

    def cost(request: RequestInfo) -> int:
        return int(request.header("x-cost") or 1)

    def exempt(request: RequestInfo) -> bool:
        return request.header("x-admin") == "yes"

    endpoint = limit(
        "5/minute",
        limiter=limiter,
        cost=cost,
        exempt_when=exempt,
        on_breach=lambda request, result: breaches.append((request.path, result.limit)),
    )(_aok)
    client = TestClient(Starlette(routes=[Route("/x", endpoint)]))
    assert client.get("/x", headers={"x-cost": "4"}).status_code == 200
    assert client.get("/x", headers={"x-cost": "2"}).status_code == 429  # 4 + 2 > 5
    assert client.get("/x").status_code == 200  # cost 1 still fits: refused cost was not taken
    assert client.get("/x").status_code == 429
    assert client.get("/x", headers={"x-admin": "yes"}).status_code == 200
    assert breaches == [("/x", 5), ("/x", 5)]


def test_exempt_when_without_arguments_like_flask_limiter(make_limiter: MakeLimiter) -> None:
    """exempt_when may take no argument (flask-limiter's signature)."""
    limiter = make_limiter()
    endpoint = limit("1/minute", limiter=limiter, exempt_when=lambda: True)(_aok)
    client = TestClient(Starlette(routes=[Route("/x", endpoint)]))
    assert [client.get("/x").status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize("middleware", [False, True])
def test_deduct_when_counts_only_failed_logins(make_limiter: MakeLimiter, middleware: bool) -> None:
    """deduct_when=status >= 400: successful logins are free, the third failure is refused
    (by the decorator alone, or by the middleware that found the decorator's limit)."""
    limiter = make_limiter()

    async def login(request: Request) -> Response:
        ok = request.query_params.get("password") == "right"
        return PlainTextResponse("ok" if ok else "no", status_code=200 if ok else 401)

    endpoint = limit("2/minute", limiter=limiter, deduct_when=lambda status: status >= 400)(login)
    app = Starlette(routes=[Route("/login", endpoint)])
    if middleware:
        app.add_middleware(RateLimitMiddleware, limiter=limiter, default=None)
    client = TestClient(app)
    assert [client.get("/login?password=right").status_code for _ in range(5)] == [200] * 5
    codes = [client.get("/login?password=wrong").status_code for _ in range(3)]
    assert codes == [401, 401, 429]


def test_sync_starlette_endpoint_is_limited() -> None:
    """@limit on a plain def endpoint works (it used to fail with a 500 at request time)."""
    limiter = RateLimiter("memory://")
    client = TestClient(Starlette(routes=[Route("/x", limit("1/minute", limiter=limiter)(_ok))]))
    first, second = client.get("/x"), client.get("/x")
    assert (first.status_code, first.text) == (200, "ok")
    assert "ratelimit" in first.headers
    assert second.status_code == 429


def test_limit_on_something_it_cannot_wrap_fails_when_applied() -> None:
    """A class or a non-callable is refused at decoration time, naming what to do."""
    limiter = RateLimiter("memory://")

    class Endpoint:
        pass

    with pytest.raises(TypeError, match="endpoint function"):
        limit("1/minute", limiter=limiter)(Endpoint)
    with pytest.raises(TypeError):
        limit("1/minute", limiter=limiter)("not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cost"):
        limit("1/minute", limiter=limiter, cost=0)


def test_mounted_routes_are_scoped_by_their_full_template() -> None:
    """A Mount's routes count under prefix + template."""
    limiter = RateLimiter("memory://", default="1/minute")
    api = Starlette(routes=[Route("/users/{id}", _aok)])
    app = Starlette(routes=[Mount("/api", app=api), Route("/users/{id}", _aok)])
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    client = TestClient(app)
    assert client.get("/api/users/1").status_code == 200
    assert client.get("/api/users/2").status_code == 429
    assert client.get("/users/1").status_code == 200  # another template, another quota


def test_fastapi_dependency_keeps_headers_on_a_returned_response() -> None:
    """With the middleware, Depends(RateLimit(...)) limits and its headers reach a Response the
    endpoint returns itself; the 429 is the same problem+json as everywhere."""
    fastapi = pytest.importorskip("fastapi")
    limiter = RateLimiter("memory://", default="100/minute")
    app = fastapi.FastAPI()

    @app.get("/raw", dependencies=[fastapi.Depends(RateLimit("2/minute", limiter=limiter))])
    async def raw() -> Response:
        return JSONResponse({"ok": True})

    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    client = TestClient(app)
    responses = [client.get("/raw") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers.get_list("ratelimit-policy") == ['"2/minute";q=2;w=60']
    assert responses[2].headers["content-type"] == "application/problem+json"
    assert len(responses[2].headers.get_list("ratelimit")) == 1  # one pair, not two


def test_fastapi_dependency_alone_still_limits() -> None:
    """Without the middleware the dependency decides by itself (429 with Retry-After)."""
    fastapi = pytest.importorskip("fastapi")
    limiter = RateLimiter("memory://")
    app = fastapi.FastAPI()

    @app.get("/x", dependencies=[fastapi.Depends(RateLimit("1/minute", limiter=limiter))])
    async def x() -> dict[str, bool]:
        return {"ok": True}

    client = TestClient(app)
    first, second = client.get("/x"), client.get("/x")
    assert first.status_code == 200 and "ratelimit" in first.headers
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1


def test_thousand_rules_find_the_first_match() -> None:
    """Exact and prefix rules in a table: the first rule that covers a path wins."""
    limiter = RateLimiter("memory://")
    rules = [Rule(f"/r{n}", "5/minute") for n in range(500)]
    rules += [Rule(f"/p{n}/*", "6/minute") for n in range(500)]
    rules.insert(0, Rule("/p7/special", "1/minute", name="special"))
    policy = RateLimitPolicy(limiter, rules=rules, default=None)

    def names(path: str, method: str = "GET") -> list[str | None]:
        info = RequestInfo(method, path, [], "198.51.100.1")
        return [spec.name for spec in policy.limits_for(info)]

    assert names("/r499") == ["/r499"]
    assert names("/p499/a/b/c") == ["/p499/*"]
    assert names("/p499") == ["/p499/*"]
    assert names("/p7/special") == ["special"]
    assert names("/nowhere") == []


def test_exempt_endpoint_skips_the_default_but_keeps_its_own_limits() -> None:
    """@exempt: no default on that route; an @limit stacked on it still counts."""
    from renderkit.ratelimit import exempt

    limiter = RateLimiter("memory://", default="1/minute")
    webhook = exempt(_ok)
    both = exempt(limit("2/minute", limiter=limiter)(_aok))
    app = Starlette(routes=[Route("/hook", webhook), Route("/both", both), Route("/x", _aok)])
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    client = TestClient(app)
    assert [client.get("/hook").status_code for _ in range(3)] == [200, 200, 200]
    assert "ratelimit" not in client.get("/hook").headers
    assert [client.get("/both").status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get("/x").status_code for _ in range(2)] == [200, 429]
    with pytest.raises(TypeError):
        exempt("not a function")  # type: ignore[arg-type]


def test_flask_exempt_view() -> None:
    """renderkit.ratelimit.exempt marks a Flask view too."""
    flask = pytest.importorskip("flask")
    from renderkit.flask import RenderKit
    from renderkit.ratelimit import exempt

    app = flask.Flask(__name__)

    @app.get("/hook")
    @exempt
    def hook() -> str:
        return "ok"

    @app.get("/x")
    def x() -> str:
        return "x"

    RenderKit(app, limiter=RateLimiter("memory://", default="1/minute"), https_redirect=False,
              metrics=False, environ={})  # fmt: skip
    client = app.test_client()
    assert [client.get("/hook").status_code for _ in range(3)] == [200, 200, 200]
    assert [client.get("/x").status_code for _ in range(2)] == [200, 429]


def test_a_route_plan_is_compiled_once_yet_exempt_when_is_asked_per_request() -> None:
    """The route's limits are worked out once; a predicate still decides every request: while
    it exempts the route limit, the default it replaces applies again."""
    limiter = RateLimiter("memory://", default="100/minute")
    vip = {"on": False}
    own = RouteLimit("5/minute", exempt_when=lambda: vip["on"])
    policy = RateLimitPolicy(limiter)

    def names() -> list[str | None]:
        info = RequestInfo("GET", "/report", [], "198.51.100.9", route="/report", limits=(own,))
        return [spec.name for spec in policy.limits_for(info)]

    assert names() == ["5/minute"]
    vip["on"] = True
    assert names() == ["default"]
    vip["on"] = False
    assert names() == ["5/minute"]
    info = RequestInfo("GET", "/report", [], "198.51.100.9", route="/report", limits=(own,))
    assert len(policy._routes) == 1  # one compiled plan served all of them
    assert policy.decide(info).headers[0] == (b"ratelimit-policy", b'"5/minute";q=5;w=60')
