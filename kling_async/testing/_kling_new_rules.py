"""Strict validation of new-standard omni-video create bodies, from Kling's docs (not the SDK).

The new standard puts the model in the path (``/omni-video/kling-3.0-omni``,
``/omni-video/kling-o1``) and the body in three parts: ``contents[]`` (typed inputs),
``settings{}`` (output) and ``options{}`` (callback, external id, watermark) [3.0-omni] [o1].
Each rule below cites the page it enforces; the first broken one raises
:class:`~._rules.RuleError`, answered HTTP 400, code 1201 with the field named [errors].
Unknown fields are refused at every level, so an encoder that sends a legacy name (``prompt``,
``image_list``, ``model_name``) or a wrong key is caught instead of silently ignored.

Element types (video-character vs multi-image) cannot be told from an ``element_id``, so every
element counts as a multi-image element here (INFERRED); the video-character limits of
[3.0-omni] are therefore not enforced.

Sources:
[3.0-omni] https://kling.ai/document-api/api/video/3-0-omni/video-omni
[o1] https://kling.ai/document-api/api/video/o1/video-omni
[errors] https://kling.ai/document-api/api/get-started/error-codes
[callbacks] https://kling.ai/document-api/api/get-started/callbacks
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._media import image_dimensions, image_format
from ._rules import MAX_IMAGE_RATIO, MIN_IMAGE_SIDE, RuleError, _inline_media, _is_int, _item
from ._rules import _reference_video as _legacy_reference_video

V3_OMNI: Final = "kling-3.0-omni"  # [3.0-omni]
O1: Final = "kling-o1"  # [o1]
NEW_VIDEO_MODELS: Final = (V3_OMNI, O1)
# INFERRED: a new-standard model shares the concurrency pool of the legacy model of the same
# generation ([concurrency] counts per account × model version × pack type).
POOL_OF: Final[dict[str, str]] = {V3_OMNI: "kling-v3-omni", O1: "kling-video-o1"}
MAX_PROMPT: Final[dict[str, int]] = {V3_OMNI: 3072, O1: 2500}  # [3.0-omni] [o1]
MAX_DURATION: Final[dict[str, int]] = {V3_OMNI: 15, O1: 10}  # [3.0-omni] 3–15, [o1] 3–10
AUDIO: Final[dict[str, tuple[str, ...]]] = {
    V3_OMNI: ("native", "original", "off"),  # [3.0-omni]
    O1: ("original", "off"),  # [o1]
}
RESOLUTIONS: Final[dict[str, tuple[str, ...]]] = {
    V3_OMNI: ("720p", "1080p", "4k"),  # [3.0-omni]
    O1: ("720p", "1080p"),  # [o1]: no 4k
}
ASPECT_RATIOS: Final = ("16:9", "9:16", "1:1")  # [3.0-omni] [o1]
MAX_IMAGE_BYTES: Final = 50 * 1024 * 1024  # [3.0-omni] [o1]: an image ≤ 50 MB
IMAGE_TYPES: Final = ("first_frame", "last_frame", "refer_image")
VIDEO_TYPES: Final = ("feature_video", "base_video")
CONTENT_TYPES: Final = ("prompt", *IMAGE_TYPES, *VIDEO_TYPES, "element")  # [3.0-omni] [o1]
_TOP: Final = frozenset({"contents", "settings", "options"})
_SETTINGS: Final = {
    V3_OMNI: frozenset({"multi_shot", "audio", "resolution", "aspect_ratio", "duration"}),
    O1: frozenset({"audio", "resolution", "aspect_ratio", "duration"}),  # [o1]: no multi_shot
}
_OPTIONS: Final = frozenset({"callback_url", "external_task_id", "watermark_info"})
# [3.0-omni]: multi-shot prompt "shot n, m, words;" (1–6 shots, m ≥ 1 s, words ≤ 512 chars)
_SHOT: Final = re.compile(r"\s*shot\s*(\d+)\s*,\s*(\d+)\s*,([^;]*);")
# INFERRED: the vendor's own reference names (@image_1, @video_1, @element_1); other @words are
# plain text ([3.0-omni] warns about "@gmail" in an e-mail address, so those are not refused).
_CONVENTIONAL_REF: Final = re.compile(r"@((?:image|video|element)_\d+)\b")


@attrs.frozen(kw_only=True)
class NewVideoSpec:
    """What the sandbox needs from a valid new-standard omni-video body (defaults applied)."""

    model: str
    duration: int
    resolution: str
    aspect_ratio: str | None
    audio: str
    multi_shot: bool
    watermark: bool
    callback_url: str | None
    external_task_id: str | None
    video_input: bool = False  # a feature_video or base_video in contents


def _object(value: object, name: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise RuleError(f"{name} must be an object, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise RuleError(f"unknown field {unknown[0]!r} in {name}")
    return value


def _choice(settings: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = settings.get(key, default)
    if not isinstance(value, str) or value not in allowed:
        raise RuleError(f"settings.{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _image(value: object, name: str) -> None:
    """[3.0-omni] [o1]: URL or raw base64 of a jpg/png ≤ 50 MB, sides ≥ 300 px, 1:2.5–2.5:1."""
    data = _inline_media(value, name)
    if data is None:
        return
    if len(data) > MAX_IMAGE_BYTES:
        raise RuleError(f"{name} must be at most 50 MB, got {len(data)} bytes")
    size = image_dimensions(data) if image_format(data) is not None else None
    if size is None:  # [3.0-omni]: .jpg / .jpeg / .png
        raise RuleError(f"{name} must be a readable JPEG or PNG image")
    width, height = size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise RuleError(f"{name} must be at least 300 px on each side, got {width}×{height}")
    if max(width, height) > MAX_IMAGE_RATIO * min(width, height):
        raise RuleError(f"{name} aspect ratio must be within 1:2.5 and 2.5:1, got {width}×{height}")


def _contents(raw: object, model: str) -> dict[str, list[dict[str, Any]]]:
    """Check every ``contents[]`` item; return the items by type."""
    if not isinstance(raw, list) or not raw:  # [3.0-omni]: contents required
        raise RuleError("contents must be a non-empty array")
    by_type: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CONTENT_TYPES}
    ids: set[str] = set()
    for i, item in enumerate(raw):
        name = f"contents[{i}]"
        if not isinstance(item, dict):
            raise RuleError(f"{name} must be an object, got {type(item).__name__}")
        kind = item.get("type")
        if kind not in CONTENT_TYPES:
            raise RuleError(f"{name}.type must be one of {', '.join(CONTENT_TYPES)}, got {kind!r}")
        if kind == "prompt":  # [3.0-omni]: {type, text}
            _item(item, name, {"type", "text"}, set())
            limit = MAX_PROMPT[model]  # [3.0-omni] ≤ 3072, [o1] ≤ 2500 characters
            text = item["text"]
            if not isinstance(text, str) or not 1 <= len(text) <= limit:
                got = len(text) if isinstance(text, str) else type(text).__name__
                raise RuleError(
                    f"{name}.text must be a string of 1 to {limit} characters, got {got}"
                )
        elif kind == "element":  # [3.0-omni]: {type, element_id: string, id: required}
            _item(item, name, {"type", "element_id", "id"}, set())
            if not isinstance(item["element_id"], str) or not item["element_id"]:
                raise RuleError(
                    f"{name}.element_id must be a non-empty string, got {item['element_id']!r}"
                )
        else:  # [3.0-omni]: {type, url (URL or base64), id?}
            _item(item, name, {"type", "url"}, {"id"})
            if kind in IMAGE_TYPES:
                _image(item["url"], f"{name}.url")
            else:
                _legacy_reference_video(item["url"], f"{name}.url")
        if "id" in item:
            ident = item["id"]
            # [3.0-omni]: "used to specify in prompt", "must not be duplicated" in one task
            if not isinstance(ident, str) or not ident or any(c.isspace() for c in ident):
                raise RuleError(f"{name}.id must be a non-empty string without spaces")
            if ident in ids:
                raise RuleError(f"{name}.id {ident!r} is used twice in contents")
            ids.add(ident)
        by_type[kind].append(item)
    if len(by_type["prompt"]) != 1:
        # INFERRED: every vendor example has exactly one prompt item (legacy: prompt required)
        raise RuleError(f"contents must have exactly 1 prompt item, got {len(by_type['prompt'])}")
    text = by_type["prompt"][0]["text"]
    for ref in _CONVENTIONAL_REF.findall(text):
        if ref not in ids:  # [3.0-omni]: @id names an item of contents (INFERRED: refused)
            raise RuleError(
                f"contents prompt text refers to @{ref}, but no contents item has that id"
            )
    return by_type


def _counts(by: Mapping[str, list[dict[str, Any]]], model: str) -> None:
    """The count matrices of [3.0-omni] and [o1] (elements counted as multi-image elements)."""
    for kind in ("first_frame", "last_frame"):
        if len(by[kind]) > 1:
            raise RuleError(f"contents may have at most 1 {kind} item, got {len(by[kind])}")
    if by["last_frame"] and not by["first_frame"]:  # [3.0-omni]: "last frame only" unsupported
        raise RuleError("contents last_frame requires a first_frame")
    videos = len(by["feature_video"]) + len(by["base_video"])
    if videos > 1:  # [3.0-omni] [o1]: maximum 1 reference video
        raise RuleError(f"contents may have at most 1 feature_video/base_video, got {videos}")
    images = sum(len(by[kind]) for kind in IMAGE_TYPES)
    elements = len(by["element"])
    limit = 4 if videos else 7  # [3.0-omni] [o1]: images + multi-image elements ≤ 7, ≤ 4 w/ video
    if images + elements > limit:
        raise RuleError(
            f"contents images and elements together must be at most {limit}"
            f"{' with a reference video' if videos else ''}, got {images + elements}"
        )
    if by["base_video"] and (by["first_frame"] or by["last_frame"]):
        # [3.0-omni] [o1]: a base video (to edit) takes no first or last frame
        raise RuleError("contents base_video cannot be combined with first_frame/last_frame")
    if by["first_frame"] and elements > 3 and model == V3_OMNI:
        # [3.0-omni]: with a first frame (or first + last) at most 3 elements
        raise RuleError(f"contents may have at most 3 elements with a first_frame, got {elements}")
    if model == O1 and by["first_frame"] and by["last_frame"]:
        if by["refer_image"]:  # [o1]: first + last frame takes no more reference images
            raise RuleError("contents refer_image is not supported with first_frame + last_frame")
        if elements:  # [o1]: first + last frame takes no elements
            raise RuleError("contents element is not supported with first_frame + last_frame")
    if model == O1 and by["feature_video"] and by["last_frame"]:
        # [o1]: with a feature video only the first frame may be defined
        raise RuleError("contents last_frame is not supported with a feature_video on kling-o1")


def _multi_shot_prompt(text: str, duration: int) -> None:
    """[3.0-omni]: "shot n, m, words;" — 1–6 shots numbered 1.., each ≥ 1 s and ≤ 512 chars,
    durations adding up to the video's."""
    shots = []
    position = 0
    while match := _SHOT.match(text, position):
        shots.append(match)
        position = match.end()
    if text[position:].strip():
        raise RuleError("contents prompt text: a multi-shot prompt is 'shot n, m, words;' only")
    if not 1 <= len(shots) <= 6:
        raise RuleError(f"contents prompt text must have 1 to 6 shots, got {len(shots)}")
    total = 0
    for number, shot in enumerate(shots, start=1):
        if int(shot[1]) != number:
            raise RuleError(f"contents prompt text: shot {shot[1]} should be shot {number}")
        if int(shot[2]) < 1:
            raise RuleError(f"contents prompt text: shot {number} must last at least 1 second")
        if len(shot[3].strip()) > 512:
            raise RuleError(f"contents prompt text: shot {number} words exceed 512 characters")
        total += int(shot[2])
    if total != duration:
        raise RuleError(f"contents prompt text: shot durations add up to {total}, not {duration}")


