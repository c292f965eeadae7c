"""The files of a run folder that more than one command reads: the manifest (read with a
bound on each line) and where the gallery page goes. Light on purpose: ``run`` imports it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["GALLERY_NAME", "MANIFEST_LINE_LIMIT", "gallery_hint", "read_manifest"]

GALLERY_NAME = "index.html"
# A manifest line longer than this (bytes) is not read: a prompt is at most 2,500 characters.
MANIFEST_LINE_LIMIT = 1 << 20


def read_manifest(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a ``manifest.jsonl`` (or of any JSON Lines file of objects the run folder
    holds, e.g. ``runs.jsonl``), in file order. A line over :data:`MANIFEST_LINE_LIMIT` bytes,
    one that is not a JSON object, or one nested past the parser's recursion limit is skipped.

    Raises:
        OSError: the file cannot be read.
    """
    with path.open("rb") as fh:
        while line := fh.readline(MANIFEST_LINE_LIMIT + 1):
            if len(line) > MANIFEST_LINE_LIMIT:
                while line and not line.endswith(b"\n"):  # skip the rest of the long line
                    line = fh.readline(MANIFEST_LINE_LIMIT)
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(row, dict):
                yield row


def gallery_hint(out: Path) -> str:
    """What ``run`` prints at its end about the gallery: the page's path when one exists (and
    the command that refreshes it), else the command that makes it."""
    command = f"kling-async gallery {shlex.quote(str(out))}"
    page = out / GALLERY_NAME
    if page.exists():
        return f"gallery: {page} (refresh with: {command})"
    return f"look at the results in a browser: {command}"
