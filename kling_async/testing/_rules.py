"""Strict validation of raw create bodies, written from Kling's docs (not from the SDK).

Each rule cites the vendor page it enforces (sources below;
[omni-image] omni-image, [omni-video] omni-video). The first broken rule raises :class:`RuleError`;
the
server answers it as HTTP 400, code 1201 [errors]. Unknown top-level fields are refused too, so an
encoder that sends a wrong field name is caught instead of silently ignored.

The checks never look at the SDK's models: they read the JSON exactly as it arrived.

Sources:
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[omni-video] https://kling.ai/document-api (omni-video; legacy POST /v1/videos/omni-video)
[errors] https://kling.ai/document-api/api/get-started/error-codes
[callbacks] https://kling.ai/document-api/api/get-started/callbacks
[changelog] https://kling.ai/document-api/updates/api
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from ._media import image_dimensions, image_format

IMAGE_MODELS: Final = ("kling-image-o1", "kling-v3-omni")  # [omni-image]
VIDEO_MODELS: Final = ("kling-video-o1", "kling-v3-omni")  # [omni-video]
IMAGE_ASPECT_RATIOS: Final = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9", "auto")
VIDEO_ASPECT_RATIOS: Final = ("16:9", "9:16", "1:1")
MAX_PROMPT: Final = 2500  # [omni-image] / [omni-video]: prompt ≤ 2500 characters
MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024  # [omni-image] / [omni-video]: ≤ 10 MB
MIN_IMAGE_SIDE: Final = 300  # [omni-image] / [omni-video]: each side ≥ 300 px
MAX_IMAGE_RATIO: Final = 2.5  # [omni-image] / [omni-video]: aspect 1:2.5 … 2.5:1

_IMAGE_FIELDS: Final = frozenset(
    {
        "model_name",
        "prompt",
        "image_list",
        "element_list",
        "resolution",
        "result_type",
        "n",
        "series_amount",
        "aspect_ratio",
        "watermark_info",
        "callback_url",
        "external_task_id",
    }
)
_VIDEO_FIELDS: Final = frozenset(
    {
        "model_name",
        "multi_shot",
        "shot_type",
        "prompt",
        "multi_prompt",
        "image_list",
        "element_list",
        "video_list",
        "sound",
        "mode",
        "aspect_ratio",
        "duration",
        "watermark_info",
        "callback_url",
        "external_task_id",
    }
)


class RuleError(ValueError):
    """A create body broke a documented rule (answered as HTTP 400, code 1201, [errors])."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid parameter: {detail}")


@attrs.frozen(kw_only=True)
class ImageSpec:
    """What the sandbox needs from a valid omni-image body (defaults applied, [omni-image])."""

    model_name: str
    resolution: str
    result_type: Literal["single", "series"]
    n: int
    series_amount: int | Literal["auto"]
    watermark: bool
    callback_url: str | None
    external_task_id: str | None


@attrs.frozen(kw_only=True)
class VideoSpec:
    """What the sandbox needs from a valid omni-video body (defaults applied, [omni-video])."""

    model_name: str
    mode: str
    duration: int
    watermark: bool
    callback_url: str | None
    external_task_id: str | None
    sound: str = "off"
    video_input: bool = False


# --- small typed readers -------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown_fields(body: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise RuleError(f"unknown field {unknown[0]!r} in {where}")


