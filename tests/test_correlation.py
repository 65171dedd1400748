"""Tests for renderkit.correlation: id selection, echo, contextvar isolation, logging, httpx."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from renderkit._context import correlation_id_var
from renderkit.correlation import (
    CorrelationId,
    CorrelationIdFilter,
    CorrelationIdMiddleware,
    add_correlation_id,
    async_httpx_hook,
    get_correlation_id,
    httpx_hook,
    is_valid_request_id,
    outgoing_headers,
)

HEX32 = re.compile(r"[0-9a-f]{32}")


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{get_correlation_id()}|{request.state.request_id}")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("handler failed")


def make_client(**options: object) -> TestClient:
    app = Starlette(routes=[Route("/", echo), Route("/boom", boom)])
    app.add_middleware(CorrelationIdMiddleware, **options)  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=False)


def test_generates_a_uuid_hex_id_and_binds_it() -> None:
    """Without an incoming id a uuid4 hex id is generated, echoed and bound for the handler."""
    response = make_client().get("/")
    request_id = response.headers["x-request-id"]
    assert HEX32.fullmatch(request_id)
    assert response.text == f"{request_id}|{request_id}"


@pytest.mark.parametrize(
    "incoming",
    [
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301",  # UUID
        "a" * 32,  # nginx $request_id (32 hex)
        "01HV5Z8K3Q9X7M2N4P6R8T0W2Y",  # ULID
        "req_abc:def/ghi=+@",  # token characters
        "x" * 128,
    ],
)
def test_accepts_valid_incoming_ids(incoming: str) -> None:
    """Real-world ids (UUID, nginx 32-hex, ULID, token chars up to 128) are kept as sent."""
    response = make_client().get("/", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming
    assert response.text.split("|")[0] == incoming


@pytest.mark.parametrize(
    "bad",
    ["", " ", "a b", "x" * 129, "x" * 10_000, "abc\x00def", "caf\u00e9", "a,b", 'a"b', "a;b"],
)
def test_invalid_incoming_ids_are_replaced_never_echoed(bad: str) -> None:
    """Empty, oversized, NUL, non-ASCII, comma/quote ids are replaced with a fresh one."""
    scope_headers = [(b"x-request-id", bad.encode("utf-8"))]
    policy = CorrelationId()
    assert policy.resolve(scope_headers) != bad
    assert HEX32.fullmatch(policy.resolve(scope_headers))


def test_crlf_injection_is_never_echoed() -> None:
    """An id carrying CR/LF (raw bytes, as a hostile proxy could pass) is replaced."""
    policy = CorrelationId()
    value = policy.resolve([(b"x-request-id", b"abc\r\nSet-Cookie: x=1")])
    assert "\r" not in value and "Set-Cookie" not in value
    assert HEX32.fullmatch(value)


def test_header_order_and_traceparent_fallback() -> None:
    """X-Request-ID wins over X-Correlation-ID, which wins over the traceparent trace id."""
    policy = CorrelationId()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace}-00f067aa0ba902b7-01".encode()
    assert policy.resolve([(b"traceparent", traceparent), (b"x-correlation-id", b"cid")]) == "cid"
    assert policy.resolve([(b"x-correlation-id", b"cid"), (b"x-request-id", b"rid")]) == "rid"
    assert policy.resolve([(b"traceparent", traceparent)]) == trace
    # An invalid traceparent (all-zero trace id, wrong version) is ignored.
    zero = b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01"
    assert HEX32.fullmatch(policy.resolve([(b"traceparent", zero)]))
    assert (
        policy.resolve([(b"traceparent", b"ff-" + trace.encode() + b"-00f067aa0ba902b7-01")])
        != trace
    )


def test_invalid_first_header_falls_through_to_the_next() -> None:
    """A broken X-Request-ID does not hide a valid X-Correlation-ID."""
    policy = CorrelationId()
    assert policy.resolve([(b"x-request-id", b"bad id"), (b"x-correlation-id", b"good")]) == "good"


def test_custom_header_validator_and_generator() -> None:
    """The header name, validator hook and generator are configurable."""
    client = make_client(
        header_name="X-Correlation-ID",
        validator=lambda v: v.startswith("ok-"),
        generator=lambda: "gen-1",
    )
    assert (
        client.get("/", headers={"X-Correlation-ID": "ok-7"}).headers["x-correlation-id"] == "ok-7"
    )
    response = client.get("/", headers={"X-Correlation-ID": "nope"})
    assert response.headers["x-correlation-id"] == "gen-1"
    assert "x-request-id" not in response.headers
    # X-Request-ID is still read as the second choice.
    assert client.get("/", headers={"X-Request-ID": "ok-9"}).headers["x-correlation-id"] == "ok-9"


def test_a_failing_validator_or_generator_never_breaks_the_request(caplog) -> None:
    """A validator that raises rejects the id; a generator that raises falls back to uuid4."""

    def broken_validator(value: str) -> bool:
        raise RuntimeError("bug")

    def broken_generator() -> str:
        raise RuntimeError("bug")

    policy = CorrelationId(validator=broken_validator, generator=broken_generator)
    with caplog.at_level(logging.ERROR, logger="renderkit.correlation"):
        assert HEX32.fullmatch(policy.resolve([(b"x-request-id", b"abc")]))
    assert "validator raised" in caplog.text and "generator raised" in caplog.text
    assert HEX32.fullmatch(CorrelationId(generator=lambda: "bad id\n").new_id())


def test_bad_options_raise_a_clear_error() -> None:
    """Option mistakes are reported together, naming the option."""
    with pytest.raises(ValueError, match=r"header=.*max_length"):
        CorrelationId(header="X Request", max_length=0)
    with pytest.raises(ValueError, match="incoming"):
        CorrelationId(incoming="X-Request-ID")


def test_id_is_on_an_unhandled_500() -> None:
    """A handler that raises still answers with the request id (the incoming one)."""
    response = make_client().get("/boom", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-500"


def test_exception_still_propagates_for_the_server_to_log() -> None:
    """The middleware re-raises after answering, so tracebacks are not swallowed."""
    app = Starlette(routes=[Route("/boom", boom)])
    app.add_middleware(CorrelationIdMiddleware)
    with pytest.raises(RuntimeError, match="handler failed"):
        TestClient(app).get("/boom")


def test_handler_set_id_header_is_replaced_once() -> None:
    """The response carries exactly one X-Request-ID even if the handler set its own."""

    async def sets(request: Request) -> PlainTextResponse:
        return PlainTextResponse("x", headers={"X-Request-ID": "handler"})

    app = Starlette(routes=[Route("/", sets)])
    app.add_middleware(CorrelationIdMiddleware)
    response = TestClient(app).get("/", headers={"X-Request-ID": "incoming"})
    assert response.headers.get_list("x-request-id") == ["incoming"]


async def test_concurrent_requests_never_see_each_others_id() -> None:
    """Interleaved asyncio requests each read their own id, and it is reset afterwards."""

    async def slow(request: Request) -> PlainTextResponse:
        before = get_correlation_id()
        await asyncio.sleep(0.01)
        return PlainTextResponse(f"{before}|{get_correlation_id()}")

    app = Starlette(routes=[Route("/", slow)])
    app.add_middleware(CorrelationIdMiddleware)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        responses = await asyncio.gather(
            *(client.get("/", headers={"X-Request-ID": f"req-{i}"}) for i in range(20))
        )
    for i, response in enumerate(responses):
        assert response.text == f"req-{i}|req-{i}"
    assert get_correlation_id() is None


def test_logging_filter_and_structlog_processor() -> None:
    """The filter sets record.correlation_id ("-" outside a request); the processor adds it."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    flt = CorrelationIdFilter()
    assert flt.filter(record) is True
    assert record.correlation_id == "-"  # type: ignore[attr-defined]
    token = correlation_id_var.set("abc123")
    try:
        flt.filter(record)
        assert record.correlation_id == "abc123"  # type: ignore[attr-defined]
        assert add_correlation_id(None, "info", {"event": "e"})["request_id"] == "abc123"
        assert outgoing_headers() == {"X-Request-ID": "abc123"}
    finally:
        correlation_id_var.reset(token)
    assert outgoing_headers() == {}


