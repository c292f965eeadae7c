"""Crash test (DESIGN §7): ``kling-async run`` is killed with SIGKILL at five points observed
from real state (mid-create, right after the first creates are answered, mid-download, after
some outputs and manifest lines, near the end), re-run with the same command each time, and the
last run goes to completion.

The CLI is a real subprocess with its real SQLite journal; the sandbox runs in this process, so
its own records count the creates. Its ``slow`` fault holds every API answer back and its
``slow_download`` fault streams every result file slowly, which opens the mid-create and
mid-download windows that the test watches for (every 20 ms) before it kills.

At the end: one task per campaign line (no duplicate create), every output on disk and
complete, no temporary file left, and a manifest with exactly one succeeded line per campaign
line.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import attrs
import pytest
from PIL import Image

from kling_async.testing import Faults, Sandbox

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

KEY = "crash-key"
POLL = 0.02  # seconds between two looks at the CLI's state
RUN_TIMEOUT = 30.0  # seconds one CLI run may take
SLOW = 0.3  # seconds every API answer is held back, and each result file takes to stream

# Twelve lines: singles with n > 1, fixed and auto series on two image models, two videos.
# Half carry their own external_task_id; the others get "<run_id>-<line>" from run.json.
CAMPAIGN: list[dict[str, object]] = [
    {"kind": "image", "prompt": "hero shot of a mug", "n": 2, "external_task_id": "crash-01"},
    {"kind": "image", "prompt": "mug on oak, three takes", "n": 3},
    {
        "kind": "image",
        "prompt": "three-frame mug series",
        "model_name": "kling-v3-omni",
        "result_type": "series",
        "series_amount": 3,
        "aspect_ratio": "3:4",
        "external_task_id": "crash-03",
    },
    {
        "kind": "image",
        "prompt": "a morning story, as many frames as it needs",
        "model_name": "kling-v3-omni",
        "result_type": "series",
        "series_amount": "auto",
        "aspect_ratio": "16:9",
    },
    {"kind": "image", "prompt": "watch on slate", "n": 1, "external_task_id": "crash-05"},
    {
        "kind": "image",
        "prompt": "sneaker on mint",
        "model_name": "kling-v3-omni",
        "n": 2,
        "aspect_ratio": "1:1",
    },
    {
        "kind": "image",
        "prompt": "four-frame backpack series",
        "model_name": "kling-v3-omni",
        "result_type": "series",
        "series_amount": 4,
        "aspect_ratio": "4:3",
        "external_task_id": "crash-07",
    },
    {"kind": "image", "prompt": "perfume bottle, four options", "n": 4},
    {
        "kind": "image",
        "prompt": "meadow plate",
        "resolution": "2k",
        "n": 1,
        "external_task_id": "crash-09",
    },
    {"kind": "image", "prompt": "lilac banner background", "n": 2},
    {
        "kind": "video",
        "prompt": "the mug turns slowly",
        "aspect_ratio": "1:1",
        "duration": 5,
        "external_task_id": "crash-11",
    },
    {
        "kind": "video",
        "prompt": "petals drift across the set",
        "aspect_ratio": "16:9",
        "duration": 5,
    },
]
LINES = len(CAMPAIGN)


@attrs.frozen
class Snapshot:
    """What can be seen of a run from outside: journal rows, sandbox tasks, files."""

    rows: dict[str, tuple[str, str | None]]  # external_task_id -> (state, task_id)
    on_server: frozenset[str]  # external_task_ids the sandbox has accepted
    parts: dict[str, tuple[int, int]]  # temporary download file -> (size, mtime in ns)
    manifest_lines: int

    def count(self, *states: str) -> int:
        return sum(1 for state, _ in self.rows.values() if state in states)


@attrs.frozen
class KillPoint:
    name: str
    reached: Callable[[Snapshot, Snapshot], bool]  # (at run start, now) -> kill now?


KILL_POINTS = [
    # A create is on the server (the sandbox made the task) but its answer, held back by the
    # slow fault, has not arrived: the journal holds only the intent.
    KillPoint(
        "mid-create",
        lambda start, now: any(
            state == "intent" and ext in now.on_server for ext, (state, _) in now.rows.items()
        ),
    ),
    # The first creates sent by this run were answered: their task ids are in the journal.
    KillPoint(
        "first creates answered",
        lambda start, now: any(
            state != "intent" and ext not in start.on_server for ext, (state, _) in now.rows.items()
        ),
    ),
    # A result file is being streamed (slowly) into its temporary name by this run (a killed
    # run leaves its temporary files behind: those do not count).
    KillPoint(
        "mid-download",
        lambda start, now: any(start.parts.get(name) != seen for name, seen in now.parts.items()),
    ),
    # Some outputs are saved by this run and their manifest lines written.
    KillPoint(
        "some outputs saved",
        lambda start, now: (
            now.count("saved") >= start.count("saved") + 2 and now.manifest_lines >= 2
        ),
    ),
    # Near the end: all but the last two lines are saved.
    KillPoint(
        "near the end",
        lambda start, now: LINES - 2 <= now.count("saved") < LINES,
    ),
]


def _journal_rows(path: Path) -> dict[str, tuple[str, str | None]]:
    """The journal's rows, read through a read-only connection (never blocks the writer)."""
    if not path.exists():
        return {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = db.execute("SELECT external_task_id, state, task_id FROM tasks").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return {}  # not created yet (no table): nothing journaled
    return {ext: (state, task_id) for ext, state, task_id in rows}


def _snapshot(on_server: frozenset[str], out: Path) -> Snapshot:
    """The journal and the out folder (read in a worker thread), with the sandbox's tasks."""
    manifest = out / "manifest.jsonl"
    try:
        text = manifest.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    parts = {}
    for part in out.glob(".*.part") if out.exists() else ():
        try:
            st = part.stat()
        except FileNotFoundError:
            continue  # renamed into place meanwhile
        parts[part.name] = (st.st_size, st.st_mtime_ns)
    return Snapshot(
        rows=_journal_rows(out / "journal.sqlite"),
        on_server=on_server,
        parts=parts,
        manifest_lines=text.count("\n"),
    )


def _on_server(sb: Sandbox) -> frozenset[str]:
    """The external_task_ids the sandbox has accepted (read on the event loop's thread)."""
    return frozenset(t.external_task_id for t in sb.tasks if t.external_task_id)


def _check_complete(path: Path) -> None:
    """``path`` is a whole output file: a PNG that decodes, or an MP4 with its boxes."""
    if path.suffix == ".png":
        with Image.open(path) as image:
            image.load()  # raises on a truncated file
        return
    assert path.suffix == ".mp4", path
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data, f"{path.name}: incomplete MP4"


def _outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.suffix in (".png", ".mp4"))


