"""Tests for renderkit.platform: provider detection, port rules and cgroup limits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from renderkit.platform import (
    DEFAULT_GRACE_PERIODS,
    PROVIDERS,
    Platform,
    cgroup_cpu_limit,
    cgroup_memory_limit,
    cgroup_memory_usage,
    detect,
)

MiB = 1024 * 1024


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def v2_root(tmp_path: Path, memory: str | None = None, cpu: str | None = None) -> Path:
    root = tmp_path / "cgroup"
    write(root / "cgroup.controllers", "cpu memory io\n")
    if memory is not None:
        write(root / "memory.max", memory)
    if cpu is not None:
        write(root / "cpu.max", cpu)
    return root


def v1_root(
    tmp_path: Path,
    memory: str | None = None,
    quota: str | None = None,
    period: str | None = "100000",
) -> Path:
    root = tmp_path / "cgroup"
    (root / "memory").mkdir(parents=True)
    (root / "cpu").mkdir(parents=True)
    if memory is not None:
        write(root / "memory" / "memory.limit_in_bytes", memory)
    if quota is not None:
        write(root / "cpu" / "cpu.cfs_quota_us", quota)
    if period is not None:
        write(root / "cpu" / "cpu.cfs_period_us", period)
    return root


def fake_detect(env: dict[str, str], tmp_path: Path) -> Platform:
    """Detect with an empty cgroup root so host facts do not depend on the test machine."""
    return detect(env, tmp_path / "no-cgroup", proc_self_cgroup=None)


# --- providers ---------------------------------------------------------------------------


def test_render_reads_documented_and_unstable_variables(tmp_path: Path) -> None:
    """Render is detected from RENDER=true and every Render variable lands in its field."""
    env = {
        "RENDER": "true",
        "IS_PULL_REQUEST": "false",
        "RENDER_EXTERNAL_URL": "https://api.onrender.com",
        "RENDER_SERVICE_ID": "srv-123",
        "RENDER_SERVICE_NAME": "api",
        "RENDER_SERVICE_TYPE": "web",
        "RENDER_INSTANCE_ID": "srv-123-abc",
        "RENDER_GIT_COMMIT": "deadbeef",
        "RENDER_GIT_BRANCH": "main",
    }
    p = fake_detect(env, tmp_path)
    assert p.provider == "render"
    assert p.is_paas
    assert (p.service_name, p.service_type, p.service_id) == ("api", "web", "srv-123")
    assert p.instance_id == "srv-123-abc"
    assert p.external_url == "https://api.onrender.com"
    assert (p.git_commit, p.git_branch) == ("deadbeef", "main")
    assert p.is_preview is False
    assert p.port == 10000
    assert p.shutdown_grace_period == 30.0


def test_render_minimal_environment_needs_no_unstable_variables(tmp_path: Path) -> None:
    """Only RENDER=true is enough; unstable variables are optional."""
    p = fake_detect({"RENDER": "true"}, tmp_path)
    assert p.provider == "render"
    assert p.service_name is None and p.instance_id is None and p.git_commit is None


def test_render_preview_and_hostname(tmp_path: Path) -> None:
    """IS_PULL_REQUEST=true marks a preview; the hostname builds the URL when the URL is absent."""
    p = fake_detect(
        {"RENDER": "true", "IS_PULL_REQUEST": "true", "RENDER_EXTERNAL_HOSTNAME": "x.onrender.com"},
        tmp_path,
    )
    assert p.is_preview is True
    assert p.external_url == "https://x.onrender.com"


def test_render_false_is_not_render(tmp_path: Path) -> None:
    """RENDER=false (a copied .env) does not claim Render."""
    assert fake_detect({"RENDER": "false"}, tmp_path).provider == "local"


def test_heroku(tmp_path: Path) -> None:
    """Heroku is detected from DYNO; dyno metadata fills the rest."""
    env = {
        "DYNO": "web.2",
        "HEROKU_APP_NAME": "shop",
        "HEROKU_APP_ID": "abc",
        "HEROKU_SLUG_COMMIT": "cafe",
        "HEROKU_APP_DEFAULT_DOMAIN_NAME": "shop.herokuapp.com",
        "PORT": "5123",
    }
    p = fake_detect(env, tmp_path)
    assert p.provider == "heroku"
    assert (p.service_name, p.service_type, p.instance_id) == ("shop", "web", "web.2")
    assert p.git_commit == "cafe"
    assert p.external_url == "https://shop.herokuapp.com"
    assert p.port == 5123
    assert p.shutdown_grace_period == 30.0
    assert p.is_preview is False


def test_heroku_source_version_and_review_app(tmp_path: Path) -> None:
    """SOURCE_VERSION gives the commit when dyno metadata is off; HEROKU_PR_NUMBER is a preview."""
    p = fake_detect({"DYNO": "web.1", "SOURCE_VERSION": "f00d", "HEROKU_PR_NUMBER": "7"}, tmp_path)
    assert p.git_commit == "f00d"
    assert p.is_preview is True


def test_fly(tmp_path: Path) -> None:
    """Fly.io is detected from FLY_APP_NAME; region and machine come along; 5 s grace."""
    env = {"FLY_APP_NAME": "blog", "FLY_REGION": "ams", "FLY_MACHINE_ID": "m1", "FLY_ALLOC_ID": "a"}
    p = fake_detect(env, tmp_path)
    assert p.provider == "fly"
    assert (p.service_name, p.region, p.instance_id) == ("blog", "ams", "m1")
    assert p.external_url == "https://blog.fly.dev"
    assert p.shutdown_grace_period == 5.0
    assert p.port == 8000


def test_fly_alloc_id_alone(tmp_path: Path) -> None:
    """FLY_ALLOC_ID alone (older Nomad apps) still means Fly."""
    p = fake_detect({"FLY_ALLOC_ID": "alloc-1"}, tmp_path)
    assert p.provider == "fly" and p.instance_id == "alloc-1"


def test_railway(tmp_path: Path) -> None:
    """Railway is detected from RAILWAY_* variables."""
    env = {
        "RAILWAY_ENVIRONMENT_NAME": "production",
        "RAILWAY_SERVICE_NAME": "web",
        "RAILWAY_REPLICA_ID": "r1",
        "RAILWAY_PUBLIC_DOMAIN": "web.up.railway.app",
        "RAILWAY_GIT_COMMIT_SHA": "1234",
        "RAILWAY_GIT_BRANCH": "main",
        "RAILWAY_REPLICA_REGION": "us-west2",
    }
    p = fake_detect(env, tmp_path)
    assert p.provider == "railway"
    assert (p.service_name, p.instance_id, p.region) == ("web", "r1", "us-west2")
    assert p.external_url == "https://web.up.railway.app"
    assert (p.git_commit, p.git_branch) == ("1234", "main")
    assert p.is_preview is False


def test_railway_pr_environment_and_draining(tmp_path: Path) -> None:
    """A "-pr-<n>" environment is a preview; RAILWAY_DEPLOYMENT_DRAINING_SECONDS sets the grace."""
    p = fake_detect(
        {"RAILWAY_ENVIRONMENT_NAME": "shop-pr-12", "RAILWAY_DEPLOYMENT_DRAINING_SECONDS": "20"},
        tmp_path,
    )
    assert p.is_preview is True
    assert p.shutdown_grace_period == 20.0


def test_cloud_run(tmp_path: Path) -> None:
    """Cloud Run is detected from K_SERVICE; the revision is the service id; PORT wins."""
    p = fake_detect({"K_SERVICE": "api", "K_REVISION": "api-00042", "PORT": "8080"}, tmp_path)
    assert p.provider == "cloud_run"
    assert (p.service_name, p.service_id, p.service_type) == ("api", "api-00042", "service")
    assert p.port == 8080
    assert p.shutdown_grace_period == 10.0


def test_kubernetes(tmp_path: Path) -> None:
    """Kubernetes is detected from KUBERNETES_SERVICE_HOST; the pod name is the instance."""
    p = fake_detect({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "web-7d9-xk2"}, tmp_path)
    assert p.provider == "kubernetes"
    assert p.instance_id == "web-7d9-xk2"
    assert p.shutdown_grace_period == 30.0


@pytest.mark.parametrize("var", ["ECS_CONTAINER_METADATA_URI_V4", "ECS_CONTAINER_METADATA_URI"])
def test_ecs(tmp_path: Path, var: str) -> None:
    """ECS is detected from either metadata URI variable; AWS_REGION is the region."""
    p = fake_detect({var: "http://169.254.170.2/v4/x", "AWS_REGION": "eu-west-1"}, tmp_path)
    assert p.provider == "ecs"
    assert p.region == "eu-west-1"


def test_ecs_wins_over_kubernetes_variables(tmp_path: Path) -> None:
    """The more specific provider wins when several sets of variables are present."""
    env = {"ECS_CONTAINER_METADATA_URI_V4": "http://x", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert fake_detect(env, tmp_path).provider == "ecs"


def test_local(tmp_path: Path) -> None:
    """Nothing set: local, port 8000, not a preview, not a PaaS."""
    p = fake_detect({}, tmp_path)
    assert p.provider == "local"
    assert not p.is_paas
    assert p.port == 8000
    assert p.is_preview is False


def test_every_provider_has_a_grace_period() -> None:
    """Every provider name has a default shutdown grace period."""
    assert set(DEFAULT_GRACE_PERIODS) == set(PROVIDERS)


def test_default_environ_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no environ argument, os.environ is read."""
    monkeypatch.setenv("FLY_APP_NAME", "from-os")
    for name in ("RENDER", "RENDER_SERVICE_ID", "DYNO"):
        monkeypatch.delenv(name, raising=False)
    assert detect().service_name == "from-os"


