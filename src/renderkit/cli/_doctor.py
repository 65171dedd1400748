"""``renderkit doctor``: what renderkit sees about this instance, and what looks wrong.

The doctor collects :class:`Finding` objects (status ok / warn / fail, a message, a fix) from
the check functions in ``CHECKS``. Each check takes the shared :class:`DoctorContext` and
returns findings; to add one (a Redis or Postgres connectivity check, say), write a function
with that signature and append it to ``CHECKS``. A check that raises becomes a ``fail``
finding instead of crashing the doctor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from renderkit.cli._connectivity import check_database, check_redis
from renderkit.cli._findings import Check, DoctorContext, DoctorSettings, Finding, FindingStatus
from renderkit.cli._output import add_command
from renderkit.cli._production import (
    check_module_settings,
    check_secret_lengths,
    check_shared_state,
)
from renderkit.config import explain_environment, format_bytes, redact
from renderkit.errors import ConfigError
from renderkit.health._runner import scrub_value
from renderkit.platform import Platform, detect

__all__ = [
    "CHECKS",
    "Check",
    "DoctorContext",
    "Finding",
    "FindingStatus",
    "as_json",
    "build_context",
    "format_text",
    "register",
    "run_checks",
]

_LOW_MEMORY = 256 * 1024 * 1024


def check_environment(ctx: DoctorContext) -> Iterable[Finding]:
    """The environment name resolves, and it matches where the app runs."""
    if ctx.environment is None:
        yield Finding(
            "environment",
            "fail",
            ctx.environment_reason,
            "set APP_ENV to development, staging or production",
        )
        return
    message = f"{ctx.environment} ({ctx.environment_reason})"
    if ctx.platform.is_paas and ctx.environment == "development":
        yield Finding(
            "environment",
            "warn",
            f"{message} on {ctx.platform.provider}: secure defaults (HTTPS redirect, Secure "
            "cookies) are off",
            "remove APP_ENV/ENV/ENVIRONMENT or set it to production on the deployed service",
        )
        return
    yield Finding("environment", "ok", message)


def check_port(ctx: DoctorContext) -> Iterable[Finding]:
    """PORT is usable, or the platform default applies."""
    raw = ctx.value("PORT")
    port = ctx.platform.port
    if raw is not None and raw != str(port):
        yield Finding(
            "port",
            "warn",
            f"PORT={raw!r} is not a port number; listening on {port} instead",
            "set PORT to a number from 1 to 65535, or unset it",
        )
        return
    origin = "PORT" if raw is not None else "default"
    yield Finding("port", "ok", f"{port} ({origin})")


def check_resources(ctx: DoctorContext) -> Iterable[Finding]:
    """Memory and CPU limits are known, and worth a word when they are small."""
    p = ctx.platform
    if p.memory_limit is None:
        yield Finding("memory", "warn", "memory limit unknown", "check that psutil works here")
    else:
        text = f"{format_bytes(p.memory_limit)} ({p.memory_limit_source})"
        if p.is_paas and p.memory_limit_source == "host":
            yield Finding(
                "memory",
                "warn",
                f"{text}: no container limit found, so this is the host's RAM",
                "size caches and worker counts for your plan's memory, not this number",
            )
        elif p.memory_limit < _LOW_MEMORY:
            yield Finding(
                "memory",
                "warn",
                f"{text}: little memory for several workers",
                "run one or two workers (WEB_CONCURRENCY) and keep in-memory caches small",
            )
        else:
            yield Finding("memory", "ok", text)
    if p.cpu_limit is None:
        yield Finding("cpu", "warn", "CPU count unknown")
    elif p.cpu_limit < 1:
        yield Finding(
            "cpu",
            "warn",
            f"{p.cpu_limit:g} CPU ({p.cpu_limit_source}): a fraction of one core",
            "run a single worker process; more processes only share the same slice",
        )
    else:
        yield Finding("cpu", "ok", f"{p.cpu_limit:g} CPU ({p.cpu_limit_source})")


def check_settings(ctx: DoctorContext) -> Iterable[Finding]:
    """With --settings, every setting loads (one finding per problem)."""
    if ctx.settings_error is not None:
        yield Finding(
            "config", "fail", ctx.settings_error, "pass --settings module:Class for your class"
        )
        return
    report = ctx.settings_report
    if report is None:
        return
    if report.ok:
        yield Finding(
            "config", "ok", f"{report.settings_class}: {len(report.fields)} settings valid"
        )
        return
    for problem in report.problems:
        yield Finding(
            "config",
            "fail",
            str(problem),
            f"set {problem.variable} to {problem.expected}" if problem.expected else "",
        )


CHECKS: list[Check] = [
    check_environment,
    check_port,
    check_resources,
    check_settings,
    check_module_settings,
    check_shared_state,
    check_secret_lengths,
    check_database,
    check_redis,
]
"""The checks the doctor runs, in order; append a function to add one."""


def run_checks(ctx: DoctorContext, checks: Iterable[Check] | None = None) -> list[Finding]:
    """Run each check; one that raises becomes a ``fail`` finding naming the exception."""
    findings: list[Finding] = []
    for check in CHECKS if checks is None else checks:
        name = getattr(check, "__name__", "check").removeprefix("check_")
        started = time.perf_counter()
        try:
            findings.extend(check(ctx))
        except Exception as exc:  # a broken check must not hide the others' findings
            elapsed = round((time.perf_counter() - started) * 1000, 1)
            findings.append(
                Finding(name, "fail", f"check crashed: {type(exc).__name__}", "", {"ms": elapsed})
            )
    return findings


def build_context(
    environ: Mapping[str, str] | None,
    settings: str | None = None,
    dotenv: str | None = None,
    cgroup_root: str | None = None,
) -> DoctorContext:
    """Detect the platform and environment, and load the settings class when one is named."""
    from renderkit.cli._config import SettingsImportError, import_settings

    platform = detect(environ, cgroup_root) if cgroup_root else detect(environ)
    try:
        env_name: str | None
        env_name, reason = explain_environment(environ)
    except ConfigError as exc:
        env_name, reason = None, str(exc.errors[0])
    ctx = DoctorContext(environ, platform, env_name, reason, raw=DoctorSettings.raw(environ))
    if settings:
        try:
            cls = import_settings(settings)
            ctx.settings_report = cls.check(environ, dotenv=dotenv)
        except (SettingsImportError, TypeError) as exc:
            ctx.settings_error = str(exc)
    return ctx


def _platform_lines(p: Platform) -> list[tuple[str, str]]:
    service = p.service_name or "-"
    if p.service_type:
        service += f" ({p.service_type})"
    return [
        ("provider", p.provider + (" (preview)" if p.is_preview else "")),
        ("service", service),
        ("instance", p.instance_id or "-"),
        ("region", p.region or "-"),
        ("url", p.external_url or "-"),
        ("commit", (p.git_commit or "-")[:12] + (f" on {p.git_branch}" if p.git_branch else "")),
        ("port", str(p.port)),
        ("shutdown grace", f"{p.shutdown_grace_period:g}s"),
    ]


def format_text(ctx: DoctorContext, findings: list[Finding]) -> str:
    """The human-readable doctor output."""
    p = ctx.platform
    lines = ["renderkit doctor", "", "Platform"]
    lines += [f"  {key:<15} {value}" for key, value in _platform_lines(p)]
    lines += ["", "Environment", f"  {ctx.environment or 'invalid'} ({ctx.environment_reason})"]
    memory = format_bytes(p.memory_limit) if p.memory_limit is not None else "unknown"
    cpus = f"{p.cpu_limit:g}" if p.cpu_limit is not None else "unknown"
    lines += [
        "",
        "Resources",
        f"  {'memory':<15} {memory} ({p.memory_limit_source})",
        f"  {'cpus':<15} {cpus} ({p.cpu_limit_source})",
    ]
    if ctx.settings_report is not None:
        from renderkit.cli._config import format_report

        lines += ["", "Settings"]
        lines += [
            f"  {line}" if line else "" for line in format_report(ctx.settings_report).splitlines()
        ]
    lines += ["", "Findings"]
    for finding in findings:
        lines.append(f"  {finding.status.upper():<5} {finding.check}: {finding.message}")
        if finding.fix and finding.status != "ok":
            lines.append(f"        fix: {finding.fix}")
    return redact("\n".join(lines))


def as_json(ctx: DoctorContext, findings: list[Finding]) -> dict[str, Any]:
    """The doctor's output as a JSON-ready dict, every string redacted."""
    from renderkit.cli._config import report_as_dict

    report: dict[str, Any] = scrub_value(
        {
            "platform": ctx.platform.as_dict(),
            "environment": ctx.environment,
            "environment_reason": ctx.environment_reason,
            "settings": report_as_dict(ctx.settings_report) if ctx.settings_report else None,
            "findings": [f.as_dict() for f in findings],
            "ok": not any(f.status == "fail" for f in findings),
        }
    )
    return report