def _check_no_duplicates(sb: Sandbox) -> None:
    stats = sb.stats()
    ids = Counter(t.external_task_id for t in sb.tasks)
    assert stats.duplicate_external_ids == 0, stats
    assert all(n == 1 for n in ids.values()), ids
    assert stats.creates == len(sb.tasks) <= LINES, stats


async def _run(
    argv: list[str], env: dict[str, str], log: Path, sb: Sandbox, out: Path, point: KillPoint | None
) -> tuple[int, Snapshot | None]:
    """Run the CLI once; kill it with SIGKILL as soon as ``point`` is reached. Returns the
    exit status (-9 when killed) and the snapshot that triggered the kill."""
    start = _snapshot(_on_server(sb), out)
    with log.open("wb") as sink:
        async with await anyio.open_process(argv, stdout=sink, stderr=sink, env=env) as proc:
            deadline = time.monotonic() + RUN_TIMEOUT
            while proc.returncode is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    await proc.wait()
                    pytest.fail(f"the run took over {RUN_TIMEOUT} s:\n{_tail(log)}")
                if point is not None:
                    now = await anyio.to_thread.run_sync(_snapshot, _on_server(sb), out)
                    if point.reached(start, now):
                        proc.kill()  # SIGKILL
                        await proc.wait()
                        return proc.returncode, now
                await anyio.sleep(POLL)
            return proc.returncode, None


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


