"""Where the app runs: provider, service facts, port, and the container's memory and CPU limits.

:func:`detect` reads environment variables and cgroup files once and returns a frozen
:class:`Platform`. It never raises on odd input: a missing, unreadable or garbled value gives
``None`` (or the documented fallback), because an app must still start on a machine nobody
anticipated.

Container limits come from cgroup files, not from ``psutil`` or ``os.cpu_count()``, which report
the host. Parent cgroups are walked too, so a stricter limit set further up still counts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "DEFAULT_CGROUP_ROOT",
    "DEFAULT_GRACE_PERIODS",
    "FALSE_WORDS",
    "PROVIDERS",
    "PROVIDER_MARKERS",
    "TRUE_WORDS",
    "VARIABLES",
    "Platform",
    "cgroup_cpu_limit",
    "cgroup_memory_limit",
    "cgroup_memory_usage",
    "detect",
    "detect_provider",
]

DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"
_PROC_SELF_CGROUP = "/proc/self/cgroup"

PROVIDERS = ("render", "heroku", "fly", "railway", "cloud_run", "kubernetes", "ecs", "local")
"""Every value :attr:`Platform.provider` can take."""

TRUE_WORDS = frozenset({"true", "1", "yes", "on", "y", "t"})
"""The words renderkit reads as true (any case); :func:`renderkit.config.parse_bool` uses them."""
FALSE_WORDS = frozenset({"false", "0", "no", "off", "n", "f"})
"""The words renderkit reads as false (any case)."""

DEFAULT_GRACE_PERIODS: Mapping[str, float] = {
    "render": 30.0,  # maxShutdownDelaySeconds default; no env var tells the app otherwise
    "heroku": 30.0,  # fixed: SIGKILL 30 s after SIGTERM
    "fly": 5.0,  # default kill_timeout
    "railway": 0.0,  # RAILWAY_DEPLOYMENT_DRAINING_SECONDS, when set, replaces this
    "cloud_run": 10.0,  # SIGKILL 10 s after SIGTERM
    "kubernetes": 30.0,  # terminationGracePeriodSeconds default
    "ecs": 30.0,  # stopTimeout default
    "local": 30.0,
}
"""Seconds between SIGTERM and SIGKILL each provider gives by default."""

PROVIDER_MARKERS: Mapping[str, tuple[str, ...]] = {
    "render": ("RENDER", "RENDER_SERVICE_ID"),  # RENDER=true; the id when RENDER is unset
    "heroku": ("DYNO",),
    "fly": ("FLY_APP_NAME", "FLY_ALLOC_ID", "FLY_MACHINE_ID"),
    "railway": (
        "RAILWAY_ENVIRONMENT",
        "RAILWAY_ENVIRONMENT_NAME",
        "RAILWAY_PROJECT_ID",
        "RAILWAY_SERVICE_ID",
        "RAILWAY_DEPLOYMENT_ID",
    ),
    "cloud_run": ("K_SERVICE", "CLOUD_RUN_JOB"),
    "ecs": ("ECS_CONTAINER_METADATA_URI_V4", "ECS_CONTAINER_METADATA_URI"),
    "kubernetes": ("KUBERNETES_SERVICE_HOST",),
}
"""The variables whose presence names each provider, checked in this order."""

VARIABLES: Mapping[str, str] = {
    "RENDER": "Set to true by Render; names the provider (Render also sets RENDER_SERVICE_ID, "
    "RENDER_SERVICE_NAME, RENDER_SERVICE_TYPE, RENDER_INSTANCE_ID, RENDER_GIT_COMMIT and "
    "RENDER_GIT_BRANCH, which are read when present, never required).",
    "IS_PULL_REQUEST": "Set to true by Render on a pull-request preview: the environment "
    "becomes staging.",
    "RENDER_EXTERNAL_URL": "The service's public URL on Render (else RENDER_EXTERNAL_HOSTNAME).",
    "RENDER_CPU_COUNT": "CPUs of the Render instance type (e.g. 0.5); the stricter of it and "
    "the cgroup quota is cpu_limit.",
    "DYNO": "Set by Heroku (web.1); HEROKU_APP_NAME, HEROKU_SLUG_COMMIT, HEROKU_PR_NUMBER and "
    "HEROKU_REGION add facts.",
    "FLY_APP_NAME": "Set by Fly.io; FLY_MACHINE_ID, FLY_PROCESS_GROUP and FLY_REGION add facts.",
    "RAILWAY_ENVIRONMENT_NAME": "Set by Railway (a '<base>-pr-<n>' name is a preview); "
    "RAILWAY_DEPLOYMENT_DRAINING_SECONDS sets the shutdown grace period.",
    "K_SERVICE": "Set by Cloud Run (CLOUD_RUN_JOB for jobs).",
    "ECS_CONTAINER_METADATA_URI_V4": "Set by AWS ECS; AWS_REGION names the region.",
    "KUBERNETES_SERVICE_HOST": "Set inside Kubernetes; HOSTNAME is the pod name.",
    "PORT": "The port to listen on; else 10000 on Render, else 8000.",
}
"""Every variable :func:`detect` reads on its own, with what it means (docs/environment.md)."""

_UNLIMITED_V1 = 1 << 60  # v1 writes PAGE_COUNTER_MAX-ish numbers (~9.2e18) for "no limit"
_MAX_READ = 256  # cgroup values are short; anything longer is not one


@dataclass(frozen=True, slots=True)
class Platform:
    """Facts about the running instance, as detected from its environment.

    ``memory_limit`` is in bytes and ``cpu_limit`` in CPUs (``0.5`` is half a CPU); both are the
    container's limits when a cgroup sets one, else the host's totals (``None`` only when even
    those are unknown). ``shutdown_grace_period`` is the provider's default number of seconds
    between SIGTERM and SIGKILL.
    """

    provider: str = "local"
    service_name: str | None = None
    service_type: str | None = None
    service_id: str | None = None
    instance_id: str | None = None
    external_url: str | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    is_preview: bool = False
    region: str | None = None
    port: int = 8000
    memory_limit: int | None = None
    memory_limit_source: str = "unknown"
    cpu_limit: float | None = None
    cpu_limit_source: str = "unknown"
    shutdown_grace_period: float = 30.0

    @property
    def is_paas(self) -> bool:
        """True on any detected provider (anything but ``"local"``)."""
        return self.provider != "local"

    def as_dict(self) -> dict[str, Any]:
        """Return every field as a plain, JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def detect_provider(environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Return ``(provider, is_preview)`` from environment variables alone (no cgroup reads).

    The one place renderkit decides which PaaS runs the app; :func:`detect` and
    :func:`renderkit.config.environment` both use it.
    """
    env = os.environ if environ is None else environ
    provider = _provider(env)
    return provider, bool(_FACTS[provider](env).get("is_preview", False))


def detect(
    environ: Mapping[str, str] | None = None,
    cgroup_root: str | os.PathLike[str] = DEFAULT_CGROUP_ROOT,
    *,
    proc_self_cgroup: str | os.PathLike[str] | None = _PROC_SELF_CGROUP,
) -> Platform:
    """Detect the provider, service facts, port and resource limits; never raises.

    ``environ`` defaults to ``os.environ``. ``cgroup_root`` is where the cgroup filesystem is
    mounted; ``proc_self_cgroup`` is the file naming this process's cgroup (``None`` to look
    only at ``cgroup_root`` itself). Tests point both at fake files.
    """
    env = os.environ if environ is None else environ
    provider = _provider(env)
    facts = _FACTS[provider](env)
    memory, memory_source = _memory(cgroup_root, proc_self_cgroup)
    cpu, cpu_source = _cpu(env, cgroup_root, proc_self_cgroup)
    return Platform(
        provider=provider,
        port=_port(env, provider),
        memory_limit=memory,
        memory_limit_source=memory_source,
        cpu_limit=cpu,
        cpu_limit_source=cpu_source,
        shutdown_grace_period=_grace_period(env, provider),
        **facts,
    )


# --- providers ----------------------------------------------------------------------------


def _get(env: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` that is set to something other than whitespace, stripped."""
    for name in names:
        value = env.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_WORDS


