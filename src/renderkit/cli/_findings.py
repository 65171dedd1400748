"""What ``renderkit doctor`` checks share: :class:`Finding`, :class:`DoctorContext`, settings.

A leaf of the CLI: the check modules (``_doctor``, ``_connectivity``, ``_production``) import
from here and never from each other's runners, so there is no import cycle between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from renderkit._variables import DATABASE_URL, REDIS_URL
from renderkit.cli._output import Verdict
from renderkit.config import ConfigReport, Settings, env
from renderkit.platform import Platform

__all__ = ["Check", "DoctorContext", "DoctorSettings", "Finding", "FindingStatus"]

FindingStatus = Literal["ok", "warn", "fail"]


class DoctorSettings(Settings):
    """What ``renderkit doctor`` looks at besides each module's own settings (raw text).

    It reads the text as set, unparsed, so that a bad value becomes a finding (DATABASE_URL
    and REDIS_URL must answer, PORT is a port number, SECRET_KEY holds at least 32 bytes)
    instead of a failure to load.
    """

    database_url: str | None = DATABASE_URL
    redis_url: str | None = REDIS_URL
    port: str | None = env("PORT", default=None)
    """Checked: a port number."""
    web_concurrency: str | None = env("WEB_CONCURRENCY", default=None)
    """Worker processes per instance (uvicorn/gunicorn read it too). Above 1, sessions, rate limits
    and caches need REDIS_URL to be shared between workers."""
    secret_key: str | None = env("SECRET_KEY", default=None, secret=True)
    """Your framework's secret (Flask's SECRET_KEY); checked: at least 32 bytes."""


@dataclass(frozen=True, slots=True)
class Finding(Verdict):
    """One observation: its status (ok, warn, fail), what was seen, and what to do about it."""

    status: FindingStatus


@dataclass(slots=True)
class DoctorContext:
    """What every check may look at: the environment, the platform and the settings report.

    ``raw`` holds :class:`DoctorSettings`' variables as set (text, unparsed), so a check can
    report a bad value instead of failing to load.
    """

    environ: Mapping[str, str] | None  # None: the process environment
    platform: Platform
    environment: str | None
    environment_reason: str
    settings_report: ConfigReport | None = None
    settings_error: str | None = None
    raw: dict[str, str | None] = field(default_factory=dict)

    def value(self, variable: str) -> str | None:
        """The stripped text of one of :class:`DoctorSettings`' variables, or None if unset."""
        text = self.raw.get(variable)
        return text.strip() or None if text is not None else None


Check = Callable[[DoctorContext], Iterable[Finding]]
