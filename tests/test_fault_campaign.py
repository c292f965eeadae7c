"""Never bill twice, never lose a result: a 300-request mixed campaign against a sandbox that
injects faults into 20 % of the answers (errors before and after create, dropped connections,
errors and malformed bodies on queries, slow answers, slow downloads) and fails some tasks.

Checked from the sandbox's own records: one outcome per request, exactly one task per request
(no duplicate ``external_task_id``, no duplicate content), every succeeded task's files on disk
and complete."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest
from PIL import Image

import kling_async as ka
from kling_async.testing import Faults, Sandbox

from .conftest import API_KEY, fast_retry

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REQUESTS = 300
# A 20 % fault rate: one create in five and one query in five meets a fault (spread over every
# kind the sandbox injects), and one answer or download in ten is slow.
FAULTS = Faults(
    error_before_create=0.07,
    error_after_create=0.07,
    drop_after_create=0.06,
    query_error=0.1,
    malformed_query=0.1,
    slow=0.1,
    slow_download=0.1,
    slow_seconds=0.3,
)


def _campaign(rng: random.Random, clip: Path) -> list[ka.Request]:
    requests: list[ka.Request] = []
    for i in range(REQUESTS):
        roll = rng.random()
        prompt = f"campaign shot {i}: product on a plinth, variant {rng.randint(0, 10**6)}"
        ext = f"fault-{i:04d}"
        if roll < 0.50:
            requests.append(
                ka.OmniImageRequest(prompt=prompt, n=rng.randint(1, 3), external_task_id=ext)
            )
        elif roll < 0.70:
            requests.append(
                ka.OmniImageRequest(
                    prompt=prompt,
                    model_name="kling-v3-omni",
                    aspect_ratio="3:4",
                    result_type="series",
                    series_amount=rng.randint(2, 4),
                    external_task_id=ext,
                )
            )
        elif roll < 0.80:
            requests.append(
                ka.OmniImageRequest(
                    prompt=prompt,
                    model_name="kling-v3-omni",
                    aspect_ratio="3:4",
                    result_type="series",
                    series_amount="auto",
                    external_task_id=ext,
                )
            )
        elif roll < 0.95:
            requests.append(
                ka.OmniVideoRequest(
                    prompt=prompt, aspect_ratio="16:9", duration=5, external_task_id=ext
                )
            )
        else:
            requests.append(
                ka.OmniVideoRequest(
                    prompt=prompt,
                    video_list=(ka.ReferenceVideo(video=clip, refer_type="feature"),),
                    aspect_ratio="16:9",
                    duration=5,
                    external_task_id=ext,
                )
            )
    return requests


async def test_300_requests_under_20_percent_faults(tmp_path: Path) -> None:
    clip = Path(__file__).parents[1] / "examples" / "media" / "product_turntable.mp4"
    requests = _campaign(random.Random(2026), clip)
    out = tmp_path / "out"
    saved: dict[str, list[ka.SavedFile]] = {}
    async with (
        Sandbox(
            api_keys=(API_KEY,),
            quota={"image": 9, "video": 5},
            image_duration=(0.05, 0.4),
            video_duration=(0.1, 0.5),
            fail_rate=0.05,
            faults=FAULTS,
            seed=20,
        ) as sb,
        ka.KlingClient(
            api_key=API_KEY,
            base_url=sb.base_url,
            image_poll_interval=0.05,
            video_poll_interval=0.05,
            request_timeout=5.0,
            retry=fast_retry(8),
        ) as client,
    ):
        outcomes: list[ka.Outcome] = []

        async def save(outcome: ka.Outcome) -> None:
            assert outcome.result is not None and outcome.task is not None
            for attempt in range(5):  # a download may meet an injected slow or broken answer
                try:
                    saved[outcome.task.external_task_id or ""] = await client.download(
                        outcome.result, out
                    )
                    return
                except ka.DownloadError:
                    if attempt == 4:
                        raise
                    await anyio.sleep(0.1)

        async with client.stream(requests) as stream, anyio.create_task_group() as tg:
            async for outcome in stream:
                outcomes.append(outcome)
                if outcome.ok:
                    tg.start_soon(save, outcome)
        stats = sb.stats()
        records = sb.tasks

    # Faults really were injected, of every kind.
    assert set(stats.faults_injected) >= {
        "error_before_create",
        "error_after_create",
        "drop_after_create",
        "query_error",
        "malformed_query",
        "slow",
    }, stats.faults_injected
    # Every request ended in exactly one outcome.
    assert sorted(o.index for o in outcomes) == list(range(REQUESTS))
    # Exactly one task per request: no duplicate external_task_id, no duplicate content.
    by_ext: dict[str, int] = {}
    for record in records:
        assert record.external_task_id is not None
        by_ext[record.external_task_id] = by_ext.get(record.external_task_id, 0) + 1
    assert by_ext == {r.external_task_id: 1 for r in requests}
    assert stats.duplicate_external_ids == 0
    prompts = [record.body["prompt"] for record in records]
    assert len(prompts) == len(set(prompts)) == REQUESTS
    # No request was lost to a fault: what failed, failed as a task (fail_rate), not as an
    # error of ours.
    for outcome in outcomes:
        if not outcome.ok:
            assert isinstance(outcome.error, ka.TaskFailedError), outcome.error
            assert outcome.error.task_status_msg
    # Every succeeded task's files are on disk and complete (size and bytes as served).
    succeeded = [o for o in outcomes if o.ok]
    assert len(succeeded) >= REQUESTS * 0.85
    for outcome in succeeded:
        assert outcome.result is not None and outcome.task is not None
        files = saved[outcome.task.external_task_id or ""]
        expected = (
            len(outcome.result.images)
            + len(outcome.result.series_images)
            + len(outcome.result.videos)
        )
        assert len(files) == expected > 0
        for f in files:
            assert f.path.exists() and f.path.stat().st_size == f.bytes > 0
            _assert_complete(f)
    assert not list(out.glob("*.part")) and not list(out.glob(".*tmp*"))


def _assert_complete(saved: ka.SavedFile) -> None:
    """A whole file: a PNG that decodes to the end, or an MP4 whose boxes add up to its size."""
    data = saved.path.read_bytes()
    if saved.path.suffix == ".png":
        with Image.open(saved.path) as image:
            image.load()
        assert data.endswith(b"IEND\xaeB`\x82")
    else:
        assert saved.path.suffix == ".mp4" and data[4:8] == b"ftyp"
        offset = 0
        while offset < len(data):
            size = int.from_bytes(data[offset : offset + 4], "big")
            assert size >= 8, f"{saved.path.name}: bad box at {offset}"
            offset += size
        assert offset == len(data), f"{saved.path.name}: truncated"