def test_as_dict_is_json_ready(tmp_path: Path) -> None:
    """as_dict() holds every field and serialises to JSON."""
    p = fake_detect({"RENDER": "true"}, tmp_path)
    data = p.as_dict()
    assert data["provider"] == "render"
    assert data["port"] == 10000
    assert "shutdown_grace_period" in data
    json.dumps(data)


def test_platform_is_frozen(tmp_path: Path) -> None:
    """A Platform cannot be changed after detection."""
    p = fake_detect({}, tmp_path)
    with pytest.raises(AttributeError):
        p.port = 1  # type: ignore[misc]


# --- port --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "port"),
    [
        ({"PORT": "3000"}, 3000),
        ({"PORT": " 3000 "}, 3000),
        ({"RENDER": "true"}, 10000),
        ({"RENDER": "true", "PORT": "9000"}, 9000),
        ({"PORT": "abc"}, 8000),
        ({"PORT": ""}, 8000),
        ({"PORT": "0"}, 8000),
        ({"PORT": "-1"}, 8000),
        ({"PORT": "70000"}, 8000),
        ({"PORT": "80.5"}, 8000),
        ({"PORT": "٣٠٠٠"}, 8000),  # non-ASCII digits
        ({"RENDER": "true", "PORT": "nope"}, 10000),
    ],
)
def test_port_rules(tmp_path: Path, env: dict[str, str], port: int) -> None:
    """PORT wins when valid; otherwise 10000 on Render and 8000 elsewhere, never an error."""
    assert fake_detect(env, tmp_path).port == port


