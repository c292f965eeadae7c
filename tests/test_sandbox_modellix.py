"""The sandbox speaks the Modellix API for Kling omni models as modellix_api.md documents it,
signs Kling callbacks (ref §10.3) and injects faults on the Modellix routes.

Real sockets on 127.0.0.1 and a plain aiohttp client: these tests never import the SDK.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from kling_async.testing import Faults, Sandbox
from kling_async.testing._media import png_bytes
from kling_async.testing._server import webhook_signature

pytestmark = pytest.mark.anyio

KEY, KEY2 = "mx-test", "mx-other"
IMAGE, IMAGE_O1 = "kling-v3-omni-image", "kling-image-o1"
VIDEO, VIDEO_O1 = "kling-v3-omni-video", "kling-video-o1"
PNG_B64 = base64.b64encode(png_bytes("ref", 32)).decode()
MP4_URL = "https://example.com/clip.mp4"


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp is asyncio-only."""
    return "asyncio"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A sandbox with fixed short durations and a roomy Modellix request budget."""
    async with Sandbox(
        api_keys=(KEY, KEY2),
        image_duration=0.1,
        video_duration=0.15,
        modellix_concurrency=9,
        modellix_rpm=10_000,
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
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One request; returns (HTTP status, JSON body, headers)."""
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.json(), dict(response.headers)


async def submit(
    session: aiohttp.ClientSession,
    sb: Sandbox,
    body: dict[str, Any],
    model: str = IMAGE,
    form: str = "plain",
) -> tuple[int, dict[str, Any]]:
    """POST a submit body to the plain or async path of ``model``."""
    suffix = "/async" if form == "async" else ""
    status, answer, _ = await call(
        session, "POST", f"{sb.modellix_base_url}/kling/{model}{suffix}", json=body
    )
    return status, answer


async def query(
    session: aiohttp.ClientSession, sb: Sandbox, task_id: str
) -> tuple[int, dict[str, Any]]:
    """GET a task."""
    status, answer, _ = await call(session, "GET", f"{sb.modellix_base_url}/tasks/{task_id}")
    return status, answer


