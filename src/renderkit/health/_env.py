"""The environment variables :meth:`Health.from_env` reads, declared once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from renderkit._http import network_list
from renderkit.config import Seconds, Settings, env

__all__ = ["HealthSettings", "health_options"]


def _words(items: list[str]) -> list[str]:
    for item in items:
        status, sep, word = item.partition("=")
        if not sep or status.strip() not in ("healthy", "degraded", "unhealthy") or not word:
            raise ValueError(
                "use status=word pairs for healthy, degraded or unhealthy, such as "
                "healthy=ok,degraded=ok,unhealthy=error"
            )
    return items


class HealthSettings(Settings):
    """Who sees health detail and how long checks may take."""

    token: str | None = env("HEALTH_TOKEN", default=None, secret=True, validate=str.strip)
    """Bearer token that unlocks per-check detail and /health/diagnostics; unset: detail only for
    trusted networks, no diagnostics."""
    timeout: Seconds | None = env("HEALTH_CHECK_TIMEOUT", default=None)
    """Seconds one check may take before it counts as failed (default 5s)."""
    cache_ttl: Seconds | None = env("HEALTH_CACHE_TTL", default=None)
    """How long a health report is reused, so probes do not hammer dependencies (default 1s; 0s:
    never)."""
    stale_while_revalidate: Seconds | None = env("HEALTH_STALE_WHILE_REVALIDATE", default=None)
    """Serve a report up to this much older than HEALTH_CACHE_TTL at once while one background run
    refreshes it (default 0s)."""
    trusted_networks: list[str] | None = env(
        "HEALTH_TRUSTED_NETWORKS", default=None, validate=network_list
    )
    """Comma-separated CIDRs whose clients see detail without the token (default
    127.0.0.0/8,::1/128); behind a proxy the real client address counts."""
    status_words: list[str] | None = env("HEALTH_STATUS_WORDS", default=None, validate=_words)
    """Rename statuses in the JSON bodies, e.g. healthy=ok,degraded=ok,unhealthy=error."""


def health_options(environ: Mapping[str, str] | None) -> dict[str, Any]:
    """Constructor options from the environment; every bad variable in one ConfigError."""
    values = HealthSettings.load(environ).options()
    if "status_words" in values:
        pairs = (item.partition("=") for item in values["status_words"])
        values["status_words"] = {status.strip(): word.strip() for status, _, word in pairs}
    return values
