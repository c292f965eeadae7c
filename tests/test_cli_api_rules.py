"""The command line checks campaign lines by the rules of the run's wire API (issue 23).

Real ``python -m kling_async`` processes: ``--api-standard new`` runs the example campaign to the
end, ``estimate`` takes ``--provider`` / ``--api-standard`` and checks lines as a run would, and
the new standard with only AccessKey/SecretKey stops at once with one line saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import QUICK_SANDBOX

ROOT = Path(__file__).resolve().parent.parent


def _kling_async(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    return subprocess.run(
        [sys.executable, "-m", "kling_async", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_example_campaign_runs_on_the_new_standard(tmp_path: Path) -> None:
    """examples/campaign.jsonl with --api-standard new: every line succeeds (the feature-video
    line that sets no multi_shot takes the new standard's default, true)."""
    out = tmp_path / "out"
    proc = _kling_async(
        "run",
        "examples/campaign.jsonl",
        "--out",
        str(out),
        "--sandbox",
        *QUICK_SANDBOX,
        "--api-standard",
        "new",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) >= 20
    assert all(r["status"] == "succeeded" and r["files"] for r in rows), [
        (r["line"], r.get("error")) for r in rows if r["status"] != "succeeded"
    ]


def test_new_standard_with_only_access_keys_says_it_needs_an_api_key(tmp_path: Path) -> None:
    """--api-standard new with only KLING_ACCESS_KEY/KLING_SECRET_KEY: exit 2, one line saying
    the new standard takes an API key, nothing else printed."""
    proc = _kling_async(
        "run",
        "examples/campaign.jsonl",
        "--out",
        str(tmp_path / "o"),
        "--api-standard",
        "new",
        env={"KLING_ACCESS_KEY": "ak", "KLING_SECRET_KEY": "sk"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "kling-async: Kling's new-standard API takes an API key (KLING_API_KEY); "
        "AccessKey/SecretKey are for the legacy standard"
    ]
    assert proc.stdout == "" and not (tmp_path / "o").exists()


def test_estimate_checks_lines_by_the_chosen_wire_api(tmp_path: Path) -> None:
    """A new-standard O1 text-to-video of 7 s with a first frame and an aspect ratio is refused
    by the legacy rules ('estimate' exits 1 naming the line) and accepted with
    --api-standard new (exit 0); the Modellix page's own prompt-only body passes with
    --provider modellix."""
    campaign = tmp_path / "c.jsonl"
    line = {
        "kind": "video",
        "model_name": "kling-video-o1",
        "prompt": "a kite over the dunes",
        "image_list": [{"image_url": "https://example.com/kite.png", "type": "first_frame"}],
        "video_list": [{"video_url": "https://example.com/kite.mp4", "refer_type": "feature"}],
        "aspect_ratio": "16:9",
        "duration": "7",
    }
    campaign.write_text(json.dumps(line) + "\n", encoding="utf-8")
    legacy = _kling_async("estimate", str(campaign))
    assert legacy.returncode == 1, legacy.stderr
    assert "line 1: invalid: aspect_ratio: '16:9', not supported with a first frame" in (
        legacy.stdout
    )
    new = _kling_async("estimate", str(campaign), "--api-standard", "new")
    assert new.returncode == 0, new.stdout + new.stderr
    assert "invalid" not in new.stdout

    modellix = tmp_path / "m.jsonl"
    body = {
        "kind": "video",
        "provider": "modellix",
        "model_name": "kling-v3-omni-video",
        "prompt": "a rainy street",
    }
    modellix.write_text(json.dumps(body) + "\n", encoding="utf-8")
    on_kling = _kling_async("estimate", str(modellix))
    assert on_kling.returncode == 1 and "aspect_ratio: None, required" in on_kling.stdout
    proc = _kling_async("estimate", str(modellix), "--provider", "modellix")
    assert proc.returncode == 0, proc.stdout + proc.stderr