# --- cgroups -----------------------------------------------------------------------------


def test_v2_memory_and_cpu(tmp_path: Path) -> None:
    """cgroup v2 memory.max and cpu.max give the limits."""
    root = v2_root(tmp_path, memory="536870912\n", cpu="50000 100000\n")
    assert cgroup_memory_limit(root, None) == 512 * MiB
    assert cgroup_cpu_limit(root, None) == 0.5
    p = detect({}, root, proc_self_cgroup=None)
    assert p.memory_limit == 512 * MiB
    assert p.memory_limit_source == "cgroup"
    assert p.cpu_limit == 0.5
    assert p.cpu_limit_source == "cgroup"


def test_v2_max_means_no_limit(tmp_path: Path) -> None:
    """ "max" in memory.max and cpu.max means no limit: host totals are used."""
    root = v2_root(tmp_path, memory="max\n", cpu="max 100000\n")
    assert cgroup_memory_limit(root, None) is None
    assert cgroup_cpu_limit(root, None) is None
    p = detect({}, root, proc_self_cgroup=None)
    assert p.memory_limit_source == "host"
    assert p.cpu_limit == float(os.cpu_count() or 0)
    assert p.cpu_limit_source == "host"


def test_v2_stricter_parent_limit_counts(tmp_path: Path) -> None:
    """A parent cgroup's smaller limit wins over the process's own cgroup."""
    root = v2_root(tmp_path, memory="max", cpu="max 100000")
    write(root / "app.slice" / "memory.max", "268435456")
    write(root / "app.slice" / "cpu.max", "25000 100000")
    write(root / "app.slice" / "web.scope" / "memory.max", "1073741824")
    write(root / "app.slice" / "web.scope" / "cpu.max", "200000 100000")
    proc = tmp_path / "proc-cgroup"
    write(proc, "0::/app.slice/web.scope\n")
    assert cgroup_memory_limit(root, proc) == 256 * MiB
    assert cgroup_cpu_limit(root, proc) == 0.25


