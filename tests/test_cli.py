"""The kling-async command line: the README's main command, bad lines, credentials, re-runs."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from kling_async.cli import RunOptions, run_campaign
from kling_async.cli._main import _configure_logging, _resume_command
from kling_async.testing import Sandbox

from .conftest import API_KEY, QUICK_SANDBOX

ROOT = Path(__file__).resolve().parent.parent


def _manifest(out: Path) -> list[dict[str, object]]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _readme_main_command() -> list[str]:
    """The `kling-async run ...` part of the README's first command."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)\n```", readme, re.S)
    assert first_block, "README has no bash block"
    command = first_block.group(1).split("&&")[-1].strip()
    assert command.startswith(".venv/bin/kling-async run "), command
    return shlex.split(command)[1:]


@pytest.mark.slow
def test_readme_main_command_runs_the_example_campaign(tmp_path: Path) -> None:
    """The README's first command runs examples/campaign.jsonl on the sandbox to the end,
    leaving every output file and a complete manifest in the out folder."""
    args = _readme_main_command()
    out = tmp_path / "out"
    args[args.index("--out") + 1] = str(out)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLING_")}
    proc = subprocess.run(
        [sys.executable, "-m", "kling_async", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    campaign = [
        line
        for line in (ROOT / "examples/campaign.jsonl").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    rows = _manifest(out)
    assert [r["line"] for r in rows] == sorted(r["line"] for r in rows)
    assert len(rows) == len(campaign) >= 20
    assert all(r["status"] == "succeeded" and r["files"] for r in rows)
    for row in rows:
        for name in row["files"]:  # type: ignore[union-attr]
            data = (out / name).read_bytes()
            assert data.startswith(b"\x89PNG") or data[4:8] == b"ftyp", name
    assert "done in" in proc.stderr and "succeeded" in proc.stderr


@pytest.mark.slow
def test_example_campaign_on_the_modellix_sandbox(tmp_path: Path) -> None:
    """With --provider modellix --sandbox the example campaign runs to the end: lines Modellix
    cannot express are reported with their number and reason, the rest leave files."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kling_async",
            "run",
            "examples/campaign.jsonl",
            "--out",
            str(out),
            "--sandbox",
            *QUICK_SANDBOX,
            "--provider",
            "modellix",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # 1: some lines were invalid here
    assert "images 0.05–0.2 s, videos 0.1–0.4 s" in proc.stderr  # --sandbox-*-duration
    rows = _manifest(out)
    assert [r["line"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) >= 20
    invalid = [r for r in rows if r["status"] == "invalid"]
    succeeded = [r for r in rows if r["status"] == "succeeded"]
    assert invalid and succeeded and len(invalid) + len(succeeded) == len(rows)
    for row in invalid:
        assert "modellix cannot carry" in str(row["error"]), row
        assert f"line {row['line']}: invalid: modellix cannot carry" in " ".join(
            proc.stderr.split()
        )
    for row in succeeded:
        assert row["files"] and row["task_id"], row
        for name in row["files"]:  # type: ignore[union-attr]
            data = (out / name).read_bytes()
            assert data.startswith(b"\x89PNG") or data[4:8] == b"ftyp", name


def test_no_credentials_stops_at_once_with_help(tmp_path: Path) -> None:
    """Without credentials and without --sandbox the CLI exits 2 saying how to fix it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLING_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kling_async",
            "run",
            str(ROOT / "examples/campaign.jsonl"),
            "--out",
            str(tmp_path / "o"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "KLING_API_KEY" in proc.stderr and "--sandbox" in proc.stderr
    assert not (tmp_path / "o").exists()


CAMPAIGN = """\
{"kind": "image", "prompt": "a mug on oak", "n": 2}
{"kind": "image", "prompt": "broken json"
{"kind": "image", "prompt": "too many", "n": 12}
{"kind": "image", "prompt": "typo", "nn": 2}
{"kind": "sound", "prompt": "what"}

{"kind": "video", "prompt": "the mug turns", "aspect_ratio": "1:1", "duration": 5}
{"kind": "image", "prompt": "series", "model_name": "kling-v3-omni", "aspect_ratio": "3:4", \
"result_type": "series", "series_amount": 3}
"""


@pytest.fixture
async def sandbox_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox fixture, with the CLI's credentials pointing at it."""
    monkeypatch.setenv("KLING_API_KEY", API_KEY)
    return sandbox


def _options(tmp_path: Path, sandbox: Sandbox) -> RunOptions:
    campaign = tmp_path / "campaign.jsonl"
    campaign.write_text(CAMPAIGN, encoding="utf-8")
    return RunOptions(campaign=campaign, out=tmp_path / "out", base_url=sandbox.base_url)


def _console() -> Console:
    return Console(file=io.StringIO(), width=200)


@pytest.mark.anyio
async def test_bad_lines_are_reported_and_the_rest_run(
    tmp_path: Path, sandbox_env: Sandbox
) -> None:
    """Each malformed or invalid line is reported with its line number and reason; the valid
    lines still run, and the exit status is 1."""
    console = _console()
    status = await run_campaign(_options(tmp_path, sandbox_env), console)
    assert status == 1
    rows = {r["line"]: r for r in _manifest(tmp_path / "out")}
    assert sorted(rows) == [1, 2, 3, 4, 5, 7, 8]
    assert {k: rows[k]["status"] for k in rows} == {
        1: "succeeded",
        2: "invalid",
        3: "invalid",
        4: "invalid",
        5: "invalid",
        7: "succeeded",
        8: "succeeded",
    }
    assert "not valid JSON" in str(rows[2]["error"])
    assert "n: 12" in str(rows[3]["error"])
    assert "nn" in str(rows[4]["error"])
    assert "kind" in str(rows[5]["error"])
    assert len(rows[1]["files"]) == 2 and len(rows[8]["files"]) == 3  # type: ignore[arg-type]
    assert rows[7]["files"][0].endswith(".mp4")  # type: ignore[index]
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert "line 3: invalid" in output


@pytest.mark.anyio
async def test_rerun_reuses_the_journal_and_creates_nothing_twice(
    tmp_path: Path, sandbox_env: Sandbox
) -> None:
    """Running the same command again creates no task twice and re-downloads nothing that
    is already on disk; a deleted output file is fetched again."""
    options = _options(tmp_path, sandbox_env)
    await run_campaign(options, _console())
    creates = sandbox_env.stats().creates
    assert creates == 3
    first = _manifest(tmp_path / "out")
    victim = tmp_path / "out" / first[0]["files"][0]  # type: ignore[index]
    victim.unlink()
    await run_campaign(options, _console())
    assert sandbox_env.stats().creates == creates
    assert victim.exists()
    assert _manifest(tmp_path / "out") == first


@pytest.mark.parametrize(
    ("program", "on_path", "expected"),
    [
        ("/x/lib/kling_async/__main__.py", False, [sys.executable, "-m", "kling_async"]),
        (".venv/bin/kling-async", False, [".venv/bin/kling-async"]),
        ("kling-async", True, ["kling-async"]),
    ],
)
def test_resume_command_starts_the_program_as_it_was_started(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    program: str,
    on_path: bool,
    expected: list[str],
) -> None:
    """The printed resume command names the program the way the user started it, so it runs
    as printed (a venv path stays a path; ``python -m kling_async`` stays that)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if on_path:
        (bin_dir / program).write_text("#!/bin/sh\n")
        (bin_dir / program).chmod(0o755)
        program = str(bin_dir / program)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(sys, "argv", [program, "run", "my campaign.jsonl", "--out", "o"])
    command = _resume_command(None)
    assert shlex.split(command) == [*expected, "run", "my campaign.jsonl", "--out", "o", "--resume"]


def test_log_handlers_mask_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's log handlers (stderr and --log-file) mask the environment's keys and any JWT,
    should a record carry one."""
    monkeypatch.setenv("KLING_API_KEY", "key-0123456789")
    monkeypatch.setenv("KLING_SECRET_KEY", "sk-abcdefghij")
    log, console = tmp_path / "run.log", _console()
    logger = logging.getLogger("kling_async")
    level = logger.level
    handlers = _configure_logging(1, str(log), console)
    try:
        logging.getLogger("kling_async.http").info(
            "sent Bearer %s, then Bearer %s signed with %s",
            "key-0123456789",
            "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJhayJ9.c2lnbmF0dXJl",
            "sk-abcdefghij",
        )
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(level)
    for text in (log.read_text(), console.file.getvalue()):  # type: ignore[attr-defined]
        assert "sent Bearer <secret>, then Bearer <jwt> signed with <secret>" in text
        assert "key-0123456789" not in text and "eyJ" not in text and "sk-abcdef" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sandbox-image-duration", "0.1,0.2"), "need --sandbox"),
        (("--sandbox", "--sandbox-video-duration", "2,1"), "need 0 <= LOW <= HIGH"),
        (("--sandbox", "--sandbox-image-duration", "fast"), "give seconds as LOW,HIGH"),
    ],
)
def test_sandbox_durations_are_checked(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    """--sandbox-image-duration / --sandbox-video-duration take LOW,HIGH seconds and only go
    with --sandbox: anything else is refused before a run starts, exit 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    env["KLING_API_KEY"] = "never-sent"  # credentials present: the durations are what is wrong
    proc = subprocess.run(
        [sys.executable, "-m", "kling_async", "run", str(ROOT / "examples/campaign.jsonl"),
         "--out", str(tmp_path / "o"), *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()
