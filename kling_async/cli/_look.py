"""The command line's ``gallery`` and ``status`` subcommands: their arguments, and running
them (the modules that do the work are imported only when one runs, so ``run`` does not pay
for Jinja2 and Pillow at start).

``kling-async gallery OUT`` writes ``OUT/index.html`` (:mod:`._gallery`) and prints its
path; ``kling-async status OUT [--json]`` prints the run folder's state (:mod:`._status`).
Exit status 0; 2 with one line when ``OUT`` is not a run folder or its journal is unreadable.
The ``status`` parser stays open for more sources (e.g. ``--redis URL --queue NAME``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._journal import JournalError
from ._run import SetupError
from ._text import safe

__all__ = ["LOOK_COMMANDS", "add_look_commands", "run_look_command"]

LOOK_COMMANDS = ("gallery", "status")


def add_look_commands(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``gallery`` and ``status`` to the subcommands ``sub`` (``add_subparsers()``);
    return the ``status`` parser (a queue's status adds its options to it)."""
    gallery = sub.add_parser(
        "gallery",
        parents=[common],
        help="write OUT/index.html: one offline page showing every line of a run",
        description="Reads OUT/manifest.jsonl and the files beside it; thumbnails go to "
        "OUT/thumbs/. The page loads nothing from the network (open it from disk).",
    )
    gallery.add_argument("out", help="the --out folder of a run")
    status: argparse.ArgumentParser = sub.add_parser(
        "status",
        parents=[common],
        help="a run folder's state: lines by status, units charged, what is still running",
        description="Reads OUT/manifest.jsonl, OUT/journal.sqlite and OUT/runs.jsonl; sends "
        "nothing.",
    )
    # Optional, so that other sources of state (a shared queue: --redis URL --queue NAME)
    # can be added beside it.
    status.add_argument("out", nargs="?", help="the --out folder of a run")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    return status


def run_look_command(args: argparse.Namespace) -> int:
    """Run ``gallery`` or ``status``; return the exit status.

    Raises:
        SetupError: ``args.out`` is not a run folder, or its journal cannot be read.
    """
    if args.out is None:
        raise SetupError(f"{args.command}: give the --out folder of a run")
    out = Path(args.out)
    try:
        if args.command == "gallery":
            from ._gallery import write_gallery

            print(safe(write_gallery(out)))
            return 0
        from ._status import print_status

        return print_status(out, as_json=args.json)
    except (FileNotFoundError, JournalError) as exc:
        raise SetupError(str(exc)) from None