def _enum(body: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or value not in allowed:
        raise RuleError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise RuleError(f"{name} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= limit:
        raise RuleError(f"{name} must have 1 to {limit} characters, got {len(value)}")
    return value


def _list(body: Mapping[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise RuleError(f"{key} must be an array, got {type(value).__name__}")
    return value


def _item(value: object, name: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RuleError(f"{name} must be an object, got {type(value).__name__}")
    for key in sorted(required):
        if key not in value:
            raise RuleError(f"{name}.{key} is required")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        raise RuleError(f"unknown field {unknown[0]!r} in {name}")
    return value


def _common_tail(body: Mapping[str, Any]) -> tuple[bool, str | None, str | None]:
    """watermark_info, callback_url, external_task_id ([omni-image] / [omni-video], same for
    both kinds)."""
    watermark = False
    if "watermark_info" in body:
        # [omni-image]: watermark_info {"enabled": bool}, no custom watermark
        info = _item(body["watermark_info"], "watermark_info", {"enabled"}, set())
        if not isinstance(info["enabled"], bool):
            raise RuleError(f"watermark_info.enabled must be a boolean, got {info['enabled']!r}")
        watermark = info["enabled"]
    # [omni-image] [omni-video]: the pages' own examples send "callback_url": "" and
    # "external_task_id": "" for "none"; those are accepted as absent.
    callback_url = None
    if body.get("callback_url", "") != "":
        # [omni-image] / [callbacks]: callback_url is a URL the server POSTs to
        value = body["callback_url"]
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise RuleError(f"callback_url must be an http(s) URL, got {value!r}")
        callback_url = value
    external_task_id = None
    if body.get("external_task_id", "") != "":
        # [omni-image]: user-defined id, unique per account (uniqueness checked by the server)
        value = body["external_task_id"]
        if not isinstance(value, str) or not value:
            raise RuleError(f"external_task_id must be a non-empty string, got {value!r}")
        external_task_id = value
    return watermark, callback_url, external_task_id


def _inline_media(value: object, name: str) -> bytes | None:
    """The decoded bytes of a base64 media value, or ``None`` for an http(s) URL.

    [omni-image]: the value must not be empty; [omni-image] [omni-video]: base64 is raw, with no
    ``data:...;base64,`` prefix.
    """
    if not isinstance(value, str) or not value:
        raise RuleError(f"{name} must be a non-empty string (URL or raw base64)")
    if value.startswith(("http://", "https://")):
        return None
    if value.startswith("data:"):
        raise RuleError(f"{name} must be raw base64 without a 'data:' prefix")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RuleError(f"{name} is neither an http(s) URL nor valid base64") from None


def _reference_image(value: object, name: str) -> None:
    """[omni-image] / [omni-video]: URL or raw base64 of a jpg/png ≤ 10 MB, sides ≥ 300 px,
    ratio ≤ 2.5."""
    data = _inline_media(value, name)
    if data is None:
        return
    if len(data) > MAX_IMAGE_BYTES:  # [omni-image]: ≤ 10 MB
        raise RuleError(f"{name} must be at most 10 MB, got {len(data)} bytes")
    if image_format(data) is None:  # [omni-image]: .jpg / .jpeg / .png only
        raise RuleError(f"{name} must be a JPEG or PNG image")
    size = image_dimensions(data)
    if size is None:
        raise RuleError(f"{name} is not a readable JPEG or PNG image")
    width, height = size
    if min(width, height) < MIN_IMAGE_SIDE:  # [omni-image]: each side ≥ 300 px
        raise RuleError(f"{name} must be at least 300 px on each side, got {width}×{height}")
    if max(width, height) > MAX_IMAGE_RATIO * min(width, height):  # [omni-image]: 1:2.5 … 2.5:1
        raise RuleError(f"{name} aspect ratio must be within 1:2.5 and 2.5:1, got {width}×{height}")


def _reference_video(value: object, name: str) -> None:
    """[omni-video]: a reference video URL (raw base64 of an MP4/MOV tolerated, INFERRED)."""
    data = _inline_media(value, name)
    if data is None:
        return
    if data[4:8] != b"ftyp":  # [omni-video]: MP4/MOV only
        raise RuleError(f"{name} must be an MP4 or MOV video")


def _elements(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = _list(body, "element_list")
    for i, raw in enumerate(items):
        item = _item(raw, f"element_list[{i}]", {"element_id"}, set())
        # [omni-image] / [omni-video]: element_id is a long (INFERRED: a JSON integer, not a quoted
        # string)
        if not _is_int(item["element_id"]) or item["element_id"] <= 0:
            raise RuleError(
                f"element_list[{i}].element_id must be a positive integer, "
                f"got {item['element_id']!r}"
            )
    return items


def _body(body: object) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise RuleError(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


# --- omni-image ----------------------------------------------------------------------------


def check_image(raw: object) -> ImageSpec:
    """Validate an omni-image create body [omni-image] and return its normalised spec.

    Raises:
        RuleError: the first broken rule, naming the parameter.
    """
    body = _body(raw)
    _unknown_fields(body, _IMAGE_FIELDS, "the omni-image request")  # strict: wrong names fail
    model = _enum(body, "model_name", IMAGE_MODELS, IMAGE_MODELS[0])  # [omni-image]
    if "prompt" not in body:  # [omni-image]: prompt required
        raise RuleError("prompt is required")
    _text(body["prompt"], "prompt", MAX_PROMPT)  # [omni-image]: ≤ 2500 characters
    images = _list(body, "image_list")
    for i, raw_item in enumerate(images):
        # [omni-image]: items {"image": "<url or raw base64>"}
        item = _item(raw_item, f"image_list[{i}]", {"image"}, set())
        _reference_image(item["image"], f"image_list[{i}].image")
    elements = _elements(body)  # [omni-image]: items {"element_id": long}
    if len(images) + len(elements) > 10:  # [omni-image]: images + elements ≤ 10
        raise RuleError(
            f"image_list and element_list together must have at most 10 items, "
            f"got {len(images) + len(elements)}"
        )
    resolution = _enum(body, "resolution", ("1k", "2k", "4k"), "1k")  # [omni-image]
    if model == "kling-image-o1" and resolution == "4k":  # [omni-image]: O1 is 1K/2K only
        raise RuleError("resolution 4k is not supported by kling-image-o1")
    result_type = _enum(body, "result_type", ("single", "series"), "single")  # [omni-image]
    n = body.get("n", 1)
    if not _is_int(n) or not 1 <= n <= 9:  # [omni-image]: n 1–9
        raise RuleError(f"n must be an integer in [1, 9], got {n!r}")
    series_amount = body.get("series_amount", 4)
    # [omni-image]: series_amount 2–9 or "auto", default 4
    if series_amount != "auto" and (not _is_int(series_amount) or not 2 <= series_amount <= 9):
        raise RuleError(
            f"series_amount must be an integer in [2, 9] or 'auto', got {series_amount!r}"
        )
    if result_type == "series" and model == "kling-image-o1":  # [omni-image]: O1 no series
        raise RuleError("result_type series is not supported by kling-image-o1")
    aspect_ratio = _enum(body, "aspect_ratio", IMAGE_ASPECT_RATIOS, "auto")  # [omni-image]
    if model == "kling-v3-omni" and aspect_ratio == "auto" and not images and not elements:
        # [omni-image]: Image 3.0 Omni text-to-image does not support the auto ratio
        raise RuleError("aspect_ratio auto is not supported for kling-v3-omni text-to-image")
    watermark, callback_url, external_task_id = _common_tail(body)
    return ImageSpec(
        model_name=model,
        resolution=resolution,
        result_type="series" if result_type == "series" else "single",
        n=n,
        series_amount="auto" if series_amount == "auto" else int(series_amount),
        watermark=watermark,
        callback_url=callback_url,
        external_task_id=external_task_id,
    )


# --- omni-video ----------------------------------------------------------------------------


def _duration(value: object, name: str) -> int:
    # [omni-video]: durations are strings of whole seconds ("5"), not numbers
    if not isinstance(value, str) or not value.isdigit() or value != str(int(value)):
        raise RuleError(f'{name} must be a string of whole seconds such as "5", got {value!r}')
    return int(value)


def check_video(raw: object) -> VideoSpec:
    """Validate an omni-video create body [omni-video] and return its normalised spec.

    Raises:
        RuleError: the first broken rule, naming the parameter.
    """
    body = _body(raw)
    _unknown_fields(body, _VIDEO_FIELDS, "the omni-video request")  # strict: wrong names fail
    model = _enum(body, "model_name", VIDEO_MODELS, VIDEO_MODELS[0])  # [omni-video]
    multi_shot = body.get("multi_shot", False)
    if not isinstance(multi_shot, bool):  # [omni-video]: multi_shot bool, default false
        raise RuleError(f"multi_shot must be a boolean, got {multi_shot!r}")
    shot_type = None
    if multi_shot and "shot_type" not in body:  # [omni-video]: required when multi_shot
        raise RuleError("shot_type is required when multi_shot is true")
    if "shot_type" in body:  # [omni-video] [changelog]: customize | intelligence
        shot_type = _enum(body, "shot_type", ("customize", "intelligence"), "")
    # [omni-video]: prompt required when multi_shot=false or shot_type=intelligence
    if (not multi_shot or shot_type == "intelligence") and "prompt" not in body:
        raise RuleError("prompt is required unless multi_shot is true with shot_type customize")
    if "prompt" in body:
        _text(body["prompt"], "prompt", MAX_PROMPT)  # [omni-video]: ≤ 2500 characters

    total = _duration(body.get("duration", "5"), "duration")  # [omni-video]: default "5"

    if multi_shot and shot_type == "customize":
        # [omni-video]: multi_prompt required for customize; 1–6 shots
        if "multi_prompt" not in body:
            raise RuleError("multi_prompt is required when shot_type is customize")
        shots = _list(body, "multi_prompt")
        if not 1 <= len(shots) <= 6:
            raise RuleError(f"multi_prompt must have 1 to 6 shots, got {len(shots)}")
        shot_sum = 0
        for i, raw_shot in enumerate(shots):
            name = f"multi_prompt[{i}]"
            shot = _item(raw_shot, name, {"index", "prompt", "duration"}, set())
            if not _is_int(shot["index"]):  # [omni-video]: index int
                raise RuleError(f"{name}.index must be an integer, got {shot['index']!r}")
            _text(shot["prompt"], f"{name}.prompt", 512)  # [omni-video]: ≤ 512 chars each
            seconds = _duration(shot["duration"], f"{name}.duration")
            if seconds < 1:  # [omni-video]: each shot ≥ 1 s
                raise RuleError(f"{name}.duration must be at least 1 second, got {seconds}")
            shot_sum += seconds
        if shot_sum != total:  # [omni-video]: shot durations sum to duration
            raise RuleError(
                f"multi_prompt durations must add up to duration {total}, got {shot_sum}"
            )
    elif "multi_prompt" in body:
        _list(body, "multi_prompt")  # [omni-video]: ignored unless customize, but typed

    images = _list(body, "image_list")
    frame_types: list[str] = []
    for i, raw_item in enumerate(images):
        name = f"image_list[{i}]"
        # [omni-video]: items {"image_url", "type"?}; the key is image_url, not image
        item = _item(raw_item, name, {"image_url"}, {"type"})
        _reference_image(item["image_url"], f"{name}.image_url")
        if "type" in item:
            kind = item["type"]
            if kind not in ("first_frame", "end_frame"):  # [omni-video]
                raise RuleError(f"{name}.type must be first_frame or end_frame, got {kind!r}")
            if kind in frame_types:
                raise RuleError(f"image_list has more than one {kind}")
            frame_types.append(kind)
    has_first = "first_frame" in frame_types
    has_end = "end_frame" in frame_types
    if has_end and not has_first:  # [omni-video]: end frame alone not supported
        raise RuleError("image_list end_frame requires a first_frame")
    if model == "kling-video-o1" and frame_types and len(images) > 2:
        # [omni-video]: with O1, start/end frames not supported with more than two images
        raise RuleError("kling-video-o1 does not support frames with more than two images")

    elements = _elements(body)  # [omni-video]: {"element_id": long}
    if has_first and has_end and model == "kling-video-o1" and elements:
        # [omni-video]: start+end frames: O1 takes no elements
        raise RuleError("kling-video-o1 does not support element_list with start and end frames")
    if has_first and len(elements) > 3:
        # [omni-video]: first-frame (and v3-omni start+end) generation ≤ 3 elements
        raise RuleError(f"element_list must have at most 3 items with frames, got {len(elements)}")

    videos = _list(body, "video_list")
    if len(videos) > 1:  # [omni-video]: ≤ 1 reference video
        raise RuleError(f"video_list must have at most 1 item, got {len(videos)}")
    refer_type = None
    for i, raw_item in enumerate(videos):
        name = f"video_list[{i}]"
        item = _item(raw_item, name, {"video_url"}, {"refer_type", "keep_original_sound"})
        _reference_video(item["video_url"], f"{name}.video_url")
        refer_type = _enum(item, "refer_type", ("base", "feature"), "base")  # [omni-video]
        if "keep_original_sound" in item:  # [omni-video]: yes | no
            _enum(item, "keep_original_sound", ("yes", "no"), "no")
    has_video = bool(videos)
    limit = 4 if has_video else 7
    if len(images) + len(elements) > limit:
        # [omni-video]: images + elements ≤ 7, ≤ 4 with a reference video
        raise RuleError(
            f"image_list and element_list together must have at most {limit} items"
            f"{' with a reference video' if has_video else ''}, got {len(images) + len(elements)}"
        )
    if refer_type == "base" and frame_types:
        # [omni-video]: first/last-frame mode disables video editing (base)
        raise RuleError("first_frame/end_frame cannot be combined with a base reference video")
    if multi_shot and frame_types and model == "kling-video-o1":
        # [omni-video] [changelog]: multi-shot + frames allowed only for kling-v3-omni
        raise RuleError("kling-video-o1 does not support multi_shot with first/end frames")
    if refer_type == "feature" and multi_shot and shot_type != "intelligence":
        # [omni-video] [changelog]: feature reference + multi-shot needs shot_type intelligence
        raise RuleError("a feature reference video with multi_shot requires shot_type intelligence")

    sound = _enum(body, "sound", ("on", "off"), "off")  # [omni-video]
    if has_video and sound != "off":  # [omni-video]: sound off with a reference video
        raise RuleError("sound must be off when video_list has a reference video")
    mode = _enum(body, "mode", ("std", "pro", "4k"), "pro")  # [omni-video] [changelog]
    if mode == "4k" and model != "kling-v3-omni":  # [omni-video] [changelog]: 4k only kling-v3-omni
        raise RuleError(f"mode 4k is only supported by kling-v3-omni, not {model}")
    if mode == "4k" and has_video:  # [omni-video] [changelog]: 4k not with a reference video
        raise RuleError("mode 4k is not supported with a reference video")
    if "aspect_ratio" in body:
        _enum(body, "aspect_ratio", VIDEO_ASPECT_RATIOS, "16:9")  # [omni-video]
    elif not has_first and refer_type != "base":
        # [omni-video]: aspect_ratio required unless first-frame or video editing is used
        raise RuleError("aspect_ratio is required without a first_frame or base reference video")

    if refer_type != "base":  # [omni-video]: duration ignored for refer_type base
        high = 15 if model == "kling-v3-omni" else 10  # [omni-video]: v3-omni 3–15, O1 3–10
        if not 3 <= total <= high:
            raise RuleError(f'duration must be "3" to "{high}" for {model}, got "{total}"')
        first_frame_only = has_first and len(images) == 1 and not has_video
        if model == "kling-video-o1" and first_frame_only and total not in (5, 10):
            # [omni-video]: O1 from a first frame alone → 5 or 10 s. Text-to-video is not
            # held to it: the page's own "Text To Video" example sends "duration": "7" and its
            # FAQ gives 3~10 s (the example wins over the capability map's 5-or-10).
            raise RuleError(
                f'duration must be "5" or "10" for kling-video-o1 first-frame-only, got "{total}"'
            )
    watermark, callback_url, external_task_id = _common_tail(body)
    return VideoSpec(
        model_name=model,
        mode=mode,
        duration=total,
        sound=sound,
        video_input=has_video,
        watermark=watermark,
        callback_url=callback_url,
        external_task_id=external_task_id,
    )
