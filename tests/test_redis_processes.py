"""Several OS processes (``kling-async run --redis``) share one stand-in account (a
``kling-async sandbox`` process) and one real redis-server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from .redis_server import RedisServer
from .test_cli_process import API_KEY, Account, _env

pytestmark = pytest.mark.slow
POOL = "kling-image-o1:image"


def _stats(account: Account) -> dict[str, Any]:
    with urllib.request.urlopen(account.url + "/sandbox/stats", timeout=5) as resp:
        return dict(json.load(resp))


def _campaign(path: Path, costs: list[int]) -> Path:
    with path.open("w") as f:
        for i, n in enumerate(costs):
            body = {"kind": "image", "model_name": "kling-image-o1", "prompt": f"{path.stem} {i}"}
            f.write(json.dumps({**body, "n": n}) + "\n")
    return path


def _run(campaign: Path, out: Path, account: Account, redis_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kling_async", "run", str(campaign), "--out", str(out),
         "--base-url", account.url, "--quota", "image=9,video=5"],
        env=_env(KLING_API_KEY=API_KEY, KLING_ASYNC_REDIS_URL=redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def _manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _shared_pool(redis_url: str) -> tuple[int, int]:
    """(slots Redis counts in use, leases) of the image pool, over every namespace."""
    r = redis.Redis.from_url(redis_url)
    try:
        in_use = sum(int(r.hget(k, "in_use") or 0) for k in r.scan_iter(f"*:pool:{POOL}"))
        leases = sum(int(r.hlen(k)) for k in r.scan_iter(f"*:leases:{POOL}"))
    finally:
        r.close()
    return in_use, leases


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> RedisServer:
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server


def test_processes_fill_one_quota_without_tripping_it(
    tmp_path: Path, fresh_redis: RedisServer
) -> None:
    account = Account()
    try:
        procs = [
            _run(
                _campaign(tmp_path / f"c{i}.jsonl", [1, 2, 3, 1, 2, 1, 3, 2, 1, 2, 1, 1]),
                tmp_path / f"out{i}",
                account,
                fresh_redis.url,
            )
            for i in range(3)
        ]
        outputs = [_finish(p) for p in procs]
        stats = _stats(account)
    finally:
        account.stop()
    assert stats["rejected_1303"] == 0
    assert stats["creates"] == 36 and stats["duplicate_external_ids"] == 0
    assert stats["pools"][POOL]["peak"] == 9  # full, never over
    for i in range(3):
        assert {row["status"] for row in _manifest(tmp_path / f"out{i}")} == {"succeeded"}
    assert all("shared pool kling-image-o1:image on Redis: 9 slots" in o for o in outputs)
    assert _shared_pool(fresh_redis.url) == (0, 0)


def test_a_killed_holders_slots_come_back_when_its_tasks_end(
    tmp_path: Path, fresh_redis: RedisServer
) -> None:
    """A holds the whole pool and is killed: its tasks still run on the server, so B waits
    (no 1303) until a live process has looked them up and found them ended; A restarted with
    its journal collects its results without creating anything again."""
    account = Account(image="4,5")
    try:
        a_campaign = _campaign(tmp_path / "a.jsonl", [1] * 9)
        a = _run(a_campaign, tmp_path / "a", account, fresh_redis.url)
        deadline = time.monotonic() + 30
        while _stats(account)["creates"] < 9:
            assert time.monotonic() < deadline, "A did not create its 9 tasks"
            time.sleep(0.05)
        a.send_signal(signal.SIGKILL)
        a.communicate(timeout=10)
        killed_at = time.monotonic()
        b = _run(_campaign(tmp_path / "b.jsonl", [3, 3, 3]), tmp_path / "b", account,
                 fresh_redis.url)  # fmt: skip
        _finish(b)
        waited = time.monotonic() - killed_at
        _finish(_run(a_campaign, tmp_path / "a", account, fresh_redis.url))
        stats = _stats(account)
    finally:
        account.stop()
    assert stats["rejected_1303"] == 0  # B never created into the slots A's tasks held
    assert waited > 8  # B's tasks (4-5 s) started only after A's (4-5 s) ended
    assert stats["creates"] == 12 and stats["duplicate_external_ids"] == 0
    assert {row["status"] for row in _manifest(tmp_path / "a")} == {"succeeded"}
    assert len(_manifest(tmp_path / "a")) == 9
    assert stats["pools"][POOL]["in_use"] == 0
    assert _shared_pool(fresh_redis.url) == (0, 0)
