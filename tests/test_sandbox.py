"""The sandbox server speaks Kling's native API as the reference documents it.

Real sockets on 127.0.0.1 and a plain aiohttp client: these tests never import the SDK.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

import kling_async.testing as testing
from kling_async.testing import Sandbox
from kling_async.testing._media import png_bytes
from kling_async.testing._state import Pool

pytestmark = pytest.mark.anyio

KEY = "sk-test"
AK, SK = "ak-test", "sk-secret-0123456789abcdef0123456789"
IMAGE = "/v1/images/omni-image"
VIDEO = "/v1/videos/omni-video"
VIDEO_BODY: dict[str, Any] = {
    "model_name": "kling-video-o1",
    "prompt": "a drone shot over a lake",
    "aspect_ratio": "16:9",
    "duration": "5",
}


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp is asyncio-only."""
    return "asyncio"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A sandbox with fixed short durations: images 0.1 s, videos 0.15 s."""
    async with Sandbox(
        api_keys=(KEY,),
        access_keys={AK: SK},
        quota={"image": 9, "video": 5},
        image_duration=0.1,
        video_duration=0.15,
        seed=7,
    ) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session that sends the test API key."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
        yield session


async def call(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """One request; returns (HTTP status, JSON body)."""
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.json()


async def create(
    session: aiohttp.ClientSession, sb: Sandbox, body: dict[str, Any], path: str = IMAGE
) -> tuple[int, dict[str, Any]]:
    """POST a create body."""
    return await call(session, "POST", sb.base_url + path, json=body)


async def wait_done(
    session: aiohttp.ClientSession, sb: Sandbox, task_id: str, path: str = IMAGE
) -> dict[str, Any]:
    """Poll a task until it is terminal; return its data."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status, body = await call(session, "GET", f"{sb.base_url}{path}/{task_id}")
        assert status == 200, body
        if body["data"]["task_status"] in ("succeed", "failed"):
            return dict(body["data"])
        await asyncio.sleep(0.02)
    raise AssertionError("task did not finish")


def b64png(size: int) -> str:
    """Raw base64 of a size×size PNG."""
    return base64.b64encode(png_bytes("ref", size)).decode()


# --- lifecycle, results, files ------------------------------------------------------------


async def test_exports_are_sorted_and_complete() -> None:
    """kling_async.testing exports a sorted __all__ of names that exist."""
    assert testing.__all__ == sorted(testing.__all__)
    assert all(hasattr(testing, name) for name in testing.__all__)


