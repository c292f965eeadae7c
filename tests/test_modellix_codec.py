"""Modellix codec: paths (§1–§2), flat request bodies (§5), refusals (§4, §5.5), envelopes and
errors (§1–§4), and task answers (§2), per ../shared/reference/modellix_api.md."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import kling_async as ka
from kling_async._http._transport import Response
from kling_async._models import Kind
from kling_async._providers.modellix import DEFAULT_BASE_URL, TRAITS, ModellixCodec

CODEC = ModellixCodec()
V3 = "kling-v3-omni"
URL = "https://example.com/ref.png"
VIDEO_URL = "https://example.com/ref.mp4"
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 256
EXPIRES_MS = 1_786_418_800_891  # the official agent-canvas fixture (§2 [G-canvas])


def _png(path: Path, size: tuple[int, int] = (400, 400)) -> Path:
    Image.new("RGB", size, (10, 120, 200)).save(path, "PNG")
    return path


def _image(**kwargs: Any) -> ka.OmniImageRequest:
    options: dict[str, Any] = {"prompt": "a mug", "model_name": V3, "aspect_ratio": "1:1"}
    options.update(kwargs)
    return ka.OmniImageRequest(**options)


def _video(**kwargs: Any) -> ka.OmniVideoRequest:
    options: dict[str, Any] = {"prompt": "a dolly shot", "model_name": V3, "aspect_ratio": "16:9"}
    options.update(kwargs)
    return ka.OmniVideoRequest(**options)


# --------------------------------------------------------------------------------------------
# interface and paths
# --------------------------------------------------------------------------------------------


def test_codec_defaults() -> None:
    """The codec is named modellix, uses the docs' /async path, and has no list or lookup."""
    assert DEFAULT_BASE_URL == "https://api.modellix.ai/api/v1"
    assert (CODEC.name, CODEC.submit_path) == ("modellix", "async")
    assert TRAITS.supports_list_query is False
    assert TRAITS.supports_external_lookup is False


@pytest.mark.parametrize(
    ("request_", "slug"),
    [
        (_image(), "kling-v3-omni-image"),
        (ka.OmniImageRequest(prompt="p", model_name="kling-image-o1"), "kling-image-o1"),
        (_video(), "kling-v3-omni-video"),
        (_video(model_name="kling-video-o1"), "kling-video-o1"),
    ],
    ids=["v3-image", "image-o1", "v3-video", "video-o1"],
)
def test_create_path_names_the_model(request_: ka.Request, slug: str) -> None:
    """model_name + kind pick the path slug; async and plain forms differ only by /async."""
    assert CODEC.create_path(request_) == f"/kling/{slug}/async"
    plain = CODEC.other_submit_path()
    assert plain.submit_path == "plain"
    assert plain.create_path(request_) == f"/kling/{slug}"


def test_other_submit_path_flips_back_and_forth() -> None:
    """other_submit_path switches async ↔ plain and leaves the original codec unchanged."""
    assert CODEC.other_submit_path().other_submit_path() == CODEC
    assert ModellixCodec(submit_path="plain").other_submit_path().submit_path == "async"
    assert CODEC.submit_path == "async"


@pytest.mark.parametrize("kind", ["image", "video"])
def test_query_path_is_tasks_id(kind: Kind) -> None:
    """Both kinds are queried at /tasks/{task_id}; an id cannot escape the path."""
    assert CODEC.query_path(kind, "task-abc123") == "/tasks/task-abc123"
    assert CODEC.query_path(kind, "a/../b?c") == "/tasks/a%2F..%2Fb%3Fc"


def test_there_is_no_list_query() -> None:
    """list_path and parse_task_list raise NotImplementedError: Modellix has no list query (§0)."""
    with pytest.raises(NotImplementedError, match="no list or batch task query"):
        CODEC.list_path("image")
    with pytest.raises(NotImplementedError, match="no list or batch task query"):
        CODEC.parse_task_list([])


# --------------------------------------------------------------------------------------------
# build_create: whole bodies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "body"),
    [
        (
            _image(n=3),
            {
                "prompt": "a mug",
                "resolution": "1k",
                "aspect_ratio": "1:1",
                "result_type": "single",
                "n": 3,
            },
        ),
        (
            _image(result_type="series", series_amount=5, resolution="4k"),
            {
                "prompt": "a mug",
                "resolution": "4k",
                "aspect_ratio": "1:1",
                "result_type": "series",
                "series_amount": 5,
            },
        ),
        (
            ka.OmniImageRequest(prompt="p", model_name="kling-image-o1", resolution="2k", n=2),
            {"prompt": "p", "resolution": "2k", "aspect_ratio": "auto", "n": 2},
        ),
        (
            _video(duration=8, sound="on", mode="std"),
            {
                "prompt": "a dolly shot",
                "multi_shot": False,
                "sound": "on",
                "mode": "std",
                "duration": 8,
                "aspect_ratio": "16:9",
            },
        ),
        (
            _video(model_name="kling-video-o1", duration=10),
            {
                "prompt": "a dolly shot",
                "multi_shot": False,
                "sound": "off",
                "mode": "pro",
                "duration": 10,
                "aspect_ratio": "16:9",
            },
        ),
    ],
    ids=["v3-single", "v3-series", "image-o1", "v3-video", "video-o1"],
)
def test_body_is_flat_and_exact(request_: ka.Request, body: dict[str, Any]) -> None:
    """The body holds exactly the model page's flat fields: no model_name, no external id."""
    assert CODEC.build_create(request_, "ka-key-1") == body


