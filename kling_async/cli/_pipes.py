"""Console streams that a closed pipe cannot break: ``kling-async run … | head -2`` still runs
every line to the end.

A reader that goes away (``head``, a closed terminal, a killed ``tee``) makes every later write to
stdout or stderr fail with ``BrokenPipeError`` (Python ignores ``SIGPIPE``). The command line's
output is a courtesy; the run's record is the manifest and the journal. So while
:func:`tolerant_streams` is in force, ``sys.stdout`` and ``sys.stderr`` write through to the
original streams and, the first time one finds its pipe closed, point that file descriptor at
``/dev/null`` (as the Python docs advise for ``SIGPIPE``): the rest of the output is dropped,
nothing raises, and the interpreter's own flush at exit finds nothing to complain about.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["safe_os_write", "tolerant_streams"]


class _TolerantStream:
    """A text stream that drops its output once its reader has gone (see the module)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            written = self._stream.write(text)
            self._stream.flush()  # find a closed pipe now, not at exit
        except OSError as exc:
            if not _closed_pipe(exc):
                raise
            self._drop()
            return len(text)
        return written

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            if not _closed_pipe(exc):
                raise
            self._drop()

    def _drop(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()  # what is still buffered goes to /dev/null

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


def _closed_pipe(exc: OSError) -> bool:
    return isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE


@contextlib.contextmanager
def tolerant_streams() -> Iterator[None]:
    """Within the block, ``sys.stdout`` and ``sys.stderr`` drop output once their reader has
    gone instead of raising ``BrokenPipeError``; the original streams are put back after."""
    saved = sys.stdout, sys.stderr
    sys.stdout = _TolerantStream(saved[0])
    sys.stderr = _TolerantStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def safe_os_write(fd: int, data: bytes) -> None:
    """``os.write`` for a signal handler: a closed pipe drops the bytes."""
    with contextlib.suppress(OSError):
        os.write(fd, data)
