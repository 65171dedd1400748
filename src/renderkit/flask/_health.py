"""Flask side of renderkit.health: a blueprint serving the Health registry's endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from renderkit._optional import require
from renderkit.health import EndpointKind, Health
from renderkit.wsgi._health import health_answer

if TYPE_CHECKING:
    from flask import Blueprint, Flask, Response

__all__ = ["health_blueprint", "init_health"]


def health_blueprint(
    health: Health,
    *,
    url_prefix: str = "/health",
    name: str = "renderkit_health",
    per_check: bool = False,
) -> Blueprint:
    """A blueprint answering ``url_prefix`` plus ``/live``, ``/ready`` and ``/instance``
    (``/diagnostics`` when the registry has ``diagnostics``; ``/<check>`` with ``per_check``).

    ``app.register_blueprint(health_blueprint(health))``. Checks run through
    :meth:`Health.run_sync` (cached, one run at a time across threads).
    """
    flask = require("flask", extra="flask", feature="renderkit.flask.health_blueprint")
    if not isinstance(health, Health):
        raise TypeError(
            f"health_blueprint(health=...) needs a renderkit.health.Health, got "
            f"{type(health).__name__}"
        )
    if not url_prefix.startswith("/") or url_prefix.endswith("/"):
        raise ValueError(
            f"health_blueprint(url_prefix={url_prefix!r}): start with '/' and do not end with '/'"
        )
    blueprint: Blueprint = flask.Blueprint(name, __name__, url_prefix=url_prefix)

    def view(kind: EndpointKind) -> Any:
        def answer(check: str | None = None) -> Response:
            from flask import Response, request

            status, headers, body = health_answer(health, kind, request.environ, check)
            response = Response(body, status=status, headers=headers)
            if request.method == "HEAD":  # Flask would drop the length of an empty body
                response.headers["Content-Length"] = dict(headers)["content-length"]
            return response

        answer.__name__ = f"health_{kind}"
        return answer

    for path, kind in health.paths(url_prefix).items():
        rule = path[len(url_prefix) :]
        blueprint.add_url_rule(rule, endpoint=kind, view_func=view(kind), methods=["GET", "HEAD"])
    if per_check:
        blueprint.add_url_rule(
            "/<check>", endpoint="check", view_func=view("check"), methods=["GET", "HEAD"]
        )
    return blueprint


def init_health(app: Flask, health: Any, extras: dict[str, Any]) -> None:
    """Wire ``RenderKit(health=...)``: a :class:`Health` (served under /health) or True (a new
    ``Health.from_env()`` with the system checks)."""
    if health is True:
        health = Health.from_env()
        health.add_system_checks()
    if not isinstance(health, Health):
        raise TypeError(
            "RenderKit(health=...) takes a renderkit.health.Health, True or None, got "
            f"{type(health).__name__}"
        )
    app.register_blueprint(health_blueprint(health))
    extras["health"] = health