def _options(raw: object) -> tuple[bool, str | None, str | None]:
    """``options{}`` [3.0-omni]: callback_url, external_task_id, watermark_info{enabled}."""
    options = _object(raw, "options", _OPTIONS)
    watermark = False
    if "watermark_info" in options:  # [3.0-omni]: {enabled: bool}; no custom watermark
        info = _object(options["watermark_info"], "options.watermark_info", frozenset({"enabled"}))
        watermark = info.get("enabled", False)
        if not isinstance(watermark, bool):
            raise RuleError(f"options.watermark_info.enabled must be a boolean, got {watermark!r}")
    callback_url = options.get("callback_url")
    if callback_url is not None and (  # [callbacks]: a URL the server POSTs to
        not isinstance(callback_url, str) or not callback_url.startswith(("http://", "https://"))
    ):
        raise RuleError(f"options.callback_url must be an http(s) URL, got {callback_url!r}")
    external = options.get("external_task_id")
    if external is not None and not isinstance(external, str):
        raise RuleError(f"options.external_task_id must be a string, got {external!r}")
    # INFERRED: every vendor example sends "external_task_id": "" for "none"
    return watermark, callback_url or None, external or None


def check_new_video(model: str, raw: object) -> NewVideoSpec:
    """Validate a new-standard omni-video body for ``model`` ([3.0-omni] or [o1]).

    Raises:
        RuleError: the first broken rule, naming the field.
    """
    body = _object(raw, "the request body", _TOP)
    if "contents" not in body:
        raise RuleError("contents is required")
    by = _contents(body["contents"], model)
    _counts(by, model)
    settings = _object(body.get("settings", {}), "settings", _SETTINGS[model])
    if "multi_shot" in settings and not isinstance(settings["multi_shot"], bool):
        raise RuleError(f"settings.multi_shot must be a boolean, got {settings['multi_shot']!r}")
    # [3.0-omni]: multi_shot defaults to true; [o1] has no multi-shot
    multi_shot = bool(settings.get("multi_shot", True)) if model == V3_OMNI else False
    audio = _choice(settings, "audio", AUDIO[model], "off")
    resolution = _choice(settings, "resolution", RESOLUTIONS[model], "720p")
    has_video = bool(by["feature_video"] or by["base_video"])
    # [3.0-omni] [o1]: the field table's default is 16:9 and the pages' own examples leave it
    # out ("Only prompt") or send it with a first frame or a reference video, although a note
    # calls it required without them: the examples and the default win, so it is never refused.
    aspect_ratio = _choice(settings, "aspect_ratio", ASPECT_RATIOS, "16:9")
    duration = settings.get("duration", 5)  # [3.0-omni]: int, default 5
    high = MAX_DURATION[model]
    if not _is_int(duration) or not 3 <= duration <= high:
        raise RuleError(f"settings.duration must be an integer 3 to {high}, got {duration!r}")
    first_frame_only = by["first_frame"] and not by["refer_image"] and not has_video
    if model == O1 and first_frame_only and not by["last_frame"] and duration not in (5, 10):
        # [o1]: first frame without other reference images or videos → 5 or 10 s only
        raise RuleError(f"settings.duration must be 5 or 10 from a first frame, got {duration}")
    if by["feature_video"] and model == V3_OMNI:
        if not multi_shot:  # [3.0-omni]: a feature video ⇒ multi_shot can only be true
            raise RuleError("settings.multi_shot must be true with a feature_video")
        if audio != "off":  # [3.0-omni]: a feature video ⇒ audio can only be off
            raise RuleError(f"settings.audio must be off with a feature_video, got {audio!r}")
    if by["base_video"]:
        if multi_shot:  # [3.0-omni]: a base video ⇒ no multi-shot (the default true is refused)
            raise RuleError("settings.multi_shot must be false with a base_video")
        if audio == "native":  # [3.0-omni]: a base video ⇒ audio cannot be native
            raise RuleError("settings.audio cannot be native with a base_video")
    text = by["prompt"][0]["text"]
    if multi_shot and re.match(r"\s*shot\s*\d", text):
        _multi_shot_prompt(text, duration)
    watermark, callback_url, external = _options(body.get("options", {}))
    return NewVideoSpec(
        model=model,
        duration=duration,
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        audio=audio,
        multi_shot=multi_shot,
        watermark=watermark,
        callback_url=callback_url,
        external_task_id=external,
        video_input=has_video,
    )