def test_v2_own_limit_stricter_than_parent(tmp_path: Path) -> None:
    """The process's own cgroup wins when it is the stricter one."""
    root = v2_root(tmp_path)
    write(root / "a" / "memory.max", "1073741824")
    write(root / "a" / "b" / "memory.max", "134217728")
    proc = tmp_path / "proc-cgroup"
    write(proc, "0::/a/b\n")
    assert cgroup_memory_limit(root, proc) == 128 * MiB
    assert cgroup_memory_usage(root, proc) is None


def test_v2_unknown_own_path_falls_back_to_root(tmp_path: Path) -> None:
    """A /proc/self/cgroup path that does not exist under the root (namespaces) reads the root."""
    root = v2_root(tmp_path, memory="104857600")
    write(root / "memory.current", "52428800\n")
    proc = tmp_path / "proc-cgroup"
    write(proc, "0::/kubepods/pod123/abc\n")
    assert cgroup_memory_limit(root, proc) == 100 * MiB
    assert cgroup_memory_usage(root, proc) == 50 * MiB


def test_v1_memory_and_cpu(tmp_path: Path) -> None:
    """cgroup v1 memory.limit_in_bytes and cfs quota/period give the limits."""
    root = v1_root(tmp_path, memory="268435456", quota="150000", period="100000")
    write(root / "memory" / "memory.usage_in_bytes", "1000")
    assert cgroup_memory_limit(root, None) == 256 * MiB
    assert cgroup_cpu_limit(root, None) == 1.5
    assert cgroup_memory_usage(root, None) == 1000


def test_v1_huge_value_and_minus_one_mean_no_limit(tmp_path: Path) -> None:
    """v1 writes a huge number for no memory limit and -1 for no CPU quota."""
    root = v1_root(tmp_path, memory="9223372036854771712", quota="-1")
    assert cgroup_memory_limit(root, None) is None
    assert cgroup_cpu_limit(root, None) is None


def test_v1_parent_walk(tmp_path: Path) -> None:
    """v1 hierarchies are walked from the process's cgroup up to the mount, too."""
    root = v1_root(tmp_path, memory="9223372036854771712")
    write(root / "memory" / "docker" / "memory.limit_in_bytes", "536870912")
    write(root / "memory" / "docker" / "c1" / "memory.limit_in_bytes", "9223372036854771712")
    proc = tmp_path / "proc-cgroup"
    write(proc, "12:cpu,cpuacct:/docker/c1\n4:memory:/docker/c1\n0::/\n")
    assert cgroup_memory_limit(root, proc) == 512 * MiB


