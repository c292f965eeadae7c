"""Request and result models: input normalisation, Quota, statuses, immutability."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs
import pytest

import kling_async as ka

URL = "https://example.com/a.png"


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def test_image_list_normalises_urls_paths_and_bytes() -> None:
    """URLs stay strings, path strings and Paths become Path, bytes-likes become bytes."""
    request = ka.OmniImageRequest(
        prompt="p",
        image_list=[
            URL,
            "http://example.com/b.jpg",
            "refs/local.png",
            Path("other.jpg"),
            b"\x89PNG",
            bytearray(b"\xff\xd8"),
        ],
    )
    assert request.image_list == (
        URL,
        "http://example.com/b.jpg",
        Path("refs/local.png"),
        Path("other.jpg"),
        b"\x89PNG",
        b"\xff\xd8",
    )
    assert isinstance(request.image_list[2], Path)
    assert type(request.image_list[5]) is bytes


def test_image_list_accepts_a_tuple_and_none() -> None:
    """image_list may be any iterable; None means no images."""
    assert ka.OmniImageRequest(prompt="p", image_list=(URL,)).image_list == (URL,)
    assert ka.OmniImageRequest(prompt="p", image_list=None).image_list == ()


@pytest.mark.parametrize("single", [URL, "local.png", Path("local.png"), b"\x89PNG"])
def test_image_list_given_a_single_value_is_a_type_error(single: object) -> None:
    """A single image instead of a list raises TypeError naming image_list."""
    with pytest.raises(TypeError, match=r"^image_list: expected a list"):
        ka.OmniImageRequest(prompt="p", image_list=single)


def test_image_list_item_of_wrong_type_names_the_field() -> None:
    """An image_list item that is neither URL, path nor bytes raises TypeError naming image_list."""
    with pytest.raises(TypeError, match="image_list"):
        ka.OmniImageRequest(prompt="p", image_list=[42])


def test_image_list_item_of_wrong_type_is_a_type_error() -> None:
    """An image_list item that is neither URL, path nor bytes raises TypeError with its type."""
    with pytest.raises(TypeError, match="expected a URL, a local path or bytes, got int"):
        ka.OmniImageRequest(prompt="p", image_list=[42])


@pytest.mark.parametrize("bad", ["7", 1.0, True, None])
def test_element_list_rejects_non_integers(bad: object) -> None:
    """element_list items must be ints (not str, float or bool): TypeError naming element_list."""
    with pytest.raises(TypeError, match=r"^element_list: element ids are integers"):
        ka.OmniImageRequest(prompt="p", element_list=[1, bad])


def test_element_list_keeps_integers() -> None:
    """Integer element ids, including 64-bit ones, are kept in order as a tuple."""
    request = ka.OmniImageRequest(prompt="p", element_list=[160, 835266081714884677])
    assert request.element_list == (160, 835266081714884677)


def test_video_image_list_accepts_plain_inputs_and_video_images() -> None:
    """Plain inputs become VideoImage(type=None); VideoImage items are kept as given."""
    first = ka.VideoImage(image="frame.png", type="first_frame")
    request = ka.OmniVideoRequest(
        prompt="p", model_name="kling-v3-omni", image_list=[first, URL, b"\xff\xd8"]
    )
    assert request.image_list == (
        ka.VideoImage(image=Path("frame.png"), type="first_frame"),
        ka.VideoImage(image=URL, type=None),
        ka.VideoImage(image=b"\xff\xd8", type=None),
    )


def test_video_image_list_given_a_single_value_is_a_type_error() -> None:
    """A single image instead of a list raises TypeError naming image_list."""
    with pytest.raises(TypeError, match=r"^image_list"):
        ka.OmniVideoRequest(prompt="p", aspect_ratio="1:1", image_list=URL)


def test_video_list_accepts_a_single_reference_video_and_plain_inputs() -> None:
    """video_list takes one ReferenceVideo or a list of inputs (defaulting to refer_type base)."""
    feature = ka.ReferenceVideo(video="clip.mp4", refer_type="feature", keep_original_sound="no")
    request = ka.OmniVideoRequest(
        prompt="p", model_name="kling-v3-omni", aspect_ratio="1:1", video_list=feature
    )
    assert request.video_list == (
        ka.ReferenceVideo(video=Path("clip.mp4"), refer_type="feature", keep_original_sound="no"),
    )
    base = ka.OmniVideoRequest(prompt="p", video_list=["https://example.com/v.mp4"])
    assert base.video_list[0].refer_type == "base"
    assert base.video_list[0].video == "https://example.com/v.mp4"


def test_video_list_given_a_single_string_is_not_split_into_characters() -> None:
    """A single URL for video_list is either taken as one video or refused with TypeError."""
    try:
        request = ka.OmniVideoRequest(prompt="p", video_list="https://example.com/v.mp4")
    except TypeError as exc:
        assert "video_list" in str(exc)
    else:
        assert len(request.video_list) == 1


def test_multi_prompt_accepts_dicts() -> None:
    """multi_prompt items may be dicts with index, prompt and duration: built as MultiPrompt."""
    request = ka.OmniVideoRequest(
        aspect_ratio="16:9",
        multi_shot=True,
        shot_type="customize",
        multi_prompt=[
            {"index": 1, "prompt": "wide shot", "duration": 2},
            ka.MultiPrompt(index=2, prompt="close-up", duration=3),
        ],
    )
    assert request.multi_prompt == (
        ka.MultiPrompt(index=1, prompt="wide shot", duration=2),
        ka.MultiPrompt(index=2, prompt="close-up", duration=3),
    )
    assert request.prompt is None


def test_multi_prompt_dict_with_unknown_key_is_a_type_error() -> None:
    """A multi_prompt dict with a misspelt key is refused with TypeError."""
    with pytest.raises(TypeError, match="durration"):
        ka.OmniVideoRequest(
            aspect_ratio="16:9",
            multi_shot=True,
            shot_type="customize",
            multi_prompt=[{"index": 1, "prompt": "a", "durration": 5}],
        )


def test_is_auto_series() -> None:
    """is_auto_series is true only for result_type series with series_amount 'auto'."""
    auto = ka.OmniImageRequest(
        prompt="p",
        model_name="kling-v3-omni",
        result_type="series",
        series_amount="auto",
        aspect_ratio="1:1",
    )
    fixed = attrs.evolve(auto, series_amount=3)
    single = ka.OmniImageRequest(prompt="p", series_amount="auto")
    assert (auto.is_auto_series, fixed.is_auto_series, single.is_auto_series) == (
        True,
        False,
        False,
    )


def test_evolve_revalidates() -> None:
    """attrs.evolve on a request runs validation again."""
    request = ka.OmniImageRequest(prompt="p")
    with pytest.raises(ValueError, match=r"^n: 0"):
        attrs.evolve(request, n=0)


# --------------------------------------------------------------------------------------------
# Frozen models
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (ka.OmniImageRequest(prompt="p"), "n"),
        (ka.OmniVideoRequest(prompt="p", aspect_ratio="1:1"), "duration"),
        (ka.VideoImage(image=URL), "type"),
        (ka.ReferenceVideo(video=URL), "refer_type"),
        (ka.MultiPrompt(index=1, prompt="a", duration=1), "duration"),
        (ka.Quota(), "image"),
        (ka.Task(task_id="t", external_task_id=None, kind="image", model="m", cost=1), "cost"),
        (ka.TaskResult(task_id="t", status=ka.TaskStatus.SUBMITTED), "status"),
        (ka.GeneratedImage(index=0, url=URL), "url"),
        (ka.GeneratedVideo(index=0, url=URL), "url"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_models_are_frozen(obj: object, field: str) -> None:
    """Assigning to a model's field raises attrs.exceptions.FrozenInstanceError."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(obj, field, 3)


