"""Kling's native (legacy-standard) wire API, as served by the sandbox.

Routes ([omni-image], [omni-video]), relative to the sandbox's ``path_prefix``::

    POST /v1/images/omni-image            create ([omni-image], [omni-image])
    GET  /v1/images/omni-image/{id}       query by task_id or external_task_id [omni-image]
    GET  /v1/images/omni-image            list, ?pageNum=&pageSize= [omni-image]
    POST /v1/videos/omni-video            create ([omni-video], [omni-video])
    GET  /v1/videos/omni-video/{id}       query [omni-video]
    GET  /v1/videos/omni-video            list [omni-video]

Every answer is the envelope ``{code, message, request_id, data}`` [omni-image]; error answers carry
no ``data`` [omni-image] [concurrency] and use the HTTP status of the [errors] table.

With a :class:`~._faults.FaultInjector`, creates may answer 5000 (nothing created), 5002 (task
created) or drop the connection (task created); queries may answer 5001 or malformed JSON; any
answer may be slow (see ``_faults.py``).

Sources:
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[omni-video] https://kling.ai/document-api (omni-video; legacy POST /v1/videos/omni-video)
[concurrency] https://kling.ai/document-api/api/get-started/concurrency-rules
[errors] https://kling.ai/document-api/api/get-started/error-codes
[auth] https://kling.ai/document-api/api/get-started/authentication
[changelog] https://kling.ai/document-api/updates/api
[callbacks] https://kling.ai/document-api/api/get-started/callbacks
[prices] https://kling.ai/document-api/pricing/base/image and .../pricing/base/video (``_prices``)
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Final, Protocol, TypeVar

from aiohttp import web

from ._auth import AuthError, check_authorization
from ._engine import Engine
from ._faults import FaultInjector, create_with_faults, truncated_json
from ._prices import RESOLUTION_OF_MODE, image_units, video_units
from ._rules import ImageSpec, RuleError, VideoSpec, check_image, check_video
from ._state import Kind, Status, Task

PATHS: Final[dict[Kind, str]] = {
    "image": "/v1/images/omni-image",  # [omni-image]
    "video": "/v1/videos/omni-video",  # [omni-video]
}
# [errors]: HTTP status of each code the sandbox answers with.
HTTP_STATUS: Final[dict[int, int]] = {
    1000: 401,
    1001: 401,
    1002: 401,
    1003: 401,
    1004: 401,
    1200: 400,
    1201: 400,
    1202: 404,
    1203: 404,
    1303: 429,
    5000: 500,
    5001: 503,
    5002: 504,
}
# [concurrency]: the exact over-limit message.
OVER_LIMIT: Final = "parallel task over resource pack limit"
# Shown in task_status_msg of tasks failed by the sandbox's fail_rate.
FAILURE_MESSAGE: Final = "Sandbox: task failed (fail_rate)"
# [omni-image]: results are kept 30 days; file URLs expire then.
URL_LIFETIME: Final = 30 * 24 * 3600


class ApiError(Exception):
    """An error answer: HTTP status from [errors], envelope without ``data`` [omni-image]
    [concurrency]."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def envelope_body(
    code: int, message: str, data: Any = None, *, with_data: bool = True
) -> dict[str, Any]:
    """The [omni-image] envelope ``{code, message, request_id[, data]}`` as a dict."""
    body: dict[str, Any] = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
    if with_data:
        body["data"] = data
    return body


def envelope(code: int, message: str, data: Any = None, *, with_data: bool = True) -> web.Response:
    """A JSON answer in the [omni-image] envelope (HTTP status from [errors] for errors)."""
    body = envelope_body(code, message, data, with_data=with_data)
    return web.json_response(body, status=HTTP_STATUS.get(code, 200) if code else 200)


def _units(task: Task, status: Status) -> str:
    # [omni-image]: final_unit_deduction is a string; nothing is charged before success
    return task.units if status is Status.SUCCEED else "0"