def _provider(env: Mapping[str, str]) -> str:
    render = env.get("RENDER")
    if _truthy(render) or (render is None and _get(env, "RENDER_SERVICE_ID")):
        return "render"
    for provider, markers in PROVIDER_MARKERS.items():
        if provider != "render" and _get(env, *markers):
            return provider
    return "local"


def _https(host: str | None) -> str | None:
    if host is None:
        return None
    return host if "://" in host else f"https://{host}"


# Each provider's facts: only what it knows; Platform's defaults (None, False) fill the rest.


def _render(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "service_name": _get(env, "RENDER_SERVICE_NAME"),
        "service_type": _get(env, "RENDER_SERVICE_TYPE"),
        "service_id": _get(env, "RENDER_SERVICE_ID"),
        "instance_id": _get(env, "RENDER_INSTANCE_ID"),
        "external_url": _get(env, "RENDER_EXTERNAL_URL")
        or _https(_get(env, "RENDER_EXTERNAL_HOSTNAME")),
        "git_commit": _get(env, "RENDER_GIT_COMMIT"),
        "git_branch": _get(env, "RENDER_GIT_BRANCH"),
        "is_preview": _truthy(env.get("IS_PULL_REQUEST")),
    }


def _heroku(env: Mapping[str, str]) -> dict[str, Any]:
    dyno = _get(env, "DYNO")
    return {
        "service_name": _get(env, "HEROKU_APP_NAME"),
        "service_type": dyno.split(".", 1)[0] if dyno else None,  # "web.1" -> "web"
        "service_id": _get(env, "HEROKU_APP_ID"),
        "instance_id": dyno,
        "external_url": _https(_get(env, "HEROKU_APP_DEFAULT_DOMAIN_NAME")),
        "git_commit": _get(env, "HEROKU_SLUG_COMMIT", "SOURCE_VERSION"),
        "git_branch": _get(env, "HEROKU_BRANCH"),
        "is_preview": _get(env, "HEROKU_PR_NUMBER") is not None,
        "region": _get(env, "HEROKU_REGION"),
    }


