"""Per-request context shared across layers without importing each other.

``renderkit.correlation`` sets the request id here; ``renderkit.logging``, slow-query and
slow-request logs read it. A ContextVar keeps concurrent asyncio tasks and WSGI threads apart.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["correlation_id_var", "failed_request", "note_failed_request"]

correlation_id_var: ContextVar[str | None] = ContextVar("renderkit_correlation_id", default=None)


_FAILED_REQUEST = "__renderkit_request__"


def note_failed_request(exc: BaseException, facts: dict[str, object]) -> None:
    """Remember which request an exception escaped from, for the log line the server writes.

    The server logs an unhandled exception after the middleware has left the request's
    context, so the request id travels on the exception itself.
    """
    try:
        setattr(exc, _FAILED_REQUEST, facts)
    except (AttributeError, TypeError):  # an exception type with __slots__ and no __dict__
        pass


def failed_request(exc: BaseException) -> dict[str, object] | None:
    """The facts :func:`note_failed_request` stored on ``exc`` (or its cause), else ``None``."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        facts = getattr(current, _FAILED_REQUEST, None)
        if isinstance(facts, dict):
            return facts
        current = current.__cause__ or current.__context__
        seen += 1
    return None
