"""configure_logging(): one pipeline, JSON in production, request id and platform facts."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from renderkit._context import correlation_id_var
from renderkit.logging import add_correlation_id, configure_logging, get_logger

RENDER_ENV = {
    "RENDER": "true",
    "RENDER_SERVICE_NAME": "shop-web",
    "RENDER_INSTANCE_ID": "srv-abc-5d8f",
    "RENDER_GIT_COMMIT": "1a2b3c4d5e6f7a8b9c0d",
}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_on_render_with_platform_facts_and_request_id() -> None:
    """On Render every line is JSON with service, instance, commit and the request id."""
    stream = io.StringIO()
    configure_logging(environ=RENDER_ENV, stream=stream)
    token = correlation_id_var.set("req-123")
    try:
        get_logger("app").info("order placed", order_id=42)
    finally:
        correlation_id_var.reset(token)
    (line,) = lines(stream)
    assert line["event"] == "order placed"
    assert line["order_id"] == 42
    assert line["request_id"] == "req-123"
    assert line["service"] == "shop-web"
    assert line["instance"] == "srv-abc-5d8f"
    assert line["commit"] == "1a2b3c4d5e6f"
    assert line["level"] == "info"


def test_stdlib_logging_is_routed_through_the_same_pipeline() -> None:
    """A stdlib logger's line has the same JSON shape, including ``extra`` fields."""
    stream = io.StringIO()
    configure_logging(environ=RENDER_ENV, stream=stream)
    logging.getLogger("uvicorn.error").warning("slow", extra={"path": "/x"})
    (line,) = lines(stream)
    assert line["event"] == "slow"
    assert line["logger"] == "uvicorn.error"
    assert line["path"] == "/x"
    assert line["service"] == "shop-web"
    assert "request_id" not in line


def test_console_in_development() -> None:
    """Locally, lines are human-readable, not JSON."""
    stream = io.StringIO()
    configure_logging(environ={"APP_ENV": "development"}, stream=stream)
    get_logger("app").info("hello", user="ada")
    text = stream.getvalue()
    assert "hello" in text and "user=ada" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_calling_twice_replaces_instead_of_stacking() -> None:
    """A second call leaves exactly one renderkit handler: no duplicated lines."""
    stream = io.StringIO()
    configure_logging(environ=RENDER_ENV, stream=io.StringIO())
    configure_logging(environ=RENDER_ENV, stream=stream)
    logging.getLogger("x").warning("once")
    assert len(lines(stream)) == 1


def test_level_from_env_and_bad_level_names_the_variable() -> None:
    """LOG_LEVEL filters lines; an unknown level raises naming LOG_LEVEL."""
    stream = io.StringIO()
    configure_logging(environ={**RENDER_ENV, "LOG_LEVEL": "warning"}, stream=stream)
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        configure_logging(environ={"LOG_LEVEL": "loud"})


def test_exceptions_are_rendered_in_json() -> None:
    """``logger.exception`` puts the traceback in the JSON line, not on stray lines."""
    stream = io.StringIO()
    configure_logging(environ=RENDER_ENV, stream=stream)
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    (line,) = lines(stream)
    assert "RuntimeError: kaput" in str(line["exception"])


def test_processor_adds_request_id_only_when_set() -> None:
    """The standalone processor is a no-op outside a request."""
    assert add_correlation_id(None, "info", {}) == {}
    token = correlation_id_var.set("abc")
    try:
        assert add_correlation_id(None, "info", {}) == {"request_id": "abc"}
    finally:
        correlation_id_var.reset(token)
