"""Import an optional dependency at the point of use, with an install hint when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from renderkit.errors import MissingDependencyError


def require(module: str, *, extra: str, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``renderkit[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module.split(".")[0], extra, feature) from exc