@pytest.mark.parametrize(
    "request_",
    [_image(), ka.OmniImageRequest(prompt="p"), _video(), _video(model_name="kling-video-o1")],
)
def test_client_key_is_never_sent(request_: ka.Request) -> None:
    """The client's external_task_id key goes nowhere on the wire (§5.5)."""
    body = CODEC.build_create(request_, "ka-secret-key")
    assert "ka-secret-key" not in json.dumps(body)
    assert not {"external_task_id", "model_name", "callback_url", "watermark_info"} & set(body)


# --------------------------------------------------------------------------------------------
# build_create: field by field (request → wire)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "key", "value"),
    [
        (
            _image(prompt="<<<image_1>>> on a desk", image_list=[URL]),
            "prompt",
            "<<<image_1>>> on a desk",
        ),
        (_image(resolution="2k"), "resolution", "2k"),
        (_image(aspect_ratio="21:9"), "aspect_ratio", "21:9"),
        (_image(n=9), "n", 9),
        (_image(result_type="series", series_amount=2), "series_amount", 2),
        (_image(result_type="series", series_amount=9), "result_type", "series"),
        (_image(image_list=[URL, URL]), "images", [URL, URL]),
        (_image(element_list=[160, 7]), "element_ids", [160, 7]),
        (
            ka.OmniImageRequest(prompt="p", model_name="kling-image-o1", image_list=[URL]),
            "images",
            [URL],
        ),
        (_video(prompt="rain"), "prompt", "rain"),
        (_video(multi_shot=True, shot_type="intelligence"), "multi_shot", True),
        (_video(multi_shot=True, shot_type="intelligence"), "shot_type", "intelligence"),
        (_video(image_list=[URL]), "images", [URL]),
        (_video(video_list=[VIDEO_URL], aspect_ratio=None), "videos", [VIDEO_URL]),
        (_video(sound="on"), "sound", "on"),
        (_video(mode="std"), "mode", "std"),
        (_video(aspect_ratio="9:16"), "aspect_ratio", "9:16"),
        (_video(duration=15), "duration", 15),
        (_video(duration=3), "duration", 3),
    ],
)
def test_each_field_maps_to_its_wire_key(request_: ka.Request, key: str, value: object) -> None:
    """Each request field lands under its §5 flat key with the documented JSON type."""
    assert CODEC.build_create(request_, "k")[key] == value


@pytest.mark.parametrize(
    ("request_", "absent"),
    [
        (_image(n=4), "series_amount"),
        (_image(result_type="series", series_amount=4), "n"),
        (_image(), "images"),
        (_image(), "element_ids"),
        (ka.OmniImageRequest(prompt="p", model_name="kling-image-o1"), "result_type"),
        (_video(), "shot_type"),
        (_video(), "images"),
        (_video(), "videos"),
        (_video(video_list=[VIDEO_URL], aspect_ratio=None), "duration"),
        (_video(video_list=[VIDEO_URL], aspect_ratio=None), "aspect_ratio"),
    ],
)
def test_fields_left_out(request_: ka.Request, absent: str) -> None:
    """Fields a page says to omit (series ↔ n, duration with videos, unused lists) are absent."""
    assert absent not in CODEC.build_create(request_, "k")


def test_local_image_is_raw_base64(tmp_path: Path) -> None:
    """A local PNG and image bytes are sent as raw base64 (no data: prefix) of the file."""
    path = _png(tmp_path / "ref.png")
    body = CODEC.build_create(_image(image_list=[path, path.read_bytes(), URL]), "k")
    first, second, third = body["images"]
    assert not first.startswith("data:")
    assert base64.b64decode(first, validate=True) == path.read_bytes()
    assert base64.b64decode(second, validate=True) == path.read_bytes()
    assert third == URL


