"""Request validation (reference §5.1, §6.1): broken rules raise before anything is sent.

These are the legacy standard's rules: the helpers build a request and check it as Kling's
legacy-standard API would (``check_for("kling-legacy", ...)``)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import kling_async as ka
from kling_async._requests._api_rules import check_for
from kling_async._requests._validate import check_local_image, check_local_video

URL = "https://example.com/ref.png"
VIDEO_URL = "https://example.com/ref.mp4"
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 256


def _image(**kwargs: Any) -> ka.OmniImageRequest:
    fields: dict[str, Any] = {"prompt": "a red fox in the snow"}
    fields.update(kwargs)
    request = ka.OmniImageRequest(**fields)
    check_for("kling-legacy", request)
    return request


def _video(**kwargs: Any) -> ka.OmniVideoRequest:
    fields: dict[str, Any] = {"prompt": "a red fox running", "aspect_ratio": "16:9"}
    fields.update(kwargs)
    request = ka.OmniVideoRequest(**fields)
    check_for("kling-legacy", request)
    return request


def _first(url: str = URL) -> ka.VideoImage:
    return ka.VideoImage(image=url, type="first_frame")


def _end(url: str = URL) -> ka.VideoImage:
    return ka.VideoImage(image=url, type="end_frame")


def _shots(*durations: int) -> list[dict[str, Any]]:
    return [
        {"index": i + 1, "prompt": f"shot {i + 1}", "duration": d} for i, d in enumerate(durations)
    ]


V3 = "kling-v3-omni"

# --------------------------------------------------------------------------------------------
# Omni-image rules (§5.1)
# --------------------------------------------------------------------------------------------

IMAGE_INVALID: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("unknown model", {"model_name": "kling-v2"}, ValueError, "model_name"),
    ("empty prompt", {"prompt": ""}, ValueError, "prompt"),
    ("blank prompt", {"prompt": "   \n"}, ValueError, "prompt"),
    ("prompt 2501 chars", {"prompt": "x" * 2501}, ValueError, "prompt"),
    ("prompt None", {"prompt": None}, TypeError, "prompt"),
    ("prompt int", {"prompt": 5}, TypeError, "prompt"),
    ("upper-case resolution", {"resolution": "1K"}, ValueError, "resolution"),
    ("unknown result_type", {"result_type": "multi"}, ValueError, "result_type"),
    ("unknown aspect_ratio", {"aspect_ratio": "5:4"}, ValueError, "aspect_ratio"),
    ("n 0", {"n": 0}, ValueError, "n"),
    ("n 10", {"n": 10}, ValueError, "n"),
    ("n negative", {"n": -1}, ValueError, "n"),
    ("n string", {"n": "3"}, TypeError, "n"),
    ("n bool", {"n": True}, TypeError, "n"),
    ("n float", {"n": 2.0}, TypeError, "n"),
    ("series_amount 1", {"series_amount": 1}, ValueError, "series_amount"),
    ("series_amount 10", {"series_amount": 10}, ValueError, "series_amount"),
    ("series_amount string digit", {"series_amount": "4"}, TypeError, "series_amount"),
    ("series_amount AUTO", {"series_amount": "AUTO"}, TypeError, "series_amount"),
    (
        "11 images + elements",
        {"image_list": [URL] * 6, "element_list": [1, 2, 3, 4, 5]},
        ValueError,
        "image_list + element_list",
    ),
    ("11 images", {"image_list": [URL] * 11}, ValueError, "image_list"),
    ("o1 at 4k", {"resolution": "4k"}, ValueError, "resolution"),
    ("o1 series", {"result_type": "series"}, ValueError, "result_type"),
    ("v3 text-to-image auto ratio", {"model_name": V3}, ValueError, "aspect_ratio"),
    ("watermark not bool", {"watermark": "yes"}, TypeError, "watermark"),
    ("callback not http", {"callback_url": "ftp://example.com/cb"}, ValueError, "callback_url"),
    ("callback not str", {"callback_url": 42}, TypeError, "callback_url"),
    ("empty external id", {"external_task_id": ""}, ValueError, "external_task_id"),
    ("blank external id", {"external_task_id": "  "}, ValueError, "external_task_id"),
    ("element id 0", {"element_list": [0]}, ValueError, "element_list[0]"),
    ("negative element id", {"element_list": [7, -3]}, ValueError, "element_list[1]"),
]


@pytest.mark.parametrize(
    ("kwargs", "exc", "field"),
    [pytest.param(k, e, f, id=name) for name, k, e, f in IMAGE_INVALID],
)
def test_image_rule_violation_names_the_field(
    kwargs: dict[str, Any], exc: type[Exception], field: str
) -> None:
    """Each broken omni-image rule raises ValueError/TypeError whose message names the field."""
    with pytest.raises(exc) as info:
        _image(**kwargs)
    assert str(info.value).startswith(field), str(info.value)


def test_image_n_message_names_value_and_rule() -> None:
    """The message shows the bad value and the documented range, e.g. 'n: 12, ... 1–9'."""
    with pytest.raises(ValueError, match=r"^n: 12, must be an integer 1–9$"):
        _image(n=12)


def test_image_prompt_too_long_message_gives_length_and_limit() -> None:
    """An over-long prompt's message gives its length and the 2500 limit, not the whole text."""
    with pytest.raises(ValueError, match=r"^prompt: 2501 characters, at most 2500 allowed$"):
        _image(prompt="y" * 2501)


