"""Flask side of renderkit.health: a blueprint serving the Health registry's endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from renderkit._optional import require
from renderkit.health import EndpointKind, Health
from renderkit.wsgi._health import _facts

if TYPE_CHECKING:
    from flask import Blueprint, Flask, Response

__all__ = ["health_blueprint", "init_health"]


def health_blueprint(
    health: Health, *, url_prefix: str = "/health", name: str = "renderkit_health"
) -> Blueprint:
    """A blueprint answering ``url_prefix`` plus ``/live``, ``/ready`` and ``/instance``.

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
        def answer() -> Response:
            from flask import Response, request

            code, body, content_type = health.respond_sync(kind, _facts(request.environ))
            return Response(
                body, status=code, content_type=content_type.decode(),
                headers={"Cache-Control": "no-store"},
            )  # fmt: skip

        answer.__name__ = f"health_{kind}"
        return answer

    rules: tuple[tuple[str, EndpointKind], ...] = (
        ("", "health"),
        ("/live", "live"),
        ("/ready", "ready"),
        ("/instance", "instance"),
    )
    for rule, kind in rules:
        blueprint.add_url_rule(rule, endpoint=kind, view_func=view(kind), methods=["GET", "HEAD"])
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
