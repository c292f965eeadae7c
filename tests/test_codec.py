"""Kling codec: request bodies (§5.1, §6.1), query answers (§5.3, §6.2) and envelopes (§4, §8)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import kling_async as ka
from kling_async._http._transport import Response
from kling_async._providers import codec_for
from kling_async._providers.kling import KlingCodec

CODEC = KlingCodec()
V3 = "kling-v3-omni"
URL = "https://example.com/ref.png"
VIDEO_URL = "https://example.com/ref.mp4"
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 256
CREATED_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
UPDATED_MS = 1_767_225_624_500  # 24.5 s later


def _png(path: Path, size: tuple[int, int] = (400, 400)) -> Path:
    Image.new("RGB", size, (10, 120, 200)).save(path, "PNG")
    return path


# --------------------------------------------------------------------------------------------
# build_create: omni-image
# --------------------------------------------------------------------------------------------


def test_image_single_body() -> None:
    """A single-result image sends n and no series_amount, with every documented field."""
    body = CODEC.build_create(ka.OmniImageRequest(prompt="a fox", n=3), "ext-1")
    assert body == {
        "model_name": "kling-image-o1",
        "prompt": "a fox",
        "resolution": "1k",
        "result_type": "single",
        "aspect_ratio": "auto",
        "n": 3,
        "external_task_id": "ext-1",
    }
    assert CODEC.create_path(ka.OmniImageRequest(prompt="a fox")) == "/v1/images/omni-image"


def test_image_fixed_series_body() -> None:
    """A fixed series sends series_amount as an integer and no n."""
    request = ka.OmniImageRequest(
        prompt="p", model_name=V3, result_type="series", series_amount=5, aspect_ratio="3:2"
    )
    body = CODEC.build_create(request, "ext-2")
    assert body["result_type"] == "series"
    assert body["series_amount"] == 5
    assert "n" not in body


def test_image_auto_series_body() -> None:
    """An auto series sends series_amount as the string "auto"."""
    request = ka.OmniImageRequest(
        prompt="p", model_name=V3, result_type="series", series_amount="auto", aspect_ratio="1:1"
    )
    body = CODEC.build_create(request, "ext-3")
    assert body["series_amount"] == "auto"
    assert json.loads(json.dumps(body))["series_amount"] == "auto"
    assert "n" not in body


def test_image_list_local_png_is_raw_base64(tmp_path: Path) -> None:
    """A local PNG is sent as raw base64 (no data: prefix) that decodes back to the file."""
    path = _png(tmp_path / "ref.png")
    request = ka.OmniImageRequest(
        prompt="<<<image_1>>> and <<<image_2>>>", image_list=[str(path), URL], element_list=[160]
    )
    body = CODEC.build_create(request, "ext-4")
    encoded = body["image_list"][0]["image"]
    assert not encoded.startswith("data:")
    assert base64.b64decode(encoded, validate=True) == path.read_bytes()
    assert body["image_list"][1] == {"image": URL}
    assert body["element_list"] == [{"element_id": 160}]


def test_image_list_bytes_are_raw_base64(tmp_path: Path) -> None:
    """Image bytes are sent as raw base64 of those bytes."""
    data = _png(tmp_path / "b.png").read_bytes()
    body = CODEC.build_create(ka.OmniImageRequest(prompt="p", image_list=[data]), "e")
    assert base64.b64decode(body["image_list"][0]["image"]) == data


def test_image_list_invalid_local_file_fails_before_sending(tmp_path: Path) -> None:
    """A too-small local image raises InvalidInputError naming image_list[i] while building."""
    small = _png(tmp_path / "small.png", (200, 400))
    request = ka.OmniImageRequest(prompt="p", image_list=[URL, small])
    with pytest.raises(ka.InvalidInputError, match=r"^image_list\[1\]: .*small\.png.*300 px"):
        CODEC.build_create(request, "e")


@pytest.mark.parametrize("enabled", [True, False])
def test_watermark_becomes_watermark_info(enabled: bool) -> None:
    """watermark=True/False is sent as watermark_info {"enabled": ...}; None omits it."""
    body = CODEC.build_create(ka.OmniImageRequest(prompt="p", watermark=enabled), "e")
    assert body["watermark_info"] == {"enabled": enabled}
    assert "watermark_info" not in CODEC.build_create(ka.OmniImageRequest(prompt="p"), "e")


def test_callback_url_and_external_task_id_are_sent() -> None:
    """callback_url is sent when given; external_task_id is the one passed to build_create."""
    request = ka.OmniImageRequest(
        prompt="p", callback_url="https://example.com/cb", external_task_id="mine"
    )
    body = CODEC.build_create(request, "generated-or-mine")
    assert body["callback_url"] == "https://example.com/cb"
    assert body["external_task_id"] == "generated-or-mine"


@pytest.mark.parametrize(
    "request_",
    [
        ka.OmniImageRequest(prompt="p"),
        ka.OmniVideoRequest(prompt="p", aspect_ratio="1:1"),
    ],
    ids=["image", "video"],
)
def test_external_task_id_is_always_present(request_: ka.Request) -> None:
    """Every create body carries external_task_id, for image and video alike."""
    assert CODEC.build_create(request_, "ext-x")["external_task_id"] == "ext-x"


# --------------------------------------------------------------------------------------------
# build_create: omni-video
# --------------------------------------------------------------------------------------------


def test_video_body_basic() -> None:
    """A text-to-video body has the documented keys, duration as a string and no image_list."""
    request = ka.OmniVideoRequest(prompt="a fox runs", aspect_ratio="9:16", duration=10)
    body = CODEC.build_create(request, "v-1")
    assert body == {
        "model_name": "kling-video-o1",
        "multi_shot": False,
        "sound": "off",
        "mode": "pro",
        "duration": "10",
        "prompt": "a fox runs",
        "aspect_ratio": "9:16",
        "external_task_id": "v-1",
    }
    assert CODEC.create_path(request) == "/v1/videos/omni-video"


def test_video_image_list_uses_image_url_and_type(tmp_path: Path) -> None:
    """Video image_list items use key image_url, with type for frames and none for references."""
    frame = _png(tmp_path / "first.png")
    request = ka.OmniVideoRequest(
        prompt="p",
        model_name=V3,
        duration=7,
        image_list=[ka.VideoImage(image=frame, type="first_frame"), URL],
        element_list=[11, 12],
    )
    body = CODEC.build_create(request, "v-2")
    first, reference = body["image_list"]
    assert set(first) == {"image_url", "type"}
    assert first["type"] == "first_frame"
    assert base64.b64decode(first["image_url"]) == frame.read_bytes()
    assert reference == {"image_url": URL}
    assert body["element_list"] == [{"element_id": 11}, {"element_id": 12}]
    assert body["duration"] == "7"
    assert "aspect_ratio" not in body


def test_video_multi_prompt_durations_are_strings() -> None:
    """multi_prompt shots are sent with string durations, and no prompt when none was given."""
    request = ka.OmniVideoRequest(
        aspect_ratio="16:9",
        multi_shot=True,
        shot_type="customize",
        multi_prompt=[
            {"index": 1, "prompt": "wide", "duration": 2},
            {"index": 2, "prompt": "close", "duration": 3},
        ],
    )
    body = CODEC.build_create(request, "v-3")
    assert body["multi_shot"] is True
    assert body["shot_type"] == "customize"
    assert body["multi_prompt"] == [
        {"index": 1, "prompt": "wide", "duration": "2"},
        {"index": 2, "prompt": "close", "duration": "3"},
    ]
    assert body["duration"] == "5"
    assert "prompt" not in body


def test_video_list_item_keys(tmp_path: Path) -> None:
    """video_list items carry video_url and refer_type, plus keep_original_sound when set."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(MP4_BYTES)
    feature = ka.OmniVideoRequest(
        prompt="next shot of <<<video_1>>>",
        model_name=V3,
        aspect_ratio="16:9",
        video_list=[
            ka.ReferenceVideo(video=VIDEO_URL, refer_type="feature", keep_original_sound="yes")
        ],
    )
    assert CODEC.build_create(feature, "v-4")["video_list"] == [
        {"video_url": VIDEO_URL, "refer_type": "feature", "keep_original_sound": "yes"}
    ]
    base = ka.OmniVideoRequest(prompt="make it snow", model_name=V3, video_list=[clip])
    body = CODEC.build_create(base, "v-5")
    (item,) = body["video_list"]
    assert set(item) == {"video_url", "refer_type"}
    assert item["refer_type"] == "base"
    assert base64.b64decode(item["video_url"]) == MP4_BYTES
    assert "aspect_ratio" not in body