def _run(args: argparse.Namespace) -> int:
    """show the detected platform, environment, limits and config problems

    Print what renderkit detects about this instance (provider, environment, memory
    and CPU limits) and a list of findings. Exit code 1 when any finding fails.
    """
    ctx = build_context(None, args.settings, args.dotenv, args.cgroup_root)
    findings = run_checks(ctx)
    if args.json:
        print(json.dumps(as_json(ctx, findings), indent=2, default=str))
    else:
        print(format_text(ctx, findings))
    if ctx.settings_error is not None:
        print(redact(f"renderkit doctor: {ctx.settings_error}"), file=sys.stderr)
    return 1 if any(f.status == "fail" for f in findings) else 0


def register(subparsers: Any) -> None:
    """Add ``doctor`` to the CLI."""
    doctor = add_command(subparsers, "doctor", _run)
    doctor.add_argument(
        "--settings", metavar="module:Class", help="also load and check this Settings class"
    )
    doctor.add_argument("--dotenv", metavar="PATH", help="a .env file for --settings")
    doctor.add_argument("--json", action="store_true", help="print the result as JSON")
    doctor.add_argument("--cgroup-root", metavar="DIR", default=None, help=argparse.SUPPRESS)


OFFLINE_CHECKS: tuple[Check, ...] = tuple(
    c for c in CHECKS if c not in (check_database, check_redis)
)
"""The doctor's checks that read only this process and its environment (no network)."""


def doctor_findings(
    environ: Mapping[str, str] | None = None, *, network: bool = False
) -> list[dict[str, Any]]:
    """The doctor's findings as JSON-ready dicts, every string redacted.

    For ``Health(diagnostics=doctor_findings)``: the health endpoint serves them at
    ``/health/diagnostics`` to token holders only. ``network=False`` (the default) leaves out
    the Postgres and Redis probes, so a diagnostics request costs no connection and no wait.
    """
    ctx = build_context(environ)
    report = as_json(ctx, run_checks(ctx, CHECKS if network else OFFLINE_CHECKS))
    findings: list[dict[str, Any]] = report["findings"]
    return findings
