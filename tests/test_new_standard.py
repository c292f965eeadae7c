"""Kling's new standard for omni-video: bodies read verbatim, sent as contents / settings /
options, answers parsed; end to end against the sandbox's new-standard routes."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

import kling_async as ka
from kling_async._providers import codec_for
from kling_async.testing import Faults, Sandbox

from .conftest import API_KEY, FAST_RETRY, QUICK_SANDBOX

NEW = codec_for("kling", api_standard="new")
SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="


def _body(**settings: Any) -> dict[str, Any]:
    return {
        "model_name": "kling-3.0-omni",
        "contents": [
            {"type": "prompt", "text": "The bird of @image_1 meets @Zhang"},
            {"type": "first_frame", "url": "https://example.com/a.png", "id": "image_1"},
            {"type": "element", "element_id": "160", "id": "Zhang"},
        ],
        "settings": {"resolution": "1080p", "duration": 5, "multi_shot": False, **settings},
        "options": {"external_task_id": "line-1", "watermark_info": {"enabled": True}},
    }


def test_a_new_standard_body_is_read_verbatim() -> None:
    request = ka.OmniVideoRequest.from_wire(_body(audio="native"))
    assert request.model_name == "kling-v3-omni"
    assert request.prompt == "The bird of <<<image_1>>> meets <<<element_1>>>"
    assert request.image_list == (
        ka.VideoImage(image="https://example.com/a.png", type="first_frame"),
    )
    assert request.element_list == (160,)
    assert (request.sound, request.mode, request.duration) == ("on", "pro", 5)
    assert request.watermark is True and request.external_task_id == "line-1"


def test_what_is_read_is_sent_again_the_same() -> None:
    for body in (
        _body(audio="native"),
        {
            "model_name": "kling-3.0-omni",
            "contents": [{"type": "prompt", "text": "a red kite over the sea"}],
            "settings": {"aspect_ratio": "9:16", "resolution": "4k", "multi_shot": False},
        },
        {
            "model_name": "kling-3.0-omni",
            "contents": [
                {"type": "prompt", "text": "shot 1, 2, a cat walks; shot 2, 3, it sleeps;"}
            ],
            "settings": {"aspect_ratio": "16:9", "duration": 5},
        },
        {
            "model_name": "kling-o1",
            "contents": [
                {"type": "prompt", "text": "restyle @video_1"},
                {"type": "base_video", "url": "https://example.com/v.mp4", "id": "video_1"},
            ],
            "settings": {"audio": "original", "resolution": "720p", "duration": 5},
        },
    ):
        request = ka.OmniVideoRequest.from_wire(body)
        sent = NEW.build_create(request, "key-1")
        again = ka.OmniVideoRequest.from_wire({"model_name": body["model_name"], **sent})
        assert again == ka.OmniVideoRequest.from_wire(
            {**body, "options": {**body.get("options", {}), "external_task_id": "key-1"}}
        )
        assert NEW.build_create(again, "key-1") == sent


def test_the_body_follows_the_new_standard() -> None:
    request = ka.OmniVideoRequest.from_wire(_body(audio="native"))
    assert NEW.create_path(request) == "/omni-video/kling-3.0-omni"
    assert NEW.build_create(request, "line-1") == {
        "contents": [
            {"type": "prompt", "text": "The bird of @image_1 meets @element_1"},
            {"type": "first_frame", "url": "https://example.com/a.png", "id": "image_1"},
            {"type": "element", "element_id": "160", "id": "element_1"},
        ],
        "settings": {"audio": "native", "resolution": "1080p", "duration": 5, "multi_shot": False},
        "options": {"external_task_id": "line-1", "watermark_info": {"enabled": True}},
    }
    image = ka.OmniImageRequest(prompt="a cat")
    assert NEW.create_path(image) == "/v1/images/omni-image"  # images stay legacy


def test_new_standard_rules_are_checked_before_sending() -> None:
    o1_native = ka.OmniVideoRequest(
        prompt="a cat", model_name="kling-video-o1", sound="on", aspect_ratio="16:9"
    )
    with pytest.raises(ka.InvalidInputError, match="sound: 'on', kling-o1 has audio"):
        NEW.check(o1_native)
    NEW.check(ka.OmniVideoRequest(prompt="a cat", model_name="kling-video-o1", aspect_ratio="16:9"))


def test_a_unified_query_answer_is_parsed() -> None:
    [result] = NEW.parse_task_list(
        [
            {
                "id": "t1",
                "status": "succeeded",
                "message": "",
                "create_time": 1781080778802,
                "update_time": 1781080794151,
                "external_id": "line-1",
                "outputs": [
                    {"type": "video", "id": "v1", "url": "https://x/v.mp4",
                     "watermark_url": "https://x/w.mp4", "duration": "5.1"}
                ],
                "billing": [{"charge_type": "unit", "amount": "6.5", "package_type": "video"}],
            }
        ]
    )  # fmt: skip
    assert result.status is ka.TaskStatus.SUCCEEDED and result.external_task_id == "line-1"
    assert result.videos[0].url == "https://x/v.mp4" and result.videos[0].duration == 5.1
    assert result.units == Decimal("6.5")
    with pytest.raises(ka.UnknownStatusError):
        NEW.parse_task_list([{"id": "t2", "status": "queued"}])


def test_the_new_standard_takes_an_api_key_on_kling_only() -> None:
    with pytest.raises(ValueError, match="Kling's own API only"):
        codec_for("modellix", api_standard="new")
    with pytest.raises(ValueError, match="new-standard API takes an api_key only"):
        ka.KlingClient(access_key="ak", secret_key="sk", api_standard="new")
    with pytest.raises(ValueError, match="model_name: a new-standard body needs the model"):
        ka.OmniVideoRequest.from_wire({"contents": [{"type": "prompt", "text": "a cat"}]})


def _campaign_lines(folder: Path) -> list[dict[str, Any]]:
    """New-standard bodies of every documented shape, as campaign lines."""
    Image.new("RGB", (640, 480), (90, 140, 200)).save(folder / "bird.png")
    Image.new("RGB", (640, 480), (200, 140, 90)).save(folder / "end.png")
    clip = "https://example.com/clip.mp4"

    def line(model: str, contents: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
        return {"kind": "video", "model_name": model, "contents": contents, "settings": settings}

    def prompt(text: str) -> dict[str, Any]:
        return {"type": "prompt", "text": text}

    return [
        line("kling-3.0-omni", [prompt("a red kite over the sea")], aspect_ratio="16:9",
             multi_shot=False),
        line("kling-3.0-omni",
             [prompt("the bird of @image_1 flies to @image_2"),
              {"type": "first_frame", "url": "bird.png", "id": "image_1"},
              {"type": "last_frame", "url": "end.png", "id": "image_2"}],
             multi_shot=False, resolution="1080p"),
        line("kling-3.0-omni",
             [prompt("@image_1 in the style of @image_2"),
              {"type": "refer_image", "url": "bird.png", "id": "image_1"},
              {"type": "refer_image", "url": "end.png", "id": "image_2"}],
             aspect_ratio="1:1", multi_shot=False, audio="native"),
        line("kling-3.0-omni",
             [prompt("the next shot after @video_1"),
              {"type": "feature_video", "url": clip, "id": "video_1"}],
             aspect_ratio="16:9", multi_shot=True, audio="off"),
        line("kling-o1",
             [prompt("make @video_1 snowy"), {"type": "base_video", "url": clip, "id": "video_1"}],
             audio="original"),
        line("kling-3.0-omni",
             [prompt("@Zhang waves at the camera"),
              {"type": "element", "element_id": "160", "id": "Zhang"}],
             aspect_ratio="9:16", multi_shot=False),
        line("kling-3.0-omni",
             [prompt("shot 1, 2, a cat walks in; shot 2, 3, the cat sleeps;")],
             aspect_ratio="16:9", duration=5),
    ]  # fmt: skip


def test_a_new_standard_campaign_runs_through_the_cli(tmp_path: Path) -> None:
    campaign = tmp_path / "campaign.jsonl"
    lines = _campaign_lines(tmp_path)
    campaign.write_text("".join(json.dumps(body) + "\n" for body in lines))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "kling_async", "run", str(campaign), "--out", str(out),
         "--sandbox", *QUICK_SANDBOX, "--api-standard", "new"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["succeeded"] * len(lines)
    videos = sorted(out.glob("*.mp4"))
    assert len(videos) == len(lines)
    assert all(v.stat().st_size > 0 and v.read_bytes()[4:8] == b"ftyp" for v in videos)


async def _run_videos(sandbox: Sandbox, count: int, *, quota: int, poll: float) -> list[ka.Outcome]:
    """``count`` text-to-video requests in new-standard form, run on the new standard."""
    requests = [
        ka.OmniVideoRequest.from_wire(
            {"model_name": "kling-3.0-omni",
             "contents": [{"type": "prompt", "text": f"a kite, take {i}"}],
             "settings": {"aspect_ratio": "16:9", "multi_shot": False}}
        )
        for i in range(count)
    ]  # fmt: skip
    async with ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        api_standard="new",
        quota=ka.Quota(video=quota),
        video_poll_interval=poll,
        retry=FAST_RETRY,
    ) as client:
        return await client.run_all(requests)


@pytest.mark.anyio
async def test_faults_on_the_new_standard_never_bill_twice() -> None:
    """Creates that fail after making the task, dropped answers and failing queries: every
    video ends with one outcome, each looked up by ``external_task_ids`` instead of created
    twice."""
    faults = Faults(error_after_create=0.15, drop_after_create=0.15, query_error=0.1)
    async with Sandbox(
        api_keys=(API_KEY,),
        quota={"video": 5},
        video_duration=(0.1, 0.3),
        faults=faults,
        seed=11,
    ) as sandbox:
        outcomes = await _run_videos(sandbox, 40, quota=5, poll=0.05)
        stats = sandbox.stats()
    assert all(o.ok for o in outcomes), [str(o.error) for o in outcomes if not o.ok][:3]
    assert stats.faults_injected.get("error_after_create", 0) > 0
    assert stats.faults_injected.get("drop_after_create", 0) > 0
    assert stats.creates == 40 and stats.duplicate_external_ids == 0
    assert stats.batch_queries > 0 and stats.queries == 0 and stats.list_queries == 0


@pytest.mark.anyio
async def test_new_standard_callbacks_end_a_video_long_before_the_next_poll() -> None:
    """The sandbox posts new-standard callbacks (one /tasks item); the receiver routes them to
    the new codec's tasks, confirmed by one unified query."""
    async with (
        Sandbox(api_keys=(API_KEY,), callback_secret=SECRET, video_duration=0.1) as sandbox,
        ka.CallbackReceiver(secret=SECRET) as receiver,
        ka.KlingClient(
            api_key=API_KEY,
            base_url=sandbox.base_url,
            api_standard="new",
            callbacks=receiver,
            video_poll_interval=3600.0,  # an hour: no poll comes before the test ends
        ) as client,
    ):
        request = ka.OmniVideoRequest.from_wire(
            {"model_name": "kling-3.0-omni", "contents": [{"type": "prompt", "text": "a kite"}],
             "settings": {"aspect_ratio": "16:9", "multi_shot": False}}
        )  # fmt: skip
        with anyio.fail_after(60):  # a hang guard
            result = await client.wait(await client.submit(request))
        assert result.status is ka.TaskStatus.SUCCEEDED and result.videos
        assert receiver.stats.accepted >= 1 and receiver.stats.malformed == 0
        assert sandbox.stats().callbacks_sent >= 1


