"""``kling-async push / work / status / collect`` as OS processes: several workers on one queue
(a real redis-server) against one stand-in account (a ``kling-async sandbox`` process)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from .redis_server import RedisServer
from .test_cli_process import API_KEY, Account, _env

# Several processes on a 2-core machine: slower than the suite-wide per-test timeout allows.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _campaign(path: Path, n: int) -> Path:
    body = {"kind": "image", "model_name": "kling-image-o1"}
    path.write_text("".join(json.dumps({**body, "prompt": f"p {i}"}) + "\n" for i in range(n)))
    return path


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kling_async", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _worker(out: Path, account: Account, url: str, queue: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kling_async", "work", "--redis", url, "--queue", queue,
         "--out", str(out), "--base-url", account.url, "--quota", "image=9,video=5",
         "--claim-timeout", "6"],
        env=_env(KLING_API_KEY=API_KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


@pytest.fixture
def procs() -> Any:
    """Worker processes a test starts; any still running at its end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def _stats(account: Account) -> dict[str, Any]:
    with urllib.request.urlopen(account.url + "/sandbox/stats", timeout=5) as resp:
        return dict(json.load(resp))


def _wait_creates(account: Account, n: int) -> None:
    deadline = time.monotonic() + 120
    while _stats(account)["creates"] < n:
        assert time.monotonic() < deadline, f"fewer than {n} creates"
        time.sleep(0.05)


def _finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    return out


def _collect(url: str, queue: str, out: Path) -> list[dict[str, Any]]:
    proc = _cli("collect", "--redis", url, "--queue", queue, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _assert_complete(rows: list[dict[str, Any]], lines: int) -> None:
    """A row per line, each succeeded, its files in the folder of the worker it names."""
    assert [r["line"] for r in rows] == list(range(1, lines + 1))
    assert {r["status"] for r in rows} == {"succeeded"}
    for r in rows:
        assert r["files"] and all((Path(r["worker"]["folder"]) / f).exists() for f in r["files"])


@pytest.fixture
def account() -> Any:
    acct = Account(image="0.2,0.5")
    yield acct
    acct.stop()


def test_three_workers_one_killed_finish_every_line_once(
    tmp_path: Path, redis_server: RedisServer, account: Account, procs: list[Any]
) -> None:
    """3 workers on 300 lines, one SIGKILLed midway and never restarted: every line done
    once (creates == lines, no duplicate), pushing twice queued nothing twice, and status
    and collect account for every line and worker."""
    queue, url = f"q{uuid.uuid4().hex[:8]}", redis_server.url
    campaign = _campaign(tmp_path / "c.jsonl", 300)
    assert _cli("push", str(campaign), "--redis", url, "--queue", queue).returncode == 0
    again = _cli("push", str(campaign), "--redis", url, "--queue", queue)
    assert again.returncode == 0 and "0 lines queued, 300 pushed before" in again.stderr
    workers = [_worker(tmp_path / f"w{i}", account, url, queue) for i in range(3)]
    procs.extend(workers)
    _wait_creates(account, 100)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].communicate(timeout=10)
    _finish(workers[1]), _finish(workers[2])
    stats = _stats(account)
    status = _cli("status", "--redis", url, "--queue", queue, "--json")
    rows = _collect(url, queue, tmp_path / "all")
    assert stats["creates"] == 300 and stats["duplicate_external_ids"] == 0
    _assert_complete(rows, 300)
    figures = json.loads(status.stdout)
    assert figures["lines"] == 300 and figures["done"] == {"succeeded": 300}
    assert (figures["queued"], figures["running"], figures["dead_letter"]) == (0, 0, [])
    assert float(figures["units"]) == sum(float(r["units"]) for r in rows)
    assert len(figures["workers"]) == 3 and not any(w["alive"] for w in figures["workers"])
    folders = {r["worker"]["folder"] for r in rows}
    assert folders <= {str((tmp_path / f"w{i}").resolve()) for i in range(3)}


def test_redis_restarted_mid_run_every_line_done_once(
    tmp_path: Path, account: Account, procs: list[Any]
) -> None:
    """Redis (with its append-only file) restarted mid-run: the workers wait, resume, and
    every line is done once."""
    server = RedisServer(tmp_path / "redis", persist=True)
    (tmp_path / "redis").mkdir()
    server.start()
    try:
        queue, url = "restart", server.url
        campaign = _campaign(tmp_path / "c.jsonl", 120)
        assert _cli("push", str(campaign), "--redis", url, "--queue", queue).returncode == 0
        workers = [_worker(tmp_path / f"w{i}", account, url, queue) for i in range(2)]
        procs.extend(workers)
        _wait_creates(account, 40)
        server.restart()
        for w in workers:
            _finish(w)
        rows = _collect(url, queue, tmp_path / "all")
    finally:
        server.stop()
    stats = _stats(account)
    assert stats["creates"] == 120 and stats["duplicate_external_ids"] == 0
    _assert_complete(rows, 120)


def test_sigterm_hands_the_lines_back_and_exits_143(
    tmp_path: Path, redis_server: RedisServer, account: Account, procs: list[Any]
) -> None:
    """SIGTERM: the worker hands back what it holds and exits 143; a later worker finishes
    the queue without creating any line twice."""
    queue, url = f"q{uuid.uuid4().hex[:8]}", redis_server.url
    campaign = _campaign(tmp_path / "c.jsonl", 40)
    assert _cli("push", str(campaign), "--redis", url, "--queue", queue).returncode == 0
    first = _worker(tmp_path / "a", account, url, queue)
    procs.append(first)
    _wait_creates(account, 10)
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 143, out
    assert "handed back to the queue" in out
    procs.append(second := _worker(tmp_path / "b", account, url, queue))
    _finish(second)
    stats = _stats(account)
    assert stats["creates"] == 40 and stats["duplicate_external_ids"] == 0
    _assert_complete(_collect(url, queue, tmp_path / "all"), 40)


def test_the_library_example_runs_a_queue(
    tmp_path: Path, redis_server: RedisServer, account: Account
) -> None:
    """examples/redis_campaign.py pushes the example's image lines, does each once, and a
    second run finds nothing left to do."""
    script = Path(__file__).resolve().parent.parent / "examples" / "redis_campaign.py"
    env = _env(
        KLING_API_KEY=API_KEY,
        KLING_BASE_URL=account.url,
        KLING_ASYNC_REDIS_URL=redis_server.url,
        OUT=str(tmp_path / "out"),
    )
    runs = [
        subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                       timeout=240)
        for _ in range(2)
    ]  # fmt: skip
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    lines = runs[0].stdout.count(": ok")
    assert lines > 0 and "FAIL" not in runs[0].stdout
    assert "queued 0" in runs[1].stdout and runs[1].stdout.count(": ok") == 0
    assert _stats(account)["creates"] == lines


def test_queue_commands_say_what_to_fix_in_one_line(tmp_path: Path) -> None:
    """A missing --queue, a bad --redis URL or an unreachable Redis: exit 2, one line."""
    campaign = _campaign(tmp_path / "c.jsonl", 1)
    free = "redis://127.0.0.1:1/0"
    cases = [
        (["push", str(campaign), "--redis", free], "--queue NAME is required"),
        (["status", "--redis", "http://x", "--queue", "q"], "is not a redis://"),
        (["status", "--redis", free, "--queue", "q"], "cannot reach Redis"),
        (["push", str(campaign), "--redis", free, "--queue", "bad name"], "--queue: queue name"),
    ]
    for args, message in cases:
        proc = _cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