def test_local_video_and_frame_images_are_raw_base64(tmp_path: Path) -> None:
    """A local reference video and a local video reference image are raw base64."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(MP4_BYTES)
    frame = _png(tmp_path / "f.png")
    body = CODEC.build_create(_video(video_list=[clip], image_list=[frame], aspect_ratio=None), "k")
    assert base64.b64decode(body["videos"][0], validate=True) == MP4_BYTES
    assert base64.b64decode(body["images"][0], validate=True) == frame.read_bytes()


def test_invalid_local_image_fails_while_building(tmp_path: Path) -> None:
    """A too-small local image raises InvalidInputError naming image_list[i], nothing sent."""
    small = _png(tmp_path / "small.png", (200, 400))
    with pytest.raises(ka.InvalidInputError, match=r"^image_list\[1\]: .*300 px"):
        CODEC.build_create(_image(image_list=[URL, small]), "k")


# --------------------------------------------------------------------------------------------
# check: what Modellix cannot carry
# --------------------------------------------------------------------------------------------

REFUSALS: list[tuple[str, Callable[[], ka.Request], str, str]] = [
    ("watermark-image", lambda: _image(watermark=False), "watermark", "§5.5"),
    ("watermark-video", lambda: _video(watermark=True), "watermark", "§5.5"),
    ("callback", lambda: _image(callback_url="https://example.com/cb"), "callback_url", "§4"),
    ("callback-video", lambda: _video(callback_url="https://x.example/cb"), "callback_url", "§4"),
    ("external-id", lambda: _image(external_task_id="mine-1"), "external_task_id", "§5.5"),
    ("external-id-video", lambda: _video(external_task_id="m"), "external_task_id", "§5.5"),
    (
        "auto-series",
        lambda: _image(result_type="series", series_amount="auto"),
        "series_amount",
        "§5.1",
    ),
    (
        "o1-elements",
        lambda: ka.OmniImageRequest(prompt="p", model_name="kling-image-o1", element_list=[5]),
        "element_list",
        "§5.4",
    ),
    (
        "customize",
        lambda: _video(
            prompt=None,
            multi_shot=True,
            shot_type="customize",
            multi_prompt=[{"index": 1, "prompt": "a", "duration": 5}],
        ),
        "multi_prompt",
        "§5.2",
    ),
    (
        "first-frame",
        lambda: _video(
            image_list=[ka.VideoImage(image=URL, type="first_frame")], aspect_ratio=None
        ),
        "image_list[0].type",
        "§5.2",
    ),
    (
        "end-frame",
        lambda: _video(
            image_list=[
                ka.VideoImage(image=URL, type="first_frame"),
                ka.VideoImage(image=URL, type="end_frame"),
            ],
            aspect_ratio=None,
        ),
        "image_list[0].type",
        "§5.2",
    ),
    ("video-elements", lambda: _video(element_list=[3]), "element_list", "§5.2"),
    ("mode-4k", lambda: _video(mode="4k"), "mode", "§5.2"),
    (
        "keep-sound",
        lambda: _video(
            video_list=[ka.ReferenceVideo(video=VIDEO_URL, keep_original_sound="yes")],
            aspect_ratio=None,
        ),
        "video_list[0].keep_original_sound",
        "§5.2",
    ),
    (
        "feature-video",
        lambda: _video(video_list=[ka.ReferenceVideo(video=VIDEO_URL, refer_type="feature")]),
        "video_list[0].refer_type",
        "§5.2",
    ),
]


# The vendor page each refusal cites, by the reference section the table names.
PAGES = {
    "§4": "https://docs.modellix.ai/ways-to-use/api",
    "§5.5": "https://docs.modellix.ai/ways-to-use/api",
    "§5.1": "https://docs.modellix.ai/kling/kling-v3-omni-image",
    "§5.2": "https://docs.modellix.ai/kling/kling-v3-omni-video",
    "§5.3": "https://docs.modellix.ai/kling/kling-video-o1",
    "§5.4": "https://docs.modellix.ai/kling/kling-image-o1",
}


@pytest.mark.parametrize(
    ("make", "field", "section"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_check_refuses_what_modellix_cannot_carry(
    make: Callable[[], ka.Request], field: str, section: str
) -> None:
    """check() and build_create() raise an InvalidInputError (a ValueError) naming modellix,
    the field and the reference section."""
    request = make()
    with pytest.raises(ka.InvalidInputError) as info:
        CODEC.check(request)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith("modellix cannot carry")
    assert field in message and PAGES[section] in message and "provider='kling'" in message
    with pytest.raises(ka.InvalidInputError):
        CODEC.build_create(request, "k")


@pytest.mark.parametrize(
    "request_",
    [
        _image(),
        _image(result_type="series", series_amount=9, image_list=[URL], element_list=[1]),
        ka.OmniImageRequest(prompt="p", model_name="kling-image-o1", image_list=[URL]),
        _video(multi_shot=True, shot_type="intelligence", image_list=[URL]),
        _video(video_list=[ka.ReferenceVideo(video=VIDEO_URL)], aspect_ratio=None),
    ],
)
def test_check_accepts_what_modellix_carries(request_: ka.Request) -> None:
    """Requests inside Modellix's pages pass check() silently."""
    CODEC.check(request_)


