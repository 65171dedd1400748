"""The ASGI lifespan and stream helpers of :class:`ShutdownCoordinator` (a mixin)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from renderkit.shutdown._event import ShutdownEvent
    from renderkit.shutdown._hooks import ShutdownSummary

__all__ = ["LifespanMixin"]

T = TypeVar("T")


class LifespanMixin:
    """Lifespan wiring built on the coordinator's public methods only."""

    shutting_down: ShutdownEvent

    if TYPE_CHECKING:  # provided by ShutdownCoordinator, which this mixin is part of

        @property
        def phase(self) -> str: ...

        def reset(self) -> None: ...

        def install_signal_handlers(self) -> bool: ...

        def uninstall_signal_handlers(self) -> None: ...

        async def shutdown(self, reason: str = "lifespan") -> ShutdownSummary: ...

    # --- lifespan -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """ASGI lifespan for ``Starlette(lifespan=coordinator.lifespan)``: installs the signal
        handlers at start-up; at shutdown drains and runs the hooks."""
        if self.phase == "stopped":
            self.reset()  # a new serving cycle (a test suite starting the app again)
        self.install_signal_handlers()
        try:
            yield
        finally:
            try:
                await self.shutdown("lifespan shutdown")
            finally:
                self.uninstall_signal_handlers()

    def wrap_lifespan(
        self, inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]
    ) -> Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]:
        """Compose with the app's own lifespan: ours outside, so its shutdown code runs after
        the drain and before our hooks. Its yielded state passes through."""

        @contextlib.asynccontextmanager
        async def combined(app: Any) -> AsyncIterator[Any]:
            async with self.lifespan(app), inner(app) as state:
                yield state

        return combined

    # --- streams --------------------------------------------------------------------------------

    async def until_shutdown(self, source: AsyncIterable[T]) -> AsyncIterator[T]:
        """Yield from ``source`` until shutdown begins, then stop (for SSE generators)."""
        iterator = aiter(source)
        stop = asyncio.ensure_future(self.shutting_down.wait())
        try:
            while not self.shutting_down.is_set():
                step = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
                    return
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            stop.cancel()
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
