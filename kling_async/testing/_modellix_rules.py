"""Strict validation of raw Modellix submit bodies, written from Modellix's docs (not the SDK).

Each rule cites the Modellix page it enforces ([modellix-v3-image]
kling-v3-omni-image, [modellix-v3-video] kling-v3-omni-video, [modellix-video-o1] kling-video-o1,
[modellix-image-o1] kling-image-o1) and the
source behind it. Modellix bodies are flat: media are plain string lists (``images``,
``videos``, ``element_ids``), and the model is chosen by the URL, never by a body field
([modellix-api], [modellix-v3-image]).

The first broken rule raises :class:`ModellixRuleError`; the server answers it HTTP 400 with
``{"code": 400, "message": "Invalid parameters: parameter '<field>' ..."}`` ([modellix-errors],
whose example
is ``Invalid parameters: parameter 'prompt' is required``).

Unknown fields are refused, naming the field. INFERRED: the reference says nothing about
unknown fields except kling-image-o1's explicit "not supported" list [modellix-image-o1]; a strict
sandbox
refuses them all so that a wrongly named or Kling-native field (``model_name``, ``image_list``,
``callback_url``, ...) is caught instead of silently ignored.

Sources:
[modellix-v3-image] https://docs.modellix.ai/kling/kling-v3-omni-image
[modellix-v3-video] https://docs.modellix.ai/kling/kling-v3-omni-video
[modellix-video-o1] https://docs.modellix.ai/kling/kling-video-o1
[modellix-image-o1] https://docs.modellix.ai/kling/kling-image-o1
[modellix-api] https://docs.modellix.ai/ways-to-use/api
[modellix-errors] https://docs.modellix.ai/how-to-use/error-handling
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from ._state import Kind

# [modellix-api], [modellix-v3-image]: the four Kling omni model ids of the submit path.
MODELS: Final[dict[str, Kind]] = {
    "kling-v3-omni-image": "image",  # [modellix-v3-image]
    "kling-image-o1": "image",  # [modellix-image-o1]
    "kling-v3-omni-video": "video",  # [modellix-v3-video]
    "kling-video-o1": "video",  # [modellix-video-o1]
}
MAX_PROMPT: Final = 2500  # [modellix-v3-image]–[modellix-image-o1]: prompt 1–2500 characters
IMAGE_ASPECT_RATIOS: Final = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9", "auto")
VIDEO_ASPECT_RATIOS: Final = ("16:9", "9:16", "1:1")
MAX_REFERENCES: Final = 10  # [modellix-v3-image], [modellix-image-o1]: images + element_ids ≤ 10

_V3_IMAGE_FIELDS: Final = frozenset(
    {
        "prompt",
        "images",
        "element_ids",
        "resolution",
        "result_type",
        "n",
        "series_amount",
        "aspect_ratio",
    }
)
# [modellix-image-o1]: prompt, images, resolution, aspect_ratio, n. element_ids is a GAP there;
# INFERRED: accepted as the flattened form of the old page's element_list [modellix-image-o1].
_O1_IMAGE_FIELDS: Final = frozenset(
    {"prompt", "images", "element_ids", "resolution", "aspect_ratio", "n"}
)
# [modellix-image-o1]: explicitly not supported by kling-image-o1.
_O1_NOT_SUPPORTED: Final = frozenset(
    {
        "negative_prompt",
        "image",
        "image_reference",
        "image_fidelity",
        "human_fidelity",
        "subject_image_list",
        "scene_image",
        "style_image",
    }
)
# [modellix-v3-video] / [modellix-video-o1]: the same field set for both video models.
_VIDEO_FIELDS: Final = frozenset(
    {
        "prompt",
        "multi_shot",
        "shot_type",
        "images",
        "videos",
        "sound",
        "mode",
        "aspect_ratio",
        "duration",
    }
)
# Kling-native names with a flat Modellix counterpart [modellix-api]: named in the error as a hint.
_NATIVE_NAMES: Final = {
    "image_list": "images",
    "element_list": "element_ids",
    "video_list": "videos",
}
# INFERRED ([modellix-v3-video] gives an example of 8 but no default): a missing duration runs 5 s,
# the native
# Kling default, which is also valid for kling-video-o1 [modellix-video-o1].
DEFAULT_VIDEO_SECONDS: Final = 5


class ModellixRuleError(ValueError):
    """A submit body broke a documented rule (answered HTTP 400, [modellix-errors])."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid parameters: {detail}")