async def test_image_create_query_and_png_download(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """An image create returns submitted; once done the query lists n signed PNG URLs."""
    status, body = await create(http, sb, {"prompt": "a red apple", "n": 2})
    assert status == 200 and body["code"] == 0 and body["request_id"]
    data = body["data"]
    assert data["task_status"] == "submitted" and data["task_info"] == {"external_task_id": ""}
    assert isinstance(data["created_at"], int) and data["created_at"] > 1_600_000_000_000
    done = await wait_done(http, sb, data["task_id"])
    assert done["task_status"] == "succeed" and done["task_status_msg"] == ""
    assert done["task_result"]["result_type"] == "single"
    assert [im["index"] for im in done["task_result"]["images"]] == [0, 1]
    assert done["task_result"]["series_images"] == []
    assert done["final_unit_deduction"] == "16" and done["updated_at"] >= done["created_at"]
    url = done["task_result"]["images"][0]["url"]
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as response:
        # no Authorization header needed for result files
        assert response.status == 200 and response.content_type == "image/png"
        assert (await response.read()).startswith(b"\x89PNG\r\n\x1a\n")


async def test_video_create_query_and_mp4_download(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A video task ends with one video (duration a string) whose URL serves real MP4 bytes."""
    status, body = await create(http, sb, VIDEO_BODY, VIDEO)
    assert status == 200, body
    done = await wait_done(http, sb, body["data"]["task_id"], VIDEO)
    [video] = done["task_result"]["videos"]
    assert video["duration"] == "5" and video["id"] and video["watermark_url"] == ""
    async with http.get(video["url"]) as response:
        assert response.status == 200 and response.content_type == "video/mp4"
        assert (await response.read())[4:8] == b"ftyp"


async def test_status_timeline_and_result_only_when_done(
    http: aiohttp.ClientSession,
) -> None:
    """A task is submitted, then processing after ~10 % of its time, then succeed with results."""
    async with Sandbox(api_keys=(KEY,), image_duration=0.6) as sb:
        _, body = await create(http, sb, {"prompt": "x"})
        task_id = body["data"]["task_id"]
        url = f"{sb.base_url}{IMAGE}/{task_id}"
        _, first = await call(http, "GET", url)
        assert first["data"]["task_status"] == "submitted"
        assert first["data"]["task_result"]["images"] == []
        assert first["data"]["final_unit_deduction"] == "0"
        await asyncio.sleep(0.2)
        _, middle = await call(http, "GET", url)
        assert middle["data"]["task_status"] == "processing"
        assert middle["data"]["updated_at"] > middle["data"]["created_at"]
        done = await wait_done(http, sb, task_id)
        assert len(done["task_result"]["images"]) == 1


async def test_query_by_external_task_id(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A task can be queried by its external_task_id as well as its task_id."""
    _, body = await create(http, sb, {"prompt": "x", "external_task_id": "job-1"})
    assert body["data"]["task_info"]["external_task_id"] == "job-1"
    status, by_ext = await call(http, "GET", f"{sb.base_url}{IMAGE}/job-1")
    assert status == 200 and by_ext["data"]["task_id"] == body["data"]["task_id"]
    assert sb.tasks[0].external_task_id == "job-1" and sb.tasks[0].body["prompt"] == "x"


async def test_unknown_id_and_wrong_kind_are_1203(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """An unknown id, or an image id on the video route, is HTTP 404 code 1203 without data."""
    _, body = await create(http, sb, {"prompt": "x"})
    for url in (f"{sb.base_url}{IMAGE}/nope", f"{sb.base_url}{VIDEO}/{body['data']['task_id']}"):
        status, answer = await call(http, "GET", url)
        assert (status, answer["code"]) == (404, 1203) and "data" not in answer


async def test_list_pages_newest_first(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """The list query pages tasks newest first and refuses out-of-range page parameters."""
    ids = []
    for i in range(5):
        _, body = await create(http, sb, {"prompt": f"p{i}"})
        ids.append(body["data"]["task_id"])
    _, page1 = await call(http, "GET", f"{sb.base_url}{IMAGE}?pageNum=1&pageSize=2")
    _, page3 = await call(http, "GET", f"{sb.base_url}{IMAGE}?pageNum=3&pageSize=2")
    _, default = await call(http, "GET", sb.base_url + IMAGE)
    assert [t["task_id"] for t in page1["data"]] == ids[::-1][:2]
    assert [t["task_id"] for t in page3["data"]] == ids[:1]
    assert len(default["data"]) == 5 and "task_result" in default["data"][0]
    _, videos = await call(http, "GET", sb.base_url + VIDEO)
    assert videos["data"] == []
    for query in ("pageSize=501", "pageNum=0", "pageNum=1001", "pageSize=x"):
        status, bad = await call(http, "GET", f"{sb.base_url}{IMAGE}?{query}")
        assert (status, bad["code"]) == (400, 1201), query
    assert sb.stats().list_queries == 8


# --- auth ---------------------------------------------------------------------------------


def _token(**overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": AK, "exp": now + 1800, "nbf": now - 5}
    claims.update(overrides)
    key = claims.pop("key", SK)
    return jwt.encode(claims, key, algorithm="HS256", headers={"typ": "JWT"})


def _header(case: str) -> str | None:
    now = int(time.time())
    return {
        "missing": None,
        "empty": "",
        "unknown key": "Bearer wrong-key",
        "not bearer": f"Token {KEY}",
        "bad signature": "Bearer " + _token(key="not-the-secret-0123456789abcdef0123"),
        "unknown iss": "Bearer " + _token(iss="someone-else"),
        "garbage jwt": "Bearer a.b.c",
        "nbf in future": "Bearer " + _token(nbf=now + 600),
        "expired": "Bearer " + _token(exp=now - 10),
    }[case]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", 1001),
        ("empty", 1001),
        ("unknown key", 1002),
        ("not bearer", 1002),
        ("bad signature", 1002),
        ("unknown iss", 1002),
        ("garbage jwt", 1002),
        ("nbf in future", 1003),
        ("expired", 1004),
    ],
)
async def test_auth_failures_have_documented_codes(sb: Sandbox, case: str, code: int) -> None:
    """Missing → 1001, invalid/unknown/bad signature → 1002, nbf → 1003, expired → 1004 (401)."""
    header = _header(case)
    headers = {} if header is None else {"Authorization": header}
    async with aiohttp.ClientSession() as session:
        status, body = await call(session, "GET", sb.base_url + IMAGE, headers=headers)
    assert (status, body["code"]) == (401, code) and "data" not in body
    assert sb.stats().errors_by_code == {code: 1}


async def test_valid_jwt_is_accepted_and_other_alg_refused(sb: Sandbox) -> None:
    """An HS256 JWT signed with the secret key is accepted; an HS512 one is refused."""
    good = {"Authorization": "Bearer " + _token()}
    now = int(time.time())
    other = jwt.encode({"iss": AK, "exp": now + 60, "nbf": now - 5}, SK * 2, algorithm="HS512")
    async with aiohttp.ClientSession() as session:
        status, _ = await call(
            session, "POST", sb.base_url + IMAGE, json={"prompt": "x"}, headers=good
        )
        assert status == 200
        bad = {"Authorization": "Bearer " + other}
        status, body = await call(session, "GET", sb.base_url + IMAGE, headers=bad)
        assert (status, body["code"]) == (401, 1002)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"prompt": "x", "negative_prompt": "y"}, "unknown field 'negative_prompt'"),
        ({"prompt": "x", "image_list": [{"image_url": "https://a/b.png"}]}, "image_list[0].image"),
        ({"prompt": "x", "image_list": [{"image": "data:image/png;base64,AAAA"}]}, "'data:'"),
        ({"prompt": "x", "image_list": [{"image": "not base64!"}]}, "base64"),
        ({"prompt": "x", "image_list": [{"image": ""}]}, "non-empty"),
        ({"prompt": "x", "n": 12}, "n must be an integer in [1, 9], got 12"),
        ({"prompt": "x", "n": "2"}, "n must be an integer"),
        ({"prompt": "x", "n": True}, "n must be an integer"),
        ({}, "prompt is required"),
        ({"prompt": ""}, "prompt must have 1 to 2500"),
        ({"prompt": "x" * 2501}, "prompt must have 1 to 2500 characters, got 2501"),
        ({"prompt": "x", "resolution": "4k"}, "resolution 4k"),
        ({"prompt": "x", "resolution": "2K"}, "resolution must be one of"),
        ({"prompt": "x", "result_type": "series"}, "series is not supported by kling-image-o1"),
        ({"prompt": "x", "model_name": "kling-v3-omni"}, "aspect_ratio auto"),
        (
            {
                "prompt": "x",
                "model_name": "kling-v3-omni",
                "aspect_ratio": "1:1",
                "result_type": "series",
                "series_amount": 10,
            },
            "series_amount must be an integer in [2, 9] or 'auto'",
        ),
        ({"prompt": "x", "element_list": [{"element_id": "160"}]}, "element_id"),
        (
            {"prompt": "x", "element_list": [{"element_id": i + 1} for i in range(11)]},
            "at most 10",
        ),
        ({"prompt": "x", "aspect_ratio": "5:4"}, "aspect_ratio"),
        ({"prompt": "x", "watermark_info": {"enabled": "yes"}}, "watermark_info.enabled"),
        ({"prompt": "x", "watermark_info": True}, "watermark_info"),
        ({"prompt": "x", "callback_url": "ftp://x"}, "callback_url"),
        ({"prompt": "x", "external_task_id": 5}, "external_task_id"),
        ({"prompt": "x", "model_name": "kling-v1"}, "model_name"),
    ],
)
async def test_image_validation_rejects_with_1201(
    sb: Sandbox, http: aiohttp.ClientSession, body: dict[str, Any], fragment: str
) -> None:
    """A create body breaking an omni-image rule is 400/1201 naming the rule; nothing is created."""
    status, answer = await create(http, sb, body)
    assert (status, answer["code"]) == (400, 1201), answer
    assert fragment in answer["message"] and "data" not in answer
    assert sb.stats().creates == 0 and sb.stats().create_attempts == 1


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"duration": 5}, "duration must be a string"),
        (
            {
                "duration": "7",
                "image_list": [{"image_url": "https://a/b.png", "type": "first_frame"}],
            },
            '"5" or "10"',
        ),
        ({"duration": "11"}, 'duration must be "3" to "10"'),
        ({"model_name": "kling-v3-omni", "duration": "16"}, '"3" to "15"'),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"aspect_ratio": None}, "aspect_ratio"),
        ({"image_list": [{"image": "https://a/b.png"}]}, "image_list[0].image_url"),
        ({"image_list": [{"image_url": "https://a/b.png", "type": "end_frame"}]}, "end_frame"),
        ({"mode": "4k"}, "mode 4k"),
        ({"sound": "yes"}, "sound"),
        (
            {
                "sound": "on",
                "video_list": [{"video_url": "https://a/v.mp4", "refer_type": "feature"}],
            },
            "sound must be off",
        ),
        ({"video_list": [{"video_url": "https://a/v.mp4"}] * 2}, "at most 1"),
        ({"multi_shot": True}, "shot_type is required"),
        (
            {
                "multi_shot": True,
                "shot_type": "customize",
                "multi_prompt": [
                    {"index": 1, "prompt": "a", "duration": "2"},
                    {"index": 2, "prompt": "b", "duration": "2"},
                ],
            },
            "add up to duration 5",
        ),
        ({"prompt": None}, "prompt"),
        ({"cfg_scale": 0.5}, "unknown field 'cfg_scale'"),
    ],
)
async def test_video_validation_rejects_with_1201(
    sb: Sandbox, http: aiohttp.ClientSession, changes: dict[str, Any], fragment: str
) -> None:
    """A create body breaking an omni-video rule is 400/1201 naming the rule."""
    body = {**VIDEO_BODY, **changes}
    body = {k: v for k, v in body.items() if v is not None}
    status, answer = await create(http, sb, body, VIDEO)
    assert (status, answer["code"]) == (400, 1201), answer
    assert fragment in answer["message"], answer["message"]


