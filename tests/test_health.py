"""Tests for renderkit.health: aggregation, timeouts, bad checks, cache, hysteresis, endpoints."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from renderkit.config import ConfigError
from renderkit.health import (
    HEALTH_JSON,
    INSTANCE_HEALTH_PATH,
    CheckResult,
    Health,
    cpu_check,
    disk_check,
    memory_check,
    shutdown_check,
)
from renderkit.platform import Platform


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flag:
    def __init__(self) -> None:
        self.is_shutting_down = False


def client_for(health: Health, *, client: tuple[str, int] = ("203.0.113.9", 1234)) -> Any:
    app = Starlette(routes=health.routes())
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_aggregates_healthy_degraded_unhealthy() -> None:
    """A failing non-critical check degrades (200); a failing critical one is unhealthy (503)."""
    health = Health(cache_ttl=0)
    state = {"db": True, "cache": True}
    health.add("database", lambda: state["db"], critical=True)
    health.add("cache", lambda: state["cache"], critical=False)
    assert (await health.run()).status == "healthy"
    state["cache"] = False
    report = await health.run()
    assert (report.status, report.http_status) == ("degraded", 200)
    state["db"] = False
    report = await health.run()
    assert (report.status, report.http_status) == ("unhealthy", 503)


async def test_degraded_critical_check_degrades_only() -> None:
    """A critical component on its fallback reports degraded, not unhealthy."""
    health = Health()
    health.add("cache", lambda: CheckResult.degraded("serving from memory"), critical=True)
    assert (await health.run()).status == "degraded"


async def test_checks_run_concurrently_sync_and_async() -> None:
    """Sync and async checks are all in progress at once: each waits until the other two
    have started, which checks run one after the other would never see (they time out)."""
    health = Health(timeout=10)
    lock = threading.Lock()
    entered: set[str] = set()

    def arrive(name: str) -> bool:
        with lock:
            entered.add(name)
            return len(entered) == 3

    def sync_check(name: str) -> Callable[[], bool]:
        def check() -> bool:
            arrive(name)
            for _ in range(600):  # bounded: 3 s
                if arrive(name):
                    return True
                time.sleep(0.005)
            return False

        return check

    async def async_check() -> bool:
        for _ in range(600):
            if arrive("a"):
                return True
            await asyncio.sleep(0.005)
        return False

    health.add("a", async_check)
    health.add("b", sync_check("b"))
    health.add("c", sync_check("c"))
    report = await health.run()
    assert {name: r.status for name, r in report.checks.items()} == dict.fromkeys("abc", "healthy")
    assert all(r.latency_ms is not None for r in report.checks.values())


async def test_sync_check_does_not_block_the_event_loop() -> None:
    """A sync check runs in a thread: it blocks until a task on the event loop releases it,
    which a check run on the loop itself could never see (it would give up, unhealthy)."""
    health = Health(timeout=10)
    blocking = threading.Event()
    release = threading.Event()

    def check() -> bool:
        blocking.set()
        return release.wait(3)

    async def releaser() -> None:
        while not blocking.is_set():
            await asyncio.sleep(0.005)
        release.set()

    health.add("blocking", check)
    task = asyncio.create_task(releaser())
    report = await health.run()
    await task
    assert report.checks["blocking"].status == "healthy"


async def test_hung_checks_time_out_and_answer_within_the_timeout() -> None:
    """A sync and an async check that hang forever fail with 'timeout after N s' on time."""
    health = Health(timeout=0.2, cache_ttl=0)
    release = threading.Event()
    health.add("sync_hang", lambda: release.wait(30))

    async def async_hang() -> None:
        await asyncio.sleep(30)

    health.add("async_hang", async_hang, critical=False)
    report = await health.run()
    # A timeout that did not work would let the checks answer healthy after their 30 s.
    assert report.checks["sync_hang"].message == "timeout after 0.2 s"
    assert report.checks["async_hang"].message == "timeout after 0.2 s"
    assert report.status == "unhealthy"
    # The hung thread is not started a second time; the next run still answers at once.
    again = await health.run()
    assert "still in progress" in again.checks["sync_hang"].message
    release.set()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "healthy"),
        (True, "healthy"),
        (False, "unhealthy"),
        (42, "unhealthy"),
        ("ok", "unhealthy"),
        ({"status": "healthy"}, "unhealthy"),
        (CheckResult.degraded("x"), "degraded"),
        (CheckResult("bogus", "x"), "unhealthy"),  # type: ignore[arg-type]
    ],
)
async def test_return_values_are_coerced(value: object, expected: str) -> None:
    """None/True pass, False fails, a CheckResult counts as given, garbage fails."""
    health = Health()
    health.add("x", lambda: value)
    assert (await health.run()).checks["x"].status == expected


async def test_raising_check_is_a_failure_with_the_error_type() -> None:
    """A check that raises is unhealthy; the message names the exception type."""
    health = Health()

    async def boom() -> None:
        raise ConnectionRefusedError("db.internal:5432 refused")

    health.add("database", boom)
    report = await health.run()
    assert report.status == "unhealthy"
    assert report.checks["database"].message.startswith("ConnectionRefusedError")


async def test_sync_check_returning_a_coroutine_is_awaited() -> None:
    """A sync callable returning an awaitable (a partial of an async fn) still counts."""
    health = Health()

    async def inner() -> CheckResult:
        return CheckResult.degraded("fallback")

    health.add("wrapped", lambda: inner())
    assert (await health.run()).checks["wrapped"].status == "degraded"


async def test_results_are_cached_for_the_ttl() -> None:
    """Within cache_ttl the check runs once however many probes arrive."""
    clock = FakeClock()
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1

    health = Health(cache_ttl=1.0, clock=clock)
    health.add("db", check)
    await asyncio.gather(*(health.run() for _ in range(20)))
    assert calls == 1
    clock.now += 1.5
    await health.run()
    assert calls == 2
    await health.run(fresh=True)
    assert calls == 3


async def test_stale_while_revalidate_serves_old_report_and_refreshes() -> None:
    """An expired report is served at once while one background run refreshes it."""
    clock = FakeClock()
    state = {"ok": True, "calls": 0}

    gate = asyncio.Event()
    gate.set()

    async def check() -> bool:
        state["calls"] += 1
        await gate.wait()
        return bool(state["ok"])

    health = Health(cache_ttl=1.0, stale_while_revalidate=30.0, clock=clock)
    health.add("db", check)
    assert (await health.run()).status == "healthy"
    state["ok"] = False
    clock.now += 2
    # The refresh's check is held at the gate: run() can only return now if it serves the
    # stale report without waiting (no wall-clock bound, so a loaded machine cannot fail it).
    gate.clear()
    stale = await asyncio.wait_for(health.run(), 5)
    assert stale.status == "healthy"
    gate.set()
    for _ in range(500):  # bounded: the background refresh lands within a few loop turns
        report = await health.run()
        if report.status == "unhealthy":
            break
        await asyncio.sleep(0.01)
    assert report.status == "unhealthy"
    assert state["calls"] == 2


async def test_hysteresis_reports_failure_after_n_in_a_row() -> None:
    """With failure_threshold=3 a check flips only on the third failure in a row."""
    health = Health(cache_ttl=0)
    state = {"ok": False}
    health.add("flaky", lambda: state["ok"], failure_threshold=3)
    assert (await health.run()).status == "healthy"
    assert (await health.run()).status == "healthy"
    assert (await health.run()).status == "unhealthy"
    state["ok"] = True
    assert (await health.run()).status == "healthy"
    state["ok"] = False
    report = await health.run()
    assert report.status == "healthy"
    assert report.checks["flaky"].details["observed_status"] == "unhealthy"


async def test_status_changes_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """A check failing on every run logs one warning, not one per run."""
    health = Health(cache_ttl=0)
    health.add("db", lambda: False)
    with caplog.at_level("WARNING", logger="renderkit.health"):
        for _ in range(5):
            await health.run()
    assert len([r for r in caplog.records if "'db'" in r.getMessage()]) == 1


def test_add_rejects_bad_input() -> None:
    """Bad names, non-callables, duplicate names and bad numbers raise clear errors."""
    health = Health()
    health.add("db", lambda: None)
    with pytest.raises(ValueError, match="already registered"):
        health.add("db", lambda: None)
    with pytest.raises(TypeError, match=r"not db.health_check\(\)"):
        health.add("x", CheckResult())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="without ':'"):
        health.add("a:b", lambda: None)
    with pytest.raises(ValueError, match="seconds > 0"):
        health.add("y", lambda: None, timeout=0)
    with pytest.raises(ValueError, match="1 or more"):
        health.add("z", lambda: None, failure_threshold=0)
    with pytest.raises(ValueError, match="cache_ttl"):
        Health(cache_ttl=-1)
    with pytest.raises(ValueError, match="token"):
        Health(token="  ")


async def test_seed_json_shape_for_trusted_callers() -> None:
    """Detailed seed shape: status, timestamp, uptime, checks with status and latency."""
    health = Health(version="1.2.3", release_id="abc123")
    health.add("database", lambda: CheckResult.healthy(connections=3))
    async with client_for(health, client=("127.0.0.1", 5000)) as client:
        response = await client.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert set(body) >= {"status", "timestamp", "uptime", "checks", "version", "commit"}
    assert body["timestamp"].endswith("Z")
    database = body["checks"]["database"]
    assert database["status"] == "healthy"
    assert isinstance(database["latency"], float)
    assert database["connections"] == 3


async def test_public_callers_get_status_alone_and_no_error_text() -> None:
    """An untrusted caller sees only the status: no exception text, host or version."""
    health = Health(version="9.9.9", token="s3cret")

    def boom() -> None:
        raise RuntimeError("could not reach db-primary.internal:5432")

    health.add("database", boom)
    async with client_for(health) as client:
        plain = await client.get("/health")
        ietf = await client.get("/health", headers={"Accept": HEALTH_JSON})
        wrong = await client.get("/health", headers={"Authorization": "Bearer nope"})
        right = await client.get("/health", headers={"Authorization": "Bearer s3cret"})
    assert plain.status_code == 503
    assert plain.json() == {"status": "unhealthy"}
    assert ietf.json() == {"status": "fail"}
    assert ietf.headers["content-type"] == HEALTH_JSON
    assert wrong.json() == {"status": "unhealthy"}
    for response in (plain, ietf, wrong):
        assert b"internal" not in response.content and b"9.9.9" not in response.content
    assert "db-primary.internal" in right.json()["checks"]["database"]["message"]


async def test_ietf_format_with_platform_ids() -> None:
    """health+json: pass/warn/fail, checks keyed component:measurement, ids from the platform."""
    platform = Platform(provider="render", service_name="api", git_commit="deadbeef")
    health = Health(platform=platform, token="t")
    health.add("cache", lambda: CheckResult.degraded("fallback"), critical=False)
    health.add("memory", lambda: CheckResult.healthy(usage=41.5), component_type="system")
    async with client_for(health) as client:
        response = await client.get("/health?format=ietf", headers={"Authorization": "Bearer t"})
    body = response.json()
    assert response.headers["content-type"] == HEALTH_JSON
    assert body["status"] == "warn"
    assert (body["serviceId"], body["releaseId"]) == ("api", "deadbeef")
    assert body["checks"]["cache:responseTime"][0]["status"] == "warn"
    assert body["checks"]["cache:responseTime"][0]["output"] == "fallback"
    assert body["checks"]["memory:utilization"][0]["observedValue"] == 41.5
    assert body["checks"]["memory:responseTime"][0]["componentType"] == "system"


async def test_trusted_networks_and_proxy_spoofing() -> None:
    """A configured network sees detail; X-Forwarded-For is ignored without proxy trust."""
    health = Health(trusted_networks=["10.1.0.0/16"])
    health.add("db", lambda: None)
    async with client_for(health, client=("10.1.2.3", 1)) as client:
        assert "checks" in (await client.get("/health")).json()
    async with client_for(health, client=("203.0.113.5", 1)) as client:
        spoofed = await client.get("/health", headers={"X-Forwarded-For": "10.1.2.3"})
    assert spoofed.json() == {"status": "healthy"}


async def test_liveness_never_runs_checks() -> None:
    """/health/live answers 200 without calling any check, even a failing one."""
    health = Health()
    calls = 0

    def check() -> bool:
        nonlocal calls
        calls += 1
        return False

    health.add("db", check)
    async with client_for(health) as client:
        response = await client.get("/health/live")
        head = await client.head("/health/live")
    assert (response.status_code, response.json(), calls) == (200, {"status": "healthy"}, 0)
    assert head.status_code == 200 and head.content == b""


async def test_readiness_and_health_fail_once_shutdown_begins() -> None:
    """With a shutdown state attached, /health and /ready answer 503 without running checks."""
    flag = Flag()
    health = Health(shutdown=flag)
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1

    health.add("db", check)
    async with client_for(health) as client:
        assert (await client.get("/health/ready")).status_code == 200
        flag.is_shutting_down = True
        health.invalidate()
        ready = await client.get("/health/ready")
        aggregate = await client.get("/health")
        instance = await client.get(INSTANCE_HEALTH_PATH)
        live = await client.get("/health/live")
    assert (ready.status_code, aggregate.status_code, instance.status_code) == (503, 503, 503)
    assert live.status_code == 200
    assert calls == 1


async def test_instance_path_ignores_dependency_outage_after_startup() -> None:
    """Render's path: fails before start-up completes, then only for restart-worthy faults."""
    state = {"db": False, "memory": True}
    health = Health(cache_ttl=0)
    health.add("database", lambda: state["db"], critical=True)
    health.add("memory", lambda: state["memory"], critical=True, restart=True)
    async with client_for(health) as client:
        assert (await client.get(INSTANCE_HEALTH_PATH)).status_code == 503  # never reached db
        started_before = health.started
        state["db"] = True
        assert (await client.get(INSTANCE_HEALTH_PATH)).status_code == 200
        assert (started_before, health.started) == (False, True)
        state["db"] = False  # shared outage after start-up: degraded, 200
        response = await client.get(INSTANCE_HEALTH_PATH)
        assert (response.status_code, response.json()["status"]) == (200, "degraded")
        assert (await client.get("/health")).status_code == 503
        state["memory"] = False  # instance-local fault: restart helps
        assert (await client.get(INSTANCE_HEALTH_PATH)).status_code == 503


