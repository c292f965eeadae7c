"""The Modellix wire API for Kling omni models, as served by the sandbox.

Routes ([modellix-api], [modellix-query]), relative to the sandbox's
``path_prefix``::

    POST /api/v1/kling/{model}/async      submit, "async" form ([modellix-api] v2, docs pages)
    POST /api/v1/kling/{model}            submit, "plain" form ([modellix-api] v3, CLI 0.0.7)
    GET  /api/v1/tasks/{task_id}          task status and result [modellix-query]

``{model}`` is one of ``kling-v3-omni-image``, ``kling-v3-omni-video``, ``kling-image-o1`` and
``kling-video-o1`` [modellix-v3-image]. Success answers are HTTP 200 ``{"code": 0, "message":
"success",
"data": {...}}``; error answers are ``{"code": <HTTP status>, "message": "<Category>: <detail>"}``
with the HTTP status equal to ``code`` and no ``data`` [modellix-errors].

Order of checks on every request: route (404: unknown model, or a submit form not enabled),
then the Bearer key (401), then the per-key requests-per-window limit (429 with ``Retry-After``
and ``X-RateLimit-Reset``), then the body (400) and the team concurrency limit (429). Refused
by routing, authentication or the rate limit, a request does not enter the window; every other
request with a known key does, whatever its answer (INFERRED: [modellix-api] gives the limit, not
what
counts; a refused request that counted would lock a polling client out for good).

Sources:
[modellix-api] https://docs.modellix.ai/ways-to-use/api
[modellix-query] https://docs.modellix.ai/api-reference/query-task-result
[modellix-v3-image] https://docs.modellix.ai/kling/kling-v3-omni-image
[modellix-errors] https://docs.modellix.ai/how-to-use/error-handling
[modellix-cli] https://docs.modellix.ai/ways-to-use/cli
[modellix-v3-video] https://docs.modellix.ai/kling/kling-v3-omni-video
"""

from __future__ import annotations

import datetime
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final

from aiohttp import web

from ._engine import MODELLIX_POOL, Engine
from ._faults import FaultInjector, create_with_faults, truncated_json
from ._media import result_size
from ._modellix_rules import (
    MODELS,
    ModellixFormatError,
    ModellixRuleError,
    ModellixSpec,
    check_modellix,
)
from ._state import RequestWindow, Status, Task

SUBMIT_FORMS: Final = ("async", "plain")  # [modellix-api]: ".../async" and the bare path
API_ROOT: Final = "/api/v1"  # [modellix-api]: every model and task endpoint sits here
# [modellix-query] [modellix-cli]: result URLs expire after about 7 days.
RESULT_LIFETIME: Final = 7 * 24 * 3600
# Modellix task ids look like "task-…" ([modellix-api] [modellix-v3-image] example
# "task-v3-omni-…").
TASK_ID_PREFIX: Final = "task-"
# [modellix-query]: the task status vocabulary, mapped from the engine's lifecycle.
STATUS: Final[dict[Status, str]] = {
    Status.SUBMITTED: "pending",
    Status.PROCESSING: "processing",
    Status.SUCCEED: "success",
    Status.FAILED: "failed",
}
# Reason of a task failed by the sandbox's fail_rate (INFERRED, [modellix-query]: the reason sits in
# message).
FAILURE_MESSAGE: Final = "Task failed: Sandbox: task failed (fail_rate)"