IMAGE_VALID: list[tuple[str, dict[str, Any]]] = [
    ("prompt exactly 2500", {"prompt": "x" * 2500}),
    ("prompt one char", {"prompt": "x"}),
    ("n 1", {"n": 1}),
    ("n 9", {"n": 9}),
    (
        "series 2",
        {"model_name": V3, "result_type": "series", "series_amount": 2, "aspect_ratio": "1:1"},
    ),
    (
        "series 9",
        {"model_name": V3, "result_type": "series", "series_amount": 9, "aspect_ratio": "1:1"},
    ),
    (
        "series auto",
        {"model_name": V3, "result_type": "series", "series_amount": "auto", "aspect_ratio": "1:1"},
    ),
    ("10 images + elements", {"image_list": [URL] * 5, "element_list": [1, 2, 3, 4, 5]}),
    ("10 images", {"image_list": [URL] * 10}),
    ("10 elements", {"element_list": list(range(1, 11))}),
    ("o1 2k", {"resolution": "2k"}),
    ("v3 4k", {"model_name": V3, "resolution": "4k", "aspect_ratio": "21:9"}),
    ("v3 auto ratio with images", {"model_name": V3, "image_list": [URL], "aspect_ratio": "auto"}),
    ("watermark false", {"watermark": False}),
    (
        "callback and external id",
        {"callback_url": "https://example.com/cb", "external_task_id": "job-1"},
    ),
]


@pytest.mark.parametrize("kwargs", [pytest.param(k, id=name) for name, k in IMAGE_VALID])
def test_image_valid_edge_values_are_accepted(kwargs: dict[str, Any]) -> None:
    """Values on the documented edges (2500 chars, n 1/9, series 2/9/auto, 10 inputs) pass."""
    request = _image(**kwargs)
    for key, value in kwargs.items():
        if key not in ("image_list", "element_list"):
            assert getattr(request, key) == value


def test_image_defaults_match_the_api() -> None:
    """Defaults follow §5.1: kling-image-o1, 1k, single, n=1, series_amount=4, auto ratio."""
    request = _image()
    assert (request.model_name, request.resolution, request.result_type) == (
        "kling-image-o1",
        "1k",
        "single",
    )
    assert (request.n, request.series_amount, request.aspect_ratio) == (1, 4, "auto")
    assert request.kind == "image"
    assert not request.is_auto_series


# --------------------------------------------------------------------------------------------
# Omni-video rules (§6.1)
# --------------------------------------------------------------------------------------------