@pytest.mark.anyio
async def test_a_poll_asks_about_fifty_tasks_per_request() -> None:
    """120 videos in flight: each unified query names at most 50 ids, so one poll of all of
    them is three requests, never one per task."""
    async with Sandbox(
        api_keys=(API_KEY,), quota={"video": 120}, video_duration=(1.0, 1.2), seed=12
    ) as sandbox:
        outcomes = await _run_videos(sandbox, 120, quota=120, poll=0.3)
        stats = sandbox.stats()
    assert all(o.ok for o in outcomes)
    polls = stats.makespan / 0.3 + 2
    assert stats.batch_queries <= 3 * polls, (stats.batch_queries, polls)
    assert stats.batch_ids / stats.batch_queries > 25  # a query answers for many tasks
    assert stats.queries == 0 and stats.list_queries == 0


@pytest.mark.anyio
async def test_running_videos_are_listed_with_the_cursor_listing() -> None:
    """What a shared quota rebuilds from after Redis lost its state: ``POST /tasks`` filtered to
    running videos, page by page."""
    async with Sandbox(
        api_keys=(API_KEY,), quota={"video": 5}, video_duration=(3.0, 3.2), seed=14
    ) as sandbox:
        async with ka.KlingClient(
            api_key=API_KEY, base_url=sandbox.base_url, api_standard="new"
        ) as client:
            tasks = [
                await client.submit(
                    ka.OmniVideoRequest(prompt=f"kite {i}", model_name="kling-v3-omni",
                                        aspect_ratio="16:9")
                )
                for i in range(3)
            ]  # fmt: skip
            listed = await client._tracker.running_tasks("video")
        stats = sandbox.stats()
    assert sorted(listed) == sorted((t.task_id, t.external_task_id) for t in tasks)
    assert stats.list_queries == 1  # one POST /tasks page
