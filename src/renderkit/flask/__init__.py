"""Flask integration: ``RenderKit(app)`` or ``RenderKit().init_app(app)`` wires renderkit in.

Concern-specific Flask pieces live in private modules here; this package re-exports them.
"""

from __future__ import annotations

from renderkit.flask._ext import RenderKit, RenderKitState
from renderkit.flask._health import health_blueprint
from renderkit.flask._ratelimit import limit
from renderkit.flask._sessions import RenderKitSessionInterface

__all__ = [
    "RenderKit",
    "RenderKitSessionInterface",
    "RenderKitState",
    "health_blueprint",
    "limit",
]