def test_logs_written_in_a_handler_carry_the_id(caplog) -> None:
    """A stdlib log line inside a handler carries the request's id via the filter."""
    app_logger = logging.getLogger("tests.correlation.app")

    async def logs(request: Request) -> PlainTextResponse:
        app_logger.info("inside")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", logs)])
    app.add_middleware(CorrelationIdMiddleware)
    caplog.handler.addFilter(CorrelationIdFilter())
    with caplog.at_level(logging.INFO, logger="tests.correlation.app"):
        TestClient(app).get("/", headers={"X-Request-ID": "logged-id"})
    assert [r.correlation_id for r in caplog.records if r.name == app_logger.name] == ["logged-id"]  # type: ignore[attr-defined]


async def test_httpx_hooks_propagate_the_id() -> None:
    """The httpx event hooks add X-Request-ID to outgoing calls, sync and async."""
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("x-request-id"))
        return httpx.Response(200)

    token = correlation_id_var.set("out-1")
    try:
        with httpx.Client(
            transport=httpx.MockTransport(handler), event_hooks={"request": [httpx_hook]}
        ) as client:
            client.get("http://svc/")
            client.get("http://svc/", headers={"X-Request-ID": "explicit"})
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(handler), event_hooks={"request": [async_httpx_hook]}
        ) as aclient:
            await aclient.get("http://svc/")
    finally:
        correlation_id_var.reset(token)
    assert seen == ["out-1", "explicit", "out-1"]


