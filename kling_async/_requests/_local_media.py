"""Reading a request's local media files (reference images and videos) with bounds.

A path is opened without blocking (``O_NONBLOCK``: opening a FIFO waits for no writer), the
opened file is checked to be a regular file after following symlinks (a device such as
``/dev/zero``, a FIFO, a socket or a folder is refused before a byte is read) and no larger
than the kind's documented limit, and at most ``limit + 1`` bytes are read (a file that grows
while it is read is refused, not followed). The check is made on the opened file itself, so a
path swapped between the check and the read cannot slip through. Blocking: callers read in a
worker thread (the scheduler builds bodies with local files through ``anyio.to_thread``).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from .._errors import InvalidInputError

__all__ = ["check_regular_file", "read_local_file"]

_MB = 1024 * 1024


def check_regular_file(field: str, path: Path) -> None:
    """Check, without reading it and without blocking, that ``path`` (symlinks followed) is a
    regular file this process can open.

    Raises:
        OSError: it cannot be opened (``FileNotFoundError``, ``PermissionError``, ...;
            ``IsADirectoryError`` for a folder), as :func:`open` would raise.
        InvalidInputError: (a ``ValueError``) it is a device, FIFO or socket.
    """
    with _open_regular(field, path):
        pass


def read_local_file(field: str, path: Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit`` bytes.

    Args:
        field: The request field named in errors, e.g. ``"image_list[0]"``.
        path: The file.
        limit: Largest size allowed, in bytes (10 MB for a reference image, 200 MB for a
            reference video; https://kling.ai/document-api/api/image/3-0-omni/image-omni and
            https://kling.ai/document-api (omni-video)).

    Raises:
        InvalidInputError: (a ``ValueError``) the file cannot be opened, is not a regular file,
            or is over ``limit``; the message names the field, the path and the rule.
    """
    name = repr(str(path))  # repr: control characters in a path are shown escaped
    try:
        with _open_regular(field, path) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                raise _too_large(field, name, size, limit)
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InvalidInputError(f"{field}: {name} cannot be read ({exc.strerror or exc})") from exc
    if len(data) > limit:  # it grew after the check
        raise _too_large(field, name, len(data), limit)
    return data


def _open_regular(field: str, path: Path) -> BinaryIO:
    """``path`` opened for reading, once it is known to be a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    fh = os.fdopen(fd, "rb")
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise InvalidInputError(
                f"{field}: {str(path)!r} is not a regular file (a device, FIFO or socket is "
                "never read)"
            )
    except BaseException:
        fh.close()
        raise
    return fh


def _too_large(field: str, name: str, size: int, limit: int) -> InvalidInputError:
    return InvalidInputError(
        f"{field}: {name} is {_megabytes(size)}, at most {_megabytes(limit)} allowed"
    )


def _megabytes(size: int) -> str:
    return f"{size // _MB} MB" if size % _MB == 0 else f"{size / _MB:.1f} MB"