class KlingNative:
    """Route handlers of the native API over one :class:`Engine`.

    Args:
        engine: The account's tasks and pools.
        api_keys: Accepted Bearer API keys [auth].
        access_keys: AccessKey → SecretKey for HS256 JWTs [auth].
        file_url: Builds the signed URL of a result file from its name.
        on_created: Called with each accepted task (callback delivery is scheduled there).
        faults: Draws the injected faults; None (default) injects none.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        api_keys: Collection[str],
        access_keys: Mapping[str, str],
        file_url: Callable[[str], str],
        on_created: Callable[[Task], None],
        faults: FaultInjector | None = None,
    ) -> None:
        self._engine = engine
        self._api_keys = frozenset(api_keys)
        self._access_keys = dict(access_keys)
        self._file_url = file_url
        self._on_created = on_created
        self._faults = faults

    def owns(self, path: str, prefix: str) -> bool:
        """True for every API path: Kling's native API answers whatever no other wire API
        owns (it is registered last)."""
        return True

    def unrouted(self, request: web.Request, exc: web.HTTPException) -> web.Response:
        """The answer to a path or method no route serves: [errors] 1202 invalid method."""
        self._engine.counters.error(1202)
        message = f"Invalid method: {request.method} {request.path}"
        return envelope(1202, message, with_data=False)

    def routes(self, prefix: str) -> list[web.RouteDef]:
        """aiohttp route definitions under ``prefix``."""
        routes: list[web.RouteDef] = []
        for kind, path in PATHS.items():
            routes += [
                web.post(prefix + path, self._handler(self._create, kind, "create_attempts")),
                web.get(prefix + path, self._handler(self._list, kind, "list_queries")),
                web.get(prefix + path + "/{id}", self._handler(self._query, kind, "queries")),
            ]
        return routes

    def _handler(
        self,
        method: Callable[[web.Request, Kind], Awaitable[Any]],
        kind: Kind,
        counter: str,
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def data(request: web.Request) -> Any:
            return await method(request, kind)

        return envelope_handler(self._engine, self._faults, self.authenticate, data, counter)

    def authenticate(self, request: web.Request) -> None:
        """Accept a valid API key or AccessKey JWT [auth]; else raise 1001–1004."""
        try:
            check_authorization(
                request.headers.get("Authorization"),
                api_keys=self._api_keys,
                access_keys=self._access_keys,
                now=time.time(),
            )
        except AuthError as exc:  # [errors]: 1001–1004, HTTP 401
            raise ApiError(exc.code, exc.message) from None

    # --- create ------------------------------------------------------------------------------

    async def _create(self, request: web.Request, kind: Kind) -> dict[str, Any]:
        engine = self._engine
        check: Callable[[Any], ImageSpec | VideoSpec] = (
            check_image if kind == "image" else check_video
        )
        body, spec = checked_body(engine, await request.read(), check, "external_task_id")

        def admit() -> Task | None:
            task = (
                self._admit_image(spec, body)
                if isinstance(spec, ImageSpec)
                else self._admit_video(spec, body)
            )
            if task is not None:
                self._on_created(task)
            return task

        task = await kling_create(engine, self._faults, request, admit)
        # [omni-image] / [omni-video]: task_id, task_info{external_task_id}, task_status, times
        return {
            "task_id": task.task_id,
            "task_info": {"external_task_id": task.external_task_id or ""},
            "task_status": Status.SUBMITTED.value,
            "created_at": task.created_ms,
            "updated_at": task.created_ms,
        }

    def _admit_image(self, spec: ImageSpec, body: dict[str, Any]) -> Task | None:
        if spec.result_type == "single":
            cost = spec.n  # [concurrency]: an image task occupies n slots
        elif spec.series_amount == "auto":
            # [concurrency] [omni-image] [changelog]: auto occupies as many slots as images actually
            # generated; the
            # sandbox decides that count now and admits only if it fits (admission rule: GAP).
            cost = self._engine.draw_auto_count()
        else:
            cost = spec.series_amount  # INFERRED [concurrency]: a fixed series costs series_amount
        return self._engine.admit(
            kind="image",
            model_name=spec.model_name,
            cost=cost,
            outputs=cost,
            result_type=spec.result_type,
            watermark=spec.watermark,
            units=image_units(spec.model_name, spec.resolution, cost),  # [prices]
            video_seconds=None,
            callback_url=spec.callback_url,
            external_task_id=spec.external_task_id,
            body=body,
        )

    def _admit_video(self, spec: VideoSpec, body: dict[str, Any]) -> Task | None:
        return self._engine.admit(
            kind="video",
            model_name=spec.model_name,
            cost=1,  # [concurrency]: a video task occupies 1 slot
            outputs=1,
            result_type=None,
            watermark=spec.watermark,
            units=video_units(  # [prices]: per second by resolution, video input, audio
                spec.model_name,
                RESOLUTION_OF_MODE[spec.mode],
                native_audio=spec.sound == "on",
                video_input=spec.video_input,
                seconds=spec.duration,
            ),
            video_seconds=spec.duration,
            callback_url=spec.callback_url,
            external_task_id=spec.external_task_id,
            body=body,
        )

    # --- queries -----------------------------------------------------------------------------

    async def _query(self, request: web.Request, kind: Kind) -> dict[str, Any]:
        ident = request.match_info["id"]
        task = self._engine.find(kind, ident)  # [omni-image]: task_id or external_task_id
        if task is None:  # [errors]: 404 / 1203 resource does not exist
            raise ApiError(1203, f"Resource does not exist: no {kind} task {ident!r}")
        return self.task_data(task)

    async def _list(self, request: web.Request, kind: Kind) -> list[dict[str, Any]]:
        # [omni-image]: pageNum 1–1000 (default 1), pageSize 1–500 (default 30)
        page_num = _page_param(request, "pageNum", 1, 1000)
        page_size = _page_param(request, "pageSize", 30, 500)
        skip = (page_num - 1) * page_size
        page: list[dict[str, Any]] = []
        for i, task in enumerate(self._engine.newest_first(kind)):
            if i >= skip + page_size:
                break
            if i >= skip:
                page.append(self.task_data(task))
        return page

    # --- shapes ------------------------------------------------------------------------------

    def _results(self, task: Task, status: Status) -> dict[str, list[dict[str, Any]]]:
        """images / series_images / videos lists, filled only once succeeded [omni-image]."""
        empty: dict[str, list[dict[str, Any]]] = {"images": [], "series_images": [], "videos": []}
        if status is not Status.SUCCEED:
            return empty

        def urls(name: str) -> dict[str, str]:
            # [omni-image] / [omni-image]: watermark_url only meaningful when watermark was
            # requested
            mark = self._file_url(name.replace(".", "-wm.", 1)) if task.watermark else ""
            return {"url": self._file_url(name), "watermark_url": mark}

        if task.kind == "video":
            # [omni-video]: videos[{id, url, watermark_url, duration (string seconds)}]
            empty["videos"] = [
                {
                    "id": f"{task.task_id}-v0",
                    **urls(f"{task.task_id}-0.mp4"),
                    "duration": str(task.video_seconds),
                }
            ]
            return empty
        images = [{"index": i, **urls(f"{task.task_id}-{i}.png")} for i in range(task.outputs)]
        # [omni-image] [third-party fixtures]: a series answer has images [] and series_images
        # filled
        empty["series_images" if task.result_type == "series" else "images"] = images
        return empty

    def task_data(self, task: Task) -> dict[str, Any]:
        """The single-task ``data`` of a query ([omni-image] image, [omni-video] video)."""
        engine = self._engine
        now = engine.now()
        status = task.status(now)
        results = self._results(task, status)
        if task.kind == "image":
            task_result: dict[str, Any] = {
                "result_type": task.result_type,
                "images": results["images"],
                "series_images": results["series_images"],
            }
        else:
            task_result = {"videos": results["videos"]}
        units = _units(task, status)
        return {
            "task_id": task.task_id,
            "task_status": status.value,
            "task_status_msg": FAILURE_MESSAGE if status is Status.FAILED else "",
            "task_info": {"external_task_id": task.external_task_id or ""},
            "task_result": task_result,
            "watermark_info": {"enabled": task.watermark},
            "final_unit_deduction": units,
            # [omni-image]: {quota, list_price} strings (sandbox: no cash billing, list_price 0)
            "final_balance_deduction": {"quota": units, "list_price": "0"},
            "created_at": task.created_ms,
            "updated_at": task.updated_ms(now, engine.offset),
        }

    def callback_body(self, task: Task, status: Status) -> dict[str, Any]:
        """The legacy callback body for ``task`` in ``status`` [callbacks]."""
        results = self._results(task, status)
        units = _units(task, status)
        if status is Status.PROCESSING:
            updated = round(self._engine.wall(task.processing_at) * 1000)
        elif status is Status.SUBMITTED:
            updated = task.created_ms
        else:
            updated = task.end_ms
        return {
            "task_id": task.task_id,
            "task_status": status.value,
            "task_status_msg": FAILURE_MESSAGE if status is Status.FAILED else "",
            "created_at": task.created_ms,
            "updated_at": updated,
            "final_unit_deduction": units,
            "final_balance_deduction": {"quota": units, "list_price": "0"},
            "task_info": {"external_task_id": task.external_task_id or ""},
            # GAP/INFERRED [callbacks]: series_images is not in the callback doc; sent as on query
            "task_result": results,
        }


def _page_param(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= high:  # [omni-image]: out of range → 1201
        raise ApiError(
            1201, f"Invalid parameter: {name} must be an integer in [1, {high}], got {raw!r}"
        )
    return int(raw)


def envelope_handler(
    engine: Engine,
    faults: FaultInjector | None,
    authenticate: Callable[[web.Request], None],
    method: Callable[[web.Request], Awaitable[Any]],
    counter: str,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """One route of Kling's envelope API (both standards): count the request under
    ``counter``, authenticate it, draw a query fault (every counter but ``create_attempts``),
    and answer ``method``'s data or its :class:`ApiError` in the envelope [errors]."""
    is_query = counter != "create_attempts"

    async def handle(request: web.Request) -> web.Response:
        response = await answer(request)
        if faults is not None:
            await faults.maybe_slow()  # every answer, errors included
        return response

    async def answer(request: web.Request) -> web.Response:
        counters = engine.counters
        setattr(counters, counter, getattr(counters, counter) + 1)
        fault = None
        try:
            authenticate(request)
            if is_query and faults is not None:
                fault = faults.query_fault()
                if fault == "query_error":  # [errors]: 5001 unavailable, HTTP 503
                    raise ApiError(5001, "Service unavailable (sandbox fault: query_error)")
            data = await method(request)
        except ApiError as exc:
            counters.error(exc.code)
            if fault == "malformed_query":  # HTTP 200 whatever the answer would have been
                return truncated_json(envelope_body(exc.code, exc.message, with_data=False))
            return envelope(exc.code, exc.message, with_data=False)
        if fault == "malformed_query":
            return truncated_json(envelope_body(0, "SUCCEED", data))
        return envelope(0, "SUCCEED", data)

    return handle


