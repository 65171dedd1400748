"""Exceptions raised by renderkit.

Every renderkit exception derives from :class:`RenderKitError`, so an app can catch the whole
family at once::

    RenderKitError
    ├── ConfigError            bad or missing settings (every problem at once)
    ├── MissingDependencyError an optional extra is not installed (says which pip line fixes it)
    ├── BackendUnavailable     Redis/Postgres could not be reached and no fallback applies
    ├── CircuitOpenError       a circuit breaker refused a call while its dependency is failing
    └── SessionError           a session could not be stored (too large, conflicting write)

Modules re-export the ones their users catch (``renderkit.config.ConfigError``).

Every :class:`ConfigProblem` renders through :func:`renderkit.config.redact`, renderkit's one
redaction step, so a password inside a URL never reaches an error message.
"""

from __future__ import annotations

from dataclasses import dataclass

from renderkit._redact import redact

__all__ = [
    "BackendUnavailable",
    "CircuitOpenError",
    "ConfigError",
    "ConfigProblem",
    "MissingDependencyError",
    "RenderKitError",
    "SessionError",
]


class RenderKitError(Exception):
    """Base class of every exception renderkit raises on purpose.

    Text arguments go through :func:`renderkit.config.redact`, so a URL with a password in any
    renderkit error message (``BackendUnavailable(f"cannot reach {url}")``) is masked in
    ``str()``, ``repr()``, tracebacks and logs.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One bad or missing setting: which variable, what was wrong, where the value came from.

    ``expected`` and ``found`` repeat the two halves of ``message`` for tools that show them
    in columns; ``found`` is already masked (``****``) when the variable is a secret.
    """

    variable: str
    message: str
    source: str = "environment"
    expected: str = ""
    found: str = ""

    def __str__(self) -> str:
        return redact(f"{self.variable} ({self.source}): {self.message}")


class ConfigError(RenderKitError, ValueError):
    """Settings are invalid; ``errors`` holds one :class:`ConfigProblem` per bad variable."""

    def __init__(self, errors: list[ConfigProblem] | ConfigProblem | str) -> None:
        if isinstance(errors, str):
            errors = [ConfigProblem("config", errors, "code")]
        elif isinstance(errors, ConfigProblem):
            errors = [errors]
        self.errors: list[ConfigProblem] = list(errors)
        lines = "\n".join(f"  - {problem}" for problem in self.errors)
        count = len(self.errors)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} configuration {noun}:\n{lines}")


class MissingDependencyError(RenderKitError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'renderkit[{extra}]'"
        )


class BackendUnavailable(RenderKitError, ConnectionError):
    """A backing service (Redis, Postgres) could not be reached and nothing could stand in."""


class CircuitOpenError(RenderKitError):
    """A circuit breaker is open: the protected dependency failed recently, so calls fail fast."""

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        super().__init__(
            f"circuit '{name}' is open after repeated failures; next probe in {retry_after:.1f}s"
        )


class SessionError(RenderKitError):
    """A session could not be saved (too large, or a newer write won a conflict)."""
