"""Rules per wire API (``_api_rules``): each API refuses only what its own pages refuse.

The same request is checked through each codec's ``check`` (what the client runs before
sending): Kling's legacy standard, Kling's new standard, Modellix.
"""

from __future__ import annotations

from typing import Any

import pytest

import kling_async as ka
from kling_async._providers import codec_for
from kling_async.testing import Sandbox

LEGACY = codec_for("kling")
NEW = codec_for("kling", api_standard="new")
MODELLIX = codec_for("modellix")
URL = "https://example.com/a.png"
VIDEO = "https://example.com/a.mp4"
V3, O1 = "kling-v3-omni", "kling-video-o1"


def _video(**kwargs: Any) -> ka.OmniVideoRequest:
    fields: dict[str, Any] = {"prompt": "a kite over the dunes", "model_name": V3}
    fields.update(kwargs)
    return ka.OmniVideoRequest(**fields)


def _first() -> ka.VideoImage:
    return ka.VideoImage(image=URL, type="first_frame")


def test_a_prompt_of_3072_characters_is_taken_by_3_0_omni_on_the_new_standard_only() -> None:
    """3.0 Omni's new-standard prompt holds 3,072 characters (O1 2,500; legacy 2,500)."""
    request = _video(prompt="x" * 3072, aspect_ratio="16:9")
    NEW.check(request)
    with pytest.raises(ka.InvalidInputError, match=r"^prompt: 3072 characters, at most 2500"):
        LEGACY.check(request)
    with pytest.raises(ValueError, match=r"^prompt: 3073 characters, at most 3072 allowed"):
        _video(prompt="x" * 3073)  # no API takes more
    with pytest.raises(ka.InvalidInputError, match=r"^prompt: 2501 characters, at most 2500"):
        NEW.check(_video(model_name=O1, prompt="x" * 2501))


@pytest.mark.parametrize("duration", range(3, 11))
def test_o1_durations_on_the_new_standard(duration: int) -> None:
    """New-standard O1 takes 3–10 s for text-to-video and with reference images; from a first
    frame alone only 5 or 10."""
    NEW.check(_video(model_name=O1, duration=duration))
    NEW.check(_video(model_name=O1, duration=duration, image_list=[_first(), URL]))
    alone = _video(model_name=O1, duration=duration, image_list=[_first()])
    if duration in (5, 10):
        NEW.check(alone)
    else:
        with pytest.raises(ka.InvalidInputError, match=r"^duration: \d+, kling-o1 from a first"):
            NEW.check(alone)


def test_o1_durations_outside_3_to_10_are_refused_on_the_new_standard() -> None:
    """O1's range is 3–10 s on the new standard."""
    for duration in (2, 11):
        with pytest.raises(ka.InvalidInputError, match=r"^duration: \d+, must be an integer 3–10"):
            NEW.check(_video(model_name=O1, duration=duration))


def test_4k_with_a_feature_video_is_taken_by_the_new_standard() -> None:
    """3.0 Omni 4k with a feature video: the new-standard page lists 4k without the legacy
    page's 'except with a reference video'."""
    request = _video(mode="4k", video_list=[{"video": VIDEO, "refer_type": "feature"}])
    NEW.check(request)
    with pytest.raises(ka.InvalidInputError, match=r"^mode: '4k', 4k is not available with a"):
        LEGACY.check(request)


def test_an_aspect_ratio_with_a_first_frame_or_a_video_is_taken_by_the_new_standard() -> None:
    """The new standard takes an aspect ratio with a first frame or a reference video (its O1
    examples send both), and none at all (default 16:9); the legacy standard refuses the
    first two and requires it otherwise."""
    with_frame = _video(model_name=O1, aspect_ratio="16:9", image_list=[_first()])
    with_base = _video(
        model_name=O1, aspect_ratio="16:9", video_list=[{"video": VIDEO}], image_list=[URL]
    )
    without = _video()
    for request in (with_frame, with_base, without):
        NEW.check(request)
    for request in (with_frame, with_base):
        with pytest.raises(ka.InvalidInputError, match=r"^aspect_ratio: '16:9', not supported"):
            LEGACY.check(request)
    with pytest.raises(ka.InvalidInputError, match=r"^aspect_ratio: None, required"):
        LEGACY.check(without)
    assert "aspect_ratio" not in NEW.build_create(without, "k")["settings"]


def test_unset_multi_shot_takes_each_standards_default() -> None:
    """multi_shot unset: the legacy body says false, the new one true (false with a base video,
    which takes no multi-shot); a feature video then passes the new standard's
    'multi_shot can only be true', while an explicit false is refused."""
    plain = _video(aspect_ratio="16:9")
    assert plain.multi_shot is None
    assert LEGACY.build_create(plain, "k")["multi_shot"] is False
    assert NEW.build_create(plain, "k")["settings"]["multi_shot"] is True
    base = _video(video_list=[{"video": VIDEO}])
    assert NEW.build_create(base, "k")["settings"]["multi_shot"] is False
    feature = _video(video_list=[{"video": VIDEO, "refer_type": "feature"}])
    NEW.check(feature)
    with pytest.raises(ka.InvalidInputError, match=r"^multi_shot: False, with a feature video"):
        NEW.check(_video(multi_shot=False, video_list=[{"video": VIDEO, "refer_type": "feature"}]))


def test_modellix_is_bound_by_its_own_pages_only() -> None:
    """A Modellix prompt-only request (its pages' curl examples) passes Modellix's check while
    Kling's legacy rules refuse it; Modellix's own rules still hold."""
    image = ka.OmniImageRequest(prompt="a perfume bottle", model_name=V3)
    video = _video()
    MODELLIX.check(image)
    MODELLIX.check(video)
    with pytest.raises(ka.InvalidInputError, match=r"kling-v3-omni text-to-image"):
        LEGACY.check(image)
    with pytest.raises(ka.InvalidInputError, match=r"^aspect_ratio: None, required"):
        LEGACY.check(video)
    with pytest.raises(ka.InvalidInputError, match=r"^duration: 16, must be an integer 3–15"):
        MODELLIX.check(_video(duration=16))
    with pytest.raises(ka.InvalidInputError, match=r"^shot_type: None, required when multi_shot"):
        MODELLIX.check(_video(multi_shot=True))


def test_building_a_request_checks_only_its_shape() -> None:
    """A request builds without an API's rules (no aspect ratio, 3,072 characters) but not with
    a wrong type or value, whatever the API."""
    ka.OmniVideoRequest(prompt="x" * 3072)
    with pytest.raises(ValueError, match=r"^aspect_ratio: '4:3', must be one of"):
        ka.OmniVideoRequest(prompt="x", aspect_ratio="4:3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^multi_shot: 'yes', must be a bool or None"):
        ka.OmniVideoRequest(prompt="x", multi_shot="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^video_list: 2 videos, at most 1"):
        ka.OmniVideoRequest(prompt="x", video_list=[VIDEO, VIDEO])


@pytest.mark.anyio
async def test_a_request_the_wire_api_refuses_sends_nothing(
    sandbox: Sandbox, client: ka.KlingClient
) -> None:
    """On the legacy standard a text-to-video without an aspect ratio ends as an
    InvalidInputError naming the field, and no create reaches the server."""
    request = _video()
    with pytest.raises(ka.InvalidInputError, match=r"^aspect_ratio: None, required unless"):
        await client.submit(request)
    [outcome] = await client.run_all([request])
    assert isinstance(outcome.error, ka.InvalidInputError) and outcome.task is None
    assert "aspect_ratio" in str(outcome.error)
    assert sandbox.stats().create_attempts == 0
