"""Codec for Kling's native API (legacy standard) and gateways that proxy it under a prefix.

What comes from where:
- create/query/list omni-image: [omni-image]
- create/query/list omni-video: [omni-video] (legacy ``/v1/videos/omni-video``)
- envelope ``{code, message, request_id, data}``, statuses, ms timestamps: [omni-image]
- error codes: [errors]
- ``GET /account/costs`` (resource packs; ``data`` double-wrapped; QPS ≤ 1): [account-usage]

Sources:
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[omni-video] https://kling.ai/document-api (omni-video; legacy POST /v1/videos/omni-video)
[errors] https://kling.ai/document-api/api/get-started/error-codes
[auth] https://kling.ai/document-api/api/get-started/authentication
[callbacks] https://kling.ai/document-api/api/get-started/callbacks
[account-usage] https://kling.ai/document-api/api/assets/account-usage
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Container
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from .._account import ResourcePack, ResourcePackStatus
from .._convert import structure, units_of
from .._errors import (
    APIError,
    ConcurrencyLimitError,
    RateLimitError,
    ResponseFormatError,
    UnknownStatusError,
    error_from_code,
)
from .._http._transport import Response
from .._models import (
    GeneratedImage,
    GeneratedVideo,
    Kind,
    OmniImageRequest,
    OmniVideoRequest,
    Request,
    Task,
    TaskResult,
    TaskStatus,
)
from .._quota._config import Quota
from .._requests._api_rules import refuse_for
from .._requests._validate import check_local_image, check_local_video
from ._codec import NoUnifiedQuery

__all__ = ["DEFAULT_BASE_URL", "KlingCodec"]

DEFAULT_BASE_URL = "https://api-singapore.klingai.com"  # [auth]
# [omni-image]: results purged after 30 days [omni-image] [callbacks]
RESULT_LIFETIME = dt.timedelta(days=30)

_PATHS: dict[Kind, str] = {
    "image": "/v1/images/omni-image",  # [omni-image]
    "video": "/v1/videos/omni-video",  # [omni-video]
}

ACCOUNT_COSTS_PATH = "/account/costs"  # [account-usage]
_PAGE_SIZE_MIN = 30  # the list query's default page size
_PAGE_SIZE_MAX = 500  # its largest
# What a refusal of a create whose external id is in use may say (not documented; see
# KlingCodec.is_duplicate_external_id).
_DUPLICATE_WORDS = re.compile(r"external|already|exist|duplicat|in use|unique", re.IGNORECASE)
_STATUS = {  # [omni-image]: note the spelling 'succeed'
    "submitted": TaskStatus.SUBMITTED,
    "processing": TaskStatus.PROCESSING,
    "succeed": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
}


# Wire shapes of the query answer ([omni-image], [omni-video]). Every field has a default: parsing
# is lenient.
@attrs.frozen
class _WireImage:
    index: int | None = None
    url: str = ""
    watermark_url: str | None = None


@attrs.frozen
class _WireVideo:
    id: str | None = None
    url: str = ""
    watermark_url: str | None = None
    duration: str | None = None


@attrs.frozen
class _WireResult:
    result_type: str | None = None
    images: list[_WireImage] | None = None
    series_images: list[_WireImage] | None = None
    videos: list[_WireVideo] | None = None


@attrs.frozen
class _WireInfo:
    external_task_id: str | None = None


@attrs.frozen
class _WireTask:
    task_id: str
    task_status: str
    task_status_msg: str | None = None
    task_info: _WireInfo | None = None
    task_result: _WireResult | None = None
    final_unit_deduction: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


# Wire shapes of the account-costs answer [account-usage]: ``data`` is itself ``{code, msg,
# resource_pack_subscribe_infos[]}``; times in ms, quantities numbers.
@attrs.frozen
class _WirePack:
    resource_pack_name: str
    resource_pack_id: str
    resource_pack_type: str
    total_quantity: Decimal
    remaining_quantity: Decimal
    status: str
    purchase_time: dt.datetime | None = None
    effective_time: dt.datetime | None = None
    invalid_time: dt.datetime | None = None


@attrs.frozen
class _WireInner:
    code: int = 0
    msg: str | None = None


@attrs.frozen
class _WireCosts:
    resource_pack_subscribe_infos: list[_WirePack] | None = None  # missing or null: no packs


def encode_media(field: str, value: str | Path | bytes, *, video: bool = False) -> str:
    """A URL as is; a path or bytes checked and encoded as raw base64, no ``data:`` prefix
    [omni-image] [omni-video]. Blocking (reads files): call it in a worker thread."""
    if isinstance(value, str):
        return value
    data = check_local_video(field, value) if video else check_local_image(field, value)
    return base64.b64encode(data).decode("ascii")


@attrs.frozen
class KlingCodec(NoUnifiedQuery):
    """Maps request models to Kling's native wire form and answers back to results."""

    name: str = "kling"
    supports_list_query: bool = True  # pageNum/pageSize list query
    supports_external_lookup: bool = True  # query by external_task_id
    supports_callbacks: bool = True  # callback_url on creates
    supports_jwt: bool = True  # AccessKey/SecretKey → HS256 JWT
    api_key_env: str = "KLING_API_KEY"
    base_url_env: str = "KLING_BASE_URL"
    default_base_url: str = DEFAULT_BASE_URL
    default_requests_per_minute: float | None = None  # no documented per-key request limit
    shares_one_pool: bool = False  # pools per model and kind
    # final_unit_deduction (legacy), billing[] (new standard) on an ended task
    reports_units: bool = True
    account_costs_interval: float = 1.0  # [account-usage]: "control the request rate (QPS<=1)"

    def pool_name(self, model: str, kind: Kind) -> str:
        """``"{model}:{kind}"``: concurrency is counted per model and pack type
        (https://kling.ai/document-api/api/get-started/concurrency-rules)."""
        return f"{model}:{kind}"

    def pool_capacity(self, quota: Quota, model: str, kind: Kind) -> int:
        """The pool's slots under ``quota`` (``Quota.capacity``)."""
        return quota.capacity(model, kind)

    def fallback(self, status: int | None) -> KlingCodec | None:
        """Kling serves one create path: never another."""
        return None

    def is_duplicate_external_id(self, error: APIError) -> bool:
        """A parameter refusal (1200/1201) whose message speaks of the external id, or of
        something already existing or duplicated. ``external_task_id`` "must be unique per
        account" ([omni-image]); the answer to a duplicate is not documented, so the message
        is read loosely: a wrong guess costs one lookup by the id, which answers 1203 (no such
        task) and lets the refusal stand."""
        if error.code not in (1200, 1201):
            return False
        return _DUPLICATE_WORDS.search(error.message or "") is not None

    def is_missing_path(self, error: APIError) -> bool:
        """Code 1202 "invalid method" ([errors]), or HTTP 404/405 without Kling's envelope
        (the answer of a server that is not Kling's API at this path)."""
        return error.code == 1202 or (error.code is None and error.http_status in (404, 405))

    def list_params(self, page: int, page_size: int) -> dict[str, str]:
        """``pageNum`` / ``pageSize`` (1–500)."""
        return {"pageNum": str(page), "pageSize": str(page_size)}

    def list_page_size(self, tracked: int) -> int:
        """A page reaching ``tracked`` tasks (the client's tasks created since its oldest in
        flight, newest first) with a tenth more and 5 to spare for creates still being
        answered and other programs' tasks, within the documented 1–500 (default 30)."""
        return min(_PAGE_SIZE_MAX, max(_PAGE_SIZE_MIN, tracked + tracked // 10 + 5))

    def check(self, request: Request) -> None:
        """Refuse, before sending, what the legacy standard's pages refuse ([omni-image],
        [omni-video]); Kling's native API carries every field of the request models.

        Raises:
            InvalidInputError: naming the field, the value and the rule.
        """
        refuse_for("kling-legacy", request)

    def is_terminal_wire_status(self, raw: str) -> bool:
        """Whether ``raw`` (a wire ``task_status`` such as ``"succeed"``, [omni-image]) is
        terminal."""
        status = _STATUS.get(raw)
        return status is not None and status.is_terminal

    def create_path(self, request: Request) -> str:
        """Path of the create endpoint for ``request``."""
        return _PATHS[request.kind]

    def query_path(self, kind: Kind, task_id: str) -> str:
        """Path of the single-task query; ``task_id`` may also be an ``external_task_id``
        [omni-image]."""
        return f"{_PATHS[kind]}/{task_id}"

    def list_path(self, kind: Kind) -> str:
        """Path of the list query (``pageNum``/``pageSize``, [omni-image])."""
        return _PATHS[kind]

    def build_create(self, request: Request, external_task_id: str) -> dict[str, Any]:
        """The JSON body of a create. Blocking: reads and base64-encodes local files.

        Raises:
            ValueError: a local input breaks a documented rule (format, size, dimensions).
        """
        if isinstance(request, OmniImageRequest):
            body = self._image_body(request)
        else:
            body = self._video_body(request)
        if request.watermark is not None:
            body["watermark_info"] = {"enabled": request.watermark}
        if request.callback_url is not None:
            body["callback_url"] = request.callback_url
        body["external_task_id"] = external_task_id
        return body

    def _image_body(self, r: OmniImageRequest) -> dict[str, Any]:
        # [omni-image]
        body: dict[str, Any] = {
            "model_name": r.model_name,
            "prompt": r.prompt,
            "resolution": r.resolution,
            "result_type": r.result_type,
            "aspect_ratio": r.aspect_ratio,
        }
        if r.result_type == "series":
            body["series_amount"] = r.series_amount
        else:
            body["n"] = r.n
        if r.image_list:
            body["image_list"] = [
                {"image": encode_media(f"image_list[{i}]", im)} for i, im in enumerate(r.image_list)
            ]
        if r.element_list:
            body["element_list"] = [{"element_id": e} for e in r.element_list]
        return body

    def _video_body(self, r: OmniVideoRequest) -> dict[str, Any]:
        # [omni-video]: image_list items use the key 'image_url'; duration is a string.
        body: dict[str, Any] = {
            "model_name": r.model_name,
            "multi_shot": bool(r.multi_shot),  # unset: the legacy default, false [omni-video]
            "sound": r.sound,
            "mode": r.mode,
            "duration": str(r.duration),
        }
        if r.prompt is not None:
            body["prompt"] = r.prompt
        if r.shot_type is not None:
            body["shot_type"] = r.shot_type
        if r.multi_prompt:
            body["multi_prompt"] = [
                {"index": s.index, "prompt": s.prompt, "duration": str(s.duration)}
                for s in r.multi_prompt
            ]
        if r.image_list:
            items = []
            for i, im in enumerate(r.image_list):
                item = {"image_url": encode_media(f"image_list[{i}]", im.image)}
                if im.type is not None:
                    item["type"] = im.type
                items.append(item)
            body["image_list"] = items
        if r.element_list:
            body["element_list"] = [{"element_id": e} for e in r.element_list]
        if r.video_list:
            videos = []
            for i, v in enumerate(r.video_list):
                item = {
                    "video_url": encode_media(f"video_list[{i}]", v.video, video=True),
                    "refer_type": v.refer_type,
                }
                if v.keep_original_sound is not None:
                    item["keep_original_sound"] = v.keep_original_sound
                videos.append(item)
            body["video_list"] = videos
        if r.aspect_ratio is not None:
            body["aspect_ratio"] = r.aspect_ratio
        return body

    def unwrap(self, response: Response) -> Any:
        """Return the envelope's ``data`` or raise the mapped error ([omni-image], [errors]).

        Raises:
            APIError: a subclass chosen by ``code`` (then HTTP status).
            ResponseFormatError: a 2xx answer that is not the envelope.
        """
        body = response.body
        if not isinstance(body, dict) or not isinstance(body.get("code"), int):
            if response.status >= 400:
                raise error_from_code(
                    f"HTTP {response.status}: {response.text[:200]}",
                    code=None,
                    http_status=response.status,
                )
            raise ResponseFormatError(
                f"HTTP {response.status} answer is not a Kling envelope: {response.text[:200]!r}"
            )
        code = body["code"]
        if code == 0 and response.status < 400:
            return body.get("data")
        message = str(body.get("message") or "no message")
        error = error_from_code(
            message,
            code=code if code != 0 else None,
            http_status=response.status,
            request_id=str(body.get("request_id")) if body.get("request_id") else None,
        )
        if isinstance(error, RateLimitError | ConcurrencyLimitError):
            error.retry_after = _retry_after(response.headers)
        raise error

    def parse_create(self, data: Any, request: Request, external_task_id: str, cost: int) -> Task:
        """The :class:`Task` of a create answer [omni-image].

        Raises:
            ResponseFormatError: no ``task_id`` in ``data``.
        """
        if not isinstance(data, dict) or not isinstance(data.get("task_id"), str | int):
            raise ResponseFormatError(f"create answer without a task_id: {data!r:.200}")
        wire = structure(data, _WireTask, "create answer") if "task_status" in data else None
        info = data.get("task_info") or {}
        return Task(
            task_id=str(data["task_id"]),
            external_task_id=info.get("external_task_id") or external_task_id,
            kind=request.kind,
            model=request.model_name,
            cost=cost,
            created_at=wire.created_at if wire else None,
        )

    def parse_task(self, data: Any, *, series: bool | None = None) -> TaskResult:
        """The :class:`TaskResult` of a query answer ([omni-image], [omni-video]). ``series`` is
        ignored:
        Kling's answer keeps ``series_images`` apart itself.

        Raises:
            ResponseFormatError: the answer lacks ``task_id``/``task_status`` or has an unknown
                status.
        """
        wire = structure(data, _WireTask, "task answer")
        return self._to_result(wire)

    def parse_task_list(self, data: Any, wanted: Container[str] | None = None) -> list[TaskResult]:
        """The results of a list query answer (``data`` is an array, [omni-image]).

        Args:
            data: The answer's ``data``.
            wanted: Only the tasks whose ``task_id`` is in it are parsed (a page reports on
                tasks the caller does not follow too); ``None`` parses every item.
        """
        if not isinstance(data, list):
            raise ResponseFormatError(f"list answer is not an array: {data!r:.200}")
        if wanted is not None:
            data = [
                item for item in data if isinstance(item, dict) and item.get("task_id") in wanted
            ]
        return [self.parse_task(item) for item in data]

    def account_costs_request(
        self, start: dt.datetime, end: dt.datetime, resource_pack_name: str | None
    ) -> tuple[str, dict[str, str]]:
        """``GET /account/costs?start_time=&end_time=[&resource_pack_name=]``, times as Unix
        epoch milliseconds [account-usage]."""
        params = {
            "start_time": str(_epoch_ms(start)),
            "end_time": str(_epoch_ms(end)),
        }
        if resource_pack_name is not None:
            params["resource_pack_name"] = resource_pack_name
        return ACCOUNT_COSTS_PATH, params

    def parse_account_costs(self, data: Any) -> list[ResourcePack]:
        """The packs of an account-costs ``data`` ``{code, msg,
        resource_pack_subscribe_infos[]}`` [account-usage]; a missing or ``null`` list is no
        packs.

        Raises:
            APIError: the inner ``code`` is not 0 (class by code, as for the envelope).
            ResponseFormatError: a field is missing or mistyped, or a pack's ``status`` is
                none of ``toBeOnline``, ``online``, ``expired``, ``runOut``.
        """
        if not isinstance(data, dict):  # all fields have defaults: a list would pass
            raise ResponseFormatError(
                f"malformed account costs answer: a JSON object expected, got {type(data).__name__}"
            )
        inner = structure(data, _WireInner, "account costs answer")
        if inner.code != 0:
            raise error_from_code(inner.msg or "no message", code=inner.code, http_status=None)
        wire = structure(data, _WireCosts, "account costs answer")
        packs = []
        for item in wire.resource_pack_subscribe_infos or ():
            try:
                status = ResourcePackStatus(item.status)
            except ValueError:
                raise ResponseFormatError(
                    f"resource pack {item.resource_pack_id!r}: unknown status {item.status!r}"
                ) from None
            packs.append(
                ResourcePack(
                    name=item.resource_pack_name,
                    id=item.resource_pack_id,
                    type=item.resource_pack_type,
                    total=item.total_quantity,
                    remaining=item.remaining_quantity,
                    status=status,
                    purchased_at=item.purchase_time,
                    effective_at=item.effective_time,
                    invalid_at=item.invalid_time,
                )
            )
        return packs

    def _to_result(self, wire: _WireTask) -> TaskResult:
        status = _STATUS.get(wire.task_status)
        if status is None:
            raise UnknownStatusError(str(wire.task_status), wire.task_id)
        res = wire.task_result or _WireResult()
        updated = wire.updated_at
        return TaskResult(
            task_id=wire.task_id,
            external_task_id=wire.task_info.external_task_id if wire.task_info else None,
            status=status,
            status_message=wire.task_status_msg or None,
            images=_images(res.images),
            series_images=_images(res.series_images),
            videos=tuple([_video(i, w) for i, w in enumerate(res.videos)]) if res.videos else (),
            units=units_of(wire.final_unit_deduction),
            created_at=wire.created_at,
            updated_at=updated,
            expires_at=updated + RESULT_LIFETIME if updated and status.is_terminal else None,
        )


def _images(wire: list[_WireImage] | None) -> tuple[GeneratedImage, ...]:
    return tuple([_image(i, w) for i, w in enumerate(wire)]) if wire else ()


def _image(position: int, w: _WireImage) -> GeneratedImage:
    return GeneratedImage(
        index=w.index if w.index is not None else position,
        url=w.url,
        watermark_url=w.watermark_url or None,
    )


def _video(position: int, w: _WireVideo) -> GeneratedVideo:
    return GeneratedVideo(
        index=position,
        url=w.url,
        watermark_url=w.watermark_url or None,
        duration=_number(w.duration),
        id=w.id,
    )


def _epoch_ms(moment: dt.datetime) -> int:
    """Unix epoch milliseconds of an aware datetime, exactly (no float rounding)."""
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _retry_after(headers: Any) -> float | None:
    value = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
