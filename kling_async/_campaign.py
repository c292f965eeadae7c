"""Campaign files: one JSON request per line (JSON Lines).

Each line is an object with ``"kind": "image"`` or ``"kind": "video"`` plus the request's fields
under Kling's own names (see :class:`OmniImageRequest`, :class:`OmniVideoRequest`). Relative
paths in ``image_list`` and ``video_list`` resolve against the campaign file's folder. Video
``image_list`` items are a path/URL or ``{"image": ..., "type": "first_frame"|"end_frame"}``;
``video_list`` items are ``{"video": ..., "refer_type": ..., "keep_original_sound": ...}``.
Blank lines and lines starting with ``#`` are skipped.

A malformed or invalid line becomes a :class:`CampaignLineError` naming its line number and the
reason; the other lines are unaffected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from ._models import (
    MultiPrompt,
    OmniImageRequest,
    OmniVideoRequest,
    ReferenceVideo,
    Request,
    VideoImage,
)

__all__ = ["CampaignLine", "CampaignLineError", "content_lines", "read_campaign"]

_IMAGE_FIELDS = {f.name for f in attrs.fields(OmniImageRequest) if f.init}
_VIDEO_FIELDS = {f.name for f in attrs.fields(OmniVideoRequest) if f.init}


@attrs.frozen(kw_only=True)
class CampaignLine:
    """A valid campaign line: its 1-based line number, its text and its request."""

    line: int
    text: str
    request: Request


@attrs.frozen(kw_only=True)
class CampaignLineError:
    """An invalid campaign line: its 1-based line number, its text and the reason."""

    line: int
    text: str
    reason: str


def read_campaign(path: Path) -> Iterator[CampaignLine | CampaignLineError]:
    """Yield each non-blank line of the campaign file at ``path`` as a request or an error.

    Lazy: one line is read and parsed at a time.

    Raises:
        OSError: the file cannot be opened.
    """
    base = path.resolve().parent
    for number, text in content_lines(path):
        try:
            yield CampaignLine(line=number, text=text, request=parse_line(text, base))
        except (ValueError, TypeError) as exc:
            yield CampaignLineError(line=number, text=text, reason=str(exc))


def content_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(1-based line number, stripped text)`` of each line that is not blank or a ``#``
    comment. Lazy.

    Raises:
        OSError: the file cannot be opened.
    """
    with path.open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            text = raw.strip()
            if text and not text.startswith("#"):
                yield number, text


def parse_line(text: str, base: Path) -> Request:
    """Parse one campaign line into a request; relative paths resolve against ``base``.

    Raises:
        ValueError: bad JSON, unknown ``kind`` or field, or a broken request rule.
        TypeError: a field of the wrong type.
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.pop("kind", None)
    if kind == "image":
        _reject_unknown(obj, _IMAGE_FIELDS, "image")
        if "image_list" in obj:
            obj["image_list"] = [_path(v, base, "image_list") for v in _list(obj, "image_list")]
        return OmniImageRequest(**obj)
    if kind == "video":
        _reject_unknown(obj, _VIDEO_FIELDS, "video")
        if "image_list" in obj:
            obj["image_list"] = [_video_image(v, base) for v in _list(obj, "image_list")]
        if "video_list" in obj:
            obj["video_list"] = [_ref_video(v, base) for v in _list(obj, "video_list")]
        if "multi_prompt" in obj:
            obj["multi_prompt"] = [_shot(v) for v in _list(obj, "multi_prompt")]
        return OmniVideoRequest(**obj)
    raise ValueError(f"kind: {kind!r}, must be 'image' or 'video'")


def _reject_unknown(obj: dict[str, Any], allowed: set[str], kind: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ValueError(
            f"unknown field(s) for kind {kind!r}: {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _list(obj: dict[str, Any], field: str) -> list[Any]:
    value = obj[field]
    if not isinstance(value, list):
        raise TypeError(f"{field}: expected a JSON array, got {type(value).__name__}")
    return value


def _path(value: Any, base: Path, field: str) -> str | Path:
    if not isinstance(value, str):
        raise TypeError(f"{field}: items are URLs or paths (strings), got {value!r}")
    if value.startswith(("http://", "https://")):
        return value
    return base / value


def _video_image(value: Any, base: Path) -> VideoImage:
    if isinstance(value, str):
        return VideoImage(image=_path(value, base, "image_list"))
    if isinstance(value, dict) and set(value) <= {"image", "type"} and "image" in value:
        return VideoImage(image=_path(value["image"], base, "image_list"), type=value.get("type"))
    raise ValueError(f"image_list: items are a path/URL or {{'image', 'type'}}, got {value!r}")


def _ref_video(value: Any, base: Path) -> ReferenceVideo:
    allowed = {"video", "refer_type", "keep_original_sound"}
    if isinstance(value, str):
        return ReferenceVideo(video=_path(value, base, "video_list"))
    if isinstance(value, dict) and set(value) <= allowed and "video" in value:
        fields = dict(value)
        fields["video"] = _path(fields["video"], base, "video_list")
        return ReferenceVideo(**fields)
    raise ValueError(
        f"video_list: items are a path/URL or {{'video', 'refer_type', 'keep_original_sound'}}, "
        f"got {value!r}"
    )


def _shot(value: Any) -> MultiPrompt:
    if not isinstance(value, dict) or set(value) != {"index", "prompt", "duration"}:
        raise ValueError(
            f"multi_prompt: items are {{'index', 'prompt', 'duration'}}, got {value!r}"
        )
    return MultiPrompt(**value)