def test_is_valid_request_id_rules() -> None:
    """The charset-and-length rule: token chars, 1..max_length."""
    assert is_valid_request_id("abc")
    assert not is_valid_request_id("")
    assert not is_valid_request_id("a" * 129)
    assert is_valid_request_id("a" * 200, max_length=200)


def test_non_http_scopes_pass_through() -> None:
    """Lifespan scopes reach the app untouched."""
    seen: list[str] = []

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append(scope["type"])

    asyncio.run(CorrelationIdMiddleware(inner)({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan"]


def test_generated_ids_are_uuid4_hex() -> None:
    """Generated ids parse as version-4 RFC 4122 UUIDs and do not repeat."""
    import uuid

    ids = {CorrelationId().new_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and parsed.hex == value


def test_an_app_500_handler_or_debug_page_is_not_preempted() -> None:
    """A handler for Exception (or debug=True) renders the 500; it can read request.state."""
    from starlette.responses import JSONResponse

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "oops", "id": request.state.request_id}, status_code=500)

    app = Starlette(routes=[Route("/boom", boom)], exception_handlers={Exception: on_error})
    app.add_middleware(CorrelationIdMiddleware)
    response = TestClient(app, raise_server_exceptions=False).get(
        "/boom", headers={"X-Request-ID": "handled-1"}
    )
    assert response.status_code == 500
    assert response.json() == {"error": "oops", "id": "handled-1"}

    debug_app = Starlette(debug=True, routes=[Route("/boom", boom)])
    debug_app.add_middleware(CorrelationIdMiddleware)
    debug = TestClient(debug_app, raise_server_exceptions=False).get(
        "/boom", headers={"Accept": "text/html"}
    )
    assert debug.status_code == 500 and "handler failed" in debug.text  # the traceback page


# --- the request header the app sees, transformer, generator, rejection log -------------------


async def seen_header(request: Request) -> PlainTextResponse:
    return PlainTextResponse(
        f"{request.headers.get('x-request-id')}|{len(request.headers.getlist('x-request-id'))}"
    )


def header_client(**options: object) -> TestClient:
    app = Starlette(routes=[Route("/", seen_header)])
    app.add_middleware(CorrelationIdMiddleware, **options)  # type: ignore[arg-type]
    return TestClient(app)


@pytest.mark.parametrize(
    "sent",
    [
        {},
        {"X-Request-ID": "bad id with spaces"},
        {"X-Correlation-ID": "from-the-other-header"},
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"X-Request-ID": "kept-as-sent"},
    ],
)
def test_the_app_reads_the_resolved_id_from_its_request_header(sent: dict[str, str]) -> None:
    """request.headers["X-Request-ID"] is the id renderkit accepted or generated, exactly once:
    never the rejected value, never missing."""
    response = header_client().get("/", headers=sent)
    request_id = response.headers["x-request-id"]
    assert response.text == f"{request_id}|1"
    assert "spaces" not in response.text


def test_a_repeated_request_id_header_reaches_the_app_once() -> None:
    """Two X-Request-ID headers (a forged second one, or a bad first one) become one: the
    resolved id, so code reading the header and the logs agree."""
    client = header_client()
    both = client.get("/", headers=[("X-Request-ID", "first-1"), ("X-Request-ID", "second-2")])
    assert both.text == "first-1|1" and both.headers["x-request-id"] == "first-1"
    # "rejected id" (a space) is refused; its words hold non-hex letters, so a generated hex id
    # can never contain them by chance ("bad" once did: it is all hex).
    bad_first = client.get("/", headers=[("X-Request-ID", "rejected id"), ("X-Request-ID", "ok-2")])
    resolved = bad_first.headers["x-request-id"]
    assert bad_first.text == f"{resolved}|1" and "rejected" not in resolved


def test_request_headers_are_rewritten_only_when_the_id_changes() -> None:
    """The id header already holding the id once: the same list back. Missing: appended in
    place. Another value, or the header twice: a new list with the id once, at the end."""
    policy = CorrelationId()
    kept = [(b"host", b"a"), (b"x-request-id", b"abc")]
    assert policy.request_headers(kept, "abc") is kept
    assert kept == [(b"host", b"a"), (b"x-request-id", b"abc")]
    missing = [(b"host", b"a")]
    assert policy.request_headers(missing, "abc") is missing
    assert missing == [(b"host", b"a"), (b"x-request-id", b"abc")]
    assert policy.request_headers(((b"host", b"a"),), "abc") == [*missing]
    twice = [(b"x-request-id", b"abc"), (b"host", b"a"), (b"x-request-id", b"abc")]
    assert policy.request_headers(twice, "abc") == [(b"host", b"a"), (b"x-request-id", b"abc")]
    other = [(b"x-request-id", b"old"), (b"host", b"a")]
    assert policy.request_headers(other, "abc") == [(b"host", b"a"), (b"x-request-id", b"abc")]
    assert other == [(b"x-request-id", b"old"), (b"host", b"a")]


def test_update_request_header_false_leaves_the_request_alone() -> None:
    """With update_request_header=False the app sees exactly what the client sent."""
    client = header_client(update_request_header=False)
    assert client.get("/").text == "None|0"
    assert client.get("/", headers={"X-Request-ID": "bad id"}).text == "bad id|1"


def test_websocket_request_header_carries_the_id() -> None:
    """A websocket handler reads the resolved id from its headers and gets it on the accept."""
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.headers.get("x-request-id") or "")
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws)])
    app.add_middleware(CorrelationIdMiddleware)
    client = TestClient(app)
    with client.websocket_connect("/ws") as socket:
        assert HEX32.fullmatch(socket.receive_text())
    with client.websocket_connect("/ws", headers={"X-Request-ID": "bad id"}) as socket:
        assert HEX32.fullmatch(socket.receive_text())
    with client.websocket_connect("/ws", headers={"X-Request-ID": "ws-1"}) as socket:
        assert socket.receive_text() == "ws-1"