async def test_mark_started_skips_the_startup_gate() -> None:
    """mark_started() makes the instance path ignore a critical dependency from the start."""
    health = Health()
    health.add("database", lambda: False)
    health.mark_started()
    async with client_for(health) as client:
        assert (await client.get(INSTANCE_HEALTH_PATH)).status_code == 200


def test_routes_prefix_validation_and_paths() -> None:
    """routes() builds the four paths under the prefix and rejects a bad prefix."""
    health = Health()
    assert [r.path for r in health.routes("/status")] == [
        "/status",
        "/status/live",
        "/status/ready",
        "/status/instance",
    ]
    with pytest.raises(ValueError, match="start with '/'"):
        health.routes("health")
    with pytest.raises(ValueError, match="kind"):
        health.endpoint("bogus")  # type: ignore[arg-type]


async def test_health_endpoint_rejects_non_http_scope() -> None:
    """The ASGI endpoint refuses a websocket scope instead of answering garbage."""
    endpoint = Health().endpoint()

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: Any) -> None:
        return None

    with pytest.raises(RuntimeError, match="HTTP only"):
        await endpoint({"type": "websocket"}, receive, send)


def test_memory_check_thresholds() -> None:
    """RSS against the limit: healthy, degraded at warn, unhealthy at fail; usage in percent."""
    import psutil

    rss = psutil.Process().memory_info().rss
    assert memory_check(limit=rss * 10)().status == "healthy"
    degraded = memory_check(limit=int(rss / 0.85))()
    assert degraded.status == "degraded" and 80 <= degraded.details["usage"] <= 95
    assert memory_check(limit=rss // 2)().status == "unhealthy"
    cgroup = Platform(memory_limit=rss * 4)
    assert memory_check(platform=cgroup)().details["limit"] == rss * 4
    with pytest.raises(ValueError, match="fraction"):
        memory_check(warn=80)
    with pytest.raises(ValueError, match="must not exceed"):
        memory_check(warn=0.9, fail=0.8)


def test_cpu_and_disk_checks_report_usage() -> None:
    """CPU and disk checks report usage percentages and never crash."""
    cpu = cpu_check(platform=Platform(cpu_limit=1.0))()
    assert cpu.status in ("healthy", "degraded") and "usage" in cpu.details
    disk = disk_check("/")()
    assert 0 <= disk.details["usage"] <= 100
    assert disk_check("/", warn=0.0001, fail=1.0)().status == "degraded"


def test_cpu_check_never_inflates_a_short_window() -> None:
    """Calls milliseconds apart right after a CPU burst stay within one CPU's worth."""
    check = cpu_check(platform=Platform(cpu_limit=1.0), warn=0.99)
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:
        pass  # one busy thread: at most 100 % of one CPU, whatever the window
    usages = [check().details["usage"] for _ in range(5)]
    assert all(0 <= usage <= 100 for usage in usages), usages


async def test_shutdown_check_and_system_checks() -> None:
    """shutdown_check follows the state; add_system_checks registers memory, cpu and disk."""
    flag = Flag()
    check = shutdown_check(flag)
    assert (await check()).status == "healthy"
    flag.is_shutting_down = True
    assert (await check()).status == "unhealthy"
    health = Health()
    health.add_system_checks(platform=Platform(memory_limit=1 << 40, cpu_limit=2.0))
    report = await health.run()
    assert health.names == ["memory", "cpu", "disk"]
    assert report.restart == frozenset({"memory"})
    assert report.checks["memory"].status == "healthy"


def test_from_env_reads_variables_and_reports_all_problems() -> None:
    """from_env reads durations, token and networks; bad values are listed together."""
    health = Health.from_env(
        {
            "HEALTH_TOKEN": "tok",
            "HEALTH_CHECK_TIMEOUT": "2s",
            "HEALTH_CACHE_TTL": "500ms",
            "HEALTH_TRUSTED_NETWORKS": "10.0.0.0/8, 127.0.0.1",
            "RENDER": "true",
            "RENDER_SERVICE_NAME": "web",
            "RENDER_GIT_COMMIT": "c0ffee",
        }
    )
    assert (health.token, health.timeout, health.cache_ttl) == ("tok", 2.0, 0.5)
    assert (health.service_id, health.release_id) == ("web", "c0ffee")
    assert health.trust.hops == 2  # Render's proxy chain: the client is 2 hops from the right
    with pytest.raises(ConfigError) as info:
        Health.from_env({"HEALTH_CHECK_TIMEOUT": "soon", "HEALTH_TRUSTED_NETWORKS": "nope"})
    text = str(info.value)
    assert "HEALTH_CHECK_TIMEOUT" in text and "HEALTH_TRUSTED_NETWORKS" in text


def test_run_sync_shares_cache_across_threads() -> None:
    """run_sync from 10 threads runs the check once (single flight plus cache)."""
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        time.sleep(0.05)

    health = Health(cache_ttl=5)
    health.add("db", check)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(health.run_sync().status)) for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == ["healthy"] * 10
    assert calls == 1
    assert health.stats()["runs"] == 1


