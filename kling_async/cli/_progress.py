"""The progress line of ``kling-async run`` on a terminal.

One line that keeps what matters visible at 80 columns and wider: the elapsed time, lines done
of the total, units charged and the quota slots in use (held of capacity, summed over the pools
the run has used) are never cut; the bar and the outcome counts share the width that is left
(the counts end in "…" on a narrow terminal). Every part is plain numbers (no untrusted text).
"""

from __future__ import annotations

from typing import TypedDict

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

from .._engine._stats import ClientStats

__all__ = ["ProgressFields", "progress_fields", "run_progress"]


class ProgressFields(TypedDict):
    """The fields of the run's progress task (keyword arguments of ``add_task``/``update``)."""

    money: str
    counts: str


def run_progress(console: Console) -> Progress:
    """The run's progress display (disabled when ``console`` is not a terminal); its task
    takes the fields :func:`progress_fields` returns."""
    return Progress(
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=1)),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[money]}", table_column=Column(no_wrap=True)),
        TextColumn(
            "{task.fields[counts]}",
            table_column=Column(no_wrap=True, overflow="ellipsis", ratio=3),
        ),
        console=console,
        disable=not console.is_terminal,
        expand=True,
    )


def progress_fields(
    stats: ClientStats | None, succeeded: int = 0, failed: int = 0, invalid: int = 0
) -> ProgressFields:
    """``money``: ``· 192.5 units · quota 8/14``; ``counts``: ``· ok 10 · failed 1 · invalid 2``
    (zero failed and invalid counts left out); empty before the first outcome."""
    if stats is None:
        return {"money": "", "counts": ""}
    held = sum(pool.held for pool in stats.pools.values())
    capacity = sum(pool.capacity for pool in stats.pools.values())
    counts = [f"ok {succeeded}"]
    counts += [f"{name} {n}" for name, n in (("failed", failed), ("invalid", invalid)) if n]
    return {
        "money": f"· {stats.units_spent} units · quota {held}/{capacity}",
        "counts": "· " + " · ".join(counts),
    }