VIDEO_INVALID: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("unknown model", {"model_name": "kling-video-o2"}, ValueError, "model_name"),
    ("unknown sound", {"sound": "loud"}, ValueError, "sound"),
    ("unknown mode", {"mode": "8k"}, ValueError, "mode"),
    ("image-only aspect ratio", {"aspect_ratio": "4:3"}, ValueError, "aspect_ratio"),
    ("multi_shot not bool", {"multi_shot": "yes"}, TypeError, "multi_shot"),
    ("multi_shot without shot_type", {"multi_shot": True}, ValueError, "shot_type"),
    ("unknown shot_type", {"multi_shot": True, "shot_type": "random"}, ValueError, "shot_type"),
    ("shot_type without multi_shot", {"shot_type": "intelligence"}, ValueError, "shot_type"),
    ("multi_prompt without multi_shot", {"multi_prompt": _shots(5)}, ValueError, "multi_prompt"),
    (
        "multi_prompt with intelligence",
        {"multi_shot": True, "shot_type": "intelligence", "multi_prompt": _shots(5)},
        ValueError,
        "multi_prompt",
    ),
    (
        "customize with no shots",
        {"multi_shot": True, "shot_type": "customize"},
        ValueError,
        "multi_prompt",
    ),
    (
        "customize with 7 shots",
        {
            "model_name": V3,
            "duration": 7,
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": _shots(1, 1, 1, 1, 1, 1, 1),
        },
        ValueError,
        "multi_prompt",
    ),
    (
        "shot index 0",
        {
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": [{"index": 0, "prompt": "a", "duration": 5}],
        },
        ValueError,
        "multi_prompt[0].index",
    ),
    (
        "shot index 7",
        {
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": [{"index": 7, "prompt": "a", "duration": 5}],
        },
        ValueError,
        "multi_prompt[0].index",
    ),
    (
        "shot prompt 513 chars",
        {
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": [{"index": 1, "prompt": "p" * 513, "duration": 5}],
        },
        ValueError,
        "multi_prompt[0].prompt",
    ),
    (
        "shot duration 0",
        {
            "model_name": V3,
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": _shots(5, 0),
        },
        ValueError,
        "multi_prompt[1].duration",
    ),
    (
        "shot duration string",
        {
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": [{"index": 1, "prompt": "a", "duration": "5"}],
        },
        TypeError,
        "multi_prompt[0].duration",
    ),
    (
        "duplicate shot indexes",
        {
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": [
                {"index": 1, "prompt": "a", "duration": 2},
                {"index": 1, "prompt": "b", "duration": 3},
            ],
        },
        ValueError,
        "multi_prompt",
    ),
    (
        "shot durations do not sum to duration",
        {"multi_shot": True, "shot_type": "customize", "multi_prompt": _shots(2, 2)},
        ValueError,
        "multi_prompt",
    ),
    ("prompt missing", {"prompt": None}, ValueError, "prompt"),
    ("prompt empty", {"prompt": ""}, ValueError, "prompt"),
    ("prompt 2501 chars", {"prompt": "x" * 2501}, ValueError, "prompt"),
    ("prompt not str", {"prompt": 3}, TypeError, "prompt"),
    ("two videos", {"video_list": [VIDEO_URL, VIDEO_URL]}, ValueError, "video_list"),
    ("8 images", {"model_name": V3, "image_list": [URL] * 8}, ValueError, "image_list"),
    (
        "5 images + elements with a video",
        {
            "model_name": V3,
            "image_list": [URL] * 3,
            "element_list": [1, 2],
            "video_list": [ka.ReferenceVideo(video=VIDEO_URL, refer_type="feature")],
        },
        ValueError,
        "image_list + element_list",
    ),
    (
        "two first frames",
        {"model_name": V3, "aspect_ratio": None, "image_list": [_first(), _first()]},
        ValueError,
        "image_list",
    ),
    ("end frame alone", {"model_name": V3, "image_list": [_end()]}, ValueError, "image_list"),
    (
        "o1 frames with three images",
        {"aspect_ratio": None, "image_list": [_first(), _end(), URL]},
        ValueError,
        "image_list",
    ),
    (
        "o1 first+end frames with an element",
        {"aspect_ratio": None, "image_list": [_first(), _end()], "element_list": [1]},
        ValueError,
        "element_list",
    ),
    (
        "4 elements with a first frame",
        {
            "model_name": V3,
            "aspect_ratio": None,
            "image_list": [_first()],
            "element_list": [1, 2, 3, 4],
        },
        ValueError,
        "element_list",
    ),
    (
        "first frame with a base video",
        {
            "model_name": V3,
            "aspect_ratio": None,
            "image_list": [_first()],
            "video_list": [VIDEO_URL],
        },
        ValueError,
        "image_list",
    ),
    (
        "multi_shot with a base video",
        {
            "model_name": V3,
            "aspect_ratio": None,
            "multi_shot": True,
            "shot_type": "intelligence",
            "video_list": [VIDEO_URL],
        },
        ValueError,
        "multi_shot",
    ),
    (
        "feature video with customize shots",
        {
            "model_name": V3,
            "prompt": None,
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": _shots(5),
            "video_list": [ka.ReferenceVideo(video=VIDEO_URL, refer_type="feature")],
        },
        ValueError,
        "shot_type",
    ),
    (
        "o1 multi-shot with a first frame",
        {
            "aspect_ratio": None,
            "multi_shot": True,
            "shot_type": "intelligence",
            "image_list": [_first()],
        },
        ValueError,
        "multi_shot",
    ),
    (
        "sound on with a video",
        {
            "model_name": V3,
            "sound": "on",
            "video_list": [ka.ReferenceVideo(video=VIDEO_URL, refer_type="feature")],
        },
        ValueError,
        "sound",
    ),
    ("o1 at 4k", {"mode": "4k"}, ValueError, "mode"),
    (
        "4k with a video",
        {
            "model_name": V3,
            "mode": "4k",
            "video_list": [ka.ReferenceVideo(video=VIDEO_URL, refer_type="feature")],
        },
        ValueError,
        "mode",
    ),
    (
        "aspect ratio with a first frame",
        {"model_name": V3, "image_list": [_first()]},
        ValueError,
        "aspect_ratio",
    ),
    (
        "aspect ratio with a base video",
        {"model_name": V3, "video_list": [VIDEO_URL]},
        ValueError,
        "aspect_ratio",
    ),
    ("aspect ratio missing", {"aspect_ratio": None}, ValueError, "aspect_ratio"),
    ("o1 duration 11", {"image_list": [URL], "duration": 11}, ValueError, "duration"),
    ("o1 duration 2", {"image_list": [URL], "duration": 2}, ValueError, "duration"),
    (
        "o1 first-frame-only duration 7",
        {"aspect_ratio": None, "image_list": [_first()], "duration": 7},
        ValueError,
        "duration",
    ),
    ("v3 duration 16", {"model_name": V3, "duration": 16}, ValueError, "duration"),
    ("v3 duration 2", {"model_name": V3, "duration": 2}, ValueError, "duration"),
    ("duration string", {"model_name": V3, "duration": "5"}, TypeError, "duration"),
    ("watermark not bool", {"watermark": 1}, TypeError, "watermark"),
    ("callback not http", {"callback_url": "example.com"}, ValueError, "callback_url"),
    ("empty external id", {"external_task_id": ""}, ValueError, "external_task_id"),
    ("element id 0", {"model_name": V3, "element_list": [0]}, ValueError, "element_list[0]"),
]


