"""The rows of a run's ``manifest.jsonl``: one JSON object a campaign line, what each field
holds, and how a row is written.

A row: ``line`` (1-based line of the campaign file), ``task_id``, ``external_task_id``,
``status`` (``succeeded``, ``failed``, ``error``, ``download_failed``, ``outcome_unknown``,
``over_budget``, ``invalid``, ``running``, ``not_started``), ``files`` (names in the folder),
``error``, ``units`` (a decimal string), ``kind``, ``model``, ``prompt``, ``urls`` (the result's
URLs: images, series images, videos, in order) and ``urls_expire_at`` (ISO 8601, UTC: Kling
deletes results 30 days after the task).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._models import Request, TaskResult

__all__ = [
    "append_row",
    "describe_row",
    "new_row",
    "request_fields",
    "result_fields",
    "row_line",
    "unfinished_row",
]


def new_row(
    line: int,
    *,
    status: str,
    task_id: str | None = None,
    external_task_id: str | None = None,
    files: list[str] | None = None,
    error: str | None = None,
    units: Decimal | None = None,
) -> dict[str, Any]:
    """A row with every field of the manifest (those not given empty)."""
    return {
        "line": line,
        "task_id": task_id,
        "external_task_id": external_task_id,
        "status": status,
        "files": files or [],
        "error": error,
        "units": str(units) if units is not None else None,
        "kind": None,
        "model": None,
        "prompt": None,
        "urls": [],
        "urls_expire_at": None,
    }


def request_fields(request: Request) -> dict[str, Any]:
    """The manifest fields a line's request gives: its kind, model and prompt."""
    return {"kind": request.kind, "model": request.model_name, "prompt": request.prompt}


def result_fields(result: TaskResult | None) -> dict[str, Any]:
    """The manifest fields a result gives: its URLs (images, series images, videos, in order)
    and when they stop working (ISO 8601, UTC; Kling deletes results 30 days after the task)."""
    if result is None:
        return {}
    images = (*result.images, *result.series_images)
    expires = result.expires_at
    return {
        "urls": [image.url for image in images] + [video.url for video in result.videos],
        "urls_expire_at": expires.isoformat() if expires is not None else None,
    }


# One encoder for every row: json.dumps(ensure_ascii=False) would build one per call.
_to_json = json.JSONEncoder(ensure_ascii=False).encode


def describe_row(row: dict[str, Any]) -> str:
    """The line the run prints for a row off a terminal (untrusted text: print it with
    ``_text.say``)."""
    if row["status"] == "succeeded":
        return f"line {row['line']}: succeeded, {len(row['files'])} file(s)"
    return f"line {row['line']}: {row['status']}: {row['error']}"


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to the manifest at ``path`` as one JSON line."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(row_line(row))


def row_line(row: dict[str, Any]) -> str:
    """``row`` as one JSON line (UTF-8 text kept as is), ending in ``\\n``."""
    return _to_json(row) + "\n"


def unfinished_row(line: int, key: str, state: str | None, task_id: str | None) -> dict[str, Any]:
    """``running`` when the journal knows the task was (or may have been) created, else
    ``not_started``."""
    running = state in ("intent", "created", "finished")
    return new_row(
        line,
        task_id=task_id,
        external_task_id=key,
        status="running" if running else "not_started",
    )
