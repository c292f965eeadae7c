"""The command line's SIGINT / SIGTERM handling, one for ``run`` and ``work``: the first signal
stops creating, a second stops at once after the manifest and the summary."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator

from rich.console import Console

from ._pipes import safe_os_write
from ._run import Interrupt
from ._text import safe

__all__ = ["Signals"]


class Signals:
    """SIGINT / SIGTERM for a run: the first stops creating (on the event loop), a second
    exits at once, after writing the manifest and the summary from what is known. Two
    signals within :data:`SAME_PRESS` seconds are one press (``timeout`` and a terminal's
    process group deliver Ctrl-C to parent and child alike). Installed with
    ``signal.signal`` for the whole run, so no moment is left where a signal would raise
    ``KeyboardInterrupt`` somewhere nothing catches it."""

    SAME_PRESS = 0.5  # seconds

    def __init__(self, console: Console) -> None:
        self.console = console
        self.signum: int | None = None
        self.interrupt: Interrupt | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._first_at = 0.0

    def attach(self, interrupt: Interrupt, loop: asyncio.AbstractEventLoop) -> None:
        """Send the first signal to ``interrupt`` on ``loop`` (the run's event loop)."""
        self.interrupt, self._loop = interrupt, loop

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """SIGINT and SIGTERM handled by :meth:`handle` inside the block. A signal the
        process was started ignoring (a background job of a non-interactive shell ignores
        SIGINT) stays ignored, as Python itself leaves it. On leaving after an interrupt,
        the run is over and the process ends now: a further signal during the interpreter's
        shutdown is ignored instead of killing it half-way; otherwise the previous handlers
        come back."""
        previous = {
            number: signal.signal(number, self.handle)
            for number in (signal.SIGINT, signal.SIGTERM)
            if signal.getsignal(number) is not signal.SIG_IGN
        }
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, signal.SIG_IGN if self.signum is not None else handler)

    def handle(self, signum: int, frame: object) -> None:
        """The handler: see the class."""
        now = time.monotonic()
        if self.signum is not None:
            if now - self._first_at < self.SAME_PRESS:
                return  # the same press, delivered twice
            self._stop_at_once(signum)
        self.signum, self._first_at = signum, now
        if self._loop is None:  # before the run began: nothing to wind down
            raise KeyboardInterrupt
        self._loop.call_soon_threadsafe(self._stop, signum)

    def _stop_at_once(self, signum: int) -> None:
        safe_os_write(2, b"kling-async: stopped at once (second interrupt)\n")
        at_once = self.interrupt.at_once if self.interrupt is not None else None
        if at_once is not None:
            try:
                at_once()  # the manifest and the summary, from what is known now
            except Exception as exc:  # the exit must happen whatever went wrong
                safe_os_write(2, f"kling-async: manifest not written: {safe(exc)}\n".encode())
        os._exit(128 + signum)  # the journal's committed rows are safe on disk

    def _stop(self, signum: int) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        self.console.print(
            f"[yellow]{name}: creating nothing more; recording what runs[/yellow] "
            "(press Ctrl-C again to stop at once)"
        )
        assert self.interrupt is not None
        self.interrupt.stop(name)
