"""What the sandbox charges a succeeded task, from Kling's published price tables.

Kling's pages price omni-image per image and omni-video per second of output, by resolution,
video input and native audio [image-prices] [video-prices]. The sandbox charges exactly those
rows (``final_unit_deduction`` on the legacy standard, ``billing[].amount`` on the new one), so
budget tests see the units a real account would be charged. Written from the pages, not from
the SDK's own table.

Sandbox choices where the pages say nothing (INFERRED):
- Kling O1's rows name no audio; an O1 video is charged its row whatever its audio setting.
- A ``base`` reference video (editing) is charged for the task's ``duration`` seconds (a real
  output is as long as the input video, which the sandbox does not measure).

Sources:
[image-prices] https://kling.ai/document-api/pricing/base/image
[video-prices] https://kling.ai/document-api/pricing/base/video
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

# [image-prices]: units per image by (model, resolution); O1 has no 4K (nor do the rules allow it)
IMAGE_UNITS: Final[dict[tuple[str, str], Decimal]] = {
    ("kling-v3-omni", "1k"): Decimal(8),  # Kling Image 3.0 Omni, 1K/2K: 8 units / image
    ("kling-v3-omni", "2k"): Decimal(8),
    ("kling-v3-omni", "4k"): Decimal(16),  # Kling Image 3.0 Omni, 4K: 16 units / image
    ("kling-image-o1", "1k"): Decimal(8),  # Kling Image O1, 1K/2K: 8 units / image
    ("kling-image-o1", "2k"): Decimal(8),
}

# Both standards' model names, and the legacy ``mode``, in the pages' terms.
FAMILY: Final = {
    "kling-v3-omni": "3.0-omni",
    "kling-3.0-omni": "3.0-omni",
    "kling-video-o1": "o1",
    "kling-o1": "o1",
}
RESOLUTION_OF_MODE: Final = {"std": "720p", "pro": "1080p", "4k": "4k"}

# [video-prices]: units per second by (family, video input, native audio, resolution)
VIDEO_UNITS_PER_SECOND: Final[dict[tuple[str, bool, bool, str], Decimal]] = {
    # Kling 3.0 Omni: no video input × no native audio: 0.6 / 0.8 / 3.0
    ("3.0-omni", False, False, "720p"): Decimal("0.6"),
    ("3.0-omni", False, False, "1080p"): Decimal("0.8"),
    ("3.0-omni", False, False, "4k"): Decimal("3.0"),
    # Kling 3.0 Omni: no video input × with native audio: 0.8 / 1.0 / 3.0
    ("3.0-omni", False, True, "720p"): Decimal("0.8"),
    ("3.0-omni", False, True, "1080p"): Decimal("1.0"),
    ("3.0-omni", False, True, "4k"): Decimal("3.0"),
    # Kling 3.0 Omni: with video input × no native audio: 0.9 / 1.2 / 3.0
    ("3.0-omni", True, False, "720p"): Decimal("0.9"),
    ("3.0-omni", True, False, "1080p"): Decimal("1.2"),
    ("3.0-omni", True, False, "4k"): Decimal("3.0"),
    # Kling O1: no video input 0.6 / 0.8; with video input 0.9 / 1.2 (no 4K)
    ("o1", False, False, "720p"): Decimal("0.6"),
    ("o1", False, False, "1080p"): Decimal("0.8"),
    ("o1", True, False, "720p"): Decimal("0.9"),
    ("o1", True, False, "1080p"): Decimal("1.2"),
}


def units_text(units: Decimal) -> str:
    """Units as the wire's decimal string: ``"8"``, ``"4.5"`` (no exponent, no trailing 0)."""
    return f"{units.normalize():f}"


def image_units(model: str, resolution: str, images: int) -> str:
    """The charge of ``images`` images of ``model`` at ``resolution`` [image-prices]."""
    return units_text(IMAGE_UNITS[(model, resolution)] * images)


def video_units(
    model: str, resolution: str, *, native_audio: bool, video_input: bool, seconds: int
) -> str:
    """The charge of a ``seconds``-long video ([video-prices]); ``model`` in either standard's
    spelling, ``resolution`` ``720p``/``1080p``/``4k``. A combination the page has no row for
    (native audio with a video input, which the rules refuse anyway) is charged as with video
    input and no audio."""
    family = FAMILY[model]
    audio = native_audio and family == "3.0-omni" and not video_input
    return units_text(VIDEO_UNITS_PER_SECOND[(family, video_input, audio, resolution)] * seconds)
