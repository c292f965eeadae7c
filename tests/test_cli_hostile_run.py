"""A campaign run against what a careless user or a hostile place does to it: a closed pipe, a
failure every request shares, a second run on the same folder, a lost or corrupt journal, a
double Ctrl-C. Real ``python -m kling_async`` processes, real sockets, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = ROOT / "examples" / "campaign.jsonl"
LINES = sum(1 for line in CAMPAIGN.read_text().splitlines() if line.strip())
WAIT = 100  # seconds a process may take before the test gives up on it (a hang, not a speed)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    env.update(extra)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kling_async", *args]


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _wait(proc: subprocess.Popen[Any]) -> int:
    """The process's exit status; a process still running after WAIT seconds is killed and
    the test fails (it hung)."""
    try:
        return proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{proc.args} hung")


# -- closed pipes -------------------------------------------------------------------------------


def test_run_finishes_every_line_when_its_reader_goes_away(tmp_path: Path) -> None:
    """``run … 2>&1 | head -2``: the reader closes the pipe after two lines; the run still
    ends on its own with exit 0 and a manifest row for every line."""
    out = tmp_path / "o"
    proc = subprocess.Popen(
        _command("run", str(CAMPAIGN), "--sandbox", "--out", str(out)),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    first = [proc.stdout.readline(), proc.stdout.readline()]
    proc.stdout.close()  # what head does after its two lines
    assert _wait(proc) == 0
    assert all(first)
    rows = _rows(out)
    assert len(rows) == LINES and {row["status"] for row in rows} == {"succeeded"}


def test_estimate_to_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    """``estimate … | head -1`` with the reader gone before the first line: exit 0, nothing
    on stderr (no BrokenPipeError, no "unexpected error")."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone before anything was written
    try:
        proc = subprocess.run(
            _command("estimate", str(CAMPAIGN)),
            env=_env(),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=WAIT,
        )
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_run_with_both_pipes_closed_from_the_start(tmp_path: Path) -> None:
    """stdout and stderr both a pipe nobody reads from: the run ends with exit 0 and every
    row in the manifest."""
    out = tmp_path / "o"
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            _command("run", str(CAMPAIGN), "--sandbox", "--out", str(out)),
            env=_env(),
            stdout=write,
            stderr=write,
            timeout=WAIT,
        )
    finally:
        os.close(write)
    assert proc.returncode == 0
    assert len(_rows(out)) == LINES


# -- one run per folder -------------------------------------------------------------------------


def test_a_second_run_on_the_same_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    """Two runs on one --out: the second stops at once with exit 2 and one line naming the
    first's PID; the first ends with every line succeeded."""
    out = tmp_path / "o"
    args = ("run", str(CAMPAIGN), "--sandbox", "--out", str(out))
    first = subprocess.Popen(
        _command(*args), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert first.stderr is not None
    assert "sandbox at" in first.stderr.readline()  # the first holds the folder now
    second = subprocess.run(
        _command(*args), env=_env(), capture_output=True, text=True, timeout=WAIT
    )
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1, second.stderr
    assert f"another kling-async run (PID {first.pid})" in second.stderr
    first.communicate(timeout=WAIT)
    assert first.returncode == 0
    rows = _rows(out)
    assert len(rows) == LINES and {row["status"] for row in rows} == {"succeeded"}
    assert json.loads((out / "run.json").read_text())["run_id"]
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


# -- a journal the run cannot use ---------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "a folder"])
def test_a_journal_it_cannot_use_is_one_line_saying_what_to_do(tmp_path: Path, damage: str) -> None:
    """A journal that is garbage or cannot be opened: exit 2 and one line naming the file and
    saying to move it aside; nothing is sent, no "unexpected error"."""
    out = tmp_path / "o"
    out.mkdir()
    journal = out / "journal.sqlite"
    if damage == "garbage":
        journal.write_bytes(b"\x00garbage, not a database\n" * 400)
    else:
        journal.mkdir()
    proc = subprocess.run(
        _command("run", str(CAMPAIGN), "--sandbox", "--out", str(out)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()[-1:]
    assert line.startswith(f"kling-async: journal {journal}: "), proc.stderr
    assert f"move it aside (mv {journal} {journal}.damaged)" in line
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr
    assert (
        not (out / "sandbox-state.jsonl").exists()
        or len((out / "sandbox-state.jsonl").read_text().splitlines()) <= 1
    )  # nothing was created
