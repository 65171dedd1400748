"""One logging pipeline: structlog for the app, stdlib logging routed through it.

``configure_logging()`` writes JSON lines on a PaaS or in production (what log drains parse)
and readable console lines in development. Every line carries the request's correlation id
(when one is set) and the platform facts (service, instance, commit) bound once at start-up.
Calling it again replaces the previous configuration instead of stacking handlers.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog

from renderkit._context import correlation_id_var

__all__ = ["add_correlation_id", "configure_logging", "get_logger"]

Format = Literal["json", "console"]
_HANDLER_NAME = "renderkit"


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


def _default_format(environ: Mapping[str, str] | None) -> Format:
    from renderkit.config import environment
    from renderkit.platform import detect

    if environment(environ) == "production" or detect(environ).provider != "local":
        return "json"
    return "console"


def _level(level: int | str | None, environ: Mapping[str, str] | None) -> int:
    import os

    source = environ if environ is not None else os.environ
    raw: int | str = level if level is not None else source.get("LOG_LEVEL", "INFO")
    if isinstance(raw, int):
        return raw
    value = logging.getLevelName(raw.strip().upper())
    if not isinstance(value, int):
        raise ValueError(
            f"LOG_LEVEL={raw!r} is not a logging level; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return value


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

    ``level`` defaults to ``LOG_LEVEL`` (INFO). ``fmt`` defaults to ``"json"`` in production
    or on a detected PaaS, else ``"console"``. ``processors`` run before rendering (add your
    own redaction there). Idempotent: a second call replaces the first.
    """
    numeric_level = _level(level, environ)
    chosen: Format = fmt or _default_format(environ)
    static = _platform_facts(environ) if bind_platform else {}

    def add_static(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in static.items():
            event_dict.setdefault(key, value)
        return event_dict

    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_correlation_id,
        add_static,
        *processors,
    ]
    renderer: structlog.typing.Processor
    if chosen == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)

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
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric_level)


def get_logger(name: str | None = None) -> Any:
    """Return a structlog logger (``structlog.get_logger`` with renderkit's configuration)."""
    return structlog.get_logger(name)