def test_report_to_dict_public_and_json_serialisable() -> None:
    """to_dict(detail=False) is the status alone; detail output is JSON-serialisable."""
    health = Health()
    health.add("odd", lambda: CheckResult.healthy(when=object()))
    report = health.run_sync()
    assert report.to_dict(detail=False) == {"status": "healthy"}
    code, body, _ = health.render("health", report, detail=True, health_json=False)
    assert code == 200 and "odd" in json.loads(body)["checks"]


def test_stale_while_revalidate_without_a_loop_refreshes_in_a_thread() -> None:
    """run_sync serves the stale report at once and refreshes it in a background thread."""
    clock = FakeClock()
    state = {"ok": True}
    health = Health(cache_ttl=1.0, stale_while_revalidate=30.0, clock=clock)
    health.add("db", lambda: state["ok"])
    assert health.run_sync().status == "healthy"
    state["ok"] = False
    clock.now += 2
    assert health.run_sync().status == "healthy"  # stale, served at once
    deadline = time.monotonic() + 2
    while health.stats()["runs"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    clock.now += 0.1
    assert health.run_sync().status == "unhealthy"
    assert health.stats()["stale_served"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        [(b"authorization", b"Bearer \xff\xfe\x00")],
        [(b"authorization", b"Basic " + b"A" * 10_000)],
        [(b"authorization", b"Bearer")],
        [(b"accept", b"\xff;;;,,application/health+json;q=bogus")],
        [(b"x-forwarded-for", b"not-an-ip, \xff")],
    ],
)
async def test_malformed_headers_get_the_public_answer(headers: list[tuple[bytes, bytes]]) -> None:
    """Garbage Authorization, Accept or X-Forwarded-For never raises and never unlocks detail."""
    health = Health(token="tok")
    health.add("db", lambda: None)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        sent.append(message)

    for client in (("198.51.100.1", 1), None, ("not an ip", 0)):
        sent.clear()
        scope = {"type": "http", "method": "GET", "headers": headers, "client": client,
                 "query_string": b"format=\xff"}  # fmt: skip
        await health.endpoint("health")(scope, receive, send)
        assert sent[0]["status"] == 200
        assert json.loads(sent[1]["body"])["status"] in ("healthy", "pass")
        assert "checks" not in json.loads(sent[1]["body"])


