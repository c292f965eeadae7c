"""Kling's published list prices, in resource-pack units, for the requests the SDK sends.

A table of the rows Kling publishes for the omni models, and :func:`list_price`, which finds
the row a request falls under and multiplies it out. Where the pages name no row for a
request (or where the request's size is not known before the task runs), the answer is
``None``: no price is guessed.

What comes from where:
- omni-image: "Kling Image 3.0 Omni, 1K/2K: 8 units per image; 4K: 16 units per image";
  "Kling Image O1, 1K/2K: 8 units per image" (no 4K row) [image-prices]
- omni-video, per second of output by resolution (720p = ``mode="std"``, 1080p = ``"pro"``,
  4K = ``"4k"``): "Kling 3.0 Omni" rows for no video input × no native audio, no video input ×
  native audio, video input × no native audio; "Kling O1" rows for no video input and video
  input, 720p and 1080p only, with nothing said of audio [video-prices]
- ``mode`` std/pro = 720p/1080p: [omni-video]

Sources:
[image-prices] https://kling.ai/document-api/pricing/base/image
[video-prices] https://kling.ai/document-api/pricing/base/video
[omni-video] https://kling.ai/document-api/api/video/3-0-omni/video-omni
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import attrs

from .._models import OmniImageRequest, OmniVideoRequest, Request

__all__ = ["AUTO_SERIES_IMAGES", "IMAGE_PRICES", "VIDEO_PRICES", "Estimate", "list_price"]

IMAGE_PRICES_URL: Final = "https://kling.ai/document-api/pricing/base/image"
VIDEO_PRICES_URL: Final = "https://kling.ai/document-api/pricing/base/video"

# An ``auto`` series is priced as its largest possible size, 9 images (pessimistic: the
# count is known only when the task ends) [image-prices] per image × the omni-image maximum.
AUTO_SERIES_IMAGES: Final = 9

# (model_name, resolution) → units per image [image-prices].
IMAGE_PRICES: Final[dict[tuple[str, str], Decimal]] = {
    ("kling-v3-omni", "1k"): Decimal(8),  # Kling Image 3.0 Omni, 1K
    ("kling-v3-omni", "2k"): Decimal(8),  # Kling Image 3.0 Omni, 2K
    ("kling-v3-omni", "4k"): Decimal(16),  # Kling Image 3.0 Omni, 4K
    ("kling-image-o1", "1k"): Decimal(8),  # Kling Image O1, 1K
    ("kling-image-o1", "2k"): Decimal(8),  # Kling Image O1, 2K
}
_IMAGE_NAMES: Final = {"kling-v3-omni": "Kling Image 3.0 Omni", "kling-image-o1": "Kling Image O1"}

# (model_name, video input, native audio, mode) → units per second [video-prices].
VIDEO_PRICES: Final[dict[tuple[str, bool, bool, str], Decimal]] = {
    # Kling 3.0 Omni, no video input × no native audio
    ("kling-v3-omni", False, False, "std"): Decimal("0.6"),
    ("kling-v3-omni", False, False, "pro"): Decimal("0.8"),
    ("kling-v3-omni", False, False, "4k"): Decimal("3.0"),
    # Kling 3.0 Omni, no video input × with native audio
    ("kling-v3-omni", False, True, "std"): Decimal("0.8"),
    ("kling-v3-omni", False, True, "pro"): Decimal("1.0"),
    ("kling-v3-omni", False, True, "4k"): Decimal("3.0"),
    # Kling 3.0 Omni, with video input × no native audio
    ("kling-v3-omni", True, False, "std"): Decimal("0.9"),
    ("kling-v3-omni", True, False, "pro"): Decimal("1.2"),
    ("kling-v3-omni", True, False, "4k"): Decimal("3.0"),
    # Kling O1, no video input (the page says nothing of audio: priced without it only)
    ("kling-video-o1", False, False, "std"): Decimal("0.6"),
    ("kling-video-o1", False, False, "pro"): Decimal("0.8"),
    # Kling O1, with video input
    ("kling-video-o1", True, False, "std"): Decimal("0.9"),
    ("kling-video-o1", True, False, "pro"): Decimal("1.2"),
}
_VIDEO_NAMES: Final = {"kling-v3-omni": "Kling 3.0 Omni", "kling-video-o1": "Kling O1"}
_RESOLUTION: Final = {"std": "720p", "pro": "1080p", "4k": "4K"}


@attrs.frozen(kw_only=True)
class Estimate:
    """What a request is expected to cost: from Kling's price pages (:func:`list_price`) or
    learnt from what ended tasks were charged (the unit budget's estimates).

    Attributes:
        units: The whole request's units, exact: per image × images (an ``auto`` series
            counted as 9 images, its largest size), or per second × ``duration`` seconds.
        basis: One line a user can check: the row or the observations applied, the
            arithmetic, and for a list price the page's URL.
    """

    units: Decimal
    basis: str


def list_price(request: Request) -> Estimate | None:
    """The list price of ``request`` from Kling's published tables, or ``None`` when the
    pages publish no price for it.

    ``None`` cases: an image model/resolution the image page has no row for (Image O1 at 4K);
    a video with a ``base`` reference video (the output's length follows the input video,
    not ``duration``, so the seconds are unknown before the task runs); native audio with a
    reference video (no such row); Kling O1 with ``sound="on"`` (the O1 rows say nothing of
    audio).

    Sources: https://kling.ai/document-api/pricing/base/image and
    https://kling.ai/document-api/pricing/base/video.
    """
    if isinstance(request, OmniImageRequest):
        return _image_price(request)
    return _video_price(request)


def _image_price(r: OmniImageRequest) -> Estimate | None:
    per_image = IMAGE_PRICES.get((r.model_name, r.resolution))
    if per_image is None:
        return None
    if r.result_type == "single":
        images, what = r.n, f"n={r.n}"
    elif r.series_amount == "auto":
        images, what = AUTO_SERIES_IMAGES, "series_amount='auto', priced at its maximum 9"
    else:
        images, what = r.series_amount, f"series_amount={r.series_amount}"
    name = _IMAGE_NAMES[r.model_name]
    return Estimate(
        units=per_image * images,
        basis=(
            f"{name} {r.resolution.upper()}: {per_image} units/image × {images} images "
            f"({what}) ({IMAGE_PRICES_URL})"
        ),
    )


def _video_price(r: OmniVideoRequest) -> Estimate | None:
    if any(v.refer_type == "base" for v in r.video_list):
        return None  # the output is as long as the input video: seconds unknown
    video_input = bool(r.video_list)
    audio = r.sound == "on"
    per_second = VIDEO_PRICES.get((r.model_name, video_input, audio, r.mode))
    if per_second is None:
        return None
    parts = [_VIDEO_NAMES[r.model_name], f"{'with' if video_input else 'no'} video input"]
    if r.model_name == "kling-v3-omni":
        parts.append("with native audio" if audio else "no native audio")
    parts.append(_RESOLUTION[r.mode])
    row = ", ".join(parts)
    return Estimate(
        units=per_second * r.duration,
        basis=f"{row}: {per_second} units/s × {r.duration} s ({VIDEO_PRICES_URL})",
    )
