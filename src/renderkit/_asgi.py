"""Small ASGI helpers shared by the HTTP edge middleware (private).

Starlette's ``ServerErrorMiddleware`` sits outside every user middleware and sends its 500
through the *outer* ``send``, so headers a user middleware adds by wrapping ``send`` never reach
that response. The edge middleware therefore answer an unhandled exception themselves when the
response has not started (through their own wrapped ``send``, so every edge header lands on it)
and then re-raise, so the server still logs the traceback and test clients still see it. They
step aside when the app renders errors its own way (:func:`answers_errors_itself`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "Message",
    "Receive",
    "Scope",
    "Send",
    "answers_errors_itself",
    "path_matcher",
    "send_error_response",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_500_BODY = b"Internal Server Error"


async def send_error_response(
    send: Send,
    status: int = 500,
    body: bytes = _500_BODY,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    """Send a complete small response (used before re-raising an unhandled exception)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def answers_errors_itself(scope: Scope) -> bool:
    """True when the Starlette/FastAPI app will render the 500 in a way the user chose: its
    debug traceback page (``debug=True``) or a handler registered for ``500`` / ``Exception``.

    The edge middleware then leave the 500 to the app (without their headers) instead of
    pre-empting it. Handlers can still read ``request.state.request_id``.
    """
    app = scope.get("app")
    if app is None:
        return False
    if getattr(app, "debug", False) is True:
        return True
    handlers = getattr(app, "exception_handlers", None)
    return isinstance(handlers, dict) and (500 in handlers or Exception in handlers)


def path_matcher(patterns: tuple[str, ...] | list[str]) -> Callable[[str], bool]:
    """Return a predicate for paths: ``"/x"`` matches exactly, ``"/x/*"`` matches ``/x/...``.

    Exact paths go in a set and prefixes in a tuple so each request costs one set lookup and
    one ``startswith`` call.
    """
    exact: set[str] = set()
    prefixes: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.startswith("/"):
            raise ValueError(
                f"path pattern {pattern!r} must start with '/' (use '/x' for one path or "
                "'/x/*' for everything below it)"
            )
        if pattern.endswith("/*"):
            prefixes.append(pattern[:-1])
            exact.add(pattern[:-2] or "/")
        else:
            exact.add(pattern)
    prefix_tuple = tuple(prefixes)

    def matches(path: str) -> bool:
        return path in exact or (bool(prefix_tuple) and path.startswith(prefix_tuple))

    return matches