def _fly(env: Mapping[str, str]) -> dict[str, Any]:
    app = _get(env, "FLY_APP_NAME")
    return {
        "service_name": app,
        "service_type": _get(env, "FLY_PROCESS_GROUP"),
        "instance_id": _get(env, "FLY_MACHINE_ID", "FLY_ALLOC_ID"),
        "external_url": f"https://{app}.fly.dev" if app else None,
        "region": _get(env, "FLY_REGION"),
    }


def _railway(env: Mapping[str, str]) -> dict[str, Any]:
    environment = _get(env, "RAILWAY_ENVIRONMENT_NAME", "RAILWAY_ENVIRONMENT") or ""
    # Railway names PR environments "<base>-pr-<number>".
    tail = environment.rsplit("-pr-", 1)
    return {
        "service_name": _get(env, "RAILWAY_SERVICE_NAME"),
        "service_id": _get(env, "RAILWAY_SERVICE_ID"),
        "instance_id": _get(env, "RAILWAY_REPLICA_ID", "RAILWAY_DEPLOYMENT_ID"),
        "external_url": _https(_get(env, "RAILWAY_PUBLIC_DOMAIN")),
        "git_commit": _get(env, "RAILWAY_GIT_COMMIT_SHA"),
        "git_branch": _get(env, "RAILWAY_GIT_BRANCH"),
        "is_preview": len(tail) == 2 and tail[1].isdigit(),
        "region": _get(env, "RAILWAY_REPLICA_REGION"),
    }


def _cloud_run(env: Mapping[str, str]) -> dict[str, Any]:
    job = _get(env, "CLOUD_RUN_JOB")
    return {
        "service_name": _get(env, "K_SERVICE") or job,
        "service_type": "job" if job and not _get(env, "K_SERVICE") else "service",
        "service_id": _get(env, "K_REVISION"),
        "instance_id": _get(env, "CLOUD_RUN_EXECUTION"),
    }


def _kubernetes(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "instance_id": _get(env, "HOSTNAME"),  # the pod name
    }


def _ecs(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "instance_id": _get(env, "HOSTNAME"),
        "region": _get(env, "AWS_REGION", "AWS_DEFAULT_REGION"),
    }


