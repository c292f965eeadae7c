"""``Sandbox(state_file=...)``: a new sandbox process serves the tasks an earlier one accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kling_async as ka
from kling_async.testing import Sandbox

pytestmark = pytest.mark.anyio


async def test_a_new_sandbox_answers_for_the_old_ones_tasks(tmp_path: Path) -> None:
    """Tasks created on sandbox A are found, finished and downloaded through sandbox B on the
    same state file, and their slots stay held in B until their original end."""
    state = tmp_path / "state.jsonl"
    async with Sandbox(
        api_keys=("k",), quota={"image": 4}, image_duration=1.0, state_file=state
    ) as a:
        async with ka.KlingClient(api_key="k", base_url=a.base_url) as client:
            task = await client.submit(
                ka.OmniImageRequest(prompt="x", n=3, aspect_ratio="1:1", external_task_id="e-1")
            )
        old_url = a.base_url
    async with Sandbox(
        api_keys=("k",), quota={"image": 4}, image_duration=1.0, state_file=state
    ) as b:
        assert b.base_url == old_url  # the port was free again, so old result URLs stay valid
        assert [t.external_task_id for t in b.tasks] == ["e-1"]
        assert b.stats().pools["kling-image-o1:image"].in_use == 3  # still running: held
        async with ka.KlingClient(
            api_key="k", base_url=b.base_url, quota=ka.Quota(image=4)
        ) as client:
            refused = await client.run_all(
                [ka.OmniImageRequest(prompt="y", n=2, aspect_ratio="1:1")], deadline=0.3
            )
            assert isinstance(refused[0].error, ka.DeadlineExceededError)  # 3 + 2 > 4 slots
            result = await client.wait(task)
            assert result.status is ka.TaskStatus.SUCCEEDED and len(result.images) == 3
            saved = await client.download(result, tmp_path / "out")
    assert len(saved) == 3 and all(s.bytes > 0 for s in saved)


async def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    """A process killed mid-write leaves a torn last line; the next sandbox skips it."""
    state = tmp_path / "state.jsonl"
    async with (
        Sandbox(api_keys=("k",), image_duration=0.01, state_file=state) as a,
        ka.KlingClient(api_key="k", base_url=a.base_url) as client,
    ):
        await client.submit(ka.OmniImageRequest(prompt="x", external_task_id="kept"))
    with state.open("a") as fh:
        fh.write('{"task_id": "torn", "exter')
    async with Sandbox(api_keys=("k",), state_file=state) as b:
        assert [t.external_task_id for t in b.tasks] == ["kept"]


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    """A file that is not a sandbox state file is refused, naming it, not overwritten."""
    other = tmp_path / "notes.jsonl"
    other.write_text(json.dumps({"hello": 1}) + "\n")
    try:
        Sandbox(state_file=other)
    except ValueError as exc:
        assert str(other) in str(exc)
    else:
        raise AssertionError("accepted a foreign file")
    assert other.read_text() == json.dumps({"hello": 1}) + "\n"
