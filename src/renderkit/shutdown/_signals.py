"""Chaining signal handlers: ours runs first, then the one that was in place (the server's)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["SignalChain", "SignalHandler"]

SignalHandler = Callable[[int, FrameType | None], Any] | int | None


class SignalChain:
    """Install ``handler`` for ``signals`` in front of whatever handles them now.

    :meth:`forward` later hands a signal to the handler found at install time, so the server's
    own graceful path still runs. Signals can only be handled in the main thread; elsewhere
    :meth:`install` does nothing and says so.
    """

    def __init__(
        self, signals: tuple[int, ...], handler: Callable[[int, FrameType | None], None]
    ) -> None:
        self.signals = tuple(signals)
        self._handler = handler
        self._previous: dict[int, SignalHandler] = {}
        self._lock = threading.Lock()
        self.installed = False

    def install(self) -> bool:
        """Chain our handler in front of each signal's; False off the main thread or when
        already installed."""
        if threading.current_thread() is not threading.main_thread():
            return False
        with self._lock:
            if self.installed:
                return False
            for sig in self.signals:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
            self.installed = True
        return True

    def uninstall(self) -> None:
        """Put back the handlers found at install time (where ours is still the one in place)."""
        if threading.current_thread() is not threading.main_thread():
            return
        with self._lock:
            if not self.installed:
                return
            for sig, previous in self._previous.items():
                if signal.getsignal(sig) == self._handler:
                    with contextlib.suppress(TypeError, ValueError):
                        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            self.installed = False

    def forward(self, signum: int, frame: FrameType | None) -> None:
        """Hand the signal to the handler that was in place before ours."""
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL and signum == signal.SIGINT:
            raise KeyboardInterrupt
        # SIG_DFL for SIGTERM would kill the process before cleanup and SIG_IGN means "ignore":
        # without a server handler the app awaits `shutting_down` and calls shutdown() itself.