def test_v1_cpu_cpuacct_directory(tmp_path: Path) -> None:
    """The combined cpu,cpuacct mount is found when there is no plain cpu directory."""
    root = tmp_path / "cgroup"
    write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "50000")
    write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit(root, None) == 0.5


@pytest.mark.parametrize(
    "content",
    [
        "",
        "max",
        "-5",
        "0",
        "garbage",
        "12 34",
        b"\xff\xfe\x00\x01",
        "9" * 1000,
        "1e9",
        "  \n",
    ],
)
def test_garbage_memory_file_gives_none(tmp_path: Path, content: str | bytes) -> None:
    """Empty, non-numeric, binary, negative or oversized memory files mean no cgroup limit."""
    root = v2_root(tmp_path)
    write(root / "memory.max", content)
    assert cgroup_memory_limit(root, None) is None
    p = detect({}, root, proc_self_cgroup=None)
    assert p.memory_limit_source in ("host", "unknown")


@pytest.mark.parametrize(
    "content",
    ["", "max", "max 100000", "-1 100000", "0 100000", "50000 0", "a b", "1 2 3", b"\x00\x80"],
)
def test_garbage_cpu_file_gives_none(tmp_path: Path, content: str | bytes) -> None:
    """Garbage in cpu.max means no cgroup CPU limit, never an exception."""
    root = v2_root(tmp_path)
    write(root / "cpu.max", content)
    assert cgroup_cpu_limit(root, None) is None


def test_v2_cpu_max_quota_without_period(tmp_path: Path) -> None:
    """A quota with no period uses the kernel's default period of 100000 µs."""
    root = v2_root(tmp_path, cpu="200000")
    assert cgroup_cpu_limit(root, None) == 2.0


@pytest.mark.parametrize(("quota", "period"), [("garbage", "100000"), ("50000", "x"), ("5", None)])
def test_garbage_v1_cpu_gives_none(tmp_path: Path, quota: str, period: str | None) -> None:
    """v1 quota or period garbage or absence means no CPU limit."""
    root = v1_root(tmp_path, quota=quota, period=period)
    assert cgroup_cpu_limit(root, None) is None


def test_unreadable_file_gives_none(tmp_path: Path) -> None:
    """A path that cannot be read as a file (here a directory, unreadable even for root) is
    treated as missing."""
    root = tmp_path / "cg"
    (root / "memory.max").mkdir(parents=True)
    (root / "cpu.max").mkdir()
    assert cgroup_memory_limit(root, None) is None
    assert cgroup_cpu_limit(root, None) is None


def test_permission_error_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PermissionError while reading a cgroup file is treated as a missing file."""
    import builtins

    root = v2_root(tmp_path, memory="536870912", cpu="50000 100000")
    real_open = builtins.open

    def guarded_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file).startswith(str(root)):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", guarded_open)
    assert cgroup_memory_limit(root, None) is None
    assert cgroup_cpu_limit(root, None) is None


def test_directory_in_place_of_file_gives_none(tmp_path: Path) -> None:
    """A directory where a value file should be is treated as missing."""
    root = v2_root(tmp_path)
    (root / "memory.max").mkdir()
    assert cgroup_memory_limit(root, None) is None


def test_missing_root_and_garbage_proc_file(tmp_path: Path) -> None:
    """A missing cgroup root and a garbled /proc/self/cgroup give None, not an exception."""
    proc = tmp_path / "proc"
    write(proc, b"\xff\x00garbage\n::\n")
    assert cgroup_memory_limit(tmp_path / "nothing", proc) is None
    assert cgroup_cpu_limit(tmp_path / "nothing", proc) is None
    assert cgroup_memory_usage(tmp_path / "nothing", proc) is None
    assert cgroup_memory_limit(tmp_path / "nothing", tmp_path / "missing-proc") is None


def test_proc_path_escaping_root_is_ignored(tmp_path: Path) -> None:
    """Parent-directory segments in /proc/self/cgroup never lead outside the root."""
    root = v2_root(tmp_path, memory="104857600")
    write(tmp_path / "memory.max", "1")  # outside the root: must never be read
    proc = tmp_path / "proc"
    write(proc, "0::/../..\n")
    assert cgroup_memory_limit(root, proc) == 100 * MiB


def test_cgroup_limit_above_host_ram_reports_host(tmp_path: Path) -> None:
    """A cgroup limit larger than the machine's RAM is not the real limit: host RAM is."""
    root = v2_root(tmp_path, memory=str(1 << 55))
    p = detect({}, root, proc_self_cgroup=None)
    assert p.memory_limit_source == "host"
    assert p.memory_limit is not None and p.memory_limit < 1 << 55