def test_check_reads_no_files(tmp_path: Path) -> None:
    """check() does no I/O: a missing local file passes check and fails only when built."""
    request = _image(image_list=[tmp_path / "missing.png"])
    CODEC.check(request)
    with pytest.raises(ka.InvalidInputError, match="cannot be read"):
        CODEC.build_create(request, "k")


@pytest.mark.parametrize("duration", range(3, 11))
@pytest.mark.parametrize("images", [0, 1], ids=["text", "reference-image"])
def test_video_o1_duration_without_a_video_is_5_or_10(duration: int, images: int) -> None:
    """kling-video-o1 without a reference video takes only 5 or 10 s on Modellix (§5.3), even
    where Kling's new standard allows 3–10; the refusal names the field and Modellix."""
    request = _video(model_name="kling-video-o1", duration=duration, image_list=[URL] * images)
    if duration in (5, 10):
        assert CODEC.build_create(request, "k")["duration"] == duration
    else:
        with pytest.raises(
            ka.InvalidInputError,
            match=r"^duration: \d+, kling-video-o1 without videos: 5 or 10 on Modellix$",
        ):
            CODEC.check(request)


@pytest.mark.parametrize("duration", [3, 7, 10])
def test_video_o1_duration_is_dropped_with_a_video(duration: int) -> None:
    """With a reference video, kling-video-o1 accepts any duration and none is sent (§5.3)."""
    request = _video(
        model_name="kling-video-o1", duration=duration, video_list=[VIDEO_URL], aspect_ratio=None
    )
    assert "duration" not in CODEC.build_create(request, "k")


@pytest.mark.parametrize("duration", range(3, 16))
def test_v3_video_takes_3_to_15(duration: int) -> None:
    """kling-v3-omni video accepts every integer duration 3–15 (§5.2)."""
    assert CODEC.build_create(_video(duration=duration), "k")["duration"] == duration


# --------------------------------------------------------------------------------------------
# unwrap
# --------------------------------------------------------------------------------------------


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    parsed = body if not isinstance(body, str) else None
    return Response(status, headers or {}, parsed, text.encode())


def test_unwrap_success_returns_data() -> None:
    """code 0 in HTTP 200 returns data (the seed 000 create answer)."""
    data = {"status": "pending", "task_id": "task-v3-omni-image-123", "model_id": "model-123"}
    assert CODEC.unwrap(_response(200, {"code": 0, "message": "success", "data": data})) == data


ERRORS = [
    (400, "Invalid parameters: parameter 'prompt' is required", ka.InvalidRequestError),
    (400, "Invalid format: invalid JSON", ka.InvalidRequestError),
    (401, "Authentication failed: invalid API key", ka.AuthenticationError),
    (402, "Insufficient balance: please top up", ka.AccountError),
    (403, "Forbidden: model not enabled", ka.PermissionDeniedError),
    (404, "Not found: Task ID not found", ka.InvalidRequestError),
    (405, "Method not allowed", ka.InvalidRequestError),
    (408, "Request timeout", ka.ServerError),
    (409, "Conflict", ka.ServerError),
    (413, "Payload too large", ka.InvalidRequestError),
    (422, "Unprocessable", ka.InvalidRequestError),
    (429, "Rate limit exceeded: too many requests", ka.RateLimitError),
    (429, "Quota exceeded", ka.RateLimitError),
    (429, "Concurrency limit exceeded: team concurrent task limit is 3", ka.ConcurrencyLimitError),
    (429, "Too many concurrent tasks", ka.ConcurrencyLimitError),
    (500, "Internal error: upstream failed", ka.ServerError),
    (502, "Bad gateway", ka.ServerError),
    (503, "Service unavailable: circuit breaker open", ka.ServerError),
]


@pytest.mark.parametrize(("status", "message", "cls"), ERRORS)
def test_unwrap_maps_each_error(status: int, message: str, cls: type[ka.APIError]) -> None:
    """{code: <HTTP status>, message} maps onto the SDK class, keeping code, message and
    http_status (§3)."""
    with pytest.raises(ka.APIError) as info:
        CODEC.unwrap(_response(status, {"code": status, "message": message}))
    error = info.value
    assert type(error) is cls
    assert (error.code, error.http_status, error.message) == (status, status, message)
    assert message in str(error) and f"code={status}" in str(error)


@pytest.mark.parametrize(("status", "message", "cls"), ERRORS)
def test_unwrap_maps_non_envelope_errors_by_status(
    status: int, message: str, cls: type[ka.APIError]
) -> None:
    """An error answer that is not the envelope (proxy page, router 404) maps by HTTP status
    with code None; the 404/405 a wrong path form gives keeps its http_status."""
    if status == 429:
        cls = ka.ConcurrencyLimitError if "oncurren" in message else ka.RateLimitError
    with pytest.raises(ka.APIError) as info:
        CODEC.unwrap(_response(status, message))
    assert type(info.value) is cls
    assert (info.value.code, info.value.http_status) == (None, status)
    assert f"HTTP {status}" in str(info.value)