def test_video_list_local_file_with_wrong_suffix_fails_before_sending(tmp_path: Path) -> None:
    """A local reference video that is not .mp4/.mov raises InvalidInputError naming video_list."""
    clip = tmp_path / "clip.avi"
    clip.write_bytes(MP4_BYTES)
    request = ka.OmniVideoRequest(prompt="p", model_name=V3, video_list=[clip])
    with pytest.raises(ka.InvalidInputError, match=r"^video_list\[0\]: .*clip\.avi"):
        CODEC.build_create(request, "e")


# --------------------------------------------------------------------------------------------
# parse_task
# --------------------------------------------------------------------------------------------


def _image_answer(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "task_id": "863540473567727650",
        "task_status": "succeed",
        "task_status_msg": "",
        "task_info": {"external_task_id": "job-42"},
        "task_result": {
            "result_type": "single",
            "images": [
                {"index": 0, "url": "https://cdn.example/0.png", "watermark_url": ""},
                {
                    "index": 1,
                    "url": "https://cdn.example/1.png",
                    "watermark_url": "https://cdn.example/1-wm.png",
                },
            ],
        },
        "watermark_info": {"enabled": False},
        "final_unit_deduction": "16",
        "final_balance_deduction": {"quota": "0", "list_price": "0.056"},
        "created_at": CREATED_MS,
        "updated_at": UPDATED_MS,
    }
    data.update(overrides)
    return data


