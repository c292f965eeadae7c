"""Money across resumes: ``run --budget-total`` caps every run into one ``--out`` together, and
the summary tells the units of this run and of the campaign so far, and why a budget was
passed. Real runs (``run_campaign``) against the sandbox, resumed into the same folder."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from kling_async.cli import RunOptions, run_campaign
from kling_async.testing import Sandbox

from .conftest import API_KEY

pytestmark = pytest.mark.anyio

# Image O1: 8 units per image (Kling's price list), so each line is 16 units.
SIX_LINES = "".join(f'{{"kind": "image", "prompt": "chair {i}", "n": 2}}\n' for i in range(6))


async def _run(folder: Path, sandbox: Sandbox, **budgets: Decimal) -> tuple[int, str, list]:
    campaign = folder / "campaign.jsonl"
    if not campaign.exists():
        campaign.write_text(SIX_LINES, encoding="utf-8")
    console = Console(file=io.StringIO(), width=400)
    options = RunOptions(
        campaign=campaign, out=folder / "out", base_url=sandbox.base_url, **budgets
    )
    status = await run_campaign(options, console)
    rows = [json.loads(r) for r in (folder / "out/manifest.jsonl").read_text().splitlines()]
    return status, " ".join(console.file.getvalue().split()), rows  # type: ignore[attr-defined]


async def test_budget_total_caps_the_campaign_across_resumes(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--budget-total 40: the first run makes two 16-unit lines; a resume with the same total
    creates nothing (8 left), one with 80 makes three more; each summary gives this run's
    units and the campaign's so far."""
    monkeypatch.setenv("KLING_API_KEY", API_KEY)
    status, summary, rows = await _run(tmp_path, sandbox, budget_total=Decimal(40))
    assert status == 1 and [r["status"] for r in rows].count("succeeded") == 2
    assert "units: 32 charged by this run, 32 by the campaign so far" in summary
    assert "of the budget total of 40" in summary

    status, summary, rows = await _run(tmp_path, sandbox, budget_total=Decimal(40))
    assert [r["status"] for r in rows].count("succeeded") == 2 and sandbox.stats().creates == 2
    assert "units: 0 charged by this run, 32 by the campaign so far" in summary

    status, summary, rows = await _run(tmp_path, sandbox, budget_total=Decimal(80))
    assert [r["status"] for r in rows].count("succeeded") == 5 and sandbox.stats().creates == 5
    assert "units: 48 charged by this run, 80 by the campaign so far" in summary


async def test_a_spent_budget_total_sends_nothing_new_but_keeps_what_was_made(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once --budget-total is spent, a resume sends no create: the lines made earlier stay
    succeeded, the others are over_budget with the reason."""
    monkeypatch.setenv("KLING_API_KEY", API_KEY)
    await _run(tmp_path, sandbox, budget=Decimal(32))
    status, summary, rows = await _run(tmp_path, sandbox, budget_total=Decimal(32))
    assert status == 1 and sandbox.stats().creates == 2
    assert [r["status"] for r in rows] == ["succeeded"] * 2 + ["over_budget"] * 4
    assert rows[2]["error"].startswith("--budget-total 32 is spent (32 units charged by earlier")
    assert "4 over budget (not created)" in summary


async def test_a_run_past_its_budget_by_an_unknown_price_says_why(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task of a class with no price (Kling O1 video with sound) may run alone under
    --budget 1; when its charge passes the budget the summary says by how much and why."""
    monkeypatch.setenv("KLING_API_KEY", API_KEY)
    (tmp_path / "campaign.jsonl").write_text(
        '{"kind": "video", "model_name": "kling-video-o1", "prompt": "a chair turns", '
        '"sound": "on", "aspect_ratio": "16:9"}\n',
        encoding="utf-8",
    )
    _, summary, rows = await _run(tmp_path, sandbox, budget=Decimal(1))
    charged = Decimal(rows[0]["units"])
    assert rows[0]["status"] == "succeeded" and charged > 1
    assert f"this run passed its budget of 1 units by {charged - 1}" in summary
    assert "a task of a price class with no estimate yet" in summary