def test_unwrap_keeps_request_id() -> None:
    """A request_id in the body, or else an X-Request-Id header, is kept on the error."""
    with pytest.raises(ka.InvalidRequestError) as info:
        CODEC.unwrap(_response(400, {"code": 400, "message": "bad", "request_id": "r-1"}))
    assert info.value.request_id == "r-1"
    with pytest.raises(ka.InvalidRequestError) as info:
        CODEC.unwrap(_response(400, {"code": 400, "message": "bad"}, {"x-request-id": "h-2"}))
    assert info.value.request_id == "h-2"


def test_unwrap_error_code_inside_http_200() -> None:
    """A non-zero code in HTTP 200 is raised by its code, http_status 200."""
    with pytest.raises(ka.AccountError) as info:
        CODEC.unwrap(_response(200, {"code": 402, "message": "Insufficient balance"}))
    assert (info.value.code, info.value.http_status) == (402, 200)


def test_unwrap_code_zero_with_error_status() -> None:
    """code 0 with HTTP 503 is not success: ServerError with code None."""
    with pytest.raises(ka.ServerError) as info:
        CODEC.unwrap(_response(503, {"code": 0, "message": "maintenance"}))
    assert (info.value.code, info.value.http_status) == (None, 503)


@pytest.mark.parametrize(
    "body",
    ["OK", {"task_id": "t"}, [1, 2], {"code": "0", "data": {}}, {"code": True, "data": {}}],
    ids=["text", "no-code", "array", "string-code", "bool-code"],
)
def test_unwrap_2xx_without_envelope_is_response_format_error(body: Any) -> None:
    """A 2xx that is not {code, message, data} raises ResponseFormatError (ambiguous create)."""
    with pytest.raises(ka.ResponseFormatError, match="not a Modellix envelope"):
        CODEC.unwrap(_response(200, body))


@pytest.mark.parametrize("kind", ["rate", "concurrency"])
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"X-RateLimit-Reset": "12"}, 12.0),
        ({"x-ratelimit-reset": "0"}, 0.0),
        ({"Retry-After": "3", "X-RateLimit-Reset": "60"}, 3.0),
        ({"Retry-After": "soon", "X-RateLimit-Reset": "9"}, 9.0),
        ({"Retry-After": "-4"}, 0.0),
        ({}, None),
        ({"X-RateLimit-Reset": "never"}, None),
    ],
    ids=[
        "retry-after",
        "retry-after-lower-float",
        "reset-seconds",
        "reset-zero",
        "retry-after-wins",
        "bad-retry-after-falls-back",
        "negative-clamped",
        "none",
        "bad-reset",
    ],
)
def test_429_retry_after_headers(
    kind: str, headers: dict[str, str], expected: float | None
) -> None:
    """Both 429 kinds carry retry_after from Retry-After, else X-RateLimit-Reset (§4)."""
    message = "Rate limit exceeded" if kind == "rate" else "Concurrency limit exceeded"
    with pytest.raises(ka.RateLimitError) as info:
        CODEC.unwrap(_response(429, {"code": 429, "message": message}, headers))
    assert isinstance(info.value, ka.ConcurrencyLimitError) is (kind == "concurrency")
    assert info.value.retry_after == expected


@pytest.mark.parametrize(
    "header",
    [
        lambda now: {"X-RateLimit-Reset": str(int(now + 30))},
        lambda now: {"X-RateLimit-Reset": str(int((now + 30) * 1000))},
        lambda now: {"Retry-After": email.utils.formatdate(now + 30, usegmt=True)},
    ],
    ids=["reset-epoch-seconds", "reset-epoch-ms", "retry-after-http-date"],
)
def test_429_retry_after_absolute_times(header: Callable[[float], dict[str, str]]) -> None:
    """An epoch X-RateLimit-Reset (seconds or ms) or an HTTP-date Retry-After becomes the
    seconds left until then."""
    with pytest.raises(ka.RateLimitError) as info:
        CODEC.unwrap(_response(429, {"code": 429, "message": "rate limit"}, header(time.time())))
    assert info.value.retry_after is not None
    assert 27.0 <= info.value.retry_after <= 31.0


def test_429_reset_in_the_past_is_zero() -> None:
    """An epoch reset already passed gives retry_after 0, never negative."""
    past = str(int(time.time() - 100))
    with pytest.raises(ka.RateLimitError) as info:
        CODEC.unwrap(_response(429, {"code": 429, "message": "r"}, {"X-RateLimit-Reset": past}))
    assert info.value.retry_after == 0.0