def test_parse_succeeded_image_task() -> None:
    """A documented succeed answer gives SUCCEEDED, images, ids, units and aware UTC times."""
    result = CODEC.parse_task(_image_answer())
    assert result.task_id == "863540473567727650"
    assert result.external_task_id == "job-42"
    assert result.status is ka.TaskStatus.SUCCEEDED
    assert result.status_message is None
    assert result.images == (
        ka.GeneratedImage(index=0, url="https://cdn.example/0.png"),
        ka.GeneratedImage(
            index=1, url="https://cdn.example/1.png", watermark_url="https://cdn.example/1-wm.png"
        ),
    )
    assert result.series_images == ()
    assert result.units == Decimal(16)
    assert result.created_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert result.created_at is not None and result.created_at.tzinfo is not None
    assert result.updated_at == dt.datetime(2026, 1, 1, 0, 0, 24, 500000, tzinfo=dt.UTC)
    assert result.expires_at == result.updated_at + dt.timedelta(days=30)


def test_parse_series_reads_series_images() -> None:
    """A series answer with images [] puts its pictures in series_images."""
    answer = _image_answer(
        task_result={
            "result_type": "series",
            "images": [],
            "series_images": [
                {"index": 0, "url": "https://cdn.example/s0.png"},
                {"index": 1, "url": "https://cdn.example/s1.png"},
                {"index": 2, "url": "https://cdn.example/s2.png"},
            ],
        }
    )
    result = CODEC.parse_task(answer)
    assert result.images == ()
    assert [im.url for im in result.series_images] == [
        "https://cdn.example/s0.png",
        "https://cdn.example/s1.png",
        "https://cdn.example/s2.png",
    ]
    assert [im.index for im in result.series_images] == [0, 1, 2]
    assert len(result.outputs) == 3


def test_parse_video_task() -> None:
    """A video answer gives videos with id, url and duration "5" as 5.0 seconds."""
    answer = {
        "task_id": 778899,
        "task_status": "succeed",
        "task_info": {"external_task_id": None},
        "task_result": {
            "videos": [
                {
                    "id": "vid-1",
                    "url": "https://cdn.example/v.mp4",
                    "watermark_url": "",
                    "duration": "5",
                }
            ]
        },
        "final_unit_deduction": "40",
        "created_at": CREATED_MS,
        "updated_at": UPDATED_MS,
    }
    result = CODEC.parse_task(answer)
    assert result.task_id == "778899"
    assert result.external_task_id is None
    assert result.videos == (
        ka.GeneratedVideo(index=0, url="https://cdn.example/v.mp4", duration=5.0, id="vid-1"),
    )


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("submitted", ka.TaskStatus.SUBMITTED),
        ("processing", ka.TaskStatus.PROCESSING),
        ("succeed", ka.TaskStatus.SUCCEEDED),
        ("failed", ka.TaskStatus.FAILED),
    ],
)
def test_parse_maps_each_task_status(wire: str, status: ka.TaskStatus) -> None:
    """Each documented task_status maps to its TaskStatus; only terminal ones get expires_at."""
    result = CODEC.parse_task(_image_answer(task_status=wire, task_result=None))
    assert result.status is status
    assert (result.expires_at is not None) is status.is_terminal


def test_parse_failed_task_keeps_reason() -> None:
    """A failed answer keeps task_status_msg as the status message."""
    result = CODEC.parse_task(
        _image_answer(task_status="failed", task_status_msg="risk control", task_result={})
    )
    assert result.status is ka.TaskStatus.FAILED
    assert result.status_message == "risk control"
    assert result.outputs == ()