async def wait_done(session: aiohttp.ClientSession, sb: Sandbox, task_id: str) -> dict[str, Any]:
    """Poll a task until it is terminal; return the whole answer."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        status, answer = await query(session, sb, task_id)
        assert status == 200, answer
        if answer["data"]["status"] in ("success", "failed"):
            return answer
        await asyncio.sleep(0.02)
    raise AssertionError("task did not finish")


# --- paths, envelope, auth --------------------------------------------------------------------


@pytest.mark.parametrize("form", ["async", "plain"])
async def test_both_submit_forms_answer_the_documented_envelope(
    sb: Sandbox, http: aiohttp.ClientSession, form: str
) -> None:
    """Both submit forms answer code 0 with status pending, task_id, model_id and get_result."""
    assert sb.modellix_base_url == sb.base_url + "/api/v1"
    status, body = await submit(http, sb, {"prompt": "a red mug"}, form=form)
    assert status == 200 and body["code"] == 0 and body["message"] == "success"
    data = body["data"]
    assert data["status"] == "pending" and data["task_id"].startswith("task-")
    assert data["model_id"] == IMAGE
    assert data["get_result"] == {
        "method": "GET",
        "url": f"{sb.modellix_base_url}/tasks/{data['task_id']}",
    }


async def test_path_prefix_applies_to_the_modellix_routes(http: aiohttp.ClientSession) -> None:
    """With path_prefix the Modellix root and its get_result URLs live under the prefix."""
    async with Sandbox(api_keys=(KEY,), path_prefix="/gw/") as sb:
        assert sb.modellix_base_url.endswith("/gw/api/v1")
        status, body = await submit(http, sb, {"prompt": "x"}, form="async")
        assert status == 200 and "/gw/api/v1/tasks/" in body["data"]["get_result"]["url"]
        status, _ = await query(http, sb, body["data"]["task_id"])
        assert status == 200


@pytest.mark.parametrize(("served", "refused"), [(("plain",), "async"), (("async",), "plain")])
async def test_a_submit_form_not_served_answers_404(
    http: aiohttp.ClientSession, served: tuple[str, ...], refused: str
) -> None:
    """With one form disabled, it answers 404 in the Modellix envelope; the other works."""
    async with Sandbox(api_keys=(KEY,), modellix_submit_paths=served) as sb:
        status, body = await submit(http, sb, {"prompt": "x"}, form=refused)
        assert (status, body["code"]) == (404, 404) and body["message"].startswith("Not found:")
        assert "data" not in body
        status, _ = await submit(http, sb, {"prompt": "x"}, form=served[0])
        assert status == 200
        assert sb.stats().creates == 1 and sb.stats().create_attempts == 1


async def test_unknown_model_task_and_route_are_404(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """An unknown model, task id or path under /api/v1 is 404; a wrong method 405."""
    status, body = await submit(http, sb, {"prompt": "x"}, model="kling-v9")
    assert (status, body["code"]) == (404, 404) and "kling-v9" in body["message"]
    status, body = await query(http, sb, "task-nope")
    assert (status, body["code"]) == (404, 404) and "Task ID not found" in body["message"]
    status, body, _ = await call(http, "POST", sb.modellix_base_url + "/openai/gpt/async")
    assert (status, body["code"]) == (404, 404)
    status, body, _ = await call(http, "GET", f"{sb.modellix_base_url}/kling/{IMAGE}")
    assert (status, body["code"]) == (405, 405)
    assert sb.stats().errors_by_code == {404: 3, 405: 1}


async def test_apis_do_not_see_each_others_tasks(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A Modellix task is not found on the Kling query route, nor a Kling task on Modellix."""
    _, mx = await submit(http, sb, {"prompt": "x"})
    async with http.post(sb.base_url + "/v1/images/omni-image", json={"prompt": "x"}) as resp:
        kling_id = (await resp.json())["data"]["task_id"]
    async with http.get(f"{sb.base_url}/v1/images/omni-image/{mx['data']['task_id']}") as resp:
        assert resp.status == 404 and (await resp.json())["code"] == 1203
    status, body = await query(http, sb, kling_id)
    assert (status, body["code"]) == (404, 404)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-key", f"Basic {KEY}", "Bearer", f"bearer {KEY}"],
)
async def test_missing_or_unknown_key_is_401(sb: Sandbox, header: str | None) -> None:
    """A missing or unknown Bearer key answers 401 'Authentication failed' on submit and query."""
    headers = {} if header is None else {"Authorization": header}
    async with aiohttp.ClientSession(headers=headers) as session:
        status, body = await submit(session, sb, {"prompt": "x"})
        assert (status, body["code"]) == (401, 401)
        assert body["message"].startswith("Authentication failed:")
        status, body = await query(session, sb, "task-1")
        assert (status, body["code"]) == (401, 401)
    assert sb.stats().creates == 0 and sb.stats().errors_by_code == {401: 2}


# --- validation ------------------------------------------------------------------------------

