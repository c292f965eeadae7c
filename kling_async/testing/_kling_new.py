"""Kling's new-standard wire API (omni-video and the unified task query), as the sandbox serves it.

Routes, relative to the sandbox's ``path_prefix`` — with no ``/v1`` prefix: the vendor pages
show ``https://api-singapore.klingai.com/omni-video/kling-3.0-omni`` and ``.../tasks``
[3.0-omni] [o1]::

    POST /omni-video/kling-3.0-omni   create [3.0-omni] (another model in the path: 1203)
    POST /omni-video/kling-o1         create [o1]
    GET  /tasks?task_ids=a,b          batch query by task id [3.0-omni]
    GET  /tasks?external_task_ids=x,y batch query by external task id [3.0-omni]
    POST /tasks                       cursor listing [3.0-omni]

Bodies are ``contents[]`` + ``settings{}`` + ``options{}``, checked by
``_kling_new_rules.py``. Answers use the legacy envelope ``{code, message, request_id, data}``
and the [errors] codes and HTTP statuses (error answers carry no ``data``). Only an API key
authenticates here [auth]: an AccessKey/SecretKey JWT is refused with 1002 (INFERRED: [auth]
says AK/SK is for the legacy standard only, not which code a new-standard route answers).

Tasks (status ``submitted → processing → succeeded | failed``) hold a slot of the legacy video
pool of the same model generation (INFERRED, see ``POOL_OF``), so a full pool answers 1303 to
both standards [concurrency]. The ``/tasks`` routes show new-standard tasks only (INFERRED:
whether legacy tasks appear there is not documented). Creates go through the shared
``create_with_faults`` path, queries draw the query faults, like the legacy routes.

Sources:
[3.0-omni] https://kling.ai/document-api/api/video/3-0-omni/video-omni
[o1] https://kling.ai/document-api/api/video/o1/video-omni
[auth] https://kling.ai/document-api/api/get-started/authentication
[concurrency] https://kling.ai/document-api/api/get-started/concurrency-rules
[errors] https://kling.ai/document-api/api/get-started/error-codes
[callbacks] https://kling.ai/document-api/api/get-started/callbacks
[prices] https://kling.ai/document-api/pricing/base/video (``_prices``)
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Final

from aiohttp import web

from ._auth import AuthError, check_authorization
from ._engine import Engine
from ._faults import FaultInjector
from ._kling import (
    FAILURE_MESSAGE,
    ApiError,
    checked_body,
    envelope,
    envelope_handler,
    kling_create,
)
from ._kling_new_rules import NEW_VIDEO_MODELS, NewVideoSpec, check_new_video
from ._prices import video_units
from ._rules import _is_int
from ._state import Status, Task

API: Final = "kling-new"
# [3.0-omni]: the new standard spells the end state "succeeded" (legacy: "succeed").
STATUS: Final[dict[Status, str]] = {
    Status.SUBMITTED: "submitted",
    Status.PROCESSING: "processing",
    Status.SUCCEED: "succeeded",
    Status.FAILED: "failed",
}
# INFERRED: the batch size of GET /tasks is undocumented ([3.0-omni]); ~50 ids per call.
MAX_BATCH: Final = 50
MAX_LIMIT, DEFAULT_LIMIT = 500, 100  # [3.0-omni]: POST /tasks limit ≤ 500, default 100
WINDOW_MS: Final = 30 * 24 * 3600 * 1000  # [3.0-omni]: start_time defaults to end_time - 30 days
FILTER_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "status": tuple(STATUS.values()),  # [3.0-omni]
    "product_type": ("video", "image", "try_on"),  # [3.0-omni]
}


def units(spec: NewVideoSpec) -> str:
    """``billing[].amount`` of a succeeded task: decimal units as a string [3.0-omni]
    ("decimal system"), e.g. ``"4"`` or ``"4.5"``: Kling's published per-second price for the
    model, resolution, video input and native audio [prices]."""
    return video_units(
        spec.model,
        spec.resolution,
        native_audio=spec.audio == "native",
        video_input=spec.video_input,
        seconds=spec.duration,
    )


class KlingNewApi:
    """Route handlers of the new standard over one :class:`Engine`.

    Args:
        engine: The account's tasks and pools (shared with the legacy routes).
        api_keys: Accepted Bearer API keys [auth].
        file_url: Builds the signed URL of a result file from its name.
        on_created: Called with each accepted task (callback delivery is scheduled there).
        faults: Draws the injected faults; None (default) injects none.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        api_keys: Collection[str],
        file_url: Callable[[str], str],
        on_created: Callable[[Task], None],
        faults: FaultInjector | None = None,
    ) -> None:
        self._engine = engine
        self._api_keys = frozenset(api_keys)
        self._file_url = file_url
        self._on_created = on_created
        self._faults = faults

    def owns(self, path: str, prefix: str) -> bool:
        """True for ``/omni-video/...`` and ``/tasks`` paths."""
        rest = path.removeprefix(prefix)
        return rest.startswith("/omni-video/") or rest.rstrip("/") == "/tasks"

    def unrouted(self, request: web.Request, exc: web.HTTPException) -> web.Response:
        """A method no route serves on an owned path: [errors] 1202 invalid method."""
        self._engine.counters.error(1202)
        return envelope(1202, f"Invalid method: {request.method} {request.path}", with_data=False)

    def routes(self, prefix: str) -> list[web.RouteDef]:
        """aiohttp route definitions under ``prefix``."""
        return [
            web.post(
                prefix + "/omni-video/{model}", self._handler(self._create, "create_attempts")
            ),
            web.get(prefix + "/tasks", self._handler(self._batch, "batch_queries")),
            web.post(prefix + "/tasks", self._handler(self._cursor, "list_queries")),
        ]

    def _handler(
        self, method: Callable[[web.Request], Awaitable[Any]], counter: str
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        return envelope_handler(self._engine, self._faults, self._authenticate, method, counter)

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        try:
            # [auth]: API key only; no AccessKey is accepted here, so a JWT is an unknown key
            check_authorization(header, api_keys=self._api_keys, access_keys={}, now=time.time())
        except AuthError as exc:  # [errors]: 1001/1002, HTTP 401
            token = (header or "").partition(" ")[2]
            if exc.code == 1002 and token.count(".") == 2:
                # INFERRED code: [auth] says AK/SK (JWT) is for legacy-standard APIs only
                raise ApiError(
                    1002,
                    "Authorization is invalid: new-standard APIs accept an API key only, "
                    "not an AccessKey/SecretKey JWT",
                ) from None
            raise ApiError(exc.code, exc.message) from None

    # --- create ------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> dict[str, Any]:
        engine = self._engine
        model = request.match_info["model"]
        if model not in NEW_VIDEO_MODELS:  # [errors]: 1203 resource (e.g. model) does not exist
            raise ApiError(1203, f"Resource does not exist: model {model!r}")
        # [3.0-omni]: external_task_id "must be unique within the scope of the account" (either
        # standard), refused as on the legacy routes.
        body, spec = checked_body(
            engine,
            await request.read(),
            lambda raw: check_new_video(model, raw),
            "options.external_task_id",
        )

        def admit() -> Task | None:
            task = engine.admit(
                kind="video",
                model_name=model,  # the pool is the legacy model's (Engine.pool, INFERRED)
                cost=1,  # [concurrency]: a video task occupies 1 slot
                outputs=1,
                result_type=None,
                watermark=spec.watermark,
                units=units(spec),
                video_seconds=spec.duration,
                callback_url=spec.callback_url,
                external_task_id=spec.external_task_id,
                body=body,
                api=API,
            )
            if task is not None:
                self._on_created(task)
            return task

        task = await kling_create(engine, self._faults, request, admit)
        # [3.0-omni]: data = {id, status, create_time, update_time, external_id} (ms)
        return {
            "id": task.task_id,
            "status": "submitted",
            "create_time": task.created_ms,
            "update_time": task.created_ms,
            "external_id": task.external_task_id or "",
        }

    # --- queries -----------------------------------------------------------------------------

    async def _batch(self, request: web.Request) -> list[dict[str, Any]]:
        """[3.0-omni]: ``task_ids`` or ``external_task_ids`` (not both), comma-separated; ``data``
        is an array; unknown ids are left out (INFERRED: the page shows no per-id error)."""
        by_id, by_external = request.query.get("task_ids"), request.query.get("external_task_ids")
        if by_id is not None and by_external is not None:
            raise ApiError(1201, "Invalid parameter: task_ids and external_task_ids are exclusive")
        raw, name = (by_id, "task_ids") if by_id is not None else (by_external, "external_task_ids")
        if raw is None:
            raise ApiError(1201, "Invalid parameter: task_ids or external_task_ids is required")
        idents = raw.split(",")
        if any(not ident.strip() for ident in idents):
            raise ApiError(1201, f"Invalid parameter: {name} has an empty id: {raw!r}")
        if len(idents) > MAX_BATCH:  # INFERRED limit (MAX_BATCH)
            raise ApiError(
                1201, f"Invalid parameter: {name} has {len(idents)} ids, at most {MAX_BATCH}"
            )
        self._engine.counters.batch_ids += len(idents)
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        for ident in (i.strip() for i in idents):
            task = (
                self._engine.get(API, ident)
                if name == "task_ids"
                else self._engine.by_external(ident)
            )
            if task is not None and task.api == API and task.task_id not in seen:
                seen.add(task.task_id)
                found.append(self.task_data(task))
        return found

    async def _cursor(self, request: web.Request) -> dict[str, Any]:
        """[3.0-omni] ``POST /tasks``: newest first (INFERRED order) within the time window."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise ApiError(1200, "Invalid request parameters: the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(1201, "Invalid parameter: the request body must be a JSON object")
        allowed = {"start_time", "end_time", "cursor", "limit", "filters"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(1201, f"Invalid parameter: unknown field {unknown[0]!r}")
        limit = body.get("limit", DEFAULT_LIMIT)
        if not _is_int(limit) or not 1 <= limit <= MAX_LIMIT:
            raise ApiError(
                1201, f"Invalid parameter: limit must be an integer 1 to {MAX_LIMIT}, got {limit!r}"
            )
        filters = _filters(body.get("filters", []))
        cursor = body.get("cursor") or ""
        if not isinstance(cursor, str):
            raise ApiError(1201, f"Invalid parameter: cursor must be a string, got {cursor!r}")
        if cursor:  # [3.0-omni]: with a cursor, start_time and end_time are ignored
            start, end, before = _decode_cursor(cursor)
        else:
            end = _millis(body, "end_time", self._engine.ms(self._engine.now()))
            start = _millis(body, "start_time", end - WINDOW_MS)
            if start >= end:  # [3.0-omni]: start must be earlier than end
                raise ApiError(1201, "Invalid parameter: start_time must be earlier than end_time")
            before = len(self._engine.of_api(API))
        tasks = self._engine.of_api(API)
        matches: list[tuple[int, dict[str, Any]]] = []  # (creation index, task data)
        index = min(before, len(tasks))
        while index > 0 and len(matches) <= limit:  # one more than asked tells has_more
            index -= 1
            task = tasks[index]
            if not start <= task.created_ms <= end:
                continue
            data = self.task_data(task)
            statuses, products = filters.get("status"), filters.get("product_type")
            if (statuses is None or data["status"] in statuses) and (
                products is None or "video" in products  # every task here is a video
            ):
                matches.append((index, data))
        has_more = len(matches) > limit
        matches = matches[:limit]
        # The next page continues below the last task returned (keyset on creation order).
        next_cursor = _encode_cursor(start, end, matches[-1][0]) if has_more else ""
        page = [data for _, data in matches]
        # [3.0-omni]: data{result[], count, next_cursor, has_more}
        return {
            "result": page,
            "count": len(page),
            "next_cursor": next_cursor,
            "has_more": has_more,
        }

    # --- shapes ------------------------------------------------------------------------------

    def _shape(self, task: Task, status: Status, updated_ms: int) -> dict[str, Any]:
        """One task as ``GET /tasks`` lists it and a callback posts it [3.0-omni] [callbacks]."""
        outputs: list[dict[str, Any]] = []
        billing: list[dict[str, Any]] = []
        if status is Status.SUCCEED:
            name = f"{task.task_id}-0.mp4"
            mark = self._file_url(name.replace(".", "-wm.", 1)) if task.watermark else ""
            # [3.0-omni]: video output {type, id, url, watermark_url, duration (string seconds)}
            outputs.append(
                {
                    "type": "video",
                    "id": f"{task.task_id}-v0",
                    "url": self._file_url(name),
                    "watermark_url": mark,
                    "duration": str(task.video_seconds),
                }
            )
            # [3.0-omni]: a resource-pack charge has charge_type unit, amount, package_type
            # (cash_type, currency, list_price only for cash); nothing is charged before success
            billing.append({"charge_type": "unit", "amount": task.units, "package_type": "video"})
        return {
            "id": task.task_id,
            "status": STATUS[status],
            "message": FAILURE_MESSAGE if status is Status.FAILED else "",
            "create_time": task.created_ms,
            "update_time": updated_ms,
            "external_id": task.external_task_id or "",
            "outputs": outputs,
            "billing": billing,
        }

    def task_data(self, task: Task) -> dict[str, Any]:
        """The task as of now, one item of ``GET /tasks`` ``data`` [3.0-omni]."""
        now = self._engine.now()
        return self._shape(task, task.status(now), task.updated_ms(now, self._engine.offset))

    def callback_body(self, task: Task, status: Status) -> dict[str, Any]:
        """The new-standard callback body: one ``/tasks`` item in ``status`` [callbacks]."""
        if status is Status.PROCESSING:
            updated = round(self._engine.wall(task.processing_at) * 1000)
        else:
            updated = task.created_ms if status is Status.SUBMITTED else task.end_ms
        return self._shape(task, status, updated)


def _filters(raw: object) -> Mapping[str, tuple[str, ...]]:
    """[3.0-omni]: ``filters: [{key: status|product_type, values: [...]}]``."""
    if not isinstance(raw, list):
        raise ApiError(1201, "Invalid parameter: filters must be an array")
    filters: dict[str, tuple[str, ...]] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"key", "values"}:
            raise ApiError(1201, f"Invalid parameter: filters[{i}] must be {{key, values}}")
        key, values = item.get("key"), item.get("values")
        if key not in FILTER_VALUES:
            raise ApiError(
                1201, f"Invalid parameter: filters[{i}].key must be status or product_type"
            )
        if not isinstance(values, list) or not all(v in FILTER_VALUES[key] for v in values):
            allowed = ", ".join(FILTER_VALUES[key])
            raise ApiError(1201, f"Invalid parameter: filters[{i}].values must be from {allowed}")
        filters[key] = tuple(values)
    return filters


def _millis(body: Mapping[str, Any], key: str, default: int) -> int:
    """An epoch-ms time: the page's example sends strings ("1781193600000"); ints accepted."""
    value = body.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if _is_int(value) and value >= 0:
        return int(value)
    raise ApiError(1201, f"Invalid parameter: {key} must be epoch milliseconds, got {value!r}")


def _encode_cursor(start: int, end: int, before: int) -> str:
    """An opaque cursor: the window and the creation index to continue below."""
    return base64.urlsafe_b64encode(f"{start}:{end}:{before}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start, end, before = (int(part) for part in text.split(":"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError(1201, f"Invalid parameter: cursor {cursor!r} is not valid") from None
    return start, end, before
