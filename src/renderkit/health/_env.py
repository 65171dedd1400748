"""The environment variables :meth:`Health.from_env` reads, declared once."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from renderkit.config import Seconds, Settings, env
from renderkit.errors import ConfigError, ConfigProblem

__all__ = ["HealthSettings", "health_options"]


class HealthSettings(Settings):
    """Who sees health detail and how long checks may take."""

    token: str | None = env(
        "HEALTH_TOKEN",
        default=None,
        secret=True,
        help="Bearer token that unlocks per-check detail and /health/diagnostics; unset: "
        "detail only for trusted networks, no diagnostics.",
    )
    timeout: Seconds | None = env(
        "HEALTH_CHECK_TIMEOUT",
        default=None,
        help="Seconds one check may take before it counts as failed (default 5s).",
    )
    cache_ttl: Seconds | None = env(
        "HEALTH_CACHE_TTL",
        default=None,
        help="How long a health report is reused, so probes do not hammer dependencies "
        "(default 1s; 0s: never).",
    )
    stale_while_revalidate: Seconds | None = env(
        "HEALTH_STALE_WHILE_REVALIDATE",
        default=None,
        help="Serve a report up to this much older than HEALTH_CACHE_TTL at once while one "
        "background run refreshes it (default 0s).",
    )
    trusted_networks: list[str] | None = env(
        "HEALTH_TRUSTED_NETWORKS",
        default=None,
        help="Comma-separated CIDRs whose clients see detail without the token (default "
        "127.0.0.0/8,::1/128); behind a proxy the real client address counts.",
    )
    status_words: list[str] | None = env(
        "HEALTH_STATUS_WORDS",
        default=None,
        help="Rename statuses in the JSON bodies, e.g. healthy=ok,degraded=ok,unhealthy=error.",
    )


def _networks(items: list[str]) -> list[str]:
    for item in items:
        ipaddress.ip_network(item, strict=False)
    return items


def _words(items: list[str]) -> dict[str, str]:
    words: dict[str, str] = {}
    for item in items:
        status, sep, word = item.partition("=")
        if not sep or status.strip() not in ("healthy", "degraded", "unhealthy") or not word:
            raise ValueError(f"{item!r} is not status=word (healthy, degraded or unhealthy)")
        words[status.strip()] = word.strip()
    return words


_CHECKED = (
    ("trusted_networks", "HEALTH_TRUSTED_NETWORKS", _networks, "10.0.0.0/8,127.0.0.1"),
    ("status_words", "HEALTH_STATUS_WORDS", _words, "healthy=ok,unhealthy=error"),
)


def health_options(environ: Mapping[str, str] | None) -> dict[str, Any]:
    """Constructor options from the environment; every bad variable in one ConfigError."""
    report = HealthSettings.check(environ)
    problems: list[ConfigProblem] = list(report.problems)
    values: dict[str, Any] = {}
    settings = report.settings
    if settings is not None:
        for option in ("token", "timeout", "cache_ttl", "stale_while_revalidate"):
            value = getattr(settings, option)
            if value is not None:
                values[option] = value.strip() if isinstance(value, str) else float(value)
    # The lists always load; check them even when another variable failed, so that one
    # ConfigError names every bad variable.
    loaded = {f.attribute: f for f in report.fields if f.ok and f.source != "default"}
    for option, variable, parse, example in _CHECKED:
        field = loaded.get(option)
        if field is not None:
            raw = getattr(settings, option) if settings is not None else field.display.split(",")
            try:
                values[option] = parse([item.strip() for item in raw if item.strip()])
            except ValueError as exc:
                message = f"{exc}; use a comma-separated list such as {example}"
                problems.append(ConfigProblem(variable, message, "environment", found=repr(raw)))
    if problems:
        raise ConfigError(problems)
    return values