@pytest.mark.parametrize(
    ("kwargs", "exc", "field"),
    [pytest.param(k, e, f, id=name) for name, k, e, f in VIDEO_INVALID],
)
def test_video_rule_violation_names_the_field(
    kwargs: dict[str, Any], exc: type[Exception], field: str
) -> None:
    """Each broken omni-video rule raises ValueError/TypeError whose message names the field."""
    with pytest.raises(exc) as info:
        _video(**kwargs)
    assert str(info.value).startswith(field), str(info.value)


VIDEO_VALID: list[tuple[str, dict[str, Any]]] = [
    ("prompt exactly 2500", {"prompt": "x" * 2500}),
    ("o1 text-to-video 10 s", {"duration": 10}),
    ("o1 text-to-video 7 s, the legacy page's own example", {"duration": 7}),
    ("o1 reference image 7 s", {"image_list": [URL], "duration": 7}),
    ("o1 reference image 3 s", {"image_list": [URL], "duration": 3}),
    ("o1 first frame 10 s", {"aspect_ratio": None, "image_list": [_first()], "duration": 10}),
    (
        "o1 first+end frames",
        {"aspect_ratio": None, "image_list": [_first(), _end()], "duration": 7},
    ),
    ("v3 3 s", {"model_name": V3, "duration": 3}),
    ("v3 15 s", {"model_name": V3, "duration": 15}),
    ("v3 4k", {"model_name": V3, "mode": "4k"}),
    (
        "7 images without a video",
        {"model_name": V3, "image_list": [URL] * 4, "element_list": [1, 2, 3]},
    ),
    (
        "4 inputs with a feature video",
        {
            "model_name": V3,
            "image_list": [URL] * 2,
            "element_list": [1, 2],
            "video_list": [ka.ReferenceVideo(video=VIDEO_URL, refer_type="feature")],
        },
    ),
    (
        "base video sets the ratio",
        {"model_name": V3, "aspect_ratio": None, "video_list": [VIDEO_URL]},
    ),
    (
        "v3 first+end frames with 3 elements",
        {
            "model_name": V3,
            "aspect_ratio": None,
            "image_list": [_first(), _end()],
            "element_list": [1, 2, 3],
        },
    ),
    (
        "customize with 6 shots and no prompt",
        {
            "model_name": V3,
            "prompt": None,
            "duration": 6,
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": _shots(1, 1, 1, 1, 1, 1),
        },
    ),
    (
        "feature video with intelligence shots",
        {
            "model_name": V3,
            "multi_shot": True,
            "shot_type": "intelligence",
            "video_list": [ka.ReferenceVideo(video=VIDEO_URL, refer_type="feature")],
        },
    ),
    (
        "v3 multi-shot with a first frame",
        {
            "model_name": V3,
            "aspect_ratio": None,
            "multi_shot": True,
            "shot_type": "intelligence",
            "image_list": [_first()],
        },
    ),
    ("sound on without video", {"sound": "on", "mode": "std"}),
]


