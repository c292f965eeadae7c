"""Local media are checked before a byte is read: a symlink to /dev/zero, a FIFO or an oversized
file is refused at once, naming the field and the rule, in the SDK, the campaign reader and a
real ``kling-async run`` process. A per-test timeout turns a regression (a read that never ends
or an open that blocks) into a failure instead of a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import kling_async as ka
from kling_async._requests._campaign import CampaignLine, CampaignLineError, read_campaign
from kling_async._requests._validate import check_local_image, check_local_video

from .conftest import QUICK_SANDBOX

pytestmark = pytest.mark.timeout(60)

MB = 1024 * 1024


def _zero_link(folder: Path, name: str) -> Path:
    link = folder / name
    link.symlink_to("/dev/zero")
    return link


def _fifo(folder: Path, name: str) -> Path:
    path = folder / name
    os.mkfifo(path)
    return path


def _sparse(folder: Path, name: str, size: int) -> Path:
    path = folder / name
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


@pytest.mark.timeout(10)
def test_a_symlink_to_dev_zero_is_not_read(tmp_path: Path) -> None:
    """An image or video path linking to /dev/zero is refused as not a regular file."""
    image, video = _zero_link(tmp_path, "ref.png"), _zero_link(tmp_path, "ref.mp4")
    with pytest.raises(
        ka.InvalidInputError, match=r"^image_list\[0\]: '.*ref\.png' is not a regular"
    ):
        check_local_image("image_list[0]", image)
    with pytest.raises(
        ka.InvalidInputError, match=r"^video_list\[0\]: '.*ref\.mp4' is not a regular"
    ):
        check_local_video("video_list[0]", video)


@pytest.mark.timeout(10)
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO with no writer is refused at once instead of blocking in open()."""
    fifo = _fifo(tmp_path, "pipe.png")
    with pytest.raises(ka.InvalidInputError, match=r"is not a regular file"):
        check_local_image("image_list[0]", fifo)


def test_an_oversized_file_is_refused_by_its_size(tmp_path: Path) -> None:
    """A file over the kind's documented limit (10 MB image, 200 MB video) is refused by its
    size, with both sizes in MB."""
    image = _sparse(tmp_path, "big.png", 25 * MB)
    video = _sparse(tmp_path, "big.mp4", 201 * MB)
    with pytest.raises(ka.InvalidInputError, match=r"'.*big\.png' is 25 MB, at most 10 MB allowed"):
        check_local_image("image_list[0]", image)
    with pytest.raises(ka.InvalidInputError, match=r"is 201 MB, at most 200 MB allowed"):
        check_local_video("video_list[0]", video)


@pytest.mark.timeout(10)
def test_the_campaign_reader_refuses_a_fifo_and_a_device(tmp_path: Path) -> None:
    """A campaign line naming a FIFO or a device is an invalid line; the next line is read."""
    _fifo(tmp_path, "pipe.png")
    _zero_link(tmp_path, "zero.png")
    lines = [
        {"kind": "image", "prompt": "a <<<image_1>>>", "image_list": [{"image": "pipe.png"}]},
        {"kind": "image", "prompt": "a <<<image_1>>>", "image_list": [{"image": "zero.png"}]},
        {"kind": "image", "prompt": "a red chair"},
    ]
    campaign = tmp_path / "campaign.jsonl"
    campaign.write_text("".join(json.dumps(line) + "\n" for line in lines))
    items = list(read_campaign(campaign))
    assert [type(item) for item in items] == [CampaignLineError, CampaignLineError, CampaignLine]
    for item in items[:2]:
        assert isinstance(item, CampaignLineError) and "is not a regular file" in item.reason


def test_run_marks_fifo_and_device_lines_invalid_and_runs_the_rest(tmp_path: Path) -> None:
    """kling-async run (a real process, on its sandbox) ends with a FIFO line and a /dev/zero
    line invalid and the normal line succeeded."""
    _fifo(tmp_path, "pipe.png")
    _zero_link(tmp_path, "zero.png")
    Image.new("RGB", (480, 360), (200, 120, 90)).save(tmp_path / "ref.png")
    lines = [
        {"kind": "image", "prompt": "a <<<image_1>>>", "image_list": [{"image": name}]}
        for name in ("pipe.png", "zero.png", "ref.png")
    ]
    campaign = tmp_path / "campaign.jsonl"
    campaign.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kling_async",
            "run",
            str(campaign),
            "--out",
            str(out),
            "--sandbox",
            *QUICK_SANDBOX,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["invalid", "invalid", "succeeded"], proc.stderr
    assert "pipe.png' is not a regular file" in rows[0]["error"]
    assert "zero.png' is not a regular file" in rows[1]["error"]
    assert proc.returncode == 1