P = {"prompt": "x"}
INVALID: list[tuple[str, dict[str, Any], str]] = [
    # prompt (§3 example, §5.1–§5.4)
    (IMAGE, {}, "prompt"),
    (IMAGE, {"prompt": ""}, "prompt"),
    (IMAGE, {"prompt": "x" * 2501}, "prompt"),
    (IMAGE_O1, {"prompt": 5}, "prompt"),
    (VIDEO, {"duration": 5}, "prompt"),
    (VIDEO_O1, {"prompt": "x" * 2501}, "prompt"),
    # images / element_ids (§5.1)
    (IMAGE, {**P, "images": []}, "images"),
    (IMAGE, {**P, "images": "https://e.com/a.png"}, "images"),
    (IMAGE, {**P, "images": ["https://e.com/a.png"] * 11}, "images"),
    (IMAGE, {**P, "images": [""]}, "images[0]"),
    (IMAGE, {**P, "images": ["not base64!"]}, "images[0]"),
    (IMAGE, {**P, "images": [{"image": "https://e.com/a.png"}]}, "images[0]"),
    (IMAGE, {**P, "element_ids": [1] * 11}, "element_ids"),
    (IMAGE, {**P, "element_ids": [0]}, "element_ids[0]"),
    (IMAGE, {**P, "element_ids": [{"element_id": 1}]}, "element_ids[0]"),
    (IMAGE, {**P, "images": [PNG_B64] * 6, "element_ids": [1, 2, 3, 4, 5]}, "images"),
    (IMAGE_O1, {**P, "images": ["https://e.com/a.png"] * 11}, "images"),
    # resolution / aspect_ratio (§5.1, §5.4)
    (IMAGE, {**P, "resolution": "8k"}, "resolution"),
    (IMAGE, {**P, "resolution": "4K"}, "resolution"),
    (IMAGE_O1, {**P, "resolution": "4k"}, "resolution"),
    (IMAGE, {**P, "aspect_ratio": "5:4"}, "aspect_ratio"),
    (IMAGE_O1, {**P, "aspect_ratio": "9:21"}, "aspect_ratio"),
    # result_type / n / series_amount (§5.1)
    (IMAGE, {**P, "result_type": "batch"}, "result_type"),
    (IMAGE, {**P, "n": 0}, "n"),
    (IMAGE, {**P, "n": 10}, "n"),
    (IMAGE, {**P, "n": "2"}, "n"),
    (IMAGE, {**P, "n": True}, "n"),
    (IMAGE_O1, {**P, "n": 10}, "n"),
    (IMAGE, {**P, "result_type": "series", "series_amount": 3, "n": 1}, "n"),
    (IMAGE, {**P, "result_type": "series"}, "series_amount"),
    (IMAGE, {**P, "result_type": "series", "series_amount": 1}, "series_amount"),
    (IMAGE, {**P, "result_type": "series", "series_amount": 10}, "series_amount"),
    (IMAGE, {**P, "result_type": "series", "series_amount": "auto"}, "series_amount"),
    (IMAGE, {**P, "series_amount": 3}, "series_amount"),
    (IMAGE, {**P, "result_type": "single", "series_amount": 3}, "series_amount"),
    # fields a model does not take (§5.4 list; INFERRED for the rest)
    (IMAGE_O1, {**P, "negative_prompt": "blur"}, "negative_prompt"),
    (IMAGE_O1, {**P, "image_fidelity": 0.5}, "image_fidelity"),
    (IMAGE_O1, {**P, "result_type": "single"}, "result_type"),
    (IMAGE_O1, {**P, "image_list": [{"image": "https://e.com/a.png"}]}, "image_list"),
    (IMAGE, {**P, "model_name": "kling-v3-omni"}, "model_name"),
    (IMAGE, {**P, "callback_url": "https://e.com/hook"}, "callback_url"),
    (IMAGE, {**P, "external_task_id": "job-1"}, "external_task_id"),
    (IMAGE, {**P, "watermark_info": {"enabled": True}}, "watermark_info"),
    (IMAGE, {**P, "element_list": [{"element_id": 1}]}, "element_list"),
    (VIDEO, {**P, "video_list": [{"video_url": MP4_URL}]}, "video_list"),
    (VIDEO, {**P, "element_ids": [1]}, "element_ids"),
    (VIDEO, {**P, "negative_prompt": "x"}, "negative_prompt"),
    # multi_shot / shot_type (§5.2)
    (VIDEO, {**P, "multi_shot": "yes"}, "multi_shot"),
    (VIDEO, {**P, "multi_shot": True}, "shot_type"),
    (VIDEO, {**P, "multi_shot": True, "shot_type": "customize"}, "shot_type"),
    (VIDEO, {**P, "shot_type": "intelligence"}, "shot_type"),
    (VIDEO_O1, {**P, "multi_shot": False, "shot_type": "intelligence"}, "shot_type"),
    # images / videos / sound (§5.2, §5.3)
    (VIDEO, {**P, "images": []}, "images"),
    (VIDEO, {**P, "images": [123]}, "images[0]"),
    (VIDEO, {**P, "videos": []}, "videos"),
    (VIDEO, {**P, "videos": [MP4_URL, MP4_URL]}, "videos"),
    (VIDEO, {**P, "videos": ["ftp://e.com/v.mp4"]}, "videos[0]"),
    (VIDEO, {**P, "sound": "loud"}, "sound"),
    (VIDEO, {**P, "videos": [MP4_URL], "sound": "on"}, "sound"),
    (VIDEO_O1, {**P, "videos": [MP4_URL], "sound": "on"}, "sound"),
    # mode / aspect_ratio (§5.2)
    (VIDEO, {**P, "mode": "4k"}, "mode"),
    (VIDEO, {**P, "aspect_ratio": "4:3"}, "aspect_ratio"),
    (VIDEO_O1, {**P, "aspect_ratio": "auto"}, "aspect_ratio"),
    # duration (§5.2, §5.3)
    (VIDEO, {**P, "duration": 2}, "duration"),
    (VIDEO, {**P, "duration": 16}, "duration"),
    (VIDEO, {**P, "duration": "5"}, "duration"),
    (VIDEO, {**P, "duration": 5.0}, "duration"),
    (VIDEO, {**P, "videos": [MP4_URL], "duration": 5}, "duration"),
    (VIDEO_O1, {**P, "duration": 7}, "duration"),
    (VIDEO_O1, {**P, "duration": 15}, "duration"),
    (VIDEO_O1, {**P, "videos": [MP4_URL], "duration": 10}, "duration"),
]


