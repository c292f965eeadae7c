"""Which request rules apply: chosen by the wire API a request goes to.

The request models keep one shape for every wire API; building one checks only that shape
(:func:`check_image_shape`, :func:`check_video_shape`: types, the values a field can take, and
the few limits every API states alike). The rules of one API run when a request is about to go
to it (:func:`check_for`, called by the codecs' ``check``, by the client before anything is sent
and by the command line for every campaign line): each API refuses only what its own pages say
it refuses. Where a page contradicts itself (a note calls a field required, its field table
gives a default, its own example leaves it out) the example and the default win, and the server
decides.

- ``"kling-legacy"``: Kling's legacy standard, ``POST /v1/images/omni-image`` [omni-image],
  ``POST /v1/videos/omni-video`` [omni-video] (:mod:`._validate`).
- ``"kling-new"``: Kling's new standard, ``POST /omni-video/kling-3.0-omni`` [omni-video-3] and
  ``/omni-video/kling-o1`` [o1]; images stay on the legacy standard.
- ``"modellix"``: Modellix's pages only [modellix-v3-image] [modellix-image-o1]
  [modellix-v3-video] [modellix-video-o1]; Kling's native capability map does not bind them.

Sources:
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[omni-video] https://kling.ai/document-api (omni-video; legacy POST /v1/videos/omni-video)
[omni-video-3] https://kling.ai/document-api/api/video/3-0-omni/video-omni
[o1] https://kling.ai/document-api/api/video/o1/video-omni
[modellix-v3-image] https://docs.modellix.ai/kling/kling-v3-omni-image
[modellix-image-o1] https://docs.modellix.ai/kling/kling-image-o1
[modellix-v3-video] https://docs.modellix.ai/kling/kling-v3-omni-video
[modellix-video-o1] https://docs.modellix.ai/kling/kling-video-o1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .._errors import InvalidInputError
from ._validate import (
    _check_shots,
    _common,
    _fail,
    _int_in,
    _one_of,
    _prompt,
    check_video_inputs,
    check_video_values,
    validate_image_request,
    validate_video_request,
)

if TYPE_CHECKING:
    from .._models import OmniImageRequest, OmniVideoRequest, Request

__all__ = [
    "API",
    "check_for",
    "check_image_shape",
    "check_video_shape",
    "refuse_for",
]

API = Literal["kling-legacy", "kling-new", "modellix"]

_NAMES = {
    "kling-legacy": "Kling's legacy-standard API",
    "kling-new": "Kling's new-standard API",
    "modellix": "Modellix",
}
NEW_PROMPT_MAX = 3072  # [omni-video-3]: ≤ 3072 characters (2500 recommended)
O1_PROMPT_MAX = 2500  # [o1]
MODELLIX_PROMPT_MAX = 2500  # [modellix-v3-video] [modellix-video-o1]: 1–2500


def check_image_shape(req: OmniImageRequest) -> None:
    """What every omni-image API states alike ([omni-image], [modellix-v3-image],
    [modellix-image-o1]): types, values, prompt 1–2500, ``n`` 1–9, ``series_amount`` 2–9 or
    ``auto``, images + elements ≤ 10, ``kling-image-o1`` 1k/2k and single only.

    Raises:
        ValueError: naming the field, the value and the rule.
        TypeError: a field of the wrong type.
    """
    validate_image_request(req, native=False)


def check_video_shape(req: OmniVideoRequest) -> None:
    """Types and values of an omni-video request, the same for every API: the model, ``sound``
    (``on``/``off``), ``mode`` (``std``/``pro``/``4k``), ``aspect_ratio`` (16:9, 9:16, 1:1 or
    unset), ``multi_shot`` (a bool or unset), ``shot_type``, ``duration`` an integer, at most one
    reference video (every page: one video), a prompt non-empty when given. Limits that differ
    between APIs (prompt length, durations, frames, counts) are :func:`check_for`'s.

    Raises:
        ValueError: naming the field, the value and the rule.
        TypeError: a field of the wrong type.
    """
    check_video_values(req)
    if req.shot_type is not None:
        _one_of("shot_type", req.shot_type, ("customize", "intelligence"))
    if isinstance(req.duration, bool) or not isinstance(req.duration, int):
        raise TypeError(f"duration: {req.duration!r}, must be an integer (seconds)")
    if req.prompt is not None:
        _prompt("prompt", req.prompt, max(NEW_PROMPT_MAX, MODELLIX_PROMPT_MAX))
    for i, image in enumerate(req.image_list):
        _one_of(f"image_list[{i}].type", image.type, ("first_frame", "end_frame", None))
    for i, video in enumerate(req.video_list):
        _one_of(f"video_list[{i}].refer_type", video.refer_type, ("base", "feature"))
        _one_of(
            f"video_list[{i}].keep_original_sound", video.keep_original_sound, ("yes", "no", None)
        )
    if len(req.video_list) > 1:
        raise ValueError(f"video_list: {len(req.video_list)} videos, at most 1 allowed")
    _common(req)


def check_for(api: API, request: Request) -> None:
    """Check ``request`` against the rules of wire API ``api`` (see the module docstring).

    Raises:
        ValueError: a rule of that API is broken; the message names the field, the value and
            the rule.
        TypeError: a field of the wrong type.
    """
    if request.kind == "image":
        validate_image_request(request, native=api != "modellix")  # type: ignore[arg-type]
    elif api == "kling-legacy":
        validate_video_request(request)  # type: ignore[arg-type]
    elif api == "kling-new":
        _new_video(request)  # type: ignore[arg-type]
    else:
        _modellix_video(request)  # type: ignore[arg-type]


def refuse_for(api: API, request: Request) -> None:
    """:func:`check_for`, its refusal raised as :class:`InvalidInputError` (what a codec's
    ``check`` raises, so a refused request of a stream ends as an outcome, not a crash).

    Raises:
        InvalidInputError: (a ``ValueError``) naming the field, the value and the rule.
    """
    try:
        check_for(api, request)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{exc} on {_NAMES[api]}") from exc


def _new_video(req: OmniVideoRequest) -> None:
    """Kling's new standard, [omni-video-3] for 3.0 Omni and [o1] for O1."""
    check_video_shape(req)
    o1 = req.model_name == "kling-video-o1"
    name = "kling-o1" if o1 else "kling-3.0-omni"
    first = [im for im in req.image_list if im.type == "first_frame"]
    last = [im for im in req.image_list if im.type == "end_frame"]
    refer = [im for im in req.image_list if im.type is None]
    base = any(v.refer_type == "base" for v in req.video_list)
    feature = any(v.refer_type == "feature" for v in req.video_list)
    original = any(v.keep_original_sound == "yes" for v in req.video_list)

    # contents[].type.prompt: 3.0 Omni ≤ 3072 characters, O1 ≤ 2500.
    if req.prompt is not None:
        _prompt("prompt", req.prompt, O1_PROMPT_MAX if o1 else NEW_PROMPT_MAX)
    # settings.multi_shot exists on 3.0 Omni only (default true); shots are written in the
    # prompt ("shot n, m, words;", 1–6 shots, ≥ 1 s, ≤ 512 characters, summing to duration).
    if o1 and (req.multi_shot or req.shot_type is not None or req.multi_prompt):
        raise _fail("multi_shot", True, f"{name} has no multi-shot setting")
    if req.shot_type == "customize":
        _check_shots(req)
    elif req.multi_prompt:
        raise _fail("multi_prompt", "...", "only allowed with shot_type='customize'")
    if req.prompt is None and req.shot_type != "customize":
        raise _fail("prompt", None, "required unless the shots are given (multi_prompt)")

    # Images, elements and the reference video (contents[].type.*).
    check_video_inputs(req)
    if last and not first:
        raise _fail("image_list", "end_frame", "'last frame only' is not supported")
    if base and (first or last):
        raise ValueError("image_list: a base video does not take a first or last frame")
    if o1 and feature and last:
        raise _fail("image_list", "end_frame", "with a feature video only a first frame is taken")
    if o1 and first and last and (refer or req.element_list):
        raise ValueError(
            "image_list, element_list: kling-o1 takes no other images or elements with first"
            " and last frames"
        )
    if not o1 and first and len(req.element_list) > 3:
        raise ValueError(
            f"element_list: {len(req.element_list)} elements, at most 3 with frame images"
        )

    # settings.multi_shot, settings.audio, settings.resolution.
    if not o1 and feature and req.multi_shot is False:
        raise _fail("multi_shot", False, "with a feature video, multi_shot can only be true")
    if not o1 and base and req.multi_shot:
        raise _fail("multi_shot", True, "a base video does not take multi-shot")
    if req.sound == "on" and (o1 or req.video_list):
        rule = "kling-o1 has audio 'original' or 'off' only" if o1 else "no native audio"
        raise _fail("sound", "on", rule if o1 else f"with a reference video, {rule}")
    if feature and original and not o1:
        raise _fail("keep_original_sound", "yes", "with a feature video, audio can only be 'off'")
    if o1 and req.mode == "4k":
        raise _fail("mode", "4k", "kling-o1 has 720p and 1080p only")

    # settings.duration: 3.0 Omni 3–15; O1 3–10, and 5 or 10 from a first frame alone.
    if o1:
        _int_in("duration", req.duration, 3, 10)
        first_only = len(req.image_list) == 1 and first and not req.video_list
        if first_only and req.duration not in (5, 10):
            raise _fail("duration", req.duration, "kling-o1 from a first frame alone: 5 or 10")
    else:
        _int_in("duration", req.duration, 3, 15)


def _modellix_video(req: OmniVideoRequest) -> None:
    """Modellix's pages [modellix-v3-video] [modellix-video-o1]: prompt always required;
    ``multi_shot=true`` needs ``shot_type='intelligence'``, false takes none; with ``videos``
    sound is off (and the duration is left out of the body); without, 3–15 s (O1: 5 or 10)."""
    check_video_shape(req)
    if req.prompt is None:
        raise _fail("prompt", None, "required on Modellix")
    _prompt("prompt", req.prompt, MODELLIX_PROMPT_MAX)
    if req.multi_shot:
        if req.shot_type is None:
            raise _fail("shot_type", None, "required when multi_shot is true")
    elif req.shot_type is not None:
        raise _fail("shot_type", req.shot_type, "only allowed with multi_shot=True")
    if req.video_list:
        if req.sound != "off":
            raise _fail("sound", req.sound, "must be 'off' when videos is given")
    elif req.model_name == "kling-video-o1":
        if req.duration not in (5, 10):
            raise _fail("duration", req.duration, "kling-video-o1 without videos: 5 or 10")
    else:
        _int_in("duration", req.duration, 3, 15)
