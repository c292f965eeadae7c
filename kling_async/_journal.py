"""A durable journal of every request's life, in SQLite.

One row per ``external_task_id``. The intent is recorded *before* the create (so after a crash
we know a create may have reached the server), the ``task_id`` right after it, the final result
when the task ends, and the saved files after download. Re-running with the same journal
re-attaches to in-flight tasks, reuses finished results, and submits only what never reached
the server.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed row survives the process being
killed. All calls go through one worker thread (``anyio.to_thread`` with a capacity limiter of
1), so the event loop never blocks on disk. ``sqlite3`` errors are translated to
:class:`JournalError` here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import attrs

from ._convert import converter
from ._errors import JournalConflictError, JournalError
from ._models import Request, TaskResult

__all__ = [
    "Journal",
    "JournalConflictError",
    "JournalEntry",
    "JournalError",
    "request_fingerprint",
]

T = TypeVar("T")

State = Literal["intent", "created", "finished", "saved"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    external_task_id TEXT PRIMARY KEY,
    fingerprint      TEXT NOT NULL,
    kind             TEXT NOT NULL,
    model            TEXT NOT NULL,
    state            TEXT NOT NULL,
    task_id          TEXT,
    cost             INTEGER,
    result           TEXT,
    error            TEXT,
    files            TEXT,
    updated_at       REAL NOT NULL
);
"""


@attrs.frozen(kw_only=True)
class JournalEntry:
    """What the journal knows of one request.

    Attributes:
        external_task_id: The request's id (the key).
        fingerprint: Hash of the request's content, to detect a changed request.
        state: ``"intent"`` (a create may have been sent), ``"created"`` (task id known),
            ``"finished"`` (final result known) or ``"saved"`` (files downloaded).
        task_id: The server's id, once known.
        result: The final result, once known.
        error: The failure text of a finished-but-failed request.
        files: Paths of the saved files.
    """

    external_task_id: str
    fingerprint: str
    kind: str
    model: str
    state: State
    task_id: str | None = None
    cost: int | None = None
    result: TaskResult | None = None
    error: str | None = None
    files: tuple[str, ...] = ()


def request_fingerprint(request: Request) -> str:
    """A stable SHA-256 of a request's content (its ``external_task_id`` excluded).

    Local files are fingerprinted by path, size and modification time, not by reading them.
    """

    def default(value: object) -> object:
        if isinstance(value, Path):
            try:
                st = value.stat()
                return {"path": str(value.resolve()), "size": st.st_size, "mtime": st.st_mtime}
            except OSError:
                return {"path": str(value)}
        if isinstance(value, bytes):
            return {"sha256": hashlib.sha256(value).hexdigest()}
        if attrs.has(type(value)):
            return attrs.asdict(value, recurse=False)  # type: ignore[arg-type]
        raise TypeError(type(value).__name__)

    fields = attrs.asdict(request, recurse=False)
    fields.pop("external_task_id", None)
    text = json.dumps(fields, default=default, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.define
class Journal:
    """The SQLite journal at ``path`` (created if missing). Open with ``await journal.open()``
    or ``async with``; close with ``await journal.aclose()``.

    Raises:
        JournalError: the file cannot be opened or is not a journal.
    """

    path: Path
    _db: sqlite3.Connection | None = attrs.field(default=None, repr=False)
    _limiter: anyio.CapacityLimiter = attrs.field(factory=lambda: anyio.CapacityLimiter(1))

    async def __aenter__(self) -> Journal:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open (and create) the database."""

        def _open() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                _check(db)
            except BaseException:
                db.close()
                raise
            return db

        self._db = await self._run(_open)

    async def aclose(self) -> None:
        """Close the database. Idempotent."""
        db, self._db = self._db, None
        if db is not None:
            await self._run(db.close)

    async def get(self, external_task_id: str) -> JournalEntry | None:
        """The entry of ``external_task_id``, or ``None``."""
        row = await self._query(
            "SELECT external_task_id, fingerprint, kind, model, state, task_id, cost, result, "
            "error, files FROM tasks WHERE external_task_id = ?",
            (external_task_id,),
        )
        return _entry(row[0]) if row else None

    async def entries(self) -> list[JournalEntry]:
        """Every entry, oldest first."""
        rows = await self._query(
            "SELECT external_task_id, fingerprint, kind, model, state, task_id, cost, result, "
            "error, files FROM tasks ORDER BY rowid",
            (),
        )
        return [_entry(r) for r in rows]

    async def record_intent(
        self, external_task_id: str, fingerprint: str, kind: str, model: str
    ) -> None:
        """Record that a create is about to be sent (before it is sent)."""
        await self._execute(
            "INSERT INTO tasks (external_task_id, fingerprint, kind, model, state, updated_at) "
            "VALUES (?, ?, ?, ?, 'intent', ?) ON CONFLICT(external_task_id) DO NOTHING",
            (external_task_id, fingerprint, kind, model, time.time()),
        )

    async def record_created(self, external_task_id: str, task_id: str, cost: int) -> None:
        """Record the server's ``task_id`` for a create."""
        await self._execute(
            "UPDATE tasks SET state = 'created', task_id = ?, cost = ?, updated_at = ? "
            "WHERE external_task_id = ? AND state = 'intent'",
            (task_id, cost, time.time(), external_task_id),
        )

    async def record_finished(
        self, external_task_id: str, result: TaskResult | None, error: str | None
    ) -> None:
        """Record a request's final result (or failure text)."""
        payload = json.dumps(converter.unstructure(result)) if result is not None else None
        await self._execute(
            "UPDATE tasks SET state = 'finished', result = ?, error = ?, "
            "task_id = COALESCE(task_id, ?), updated_at = ? WHERE external_task_id = ?",
            (payload, error, result.task_id if result else None, time.time(), external_task_id),
        )

    async def record_saved(self, external_task_id: str, files: list[str]) -> None:
        """Record the files a finished request's outputs were saved to."""
        await self._execute(
            "UPDATE tasks SET state = 'saved', files = ?, updated_at = ? "
            "WHERE external_task_id = ?",
            (json.dumps(files), time.time(), external_task_id),
        )

    async def forget(self, external_task_id: str) -> None:
        """Drop an ``intent`` entry whose create certainly did not reach the server."""
        await self._execute(
            "DELETE FROM tasks WHERE external_task_id = ? AND state = 'intent'",
            (external_task_id,),
        )

    # -- plumbing ----------------------------------------------------------------------------

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        db = self._require()
        await self._run(lambda: db.execute(sql, params))

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        db = self._require()
        return await self._run(lambda: db.execute(sql, params).fetchall())

    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the journal is not open")
        return self._db

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: {exc}") from exc


def _check(db: sqlite3.Connection) -> None:
    """Refuse, at open, a file that is a database but not a sound journal (damaged pages, or a
    ``tasks`` table of another shape), rather than failing half-way through a run."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check(3)").fetchall()]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError(f"the database is damaged ({'; '.join(problems)})")
    db.execute(
        "SELECT external_task_id, fingerprint, kind, model, state, task_id, cost, result, "
        "error, files, updated_at FROM tasks LIMIT 0"
    )


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    ext, fingerprint, kind, model, state, task_id, cost, result, error, files = row
    return JournalEntry(
        external_task_id=ext,
        fingerprint=fingerprint,
        kind=kind,
        model=model,
        state=state,
        task_id=task_id,
        cost=cost,
        result=converter.structure(json.loads(result), TaskResult) if result else None,
        error=error,
        files=tuple(json.loads(files)) if files else (),
    )