@pytest.mark.parametrize(("model", "body", "field"), INVALID)
async def test_each_field_rule_answers_400_naming_the_field(
    sb: Sandbox, http: aiohttp.ClientSession, model: str, body: dict[str, Any], field: str
) -> None:
    """Every documented field rule answers 400 'Invalid parameters: parameter '<field>' ...'."""
    status, answer = await submit(http, sb, body, model=model)
    assert (status, answer["code"]) == (400, 400), answer
    assert answer["message"].startswith(f"Invalid parameters: parameter '{field}'"), answer
    assert "data" not in answer
    assert sb.stats().creates == 0 and sb.stats().create_attempts == 1


VALID: list[tuple[str, dict[str, Any], int]] = [
    (IMAGE, P, 1),
    (IMAGE, {**P, "n": 9, "resolution": "4k", "aspect_ratio": "21:9"}, 9),
    (IMAGE, {**P, "result_type": "series", "series_amount": 2}, 2),
    (IMAGE, {**P, "result_type": "single", "n": 3}, 3),
    (
        IMAGE,
        {**P, "images": [PNG_B64, f"data:image/png;base64,{PNG_B64}"], "element_ids": [1, "2"]},
        1,
    ),
    (IMAGE, {**P, "images": ["https://e.com/a.png"] * 5, "element_ids": list(range(1, 6))}, 1),
    (IMAGE_O1, {**P, "n": 4, "resolution": "2k", "aspect_ratio": "auto"}, 4),
    (IMAGE_O1, {**P, "images": ["https://e.com/a.png"] * 10}, 1),
    (VIDEO, P, 1),
    (VIDEO, {**P, "duration": 15, "mode": "std", "aspect_ratio": "9:16", "sound": "on"}, 1),
    (VIDEO, {**P, "multi_shot": True, "shot_type": "intelligence", "duration": 3}, 1),
    (VIDEO, {**P, "multi_shot": False, "images": [PNG_B64]}, 1),
    (VIDEO, {**P, "videos": [MP4_URL], "sound": "off"}, 1),
    (VIDEO_O1, {**P, "duration": 10}, 1),
    (VIDEO_O1, {**P, "videos": [MP4_URL], "images": ["https://e.com/a.png"]}, 1),
]


@pytest.mark.parametrize(("model", "body", "cost"), VALID)
async def test_valid_bodies_are_accepted_and_recorded_raw(
    sb: Sandbox, http: aiohttp.ClientSession, model: str, body: dict[str, Any], cost: int
) -> None:
    """A valid flat body is accepted; the task record keeps the raw body, the path model and
    the cost in team slots (n, series_amount or 1)."""
    status, answer = await submit(http, sb, body, model=model)
    assert status == 200, answer
    [record] = sb.tasks
    assert record.body == body and record.model_name == model and record.cost == cost
    assert record.external_task_id is None and record.api == "modellix"
    assert record.task_id == answer["data"]["task_id"]
    assert record.kind == ("video" if "video" in model else "image")