def _local(env: Mapping[str, str]) -> dict[str, Any]:
    return {}


_FACTS = {
    "render": _render,
    "heroku": _heroku,
    "fly": _fly,
    "railway": _railway,
    "cloud_run": _cloud_run,
    "kubernetes": _kubernetes,
    "ecs": _ecs,
    "local": _local,
}


def _port(env: Mapping[str, str], provider: str) -> int:
    fallback = 10000 if provider == "render" else 8000
    value = (env.get("PORT") or "").strip()
    if value.isascii() and value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    return fallback


def _grace_period(env: Mapping[str, str], provider: str) -> float:
    if provider == "railway":
        value = (env.get("RAILWAY_DEPLOYMENT_DRAINING_SECONDS") or "").strip()
        if value.isascii() and value.isdigit():
            return float(min(int(value), 3600))
    return DEFAULT_GRACE_PERIODS[provider]


# --- cgroups -----------------------------------------------------------------------------


def _read(path: str) -> str | None:
    """Return a short cgroup file's stripped text, or None if it is missing or not text."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_READ + 1)
    except (OSError, ValueError):
        return None
    if len(data) > _MAX_READ:
        return None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return text or None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 30:
        return None
    return -int(digits) if negative else int(digits)


def _own_paths(proc_self_cgroup: str | os.PathLike[str] | None, controller: str) -> list[str]:
    """This process's cgroup path for ``controller`` (``""`` = v2), from /proc/self/cgroup."""
    if proc_self_cgroup is None:
        return []
    try:
        with open(proc_self_cgroup, "rb") as handle:
            data = handle.read(64 * 1024).decode("utf-8", "replace")
    except (OSError, ValueError):
        return []
    found: list[str] = []
    for line in data.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        names = controllers.split(",")
        wanted = names == [""] if controller == "" else controller in names
        if wanted:
            found.append(path.strip())
    return found


def _chain(base: str, own: list[str]) -> list[str]:
    """Directories from this process's cgroup up to ``base``; just ``base`` when unknown."""
    dirs: list[str] = []
    for path in own:
        parts = [p for p in path.split("/") if p and p not in (".", "..")]
        while parts:
            candidate = os.path.join(base, *parts)
            if os.path.isdir(candidate):
                dirs.append(candidate)
            parts.pop()
    dirs.append(base)
    seen: list[str] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def _is_v2(root: str) -> bool:
    return os.path.exists(os.path.join(root, "cgroup.controllers")) or (
        not os.path.isdir(os.path.join(root, "memory"))
        and os.path.exists(os.path.join(root, "memory.max"))
    )


def _v1_dir(root: str, *names: str) -> str | None:
    for name in names:
        candidate = os.path.join(root, name)
        if os.path.isdir(candidate):
            return candidate
    return None


def _cgroup_texts(
    cgroup_root: str | os.PathLike[str],
    proc: str | os.PathLike[str] | None,
    v1_dirs: tuple[str, ...],
    files: tuple[tuple[str, ...], tuple[str, ...]],
    *,
    nearest: bool = False,
) -> tuple[list[tuple[str | None, ...]], bool]:
    """The text of a controller's files in this process's cgroup and each ancestor up to the
    root (nearest first; only the nearest with ``nearest``), and whether the host runs v2.

    ``v1_dirs``: the controller's directory names on a v1 hierarchy (the first is its name in
    /proc/self/cgroup). ``files``: the file names to read on v2, then on v1. Never raises: an
    unreadable hierarchy gives no directories.
    """
    try:
        root = os.fspath(cgroup_root)
        v2 = _is_v2(root)
        if v2:
            dirs = _chain(root, _own_paths(proc, ""))
        else:
            base = _v1_dir(root, *v1_dirs)
            dirs = _chain(base, _own_paths(proc, v1_dirs[0])) if base else []
        names = files[0] if v2 else files[1]
        texts = [tuple(_read(os.path.join(d, name)) for name in names) for d in dirs]
    except (OSError, ValueError):
        return [], False
    return (texts[:1] if nearest else texts), v2


