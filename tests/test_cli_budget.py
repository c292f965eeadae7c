"""The command line's money: ``kling-async estimate`` and ``run --budget``, units per line in
the manifest and in the summary."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from kling_async import cli
from kling_async.cli import RunOptions, run_campaign
from kling_async.testing import Sandbox

from .conftest import API_KEY

# Kling's price list: Image O1 8 units per image; Kling 3.0 Omni video 1080p with native audio
# 1.0 unit per second; nothing published for Kling O1 with sound.
CAMPAIGN = "\n".join(
    [
        '{"kind": "image", "prompt": "a red chair", "n": 2}',
        '{"kind": "image", "prompt": "a blue chair", "n": 2}',
        '{"kind": "video", "model_name": "kling-v3-omni", "prompt": "a chair turns", '
        '"sound": "on", "duration": "5", "aspect_ratio": "16:9"}',
        '{"kind": "video", "model_name": "kling-video-o1", "prompt": "a chair turns", '
        '"sound": "on", "aspect_ratio": "16:9"}',
        '{"kind": "image", "prompt": "", "n": 1}',
    ]
)


def _campaign(tmp_path: Path, text: str = CAMPAIGN) -> Path:
    path = tmp_path / "campaign.jsonl"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_estimate_prints_each_class_its_basis_and_the_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two lines of one class are grouped; the total counts what has a price; the unpriced
    class and the invalid line are named; an invalid line makes the status 1."""
    status = cli.main(["estimate", str(_campaign(tmp_path))])
    out = capsys.readouterr().out
    assert status == 1
    assert "2 × kling-image-o1, image, 1k, 2 images: 16 units each, 32 in all" in out
    assert "https://kling.ai/document-api/pricing/base/image" in out
    assert "kling-v3-omni, video, pro, sound on, no video input, 5 seconds: 5.0 units" in out
    assert "kling-video-o1, video, pro, sound on, no video input, 5 seconds: unknown" in out
    assert "total: 37.0 units for 3 of 4 valid lines; 1 line(s) of unknown cost" in out
    assert "line 5: invalid: prompt" in out


def test_estimate_of_a_clean_campaign_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _campaign(tmp_path, '{"kind": "image", "prompt": "a chair", "resolution": "2k"}')
    assert cli.main(["estimate", str(path)]) == 0
    assert "total: 8 units for 1 of 1 valid lines" in capsys.readouterr().out


def test_estimate_of_a_missing_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["estimate", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err


@pytest.mark.anyio
async def test_run_with_a_budget_stops_within_one_tasks_cost(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--budget 40 over six 16-unit lines: two run (32 units), the rest are over_budget in
    the manifest with nothing sent; units per line and in all are in manifest and summary."""
    monkeypatch.setenv("KLING_API_KEY", API_KEY)
    lines = [f'{{"kind": "image", "prompt": "chair {i}", "n": 2}}' for i in range(6)]
    console = Console(file=io.StringIO(), width=300)
    options = RunOptions(
        campaign=_campaign(tmp_path, "\n".join(lines)),
        out=tmp_path / "out",
        base_url=sandbox.base_url,
        budget=Decimal(40),
    )
    assert await run_campaign(options, console) == 1
    rows = [json.loads(r) for r in (tmp_path / "out/manifest.jsonl").read_text().splitlines()]
    done = [r for r in rows if r["status"] == "succeeded"]
    over = [r for r in rows if r["status"] == "over_budget"]
    assert len(done) == 2 and all(r["units"] == "16" for r in done)
    assert len(over) == 4 and all(r["units"] is None and r["task_id"] is None for r in over)
    assert "budget_units=40 reached" in over[0]["error"]
    assert sandbox.stats().creates == 2
    summary = console.file.getvalue()  # type: ignore[attr-defined]
    assert "4 over budget (not created)" in summary
    assert "32 units charged of the budget of 40" in summary


def test_a_budget_on_modellix_is_a_setup_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLIX_API_KEY", "k")
    args = ["run", str(_campaign(tmp_path)), "--out", str(tmp_path / "o"), "--budget", "100"]
    assert cli.main([*args, "--provider", "modellix"]) == 2
    assert "--budget: modellix reports no units" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3", "lots", "nan"])
def test_a_bad_budget_is_refused_by_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(_campaign(tmp_path)), "--out", str(tmp_path), "--budget", value])
    assert exit_info.value.code == 2
    assert "positive number of units" in capsys.readouterr().err
