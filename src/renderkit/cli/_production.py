"""Doctor checks for what hurts in production: bad values, unshared state, short secrets.

Each module's own ``Settings`` declaration is the judge of its variables (a bad boolean in
FORCE_HTTPS, a malformed SESSION_ENCRYPTION_KEY), so the doctor never keeps a second copy of
their rules; it only adds what no single module can see (several workers and no Redis).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from renderkit.cli._findings import DoctorContext, DoctorSettings, Finding, FindingStatus
from renderkit.config import ENVIRONMENT_VARIABLES, ConfigProblem, Settings, parse_int

__all__ = [
    "MIN_SECRET_BYTES",
    "check_module_settings",
    "check_secret_lengths",
    "check_shared_state",
]

MIN_SECRET_BYTES = 32


@functools.cache
def _declared() -> tuple[type[Settings], ...]:
    """The modules' own declarations (the testing plugin's CI variables left out)."""
    from renderkit.cli._config import discover_settings

    classes, _ = discover_settings()
    return tuple(cls for cls in classes if cls.__module__ != "renderkit.testing")


# Judged by their own checks: the connectivity checks (which also connect) and the workers one.
_JUDGED_ELSEWHERE = frozenset({"DATABASE_URL", "REDIS_URL", "WEB_CONCURRENCY"})


def _bad_values(ctx: DoctorContext) -> list[ConfigProblem]:
    """Every problem with a variable that is set, once (unset ones are skipped: the doctor
    cannot know which modules the app uses)."""
    seen: set[str] = set()
    out: list[ConfigProblem] = []
    for cls in _declared():
        for problem in cls.check(ctx.environ).problems:
            if problem.found == "not set" or problem.variable in ENVIRONMENT_VARIABLES:
                continue
            if problem.variable in _JUDGED_ELSEWHERE or str(problem) in seen:
                continue
            seen.add(str(problem))
            out.append(problem)
    return out


def _help(variable: str) -> str:
    for cls in _declared():
        for info in cls.describe():
            if info.variable == variable and info.help:
                return info.help
    return ""


def check_module_settings(ctx: DoctorContext) -> Iterable[Finding]:
    """Every variable that is set holds a value its module accepts."""
    problems = _bad_values(ctx)
    for problem in problems:
        if problem.message.startswith("expected") and problem.expected:
            fix = f"set {problem.variable} to {problem.expected}"
        else:
            fix = f"{problem.variable}: {_help(problem.variable)}".rstrip(": ")
        yield Finding("settings", "fail", str(problem), fix, {"variable": problem.variable})
    if not problems:
        yield Finding("settings", "ok", "every renderkit variable that is set is valid")


def _workers(ctx: DoctorContext) -> tuple[int, Finding | None]:
    raw = ctx.value("WEB_CONCURRENCY")
    if raw is None:
        return 1, None
    try:
        count = parse_int(raw)
    except ValueError:
        count = 0
    if count < 1:
        return 1, Finding(
            "workers",
            "warn",
            f"WEB_CONCURRENCY={raw[:20]!r} is not a number of worker processes",
            "set WEB_CONCURRENCY to a whole number such as 2, or unset it",
        )
    return count, None


def check_shared_state(ctx: DoctorContext) -> Iterable[Finding]:
    """Several workers and no REDIS_URL: sessions, limits and caches stay per process."""
    workers, problem = _workers(ctx)
    if problem is not None:
        yield problem
        return
    if workers > 1 and ctx.value("REDIS_URL") is None:
        status: FindingStatus = "fail" if ctx.environment == "production" else "warn"
        yield Finding(
            "workers",
            status,
            f"WEB_CONCURRENCY={workers} and no REDIS_URL: memory sessions, rate limits and "
            f"caches are per worker process, so a user is logged out whenever another worker "
            f"answers and each limit is allowed {workers} times over",
            "set REDIS_URL (on Render: a Key Value instance's internal URL), or run one worker",
            {"workers": workers},
        )
        return
    pinned = _pinned_to_memory(ctx) if workers > 1 else []
    for variable, what in pinned:
        yield Finding(
            "workers",
            "warn",
            f"{variable} keeps {what} in each worker's memory while WEB_CONCURRENCY={workers}",
            f"unset {variable} (REDIS_URL is then used) or run one worker",
            {"workers": workers, "variable": variable},
        )
    if not pinned:
        where = "shared through Redis" if workers > 1 else "one worker"
        yield Finding("workers", "ok", f"{workers} worker process(es), {where}")


# Variables that, set to these values, keep shared state in process memory despite REDIS_URL.
_MEMORY_CHOICES = (
    ("SESSION_STORE", "memory", "sessions"),
    ("CACHE_TYPE", "memory", "the cache"),
    ("RATELIMIT_STORAGE_URL", "memory://", "rate-limit counters"),
)


def _pinned_to_memory(ctx: DoctorContext) -> list[tuple[str, str]]:
    raw: dict[str, str | None] = {}
    for cls in _declared():
        for name, text in cls.raw(ctx.environ).items():
            if text is not None:
                raw.setdefault(name, text)
    return [
        (variable, what)
        for variable, memory, what in _MEMORY_CHOICES
        if (raw.get(variable) or "").strip().lower() == memory
    ]


def _secret_variables() -> dict[str, str]:
    """{VARIABLE: the declaring class} for every plain-text secret (not URLs, not keys)."""
    out: dict[str, str] = {}
    classes: list[type[Settings]] = [*_declared(), DoctorSettings]
    for cls in classes:
        for info in cls.describe():
            if info.secret and "Url" not in info.type and info.variable.find("_URL") < 0:
                out.setdefault(info.variable, cls.__name__)
    return out


def _secret_command(variable: str) -> str:
    from renderkit.cli._secret import KINDS

    for kind in KINDS.values():
        if kind.variable == variable:
            return f"renderkit secret --kind {kind.name}"
    return f"renderkit secret --name {variable}"


def check_secret_lengths(ctx: DoctorContext) -> Iterable[Finding]:
    """Secrets and tokens are at least 32 bytes (a guessable HMAC key forges sessions)."""
    status: FindingStatus = "fail" if ctx.environment == "production" else "warn"
    short = 0
    secrets = _secret_variables()
    values: dict[str, str | None] = {}
    classes: list[type[Settings]] = [*_declared(), DoctorSettings]
    for cls in classes:
        for name, text in cls.raw(ctx.environ).items():
            if name in secrets and text:
                values.setdefault(name, text)
    invalid = {problem.variable for problem in _bad_values(ctx)}  # reported as bad already
    for name in sorted(set(values) - invalid):
        text = values[name] or ""
        size = len(text.encode("utf-8"))
        if size < MIN_SECRET_BYTES:
            short += 1
            yield Finding(
                "secrets",
                status,
                f"{name} is {size} bytes long; secrets need at least {MIN_SECRET_BYTES} "
                "random bytes",
                f"replace it: `{_secret_command(name)}` prints a new value "
                "(on Render: generateValue: true in render.yaml)",
                {"variable": name, "bytes": size},
            )
    if not short and values:
        yield Finding("secrets", "ok", f"{len(values)} secret(s) of at least 32 bytes")