def test_transformer_applies_to_accepted_and_generated_ids() -> None:
    """transformer changes the id everywhere (response, request header, logs' ContextVar)."""
    client = make_client(transformer=lambda value: f"svc-{value}")
    response = client.get("/", headers={"X-Request-ID": "abc"})
    assert response.headers["x-request-id"] == "svc-abc"
    assert response.text == "svc-abc|svc-abc"
    generated = client.get("/").headers["x-request-id"]
    assert generated.startswith("svc-") and HEX32.fullmatch(generated[4:])


@pytest.mark.parametrize(
    "transformer",
    [lambda value: value + "\r\nSet-Cookie: x=1", lambda value: 42, lambda value: 1 / 0],
)
def test_a_bad_transformer_keeps_the_safe_id(transformer: object, caplog) -> None:  # type: ignore[no-untyped-def]
    """A transformer returning an unsafe value, a non-string, or raising keeps the untransformed
    id; the response never carries what it returned."""
    caplog.set_level(logging.DEBUG, logger="renderkit.correlation")
    response = make_client(transformer=transformer).get("/", headers={"X-Request-ID": "abc"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc"
    assert "set-cookie" not in response.headers


def test_generator_makes_ids_for_missing_and_rejected_headers() -> None:
    """generator= is called when no id came or the one that came was refused."""
    client = make_client(generator=lambda: "gen-1")
    assert client.get("/").headers["x-request-id"] == "gen-1"
    assert client.get("/", headers={"X-Request-ID": "bad id"}).headers["x-request-id"] == "gen-1"
    assert client.get("/", headers={"X-Request-ID": "ok-1"}).headers["x-request-id"] == "ok-1"


def test_a_rejected_id_is_logged_at_debug_without_its_value(caplog) -> None:  # type: ignore[no-untyped-def]
    """One DEBUG line names the header and the new id; the refused value is never logged (it
    can carry CR/LF or megabytes)."""
    caplog.set_level(logging.DEBUG, logger="renderkit.correlation")
    response = make_client().get("/", headers={"X-Request-ID": "evil\tvalue"})
    new_id = response.headers["x-request-id"]
    lines = [r for r in caplog.records if r.name == "renderkit.correlation"]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
    assert new_id in lines[0].getMessage() and "X-Request-ID" in lines[0].getMessage()
    assert "evil" not in lines[0].getMessage()
    caplog.clear()
    make_client().get("/")  # nothing sent: nothing to report
    assert not [r for r in caplog.records if r.name == "renderkit.correlation"]


def test_unknown_or_conflicting_options_raise() -> None:
    """A misspelt option is a TypeError naming it; policy= excludes the other options."""
    with pytest.raises(TypeError, match="header"):
        CorrelationIdMiddleware(echo, header="X-Id")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="not both"):
        CorrelationIdMiddleware(echo, policy=CorrelationId(), max_length=10)
    with pytest.raises(ValueError, match="transformer"):
        CorrelationId(transformer="upper")  # type: ignore[arg-type]


def test_celery_tracing_filter_puts_both_task_ids_on_records() -> None:
    """CeleryTracingFilter sets celery_parent_id / celery_current_id (default outside a task)."""
    from renderkit.correlation import CeleryTracingFilter, celery_current_id_var

    record = logging.LogRecord("x", logging.INFO, "", 0, "m", (), None)
    token = celery_current_id_var.set("0123456789")
    try:
        CeleryTracingFilter(length=4).filter(record)
    finally:
        celery_current_id_var.reset(token)
    assert record.celery_current_id == "0123"  # type: ignore[attr-defined]
    assert record.celery_parent_id == "-"  # type: ignore[attr-defined]


def test_filter_length_and_default() -> None:
    """CorrelationIdFilter(length=8) keeps the first 8 characters; default=None outside."""
    record = logging.LogRecord("x", logging.INFO, "", 0, "m", (), None)
    token = correlation_id_var.set("0123456789abcdef")
    try:
        CorrelationIdFilter(length=8).filter(record)
    finally:
        correlation_id_var.reset(token)
    assert record.correlation_id == "01234567"  # type: ignore[attr-defined]
    CorrelationIdFilter(default=None).filter(record)
    assert record.correlation_id is None  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="length"):
        CorrelationIdFilter(length=0)