async def test_malformed_json_and_non_object_bodies_are_400(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A body that is not JSON, or not a JSON object, answers 400 'Invalid format'."""
    url = f"{sb.modellix_base_url}/kling/{IMAGE}"
    for data in (b"{not json", b'["prompt"]', b""):
        status, body, _ = await call(http, "POST", url, data=data)
        assert (status, body["code"]) == (400, 400) and body["message"].startswith(
            "Invalid format:"
        ), data


# --- lifecycle and results ---------------------------------------------------------------------


async def test_image_lifecycle_pending_processing_success_with_resources(
    http: aiohttp.ClientSession,
) -> None:
    """A task is pending, then processing, then success with n image resources whose signed
    URLs serve PNGs until result_expires_at (epoch ms, about 7 days)."""
    # Long enough that a loaded machine still sees "pending" first (processing after 0.8 s).
    async with Sandbox(api_keys=(KEY,), image_duration=8.0, seed=1) as sb:
        _, body = await submit(http, sb, {"prompt": "x", "n": 2})
        task_id = body["data"]["task_id"]
        _, first = await query(http, sb, task_id)
        assert first["data"] == {"status": "pending", "task_id": task_id, "model_id": IMAGE}
        middle = first
        with anyio.fail_after(30):  # a hang guard, not a speed bound
            while middle["data"]["status"] == "pending":
                await asyncio.sleep(0.1)
                _, middle = await query(http, sb, task_id)
        assert middle["data"]["status"] == "processing" and "result" not in middle["data"]
    async with Sandbox(api_keys=(KEY,), image_duration=0.05, seed=1) as sb:
        _, body = await submit(http, sb, {"prompt": "x", "n": 2})
        done = await wait_done(http, sb, body["data"]["task_id"])
        data = done["data"]
        assert done["code"] == 0 and done["message"] == "success" and data["status"] == "success"
        resources = data["result"]["resources"]
        assert [r["type"] for r in resources] == ["image", "image"]
        assert all(
            r["format"] == "png" and r["width"] == r["height"] == 1024 and r["role"] == "primary"
            for r in resources
        )
        assert data["result"]["metadata"]["image_count"] == 2
        assert set(data["result"]["extensions"]) == {"submit_time", "end_time"}
        assert isinstance(data["duration"], int) and data["duration"] >= 0
        expires_ms = data["result_expires_at"]
        assert abs(expires_ms / 1000 - (time.time() + 7 * 24 * 3600)) < 60
        url = resources[0]["url"]
        assert f"expires={expires_ms // 1000}&" in url
        async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as response:
            assert response.status == 200 and response.content_type == "image/png"
            assert (await response.read()).startswith(b"\x89PNG\r\n\x1a\n")
        _, again = await query(http, sb, body["data"]["task_id"])
        assert again["data"]["result"]["resources"][0]["url"] == url  # stable across queries


async def test_series_gives_one_image_resource_per_frame(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A series of 3 ends with three image resources (one per series image)."""
    _, body = await submit(http, sb, {"prompt": "x", "result_type": "series", "series_amount": 3})
    data = (await wait_done(http, sb, body["data"]["task_id"]))["data"]
    resources = data["result"]["resources"]
    assert len(resources) == 3 and {r["type"] for r in resources} == {"image"}
    assert len({r["url"] for r in resources}) == 3


@pytest.mark.parametrize("model", [VIDEO, VIDEO_O1])
async def test_video_result_is_one_video_resource_serving_mp4(
    sb: Sandbox, http: aiohttp.ClientSession, model: str
) -> None:
    """A video task ends with one video resource whose URL serves MP4 bytes."""
    _, body = await submit(http, sb, {"prompt": "x", "duration": 5}, model=model)
    assert body["data"]["model_id"] == model
    data = (await wait_done(http, sb, body["data"]["task_id"]))["data"]
    [resource] = data["result"]["resources"]
    assert resource["type"] == "video" and resource["format"] == "mp4"
    assert "image_count" not in data["result"]["metadata"]
    async with http.get(resource["url"]) as response:
        assert response.status == 200 and response.content_type == "video/mp4"
        assert (await response.read())[4:8] == b"ftyp"


async def test_failed_task_says_why_in_message(http: aiohttp.ClientSession) -> None:
    """A failed task answers HTTP 200, status failed, no result, the reason in message."""
    async with Sandbox(api_keys=(KEY,), image_duration=0.05, fail_rate=1.0) as sb:
        _, body = await submit(http, sb, {"prompt": "x"})
        done = await wait_done(http, sb, body["data"]["task_id"])
        assert done["code"] == 0 and done["data"]["status"] == "failed"
        assert "result" not in done["data"] and "result_expires_at" not in done["data"]
        assert done["message"].startswith("Task failed:")
        assert sb.tasks[0].status == "failed"


# --- limits ------------------------------------------------------------------------------------


async def test_task_larger_than_the_team_limit_runs_alone(http: aiohttp.ClientSession) -> None:
    """A 6-image series on a team limit of 3 is admitted when the team is idle, holding all 3
    slots (else it could never run), and refused while anything else runs."""
    async with Sandbox(api_keys=(KEY,), image_duration=0.4, modellix_concurrency=3) as sb:
        assert (await submit(http, sb, {"prompt": "small"}))[0] == 200
        big = {"prompt": "big", "result_type": "series", "series_amount": 6}
        assert (await submit(http, sb, big))[0] == 429
        await asyncio.sleep(0.45)
        assert (await submit(http, sb, big))[0] == 200
        assert (await submit(http, sb, {"prompt": "more"}))[0] == 429
        pool = sb.stats().pools["modellix:team"]
        assert pool.peak == 3


async def test_team_concurrency_is_shared_by_keys_and_answers_429(
    http: aiohttp.ClientSession,
) -> None:
    """Images hold n slots of the team's 3, across keys; over it a 429 'Concurrency limit
    exceeded' (no Retry-After) until tasks end."""
    async with (
        Sandbox(
            api_keys=(KEY, KEY2), image_duration=0.4, video_duration=0.4, modellix_concurrency=3
        ) as sb,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY2}"}) as other,
    ):
        assert (await submit(http, sb, {"prompt": "a", "n": 2}))[0] == 200
        url = f"{sb.modellix_base_url}/kling/{IMAGE}"
        status, body, headers = await call(other, "POST", url, json={"prompt": "b", "n": 2})
        assert (status, body["code"]) == (429, 429)
        assert body["message"].startswith("Concurrency limit exceeded:")
        assert "team concurrent task limit is 3" in body["message"]
        assert "Retry-After" not in headers
        assert (await submit(other, sb, {"prompt": "c"}, model=VIDEO))[0] == 200
        assert (await submit(http, sb, {"prompt": "d"}))[0] == 429
        await asyncio.sleep(0.45)
        assert (await submit(other, sb, {"prompt": "e", "n": 3}))[0] == 200
        stats = sb.stats()
        assert stats.concurrency_429 == 2 and stats.errors_by_code == {429: 2}
        assert stats.creates == 3 and stats.create_attempts == 5 and stats.rejected_1303 == 0
        assert stats.pools["modellix:team"].capacity == 3
        assert stats.pools["modellix:team"].peak == 3


