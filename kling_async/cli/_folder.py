"""The run's output folder: one ``kling-async run`` in it at a time, and what to do when its
journal cannot be used.

A journal that is damaged, is not a journal, or cannot be read stops the run before anything is
sent, with one line that says to move it aside: the next run then finds the tasks it knew of by
their ``external_task_id`` (a create refused as a duplicate id is followed, not failed).

Two runs on one ``--out`` would share a journal, a manifest and the lines' ``external_task_id``
values: the second would see every create refused as a duplicate and overwrite the first's
manifest. So a run holds an exclusive ``flock`` on ``DIR/.kling-async.lock`` for as long as it
lives, with its PID written inside; a second run finds the lock held and stops at once, naming
that PID. The kernel releases the lock when the holder ends in any way (even ``SIGKILL``), so a
crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._errors import FolderBusy
from ._files import read_manifest

__all__ = [
    "LOCK_NAME",
    "FolderBusy",
    "better_row",
    "good_rows",
    "hold_folder",
    "journal_hint",
    "journal_states",
]

LOCK_NAME = ".kling-async.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; the folder is not locked there
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def hold_folder(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s run lock for the block (the folder must exist).

    Raises:
        FolderBusy: another process holds it (nothing waits).
        OSError: the lock file cannot be opened.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's PID stays
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(folder, _pid(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def journal_hint(error: Exception, journal: Path, *, can_look_up: bool) -> str:
    """One line for a journal the run cannot use: the error, and how to go on.

    Args:
        error: The journal's error (it names the file).
        journal: The journal's path.
        can_look_up: Whether the wire API finds a task by its ``external_task_id``.
    """
    aside = shlex.join(["mv", str(journal), f"{journal}.damaged"])
    if can_look_up:
        then = (
            "then run the same command again (without --resume): the tasks it knew of are found "
            "again by their external_task_id and followed, none is created twice"
        )
    else:
        then = (
            "then run again; this API cannot find a task by a client id, so lines an earlier "
            "run created would be created (and billed) again: leave them out of the campaign"
        )
    return f"{error}; move it aside ({aside}), {then}"


def good_rows(manifest: Path, out: Path) -> dict[int, dict[str, Any]]:
    """The rows of an earlier manifest worth keeping, by line: ``succeeded`` with every file
    still in ``out``. A later run of the same folder never replaces one with a worse row (a
    re-run without its journal once overwrote 60 good rows with failures). Unreadable lines
    are skipped (:func:`read_manifest`: each line is read with a size bound)."""
    kept: dict[int, dict[str, Any]] = {}
    try:
        rows = list(read_manifest(manifest))
    except OSError:
        return kept
    for row in rows:
        files, line = row.get("files"), row.get("line")
        good = (
            row.get("status") == "succeeded"
            and isinstance(line, int)
            and isinstance(row.get("external_task_id"), str)
            and isinstance(files, list)
            and files
            and all(isinstance(f, str) and (out / Path(f).name).is_file() for f in files)
        )
        if good:
            assert isinstance(line, int)
            kept[line] = row
    return kept


def better_row(new: dict[str, Any], earlier: dict[str, Any] | None) -> dict[str, Any]:
    """``new``, unless ``earlier`` is a good row (see :func:`good_rows`) of the same
    ``external_task_id`` and ``new`` did not succeed."""
    if (
        earlier is not None
        and new.get("status") != "succeeded"
        and earlier.get("external_task_id") == new.get("external_task_id")
    ):
        return earlier
    return new


def journal_states(journal: Path) -> dict[str, tuple[str, str | None]]:
    """``external_task_id`` → (state, task_id) read straight from the journal's SQLite file
    (no event loop: for a run that must end at once). ``{}`` when it cannot be read."""
    try:
        db = sqlite3.connect(f"{journal.as_uri()}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return {}
    try:
        found = db.execute("SELECT external_task_id, state, task_id FROM tasks").fetchall()
    except sqlite3.Error:
        return {}
    finally:
        db.close()
    return {key: (state, task_id) for key, state, task_id in found}