_MEMORY_DIRS = ("memory",)
_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def cgroup_memory_limit(
    cgroup_root: str | os.PathLike[str] = DEFAULT_CGROUP_ROOT,
    proc_self_cgroup: str | os.PathLike[str] | None = _PROC_SELF_CGROUP,
) -> int | None:
    """Return the strictest cgroup memory limit in bytes (v2 or v1), or None if there is none."""
    files = (("memory.max",), ("memory.limit_in_bytes",))
    texts, v2 = _cgroup_texts(cgroup_root, proc_self_cgroup, _MEMORY_DIRS, files)
    # v1 writes a PAGE_COUNTER_MAX-ish number for "no limit"; v2 writes "max" (not a number).
    values = [_int(text) for (text,) in texts]
    limits = [v for v in values if v is not None and v > 0 and (v2 or v < _UNLIMITED_V1)]
    return min(limits) if limits else None


def cgroup_memory_usage(
    cgroup_root: str | os.PathLike[str] = DEFAULT_CGROUP_ROOT,
    proc_self_cgroup: str | os.PathLike[str] | None = _PROC_SELF_CGROUP,
) -> int | None:
    """Return the memory the cgroup uses now in bytes (``memory.current``), or None."""
    files = (("memory.current",), ("memory.usage_in_bytes",))
    texts, _ = _cgroup_texts(cgroup_root, proc_self_cgroup, _MEMORY_DIRS, files, nearest=True)
    value = _int(texts[0][0]) if texts else None
    return value if value is not None and value >= 0 else None


def _cpu_v2(text: str | None) -> float | None:
    if text is None:
        return None
    parts = text.split()
    if len(parts) not in (1, 2) or parts[0] == "max":
        return None
    quota = _int(parts[0])
    period = _int(parts[1]) if len(parts) == 2 else 100_000
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _cpu_v1(quota_text: str | None, period_text: str | None) -> float | None:
    quota, period = _int(quota_text), _int(period_text)
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None  # -1: no quota
    return quota / period


def cgroup_cpu_limit(
    cgroup_root: str | os.PathLike[str] = DEFAULT_CGROUP_ROOT,
    proc_self_cgroup: str | os.PathLike[str] | None = _PROC_SELF_CGROUP,
) -> float | None:
    """Return the strictest cgroup CPU quota in CPUs (``0.5`` = half a CPU), or None."""
    files = (("cpu.max",), ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
    texts, v2 = _cgroup_texts(cgroup_root, proc_self_cgroup, _CPU_DIRS, files)
    quotas = [_cpu_v2(t[0]) if v2 else _cpu_v1(t[0], t[1]) for t in texts]
    limits = [q for q in quotas if q is not None]
    return min(limits) if limits else None


def _host_memory() -> int | None:
    try:
        import psutil

        total = int(psutil.virtual_memory().total)
    except Exception:  # psutil can fail in odd sandboxes; a missing total is not fatal
        return None
    return total if total > 0 else None


def _memory(
    cgroup_root: str | os.PathLike[str], proc: str | os.PathLike[str] | None
) -> tuple[int | None, str]:
    limit = cgroup_memory_limit(cgroup_root, proc)
    host = _host_memory()
    if limit is not None and (host is None or limit < host):
        return limit, "cgroup"
    if host is not None:
        return host, "host"
    return None, "unknown"


def _render_cpu_count(env: Mapping[str, str]) -> float | None:
    value = (env.get("RENDER_CPU_COUNT") or "").strip()
    if not value or len(value) > 16:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0 < number < 10_000 else None


def _cpu(
    env: Mapping[str, str],
    cgroup_root: str | os.PathLike[str],
    proc: str | os.PathLike[str] | None,
) -> tuple[float | None, str]:
    candidates: list[tuple[float, str]] = []
    render = _render_cpu_count(env)
    if render is not None:
        candidates.append((render, "RENDER_CPU_COUNT"))
    cgroup = cgroup_cpu_limit(cgroup_root, proc)
    if cgroup is not None:
        candidates.append((cgroup, "cgroup"))
    host = os.cpu_count()
    if host:
        candidates.append((float(host), "host"))
    if not candidates:
        return None, "unknown"
    # The stricter limit is the one the app actually gets; on ties prefer the explicit source.
    return min(candidates, key=lambda c: c[0])
