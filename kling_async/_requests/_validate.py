"""Kling's legacy-standard request rules and the checks every API shares, run before anything
is sent.

Each check cites the vendor page it comes from ([omni-image] omni-image,
[omni-video] omni-video). Messages name the field, the value and the rule:
``"n: 12, must be an integer 1–9"``. Which rules apply to a request is ``_api_rules``' choice:
these run for the legacy standard (the image rules, less the capability map's, for every API).

Rules that need the file system (a local reference image's format, size and dimensions) run in
:func:`check_local_image`, called by the codec when it reads the file, still before any HTTP
request.

Sources:
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[omni-video] https://kling.ai/document-api (omni-video; legacy POST /v1/videos/omni-video)
[changelog] https://kling.ai/document-api/updates/api
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import InvalidInputError
from ._local_media import read_local_file

if TYPE_CHECKING:
    from .._models import OmniImageRequest, OmniVideoRequest

__all__ = [
    "check_local_image",
    "check_local_video",
    "check_video_inputs",
    "check_video_values",
    "validate_image_request",
    "validate_video_request",
]

PROMPT_MAX = 2500  # [omni-image] / [omni-video] [omni-image] [omni-video]
SHOT_PROMPT_MAX = 512  # [omni-video] multi_prompt [omni-video]
IMAGE_MAX_BYTES = 10 * 1024 * 1024  # [omni-image] reference images ≤ 10 MB [omni-image]
IMAGE_MIN_SIDE = 300  # [omni-image] each side ≥ 300 px [omni-image]
IMAGE_MAX_RATIO = 2.5  # [omni-image] aspect 1:2.5 … 2.5:1 [omni-image]
VIDEO_MAX_BYTES = 200 * 1024 * 1024  # [omni-video] reference video ≤ 200 MB [omni-video]

_IMAGE_MODELS = ("kling-image-o1", "kling-v3-omni")
_VIDEO_MODELS = ("kling-video-o1", "kling-v3-omni")
_IMAGE_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9", "auto")
_VIDEO_RATIOS = ("16:9", "9:16", "1:1")


def _fail(field: str, value: object, rule: str) -> ValueError:
    shown = value if not isinstance(value, str) or len(value) <= 60 else f"{value[:57]}..."
    return ValueError(f"{field}: {shown!r}, {rule}")


def _one_of(field: str, value: object, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise _fail(field, value, f"must be one of {', '.join(map(str, allowed))}")


def _int_in(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field}: {value!r}, must be an integer {low}–{high}")
    if not low <= value <= high:
        raise _fail(field, value, f"must be an integer {low}–{high}")


def _prompt(field: str, value: object, maximum: int = PROMPT_MAX) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{field}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise _fail(field, value, f"must be 1–{maximum} characters, not empty")
    if len(value) > maximum:
        raise ValueError(f"{field}: {len(value)} characters, at most {maximum} allowed")


def _common(req: OmniImageRequest | OmniVideoRequest) -> None:
    if req.watermark is not None and not isinstance(req.watermark, bool):
        raise TypeError(f"watermark: {req.watermark!r}, must be a bool or None")
    if req.callback_url is not None and not isinstance(req.callback_url, str):
        raise TypeError(f"callback_url: {req.callback_url!r}, must be a string URL")
    if req.callback_url is not None and not req.callback_url.startswith(("http://", "https://")):
        raise _fail("callback_url", req.callback_url, "must be an http(s) URL")
    ext = req.external_task_id
    if ext is not None and (not isinstance(ext, str) or not ext.strip()):
        # [omni-image]: user-defined id, unique per account; an empty one cannot identify a task.
        raise _fail("external_task_id", ext, "must be a non-empty string")
    for i, element_id in enumerate(req.element_list):
        if element_id <= 0:
            raise _fail(f"element_list[{i}]", element_id, "element ids are positive integers")


def validate_image_request(req: OmniImageRequest, *, native: bool = True) -> None:
    """Check every documented omni-image rule [omni-image]; ``native=False`` leaves out the
    rule only Kling's own API states (its capability map's "no ``auto`` ratio for 3.0 Omni
    text-to-image"), for a gateway with its own page (Modellix).

    Raises:
        ValueError: naming the field, the value and the rule.
        TypeError: a field of the wrong type.
    """
    _one_of("model_name", req.model_name, _IMAGE_MODELS)
    _prompt("prompt", req.prompt)  # [omni-image]: ≤ 2500 chars, required [omni-image]
    # [omni-image] lower-case [omni-image]
    _one_of("resolution", req.resolution, ("1k", "2k", "4k"))
    _one_of("result_type", req.result_type, ("single", "series"))
    _one_of("aspect_ratio", req.aspect_ratio, _IMAGE_RATIOS)
    _int_in("n", req.n, 1, 9)  # [omni-image] n 1–9 [omni-image]
    if req.series_amount != "auto":
        _int_in("series_amount", req.series_amount, 2, 9)  # [omni-image] 2–9 or auto [omni-image]
    total = len(req.image_list) + len(req.element_list)
    if total > 10:  # [omni-image] image_list + element_list ≤ 10 [omni-image]
        raise ValueError(f"image_list + element_list: {total} items, at most 10 allowed together")
    if req.model_name == "kling-image-o1":
        # [omni-image] model differences [omni-image]; ComfyUI refuses the same client-side .
        if req.resolution == "4k":
            raise _fail("resolution", "4k", "kling-image-o1 supports 1k and 2k only")
        if req.result_type == "series":
            raise _fail("result_type", "series", "kling-image-o1 does not generate series")
    text_to_image = req.model_name == "kling-v3-omni" and not req.image_list
    if native and text_to_image and req.aspect_ratio == "auto":
        # [omni-image]: Image 3.0 Omni text-to-image does not support the 'auto' ratio.
        raise _fail(
            "aspect_ratio",
            "auto",
            "kling-v3-omni text-to-image (no image_list) needs an explicit aspect ratio",
        )
    _common(req)


def check_video_values(req: OmniVideoRequest) -> None:
    """The values every omni-video API allows alike ([omni-video], and the new standard's and
    Modellix's pages list the same): the model, ``sound`` (``on``/``off``), ``mode``
    (``std``/``pro``/``4k``), ``aspect_ratio`` (16:9, 9:16, 1:1 or unset), ``multi_shot`` a
    bool or unset.

    Raises:
        ValueError: naming the field, the value and the values allowed.
        TypeError: ``multi_shot`` is not a bool.
    """
    _one_of("model_name", req.model_name, _VIDEO_MODELS)
    _one_of("sound", req.sound, ("on", "off"))
    _one_of("mode", req.mode, ("std", "pro", "4k"))
    if req.aspect_ratio is not None:
        _one_of("aspect_ratio", req.aspect_ratio, _VIDEO_RATIOS)
    if req.multi_shot is not None and not isinstance(req.multi_shot, bool):
        raise TypeError(f"multi_shot: {req.multi_shot!r}, must be a bool or None")


def check_video_inputs(req: OmniVideoRequest) -> None:
    """The counts every Kling omni-video standard states alike ([omni-video], and
    https://kling.ai/document-api/api/video/3-0-omni/video-omni for the new standard):
    images + elements at most 7, or 4 with a reference video; at most one first frame and one
    end frame.

    Raises:
        ValueError: naming the field, the count and the limit.
    """
    count = len(req.image_list) + len(req.element_list)
    limit = 4 if req.video_list else 7
    if count > limit:
        with_video = " with a reference video" if req.video_list else ""
        raise ValueError(
            f"image_list + element_list: {count} items, at most {limit} allowed{with_video}"
        )
    frames = [image.type for image in req.image_list]
    if frames.count("first_frame") > 1 or frames.count("end_frame") > 1:
        raise ValueError("image_list: at most one first_frame and one end_frame")


def validate_video_request(req: OmniVideoRequest) -> None:
    """Check every documented omni-video rule of the legacy standard ([omni-video],
    [changelog]).

    Raises:
        ValueError: naming the field, the value and the rule.
        TypeError: a field of the wrong type.
    """
    check_video_values(req)
    multi_shot = bool(req.multi_shot)  # unset: the legacy standard's default, false
    o1 = req.model_name == "kling-video-o1"
    has_video = bool(req.video_list)
    first = [im for im in req.image_list if im.type == "first_frame"]
    end = [im for im in req.image_list if im.type == "end_frame"]
    base_video = any(v.refer_type == "base" for v in req.video_list)
    feature_video = any(v.refer_type == "feature" for v in req.video_list)

    # Shots ([omni-video]; 'intelligence' added 03/11/2026 [changelog]).
    if multi_shot:
        if req.shot_type is None:
            raise _fail("shot_type", None, "required when multi_shot is true")
        _one_of("shot_type", req.shot_type, ("customize", "intelligence"))
    elif req.shot_type is not None or req.multi_prompt:
        field = "shot_type" if req.shot_type is not None else "multi_prompt"
        raise _fail(field, getattr(req, field), "only allowed with multi_shot=True")
    if req.shot_type == "customize":
        _check_shots(req)
    elif req.multi_prompt:
        raise _fail("multi_prompt", "...", "only allowed with shot_type='customize'")
    if req.shot_type != "customize" or req.prompt is not None:
        # [omni-video]: prompt required when multi_shot=false or shot_type=intelligence.
        if req.prompt is None:
            raise _fail("prompt", None, "required unless shot_type='customize'")
        _prompt("prompt", req.prompt)

    # Inputs [omni-video] constraints [omni-video].
    if len(req.video_list) > 1:
        raise ValueError(f"video_list: {len(req.video_list)} videos, at most 1 allowed")
    check_video_inputs(req)
    if end and not first:
        raise _fail("image_list", "end_frame", "an end frame needs a first frame")
    if o1 and (first or end) and len(req.image_list) > 2:
        raise ValueError(
            "image_list: kling-video-o1 does not support start/end frames with more than two images"
        )
    if o1 and first and end and req.element_list:
        raise ValueError("element_list: kling-video-o1 takes no elements with start+end frames")
    if (first or end) and len(req.element_list) > 3:
        raise ValueError(
            f"element_list: {len(req.element_list)} elements, at most 3 with frame images"
        )
    if base_video and (first or end):
        raise ValueError("image_list: first/end frames cannot be combined with a base video")
    if base_video and multi_shot:
        raise _fail("multi_shot", True, "not available when editing a base video")
    if feature_video and multi_shot and req.shot_type != "intelligence":
        # [omni-video] [changelog]: feature reference + multi-shot needs shot_type=intelligence.
        raise _fail(
            "shot_type",
            req.shot_type,
            "a feature reference video with multi_shot needs shot_type='intelligence'",
        )
    if o1 and multi_shot and (first or end):
        # Multi-shot + frames allowed since 05/07/2026 for kling-v3-omni only [changelog].
        raise _fail("multi_shot", True, "kling-video-o1 cannot combine multi-shot with frames")

    # Sound, mode, aspect ratio.
    if has_video and req.sound != "off":
        raise _fail("sound", req.sound, "must be 'off' with a reference video")
    if req.mode == "4k":
        if o1:
            raise _fail("mode", "4k", "4k is available on kling-v3-omni only")
        if has_video:
            raise _fail("mode", "4k", "4k is not available with a reference video")
    if first or base_video:
        if req.aspect_ratio is not None:
            raise _fail(
                "aspect_ratio",
                req.aspect_ratio,
                "not supported with a first frame or a base video (the input sets it)",
            )
    elif req.aspect_ratio is None:
        raise _fail("aspect_ratio", None, "required unless a first frame or a base video is given")

    # Duration ([omni-video] Durations [omni-video]).
    if o1:
        _int_in("duration", req.duration, 3, 10)
        # First frame alone: 5 or 10 s. Text-to-video is not held to it: the page's own "Text
        # To Video" example sends "duration": "7" and its FAQ gives 3~10 s; the example wins.
        first_only = bool(first) and len(req.image_list) == 1 and not req.video_list
        if first_only and req.duration not in (5, 10):
            raise _fail("duration", req.duration, "kling-video-o1 first-frame-only accepts 5 or 10")
    else:
        _int_in("duration", req.duration, 3, 15)
    _common(req)


def _check_shots(req: OmniVideoRequest) -> None:
    shots = req.multi_prompt
    if not 1 <= len(shots) <= 6:
        raise ValueError(f"multi_prompt: {len(shots)} shots, 1–6 required for 'customize'")
    for i, shot in enumerate(shots):
        field = f"multi_prompt[{i}]"
        _int_in(f"{field}.index", shot.index, 1, 6)
        _prompt(f"{field}.prompt", shot.prompt, SHOT_PROMPT_MAX)
        if isinstance(shot.duration, bool) or not isinstance(shot.duration, int):
            raise TypeError(f"{field}.duration: {shot.duration!r}, whole seconds")
        if shot.duration < 1:
            raise _fail(f"{field}.duration", shot.duration, "each shot lasts at least 1 s")
    indexes = [s.index for s in shots]
    if len(set(indexes)) != len(indexes):
        raise _fail("multi_prompt", indexes, "shot indexes must be distinct")
    total = sum(s.duration for s in shots)
    if total != req.duration:
        raise ValueError(
            f"multi_prompt: shot durations sum to {total} s, must equal duration {req.duration} s"
        )


def _bad(field: str, name: str, rule: str) -> InvalidInputError:
    return InvalidInputError(f"{field}: {name!r}, {rule}")


def check_local_image(field: str, source: Path | bytes) -> bytes:
    """Read a local reference image and check it against [omni-image]: jpg/jpeg/png, ≤ 10 MB,
    each side ≥ 300 px, aspect ratio between 1:2.5 and 2.5:1.

    Returns:
        The file's bytes.

    Raises:
        InvalidInputError: (a ``ValueError``) naming the field, the file and the broken rule.
    """
    name = str(source) if isinstance(source, Path) else "<bytes>"
    if isinstance(source, Path):
        if source.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            raise _bad(field, name, "must be a .jpg, .jpeg or .png file")
        data = read_local_file(field, source, IMAGE_MAX_BYTES)
    else:
        data = source
    if not (data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8"))):
        raise _bad(field, name, "is not a JPEG or PNG image")
    if len(data) > IMAGE_MAX_BYTES:
        raise _bad(field, name, f"is {len(data)} bytes, at most 10 MB allowed")
    import imagesize  # only where reference bytes are read: ~50 ms off every import

    width, height = imagesize.get(io.BytesIO(data))
    if width <= 0 or height <= 0:
        raise _bad(field, name, "has unreadable dimensions")
    if min(width, height) < IMAGE_MIN_SIDE:
        raise _bad(field, name, f"is {width}×{height} px, each side must be ≥ 300 px")
    if max(width, height) / min(width, height) > IMAGE_MAX_RATIO:
        raise _bad(
            field, name, f"is {width}×{height} px, aspect ratio must be between 1:2.5 and 2.5:1"
        )
    return data


def check_local_video(field: str, source: Path | bytes) -> bytes:
    """Read a local reference video and check [omni-video]: .mp4/.mov, ≤ 200 MB.

    Raises:
        InvalidInputError: (a ``ValueError``) naming the field, the file and the broken rule.
    """
    if isinstance(source, Path):
        if source.suffix.lower() not in (".mp4", ".mov"):
            raise _bad(field, str(source), "must be an .mp4 or .mov file")
        data = read_local_file(field, source, VIDEO_MAX_BYTES)
    else:
        data = source
    name = str(source) if isinstance(source, Path) else "<bytes>"
    if len(data) > VIDEO_MAX_BYTES:
        raise _bad(field, name, f"is {len(data)} bytes, at most 200 MB allowed")
    if data[4:8] not in (b"ftyp", b"moov", b"wide", b"mdat", b"free"):
        raise _bad(field, name, "is not an MP4/MOV file")
    return data