# --------------------------------------------------------------------------------------------
# parse_create
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "request_", "task_id"),
    [
        (  # seed 000
            {
                "status": "pending",
                "task_id": "task-v3-omni-image-123",
                "model_id": "model-123",
                "get_result": {
                    "method": "GET",
                    "url": "https://api.modellix.ai/api/v1/tasks/task-v3-omni-image-123",
                },
            },
            _image(n=2),
            "task-v3-omni-image-123",
        ),
        (  # seed 001
            {"status": "pending", "task_id": "task-v2v-def456", "model_id": "model-123"},
            _video(),
            "task-v2v-def456",
        ),
        (  # seed 002: no get_result
            {"status": "pending", "task_id": "task-omni-vwx234", "model_id": "kling-image-o1"},
            ka.OmniImageRequest(prompt="p"),
            "task-omni-vwx234",
        ),
        ({"task_id": 12345}, _image(), "12345"),
    ],
    ids=["seed-000", "seed-001", "seed-002", "numeric-id"],
)
def test_parse_create(data: Any, request_: ka.Request, task_id: str) -> None:
    """A create answer gives a Task with the server's id, the client's key, kind and model."""
    task = CODEC.parse_create(data, request_, "ka-key", 2)
    assert task == ka.Task(
        task_id=task_id,
        external_task_id="ka-key",
        kind=request_.kind,
        model=request_.model_name,
        cost=2,
    )


@pytest.mark.parametrize(
    "data",
    [None, {}, [], {"status": "pending"}, {"task_id": ""}, {"task_id": None}, {"task_id": True}],
)
def test_parse_create_without_task_id_is_response_format_error(data: Any) -> None:
    """A 2xx create answer without a usable task_id raises ResponseFormatError (§1)."""
    with pytest.raises(ka.ResponseFormatError, match="without a task_id"):
        CODEC.parse_create(data, _image(), "k", 1)


# --------------------------------------------------------------------------------------------
# parse_task
# --------------------------------------------------------------------------------------------


def _success(**overrides: Any) -> dict[str, Any]:
    """The documented success answer (§2 [G-skill @b537931]) plus result_expires_at."""
    data: dict[str, Any] = {
        "status": "success",
        "task_id": "task-abc",
        "model_id": "kling-v3-omni-image",
        "duration": 3500,
        "result": {
            "resources": [
                {
                    "url": "https://file.modellix.ai/out/0.png",
                    "type": "image",
                    "width": 1024,
                    "height": 1024,
                    "format": "png",
                    "role": "primary",
                }
            ],
            "metadata": {"image_count": 1, "request_id": "req-1"},
            "extensions": {
                "submit_time": "2026-01-01T00:00:00Z",
                "end_time": "2026-01-01T00:00:09.500000Z",
            },
        },
        "result_expires_at": EXPIRES_MS,
    }
    data.update(overrides)
    return data


def test_parse_documented_success() -> None:
    """The documented success answer gives SUCCEEDED, images, aware times and expires_at."""
    result = CODEC.parse_task(_success())
    assert result.task_id == "task-abc"
    assert result.external_task_id is None
    assert result.status is ka.TaskStatus.SUCCEEDED
    assert result.status_message is None
    assert result.images == (ka.GeneratedImage(index=0, url="https://file.modellix.ai/out/0.png"),)
    assert result.series_images == () and result.videos == ()
    assert result.created_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert result.updated_at == dt.datetime(2026, 1, 1, 0, 0, 9, 500000, tzinfo=dt.UTC)
    assert result.expires_at == dt.datetime.fromtimestamp(EXPIRES_MS / 1000, tz=dt.UTC)
    assert result.expires_at.tzinfo is not None


def test_parse_pending_example() -> None:
    """The query page's pending example gives SUBMITTED with no outputs or times (§2)."""
    result = CODEC.parse_task({"status": "pending", "task_id": "t-1", "model_id": "m"})
    assert (result.status, result.outputs) == (ka.TaskStatus.SUBMITTED, ())
    assert (result.created_at, result.updated_at, result.expires_at) == (None, None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EXPIRES_MS, dt.datetime.fromtimestamp(EXPIRES_MS / 1000, tz=dt.UTC)),
        (1_786_418_800, dt.datetime.fromtimestamp(1_786_418_800, tz=dt.UTC)),
        (str(EXPIRES_MS), dt.datetime.fromtimestamp(EXPIRES_MS / 1000, tz=dt.UTC)),
        ("2026-08-11T10:00:00+02:00", dt.datetime(2026, 8, 11, 8, tzinfo=dt.UTC)),
        ("2026-08-11T10:00:00", dt.datetime(2026, 8, 11, 10, tzinfo=dt.UTC)),
    ],
    ids=["epoch-ms", "epoch-s", "numeric-string", "iso-offset", "iso-naive-is-utc"],
)
def test_parse_result_expires_at_forms(value: Any, expected: dt.datetime) -> None:
    """result_expires_at as epoch ms (the client fixture), seconds or ISO becomes an aware
    expires_at."""
    expires = CODEC.parse_task(_success(result_expires_at=value)).expires_at
    assert expires == expected
    assert expires is not None and expires.tzinfo is not None


