"""``kling-async status OUT``: a run folder's state from its manifest, journal and run records,
checked on real runs (subprocesses of ``python -m kling_async run --sandbox``) stopped by their
deadline and then resumed."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from .conftest import QUICK_SANDBOX

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = [
    {"kind": "video", "model_name": "kling-v3-omni", "prompt": f"boat {i}", "aspect_ratio": "16:9"}
    for i in range(2)
]


def _kling(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    return subprocess.run(
        [sys.executable, "-m", "kling_async", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_status_after_a_stopped_run_and_after_its_resume(tmp_path: Path) -> None:
    """After a run stopped by its deadline, status (exit 0) lists the lines by status, the
    tasks still running on the server and the command that resumes; after the resume, every
    line succeeded, the units of all runs add up the manifest's and the last run's are its own."""
    campaign = tmp_path / "campaign.jsonl"
    campaign.write_text("".join(json.dumps(line) + "\n" for line in CAMPAIGN), encoding="utf-8")
    out = tmp_path / "out"
    # Sandbox videos take 3–8 s: a 0.5 s deadline stops the run with them created or waiting.
    first = _kling("run", str(campaign), "--out", str(out), "--sandbox", "--deadline", "0.5")
    assert first.returncode == 1, first.stderr[-2000:]

    proc = _kling("status", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    assert sum(state["lines"].values()) == 2 and "succeeded" not in state["lines"]
    created = {key for key, st in _journal_states(out) if st in ("intent", "created")}
    assert {item["key"] for item in state["running"]} == created
    assert all(item["line"] in (1, 2) for item in state["running"])
    assert state["resume_command"].endswith("--resume") and "--deadline" in state["resume_command"]
    assert state["runs"] == 1 and state["last_run"]["outcome"] == "done"

    text = _kling("status", str(out))
    assert text.returncode == 0
    assert f"{out}: 2 lines in the manifest" in text.stdout
    assert ("still running on the server" in text.stdout) == bool(created)
    assert "resume with: " in text.stdout

    second = _kling("run", str(campaign), "--out", str(out), "--sandbox", *QUICK_SANDBOX)
    assert second.returncode == 0, second.stderr[-2000:]
    state = json.loads(_kling("status", str(out), "--json").stdout)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert state["lines"] == {"succeeded": 2} and state["running"] == []
    assert state["resume_command"] is None and state["runs"] == 2
    assert Decimal(state["units"]["all_runs"]) == sum(Decimal(row["units"]) for row in rows) > 0
    assert Decimal(state["units"]["last_run"]) <= Decimal(state["units"]["all_runs"])
    assert "every line succeeded; nothing to resume" in _kling("status", str(out)).stdout


def _journal_states(out: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(out / "journal.sqlite")) as db:
        return list(db.execute("SELECT external_task_id, state FROM tasks"))


def test_status_of_a_folder_that_is_no_run_is_a_setup_error(tmp_path: Path) -> None:
    """``status`` on a folder no run wrote to exits 2 with one line naming the folder."""
    proc = _kling("status", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"kling-async: {tmp_path}: no manifest.jsonl or journal.sqlite "
        "(is it the --out folder of a run?)"
    ]


def test_status_without_a_folder_says_what_to_give() -> None:
    """``status`` with no folder exits 2 with one line asking for the run's --out folder."""
    proc = _kling("status")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "kling-async: status: give the --out folder of a run"
    ]