async def test_valid_varied_bodies_are_accepted(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """Documented bodies pass: base64 PNG refs, elements, series, storyboard, first frame."""
    image_bodies: list[dict[str, Any]] = [
        {"prompt": "like <<<image_1>>>", "image_list": [{"image": b64png(400)}], "n": 9},
        {
            "model_name": "kling-v3-omni",
            "prompt": "x",
            "resolution": "4k",
            "result_type": "series",
            "series_amount": 3,
            "aspect_ratio": "auto",
            "element_list": [{"element_id": 829836802793406551}],
            "watermark_info": {"enabled": True},
            "external_task_id": "ok-1",
        },
    ]
    video_bodies: list[dict[str, Any]] = [
        {
            "model_name": "kling-v3-omni",
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": [
                {"index": 1, "prompt": "a", "duration": "4"},
                {"index": 2, "prompt": "b", "duration": "3"},
            ],
            "duration": "7",
            "aspect_ratio": "9:16",
            "mode": "4k",
            "sound": "on",
        },
        {
            "model_name": "kling-video-o1",
            "prompt": "go",
            "image_list": [{"image_url": b64png(400), "type": "first_frame"}],
            "duration": "10",
        },
        {
            "prompt": "edit <<<video_1>>>",
            "duration": "3",
            "mode": "std",
            "video_list": [
                {"video_url": "https://a/v.mp4", "refer_type": "base", "keep_original_sound": "yes"}
            ],
        },
    ]
    for body in image_bodies:
        status, answer = await create(http, sb, body)
        assert status == 200, answer
    for video in video_bodies:
        status, answer = await create(http, sb, video, VIDEO)
        assert status == 200, answer