def test_parse_estimates_expiry_without_result_expires_at() -> None:
    """Without result_expires_at a finished task expires 7 days after its end_time (§2)."""
    data = _success()
    del data["result_expires_at"]
    result = CODEC.parse_task(data)
    assert result.updated_at is not None
    assert result.expires_at == result.updated_at + dt.timedelta(days=7)


def test_parse_video_result() -> None:
    """A video resource lands in videos with its index and url."""
    data = _success(
        model_id="kling-v3-omni-video",
        result={"resources": [{"url": "https://file.modellix.ai/v.mp4", "type": "video"}]},
    )
    result = CODEC.parse_task(data)
    assert result.videos == (ka.GeneratedVideo(index=0, url="https://file.modellix.ai/v.mp4"),)
    assert result.images == ()


def test_parse_several_images_are_numbered_in_order() -> None:
    """An n=3 result has three images indexed 0, 1, 2 in resource order."""
    resources = [{"url": f"https://f.example/{i}.png", "type": "image"} for i in range(3)]
    result = CODEC.parse_task(_success(result={"resources": resources}))
    assert [(im.index, im.url) for im in result.images] == [
        (i, f"https://f.example/{i}.png") for i in range(3)
    ]


def test_parse_series_when_the_caller_says_so() -> None:
    """With series=True (the request was a series) image resources go to series_images."""
    resources = [{"url": f"https://f.example/s{i}.png", "type": "image"} for i in range(4)]
    result = CODEC.parse_task(_success(result={"resources": resources}), series=True)
    assert result.images == ()
    assert [im.index for im in result.series_images] == [0, 1, 2, 3]


@pytest.mark.parametrize("where", ["data", "result", "metadata"])
def test_parse_series_from_a_result_type_marker(where: str) -> None:
    """Without a hint, result_type "series" anywhere the answer may carry it selects
    series_images (INFERRED); series=False overrides it."""
    data = _success()
    place = {"data": data, "result": data["result"], "metadata": data["result"]["metadata"]}
    place[where]["result_type"] = "series"
    assert len(CODEC.parse_task(data).series_images) == 1
    assert len(CODEC.parse_task(data, series=False).images) == 1


def test_parse_cli_shapes_bare_urls_and_top_level_resources() -> None:
    """Bare URL strings and a top-level data.resources (the CLI's tolerance, §2) parse; a
    missing type is guessed from the suffix, then the model."""
    data = {
        "status": "success",
        "task_id": "t",
        "model_id": "kling-v3-omni-video",
        "resources": ["https://f.example/a.png", "https://f.example/b.mp4", "https://f.example/x"],
    }
    result = CODEC.parse_task(data)
    assert [im.url for im in result.images] == ["https://f.example/a.png"]
    assert [v.url for v in result.videos] == ["https://f.example/b.mp4", "https://f.example/x"]


def test_parse_skips_audio_resources() -> None:
    """An audio resource is not an output the SDK models and is skipped."""
    resources = [
        {"url": "https://f.example/v.mp4", "type": "video"},
        {"url": "https://f.example/a.mp3", "type": "audio"},
    ]
    result = CODEC.parse_task(_success(result={"resources": resources}))
    assert len(result.videos) == 1 and len(result.outputs) == 1


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("pending", ka.TaskStatus.SUBMITTED),
        ("processing", ka.TaskStatus.PROCESSING),
        ("success", ka.TaskStatus.SUCCEEDED),
        ("succeeded", ka.TaskStatus.SUCCEEDED),
        ("completed", ka.TaskStatus.SUCCEEDED),
        ("failed", ka.TaskStatus.FAILED),
        ("error", ka.TaskStatus.FAILED),
        ("canceled", ka.TaskStatus.FAILED),
        ("cancelled", ka.TaskStatus.FAILED),
        ("SUCCESS", ka.TaskStatus.SUCCEEDED),
    ],
)
def test_parse_maps_each_status(wire: str, status: ka.TaskStatus) -> None:
    """Each wire status maps to its TaskStatus; is_terminal_wire_status agrees."""
    assert CODEC.parse_task(_success(status=wire, result=None)).status is status
    assert CODEC.is_terminal_wire_status(wire) is status.is_terminal


def test_unknown_status_is_not_terminal() -> None:
    """An unknown wire status is not terminal and makes parse_task raise ResponseFormatError."""
    assert CODEC.is_terminal_wire_status("queued") is False
    with pytest.raises(ka.UnknownStatusError, match="unknown status 'queued'"):
        CODEC.parse_task(_success(status="queued"))


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({}, "task failed"),
        ({"message": "content moderation"}, "content moderation"),
        ({"error": {"message": "upstream timeout"}}, "upstream timeout"),
        ({"error_message": "bad input"}, "bad input"),
    ],
)
def test_parse_failed_task_reason(extra: dict[str, Any], reason: str) -> None:
    """A failed task keeps whatever reason it carries, or says it failed."""
    result = CODEC.parse_task({"status": "failed", "task_id": "t", **extra})
    assert result.status is ka.TaskStatus.FAILED
    assert result.status_message == reason
    assert result.outputs == ()