@pytest.mark.parametrize("kwargs", [pytest.param(k, id=name) for name, k in VIDEO_VALID])
def test_video_valid_combinations_are_accepted(kwargs: dict[str, Any]) -> None:
    """Documented combinations and edge values (3/15 s, 7 or 4 inputs, 6 shots) pass."""
    request = _video(**kwargs)
    assert request.kind == "video"
    assert request.model_name == kwargs.get("model_name", "kling-video-o1")


def test_video_defaults_match_the_api() -> None:
    """Defaults follow §6.1: kling-video-o1, sound off, mode pro, 5 s; multi-shot unset (each
    API's own default: the legacy standard's is false)."""
    request = _video()
    assert (request.model_name, request.sound, request.mode, request.duration) == (
        "kling-video-o1",
        "off",
        "pro",
        5,
    )
    assert request.multi_shot is None


# --------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------

_PROMPT_CHARS = st.characters(blacklist_categories=("Cs",))
_valid_prompt = st.text(_PROMPT_CHARS, min_size=1, max_size=2500).filter(lambda s: s.strip())


@st.composite
def valid_image_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of an omni-image request that follows every documented rule."""
    model = draw(st.sampled_from(["kling-image-o1", V3]))
    images = draw(st.integers(0, 10))
    elements = draw(st.integers(0, 10 - images))
    ratios = ["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9", "auto"]
    if model == V3 and images == 0:
        ratios.remove("auto")
    kwargs: dict[str, Any] = {
        "model_name": model,
        "prompt": draw(_valid_prompt),
        "image_list": [f"https://example.com/{i}.png" for i in range(images)],
        "element_list": draw(st.lists(st.integers(1, 2**62), min_size=elements, max_size=elements)),
        "resolution": draw(st.sampled_from(["1k", "2k"] if model != V3 else ["1k", "2k", "4k"])),
        "result_type": draw(st.sampled_from(["single"] if model != V3 else ["single", "series"])),
        "n": draw(st.integers(1, 9)),
        "series_amount": draw(st.one_of(st.integers(2, 9), st.just("auto"))),
        "aspect_ratio": draw(st.sampled_from(ratios)),
        "watermark": draw(st.sampled_from([None, True, False])),
    }
    if draw(st.booleans()):
        kwargs["external_task_id"] = draw(
            st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)
        )
    if draw(st.booleans()):
        kwargs["callback_url"] = "https://example.com/cb"
    return kwargs


@given(valid_image_kwargs())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_property_valid_image_requests_construct(kwargs: dict[str, Any]) -> None:
    """Any request within the documented rules is built and keeps its values."""
    request = ka.OmniImageRequest(**kwargs)
    assert request.n == kwargs["n"]
    assert request.series_amount == kwargs["series_amount"]
    assert len(request.image_list) + len(request.element_list) <= 10


_NOT_INT = st.one_of(st.text(max_size=3), st.floats(allow_nan=False), st.booleans(), st.none())


@st.composite
def invalid_image_case(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid request with exactly one field broken, and the field the error must name."""
    base: dict[str, Any] = {
        "model_name": V3,
        "prompt": "a fox",
        "result_type": draw(st.sampled_from(["single", "series"])),
        "aspect_ratio": "1:1",
    }
    broken = draw(
        st.sampled_from(
            [
                "n",
                "series_amount",
                "prompt",
                "inputs",
                "resolution",
                "result_type",
                "aspect_ratio",
                "model_name",
            ]
        )
    )
    if broken == "n":
        base["n"] = draw(st.one_of(st.integers(max_value=0), st.integers(min_value=10), _NOT_INT))
    elif broken == "series_amount":
        base["series_amount"] = draw(
            st.one_of(
                st.integers(max_value=1),
                st.integers(min_value=10),
                _NOT_INT.filter(lambda v: v != "auto"),
            )
        )
    elif broken == "prompt":
        base["prompt"] = draw(st.text(_PROMPT_CHARS, min_size=2501, max_size=3000))
    elif broken == "inputs":
        images = draw(st.integers(0, 15))
        elements = draw(st.integers(max(0, 11 - images), 15))
        base["image_list"] = [URL] * images
        base["element_list"] = list(range(1, elements + 1))
        broken = "image_list"
    else:
        allowed = {
            "resolution": ["1k", "2k", "4k"],
            "result_type": ["single", "series"],
            "aspect_ratio": ["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9", "auto"],
            "model_name": ["kling-image-o1", V3],
        }[broken]
        base[broken] = draw(st.text(max_size=12).filter(lambda v: v not in allowed))
    return base, broken