async def kling_create(
    engine: Engine,
    faults: FaultInjector | None,
    request: web.Request,
    admit: Callable[[], Task | None],
) -> Task:
    """A create of either Kling standard that passed validation, through the shared fault path:
    ``admit()`` makes the task or returns ``None`` for a full pool (1303, HTTP 429,
    [concurrency]). Faults: [errors] 5000 internal error (HTTP 500) before, 5002 internal
    timeout (HTTP 504, the task exists and runs) after; a dropped connection: INFERRED "task
    may exist"."""

    def full() -> Exception:
        engine.counters.rejected_1303 += 1
        return ApiError(1303, OVER_LIMIT)

    return await create_with_faults(
        faults,
        request,
        admit,
        before=lambda: ApiError(5000, "Internal error (sandbox fault: error_before_create)"),
        full=full,
        after=lambda: ApiError(5002, "Internal timeout (sandbox fault: error_after_create)"),
    )


class _Spec(Protocol):
    @property
    def external_task_id(self) -> str | None: ...


SpecT = TypeVar("SpecT", bound=_Spec)


def checked_body(
    engine: Engine, raw: bytes, check: Callable[[Any], SpecT], external_field: str
) -> tuple[Any, SpecT]:
    """A create body of either Kling standard parsed and checked: 1200 when it is not JSON,
    1201 naming the field when ``check`` refuses it ([errors]), 1201 when its external task id
    (``external_field``) is already in use on the account. That it "must be unique per user" is
    documented ([omni-image]); the answer to a duplicate is not (INFERRED: 1201)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(1200, "Invalid request parameters: the body is not valid JSON") from None
    try:
        spec = check(body)
    except RuleError as exc:
        raise ApiError(1201, str(exc)) from None
    external = spec.external_task_id
    if external is not None and engine.external_id_taken(external):
        engine.counters.duplicate_external_ids += 1
        raise ApiError(1201, f"Invalid parameter: {external_field} already exists: {external!r}")
    return body, spec