# --- integrations: Sentry tag, Celery task headers (extras renderkit[sentry], [celery]) --------


def test_the_id_is_a_sentry_tag_on_events_sent_during_the_request() -> None:
    """With sentry-sdk installed, an event captured in a handler carries transaction_id=<id>
    (the tag asgi-correlation-id users search by), on ASGI and WSGI."""
    sentry_sdk = pytest.importorskip("sentry_sdk")
    events: list[dict[str, object]] = []

    def keep(event: dict[str, object], hint: object) -> None:
        events.append(event)  # returning None drops it: nothing leaves the process

    async def report(request: Request) -> PlainTextResponse:
        sentry_sdk.capture_message("something to look at")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", report)])
    app.add_middleware(CorrelationIdMiddleware)
    sentry_sdk.init(
        dsn="https://public@127.0.0.1/1",
        before_send=keep,
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    try:
        response = TestClient(app).get("/", headers={"X-Request-ID": "sentry-1"})
        off = Starlette(routes=[Route("/", report)])
        off.add_middleware(CorrelationIdMiddleware, sentry_tag=None)
        with sentry_sdk.isolation_scope():
            TestClient(off).get("/", headers={"X-Request-ID": "sentry-2"})
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
    assert response.headers["x-request-id"] == "sentry-1"
    assert events[0]["tags"] == {"transaction_id": "sentry-1"}
    assert "sentry-2" not in repr(events[1].get("tags"))


def test_celery_tasks_carry_the_request_id_to_the_worker() -> None:
    """A task sent during a request runs with that request's id; one sent from elsewhere gets
    a fresh id in the worker, and the id never leaks from one task into the next."""
    pytest.importorskip("celery")
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    from renderkit.correlation import connect_celery

    celery = Celery("rk-test", broker="memory://", backend="cache+memory://")
    celery.conf.update(worker_hijack_root_logger=False)

    @celery.task
    def whoami() -> str | None:
        return get_correlation_id()

    @celery.task
    def ids() -> list[str | None]:
        from renderkit.correlation import celery_current_id_var, celery_parent_id_var

        return [get_correlation_id(), celery_parent_id_var.get(), celery_current_id_var.get()]

    @celery.task
    def parent() -> list[object]:
        from renderkit.correlation import celery_current_id_var

        # Waiting on a subtask inside a task is fine for a solo test worker only.
        child = ids.apply_async()
        return [celery_current_id_var.get(), child.id]

    async def enqueue(request: Request) -> PlainTextResponse:
        return PlainTextResponse(whoami.delay().id)

    app = Starlette(routes=[Route("/", enqueue)])
    app.add_middleware(CorrelationIdMiddleware)  # connects the publishing side
    connect_celery()  # the worker side (a worker process calls this in its Celery module)
    with start_worker(celery, pool="solo", perform_ping_check=False, loglevel="ERROR"):
        response = TestClient(app).get("/", headers={"X-Request-ID": "celery-1"})
        from_request = celery.AsyncResult(response.text).get(timeout=10)
        from_elsewhere = whoami.delay().get(timeout=10)
        token = correlation_id_var.set("req-chain")
        try:
            parent_current, child_id = parent.delay().get(timeout=10)
        finally:
            correlation_id_var.reset(token)
        child = celery.AsyncResult(child_id).get(timeout=10)
    assert from_request == "celery-1"
    assert child[0] == "req-chain"  # the request id runs down the chain
    assert child[1] == parent_current and child[2] not in (None, parent_current)
    assert from_elsewhere is not None and HEX32.fullmatch(from_elsewhere)


def test_a_forged_celery_header_never_becomes_the_task_id() -> None:
    """A task message whose CORRELATION_ID / CELERY_PARENT_ID carry CR/LF or garbage gets a
    fresh id and no parent, and the ids are cleared after the task."""
    pytest.importorskip("celery")
    from types import SimpleNamespace

    from celery.signals import task_postrun, task_prerun

    from renderkit.correlation import celery_current_id_var, celery_parent_id_var, connect_celery

    connect_celery()
    forged = {"CORRELATION_ID": "evil\r\nX-Admin: 1", "CELERY_PARENT_ID": "x" * 5000}
    task = SimpleNamespace(request=SimpleNamespace(get=forged.get))
    seen: list[object] = []
    context = contextvars.copy_context()

    def run_task() -> None:
        task_prerun.send(sender=None, task_id="t1", task=task)
        seen.extend([get_correlation_id(), celery_parent_id_var.get(), celery_current_id_var.get()])
        task_postrun.send(sender=None, task_id="t1", task=task)
        seen.append(get_correlation_id())

    context.run(run_task)
    request_id, parent, current, after = seen
    assert isinstance(request_id, str) and HEX32.fullmatch(request_id)
    assert parent is None and isinstance(current, str) and current != request_id
    assert after is None