@given(invalid_image_case())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_property_invalid_image_requests_name_the_field(case: tuple[dict[str, Any], str]) -> None:
    """A request with one broken rule raises ValueError/TypeError that starts with the field."""
    kwargs, field = case
    with pytest.raises((ValueError, TypeError)) as info:
        ka.OmniImageRequest(**kwargs)
    assert str(info.value).startswith(field), (field, str(info.value))


# --------------------------------------------------------------------------------------------
# Local files (§5.1 reference images, §6.1 reference videos)
# --------------------------------------------------------------------------------------------


def _write_image(path: Path, size: tuple[int, int], fmt: str) -> Path:
    Image.new("RGB", size, (200, 30, 30)).save(path, fmt)
    return path


def test_local_jpeg_400x400_is_accepted(tmp_path: Path) -> None:
    """A 400×400 JPEG passes and its bytes are returned unchanged."""
    path = _write_image(tmp_path / "ok.jpg", (400, 400), "JPEG")
    assert check_local_image("image_list[0]", path) == path.read_bytes()


@pytest.mark.parametrize(
    ("name", "size", "fmt"),
    [
        ("ok.png", (300, 750), "PNG"),
        ("ok.JPEG", (1000, 400), "JPEG"),
        ("ok.jpeg", (300, 300), "JPEG"),
    ],
)
def test_local_image_edge_sizes_are_accepted(
    tmp_path: Path, name: str, size: tuple[int, int], fmt: str
) -> None:
    """Sides of exactly 300 px and a ratio of exactly 2.5 pass; suffix case does not matter."""
    path = _write_image(tmp_path / name, size, fmt)
    assert check_local_image("image_list[0]", path) == path.read_bytes()