def test_requests_are_hashable_and_compare_by_value() -> None:
    """Two requests built from the same values are equal and hash alike."""
    a = ka.OmniImageRequest(prompt="p", image_list=[URL], element_list=[1])
    b = ka.OmniImageRequest(prompt="p", image_list=(URL,), element_list=(1,))
    assert a == b
    assert hash(a) == hash(b)


# --------------------------------------------------------------------------------------------
# Quota
# --------------------------------------------------------------------------------------------


def test_quota_defaults() -> None:
    """Quota() is 9 image slots, 5 video slots, patience "auto", auto estimate 9."""
    quota = ka.Quota()
    assert (quota.image, quota.video, dict(quota.pools)) == (9, 5, {})
    assert (quota.hol_patience, quota.auto_series_estimate) == ("auto", 9)


def test_quota_capacity_uses_pool_overrides() -> None:
    """capacity() returns the per-pool override when present, else the kind's default."""
    quota = ka.Quota(image=6, video=3, pools={"kling-image-o1:image": 2, "kling-v3-omni:video": 8})
    assert quota.capacity("kling-image-o1", "image") == 2
    assert quota.capacity("kling-v3-omni", "image") == 6
    assert quota.capacity("kling-v3-omni", "video") == 8
    assert quota.capacity("kling-video-o1", "video") == 3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image": 0}, "Quota.image"),
        ({"video": -1}, "Quota.video"),
        ({"image": True}, "Quota.image"),
        ({"image": 2.5}, "Quota.image"),
        ({"pools": {"kling-v3-omni:image": 0}}, "Quota.kling-v3-omni:image"),
        ({"pools": {"kling-v3-omni": 3}}, "Quota.pools"),
        ({"pools": {"kling-v3-omni:audio": 3}}, "Quota.pools"),
        ({"pools": {":image": 3}}, "Quota.pools"),
        ({"auto_series_estimate": 1}, "Quota.auto_series_estimate"),
        ({"auto_series_estimate": 10}, "Quota.auto_series_estimate"),
        ({"hol_patience": -0.1}, "Quota.hol_patience"),
        ({"hol_patience": "soon"}, "Quota.hol_patience"),
        ({"hol_patience": True}, "Quota.hol_patience"),
    ],
)
def test_quota_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    """An invalid Quota raises ValueError whose message starts with the field."""
    with pytest.raises(ValueError) as info:
        ka.Quota(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(field), str(info.value)


def test_quota_accepts_edge_values() -> None:
    """Capacity 1, patience 0, 'auto' or None, and estimates 2 and 9 are valid."""
    ka.Quota(image=1, video=1, hol_patience=0, auto_series_estimate=2)
    ka.Quota(hol_patience=None, auto_series_estimate=9)
    ka.Quota(hol_patience="auto")


def test_quota_parse_cli_form() -> None:
    """Quota.parse reads 'image=9,video=5,kling-image-o1:image=4' into kinds and pool overrides."""
    quota = ka.Quota.parse("image=9,video=5,kling-image-o1:image=4")
    assert (quota.image, quota.video) == (9, 5)
    assert dict(quota.pools) == {"kling-image-o1:image": 4}
    assert quota.capacity("kling-image-o1", "image") == 4
    assert quota.capacity("kling-v3-omni", "image") == 9


def test_quota_parse_tolerates_spaces_and_empty_parts() -> None:
    """Spaces around parts and empty parts are ignored; missing kinds keep their defaults."""
    quota = ka.Quota.parse(" video=2 , ,kling-v3-omni:video=7,")
    assert (quota.image, quota.video) == (9, 2)
    assert dict(quota.pools) == {"kling-v3-omni:video": 7}
    assert ka.Quota.parse("") == ka.Quota()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("image", "'image' must look like 'image=9'"),
        ("image=", "must look like 'image=9'"),
        ("image=x", "must look like 'image=9'"),
        ("video=-1", "must look like 'image=9'"),
        ("image=2.5", "must look like 'image=9'"),
        ("image=0", "Quota.image"),
        ("audio=3", "Quota.pools"),
        ("kling-v3-omni:music=3", "Quota.pools"),
    ],
)
def test_quota_parse_errors(text: str, fragment: str) -> None:
    """Malformed parts, zero capacities and unknown keys raise ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        ka.Quota.parse(text)


# --------------------------------------------------------------------------------------------
# TaskStatus, TaskResult, Outcome
# --------------------------------------------------------------------------------------------


def test_task_status_is_terminal() -> None:
    """Only SUCCEEDED and FAILED are terminal."""
    terminal = {s for s in ka.TaskStatus if s.is_terminal}
    assert terminal == {ka.TaskStatus.SUCCEEDED, ka.TaskStatus.FAILED}


def test_task_result_outputs_order() -> None:
    """outputs lists images, then series_images, then videos."""
    image = ka.GeneratedImage(index=0, url="https://x/i.png")
    series = ka.GeneratedImage(index=0, url="https://x/s.png")
    video = ka.GeneratedVideo(index=0, url="https://x/v.mp4")
    result = ka.TaskResult(
        task_id="t",
        status=ka.TaskStatus.SUCCEEDED,
        images=(image,),
        series_images=(series,),
        videos=(video,),
    )
    assert result.outputs == (image, series, video)


def _result(status: ka.TaskStatus) -> ka.TaskResult:
    return ka.TaskResult(
        task_id="t", status=status, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )


@pytest.mark.parametrize(
    ("result", "error", "ok"),
    [
        (_result(ka.TaskStatus.SUCCEEDED), None, True),
        (_result(ka.TaskStatus.FAILED), None, False),
        (_result(ka.TaskStatus.PROCESSING), None, False),
        (None, None, False),
        (None, ka.QuotaError("too big"), False),
        (_result(ka.TaskStatus.SUCCEEDED), ka.TaskTimeoutError("late"), False),
    ],
)
def test_outcome_ok(result: ka.TaskResult | None, error: ka.KlingError | None, ok: bool) -> None:
    """Outcome.ok is true only with a SUCCEEDED result and no error."""
    outcome = ka.Outcome(
        request=ka.OmniImageRequest(prompt="p"), index=0, result=result, error=error
    )
    assert outcome.ok is ok
