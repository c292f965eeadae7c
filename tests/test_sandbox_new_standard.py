"""The sandbox speaks Kling's new-standard omni-video API and unified task query.

Raw aiohttp requests against real sockets on 127.0.0.1: these tests never import the SDK.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from kling_async.testing import Faults, Sandbox
from kling_async.testing._media import png_bytes

pytestmark = pytest.mark.anyio

KEY = "k"
AK, SK = "ak-test", "sk-secret-0123456789abcdef0123456789"
V3 = "/omni-video/kling-3.0-omni"
O1 = "/omni-video/kling-o1"
IMAGE_URL = "https://example.com/a.png"
VIDEO_URL = "https://example.com/a.mp4"
PNG_B64 = base64.b64encode(png_bytes("ref", (400, 400))).decode()


def body(*items: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """A new-standard body: a prompt, then ``items``; ``settings`` (aspect_ratio 16:9 unless
    given or None)."""
    settings.setdefault("aspect_ratio", "16:9")
    settings = {k: v for k, v in settings.items() if v is not None}
    return {
        "contents": [{"type": "prompt", "text": "a parrot on a branch"}, *items],
        "settings": settings,
    }


def prompt_only(**settings: Any) -> dict[str, Any]:
    """A 3.0 Omni text-to-video body."""
    return body(**settings)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A sandbox with videos of 0.15 s and an AccessKey for the JWT tests."""
    async with Sandbox(
        api_keys=(KEY,), access_keys={AK: SK}, video_duration=0.15, seed=3
    ) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    method: str,
    path: str,
    payload: Any = None,
    *,
    token: str = KEY,
) -> tuple[int, dict[str, Any]]:
    """One API request; (HTTP status, JSON body)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with http.request(method, sb.base_url + path, json=payload, headers=headers) as resp:
        return resp.status, await resp.json()


async def create(
    http: aiohttp.ClientSession, sb: Sandbox, payload: dict[str, Any], path: str = V3
) -> dict[str, Any]:
    """Create; assert success; the ``data``."""
    status, answer = await call(http, sb, "POST", path, payload)
    assert (status, answer["code"]) == (200, 0), answer
    return answer["data"]


async def wait_done(sb: Sandbox) -> None:
    """Sleep until every task has ended."""
    await asyncio.sleep(max(0.0, max(r.ends_at for r in sb.tasks) - time.time()) + 0.05)


async def test_create_then_batch_query_by_id_and_external_id(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """A create answers {id, status, times, external_id}; /tasks shows it succeeded by either id."""
    payload = prompt_only(resolution="1080p", duration=6)
    payload["options"] = {"external_task_id": "job-1", "watermark_info": {"enabled": True}}
    data = await create(http, sb, payload)
    assert set(data) == {"id", "status", "create_time", "update_time", "external_id"}
    assert data["status"] == "submitted" and data["external_id"] == "job-1"
    assert data["create_time"] == data["update_time"] and data["create_time"] > 1e12
    other = await create(http, sb, prompt_only(), O1)
    await wait_done(sb)

    status, answer = await call(http, sb, "GET", f"/tasks?task_ids={data['id']},{other['id']},nope")
    assert status == 200 and [t["id"] for t in answer["data"]] == [data["id"], other["id"]]
    task = answer["data"][0]
    assert task["status"] == "succeeded" and task["message"] == ""
    assert task["external_id"] == "job-1" and task["update_time"] > task["create_time"]
    [output] = task["outputs"]
    assert output["type"] == "video" and output["duration"] == "6" and output["watermark_url"]
    # Kling 3.0 Omni, no video input, no native audio, 1080p: 0.8 units/s × 6 s
    # (https://kling.ai/document-api/pricing/base/video)
    assert task["billing"] == [{"charge_type": "unit", "amount": "4.8", "package_type": "video"}]
    async with http.get(output["url"]) as resp:
        assert resp.status == 200 and (await resp.read())[4:8] == b"ftyp"

    _, by_ext = await call(http, sb, "GET", "/tasks?external_task_ids=job-1,unknown")
    assert by_ext["data"] == [task | {"outputs": by_ext["data"][0]["outputs"]}]
    stats = sb.stats()
    assert stats.batch_queries == 2 and stats.creates == 2 and stats.requests == 4


async def test_task_is_submitted_with_no_outputs_before_it_ends(
    http: aiohttp.ClientSession,
) -> None:
    """Before the end a task has no outputs and no billing."""
    async with Sandbox(api_keys=(KEY,), video_duration=30.0) as sb:
        data = await create(http, sb, prompt_only())
        _, answer = await call(http, sb, "GET", f"/tasks?task_ids={data['id']}")
        [task] = answer["data"]
        assert task["status"] == "submitted" and task["outputs"] == [] and task["billing"] == []


VALID: list[tuple[str, dict[str, Any]]] = [
    ("first_frame + refer_image", body(
        {"type": "first_frame", "url": IMAGE_URL, "id": "image_1"},
        {"type": "refer_image", "url": PNG_B64, "id": "image_2"},
        aspect_ratio=None, multi_shot=False, audio="native", resolution="1080p",
    )),
    ("first + last frame + elements", body(
        {"type": "first_frame", "url": IMAGE_URL, "id": "image_1"},
        {"type": "last_frame", "url": IMAGE_URL, "id": "image_2"},
        {"type": "element", "element_id": "162", "id": "element_1"},
        aspect_ratio=None,
    )),
    ("feature_video", body(
        {"type": "feature_video", "url": VIDEO_URL, "id": "video_1"},
        aspect_ratio=None, resolution="4k", audio="off", multi_shot=True,
    )),
    ("base_video", body(
        {"type": "base_video", "url": VIDEO_URL, "id": "video_1"},
        aspect_ratio=None, multi_shot=False, audio="original",
    )),
    ("only prompt, no aspect ratio (the page's example; default 16:9)", prompt_only(
        aspect_ratio=None, resolution="1080p", duration=5, audio="native", multi_shot=False,
    )),
    ("multi-shot prompt", {
        "contents": [{"type": "prompt", "text": "shot 1, 2, a door opens; shot 2, 3, rain;"}],
        "settings": {"aspect_ratio": "9:16", "duration": 5},
        "options": {"external_task_id": "", "callback_url": "https://example.com/cb"},
    }),
    ("@reference to an id", {
        "contents": [
            {"type": "prompt", "text": "@image_1 walks in; mail me at a@gmail.com"},
            {"type": "refer_image", "url": IMAGE_URL, "id": "image_1"},
        ],
        "settings": {"aspect_ratio": "1:1", "duration": 15},
    }),
]  # fmt: skip


@pytest.mark.parametrize(("name", "payload"), VALID, ids=[n for n, _ in VALID])
async def test_documented_bodies_are_accepted(
    sb: Sandbox, http: aiohttp.ClientSession, name: str, payload: dict[str, Any]
) -> None:
    """Bodies shaped as the vendor's 3.0 Omni examples are accepted."""
    await create(http, sb, payload)


