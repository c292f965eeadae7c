"""Codec for Kling's new-standard API (API key only): omni-video with ``contents`` /
``settings`` / ``options`` and the unified task query; omni-image stays on the legacy standard,
which is the only one Kling documents for it.

What comes from where:
- ``POST /omni-video/kling-3.0-omni`` and ``/omni-video/kling-o1``, the body, its rules, the
  create answer ``{id, status, create_time, update_time, external_id}``: [omni-video-3] [o1]
- ``GET /tasks?task_ids=a,b`` / ``?external_task_ids=x,y`` (one batch answers for many tasks;
  ``data`` an array of ``{id, status, message, create_time, update_time, external_id,
  outputs[], billing[]}``), statuses ``submitted``/``processing``/``succeeded``/``failed``:
  [omni-video-3]
- the batch size is not documented; 50 ids per query is what one SDK author probed (INFERRED)

Sources:
[omni-video-3] https://kling.ai/document-api/api/video/3-0-omni/video-omni
[o1] https://kling.ai/document-api/api/video/o1/video-o1
[legacy] https://kling.ai/document-api/api/image/3-0-omni/image-omni
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Container, Mapping
from decimal import Decimal
from typing import Any

import attrs

from .._convert import units_of
from .._errors import ResponseFormatError, UnknownStatusError
from .._models import (
    GeneratedImage,
    GeneratedVideo,
    Kind,
    OmniVideoRequest,
    Request,
    Task,
    TaskResult,
    TaskStatus,
)
from .._requests._api_rules import refuse_for
from .kling import RESULT_LIFETIME, TRAITS, KlingCodec, encode_media

__all__ = ["BATCH_SIZE", "MODEL_PATHS", "NEW_TRAITS", "KlingNewCodec"]

# The model in the path [omni-video-3] [o1], for the request model's names.
MODEL_PATHS = {"kling-v3-omni": "kling-3.0-omni", "kling-video-o1": "kling-o1"}
BATCH_SIZE = 50  # ids per GET /tasks (INFERRED: undocumented; probed by one SDK author)
_STATUS = {
    "submitted": TaskStatus.SUBMITTED,
    "processing": TaskStatus.PROCESSING,
    "succeeded": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
}
_RESOLUTION = {"std": "720p", "pro": "1080p", "4k": "4k"}
_FRAME = {"first_frame": "first_frame", "end_frame": "last_frame", None: "refer_image"}
_REFERENCE = re.compile(r"<<<(image|video|element)_(\d+)>>>")

# Kling's legacy traits, but API key only ([omni-video-3]: Authorization: Bearer <API_KEY>) and
# videos followed with the unified GET /tasks query, BATCH_SIZE ids each.
NEW_TRAITS = attrs.evolve(
    TRAITS, supports_jwt=False, batch_query_size=BATCH_SIZE, batch_query_kinds=frozenset({"video"})
)


@attrs.frozen
class KlingNewCodec(KlingCodec):
    """Kling's new standard for omni-video (``api_standard="new"``); images go through the
    legacy codec this extends. API key only."""

    def batch_query(self, ids: list[str], *, external: bool = False) -> tuple[str, dict[str, str]]:
        """Path and parameters of ``GET /tasks`` for ``ids`` (task ids, or external ids)."""
        return "/tasks", {"external_task_ids" if external else "task_ids": ",".join(ids)}

    def running_listing(
        self, kind: Kind, cursor: str | None
    ) -> tuple[str, str, dict[str, str] | None, dict[str, Any] | None] | None:
        """Videos: ``POST /tasks`` filtered to ``submitted``/``processing`` videos, 500 a page
        (its maximum), after ``cursor`` [omni-video-3]; images: the legacy list pages."""
        if kind != "video":
            return None
        body: dict[str, Any] = {
            "limit": 500,
            "filters": [
                {"key": "status", "values": ["submitted", "processing"]},
                {"key": "product_type", "values": ["video"]},
            ],
        }
        if cursor:
            body["cursor"] = cursor
        return "POST", "/tasks", None, body

    def parse_running_page(self, data: Any) -> tuple[list[TaskResult], str | None]:
        """``data{result[], next_cursor, has_more}`` of ``POST /tasks`` [omni-video-3].

        Raises:
            ResponseFormatError: not that shape.
        """
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise ResponseFormatError(f"cursor listing answer without result[]: {data!r:.200}")
        cursor = data.get("next_cursor") if data.get("has_more") else None
        return self.parse_task_list(data["result"]), str(cursor) if cursor else None

    def check(self, request: Request) -> None:
        """Refuse, before sending, what the new standard's pages refuse ([omni-video-3], [o1]);
        images follow the legacy standard's rules, the only one Kling documents for them.

        Raises:
            InvalidInputError: naming the field, the value and the rule.
        """
        refuse_for("kling-new", request)

    def is_terminal_wire_status(self, raw: str) -> bool:
        """Whether ``raw`` is terminal: a new-standard ``status`` (``"succeeded"``,
        [omni-video-3]) or a legacy ``task_status`` (``"succeed"``, images)."""
        status = _STATUS.get(raw)
        return status.is_terminal if status is not None else super().is_terminal_wire_status(raw)

    def create_path(self, request: Request) -> str:
        """``/omni-video/{model}`` for videos [omni-video-3]; the legacy path for images."""
        if isinstance(request, OmniVideoRequest):
            return f"/omni-video/{MODEL_PATHS[request.model_name]}"
        return super().create_path(request)

    def build_create(self, request: Request, external_task_id: str) -> dict[str, Any]:
        """The JSON body of a create: ``contents`` / ``settings`` / ``options`` for a video
        (local files as raw base64); the legacy body for an image. Blocking (reads files).

        Raises:
            ValueError: a local input breaks a documented rule (format, size, dimensions).
        """
        if not isinstance(request, OmniVideoRequest):
            return super().build_create(request, external_task_id)
        r = request
        contents: list[dict[str, Any]] = []
        text = r.prompt
        if r.shot_type == "customize" and r.multi_prompt:
            # 3.0 Omni writes the shots into the prompt: "shot n, m, words;" [omni-video-3]
            text = " ".join(f"shot {s.index}, {s.duration}, {s.prompt};" for s in r.multi_prompt)
        if text:
            contents.append({"type": "prompt", "text": _REFERENCE.sub(r"@\1_\2", text)})
        for i, im in enumerate(r.image_list):
            url = encode_media(f"image_list[{i}]", im.image)
            contents.append({"type": _FRAME[im.type], "url": url, "id": f"image_{i + 1}"})
        for i, v in enumerate(r.video_list):
            url = encode_media(f"video_list[{i}]", v.video, video=True)
            kind = "feature_video" if v.refer_type == "feature" else "base_video"
            contents.append({"type": kind, "url": url, "id": f"video_{i + 1}"})
        for i, element in enumerate(r.element_list):
            contents.append(
                {"type": "element", "element_id": str(element), "id": f"element_{i + 1}"}
            )
        audio = "off"
        if r.sound == "on":
            audio = "native"
        elif any(v.keep_original_sound == "yes" for v in r.video_list):
            audio = "original"
        settings: dict[str, Any] = {
            "audio": audio,
            "resolution": _RESOLUTION[r.mode],
            "duration": r.duration,
        }
        if r.model_name != "kling-video-o1":  # O1 has no multi_shot setting [o1]
            # Unset: 3.0 Omni's default, true, except with a base video, which "does not
            # support generating multi-shot videos" [omni-video-3].
            base = any(v.refer_type == "base" for v in r.video_list)
            settings["multi_shot"] = r.multi_shot if r.multi_shot is not None else not base
        if r.aspect_ratio is not None:
            settings["aspect_ratio"] = r.aspect_ratio
        options: dict[str, Any] = {"external_task_id": external_task_id}
        if r.callback_url is not None:
            options["callback_url"] = r.callback_url
        if r.watermark is not None:
            options["watermark_info"] = {"enabled": r.watermark}
        return {"contents": contents, "settings": settings, "options": options}

    def parse_create(self, data: Any, request: Request, external_task_id: str, cost: int) -> Task:
        """The :class:`Task` of a create answer (``{id, status, ...}`` for a video).

        Raises:
            ResponseFormatError: no ``id`` in a video's ``data``.
        """
        if not isinstance(request, OmniVideoRequest):
            return super().parse_create(data, request, external_task_id, cost)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str | int):
            raise ResponseFormatError(f"create answer without an id: {data!r:.200}")
        return Task(
            task_id=str(data["id"]),
            external_task_id=str(data.get("external_id") or external_task_id),
            kind="video",
            model=request.model_name,
            cost=cost,
            created_at=_ms(data.get("create_time")),
        )

    def parse_task(self, data: Any, *, series: bool | None = None) -> TaskResult:
        """One task: a new-standard item (``id``/``status``/``outputs``) or a legacy answer.

        Raises:
            ResponseFormatError: neither shape, or an unknown status.
        """
        if isinstance(data, dict) and "id" in data and "status" in data:
            return _new_task(data)
        return super().parse_task(data, series=series)

    def parse_task_list(self, data: Any, wanted: Container[str] | None = None) -> list[TaskResult]:
        """The tasks of a unified query answer (an array) or of a legacy list page."""
        if isinstance(data, list) and all(isinstance(x, dict) and "id" in x for x in data):
            items = [x for x in data if wanted is None or str(x["id"]) in wanted]
            return [_new_task(x) for x in items]
        return super().parse_task_list(data, wanted)


def _new_task(item: Mapping[str, Any]) -> TaskResult:
    task_id = str(item["id"])
    status = _STATUS.get(str(item.get("status")))
    if status is None:
        raise UnknownStatusError(str(item.get("status")), task_id)
    videos: list[GeneratedVideo] = []
    images: list[GeneratedImage] = []
    for output in item.get("outputs") or ():
        if not isinstance(output, dict):
            continue
        if output.get("type") == "video":
            videos.append(
                GeneratedVideo(
                    index=len(videos),
                    url=str(output.get("url") or ""),
                    watermark_url=output.get("watermark_url") or None,
                    duration=_float(output.get("duration")),
                    id=output.get("id"),
                )
            )
        elif output.get("type") == "image":
            images.append(
                GeneratedImage(
                    index=len(images),
                    url=str(output.get("url") or ""),
                    watermark_url=output.get("watermark_url") or None,
                )
            )
    units = [
        u
        for b in item.get("billing") or ()
        if isinstance(b, dict)
        and b.get("charge_type") == "unit"
        and (u := units_of(b.get("amount"))) is not None
    ]
    updated = _ms(item.get("update_time"))
    return TaskResult(
        task_id=task_id,
        external_task_id=item.get("external_id") or None,
        status=status,
        status_message=item.get("message") or None,
        images=tuple(images),
        videos=tuple(videos),
        units=sum(units, Decimal(0)) if units else None,
        created_at=_ms(item.get("create_time")),
        updated_at=updated,
        expires_at=updated + RESULT_LIFETIME if updated and status.is_terminal else None,
    )


def _ms(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC) if value else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
