"""gunicorn server hooks: chain the coordinator's handlers per worker, run hooks at exit."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import Any

from renderkit.shutdown._coordinator import ShutdownCoordinator

__all__ = ["gunicorn_hooks"]

logger = logging.getLogger("renderkit.shutdown")


def _resolve_coordinator(target: ShutdownCoordinator | str) -> ShutdownCoordinator:
    if isinstance(target, ShutdownCoordinator):
        return target
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"gunicorn_hooks({target!r}): use a ShutdownCoordinator or 'module:attribute'"
        )
    found = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(found, ShutdownCoordinator):
        raise TypeError(
            f"gunicorn_hooks({target!r}): {module_name}.{attribute} is "
            f"{type(found).__name__}, not a ShutdownCoordinator"
        )
    return found


def gunicorn_hooks(coordinator: ShutdownCoordinator | str) -> dict[str, Callable[..., None]]:
    """Server hooks for a gunicorn config file: ``globals().update(gunicorn_hooks("app:co"))``.

    ``post_worker_init`` chains the coordinator's handlers in front of the worker's own (so
    readiness flips on SIGTERM), and ``worker_exit`` runs the cleanup hooks after gunicorn
    drained the worker. Pass the coordinator as ``"module:attribute"`` unless the app is
    preloaded: without ``--preload`` each worker imports the app, and so its own coordinator.
    Under ``uvicorn`` workers the ASGI lifespan already ran the hooks; ``worker_exit`` is then a
    no-op. gunicorn treats SIGINT and SIGQUIT as a *quick* shutdown (no drain).
    """

    def post_worker_init(worker: Any) -> None:
        _resolve_coordinator(coordinator).install_signal_handlers()

    def worker_exit(server: Any, worker: Any) -> None:
        target = _resolve_coordinator(coordinator)
        if target.phase == "stopped":
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            target.shutdown_sync("gunicorn worker exit")
        else:  # pragma: no cover - gunicorn calls worker_exit outside any running loop
            logger.error("worker_exit inside a running loop: use the ASGI lifespan instead")

    return {"post_worker_init": post_worker_init, "worker_exit": worker_exit}