async def test_o1_documented_bodies_are_accepted(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """O1 takes first frame + refer image at 3 s, and elements + first frame + feature video."""
    first = {"type": "first_frame", "url": IMAGE_URL, "id": "image_1"}
    await create(http, sb, body(first, {"type": "refer_image", "url": IMAGE_URL}, duration=3), O1)
    feature = {"type": "feature_video", "url": VIDEO_URL, "id": "video_1"}
    element = {"type": "element", "element_id": "161", "id": "element_1"}
    await create(http, sb, body(element, first, feature, resolution="1080p"), O1)


def _with(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    out["settings"].update(changes)
    return out


FRAME = {"type": "first_frame", "url": IMAGE_URL}
LAST = {"type": "last_frame", "url": IMAGE_URL}
REFER = {"type": "refer_image", "url": IMAGE_URL}
FEATURE = {"type": "feature_video", "url": VIDEO_URL}
BASE = {"type": "base_video", "url": VIDEO_URL}
ELEMENT = {"type": "element", "element_id": "7", "id": "element_9"}
REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    ("legacy field", V3, {"model_name": "kling-v3-omni", **prompt_only()}, "model_name"),
    ("no contents", V3, {"settings": {"aspect_ratio": "16:9"}}, "contents is required"),
    ("empty contents", V3, {"contents": []}, "contents must be"),
    ("unknown type", V3, body({"type": "image", "url": IMAGE_URL}), "contents[1].type"),
    ("no prompt", V3, {"contents": [FRAME]}, "1 prompt"),
    ("3.0 prompt > 3072", V3, {"contents": [{"type": "prompt", "text": "x" * 3073}],
                               "settings": {"aspect_ratio": "1:1"}}, "contents[0].text"),
    ("O1 prompt > 2500", O1, {"contents": [{"type": "prompt", "text": "x" * 2501}],
                              "settings": {"aspect_ratio": "1:1"}}, "2500"),
    ("image without url", V3, body({"type": "refer_image", "image": IMAGE_URL}), "contents[1].url"),
    ("data: prefix", V3, body({"type": "refer_image", "url": "data:image/png;base64,AAAA"}),
     "contents[1].url"),
    ("tiny base64 image", V3, body({"type": "refer_image",
                                    "url": base64.b64encode(png_bytes("s", 64)).decode()}), "300"),
    ("element_id number", V3, body({"type": "element", "element_id": 7, "id": "e"}),
     "contents[1].element_id"),
    ("element without id", V3, body({"type": "element", "element_id": "7"}), "contents[1].id"),
    ("duplicate id", V3, body({**REFER, "id": "a"}, {**REFER, "id": "a"}), "contents[2].id"),
    ("dangling @image_3", V3, {"contents": [{"type": "prompt", "text": "use @image_3"}],
                               "settings": {"aspect_ratio": "1:1"}}, "@image_3"),
    ("last frame only", V3, body(LAST, aspect_ratio=None), "last_frame requires a first_frame"),
    ("two videos", V3, body(FEATURE, BASE, aspect_ratio=None, multi_shot=False, audio="off"),
     "at most 1 feature_video"),
    ("8 images", V3, body(*[REFER] * 8), "at most 7"),
    ("5 images with video", V3, body(*[REFER] * 5, FEATURE, audio="off"), "at most 4"),
    ("4 elements with frame", V3, body(FRAME, *[{**ELEMENT, "id": f"e{i}"} for i in range(4)],
                                       aspect_ratio=None), "at most 3 elements"),
    ("unknown setting", V3, prompt_only(mode="pro"), "'mode' in settings"),
    ("multi_shot not bool", V3, prompt_only(multi_shot="true"), "settings.multi_shot"),
    ("O1 multi_shot", O1, prompt_only(multi_shot=False), "'multi_shot' in settings"),
    ("audio on", V3, prompt_only(audio="on"), "settings.audio"),
    ("O1 native audio", O1, prompt_only(audio="native"), "settings.audio"),
    ("O1 4k", O1, prompt_only(resolution="4k"), "settings.resolution"),
    ("aspect 4:3", V3, prompt_only(aspect_ratio="4:3"), "settings.aspect_ratio"),
    ("duration string", V3, prompt_only(duration="5"), "settings.duration"),
    ("duration 16", V3, prompt_only(duration=16), "settings.duration"),
    ("duration 2", V3, prompt_only(duration=2), "settings.duration"),
    ("O1 duration 11", O1, prompt_only(duration=11), "settings.duration"),
    ("O1 first frame 7 s", O1, body(FRAME, aspect_ratio=None, duration=7), "5 or 10"),
    ("feature, multi_shot off", V3, body(FEATURE, multi_shot=False), "settings.multi_shot"),
    ("feature, audio native", V3, body(FEATURE, audio="native"), "settings.audio"),
    ("base, default multi_shot", V3, body(BASE), "settings.multi_shot must be false"),
    ("base, native audio", V3, body(BASE, multi_shot=False, audio="native"), "settings.audio"),
    ("base + first frame", V3, body(BASE, FRAME, multi_shot=False), "base_video cannot"),
    ("O1 first+last+refer", O1, body(FRAME, LAST, REFER), "refer_image is not supported"),
    ("O1 first+last+element", O1, body(FRAME, LAST, ELEMENT), "element is not supported"),
    ("O1 feature + last", O1, body(FRAME, LAST, FEATURE), "last_frame is not supported"),
    ("shots don't add up", V3, {"contents": [{"type": "prompt",
                                              "text": "shot 1, 2, a; shot 2, 2, b;"}],
                                "settings": {"aspect_ratio": "1:1", "duration": 5}}, "add up"),
    ("7 shots", V3, {"contents": [{"type": "prompt",
                                   "text": "".join(f"shot {i}, 1, x;" for i in range(1, 8))}],
                     "settings": {"aspect_ratio": "1:1", "duration": 7}}, "1 to 6 shots"),
    ("unknown option", V3, {**prompt_only(), "options": {"watermark": True}},
     "'watermark' in options"),
    ("watermark not bool", V3, {**prompt_only(), "options": {"watermark_info": {"enabled": 1}}},
     "options.watermark_info.enabled"),
    ("callback not url", V3, {**prompt_only(), "options": {"callback_url": "ftp://x"}},
     "options.callback_url"),
    ("external id number", V3, {**prompt_only(), "options": {"external_task_id": 5}},
     "options.external_task_id"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "path", "payload", "field"), REFUSED, ids=[case[0] for case in REFUSED]
)
async def test_rule_violations_are_refused_with_1201_naming_the_field(
    sb: Sandbox, http: aiohttp.ClientSession, name: str, path: str, payload: Any, field: str
) -> None:
    """Each documented rule refuses a breaking body with HTTP 400, code 1201, naming the field."""
    status, answer = await call(http, sb, "POST", path, payload)
    assert (status, answer["code"]) == (400, 1201), answer
    assert field in answer["message"] and "data" not in answer
    assert sb.tasks == []


async def test_unknown_model_and_wrong_method(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """A model not in the path list is 1203; a GET on a create path is 1202; bad JSON is 1200."""
    status, answer = await call(http, sb, "POST", "/omni-video/kling-v3-omni", prompt_only())
    assert (status, answer["code"]) == (404, 1203)
    status, answer = await call(http, sb, "GET", V3)
    assert (status, answer["code"]) == (404, 1202)
    async with http.post(
        sb.base_url + V3, data=b"{", headers={"Authorization": f"Bearer {KEY}"}
    ) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, 1200)


async def test_duplicate_external_task_id_is_refused_across_standards(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """external_task_id is unique per account: a repeat (new or legacy standard) is 1201."""
    await create(http, sb, {**prompt_only(), "options": {"external_task_id": "dup"}})
    status, answer = await call(
        http, sb, "POST", V3, {**prompt_only(), "options": {"external_task_id": "dup"}}
    )
    assert (status, answer["code"]) == (400, 1201) and "external_task_id" in answer["message"]
    legacy = {"model_name": "kling-v3-omni", "prompt": "p", "aspect_ratio": "16:9"}
    status, answer = await call(http, sb, "POST", "/v1/videos/omni-video", legacy)
    assert status == 200
    legacy["external_task_id"] = "old"
    assert (await call(http, sb, "POST", "/v1/videos/omni-video", legacy))[0] == 200
    status, answer = await call(
        http, sb, "POST", O1, {**prompt_only(), "options": {"external_task_id": "old"}}
    )
    assert answer["code"] == 1201 and sb.stats().duplicate_external_ids == 1 + 1


async def test_jwt_is_refused_on_new_standard_routes(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """An AccessKey/SecretKey JWT works on legacy routes but is refused (401) on new ones."""
    now = int(time.time())
    token = jwt.encode({"iss": AK, "exp": now + 1800, "nbf": now - 5}, SK, algorithm="HS256")
    legacy = {"model_name": "kling-v3-omni", "prompt": "p", "aspect_ratio": "16:9"}
    assert (await call(http, sb, "POST", "/v1/videos/omni-video", legacy, token=token))[0] == 200
    for method, path, payload in (("POST", V3, prompt_only()), ("GET", "/tasks?task_ids=1", None)):
        status, answer = await call(http, sb, method, path, payload, token=token)
        assert (status, answer["code"]) == (401, 1002) and "API key" in answer["message"]
    async with http.post(sb.base_url + V3, json=prompt_only()) as resp:
        assert (resp.status, (await resp.json())["code"]) == (401, 1001)


async def test_a_full_pool_is_shared_with_legacy_creates(http: aiohttp.ClientSession) -> None:
    """kling-3.0-omni holds slots of the legacy kling-v3-omni pool: a full pool answers 1303."""
    async with Sandbox(api_keys=(KEY,), quota={"video": 2}, video_duration=30.0) as sb:
        legacy = {"model_name": "kling-v3-omni", "prompt": "p", "aspect_ratio": "16:9"}
        assert (await call(http, sb, "POST", "/v1/videos/omni-video", legacy))[0] == 200
        await create(http, sb, prompt_only())
        status, answer = await call(http, sb, "POST", V3, prompt_only())
        assert (status, answer["code"]) == (429, 1303) and "data" not in answer
        status, _ = await call(http, sb, "POST", "/v1/videos/omni-video", legacy)
        assert status == 429
        await create(http, sb, prompt_only(), O1)  # another model, another pool
        stats = sb.stats()
        assert stats.pools["kling-v3-omni:video"].in_use == 2
        assert stats.pools["kling-video-o1:video"].in_use == 1
        assert stats.rejected_1303 == 2 and "kling-3.0-omni:video" not in stats.pools


async def test_batch_query_limits(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """Both id kinds at once, no ids, an empty id and more than 50 ids are refused with 1201."""
    for query, field in (
        ("task_ids=1&external_task_ids=2", "exclusive"),
        ("", "required"),
        ("task_ids=1,,2", "empty"),
        ("task_ids=" + ",".join(str(i) for i in range(51)), "at most 50"),
    ):
        status, answer = await call(http, sb, "GET", f"/tasks?{query}")
        assert (status, answer["code"]) == (400, 1201) and field in answer["message"]
    status, answer = await call(http, sb, "GET", "/tasks?task_ids=" + ",".join(["x"] * 50))
    assert (status, answer["data"]) == (200, [])


async def test_legacy_tasks_are_not_in_the_new_task_query(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    """/tasks lists new-standard tasks only; the legacy query does not find new ones."""
    legacy = {"model_name": "kling-v3-omni", "prompt": "p", "aspect_ratio": "16:9"}
    _, made = await call(http, sb, "POST", "/v1/videos/omni-video", legacy)
    _, answer = await call(http, sb, "GET", f"/tasks?task_ids={made['data']['task_id']}")
    assert answer["data"] == []
    new = await create(http, sb, prompt_only())
    status, answer = await call(http, sb, "GET", f"/v1/videos/omni-video/{new['id']}")
    assert (status, answer["code"]) == (404, 1203)


async def test_cursor_listing_pages_newest_first(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """POST /tasks pages with next_cursor/has_more, newest first, and filters by status."""
    ids = [(await create(http, sb, prompt_only()))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = ""
    for expected in (2, 2, 1):
        status, answer = await call(http, sb, "POST", "/tasks", {"limit": 2, "cursor": cursor})
        page = answer["data"]
        assert status == 200 and page["count"] == expected == len(page["result"])
        assert page["has_more"] is (expected == 2) and bool(page["next_cursor"]) is page["has_more"]
        seen += [t["id"] for t in page["result"]]
        cursor = page["next_cursor"]
    assert seen == ids[::-1]
    filters = [{"key": "status", "values": ["succeeded"]}]
    _, answer = await call(http, sb, "POST", "/tasks", {"filters": filters})
    assert answer["data"]["result"] == [] and answer["data"]["has_more"] is False
    await wait_done(sb)
    filters.append({"key": "product_type", "values": ["video"]})
    _, answer = await call(http, sb, "POST", "/tasks", {"filters": filters})
    assert answer["data"]["count"] == 5
    future = str(int(time.time() * 1000) + 60_000)
    _, answer = await call(http, sb, "POST", "/tasks", {"start_time": future})
    assert answer["code"] == 1201 and "start_time" in answer["message"]
    _, answer = await call(http, sb, "POST", "/tasks", {"start_time": future, "end_time": "9" * 14})
    assert answer["data"]["count"] == 0
    for bad in ({"limit": 501}, {"cursor": "%%%"}, {"filters": [{"key": "model"}]}):
        status, answer = await call(http, sb, "POST", "/tasks", bad)
        assert (status, answer["code"]) == (400, 1201)
    assert sb.stats().list_queries == 10


async def test_callbacks_post_each_status_in_the_new_shape(http: aiohttp.ClientSession) -> None:
    """options.callback_url gets one /tasks item per status change, signed with the secret."""
    received: list[tuple[dict[str, Any], str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.json(), request.headers.get("webhook-signature")))
        return web.Response()

    app = web.Application()
    app.router.add_post("/cb", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
    try:
        async with Sandbox(api_keys=(KEY,), video_duration=0.2, callback_secret=secret) as sb:
            payload = prompt_only()
            payload["options"] = {
                "callback_url": f"http://127.0.0.1:{port}/cb",
                "external_task_id": "cb-1",
            }
            data = await create(http, sb, payload)
            await wait_done(sb)
            for _ in range(50):
                if len(received) == 2:
                    break
                await asyncio.sleep(0.02)
            _, answer = await call(http, sb, "GET", f"/tasks?task_ids={data['id']}")
            assert sb.stats().callbacks_sent == 2
    finally:
        await runner.cleanup()
    [(processing, sig1), (done, sig2)] = received
    assert processing["status"] == "processing" and processing["outputs"] == []
    assert sig1 is not None and sig1.startswith("v1,") and sig2 is not None
    assert set(done) == set(answer["data"][0])
    assert done["status"] == "succeeded" and done["external_id"] == "cb-1"
    # 720p, no audio: 0.6 units/s × 5 s (https://kling.ai/document-api/pricing/base/video)
    assert done["outputs"][0]["type"] == "video" and done["billing"][0]["amount"] == "3"


async def test_dropped_create_is_found_once_by_external_id(http: aiohttp.ClientSession) -> None:
    """With drop_after_create the task exists: GET /tasks?external_task_ids= finds exactly one."""
    faults = Faults(drop_after_create=1.0)
    async with Sandbox(api_keys=(KEY,), video_duration=30.0, faults=faults, seed=1) as sb:
        payload = {**prompt_only(), "options": {"external_task_id": "once"}}
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await call(http, sb, "POST", V3, payload)
        _, answer = await call(http, sb, "GET", "/tasks?external_task_ids=once")
        [task] = answer["data"]
        assert task["external_id"] == "once" and task["status"] == "submitted"
        _, answer = await call(http, sb, "POST", V3, payload)
        assert answer["code"] == 1201
        assert sb.stats().creates == 1 and sb.stats().faults_injected == {"drop_after_create": 1}


async def test_create_and_query_faults_apply(http: aiohttp.ClientSession) -> None:
    """error_after_create answers 5002 with the task made; query_error answers 5001."""
    faults = Faults(error_after_create=1.0, query_error=1.0)
    async with Sandbox(api_keys=(KEY,), video_duration=30.0, faults=faults) as sb:
        status, answer = await call(http, sb, "POST", V3, prompt_only())
        assert (status, answer["code"]) == (504, 5002) and len(sb.tasks) == 1
        status, answer = await call(http, sb, "GET", f"/tasks?task_ids={sb.tasks[0].task_id}")
        assert (status, answer["code"]) == (503, 5001)
        assert sb.tasks[0].api == "kling-new" and sb.tasks[0].model_name == "kling-3.0-omni"