async def test_rate_limit_answers_429_with_headers_and_recovers(
    http: aiohttp.ClientSession,
) -> None:
    """Past modellix_rpm requests per window a key gets 429 'Rate limit exceeded' with
    Retry-After and X-RateLimit-Reset; other keys are unaffected; it recovers after the
    window."""
    async with (
        Sandbox(
            api_keys=(KEY, KEY2), image_duration=0.05, modellix_rpm=3, modellix_rpm_window=0.5
        ) as sb,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY2}"}) as other,
    ):
        start = time.time()
        _, body = await submit(http, sb, {"prompt": "x"})
        task_url = f"{sb.modellix_base_url}/tasks/{body['data']['task_id']}"
        for remaining in (1, 0):
            status, _, headers = await call(http, "GET", task_url)
            assert status == 200 and headers["X-RateLimit-Remaining"] == str(remaining)
        status, body, headers = await call(http, "GET", task_url)
        assert (status, body["code"]) == (429, 429)
        assert body["message"].startswith("Rate limit exceeded:")
        assert "oncurren" not in body["message"]
        assert int(headers["Retry-After"]) == 1
        assert start <= int(headers["X-RateLimit-Reset"]) <= start + 2
        assert (await submit(http, sb, {"prompt": "y"}))[0] == 429
        assert (await call(other, "GET", task_url))[0] == 200
        await asyncio.sleep(0.5)
        assert (await call(http, "GET", task_url))[0] == 200
        stats = sb.stats()
        assert stats.rate_limited_429 == 2 and stats.concurrency_429 == 0
        assert stats.creates == 1 and stats.peak_requests_per_window == 3


async def test_peak_requests_per_window_counts_the_busiest_key_and_window(
    http: aiohttp.ClientSession,
) -> None:
    """peak_requests_per_window is the most requests one key had inside one sliding window."""
    async with (
        Sandbox(api_keys=(KEY, KEY2), modellix_rpm=100, modellix_rpm_window=0.3) as sb,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY2}"}) as other,
    ):
        url = f"{sb.modellix_base_url}/tasks/task-none"
        for _ in range(3):
            await call(other, "GET", url)
        await asyncio.sleep(0.35)
        for _ in range(2):
            await call(other, "GET", url)
        for _ in range(4):
            await call(http, "GET", url)
        stats = sb.stats()
        assert stats.peak_requests_per_window == 4 and stats.queries == 9
        assert stats.to_json()["peak_requests_per_window"] == 4