def test_parse_canceled_says_so() -> None:
    """A canceled task is FAILED with status_message 'task canceled'."""
    assert CODEC.parse_task({"status": "canceled", "task_id": "t"}).status_message == (
        "task canceled"
    )


def test_parse_tolerates_ill_typed_optional_fields() -> None:
    """Ill-typed optional fields (result, times, model_id, metadata) are treated as absent."""
    data = {
        "status": "success",
        "task_id": "t",
        "model_id": 5,
        "result": {"resources": "nope", "metadata": [], "extensions": {"end_time": "yesterday"}},
        "result_expires_at": True,
    }
    result = CODEC.parse_task(data)
    assert result.outputs == ()
    assert (result.updated_at, result.expires_at) == (None, None)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "success",
        {"status": "success"},
        {"task_id": "t"},
        {"task_id": "t", "status": 1},
        {"task_id": "t", "status": "success", "result": {"resources": [{"type": "image"}]}},
        {"task_id": "t", "status": "success", "result": {"resources": [42]}},
    ],
    ids=["null", "array", "string", "no-id", "no-status", "int-status", "no-url", "int-item"],
)
def test_parse_malformed_answer_is_response_format_error(data: Any) -> None:
    """An answer without the documented shape raises ResponseFormatError, never a raw error."""
    with pytest.raises(ka.ResponseFormatError, match="task answer"):
        CODEC.parse_task(data)


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

_KNOWN = {
    "status",
    "task_id",
    "model_id",
    "result",
    "resources",
    "metadata",
    "extensions",
    "submit_time",
    "end_time",
    "result_expires_at",
    "result_type",
    "url",
    "type",
    "duration",
    "message",
    "error_message",
    "fail_reason",
    "reason",
    "error",
}
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)
_extra = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda k: k not in _KNOWN), _json, max_size=4
)


@settings(max_examples=150, deadline=None)
@given(top=_extra, result=_extra, resource=_extra, metadata=_extra, extensions=_extra)
def test_extra_fields_never_change_the_result(
    top: dict[str, Any],
    result: dict[str, Any],
    resource: dict[str, Any],
    metadata: dict[str, Any],
    extensions: dict[str, Any],
) -> None:
    """Unknown fields at any level of a query answer never change or break the parse."""
    data = _success()
    expected = CODEC.parse_task(data)
    data.update(top)
    data["result"].update(result)
    data["result"]["resources"][0].update(resource)
    data["result"]["metadata"].update(metadata)
    data["result"]["extensions"].update(extensions)
    assert CODEC.parse_task(data) == expected


@settings(max_examples=200, deadline=None)
@given(data=_json)
def test_parse_task_only_ever_raises_response_format_error(data: Any) -> None:
    """Any JSON value either parses or raises ResponseFormatError."""
    with contextlib.suppress(ka.ResponseFormatError):
        CODEC.parse_task(data)


@settings(max_examples=200, deadline=None)
@given(
    status=st.integers(100, 599),
    body=_json | st.fixed_dictionaries({"code": st.integers(-5, 600), "message": _json}),
    headers=st.dictionaries(
        st.sampled_from(["Retry-After", "X-RateLimit-Reset", "X-Request-Id"]), st.text(max_size=12)
    ),
)
def test_unwrap_only_ever_raises_sdk_errors(
    status: int, body: Any, headers: dict[str, str]
) -> None:
    """Any status, JSON body and header values either unwrap or raise an APIError or
    ResponseFormatError carrying the HTTP status."""
    try:
        CODEC.unwrap(_response(status, body if not isinstance(body, str) else {"v": body}, headers))
    except ka.APIError as exc:
        assert exc.http_status == status
        if isinstance(exc, ka.RateLimitError):
            assert exc.retry_after is None or exc.retry_after >= 0
    except ka.ResponseFormatError:
        assert status < 300


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 9),
    series=st.integers(2, 9) | st.none(),
    elements=st.lists(st.integers(1, 10**12), max_size=5),
    images=st.integers(0, 5),
    resolution=st.sampled_from(["1k", "2k", "4k"]),
)
def test_v3_image_bodies_use_only_documented_fields(
    n: int, series: int | None, elements: list[int], images: int, resolution: str
) -> None:
    """Every kling-v3-omni image body uses only §5.1's fields, with n xor series_amount."""
    request = _image(
        n=n,
        result_type="series" if series else "single",
        series_amount=series or 4,
        element_list=elements,
        image_list=[URL] * images,
        resolution=resolution,
    )
    body = CODEC.build_create(request, "k")
    documented = {
        "prompt",
        "images",
        "element_ids",
        "resolution",
        "result_type",
        "n",
        "series_amount",
        "aspect_ratio",
    }
    assert set(body) <= documented
    assert ("n" in body) is (series is None) is ("series_amount" not in body)
    assert body.get("element_ids", []) == elements
