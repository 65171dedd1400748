"""Per-request context shared across layers without importing each other.

``renderkit.correlation`` sets the request id here; ``renderkit.logging``, slow-query and
slow-request logs read it. A ContextVar keeps concurrent asyncio tasks and WSGI threads apart.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["correlation_id_var"]

correlation_id_var: ContextVar[str | None] = ContextVar("renderkit_correlation_id", default=None)