class ModellixFormatError(ValueError):
    """The body is not a JSON object at all (answered HTTP 400, [modellix-errors])."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid format: {detail}")


@attrs.frozen(kw_only=True)
class ModellixSpec:
    """What the sandbox needs from a valid submit body (defaults applied).

    Attributes:
        model_id: The model of the submit path, e.g. ``"kling-v3-omni-image"``.
        kind: ``"image"`` or ``"video"``.
        cost: Team concurrency slots the task holds (INFERRED from native Kling,  /
            [modellix-api]): ``n`` (single), ``series_amount`` (series) or 1 (video).
        result_type: ``"single"`` or ``"series"`` for images, None for videos.
        resolution: ``1k`` / ``2k`` / ``4k`` for images, None for videos.
        video_seconds: Output length in seconds for videos, None for images.
    """

    model_id: str
    kind: Kind
    cost: int
    result_type: Literal["single", "series"] | None
    resolution: str | None
    video_seconds: int | None


# --- small typed readers -------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fields(body: Mapping[str, Any], allowed: frozenset[str], model: str) -> None:
    for key in sorted(body):
        if key in allowed:
            continue
        if model == "kling-image-o1" and key in _O1_NOT_SUPPORTED:
            # [modellix-image-o1]: explicitly not supported by kling-image-o1
            raise ModellixRuleError(f"parameter {key!r} is not supported by {model}")
        hint = _NATIVE_NAMES.get(key)
        if hint is not None and hint in allowed:
            # [modellix-v3-image], [modellix-api]: media lists are flattened on Modellix
            raise ModellixRuleError(
                f"parameter {key!r} is not supported by {model}; use {hint!r} (a flat list)"
            )
        # INFERRED (module docstring): unknown fields are refused, naming the field
        raise ModellixRuleError(f"parameter {key!r} is not supported by {model}")


def _enum(body: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or value not in allowed:
        raise ModellixRuleError(
            f"parameter {key!r} must be one of {', '.join(allowed)}, got {value!r}"
        )
    return value


def _prompt(body: Mapping[str, Any]) -> None:
    if "prompt" not in body:  # [modellix-errors]: the documented example message
        raise ModellixRuleError("parameter 'prompt' is required")
    value = body["prompt"]
    if not isinstance(value, str):
        raise ModellixRuleError(f"parameter 'prompt' must be a string, got {type(value).__name__}")
    # [modellix-v3-image]–[modellix-image-o1]: 1–2500 characters
    if not 1 <= len(value) <= MAX_PROMPT:
        raise ModellixRuleError(
            f"parameter 'prompt' must have 1 to {MAX_PROMPT} characters, got {len(value)}"
        )


def _int_in(body: Mapping[str, Any], key: str, low: int, high: int, default: int) -> int:
    value = body.get(key, default)
    if not _is_int(value) or not low <= value <= high:
        raise ModellixRuleError(
            f"parameter {key!r} must be an integer in [{low}, {high}], got {value!r}"
        )
    return int(value)


def _media(value: object, name: str) -> None:
    """[modellix-v3-image] / [modellix-v3-video]: each item is a URL or Base64 data.

    INFERRED: "Base64" is accepted raw or as a ``data:<type>;base64,`` URI (the old
    kling-image-o1 page [modellix-image-o1] shows the data-URI form); anything else is refused.
    """
    if not isinstance(value, str) or not value:  # [modellix-v3-image]: each item has length ≥ 1
        raise ModellixRuleError(f"parameter {name!r} must be a non-empty string (URL or Base64)")
    if value.startswith(("http://", "https://")):
        return
    payload = value
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or not header.endswith(";base64"):
            raise ModellixRuleError(f"parameter {name!r} is a data URI without ';base64,'")
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ModellixRuleError(
            f"parameter {name!r} is neither an http(s) URL nor Base64"
        ) from None
    if not payload:
        raise ModellixRuleError(f"parameter {name!r} has empty Base64 data")


def _string_list(body: Mapping[str, Any], key: str, *, low: int, high: int | None) -> list[Any]:
    if key not in body:
        return []
    value = body[key]
    if not isinstance(value, list):
        raise ModellixRuleError(f"parameter {key!r} must be an array, got {type(value).__name__}")
    if len(value) < low or (high is not None and len(value) > high):
        span = (
            f"exactly {low}"
            if high == low
            else (f"{low} to {high}" if high is not None else f"at least {low}")
        )
        raise ModellixRuleError(f"parameter {key!r} must have {span} items, got {len(value)}")
    for i, item in enumerate(value):
        _media(item, f"{key}[{i}]")
    return value


def _element_ids(body: Mapping[str, Any]) -> list[Any]:
    if "element_ids" not in body:
        return []
    value = body["element_ids"]
    if not isinstance(value, list):
        raise ModellixRuleError(
            f"parameter 'element_ids' must be an array, got {type(value).__name__}"
        )
    if len(value) > MAX_REFERENCES:  # [modellix-v3-image]: at most 10
        raise ModellixRuleError(
            f"parameter 'element_ids' must have at most {MAX_REFERENCES} items, got {len(value)}"
        )
    for i, item in enumerate(value):
        # [modellix-v3-image] /  GAP: item type not stated; native Kling ids are
        # longs. INFERRED: a positive integer, or a non-empty string of digits, is accepted.
        good_int = _is_int(item) and item > 0
        good_str = isinstance(item, str) and item.isdigit() and item != "0" * len(item)
        if not (good_int or good_str):
            raise ModellixRuleError(
                f"parameter 'element_ids[{i}]' must be a positive integer id, got {item!r}"
            )
    return value


def _body(raw: object) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        # [modellix-errors]: "Invalid format" is the category of a malformed body
        raise ModellixFormatError(
            f"the request body must be a JSON object, got {type(raw).__name__}"
        )
    return raw


# --- images ------------------------------------------------------------------------------


def _check_image(model: str, body: Mapping[str, Any]) -> ModellixSpec:
    v3 = model == "kling-v3-omni-image"
    _fields(body, _V3_IMAGE_FIELDS if v3 else _O1_IMAGE_FIELDS, model)
    _prompt(body)
    # [modellix-v3-image]: images 1–10 items; [modellix-image-o1]: at most 10
    images = _string_list(body, "images", low=1 if v3 else 0, high=MAX_REFERENCES)
    elements = _element_ids(body)
    if len(images) + len(elements) > MAX_REFERENCES:
        # [modellix-v3-image] / [modellix-image-o1]: images + element_ids ≤ 10 together
        raise ModellixRuleError(
            f"parameter 'images' and 'element_ids' together must have at most "
            f"{MAX_REFERENCES} items, got {len(images) + len(elements)}"
        )
    # [modellix-v3-image]: 1k/2k/4k (default INFERRED 1k); [modellix-image-o1]: 1k/2k, default 1k
    resolution = _enum(body, "resolution", ("1k", "2k", "4k") if v3 else ("1k", "2k"), "1k")
    # [modellix-v3-image] / [modellix-image-o1]: nine ratios, default auto
    _enum(body, "aspect_ratio", IMAGE_ASPECT_RATIOS, "auto")
    if not v3:
        n = _int_in(body, "n", 1, 9, 1)  # [modellix-image-o1]: n 1–9, default 1
        return ModellixSpec(
            model_id=model,
            kind="image",
            cost=n,
            result_type="single",
            resolution=resolution,
            video_seconds=None,
        )
    # [modellix-v3-image]: single | series (default INFERRED single, the native one)
    result_type = _enum(body, "result_type", ("single", "series"), "single")
    if result_type == "series":
        if "n" in body:  # [modellix-v3-image]: "when result_type=series, omit n"
            raise ModellixRuleError("parameter 'n' must be omitted when result_type is series")
        if "series_amount" not in body:  # [modellix-v3-image]: series "provide series_amount"
            raise ModellixRuleError(
                "parameter 'series_amount' is required when result_type is series"
            )
        # [modellix-v3-image]: 2 ≤ series_amount ≤ 9 (no "auto" on Modellix)
        amount = _int_in(body, "series_amount", 2, 9, 0)
        return ModellixSpec(
            model_id=model,
            kind="image",
            cost=amount,  # INFERRED ([modellix-api] / native ): a series holds series_amount slots
            result_type="series",
            resolution=resolution,
            video_seconds=None,
        )
    # [modellix-v3-image]: "when result_type=single, omit series_amount"
    if "series_amount" in body:
        raise ModellixRuleError(
            "parameter 'series_amount' must be omitted when result_type is single"
        )
    n = _int_in(body, "n", 1, 9, 1)  # [modellix-v3-image]: 1 ≤ n ≤ 9
    return ModellixSpec(
        model_id=model,
        kind="image",
        cost=n,  # INFERRED ([modellix-api] / native ): an image task holds n slots
        result_type="single",
        resolution=resolution,
        video_seconds=None,
    )


# --- videos ------------------------------------------------------------------------------


def _check_video(model: str, body: Mapping[str, Any]) -> ModellixSpec:
    _fields(body, _VIDEO_FIELDS, model)
    _prompt(body)  # [modellix-v3-video]: prompt always required, even multi_shot
    multi_shot = body.get("multi_shot", False)
    if not isinstance(multi_shot, bool):  # [modellix-v3-video]: bool, default false
        raise ModellixRuleError(f"parameter 'multi_shot' must be a boolean, got {multi_shot!r}")
    if multi_shot:
        if "shot_type" not in body:  # [modellix-v3-video]: required when multi_shot is true
            raise ModellixRuleError("parameter 'shot_type' is required when multi_shot is true")
        # [modellix-v3-video]: only "intelligence" (customize is not exposed)
        _enum(body, "shot_type", ("intelligence",), "intelligence")
    elif "shot_type" in body:  # [modellix-v3-video]: omit when multi_shot is false
        raise ModellixRuleError("parameter 'shot_type' must be omitted when multi_shot is false")
    # [modellix-v3-video]: images optional, at least 1 item when present
    _string_list(body, "images", low=1, high=None)
    # [modellix-v3-video]: videos holds exactly 1 item when present
    videos = _string_list(body, "videos", low=1, high=1)
    sound = _enum(body, "sound", ("on", "off"), "off")  # [modellix-v3-video]: default off
    if videos and sound != "off":  # [modellix-v3-video] / [modellix-video-o1]: off with videos
        raise ModellixRuleError("parameter 'sound' must be off when videos is provided")
    _enum(body, "mode", ("std", "pro"), "pro")  # [modellix-v3-video]: default pro
    # [modellix-v3-video]: 16:9 | 9:16 | 1:1 (optional; no default documented)
    _enum(body, "aspect_ratio", VIDEO_ASPECT_RATIOS, "16:9")
    if videos:
        if "duration" in body:  # [modellix-v3-video] / [modellix-video-o1]: omit with videos
            raise ModellixRuleError("parameter 'duration' must be omitted when videos is provided")
        # INFERRED: the output follows the reference clip, whose length the sandbox does not
        # read; it reports the default length.
        seconds = DEFAULT_VIDEO_SECONDS
    else:
        # [modellix-v3-video]: an integer 3–15 (a JSON number, not a string)
        seconds = _int_in(body, "duration", 3, 15, DEFAULT_VIDEO_SECONDS)
        if model == "kling-video-o1" and seconds not in (5, 10):
            # [modellix-video-o1]: without videos only 5 or 10 is accepted
            raise ModellixRuleError(
                f"parameter 'duration' must be 5 or 10 for {model} without videos, got {seconds}"
            )
    return ModellixSpec(
        model_id=model,
        kind="video",
        cost=1,  # INFERRED ([modellix-api] / native ): a video task holds 1 slot
        result_type=None,
        resolution=None,
        video_seconds=seconds,
    )


def check_modellix(model: str, raw: object) -> ModellixSpec:
    """Validate the submit body ``raw`` (parsed JSON) for path model ``model``.

    Args:
        model: One of :data:`MODELS` (the caller answers 404 for others).
        raw: The parsed JSON body, exactly as received.

    Returns:
        The normalised spec (defaults applied).

    Raises:
        ModellixFormatError: the body is not a JSON object.
        ModellixRuleError: the first broken field rule, naming the field.
        KeyError: ``model`` is not a known model.
    """
    body = _body(raw)
    if MODELS[model] == "image":
        return _check_image(model, body)
    return _check_video(model, body)
