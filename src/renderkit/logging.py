"""One logging pipeline: structlog for the app, stdlib logging routed through it.

``configure_logging()`` writes JSON lines on a PaaS or in production (what log drains parse)
and readable console lines in development. Every line carries the request's correlation id
(when one is set) and the platform facts (service, instance, commit) bound once at start-up.
Calling it again replaces the previous configuration instead of stacking handlers.

uvicorn and gunicorn log through the same pipeline: ``configure_logging()`` takes over their
loggers in the process that imports the app, and :func:`server_log_config` (written to a file
by ``python -m renderkit.logging > log-config.json``) covers the processes that never import
it (uvicorn's ``--workers`` supervisor, gunicorn's master) via ``--log-config`` /
``--log-config-json``. Their access lines become fields (method, path, status, duration).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog

from renderkit._context import correlation_id_var, failed_request
from renderkit._redact import redact
from renderkit.config import Settings, env

__all__ = [
    "SERVER_LOGGERS",
    "LoggingSettings",
    "add_correlation_id",
    "add_server_fields",
    "configure_logging",
    "formatter",
    "get_logger",
    "redact_secrets",
    "server_log_config",
]

Format = Literal["json", "console"]
_HANDLER_NAME = "renderkit"

SERVER_LOGGERS: tuple[str, ...] = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
    "hypercorn.error",
    "hypercorn.access",
)
"""The web servers' own loggers, routed through renderkit's handler instead of theirs."""


def add_correlation_id(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor that adds ``request_id`` when a request is in flight."""
    request_id = correlation_id_var.get()
    if request_id is not None and "request_id" not in event_dict:
        event_dict["request_id"] = request_id
    return event_dict