def test_local_image_bytes_are_accepted() -> None:
    """PNG bytes (no file name) are checked by content and returned."""
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (640, 480)).save(buffer, "PNG")
    assert check_local_image("image_list[2]", buffer.getvalue()) == buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "size", "fmt", "rule"),
    [
        pytest.param("small.jpg", (200, 400), "JPEG", "each side must be ≥ 300 px", id="too-small"),
        pytest.param("wide.jpg", (1000, 300), "JPEG", "aspect ratio", id="ratio-over-2.5"),
        pytest.param("tall.png", (300, 1000), "PNG", "aspect ratio", id="ratio-under-1:2.5"),
        pytest.param("anim.gif", (400, 400), "GIF", "must be a .jpg, .jpeg or .png", id="gif"),
        pytest.param("pic.webp", (400, 400), "WEBP", "must be a .jpg, .jpeg or .png", id="webp"),
    ],
)
def test_local_image_rule_violation_names_field_and_file(
    tmp_path: Path, name: str, size: tuple[int, int], fmt: str, rule: str
) -> None:
    """A local image breaking §5.1 raises InvalidInputError (a ValueError) naming field and file."""
    path = _write_image(tmp_path / name, size, fmt)
    with pytest.raises(ka.InvalidInputError) as info:
        check_local_image("image_list[1]", path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith("image_list[1]")
    assert name in message
    assert rule in message


def test_local_image_non_image_bytes_are_refused(tmp_path: Path) -> None:
    """A .png file that holds text is refused as not a JPEG or PNG image."""
    path = tmp_path / "fake.png"
    path.write_bytes(b"hello, this is not an image" * 20)
    with pytest.raises(ka.InvalidInputError, match=r"^image_list\[0\]: .*fake\.png.*not a JPEG"):
        check_local_image("image_list[0]", path)


def test_local_image_over_10_mb_is_refused() -> None:
    """Image data over 10 MB is refused with the size rule."""
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * 1024 * 1024)
    with pytest.raises(ka.InvalidInputError, match=r"^image_list\[0\]: .*at most 10 MB"):
        check_local_image("image_list[0]", data)


def test_local_image_missing_file_is_refused(tmp_path: Path) -> None:
    """A path that does not exist is refused as unreadable, naming the file."""
    with pytest.raises(
        ka.InvalidInputError, match=r"^image_list\[0\]: .*gone\.png.*cannot be read"
    ):
        check_local_image("image_list[0]", tmp_path / "gone.png")


def test_local_mp4_is_accepted(tmp_path: Path) -> None:
    """A .mp4 file with an ftyp box passes and its bytes are returned."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(MP4_BYTES)
    assert check_local_video("video_list[0]", path) == MP4_BYTES
    mov = tmp_path / "clip.MOV"
    mov.write_bytes(MP4_BYTES)
    assert check_local_video("video_list[0]", mov) == MP4_BYTES


def test_local_video_wrong_suffix_is_refused(tmp_path: Path) -> None:
    """A video file that is not .mp4/.mov is refused naming the field and the file."""
    path = tmp_path / "clip.avi"
    path.write_bytes(MP4_BYTES)
    with pytest.raises(
        ka.InvalidInputError, match=r"^video_list\[0\]: .*clip\.avi.*\.mp4 or \.mov"
    ):
        check_local_video("video_list[0]", path)


def test_local_video_non_mp4_bytes_are_refused() -> None:
    """Bytes without an MP4/MOV box header are refused naming the field."""
    with pytest.raises(ka.InvalidInputError, match=r"^video_list\[0\]: .*not an MP4/MOV"):
        check_local_video("video_list[0]", b"RIFF\x00\x00\x00\x00AVI " + b"\x00" * 64)


def test_local_video_bad_content_message_names_the_file(tmp_path: Path) -> None:
    """A .mp4 file whose content is not MP4 is refused with a message naming that file."""
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ka.InvalidInputError, match=r"broken\.mp4"):
        check_local_video("video_list[0]", path)