async def test_killed_cli_resumes_without_duplicates_or_lost_outputs(tmp_path: Path) -> None:
    """Five SIGKILLs at observed points, a resume after each, then a complete run."""
    campaign = tmp_path / "campaign.jsonl"
    campaign.write_text("".join(json.dumps(line) + "\n" for line in CAMPAIGN), encoding="utf-8")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    env["KLING_API_KEY"] = KEY
    faults = Faults(slow=1.0, slow_download=1.0, slow_seconds=SLOW)
    async with Sandbox(
        api_keys=(KEY,),
        quota={"image": 9, "video": 5},
        image_duration=(0.3, 1.0),
        video_duration=(0.5, 1.0),
        seed=4,
        faults=faults,
    ) as sb:
        argv = [sys.executable, "-m", "kling_async", "run", str(campaign), "--out", str(out)]
        argv += ["--base-url", sb.base_url, "--quota", "image=9,video=5"]
        kills: list[str] = []
        for number, point in enumerate(KILL_POINTS, start=1):
            log = tmp_path / f"run-{number}.log"
            began = time.monotonic()
            status, seen = await _run(argv, env, log, sb, out, point)
            assert seen is not None, (
                f"run {number} ended (status {status}) before the kill point "
                f"{point.name!r}; earlier kills: {kills}\n{_tail(log)}"
            )
            assert status == -9
            states = Counter(state for state, _ in seen.rows.values())
            kills.append(
                f"run {number} killed {point.name} at {time.monotonic() - began:.2f} s: "
                f"journal {dict(states)}, {len(seen.on_server)} tasks on the server, "
                f"{len(seen.parts)} .part files, {seen.manifest_lines} manifest lines"
            )
            # Whatever the moment of the kill: no file under a final name is incomplete, and
            # the server never saw a create twice.
            for path in _outputs(out):
                _check_complete(path)
            _check_no_duplicates(sb)
        log = tmp_path / "run-final.log"
        status, _ = await _run(argv, env, log, sb, out, None)
        assert status == 0, _tail(log)
        summary = " ".join(_tail(log).split("done in", 1)[-1].split())
        print("\n".join([*kills, f"final run: done in {summary}"]), file=sys.stderr)
        print(sb.stats(), file=sys.stderr)

        # Zero duplicate creates, by the sandbox's own count.
        _check_no_duplicates(sb)
        assert sb.stats().creates == LINES
        tasks = {t.external_task_id: t for t in sb.tasks}

        # A complete manifest: one succeeded line per campaign line, in file order.
        rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
        assert [r["line"] for r in rows] == list(range(1, LINES + 1))
        assert all(r["status"] == "succeeded" and r["error"] is None for r in rows), rows
        assert {r["external_task_id"] for r in rows} == set(tasks)
        run_id = json.loads((out / "run.json").read_text())["run_id"]
        for row, line in zip(rows, CAMPAIGN, strict=True):
            task = tasks[row["external_task_id"]]
            assert row["task_id"] == task.task_id
            assert task.status == "succeed"
            # Keys stayed stable across the six runs: the line's own, else run.json's.
            key = line.get("external_task_id", f"{run_id}-{row['line']:05d}")
            assert row["external_task_id"] == key
            # Every output of the task is on disk and complete: an image task makes `cost`
            # images (n, the series amount or the drawn auto count), a video task one video.
            expected = task.cost if task.kind == "image" else 1
            assert len(row["files"]) == expected, row
            for name in row["files"]:
                _check_complete(out / name)

        # Nothing else on disk: no temporary or stray output file.
        listed = {name for r in rows for name in r["files"]}
        assert {p.name for p in _outputs(out)} == listed
        assert not list(out.glob("*.part")) and not list(out.glob(".*.part"))