async def test_sync_checks_reuse_a_bounded_set_of_threads() -> None:
    """Ten sync checks over five runs start at most ten threads, not fifty; the bound holds."""
    health = Health(cache_ttl=0, threads=4)
    for index in range(10):
        health.add(f"c{index}", lambda: time.sleep(0.01))
    for _ in range(5):
        report = await health.run()
        assert report.status == "healthy"
    threads = health.stats()["threads"]
    assert threads["started"] <= 4
    assert threads["workers"] <= 4


async def test_hung_sync_check_holds_one_thread_and_others_still_run() -> None:
    """A check hung forever occupies one worker; the others keep answering."""
    release = threading.Event()
    health = Health(cache_ttl=0, timeout=0.2, threads=2)
    health.add("hung", release.wait)
    health.add("ok", lambda: None)
    try:
        for _ in range(3):
            report = await health.run()
            assert report.checks["ok"].status == "healthy"
            assert report.checks["hung"].status == "unhealthy"
        assert health.stats()["threads"]["started"] <= 2
    finally:
        release.set()


async def test_a_registry_that_grows_still_runs_its_sync_checks_side_by_side() -> None:
    """After runs with one check, three checks still get a thread each (no queueing behind an
    idle count that went stale): they meet at a barrier only threads side by side can pass."""
    health = Health(cache_ttl=0, timeout=3)
    health.add("a", lambda: None)
    for _ in range(3):
        await health.run()
    health.remove("a")
    barrier = threading.Barrier(3, timeout=2)

    def meet() -> None:
        barrier.wait()  # BrokenBarrierError unless all three run at once

    for name in ("a", "b", "c"):
        health.add(name, meet)
    report = await health.run()
    assert {n: r.status for n, r in report.checks.items()} == dict.fromkeys("abc", "healthy")
    threads = health.stats()["threads"]
    assert threads["idle"] <= threads["workers"] <= 16 and threads["queued"] == 0


def test_health_rejects_a_bad_thread_bound() -> None:
    """threads=0 is refused with the option named."""
    with pytest.raises(ValueError, match="threads"):
        Health(threads=0)


def test_a_hung_sync_check_never_keeps_the_process_from_exiting(tmp_path: Any) -> None:
    """The sync-check threads are daemons: a check blocked forever does not hold up exit
    (a ThreadPoolExecutor's threads are joined at exit and would hang it)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(tmp_path) / "hung.py"
    script.write_text(
        "import asyncio, threading\n"
        "from renderkit.health import Health\n"
        "health = Health(timeout=0.2)\n"
        "health.add('hung', threading.Event().wait)\n"
        "report = asyncio.run(health.run())\n"
        "print(report.checks['hung'].status)\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unhealthy"
