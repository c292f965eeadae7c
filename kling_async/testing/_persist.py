"""The sandbox's state file: accepted tasks kept on disk so a new sandbox process serves them.

A task's whole life is fixed when it is accepted (its start, end, outcome and outputs), so one
JSON line written at each create is all a later process needs: it reloads the tasks with their
wall-clock times, answers queries and lookups for them, keeps their slots held until their
original end instant, and serves their result files. The first line holds what result URLs
depend on (the URL-signing secret and the port), so a URL handed out before a restart still
works after it when the port can be bound again.

Lines are appended and flushed one at a time, so a process killed at any instant leaves every
line but possibly a torn last one, which loading skips.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from ._state import Task

__all__ = ["StateFile"]

_HEADER = "kling_async.testing state"


@attrs.define
class StateFile:
    """One sandbox's state file (JSON Lines): a header, then one accepted task per line."""

    path: Path
    secret: bytes
    port: int | None
    tasks: list[dict[str, Any]]
    _fh: IO[str] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> StateFile:
        """Read ``path`` if it exists (else start it with a new secret).

        Raises:
            ValueError: the file is not a sandbox state file.
            OSError: it cannot be read or written.
        """
        path = Path(path)
        secret, port, tasks = os.urandom(32), None, []
        if path.exists() and path.stat().st_size:
            lines = _lines(path)
            header = next(lines, None)
            if not isinstance(header, dict) or header.get("format") != _HEADER:
                raise ValueError(f"state_file: {path} is not a sandbox state file")
            secret, port = bytes.fromhex(header["secret"]), header.get("port")
            tasks = [line for line in lines if isinstance(line, dict)]
            state = cls(path, secret, port, tasks)
            state._fh = path.open("a", encoding="utf-8")
            return state
        state = cls(path, secret, port, tasks)
        state._fh = path.open("w", encoding="utf-8")
        state._write({"format": _HEADER, "secret": secret.hex(), "port": None})
        return state

    def remember_port(self, port: int) -> None:
        """Record the port this process serves on (rewrites the header when it changed)."""
        if port == self.port:
            return
        self.port = port
        self.close()
        header = {"format": _HEADER, "secret": self.secret.hex(), "port": port}
        rest = [json.dumps(task) for task in self.tasks]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in [json.dumps(header), *rest]), "utf-8")
        tmp.replace(self.path)
        self._fh = self.path.open("a", encoding="utf-8")

    def append(self, task: Task, offset: float) -> None:
        """Keep one accepted task, times as wall-clock epoch seconds (``monotonic + offset``)."""
        record = attrs.asdict(task)
        record["start"] = task.start + offset
        record["end"] = task.end + offset
        self.tasks.append(record)
        self._write(record)

    def restored(self, offset: float) -> Iterator[Task]:
        """The kept tasks, times back on this process's monotonic clock (``wall - offset``)."""
        for record in self.tasks:
            fields = dict(record)
            fields["start"] -= offset
            fields["end"] -= offset
            yield Task(**fields)

    def close(self) -> None:
        """Close the file (idempotent)."""
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()

    def _write(self, record: dict[str, Any]) -> None:
        assert self._fh is not None
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()


def _lines(path: Path) -> Iterator[Any]:
    with path.open(encoding="utf-8") as fh:
        for text in fh:
            try:
                yield json.loads(text)
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write