def test_parse_ignores_unknown_fields() -> None:
    """Extra fields the SDK does not know, at any level, are ignored."""
    answer = _image_answer(brand_new_field={"x": 1}, another=[1, 2])
    answer["task_result"]["images"][0]["resolution"] = "2k"
    answer["task_info"]["parent_video"] = {"id": "p"}
    result = CODEC.parse_task(answer)
    assert result.status is ka.TaskStatus.SUCCEEDED
    assert len(result.images) == 2


def test_parse_minimal_answer() -> None:
    """An answer with only task_id and task_status parses with empty outputs and no times."""
    result = CODEC.parse_task({"task_id": "t", "task_status": "submitted"})
    assert (result.task_id, result.status, result.outputs) == ("t", ka.TaskStatus.SUBMITTED, ())
    assert (result.created_at, result.updated_at, result.expires_at) == (None, None, None)


def test_parse_images_without_index_use_their_position() -> None:
    """Images lacking an index field are numbered by their position in the list."""
    answer = _image_answer(
        task_result={"images": [{"url": "https://cdn.example/a"}, {"url": "https://cdn.example/b"}]}
    )
    assert [im.index for im in CODEC.parse_task(answer).images] == [0, 1]


def test_parse_unknown_status_is_response_format_error() -> None:
    """An undocumented task_status raises ResponseFormatError naming the value."""
    with pytest.raises(ka.UnknownStatusError, match="unknown status 'succeeded'"):
        CODEC.parse_task(_image_answer(task_status="succeeded"))


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"task_status": "succeed"},
        {"task_id": "t"},
        {"task_id": "t", "task_status": "succeed", "created_at": "yesterday"},
    ],
    ids=["null", "array", "no-task-id", "no-status", "bad-time"],
)
def test_parse_malformed_answer_is_response_format_error(data: object) -> None:
    """An answer without the documented shape raises ResponseFormatError, never a raw error."""
    with pytest.raises(ka.ResponseFormatError, match="task answer"):
        CODEC.parse_task(data)


def test_parse_task_list() -> None:
    """A list answer (an array of single-task shapes) parses every item."""
    results = CODEC.parse_task_list([_image_answer(), _image_answer(task_id="second")])
    assert [r.task_id for r in results] == ["863540473567727650", "second"]
    with pytest.raises(ka.ResponseFormatError, match="not an array"):
        CODEC.parse_task_list({"task_id": "t"})


def test_parse_task_list_parses_only_wanted_tasks() -> None:
    """With ``wanted``, only the followed tasks are parsed; a broken foreign item is skipped."""
    page = [_image_answer(), {"task_id": "foreign", "task_status": "???"}, "junk"]
    results = CODEC.parse_task_list(page, {"863540473567727650"})
    assert [r.task_id for r in results] == ["863540473567727650"]
    assert CODEC.parse_task_list(page, set()) == []


# --------------------------------------------------------------------------------------------
# unwrap
# --------------------------------------------------------------------------------------------


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    parsed = body if not isinstance(body, str) else None
    return Response(status, headers or {}, parsed, text.encode())


def test_unwrap_success_returns_data() -> None:
    """code 0 with HTTP 200 returns the envelope's data."""
    data = {"task_id": "t", "task_status": "submitted"}
    envelope = {"code": 0, "message": "SUCCEED", "request_id": "r", "data": data}
    assert CODEC.unwrap(_response(200, envelope)) == data


def test_unwrap_1303_with_retry_after() -> None:
    """code 1303 in HTTP 429 raises ConcurrencyLimitError carrying Retry-After and request id."""
    envelope = {
        "code": 1303,
        "message": "parallel task over resource pack limit",
        "request_id": "req-9",
    }
    with pytest.raises(ka.ConcurrencyLimitError) as info:
        CODEC.unwrap(_response(429, envelope, {"Retry-After": "3"}))
    error = info.value
    assert error.retry_after == 3.0
    assert (error.code, error.http_status, error.request_id) == (1303, 429, "req-9")
    assert "parallel task over resource pack limit" in str(error)
    assert "code=1303" in str(error)


def test_unwrap_rate_limit_without_retry_after() -> None:
    """A 1302 without Retry-After has retry_after None."""
    with pytest.raises(ka.RateLimitError) as info:
        CODEC.unwrap(_response(429, {"code": 1302, "message": "slow down", "request_id": "r"}))
    assert type(info.value) is ka.RateLimitError
    assert info.value.retry_after is None


