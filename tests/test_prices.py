"""Kling's published list prices: one test per row of the price pages, and the None cases.

Expected figures are copied from https://kling.ai/document-api/pricing/base/image and
https://kling.ai/document-api/pricing/base/video, not computed from the table under test.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

import kling_async as ka
from kling_async._engine._prices import Estimate, list_price

IMAGE_URL = "https://kling.ai/document-api/pricing/base/image"
VIDEO_URL = "https://kling.ai/document-api/pricing/base/video"
FEATURE = ka.ReferenceVideo(video="https://example.com/in.mp4", refer_type="feature")
BASE = ka.ReferenceVideo(video="https://example.com/in.mp4", refer_type="base")


def image(**kwargs: Any) -> ka.OmniImageRequest:
    return ka.OmniImageRequest(prompt="a red chair", aspect_ratio="1:1", **kwargs)


def video(**kwargs: Any) -> ka.OmniVideoRequest:
    kwargs.setdefault("aspect_ratio", "16:9")
    return ka.OmniVideoRequest(prompt="a parrot", **kwargs)


@pytest.mark.parametrize(
    ("request_", "units"),
    [
        # Kling Image 3.0 Omni, 1K/2K: 8 units / image
        pytest.param(image(model_name="kling-v3-omni"), "8", id="3.0-omni-1k"),
        pytest.param(
            image(model_name="kling-v3-omni", resolution="2k", n=3), "24", id="3.0-omni-2k"
        ),
        # Kling Image 3.0 Omni, 4K: 16 units / image
        pytest.param(
            image(model_name="kling-v3-omni", resolution="4k", n=2), "32", id="3.0-omni-4k"
        ),
        # Kling Image O1, 1K/2K: 8 units / image
        pytest.param(image(model_name="kling-image-o1"), "8", id="o1-1k"),
        pytest.param(image(model_name="kling-image-o1", resolution="2k", n=9), "72", id="o1-2k"),
        # a series is priced per image
        pytest.param(
            image(model_name="kling-v3-omni", result_type="series", series_amount=5),
            "40",
            id="series-5",
        ),
        # an auto series at its largest size, 9 images
        pytest.param(
            image(model_name="kling-v3-omni", result_type="series", series_amount="auto"),
            "72",
            id="series-auto",
        ),
        pytest.param(
            image(
                model_name="kling-v3-omni",
                resolution="4k",
                result_type="series",
                series_amount="auto",
            ),
            "144",
            id="series-auto-4k",
        ),
    ],
)
def test_image_rows(request_: ka.OmniImageRequest, units: str) -> None:
    """Images cost the page's units per image times the images asked for."""
    price = list_price(request_)
    assert price is not None
    assert price.units == Decimal(units)
    assert IMAGE_URL in price.basis and "units/image" in price.basis


@pytest.mark.parametrize(
    ("request_", "units"),
    [
        # Kling 3.0 Omni, no video input × no native audio: 0.6 / 0.8 / 3.0 per second
        pytest.param(video(model_name="kling-v3-omni", mode="std"), "3", id="3.0-none-720p"),
        pytest.param(video(model_name="kling-v3-omni", duration=10), "8", id="3.0-none-1080p"),
        pytest.param(video(model_name="kling-v3-omni", mode="4k"), "15", id="3.0-none-4k"),
        # Kling 3.0 Omni, no video input × with native audio: 0.8 / 1.0 / 3.0 per second
        pytest.param(
            video(model_name="kling-v3-omni", mode="std", sound="on"), "4", id="3.0-audio-720p"
        ),
        pytest.param(
            video(model_name="kling-v3-omni", sound="on", duration=7), "7", id="3.0-audio-1080p"
        ),
        pytest.param(
            video(model_name="kling-v3-omni", mode="4k", sound="on"), "15", id="3.0-audio-4k"
        ),
        # Kling 3.0 Omni, with video input × no native audio: 0.9 / 1.2 per second (4K: no
        # 4K with a reference video)
        pytest.param(
            video(model_name="kling-v3-omni", mode="std", video_list=[FEATURE]),
            "4.5",
            id="3.0-video-720p",
        ),
        pytest.param(
            video(model_name="kling-v3-omni", video_list=[FEATURE], duration=10),
            "12",
            id="3.0-video-1080p",
        ),
        # Kling O1, no video input: 0.6 / 0.8 per second
        pytest.param(video(mode="std", duration=10), "6", id="o1-none-720p"),
        pytest.param(video(), "4", id="o1-none-1080p"),
        # Kling O1, with video input: 0.9 / 1.2 per second
        pytest.param(
            video(mode="std", video_list=[FEATURE], duration=3), "2.7", id="o1-video-720p"
        ),
        pytest.param(video(video_list=[FEATURE]), "6", id="o1-video-1080p"),
    ],
)
def test_video_rows(request_: ka.OmniVideoRequest, units: str) -> None:
    """Videos cost the page's units per second times ``duration``."""
    price = list_price(request_)
    assert price is not None
    assert price.units == Decimal(units)
    assert VIDEO_URL in price.basis and f"× {request_.duration} s" in price.basis


@pytest.mark.parametrize(
    "request_",
    [
        # base video: the output is as long as the input, unknown before the task runs
        pytest.param(
            video(model_name="kling-v3-omni", video_list=[BASE], aspect_ratio=None), id="3.0-base"
        ),
        pytest.param(video(video_list=[BASE], aspect_ratio=None), id="o1-base"),
        # the Kling O1 rows say nothing of native audio
        pytest.param(video(sound="on"), id="o1-sound-on"),
    ],
)
def test_unpublished_prices_are_none(request_: ka.OmniVideoRequest) -> None:
    """Where the pages publish no price, none is guessed."""
    assert list_price(request_) is None


def test_the_basis_names_the_row_and_the_arithmetic() -> None:
    """The basis is one line a user can check against the page."""
    price = list_price(video(model_name="kling-v3-omni", sound="on", mode="std"))
    assert price == Estimate(
        units=Decimal(4),
        basis=(
            "Kling 3.0 Omni, no video input, with native audio, 720p: 0.8 units/s × 5 s "
            f"({VIDEO_URL})"
        ),
    )
    auto = list_price(image(model_name="kling-v3-omni", result_type="series", series_amount="auto"))
    assert auto is not None and "9 images" in auto.basis and "auto" in auto.basis