def test_bad_modellix_options_raise() -> None:
    """Out-of-range Modellix options and a malformed callback secret raise at construction."""
    for kwargs in (
        {"modellix_concurrency": 0},
        {"modellix_rpm": 0},
        {"modellix_rpm_window": 0.0},
        {"modellix_submit_paths": ("async", "v1")},
        {"callback_secret": "whsec_not base64!"},
        {"callback_secret": "whsec_"},
    ):
        with pytest.raises(ValueError):
            Sandbox(**kwargs)
    with pytest.raises(TypeError):
        Sandbox(modellix_submit_paths="plain")


# --- sandbox views -----------------------------------------------------------------------------


@pytest.fixture
async def slow_sb() -> AsyncIterator[Sandbox]:
    """A sandbox whose tasks stay "submitted" for a minute, however loaded the machine."""
    async with Sandbox(api_keys=(KEY, KEY2), image_duration=600.0, seed=7) as sandbox:
        yield sandbox


async def test_sandbox_tasks_lists_both_apis_uncounted(
    slow_sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """GET /sandbox/tasks lists every task with ids, kind, model, cost, times and status; it
    needs no auth and is not counted."""
    sb = slow_sb
    await submit(http, sb, {"prompt": "x", "n": 2})
    async with http.post(sb.base_url + "/v1/images/omni-image", json={"prompt": "y"}) as resp:
        assert resp.status == 200
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(sb.base_url + "/sandbox/tasks") as response,
    ):
        assert response.status == 200
        tasks = await response.json()
    assert [t["api"] for t in tasks] == ["modellix", "kling"]
    mx = tasks[0]
    assert set(mx) == {
        "task_id",
        "external_task_id",
        "kind",
        "model_name",
        "cost",
        "created_at",
        "ends_at",
        "status",
        "api",
    }
    assert mx["model_name"] == IMAGE and mx["cost"] == 2 and mx["external_task_id"] is None
    assert mx["status"] == "submitted" and mx["ends_at"] > mx["created_at"] > 1.6e9
    stats = sb.stats()
    assert stats.requests == 2 and stats.creates == 2 and stats.create_attempts == 2
    assert stats.faults_injected == {}


# --- callback signatures (ref §10.3) ------------------------------------------------------------

VECTOR_SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
VECTOR_BODY = (
    b'{"id":"1234567890","status":"succeeded","message":"","create_time":1781080778802,'
    b'"update_time":1781080794151}'
)


def test_webhook_signature_matches_the_vendor_test_vector() -> None:
    """The signature of the ref §10.3 test vector is the vendor's value."""
    signature = webhook_signature(VECTOR_SECRET, "9876543210", 1781080794, VECTOR_BODY)
    assert signature == "v1,UsKlJP00XoQyOn410NM9xv34sP+Gl0jnOO9Lcpr7NJ4="


async def test_callbacks_carry_verifiable_standard_webhooks_headers(
    http: aiohttp.ClientSession,
) -> None:
    """With callback_secret, each callback carries webhook-id/-timestamp/-signature that verify
    against the raw body; without it, none of them."""
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        hook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        for secret in (VECTOR_SECRET, None):
            received.clear()
            async with Sandbox(api_keys=(KEY,), image_duration=0.05, callback_secret=secret) as sb:
                body = {"prompt": "x", "callback_url": hook_url}
                async with http.post(sb.base_url + "/v1/images/omni-image", json=body) as resp:
                    assert resp.status == 200
                for _ in range(100):
                    if len(received) == 2:
                        break
                    await asyncio.sleep(0.02)
            assert len(received) == 2
            for headers, raw in received:
                assert json.loads(raw)["task_status"] in ("processing", "succeed")
                if secret is None:
                    assert "webhook-signature" not in {k.lower() for k in headers}
                    continue
                msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
                assert abs(int(stamp) - time.time()) < 60
                key = base64.b64decode(secret.removeprefix("whsec_"))
                mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + raw, hashlib.sha256)
                expected = "v1," + base64.b64encode(mac.digest()).decode()
                assert headers["webhook-signature"] == expected
            if secret is not None:
                assert received[0][0]["webhook-id"] != received[1][0]["webhook-id"]
    finally:
        await runner.cleanup()


# --- faults on the Modellix routes ---------------------------------------------------------------