def _platform_facts(environ: Mapping[str, str] | None) -> dict[str, Any]:
    from renderkit.platform import detect

    facts = detect(environ)
    selected = {
        "service": facts.service_name,
        "instance": facts.instance_id,
        "commit": facts.git_commit[:12] if facts.git_commit else None,
        "provider": facts.provider if facts.provider != "local" else None,
    }
    return {key: value for key, value in selected.items() if value}


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _level_name(raw: str) -> str:
    """LOG_LEVEL in any case; anything but a standard level name is refused."""
    name = raw.strip().upper()
    if name not in _LEVELS:
        raise ValueError("a logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return name


class LoggingSettings(Settings):
    """How renderkit's log pipeline renders and filters lines."""

    level: str = env("LOG_LEVEL", default="INFO", validate=_level_name)
    """Lowest level written: DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    format: Literal["json", "console"] | None = env("LOG_FORMAT", default=None)
    """json or console; unset: json in production or on a PaaS, else console."""


def _resolve(
    level: int | str | None, fmt: Format | None, environ: Mapping[str, str] | None
) -> tuple[int, Format]:
    """The level and format to use: arguments first, then LOG_LEVEL / LOG_FORMAT, then defaults."""
    from renderkit.config import environment
    from renderkit.platform import detect

    settings = LoggingSettings.load(environ)
    raw: int | str = level if level is not None else settings.level
    if isinstance(raw, int):
        numeric = raw
    else:
        value = logging.getLevelName(raw.strip().upper())
        if not isinstance(value, int):
            raise ValueError(
                f"LOG_LEVEL={raw!r} is not a logging level; "
                "use DEBUG, INFO, WARNING, ERROR or CRITICAL"
            )
        numeric = value
    chosen: Format | None = fmt or settings.format
    if chosen is None:
        production = environment(environ) == "production" or detect(environ).provider != "local"
        chosen = "json" if production else "console"
    return numeric, chosen


_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


def add_server_fields(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor that turns a server's access line and a crash into fields.

    uvicorn's access record carries (client, method, path, version, status) as its arguments
    and gunicorn's a dict of log atoms; both become ``method``, ``path``, ``status`` (and
    ``duration_ms`` from gunicorn). A traceback logged for a request that failed gets that
    request's ``request_id``, ``method`` and ``route``, noted by the correlation middleware.
    """
    event_dict.pop("color_message", None)  # uvicorn's ANSI copy of the message
    args = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if record is not None and args:
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            for key, value in zip(_ACCESS_FIELDS, args, strict=True):
                event_dict.setdefault(key, value)
        elif record.name == "gunicorn.access" and isinstance(args, Mapping):
            atoms = {"method": "m", "path": "U", "status": "s", "client": "h"}
            for key, atom in atoms.items():
                event_dict.setdefault(key, args.get(atom))
            status = event_dict.get("status")
            if isinstance(status, str) and status.isdigit():
                event_dict["status"] = int(status)
            micros = args.get("D")
            if isinstance(micros, int):
                event_dict.setdefault("duration_ms", round(micros / 1000, 3))
    exc_info = event_dict.get("exc_info")
    if exc_info:
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        facts = failed_request(exc) if isinstance(exc, BaseException) else None
        if facts:
            for key, value in facts.items():
                event_dict.setdefault(key, value)
    return event_dict


def _chain(
    bind_platform: bool, environ: Mapping[str, str] | None, extra: Iterable[Any]
) -> list[Any]:
    static = _platform_facts(environ) if bind_platform else {}

    def add_static(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in static.items():
            event_dict.setdefault(key, value)
        return event_dict

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_correlation_id,
        add_server_fields,
        add_static,
        *extra,
    ]


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor masking passwords in every string of a line (tracebacks too).

    It runs last, after the traceback is rendered to text, and uses renderkit's one
    redaction step (``renderkit.config.redact``), so a URL with a password in a message, an
    ``extra`` field or an exception never reaches the log stream.
    """
    for key, value in event_dict.items():
        if isinstance(value, str) and ("://" in value or "=" in value):
            event_dict[key] = redact(value)
    return event_dict


def _renderer(chosen: Format, shared: list[Any]) -> Any:
    # Tracebacks become text first, so the redaction step sees them.
    shared.extend((structlog.processors.format_exc_info, redact_secrets))
    if chosen == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def formatter(
    fmt: Format | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    bind_platform: bool = True,
    processors: Iterable[structlog.typing.Processor] = (),
) -> logging.Formatter:
    """The stdlib formatter renderkit's handler uses (JSON or console, same fields).

    A ``logging.config.dictConfig`` factory (``{"()": "renderkit.logging.formatter"}``), which
    is how :func:`server_log_config` hands it to uvicorn and gunicorn.
    """
    _, chosen = _resolve(logging.INFO, fmt, environ)
    shared = _chain(bind_platform, environ, processors)
    renderer = _renderer(chosen, shared)
    return _processor_formatter(shared, renderer)


def _processor_formatter(shared: list[Any], renderer: Any) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        pass_foreign_args=True,
    )


def server_log_config(level: str | None = None) -> dict[str, Any]:
    """A ``dictConfig`` dict for uvicorn's ``--log-config`` and gunicorn's ``--log-config-json``.

    Every server logger goes to one stdout handler with renderkit's formatter; the format
    and level are still read from LOG_FORMAT / LOG_LEVEL when the server starts. Write it
    once with ``python -m renderkit.logging > log-config.json`` and commit the file.
    """
    handler = {"()": "renderkit.logging._server_handler"}
    if level is not None:
        handler["level"] = level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {_HANDLER_NAME: handler},
        "loggers": {name: {"handlers": [], "propagate": True} for name in SERVER_LOGGERS},
        "root": {"handlers": [_HANDLER_NAME], "level": "DEBUG"},
    }


def _server_handler(level: str | None = None) -> logging.Handler:
    """The handler :func:`server_log_config` installs, filtering at LOG_LEVEL."""
    numeric, _ = _resolve(level, None, None)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter())
    handler.setLevel(numeric)
    return handler


def _take_over_server_loggers() -> None:
    """Send uvicorn's and gunicorn's records to the root handler instead of their own."""
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        for existing in list(server_logger.handlers):
            server_logger.removeHandler(existing)
        server_logger.propagate = True


def configure_logging(
    *,
    level: int | str | None = None,
    fmt: Format | None = None,
    environ: Mapping[str, str] | None = None,
    bind_platform: bool = True,
    processors: Iterable[structlog.typing.Processor] = (),
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging into one stream, JSON or console.

    ``level`` defaults to ``LOG_LEVEL`` (INFO). ``fmt`` defaults to ``LOG_FORMAT``, else
    ``"json"`` in production or on a detected PaaS, else ``"console"``. uvicorn's and
    gunicorn's loggers are routed here too. ``processors`` run before rendering (add your
    own redaction there). Idempotent: a second call replaces the first.
    """
    numeric_level, chosen = _resolve(level, fmt, environ)
    shared = _chain(bind_platform, environ, processors)
    renderer = _renderer(chosen, shared)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_processor_formatter(shared, renderer))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    _take_over_server_loggers()


def get_logger(name: str | None = None) -> Any:
    """Return a structlog logger (``structlog.get_logger`` with renderkit's configuration)."""
    return structlog.get_logger(name)


if __name__ == "__main__":  # python -m renderkit.logging > log-config.json
    json.dump(server_log_config(), sys.stdout, indent=2)
    sys.stdout.write("\n")