def test_unwrap_retry_after_header_is_case_insensitive() -> None:
    """A lower-case retry-after header (HTTP headers are case-insensitive) is honoured."""
    with pytest.raises(ka.ConcurrencyLimitError) as info:
        CODEC.unwrap(_response(429, {"code": 1303, "message": "busy"}, {"retry-after": "4"}))
    assert info.value.retry_after == 4.0


def test_unwrap_business_error_inside_http_200() -> None:
    """A non-zero code inside HTTP 200 is still raised as its mapped error."""
    with pytest.raises(ka.ContentPolicyError) as info:
        CODEC.unwrap(_response(200, {"code": 1301, "message": "content risk", "request_id": "r"}))
    assert info.value.http_status == 200


def test_unwrap_non_json_502_is_server_error() -> None:
    """A non-JSON HTTP 502 raises ServerError whose message shows the status and body start."""
    with pytest.raises(ka.ServerError) as info:
        CODEC.unwrap(_response(502, "<html>Bad Gateway</html>"))
    assert info.value.http_status == 502
    assert info.value.code is None
    assert "HTTP 502" in str(info.value)
    assert "Bad Gateway" in str(info.value)


def test_unwrap_200_without_envelope_is_response_format_error() -> None:
    """A 2xx answer that is not the {code, message, data} envelope raises ResponseFormatError."""
    with pytest.raises(ka.ResponseFormatError, match="not a Kling envelope"):
        CODEC.unwrap(_response(200, {"task_id": "t"}))
    with pytest.raises(ka.ResponseFormatError):
        CODEC.unwrap(_response(200, "OK"))


def test_unwrap_code_zero_with_error_status_is_an_error() -> None:
    """code 0 with an HTTP error status is not success: the status decides the class."""
    with pytest.raises(ka.ServerError) as info:
        CODEC.unwrap(_response(503, {"code": 0, "message": "maintenance"}))
    assert info.value.code is None
    assert info.value.http_status == 503


def test_unwrap_auth_failure() -> None:
    """code 1002 in HTTP 401 raises AuthenticationError."""
    with pytest.raises(ka.AuthenticationError, match="code=1002"):
        CODEC.unwrap(_response(401, {"code": 1002, "message": "Authorization invalid"}))


@pytest.mark.parametrize(
    ("wire", "units"),
    [
        ("8", Decimal(8)),
        ("6.5", Decimal("6.5")),
        (16, Decimal(16)),
        ("", None),
        (None, None),
        ("n/a", None),
        ("NaN", None),
    ],
)
def test_final_unit_deduction_is_read_as_an_exact_decimal(wire: object, units: object) -> None:
    """``final_unit_deduction`` is a string on the wire; the model keeps it exact, and a value
    that is not a finite number is ``None`` (the task's outputs still count)."""
    body = {
        "code": 0,
        "data": {"task_id": "t", "task_status": "succeed", "final_unit_deduction": wire},
    }
    result = CODEC.parse_task(body["data"])
    assert result.units == units


@pytest.mark.parametrize(
    ("code", "message", "duplicate"),
    [
        (1201, "Invalid parameter: external_task_id already exists: 'x'", True),
        (1201, "duplicate external id", True),
        (1201, "prompt: 2501 characters, at most 2500", False),
        (1303, "external_task_id already exists", False),
        (1203, "resource does not exist", False),
    ],
)
def test_a_refusal_naming_an_id_in_use_is_a_duplicate(
    code: int, message: str, duplicate: bool
) -> None:
    """A 1200/1201 refusal that speaks of the external id or of something already existing
    reads as "the id is in use" (the task is then looked up); other codes never do, and
    Modellix, which takes no client id, never does."""
    error = ka.InvalidRequestError(message, code=code, http_status=400)
    assert KlingCodec().is_duplicate_external_id(error) is duplicate
    assert codec_for("modellix").is_duplicate_external_id(error) is False


@pytest.mark.parametrize(
    ("code", "status", "missing"),
    [(1202, 404, True), (None, 404, True), (None, 405, True), (1203, 404, False),
     (1201, 400, False), (None, 400, False)],
)  # fmt: skip
def test_a_path_that_is_not_there_is_told_apart(
    code: int | None, status: int, missing: bool
) -> None:
    """1202, or a 404/405 without the envelope, says the path is not there (a wrong base URL);
    an enveloped refusal is about the request. On Modellix only the bare 404/405 is."""
    error = ka.InvalidRequestError("x", code=code, http_status=status)
    assert KlingCodec().is_missing_path(error) is missing
    assert codec_for("modellix").is_missing_path(error) is (missing and code is None)