# --- RENDER_CPU_COUNT ----------------------------------------------------------------------


def test_render_cpu_count_half(tmp_path: Path) -> None:
    """RENDER_CPU_COUNT="0.5" gives half a CPU."""
    p = fake_detect({"RENDER": "true", "RENDER_CPU_COUNT": "0.5"}, tmp_path)
    assert p.cpu_limit == 0.5
    assert p.cpu_limit_source == "RENDER_CPU_COUNT"


def test_stricter_of_render_cpu_count_and_cgroup(tmp_path: Path) -> None:
    """When both RENDER_CPU_COUNT and cpu.max are set, the smaller one counts."""
    root = v2_root(tmp_path, cpu="25000 100000")
    p = detect({"RENDER": "true", "RENDER_CPU_COUNT": "1"}, root, proc_self_cgroup=None)
    assert p.cpu_limit == 0.25
    assert p.cpu_limit_source == "cgroup"


@pytest.mark.parametrize("value", ["", "zero", "-1", "0", "nan", "inf", "1" * 40])
def test_garbage_render_cpu_count_is_ignored(tmp_path: Path, value: str) -> None:
    """A garbled RENDER_CPU_COUNT falls back to the cgroup or host count."""
    p = fake_detect({"RENDER": "true", "RENDER_CPU_COUNT": value}, tmp_path)
    assert p.cpu_limit_source == "host"


def test_host_memory_failure_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If psutil fails, memory_limit is None rather than an exception."""
    import psutil

    def boom() -> None:
        raise OSError("no /proc/meminfo")

    monkeypatch.setattr(psutil, "virtual_memory", boom)
    p = fake_detect({}, tmp_path)
    assert p.memory_limit is None
    assert p.memory_limit_source == "unknown"


def test_paas_detection_is_written_once() -> None:
    """Every provider marker makes detect(), detect_provider() and environment() agree."""
    from renderkit.config import environment
    from renderkit.platform import PROVIDER_MARKERS, detect_provider

    for provider, markers in PROVIDER_MARKERS.items():
        for marker in markers:
            env = {marker: "true" if marker == "RENDER" else "x"}
            assert detect_provider(env) == (provider, False), marker
            assert detect(env, proc_self_cgroup=None).provider == provider
            assert environment(env) == "production", marker
    assert detect_provider({}) == ("local", False)
    preview = {"RENDER": "true", "IS_PULL_REQUEST": "yes"}
    assert detect_provider(preview) == ("render", True)
    assert environment(preview) == "staging"
    assert environment({"DYNO": "web.1", "HEROKU_PR_NUMBER": "12"}) == "staging"


def test_config_keeps_no_copy_of_the_paas_markers() -> None:
    """config.py names no provider variable: it asks platform."""
    from pathlib import Path

    from renderkit.platform import PROVIDER_MARKERS

    source = (Path(__file__).parent.parent / "src" / "renderkit" / "config.py").read_text()
    for markers in PROVIDER_MARKERS.values():
        for marker in markers:
            assert f'"{marker}"' not in source, marker
