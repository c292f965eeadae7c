"""Vendors' JSON create bodies → request keyword arguments (the inverse of the codecs' bodies).

Users copy bodies from the vendors' pages; this module reads them as written there:

- Kling's native omni-image body, https://kling.ai/document-api/api/image/3-0-omni/image-omni:
  ``image_list`` items ``{"image": …}``, ``element_list`` items ``{"element_id": 160}`` (the
  quoted ``"160"`` of some doc examples too), ``watermark_info: {"enabled": …}``,
  ``series_amount`` an int or ``"auto"``.
- Kling's legacy omni-video body (``POST /v1/videos/omni-video``): ``image_list`` items
  ``{"image_url": …, "type": "first_frame"|"end_frame"}``, ``video_list`` items ``{"video_url",
  "refer_type", "keep_original_sound"}``, ``multi_prompt`` items ``{"index", "prompt",
  "duration": "2"}``, ``duration`` the documented string (``"5"``) or an int.
- Modellix's flat bodies (``provider="modellix"``), https://docs.modellix.ai/kling/kling-v3-omni-image,
  https://docs.modellix.ai/kling/kling-v3-omni-video, https://docs.modellix.ai/kling/kling-video-o1,
  https://docs.modellix.ai/kling/kling-image-o1: ``images``, ``element_ids``, ``videos`` as plain
  lists; the model (in Modellix's path) as ``model_name``, spelled either way
  (``"kling-v3-omni-image"`` or ``"kling-v3-omni"``).

The SDK's own Python shapes are read too (plain strings in ``image_list``, ``{"image", "type"}``
video frames, ``{"video", …}`` reference videos, ``watermark: bool``), so both styles mix.

A media value is an ``http(s)://`` URL, a ``data:…;base64,`` URI or raw base64 (decoded to
bytes), or a local path (resolved against ``base``; it must exist and be readable). Unknown
fields are refused with the nearest known name. This module knows the vendors' field names only;
it returns plain keyword arguments, which the request models validate.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ._local_media import check_regular_file

__all__ = ["Dialect", "body_api", "image_kwargs", "video_kwargs"]

Dialect = Literal["kling", "modellix"]

_IMAGE_FIELDS = {
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
    "watermark",
    "callback_url",
    "external_task_id",
}
_VIDEO_FIELDS = {
    "model_name",
    "prompt",
    "multi_shot",
    "shot_type",
    "multi_prompt",
    "image_list",
    "element_list",
    "video_list",
    "sound",
    "mode",
    "aspect_ratio",
    "duration",
    "watermark_info",
    "watermark",
    "callback_url",
    "external_task_id",
}
# Modellix's flat names (its pages list these), beside the native ones its older
# kling-image-o1 page still used (image_list / element_list).
_MODELLIX_IMAGE_FIELDS = _IMAGE_FIELDS | {"images", "element_ids"}
_MODELLIX_VIDEO_FIELDS = _VIDEO_FIELDS | {"images", "videos"}
# Modellix names the model in its path; a line may spell it that way.
_MODELLIX_MODELS = {
    "kling-v3-omni-image": "kling-v3-omni",
    "kling-v3-omni-video": "kling-v3-omni",
}

_BASE64 = re.compile(r"[A-Za-z0-9+/\s]+={0,2}")
_MIN_BASE64 = 64  # shorter strings are names, not encoded files


def body_api(body: Any, dialect: Dialect) -> Literal["kling-legacy", "kling-new", "modellix"]:
    """The wire API a body is written for: Modellix's, Kling's new standard (a ``contents``
    body, https://kling.ai/document-api/api/video/3-0-omni/video-omni) or Kling's legacy one."""
    if dialect == "modellix":
        return "modellix"
    return "kling-new" if isinstance(body, Mapping) and "contents" in body else "kling-legacy"


def image_kwargs(
    body: Mapping[str, Any], *, dialect: Dialect = "kling", base: Path | None = None
) -> dict[str, Any]:
    """Keyword arguments of ``OmniImageRequest`` from a vendor's omni-image create body.

    Raises:
        ValueError: an unknown field (with the nearest known one), a value that is not of the
            documented form, or a local file that does not exist or cannot be read.
        TypeError: a field of the wrong JSON type.
    """
    body, out = _common(body, dialect, _MODELLIX_IMAGE_FIELDS, _IMAGE_FIELDS)
    images = _pick(body, "image_list", "images")
    if images is not None:
        out["image_list"] = [
            _image_item(item, f"{images[0]}[{i}]", base) for i, item in _enumerate(*images)
        ]
    elements = _pick(body, "element_list", "element_ids")
    if elements is not None:
        out["element_list"] = [
            _element(item, f"{elements[0]}[{i}]") for i, item in _enumerate(*elements)
        ]
    for field in ("resolution", "result_type", "aspect_ratio"):
        if field in body:
            out[field] = body[field]
    if "n" in body:
        out["n"] = _integer(body["n"], "n")
    if "series_amount" in body:
        value = body["series_amount"]
        out["series_amount"] = value if value == "auto" else _integer(value, "series_amount")
    return out


def video_kwargs(
    body: Mapping[str, Any], *, dialect: Dialect = "kling", base: Path | None = None
) -> dict[str, Any]:
    """Keyword arguments of ``OmniVideoRequest`` from a vendor's omni-video create body.

    Raises:
        ValueError: an unknown field (with the nearest known one), a value that is not of the
            documented form, or a local file that does not exist or cannot be read.
        TypeError: a field of the wrong JSON type.
    """
    if dialect == "kling" and isinstance(body, Mapping) and "contents" in body:
        return _new_standard_video(body, base)
    body, out = _common(body, dialect, _MODELLIX_VIDEO_FIELDS, _VIDEO_FIELDS)
    for field in ("multi_shot", "shot_type", "sound", "mode", "aspect_ratio"):
        if field in body:
            out[field] = body[field]
    if out.get("prompt") == "" and body.get("shot_type") == "customize":
        del out["prompt"]  # the legacy page's multi-shot examples: "prompt": "" beside the shots
    if "duration" in body:
        out["duration"] = _integer(body["duration"], "duration")
    if "multi_prompt" in body:
        out["multi_prompt"] = [
            _shot(item, f"multi_prompt[{i}]") for i, item in _enumerate("multi_prompt", body)
        ]
    images = _pick(body, "image_list", "images")
    if images is not None:
        out["image_list"] = [
            _frame(item, f"{images[0]}[{i}]", base) for i, item in _enumerate(*images)
        ]
    if "element_list" in body:
        out["element_list"] = [
            _element(item, f"element_list[{i}]") for i, item in _enumerate("element_list", body)
        ]
    videos = _pick(body, "video_list", "videos")
    if videos is not None:
        out["video_list"] = [
            _reference_video(item, f"{videos[0]}[{i}]", base) for i, item in _enumerate(*videos)
        ]
    return out


# -- Kling's new standard ----------------------------------------------------------------------

# The model is in the path (POST /omni-video/kling-3.0-omni, /omni-video/kling-o1,
# https://kling.ai/document-api/api/video/3-0-omni/video-omni); a body carries it as model_name.
_NEW_MODELS = {"kling-3.0-omni": "kling-v3-omni", "kling-o1": "kling-video-o1"}
_NEW_FRAMES = {"first_frame": "first_frame", "last_frame": "end_frame", "refer_image": None}
_NEW_VIDEOS = {"feature_video": "feature", "base_video": "base"}
_NEW_RESOLUTIONS = {"720p": "std", "1080p": "pro", "4k": "4k"}
_SHOT = re.compile(r"\s*shot\s+(\d+)\s*,\s*(\d+)\s*,\s*([^;]+);")


def _new_standard_video(body: Mapping[str, Any], base: Path | None) -> dict[str, Any]:
    """A new-standard body (``contents`` / ``settings`` / ``options``, with the path's model as
    ``model_name``) as ``OmniVideoRequest`` keyword arguments: items' ``@id`` references become
    ``<<<image_N>>>`` / ``<<<video_N>>>`` / ``<<<element_N>>>``, "shot n, m, words;" prompts
    become ``multi_prompt`` shots."""
    _reject_unknown(body, {"model_name", "contents", "settings", "options"}, "")
    model = body.get("model_name")
    if model is None:
        raise ValueError(
            "model_name: a new-standard body needs the model of its path, 'kling-3.0-omni' "
            "(POST /omni-video/kling-3.0-omni) or 'kling-o1'"
        )
    out: dict[str, Any] = {"model_name": _NEW_MODELS.get(model, model)}
    images: list[dict[str, Any]] = []
    videos: list[dict[str, Any]] = []
    elements: list[int] = []
    names: dict[str, str] = {}  # "@id" → "<<<image_1>>>"
    text: str | None = None
    for i, item in _enumerate("contents", body):
        where = f"contents[{i}]"
        item = _object(item, where)
        kind = _required(item, "type", where)
        if kind == "prompt":
            _reject_unknown(item, {"type", "text"}, f"{where}: ")
            text = _required(item, "text", where)
            continue
        if kind == "element":
            _reject_unknown(item, {"type", "element_id", "id"}, f"{where}: ")
            elements.append(_integer(_required(item, "element_id", where), f"{where}.element_id"))
            label = f"<<<element_{len(elements)}>>>"
        elif kind in _NEW_FRAMES or kind in _NEW_VIDEOS:
            _reject_unknown(item, {"type", "url", "id"}, f"{where}: ")
            media = _media(_required(item, "url", where), f"{where}.url", base)
            if kind in _NEW_FRAMES:
                images.append({"image": media, "type": _NEW_FRAMES[kind]})
                label = f"<<<image_{len(images)}>>>"
            else:
                videos.append({"video": media, "refer_type": _NEW_VIDEOS[kind]})
                label = f"<<<video_{len(videos)}>>>"
        else:
            known = ", ".join(["prompt", *_NEW_FRAMES, *_NEW_VIDEOS, "element"])
            raise ValueError(f"{where}.type: {kind!r}, must be one of {known}")
        if "id" in item:
            names[str(item["id"])] = label
    settings = _object(body.get("settings", {}), "settings")
    _reject_unknown(
        settings, {"multi_shot", "audio", "resolution", "aspect_ratio", "duration"}, "settings: "
    )
    audio = settings.get("audio", "off")
    if audio == "native":
        out["sound"] = "on"
    elif audio == "original":
        for video in videos:
            video["keep_original_sound"] = "yes"
    elif audio != "off":
        raise ValueError(f"settings.audio: {audio!r}, must be native, original or off")
    resolution = settings.get("resolution", "720p")  # the new standard's default
    if resolution not in _NEW_RESOLUTIONS:
        raise ValueError(f"settings.resolution: {resolution!r}, must be 720p, 1080p or 4k")
    out["mode"] = _NEW_RESOLUTIONS[resolution]
    if "aspect_ratio" in settings:
        out["aspect_ratio"] = settings["aspect_ratio"]
    if "duration" in settings:
        out["duration"] = _integer(settings["duration"], "settings.duration")
    # multi_shot defaults to true on 3.0 Omni and does not exist on O1; left unset when the
    # body does not set it, so the request keeps the standard's default.
    given = settings.get("multi_shot")
    multi_shot = given if given is not None else out["model_name"] == "kling-v3-omni"
    if text is not None:
        for name in sorted(names, key=len, reverse=True):  # @Zhang before @Zhan
            text = text.replace(f"@{name}", names[name])
    shots = _SHOT.findall(text or "")
    if multi_shot is True and shots:
        out.update(multi_shot=True, shot_type="customize")
        out["multi_prompt"] = [
            {"index": int(n), "duration": int(m), "prompt": words.strip()} for n, m, words in shots
        ]
    else:
        out["prompt"] = text
        if given is True:
            out.update(multi_shot=True, shot_type="intelligence")
        elif given is not None:
            out["multi_shot"] = given
    if images:
        out["image_list"] = images
    if videos:
        out["video_list"] = videos
    if elements:
        out["element_list"] = elements
    options = _object(body.get("options", {}), "options")
    _reject_unknown(options, {"callback_url", "external_task_id", "watermark_info"}, "options: ")
    for field in ("callback_url", "external_task_id"):
        if options.get(field):
            out[field] = options[field]
    if "watermark_info" in options:
        info = _object(options["watermark_info"], "options.watermark_info")
        _reject_unknown(info, {"enabled"}, "options.watermark_info: ")
        out["watermark"] = info.get("enabled")
    return out


# -- fields shared by both kinds -------------------------------------------------------------


def _common(
    body: Any, dialect: Dialect, modellix_fields: set[str], kling_fields: set[str]
) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """The body checked (an object, known fields only) and the fields both kinds share."""
    body = _object(body, "body")
    _reject_unknown(body, modellix_fields if dialect == "modellix" else kling_fields, "")
    out: dict[str, Any] = {}
    if "model_name" in body:
        model = body["model_name"]
        out["model_name"] = _MODELLIX_MODELS.get(model, model) if dialect == "modellix" else model
    if "prompt" in body:
        out["prompt"] = body["prompt"]
    for field in ("callback_url", "external_task_id"):
        # The vendors' examples write "" for "none" ("callback_url": "", "external_task_id": "",
        # https://kling.ai/document-api/api/image/3-0-omni/image-omni).
        if field in body and body[field] != "":
            out[field] = body[field]
    if "watermark_info" in body and "watermark" in body:
        raise ValueError("watermark_info and watermark: give one of them, not both")
    if "watermark_info" in body:
        info = _object(body["watermark_info"], "watermark_info")
        _reject_unknown(info, {"enabled"}, "watermark_info: ")
        enabled = info.get("enabled")
        if not isinstance(enabled, bool):
            raise TypeError(f"watermark_info.enabled: expected true or false, got {enabled!r}")
        out["watermark"] = enabled
    elif "watermark" in body:
        out["watermark"] = body["watermark"]
    return body, out


# -- list items --------------------------------------------------------------------------------


def _image_item(item: Any, where: str, base: Path | None) -> Any:
    """An omni-image reference: ``{"image": …}`` or (Modellix ``images``, SDK shape) a string."""
    if isinstance(item, Mapping):
        _reject_unknown(item, {"image"}, f"{where}: ")
        return _media(_required(item, "image", where), f"{where}.image", base)
    return _media(item, where, base)


def _frame(item: Any, where: str, base: Path | None) -> Any:
    """An omni-video image: ``{"image_url": …, "type": …}`` (the SDK's ``{"image", "type"}``
    too) or a plain string; returns the mapping the request model takes."""
    if not isinstance(item, Mapping):
        return {"image": _media(item, where, base), "type": None}
    _reject_unknown(item, {"image_url", "image", "type"}, f"{where}: ")
    key = "image_url" if "image_url" in item or "image" not in item else "image"
    return {
        "image": _media(_required(item, key, where), f"{where}.{key}", base),
        "type": item.get("type"),
    }


def _reference_video(item: Any, where: str, base: Path | None) -> Any:
    """``{"video_url", "refer_type", "keep_original_sound"}`` (the SDK's ``"video"`` key too) or
    a plain string; returns the mapping the request model takes."""
    if not isinstance(item, Mapping):
        return {"video": _media(item, where, base)}
    _reject_unknown(item, {"video_url", "video", "refer_type", "keep_original_sound"}, f"{where}: ")
    key = "video_url" if "video_url" in item or "video" not in item else "video"
    out = {"video": _media(_required(item, key, where), f"{where}.{key}", base)}
    for field in ("refer_type", "keep_original_sound"):
        if field in item:
            out[field] = item[field]
    return out


def _shot(item: Any, where: str) -> dict[str, Any]:
    shot = _object(item, where)
    _reject_unknown(shot, {"index", "prompt", "duration"}, f"{where}: ")
    return {
        "index": _integer(_required(shot, "index", where), f"{where}.index"),
        "prompt": _required(shot, "prompt", where),
        "duration": _integer(_required(shot, "duration", where), f"{where}.duration"),
    }


def _element(item: Any, where: str) -> int:
    """``{"element_id": 160}`` (or ``"160"``), or a bare id (Modellix ``element_ids``)."""
    if isinstance(item, Mapping):
        _reject_unknown(item, {"element_id"}, f"{where}: ")
        return _integer(_required(item, "element_id", where), f"{where}.element_id")
    return _integer(item, where)


# -- values ------------------------------------------------------------------------------------


def _media(value: Any, where: str, base: Path | None) -> str | bytes | Path:
    """A URL stays a string; base64 (raw, or a ``data:`` URI) becomes bytes; anything else is a
    local path, resolved against ``base``, which must be a readable file."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected a URL, base64 data or a path (a string), got {value!r}")
    if not value:
        raise ValueError(f"{where}: must not be empty")
    if value.startswith(("http://", "https://")):
        return value
    if value.startswith("data:"):
        _, _, payload = value.partition(",")
        return _decode(payload, where)
    path = Path(value).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if len(value) >= _MIN_BASE64 and _BASE64.fullmatch(value) and not _exists(path):
        return _decode(value, where)
    try:
        check_regular_file(where, path)  # never blocks (a FIFO) nor reads (a device)
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{where}: is a folder, not a file: {path}") from None
    except OSError as exc:
        raise ValueError(f"{where}: cannot read {path}: {exc.strerror}") from None
    return path


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a long base64 string is no valid file name
        return False


def _decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: not valid base64 data") from None


def _integer(value: Any, where: str) -> int:
    """A JSON integer, or the digit string Kling's docs use for some (``"5"``, ``"160"``)."""
    if isinstance(value, bool):
        raise TypeError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise TypeError(f"{where}: expected an integer (or a string of digits), got {value!r}")


# -- structure ---------------------------------------------------------------------------------


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _required(item: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in item:
        raise ValueError(f"{where}: missing field {key!r}")
    return item[key]


def _pick(body: Mapping[str, Any], native: str, flat: str) -> tuple[str, Mapping[str, Any]] | None:
    """Which of a native list field and its Modellix flat twin the body uses (not both)."""
    if native in body and flat in body:
        raise ValueError(f"{native} and {flat}: give one of them, not both")
    if native in body:
        return native, body
    if flat in body:
        return flat, body
    return None


def _enumerate(field: str, body: Mapping[str, Any]) -> enumerate[Any]:
    value = body[field]
    if not isinstance(value, list):
        raise TypeError(f"{field}: expected a JSON array, got {type(value).__name__}")
    return enumerate(value)


def _reject_unknown(obj: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"{prefix}unknown field {key!r}{hint}")
