"""A campaign run against what a careless user or a hostile place does to it: a closed pipe, a
failure every request shares, a second run on the same folder, a lost or corrupt journal, a
double Ctrl-C. Real ``python -m kling_async`` processes, real sockets, real files."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from aiohttp import web

from kling_async.testing import Faults, Sandbox

from .conftest import QUICK_SANDBOX
from .test_cli_process import API_KEY, Account

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = ROOT / "examples" / "campaign.jsonl"
LINES = sum(1 for line in CAMPAIGN.read_text().splitlines() if line.strip())
WAIT = 100  # seconds a process may take before the test gives up on it (a hang, not a speed)
# Seconds between two Ctrl-C that make them two presses (the CLI counts two within 0.5 s as one).
_SECOND_PRESS = 0.6


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
        _command("run", str(CAMPAIGN), "--sandbox", *QUICK_SANDBOX, "--out", str(out)),
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
            _command("run", str(CAMPAIGN), "--sandbox", *QUICK_SANDBOX, "--out", str(out)),
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


# -- a task that exists is adopted, never created twice ------------------------------------------


@pytest.fixture
def account() -> Iterator[Account]:
    acct = Account()
    yield acct
    acct.stop()


def _stats(account: Account) -> dict[str, Any]:
    with urllib.request.urlopen(account.url + "/sandbox/stats", timeout=5) as resp:
        return dict(json.load(resp))


def _plain_campaign(folder: Path, lines: int, *, own_ids: bool) -> Path:
    path = folder / "plain.jsonl"
    bodies = [
        {
            "kind": "image",
            "prompt": f"mug {i}",
            **({"external_task_id": f"mug-{i}"} if own_ids else {}),
        }
        for i in range(lines)
    ]
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def _run_on(account: Account, campaign: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command("run", str(campaign), "--out", str(out), "--base-url", account.url),
        env=_env(KLING_API_KEY=API_KEY),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def _all_good(out: Path, lines: int) -> None:
    rows = _rows(out)
    assert [row["status"] for row in rows] == ["succeeded"] * lines, rows
    for row in rows:
        assert row["files"] and all((out / name).stat().st_size > 0 for name in row["files"])


def test_the_same_campaign_into_a_fresh_folder_adopts_every_task(
    tmp_path: Path, account: Account
) -> None:
    """Lines with their own external_task_id re-run into a fresh --out: every line is adopted
    (said on the console), none fails, none is created twice."""
    campaign = _plain_campaign(tmp_path, 6, own_ids=True)
    first = _run_on(account, campaign, tmp_path / "one")
    assert first.returncode == 0, first.stderr
    again = _run_on(account, campaign, tmp_path / "two")
    assert again.returncode == 0, again.stderr
    _all_good(tmp_path / "two", 6)
    assert again.stderr.count("adopted existing task") == 6, again.stderr
    assert "line 1: adopted existing task " in again.stderr
    assert len(account.tasks()) == 6 and _stats(account)["creates"] == 6


def test_a_deleted_journal_is_rebuilt_from_lookups(tmp_path: Path, account: Account) -> None:
    """A finished run whose journal is deleted, re-run: every line adopted and succeeded, no
    create twice, the manifest still all good (it was overwritten with failures)."""
    campaign, out = _plain_campaign(tmp_path, 8, own_ids=False), tmp_path / "o"
    assert _run_on(account, campaign, out).returncode == 0
    for name in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"):
        (out / name).unlink(missing_ok=True)
    again = _run_on(account, campaign, out)
    assert again.returncode == 0, again.stderr
    _all_good(out, 8)
    assert len(account.tasks()) == 8 and _stats(account)["creates"] == 8


def test_a_journal_deleted_mid_run_loses_nothing(tmp_path: Path, account: Account) -> None:
    """Killed mid-run and its journal deleted, the re-run ends every line succeeded, with no
    task created twice."""
    campaign, out = _plain_campaign(tmp_path, 12, own_ids=False), tmp_path / "o"
    proc = subprocess.Popen(
        _command("run", str(campaign), "--out", str(out), "--base-url", account.url),
        env=_env(KLING_API_KEY=API_KEY),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while len(account.tasks()) < 4 and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    for name in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"):
        (out / name).unlink(missing_ok=True)
    again = _run_on(account, campaign, out)
    assert again.returncode == 0, again.stderr
    _all_good(out, 12)
    tasks = account.tasks()
    assert len(tasks) == 12 and len({t["external_task_id"] for t in tasks}) == 12


def test_a_corrupt_journal_moved_aside_is_rebuilt_from_lookups(
    tmp_path: Path, account: Account
) -> None:
    """A finished run's journal replaced by garbage: the run stops with the hint; moved aside
    as it says, the same command ends every line succeeded and creates nothing."""
    campaign, out = _plain_campaign(tmp_path, 5, own_ids=False), tmp_path / "o"
    assert _run_on(account, campaign, out).returncode == 0
    (out / "journal.sqlite").write_bytes(b"garbage" * 1000)
    for name in ("journal.sqlite-wal", "journal.sqlite-shm"):
        (out / name).unlink(missing_ok=True)
    refused = _run_on(account, campaign, out)
    assert refused.returncode == 2 and "move it aside (mv " in refused.stderr, refused.stderr
    mv = shlex.split(refused.stderr.split("move it aside (")[1].split(")")[0])
    subprocess.run(mv, check=True)
    again = _run_on(account, campaign, out)
    assert again.returncode == 0, again.stderr
    _all_good(out, 5)
    assert len(account.tasks()) == 5 and _stats(account)["creates"] == 5


# -- a failure every request shares ends the run ------------------------------------------------


async def _run_against(base_url: str, out: Path) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        _command("run", str(CAMPAIGN), "--out", str(out), "--base-url", base_url),
        env=_env(KLING_API_KEY=API_KEY),
        check=False,
    )


def _stopped_before_any_line(proc: subprocess.CompletedProcess[bytes], out: Path) -> str:
    """The run ended with exit 2 and one last line naming the cause; every line is
    ``not_started`` (a corrected re-run does it), none ``error``."""
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    last = err.splitlines()[-1]
    assert last.startswith("kling-async: ") and "nothing was created" in last, err
    assert not re.search(r"^line \d+:", err, re.M) and "Traceback" not in err, err
    assert [row["status"] for row in _rows(out)] == ["not_started"] * LINES
    return last


@pytest.mark.anyio
async def test_nothing_listening_ends_the_run_at_once(tmp_path: Path) -> None:
    """A base URL where nothing listens (connection refused): exit 2, one line saying the
    API cannot be reached, every line left not started."""
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "o"
    proc = await _run_against(f"http://127.0.0.1:{port}", out)
    last = _stopped_before_any_line(proc, out)
    assert f"cannot reach the API at http://127.0.0.1:{port}" in last


@pytest.mark.anyio
async def test_an_untrusted_certificate_ends_the_run_at_once(tmp_path: Path) -> None:
    """An HTTPS API whose certificate the client does not trust: exit 2, one line naming the
    certificate failure, no API request served, every line left not started."""
    ca = trustme.CA()  # a CA the client was never told to trust
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    out = tmp_path / "o"
    async with Sandbox(api_keys=(API_KEY,), ssl_context=context) as sandbox:
        proc = await _run_against(sandbox.base_url, out)
        assert sandbox.stats().requests == 0
    last = _stopped_before_any_line(proc, out)
    assert "cannot reach the API" in last and "CERTIFICATE_VERIFY_FAILED" in last


@pytest.mark.anyio
@pytest.mark.parametrize("answer", ["plain 404", "code 1202"])
async def test_a_wrong_path_prefix_ends_the_run_at_once(tmp_path: Path, answer: str) -> None:
    """Every create answered 404 (a gateway without its /kling prefix) or 1202: exit 2, one
    line saying the create path is not there; fewer requests than lines reached the server."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        if answer == "plain 404":
            return web.Response(status=404, text="404: Not Found")
        body = {"code": 1202, "message": "invalid method", "request_id": "r-1"}
        return web.json_response(body, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    out = tmp_path / "o"
    try:
        proc = await _run_against(f"http://127.0.0.1:{port}", out)
    finally:
        await runner.cleanup()
    last = _stopped_before_any_line(proc, out)
    assert "has no create path /v1/images/omni-image" in last and "check the base URL" in last
    assert 0 < len(seen) < LINES, seen
    assert {s.split()[0] for s in seen} == {"POST"}


# -- Ctrl-C ---------------------------------------------------------------------------------------


def test_ctrl_c_delivered_twice_at_once_is_one_press(tmp_path: Path, account: Account) -> None:
    """Two SIGINTs sent back to back (as ``timeout`` or a process group deliver one Ctrl-C):
    the run winds down as after one press, prints its summary and the resume command, and is
    not "stopped at once"; every line of the campaign has a row with its prompt."""
    # More lines than the stream reads ahead (32): those never read still get a row.
    campaign, out = _plain_campaign(tmp_path, 60, own_ids=False), tmp_path / "o"
    proc = subprocess.Popen(
        _command("run", str(campaign), "--out", str(out), "--base-url", account.url),
        env=_env(KLING_API_KEY=API_KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not account.tasks() and proc.poll() is None:  # the first create has happened
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 130, err
    assert "stopped at once" not in err, err
    assert re.search(r"^interrupted \(Ctrl-C\) after ", err, re.M), err
    assert "resume with: " in err
    rows = _rows(out)
    assert [row["line"] for row in rows] == list(range(1, 61))
    assert [row["prompt"] for row in rows] == [f"mug {i}" for i in range(60)]


@pytest.mark.anyio
async def test_a_second_press_stops_at_once_with_the_summary(tmp_path: Path) -> None:
    """A second Ctrl-C while the first still waits for a create's answer: the run ends at
    once (exit 130) and still writes a row for every line, the summary and the resume
    command; every line has a row, and those running carry their prompt."""
    campaign, out = _plain_campaign(tmp_path, 60, own_ids=False), tmp_path / "o"
    faults = Faults(slow=1.0, slow_seconds=15)  # every answer held back: creates hang
    async with Sandbox(api_keys=(API_KEY,), faults=faults) as sandbox:
        argv = _command("run", str(campaign), "--out", str(out), "--base-url", sandbox.base_url)
        env = _env(KLING_API_KEY=API_KEY)
        async with await anyio.open_process(argv, env=env) as proc:
            assert proc.stderr is not None
            while sandbox.stats().creates == 0:  # noqa: ASYNC110 (a create is in, held back)
                await anyio.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            seen = b""
            while b"creating nothing more" not in seen:  # the first press was taken
                seen += await proc.stderr.receive()
            await anyio.sleep(_SECOND_PRESS)
            proc.send_signal(signal.SIGINT)
            async for chunk in proc.stderr:
                seen += chunk
            status = await proc.wait()
    err = seen.decode()
    assert status == 130, err
    assert "stopped at once (second interrupt)" in err
    assert re.search(r"^interrupted \(stopped at once\) after .* \d+ running", err, re.M), err
    assert "resume with: " in err and "--resume" in err
    rows = _rows(out)
    assert [row["line"] for row in rows] == list(range(1, 61))
    assert {row["status"] for row in rows} <= {"running", "not_started"}
    assert any(row["status"] == "running" for row in rows)
    running = [row for row in rows if row["status"] == "running"]
    assert all(row["prompt"] == f"mug {row['line'] - 1}" for row in running)


def test_a_worse_rerun_keeps_the_good_rows(tmp_path: Path, account: Account) -> None:
    """A finished folder re-run without its journal against a wrong address: the run stops
    (exit 2) and the manifest still lists every line succeeded with its files."""
    campaign, out = _plain_campaign(tmp_path, 6, own_ids=False), tmp_path / "o"
    assert _run_on(account, campaign, out).returncode == 0
    before = _rows(out)
    (out / "journal.sqlite").unlink()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    again = subprocess.run(
        _command("run", str(campaign), "--out", str(out), "--base-url", dead),
        env=_env(KLING_API_KEY=API_KEY),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert again.returncode == 2, again.stderr
    assert _rows(out) == before
    _all_good(out, 6)


@pytest.mark.parametrize("damage", ["{}", "[1]", "not json", '{"run_id": 7}'])
def test_a_damaged_run_id_beside_a_journal_creates_nothing_twice(
    tmp_path: Path, account: Account, damage: str
) -> None:
    """``run.json`` (the folder's run id, from which the lines' external_task_id are made)
    damaged beside a journal: the re-run stops with one line naming the file and creates
    nothing, instead of making new ids and paying for every line again."""
    campaign, out = _plain_campaign(tmp_path, 3, own_ids=False), tmp_path / "o"
    assert _run_on(account, campaign, out).returncode == 0
    (out / "run.json").write_text(damage)
    again = _run_on(account, campaign, out)
    assert again.returncode == 2, again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "run.json" in lines[0] and "unexpected" not in lines[0], lines
    assert _stats(account)["creates"] == 3
    _all_good(out, 3)
