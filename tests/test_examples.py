"""The programs in examples/ run as a user runs them: a separate process, credentials and the
base URL from the environment, here a sandbox process standing in for the account."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_cli_process import API_KEY, Account

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def account() -> Iterator[Account]:
    acct = Account(image="0.2,0.5")
    yield acct
    acct.stop()


def _run(script: str, account: Account) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLING_")}
    env.update(KLING_API_KEY=API_KEY, KLING_BASE_URL=account.url)
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_quickstart_runs(account: Account) -> None:
    """quickstart.py submits its vendor-form body, waits, and prints two image URLs."""
    proc = _run("quickstart.py", account)
    assert proc.returncode == 0, proc.stderr
    assert "status: succeeded" in proc.stdout
    assert proc.stdout.count("  image ") == 2


def test_stream_campaign_runs_every_image_line(account: Account) -> None:
    """stream_campaign.py reads the example campaign's image lines (Kling's body form) and
    prints each as it ends, none failed."""
    proc = _run("stream_campaign.py", account)
    assert proc.returncode == 0, proc.stderr
    lines = (ROOT / "examples" / "campaign.jsonl").read_text().splitlines()
    images = sum('"kind": "image"' in line for line in lines)
    assert proc.stdout.count("ok   ") == images and "FAIL" not in proc.stdout
