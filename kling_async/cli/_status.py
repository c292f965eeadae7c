"""``kling-async status OUT``: a run folder's state, read from its manifest and journal.

Lines by status (``manifest.jsonl``), tasks by journal state, units charged (by every run so
far: the journal's results; by the last run: ``runs.jsonl``, one line a run appends when it
ends), what is still running (created on the server, followed on resume), and the command that
resumes. Nothing is sent to any server. Exit status 0 whatever the run's state; 2 when ``OUT``
is not a run folder. ``--json`` prints the same as one JSON object for scripts.

Every text here comes from a campaign file, a server or a file anyone could have edited (keys,
task ids, statuses, commands), so it is printed through :func:`._text.safe`: control
characters escaped, secrets masked, each text cut at :data:`._text.MAX_SHOWN` characters.
"""

from __future__ import annotations

import json
import shlex
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from .._engine._stats import ClientStats
from .._journal import Journal, JournalEntry
from ._budget import campaign_units
from ._files import read_manifest
from ._text import safe

__all__ = ["RUNS_NAME", "print_status", "record_run", "run_status"]

RUNS_NAME = "runs.jsonl"
JOURNAL_NAME = "journal.sqlite"
_RUNNING_STATES = ("intent", "created")  # a create reached (or may have reached) the server
_RUNNING_SHOWN = 20  # at most this many running lines are listed in the text output


def record_run(
    out: Path, *, started_at: float, outcome: str, stats: ClientStats, resume_command: str | None
) -> None:
    """Append one run's record to ``out/runs.jsonl``: ``started_at`` / ``ended_at`` (epoch
    seconds), ``outcome`` (``"done"`` or ``"interrupted"``), the ``units`` it was charged and
    the ``tasks_created`` (from the client's ``stats``), and the command that resumes."""
    record = {
        "started_at": started_at,
        "ended_at": time.time(),
        "outcome": outcome,
        "units": str(stats.units_spent),
        "tasks_created": stats.tasks_created,
        "resume_command": resume_command,
    }
    with (out / RUNS_NAME).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _runs(out: Path) -> list[dict[str, Any]]:
    path = out / RUNS_NAME
    return list(read_manifest(path)) if path.is_file() else []


async def _entries(journal: Path) -> list[JournalEntry]:
    async with Journal(journal) as opened:
        return await opened.entries()


def run_status(out: Path) -> dict[str, Any]:
    """The state of run folder ``out`` as a JSON-ready dict: ``lines`` (count per manifest
    status), ``journal`` (count per journal state), ``units`` (``all_runs``, ``last_run``;
    decimal strings or None), ``running`` (``line``, ``key``, ``task_id`` of each task created
    but not finished), ``last_run`` (its record) and ``resume_command`` (None when every line
    succeeded).

    Raises:
        FileNotFoundError: ``out`` has neither a manifest nor a journal.
    """
    manifest, journal = out / "manifest.jsonl", out / JOURNAL_NAME
    if not manifest.is_file() and not journal.is_file():
        raise FileNotFoundError(
            f"{out}: no manifest.jsonl or journal.sqlite (is it the --out folder of a run?)"
        )
    rows = list(read_manifest(manifest)) if manifest.is_file() else []
    entries = anyio.run(_entries, journal) if journal.is_file() else []
    line_of = {
        key: row.get("line") for row in rows if isinstance(key := row.get("external_task_id"), str)
    }
    running = [
        {"line": line_of.get(e.external_task_id), "key": e.external_task_id, "task_id": e.task_id}
        for e in entries
        if e.state in _RUNNING_STATES
    ]
    runs = _runs(out)
    last = runs[-1] if runs else None
    lines = Counter(str(row.get("status")) for row in rows)
    unfinished = running or any(status != "succeeded" for status in lines)
    resume = None
    if unfinished:
        recorded = (last or {}).get("resume_command")
        resume = (recorded if isinstance(recorded, str) else None) or (
            f"kling-async run CAMPAIGN.jsonl --out {shlex.quote(str(out))} --resume"
        )
    return {
        "out": str(out),
        "lines": dict(sorted(lines.items())),
        "journal": dict(sorted(Counter(e.state for e in entries).items())),
        "units": {
            "all_runs": str(campaign_units(entries)),
            "last_run": (last or {}).get("units"),
        },
        "running": running,
        "runs": len(runs),
        "last_run": last,
        "resume_command": resume,
    }


def _when(epoch: Any) -> str:
    """An epoch-seconds time of a run record as UTC text; ``?`` when it is not one."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def print_status(out: Path, *, as_json: bool = False, write: Callable[[str], None] = print) -> int:
    """Print the state of run folder ``out`` (:func:`run_status`) and return 0.

    Raises:
        FileNotFoundError: ``out`` is not a run folder (the command line exits 2).
    """
    state = run_status(out)
    if as_json:
        write(json.dumps(state, ensure_ascii=True))
        return 0
    lines = state["lines"]
    total = sum(lines.values())
    counts = ", ".join(f"{n} {safe(status)}" for status, n in lines.items()) or "none yet"
    write(f"{safe(out)}: {total} lines in the manifest ({counts})")
    if state["journal"]:
        states = ", ".join(f"{n} {safe(status)}" for status, n in state["journal"].items())
        write(f"journal: {sum(state['journal'].values())} tasks ({states})")
    units = state["units"]
    last = state["last_run"]
    text = f"units charged: {units['all_runs']} by all runs so far"
    if last is not None:
        when = _when(last.get("ended_at"))
        text += (
            f"; {safe(units['last_run'])} by the last run (ended "
            f"{safe(last.get('outcome', '?'))} at {when}; {state['runs']} run(s) so far)"
        )
    write(text)
    running = state["running"]
    if running:
        write(f"still running on the server ({len(running)}; followed on resume):")
        for item in running[:_RUNNING_SHOWN]:
            line = item["line"] if item["line"] is not None else "?"
            write(f"  line {safe(line)}: {safe(item['key'])} task {safe(item['task_id'])}")
        if len(running) > _RUNNING_SHOWN:
            write(f"  ... and {len(running) - _RUNNING_SHOWN} more (--json lists all)")
    if state["resume_command"]:
        write(f"resume with: {safe(state['resume_command'])}")
    else:
        write("every line succeeded; nothing to resume")
    return 0
