"""``kling-async gallery OUT`` and the manifest it reads: a real sandbox run (a subprocess of
``python -m kling_async run --sandbox``) leaves a folder; the gallery page made from it shows
every line with its files, escapes every untrusted text, and renders in headless Chromium
(every image decoded, the video playable, a screenshot that is not blank)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from .chromium import VIDEO_STATE_JS, open_page
from .conftest import QUICK_SANDBOX

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
CAMPAIGN = [
    {"kind": "image", "prompt": f"a red bicycle {HOSTILE}", "n": 2, "aspect_ratio": "3:4"},
    {
        "kind": "image",
        "model_name": "kling-v3-omni",
        "prompt": "three frames of a sunrise",
        "result_type": "series",
        "series_amount": 3,
        "aspect_ratio": "16:9",
    },
    {
        "kind": "video",
        "model_name": "kling-v3-omni",
        "prompt": "a paper boat on a pond",
        "aspect_ratio": "9:16",
        "duration": 5,
        "mode": "std",
    },
    {"kind": "image", "n": 1},  # invalid: no prompt
]


def _kling(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    return subprocess.run(
        [sys.executable, "-m", "kling_async", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The --out folder of one sandbox run of :data:`CAMPAIGN`, and the run's stderr."""
    base = tmp_path_factory.mktemp("gallery")
    campaign = base / "campaign.jsonl"
    campaign.write_text("".join(json.dumps(line) + "\n" for line in CAMPAIGN), encoding="utf-8")
    out = base / "out"
    proc = _kling("run", str(campaign), "--out", str(out), "--sandbox", *QUICK_SANDBOX)
    assert proc.returncode == 1, proc.stderr[-3000:]  # 1: the invalid line
    return out, proc.stderr


def _rows(out: Path) -> list[dict[str, Any]]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_manifest_rows_carry_prompt_model_urls_and_expiry(run_folder: tuple[Path, str]) -> None:
    """Each manifest row names its line's kind, model and prompt; a finished line also lists
    its result URLs and when they expire (30 days on Kling), beside the old fields."""
    out, _ = run_folder
    rows = {row["line"]: row for row in _rows(out)}
    image, series, video = rows[1], rows[2], rows[3]
    assert (image["kind"], image["model"], image["prompt"]) == (
        "image",
        "kling-image-o1",
        CAMPAIGN[0]["prompt"],
    )
    assert (series["model"], video["kind"], video["prompt"]) == (
        "kling-v3-omni",
        "video",
        "a paper boat on a pond",
    )
    for row, count in ((image, 2), (series, 3), (video, 1)):
        assert row["status"] == "succeeded" and len(row["files"]) == count
        assert len(row["urls"]) == count and all(u.startswith("http://") for u in row["urls"])
        assert row["urls_expire_at"] and row["task_id"] and row["units"]
    assert rows[4]["status"] == "invalid" and rows[4]["urls"] == []


def test_run_offers_the_gallery_command(run_folder: tuple[Path, str]) -> None:
    """At its end, a run without a gallery page tells the command that makes one."""
    out, stderr = run_folder
    assert f"kling-async gallery {out}" in " ".join(stderr.split())


@pytest.fixture(scope="module")
def gallery(run_folder: tuple[Path, str]) -> Path:
    out, _ = run_folder
    proc = _kling("gallery", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / "index.html")
    return out / "index.html"


def test_gallery_page_escapes_prompts_and_has_a_card_per_line(gallery: Path) -> None:
    """The page has one card per manifest line, and a prompt's HTML shows as text: no
    <script> or <img onerror> from the campaign reaches the markup."""
    html = gallery.read_text(encoding="utf-8")
    assert html.count('<article class="card"') == len(CAMPAIGN)
    assert "window.pwned" in html  # the prompt is shown...
    assert "<script>window.pwned" not in html and 'onerror="window' not in html  # ...as text
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing from a network


@pytest.mark.anyio
async def test_gallery_renders_in_chromium(gallery: Path) -> None:
    """Opened from disk in headless Chromium, every thumbnail decodes, the video has a decoded
    frame and its duration, no campaign script ran, the kind filter hides the other cards, and
    the screenshot is not one flat colour."""
    out = gallery.parent
    async with open_page(gallery.as_uri()) as page:
        widths = await page.evaluate(
            "Promise.all([...document.images].map(i => (i.loading = 'eager', "
            "i.decode().then(() => i.naturalWidth, () => 0))))"
        )
        videos = await page.evaluate(VIDEO_STATE_JS)
        pwned = await page.evaluate("window.pwned === undefined ? null : window.pwned")
        shown = await page.evaluate(
            "document.querySelector('button[data-filter=kind][data-value=video]').click(),"
            "[...document.querySelectorAll('article.card')].filter(c => !c.hidden)"
            ".map(c => c.dataset.kind)"
        )
        screenshot = await page.screenshot()
    images = [name for row in _rows(out) for name in row["files"] if name.endswith(".png")]
    assert len(widths) == len(images) == 5 and all(width > 0 for width in widths)
    ((ready, seconds, width, height, error),) = videos
    assert error is None and ready >= 2 and seconds == pytest.approx(5, abs=0.01)
    assert width / height == pytest.approx(9 / 16, rel=0.01)
    assert pwned is None
    assert shown == ["video"]
    with Image.open(io.BytesIO(screenshot)) as shot:
        low, high = zip(*shot.convert("RGB").getextrema(), strict=True)
        assert shot.width > 0 and low != high


def test_gallery_of_a_folder_without_manifest_is_a_setup_error(tmp_path: Path) -> None:
    """``gallery`` on a folder no run wrote to exits 2 with one line naming the folder."""
    proc = _kling("gallery", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"kling-async: {tmp_path}: no manifest.jsonl (is it the --out folder of a run?)"
    ]