async def test_small_or_non_image_base64_is_refused(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """Base64 references must decode to a JPEG/PNG at least 300 px a side."""
    small = {"prompt": "x", "image_list": [{"image": b64png(100)}]}
    text = {"prompt": "x", "image_list": [{"image": base64.b64encode(b"hello").decode()}]}
    for body, fragment in ((small, "300 px"), (text, "JPEG or PNG")):
        status, answer = await create(http, sb, body)
        assert status == 400 and fragment in answer["message"]


async def test_malformed_json_is_1200(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A body that is not JSON is 400/1200; a JSON array is 400/1201."""
    status, answer = await call(http, "POST", sb.base_url + IMAGE, data=b"{not json")
    assert (status, answer["code"]) == (400, 1200)
    status, answer = await create(http, sb, [{"prompt": "x"}])  # type: ignore[arg-type]
    assert (status, answer["code"]) == (400, 1201)


async def test_duplicate_external_task_id_is_refused(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A reused external_task_id (also across kinds) is 400/1201 and counted."""
    assert (await create(http, sb, {"prompt": "x", "external_task_id": "dup"}))[0] == 200
    status, answer = await create(http, sb, {"prompt": "y", "external_task_id": "dup"})
    assert (status, answer["code"]) == (400, 1201) and "already exists" in answer["message"]
    status, _ = await create(http, sb, {**VIDEO_BODY, "external_task_id": "dup"}, VIDEO)
    assert status == 400
    stats = sb.stats()
    assert stats.duplicate_external_ids == 2 and stats.creates == 1


async def test_unknown_route_is_1202(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """An unknown route or method answers the envelope with 404/1202."""
    for method, path in (("GET", "/v1/images/generations/x"), ("DELETE", IMAGE)):
        status, answer = await call(http, method, sb.base_url + path)
        assert (status, answer["code"]) == (404, 1202)


# --- quota --------------------------------------------------------------------------------


async def test_1303_when_pool_full_then_admitted_after_tasks_end(
    http: aiohttp.ClientSession,
) -> None:
    """Creates beyond the pool's free slots get 429/1303; slots free at task end, unqueried."""
    async with Sandbox(api_keys=(KEY,), quota={"image": 3}, image_duration=0.4) as sb:
        assert (await create(http, sb, {"prompt": "a", "n": 2}))[0] == 200
        status, answer = await create(http, sb, {"prompt": "b", "n": 2})
        assert (status, answer["code"]) == (429, 1303) and "data" not in answer
        assert answer["message"] == "parallel task over resource pack limit"
        assert (await create(http, sb, {"prompt": "c", "n": 1}))[0] == 200
        # Another model is another pool (ref §9): not affected.
        other = {"prompt": "d", "model_name": "kling-v3-omni", "aspect_ratio": "1:1", "n": 3}
        assert (await create(http, sb, other))[0] == 200
        assert sb.stats().pools["kling-image-o1:image"].in_use == 3
        await asyncio.sleep(0.45)
        assert (await create(http, sb, {"prompt": "e", "n": 3}))[0] == 200
        stats = sb.stats()
        assert stats.rejected_1303 == 1 and stats.errors_by_code == {1303: 1}
        assert stats.creates == 4 and stats.create_attempts == 5


async def test_quota_overrides_per_model_pool(http: aiohttp.ClientSession) -> None:
    """A '<model>:<kind>' quota key overrides the per-kind capacity of one pool."""
    async with Sandbox(
        api_keys=(KEY,), quota={"video": 1, "kling-v3-omni:video": 2}, video_duration=0.5
    ) as sb:
        v3 = {**VIDEO_BODY, "model_name": "kling-v3-omni"}
        statuses = [(await create(http, sb, v3, VIDEO))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
        statuses = [(await create(http, sb, VIDEO_BODY, VIDEO))[0] for _ in range(2)]
        assert statuses == [200, 429]
        pools = sb.stats().pools
        assert pools["kling-v3-omni:video"].capacity == 2
        assert pools["kling-video-o1:video"].capacity == 1


async def test_series_costs_and_auto_series_slots(http: aiohttp.ClientSession) -> None:
    """A fixed series holds series_amount slots; auto holds the drawn count and yields as many."""
    async with Sandbox(api_keys=(KEY,), image_duration=0.1, auto_series_range=(2, 9), seed=3) as sb:
        base = {
            "prompt": "x",
            "model_name": "kling-v3-omni",
            "aspect_ratio": "1:1",
            "result_type": "series",
        }
        _, fixed = await create(http, sb, {**base, "series_amount": 3})
        _, auto = await create(http, sb, {**base, "series_amount": "auto"})
        records = {t.task_id: t for t in sb.tasks}
        auto_cost = records[auto["data"]["task_id"]].cost
        assert records[fixed["data"]["task_id"]].cost == 3 and 2 <= auto_cost <= 6
        assert sb.stats().pools["kling-v3-omni:image"].in_use == 3 + auto_cost
        done = await wait_done(http, sb, auto["data"]["task_id"])
        assert done["task_result"]["images"] == []
        assert len(done["task_result"]["series_images"]) == auto_cost
        assert done["task_result"]["series_images"][0]["watermark_url"] == ""
        assert sb.stats().pools["kling-v3-omni:image"].in_use == 0


async def test_auto_series_is_admitted_only_if_drawn_count_fits(
    http: aiohttp.ClientSession,
) -> None:
    """An auto series whose drawn count exceeds the free slots is refused with 1303."""
    async with Sandbox(
        api_keys=(KEY,), quota={"image": 4}, image_duration=0.5, auto_series_range=(5, 5)
    ) as sb:
        body = {
            "prompt": "x",
            "model_name": "kling-v3-omni",
            "aspect_ratio": "1:1",
            "result_type": "series",
            "series_amount": "auto",
        }
        status, answer = await create(http, sb, body)
        assert (status, answer["code"]) == (429, 1303)


async def test_peak_slot_seconds_and_makespan(http: aiohttp.ClientSession) -> None:
    """Peak is the most slots held at once; slot_seconds sums cost × held time."""
    async with Sandbox(api_keys=(KEY,), image_duration=0.2) as sb:
        await create(http, sb, {"prompt": "a", "n": 2})
        await create(http, sb, {"prompt": "b", "n": 3})
        await asyncio.sleep(0.3)
        await create(http, sb, {"prompt": "c", "n": 1})
        await asyncio.sleep(0.25)
        stats = sb.stats()
        pool = stats.pools["kling-image-o1:image"]
        assert (pool.peak, pool.in_use, pool.tasks, pool.capacity) == (5, 0, 3, 9)
        assert pool.slot_seconds == pytest.approx(6 * 0.2, abs=1e-6)
        assert stats.first_create_at is not None and stats.last_end_at is not None
        assert stats.makespan == pytest.approx(stats.last_end_at - stats.first_create_at)
        assert 0.5 < stats.makespan < 0.8
        expected = pool.slot_seconds / (9 * stats.makespan)
        assert stats.utilisation("kling-image-o1:image") == pytest.approx(expected)
        assert stats.to_json()["utilisation"]["kling-image-o1:image"] == pytest.approx(expected)
        assert stats.pools["kling-v3-omni:image"].peak == 0


async def test_failed_tasks_release_slots_and_say_why(http: aiohttp.ClientSession) -> None:
    """With fail_rate=1 tasks end failed with a message, no results, and free their slots."""
    async with Sandbox(api_keys=(KEY,), image_duration=0.05, fail_rate=1.0) as sb:
        _, body = await create(http, sb, {"prompt": "x", "n": 9})
        done = await wait_done(http, sb, body["data"]["task_id"])
        assert done["task_status"] == "failed" and done["task_status_msg"]
        assert done["task_result"]["images"] == [] and done["final_unit_deduction"] == "0"
        assert (await create(http, sb, {"prompt": "y", "n": 9}))[0] == 200


# --- prefix, stats, files, callbacks -------------------------------------------------------


async def test_path_prefix_serves_everything_under_it(http: aiohttp.ClientSession) -> None:
    """With path_prefix the API and the sandbox routes live under the prefix only."""
    async with Sandbox(api_keys=(KEY,), path_prefix="/kling/", image_duration=0.05) as sb:
        assert sb.base_url.endswith("/kling") and not sb.base_url.endswith("/")
        _, body = await create(http, sb, {"prompt": "x"})
        done = await wait_done(http, sb, body["data"]["task_id"])
        assert "/kling/sandbox/files/" in done["task_result"]["images"][0]["url"]
        root = sb.base_url.removesuffix("/kling")
        status, answer = await call(http, "POST", root + IMAGE, json={"prompt": "x"})
        assert (status, answer["code"]) == (404, 1202)
        status, stats = await call(http, "GET", sb.base_url + "/sandbox/stats")
        assert status == 200 and stats["creates"] == 1


async def test_stats_endpoint_serves_the_snapshot(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """GET /sandbox/stats returns the stats as JSON, unauthenticated and uncounted."""
    await create(http, sb, {"prompt": "x", "n": 4})
    await call(http, "GET", sb.base_url + IMAGE + "/nope")
    async with aiohttp.ClientSession() as anonymous:
        status, data = await call(anonymous, "GET", sb.base_url + "/sandbox/stats")
    assert status == 200
    assert data["requests"] == 2 and data["creates"] == 1 and data["queries"] == 1
    assert data["errors_by_code"] == {"1203": 1}
    assert data["pools"]["kling-image-o1:image"]["peak"] == 4
    assert sb.stats().requests == 2


async def test_bad_or_missing_sign_is_403(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A result URL with a wrong, missing or tampered signature is refused with 403."""
    _, body = await create(http, sb, {"prompt": "x", "n": 2})
    done = await wait_done(http, sb, body["data"]["task_id"])
    url0, url1 = (im["url"] for im in done["task_result"]["images"])
    sign1 = url1.rpartition("sign=")[2]
    forged = url0.rpartition("sign=")[0] + "sign=" + sign1
    later = url0.replace("expires=", "expires=9")
    for url in (forged, url0.partition("?")[0], later):
        async with http.get(url) as response:
            assert response.status == 403, url


async def _receiver() -> tuple[web.AppRunner, str, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/hook", received


async def test_callbacks_post_each_status_change(http: aiohttp.ClientSession) -> None:
    """callback_url receives the legacy body for processing, then succeed, with results."""
    runner, url, received = await _receiver()
    try:
        async with Sandbox(api_keys=(KEY,), image_duration=0.1) as sb:
            _, body = await create(
                http, sb, {"prompt": "x", "n": 2, "callback_url": url, "external_task_id": "cb"}
            )
            await wait_done(http, sb, body["data"]["task_id"])
            async with asyncio.timeout(30):  # a hang guard: both callbacks sent and counted
                while len(received) < 2 or sb.stats().callbacks_sent < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            assert [r["task_status"] for r in received] == ["processing", "succeed"]
            final = received[-1]
            assert final["task_id"] == body["data"]["task_id"]
            assert final["task_info"]["external_task_id"] == "cb"
            assert len(final["task_result"]["images"]) == 2 and final["final_unit_deduction"]
            assert received[0]["task_result"]["images"] == []
            assert sb.stats().callbacks_sent == 2 and sb.stats().callbacks_failed == 0
    finally:
        await runner.cleanup()


async def test_failed_callbacks_are_counted_and_close_is_clean(
    http: aiohttp.ClientSession,
) -> None:
    """Undeliverable callbacks are counted; closing with callbacks pending leaves no warning."""
    runner, url, _ = await _receiver()
    await runner.cleanup()  # nobody listens there any more
    async with Sandbox(api_keys=(KEY,), image_duration=0.05) as sb:
        _, body = await create(http, sb, {"prompt": "x", "callback_url": url})
        await wait_done(http, sb, body["data"]["task_id"])
        for _ in range(50):
            if sb.stats().callbacks_failed == 2:
                break
            await asyncio.sleep(0.02)
        assert sb.stats().callbacks_failed == 2 and sb.stats().callbacks_sent == 0
    async with Sandbox(api_keys=(KEY,), image_duration=5.0) as sb:
        await create(http, sb, {"prompt": "x", "callback_url": url})
    # leaving the block cancelled the pending delivery; filterwarnings=error would catch leaks


async def test_start_and_aclose_without_context_manager() -> None:
    """start()/aclose() work without async with; base_url needs a started sandbox."""
    sb = Sandbox()
    with pytest.raises(RuntimeError):
        _ = sb.base_url
    await sb.start()
    try:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": "Bearer sandbox-key"}
            status, _ = await call(session, "GET", sb.base_url + IMAGE, headers=headers)
            assert status == 200
    finally:
        await sb.aclose()
        await sb.aclose()  # idempotent
    with pytest.raises(RuntimeError):
        await sb.start()


def test_bad_options_raise_value_error() -> None:
    """Out-of-range options fail at construction with ValueError naming the option."""
    with pytest.raises(ValueError, match="quota"):
        Sandbox(quota={"audio": 3})
    with pytest.raises(ValueError, match="image_duration"):
        Sandbox(image_duration=(2.0, 1.0))
    with pytest.raises(ValueError, match="fail_rate"):
        Sandbox(fail_rate=1.5)
    with pytest.raises(ValueError, match="auto_series_range"):
        Sandbox(auto_series_range=(0, 3))


@given(
    capacity=st.integers(1, 9),
    creates=st.lists(st.tuples(st.floats(0, 10), st.floats(0, 5), st.integers(1, 9)), max_size=30),
)
def test_pool_peak_and_slot_seconds_match_a_brute_force_sweep(
    capacity: int, creates: list[tuple[float, float, int]]
) -> None:
    """Pool admission never exceeds capacity; peak and slot_seconds equal an interval sweep."""
    pool = Pool(capacity)
    admitted: list[tuple[float, float, int]] = []
    for start, length, cost in sorted(creates):
        if pool.try_admit(start, start + length, cost):
            admitted.append((start, start + length, cost))
    horizon = 20.0
    # Slots in use only change at interval ends; check just after every boundary.
    instants = sorted({t for s, e, _ in admitted for t in (s, e)})
    held = [sum(c for s, e, c in admitted if s <= t < e) for t in instants]
    assert max(held, default=0) <= capacity
    snapshot = pool.snapshot(horizon)
    assert snapshot.peak == max(held, default=0)
    assert snapshot.in_use == 0 and snapshot.tasks == len(admitted)
    expected = sum(c * (e - s) for s, e, c in admitted)
    assert snapshot.slot_seconds == pytest.approx(expected, rel=1e-9, abs=1e-9)