async def test_error_before_create_answers_500_and_creates_nothing(
    http: aiohttp.ClientSession,
) -> None:
    """error_before_create: HTTP 500 'Internal error', no task, counted in faults_injected."""
    async with Sandbox(api_keys=(KEY,), faults=Faults(error_before_create=1.0)) as sb:
        status, body = await submit(http, sb, {"prompt": "x"})
        assert (status, body["code"]) == (500, 500) and body["message"].startswith("Internal")
        stats = sb.stats()
        assert stats.creates == 0 and stats.create_attempts == 1
        assert stats.faults_injected == {"error_before_create": 1}


async def test_error_after_create_answers_5xx_but_the_task_runs(
    http: aiohttp.ClientSession,
) -> None:
    """error_after_create: a 500 or 504 answer, yet the task exists and succeeds."""
    async with Sandbox(
        api_keys=(KEY,), image_duration=0.05, faults=Faults(error_after_create=1.0)
    ) as sb:
        status, body = await submit(http, sb, {"prompt": "x"})
        assert status in (500, 504) and body["code"] == status
        [record] = sb.tasks
        assert (await wait_done(http, sb, record.task_id))["data"]["status"] == "success"
        assert sb.stats().faults_injected == {"error_after_create": 1}


async def test_drop_after_create_closes_the_connection_but_the_task_runs(
    http: aiohttp.ClientSession,
) -> None:
    """drop_after_create: the client sees a disconnect, yet the task exists."""
    async with Sandbox(api_keys=(KEY,), faults=Faults(drop_after_create=1.0)) as sb:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await submit(http, sb, {"prompt": "x"})
        assert len(sb.tasks) == 1 and sb.stats().creates == 1
        assert sb.stats().faults_injected == {"drop_after_create": 1}


async def test_post_create_fault_is_retracted_when_the_team_is_full(
    http: aiohttp.ClientSession,
) -> None:
    """A create refused for concurrency answers 429, and its drawn fault is not counted."""
    async with Sandbox(
        api_keys=(KEY,), image_duration=1.0, faults=Faults(error_after_create=1.0)
    ) as sb:
        assert (await submit(http, sb, {"prompt": "x", "n": 3}))[0] in (500, 504)
        assert (await submit(http, sb, {"prompt": "y"}))[0] == 429
        assert sb.stats().faults_injected == {"error_after_create": 1}


async def test_query_faults_error_and_malformed(http: aiohttp.ClientSession) -> None:
    """query_error answers 503 or 500; malformed_query answers 200 with invalid JSON."""
    async with Sandbox(api_keys=(KEY,), faults=Faults(query_error=1.0)) as sb:
        _, body = await submit(http, sb, {"prompt": "x"})
        status, answer = await query(http, sb, body["data"]["task_id"])
        assert status in (500, 503) and answer["code"] == status
        assert sb.stats().faults_injected == {"query_error": 1}
    async with Sandbox(api_keys=(KEY,), faults=Faults(malformed_query=1.0)) as sb:
        _, body = await submit(http, sb, {"prompt": "x"})
        url = f"{sb.modellix_base_url}/tasks/{body['data']['task_id']}"
        async with http.get(url) as response:
            assert response.status == 200 and response.content_type == "application/json"
            text = await response.text()
        with pytest.raises(ValueError):
            json.loads(text)
        assert text.startswith('{"code": 0')
        assert sb.stats().faults_injected == {"malformed_query": 1}


async def test_slow_answers_and_slow_downloads(http: aiohttp.ClientSession) -> None:
    """slow delays Modellix answers by slow_seconds; slow_download streams a complete file
    over about slow_seconds."""
    faults = Faults(slow=1.0, slow_download=1.0, slow_seconds=0.2)
    async with Sandbox(api_keys=(KEY,), image_duration=0.05, faults=faults) as sb:
        started = time.monotonic()
        _, body = await submit(http, sb, {"prompt": "x"})
        assert time.monotonic() - started >= 0.2
        await asyncio.sleep(0.1)
        _, done = await query(http, sb, body["data"]["task_id"])
        url = done["data"]["result"]["resources"][0]["url"]
        started = time.monotonic()
        async with http.get(url) as response:
            data = await response.read()
        assert time.monotonic() - started >= 0.15 and data.endswith(b"IEND\xaeB`\x82")
        assert sb.stats().faults_injected == {"slow": 2, "slow_download": 1}