class ModellixError(Exception):
    """An error answer: ``code`` is the HTTP status too [modellix-errors]."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """``{"code": code, "message": message}`` with HTTP status ``code`` [modellix-errors]."""
    return web.json_response({"code": code, "message": message}, status=code, headers=headers)


def success_response(data: Any, message: str = "success") -> web.Response:
    """HTTP 200 ``{"code": 0, "message": "success", "data": data}`` ([modellix-api],
    [modellix-query])."""
    return web.json_response({"code": 0, "message": message, "data": data})


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="milliseconds")


class ModellixApi:
    """Route handlers of the Modellix wire API over one :class:`Engine`.

    Args:
        engine: The shared tasks, clock, random source and counters; it must hold the team pool
            :data:`~._engine.MODELLIX_POOL`.
        api_keys: Accepted Bearer API keys [modellix-api], the same as on Kling. Kling's
            AccessKey/SecretKey JWTs are not accepted: Modellix takes API keys only [modellix-api].
        base_url: Returns the sandbox's base URL (for ``get_result.url``).
        file_url: Builds the signed URL of a result file from its name and expiry (epoch s).
        window: The per-key requests-per-window limit [modellix-api].
        submit_forms: The enabled submit path forms, a subset of :data:`SUBMIT_FORMS`.
        faults: Draws the injected faults; None injects none.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        api_keys: Collection[str],
        base_url: Callable[[], str],
        file_url: Callable[[str, int], str],
        window: RequestWindow,
        submit_forms: Collection[str],
        faults: FaultInjector | None = None,
    ) -> None:
        self._engine = engine
        self._api_keys = frozenset(api_keys)
        self._base_url = base_url
        self._file_url = file_url
        self._window = window
        self._forms = frozenset(submit_forms)
        self._faults = faults

    def routes(self, prefix: str) -> list[web.RouteDef]:
        """aiohttp route definitions under ``prefix``."""
        root = prefix + API_ROOT
        return [
            web.post(root + "/kling/{model}/async", self._handler(self._submit, "async")),
            web.post(root + "/kling/{model}", self._handler(self._submit, "plain")),
            web.get(root + "/tasks/{task_id}", self._handler(self._query, "")),
            web.get(root + "/models", self._handler(self._models, "")),
            web.get(root + "/apikey/validate", self._validate_key),
        ]

    # --- catalogue and key check (what Modellix's own CLI calls first) ------------------------

    async def _models(self, request: web.Request, form: str, key_holder: list[str]) -> web.Response:
        """``GET /api/v1/models``: the catalogue, top-level ``{"models": [{slug, type,
        docs_url, description, price}]}`` (the shape Modellix's CLI reads,
        https://docs.modellix.ai/ways-to-use/cli); here the four Kling omni models served."""
        self._admit_request(request, key_holder)
        models = [
            {
                "slug": f"kling/{model}",
                "type": kind,
                "docs_url": f"https://docs.modellix.ai/kling/{model}",
                "description": f"Kling {model} (kling_async sandbox)",
                "price": None,
            }
            for model, kind in MODELS.items()
        ]
        return web.json_response({"models": models})

    async def _validate_key(self, request: web.Request) -> web.Response:
        """``GET /api/v1/apikey/validate``: a free key check, HTTP 200 with ``data.is_valid``
        true or false (https://docs.modellix.ai/ways-to-use/cli); not counted against the
        request window."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        valid = scheme == "Bearer" and token in self._api_keys
        return success_response({"is_valid": valid})

    def owns(self, path: str, prefix: str) -> bool:
        """True if ``path`` lies under this API's root (``prefix`` + ``/api/``)."""
        return path.startswith(prefix + "/api/")

    def unrouted(self, request: web.Request, exc: web.HTTPException) -> web.Response:
        """The answer to a path or method under ``/api/`` that no route serves."""
        if isinstance(exc, web.HTTPMethodNotAllowed):
            # INFERRED: not in the [modellix-errors] table; an HTTP 405 as any server gives (the
            # official CLI
            # counts 405 as a definite rejection, [modellix-errors])
            code, message = 405, f"Method not allowed: {request.method} {request.path}"
        else:  # [modellix-errors]: 404 task, model or provider not found
            code, message = 404, f"Not found: {request.method} {request.path}"
        self._engine.counters.error(code)
        return error_response(code, message)

    def _handler(
        self,
        method: Callable[[web.Request, str, list[str]], Awaitable[web.Response]],
        form: str,
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            key_holder: list[str] = []
            try:
                response = await method(request, form, key_holder)
            except ModellixError as exc:
                self._engine.counters.error(exc.code)
                response = error_response(exc.code, exc.message, exc.headers)
            if key_holder and "X-RateLimit-Remaining" not in response.headers:
                # [modellix-api] [modellix-cli]: X-RateLimit-Remaining on answers
                remaining = self._window.remaining(key_holder[0], self._engine.now())
                response.headers["X-RateLimit-Limit"] = str(self._window.limit)
                response.headers["X-RateLimit-Remaining"] = str(remaining)
            if self._faults is not None:
                await self._faults.maybe_slow()  # every answer, errors included
            return response

        return handle

    def _admit_request(self, request: web.Request, key_holder: list[str]) -> None:
        """Authenticate (401) and apply the per-key request limit (429)."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:  # [modellix-errors]: 401 "Authentication failed"
            raise ModellixError(401, "Authentication failed: missing Authorization header")
        # [modellix-api]: "Authorization: Bearer <API key>"
        if scheme != "Bearer" or token not in self._api_keys:
            raise ModellixError(401, "Authentication failed: invalid API key")
        engine = self._engine
        wait = self._window.hit(token, engine.now())
        if wait is not None:
            engine.counters.rate_limited_429 += 1
            retry_after = max(1, math.ceil(wait))
            # [modellix-api] [modellix-cli]: Retry-After (seconds) and
            # X-RateLimit-Reset; INFERRED: Reset is the epoch second the window frees a slot.
            headers = {
                "Retry-After": str(retry_after),
                "X-RateLimit-Reset": str(math.ceil(time.time() + wait)),
                "X-RateLimit-Limit": str(self._window.limit),
                "X-RateLimit-Remaining": "0",
            }
            # [modellix-errors], [modellix-api]: 429 for the rate limit (per API key, [modellix-
            # api])
            raise ModellixError(
                429,
                f"Rate limit exceeded: at most {self._window.limit} requests per "
                f"{self._window.window:g} seconds per API key",
                headers,
            )
        key_holder.append(token)

    # --- submit ------------------------------------------------------------------------------

    async def _submit(self, request: web.Request, form: str, key_holder: list[str]) -> web.Response:
        engine = self._engine
        model = request.match_info["model"]
        if form not in self._forms:  # [modellix-api]: a path form this server does not serve
            raise ModellixError(404, f"Not found: {request.path} (submit path form not served)")
        if model not in MODELS:  # [modellix-errors]: 404 model not found
            raise ModellixError(404, f"Not found: model 'kling/{model}' does not exist")
        engine.counters.create_attempts += 1
        self._admit_request(request, key_holder)
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            # [modellix-errors]: "Invalid format" (e.g. invalid JSON), HTTP 400
            raise ModellixError(400, "Invalid format: the body is not valid JSON") from None
        try:
            spec = check_modellix(model, body)
        except (ModellixRuleError, ModellixFormatError) as exc:  # [modellix-errors]: 400
            raise ModellixError(400, str(exc)) from None

        def full() -> Exception:
            engine.counters.concurrency_429 += 1
            pool = engine.named_pool(MODELLIX_POOL)
            in_use = pool.in_use(engine.now())
            # [modellix-api] [modellix-cli]: "team concurrent task limit", 429;
            # [modellix-errors]: concurrency and rate limits share 429 and differ only in the
            # message.
            return ModellixError(
                429,
                f"Concurrency limit exceeded: team concurrent task limit is {pool.capacity} "
                f"({in_use} in use, this task needs {spec.cost})",
            )

        def after() -> Exception:
            # [modellix-errors]: a 5xx after the POST leaves the outcome unknown; the task
            # exists and runs
            code = engine.choice((500, 504))
            category = "Internal error" if code == 500 else "Gateway timeout"
            return ModellixError(code, f"{category}: sandbox fault error_after_create")

        # Faults are drawn for a create that passed validation (a refused one is answered as is);
        # [modellix-errors]: 500 internal error before; a dropped answer: outcome unknown.
        task = await create_with_faults(
            self._faults,
            request,
            lambda: self._admit(spec, body),
            before=lambda: ModellixError(500, "Internal error: sandbox fault error_before_create"),
            full=full,
            after=after,
        )
        # [modellix-api] [modellix-v3-image] [modellix-v3-video]: status pending, task_id, model_id,
        # get_result
        return success_response(
            {
                "status": STATUS[Status.SUBMITTED],
                "task_id": task.task_id,
                "model_id": task.model_name,
                "get_result": {
                    "method": "GET",
                    "url": f"{self._base_url()}{API_ROOT}/tasks/{task.task_id}",
                },
            }
        )

    def _admit(self, spec: ModellixSpec, body: dict[str, Any]) -> Task | None:
        if spec.kind == "image":
            # Sandbox convention, as on Kling [modellix-api]: 8 units per image, 16 at 4K.
            units = str((16 if spec.resolution == "4k" else 8) * spec.cost)
        else:
            units = str(spec.video_seconds)  # sandbox convention: one unit per second
        # [modellix-api] [modellix-cli]: the limit is a team *task* limit ("typically 3");
        # counting images as on Kling is INFERRED, so a task with more images than the whole
        # limit must still be able to run (INFERRED): it runs alone, holding every slot.
        capacity = self._engine.named_pool(MODELLIX_POOL).capacity
        return self._engine.admit(
            kind=spec.kind,
            model_name=spec.model_id,
            cost=min(spec.cost, capacity),
            outputs=spec.cost if spec.kind == "image" else 1,
            result_type=spec.result_type,
            watermark=False,  # [modellix-api]: no watermark on Modellix
            units=units,
            video_seconds=spec.video_seconds,
            callback_url=None,  # [modellix-api]: no per-request callback
            external_task_id=None,  # [modellix-api]: no external id
            body=body,
            api="modellix",
            pool=MODELLIX_POOL,  # [modellix-api] [modellix-cli]: limits are per team
            id_prefix=TASK_ID_PREFIX,
        )

    # --- query -------------------------------------------------------------------------------

    async def _query(self, request: web.Request, form: str, key_holder: list[str]) -> web.Response:
        engine = self._engine
        engine.counters.queries += 1
        self._admit_request(request, key_holder)
        fault = self._faults.query_fault() if self._faults is not None else None
        if fault == "query_error":
            code = engine.choice((503, 500))
            # [modellix-errors]: 503 unavailable / 500 internal error (GETs may retry)
            category = "Service unavailable" if code == 503 else "Internal error"
            raise ModellixError(code, f"{category}: sandbox fault query_error")
        task_id = request.match_info["task_id"]
        task = engine.get("modellix", task_id)
        if task is None:  # [modellix-query] [modellix-errors]: unknown task id → 404
            raise ModellixError(404, f"Not found: Task ID not found: {task_id!r}")
        data, message = self.task_data(task)
        if fault == "malformed_query":
            return truncated_json({"code": 0, "message": message, "data": data})
        return success_response(data, message)

    # --- shapes ------------------------------------------------------------------------------

    def task_data(self, task: Task) -> tuple[dict[str, Any], str]:
        """The query ``data`` of ``task`` now, and the envelope ``message`` [modellix-query]."""
        engine = self._engine
        status = task.status(engine.now())
        data: dict[str, Any] = {
            "status": STATUS[status],
            "task_id": task.task_id,
            "model_id": task.model_name,
        }
        if status in (Status.SUCCEED, Status.FAILED):
            # [modellix-query] [modellix-cli]: duration, INFERRED milliseconds of processing
            data["duration"] = task.end_ms - task.created_ms
        if status is Status.FAILED:
            # [modellix-query] [modellix-errors] INFERRED: HTTP 200, status failed, reason in
            # message
            return data, FAILURE_MESSAGE
        if status is Status.SUCCEED:
            expires = int(engine.wall(task.end)) + RESULT_LIFETIME
            data["result"] = self._result(task, expires)
            # [modellix-query] [modellix-cli]: result_expires_at, epoch milliseconds
            data["result_expires_at"] = expires * 1000
        return data, "success"

    def _result(self, task: Task, expires: int) -> dict[str, Any]:
        """``result`` of a succeeded task [modellix-query] [modellix-cli]."""
        if task.kind == "video":
            names = [(f"{task.task_id}-0.mp4", "video", "mp4")]
        else:
            # [modellix-api] INFERRED: each series image is one resources[] entry
            names = [(f"{task.task_id}-{i}.png", "image", "png") for i in range(task.outputs)]
        width, height = result_size(task.kind, task.body)
        resources = [
            {
                "url": self._file_url(name, expires),
                "type": kind,
                "width": width,
                "height": height,
                "format": fmt,
                "role": "primary",
            }
            for name, kind, fmt in names
        ]
        metadata: dict[str, Any] = {"request_id": str(uuid.uuid4())}
        if task.kind == "image":
            metadata["image_count"] = len(resources)
        return {
            "resources": resources,
            "metadata": metadata,
            "extensions": {
                "submit_time": _iso(self._engine.wall(task.start)),
                "end_time": _iso(self._engine.wall(task.end)),
            },
        }
