"""Codec for Modellix's unified API in front of Kling's omni models.

The same :class:`OmniImageRequest` / :class:`OmniVideoRequest` run here unchanged, as far as
Modellix can carry them: :meth:`ModellixCodec.check` refuses, before anything is sent, every
field Modellix has no place for.

What comes from where:
- base URL, Bearer auth, no list/batch query, no lookup by a client id: [modellix-api]
- create paths (``/kling/{model}/async`` in the docs, ``/kling/{model}`` since CLI 0.0.7) and
  the create answer ``{code, message, data: {status, task_id, model_id, get_result}}``:
  [modellix-api]
- query ``GET /tasks/{task_id}``: ``status``, ``result.resources[]``, ``result_expires_at``:
  [modellix-query]
- errors ``{code: <HTTP status>, message: "<Category>: <detail>"}``: [modellix-errors]
- ``Retry-After`` / ``X-RateLimit-Reset``, no callbacks: [modellix-api]
- request fields (flat ``images``, ``element_ids``, ``videos``): the model pages below

Facts marked INFERRED are not stated by any source; the reason is given where they are used.

Sources:
[modellix-api] https://docs.modellix.ai/ways-to-use/api
[modellix-query] https://docs.modellix.ai/api-reference/query-task-result
[modellix-errors] https://docs.modellix.ai/how-to-use/error-handling
[modellix-v3-image] https://docs.modellix.ai/kling/kling-v3-omni-image
[modellix-cli] https://docs.modellix.ai/ways-to-use/cli
[modellix-image-o1] https://docs.modellix.ai/kling/kling-image-o1
[modellix-v3-video] https://docs.modellix.ai/kling/kling-v3-omni-video
[modellix-video-o1] https://docs.modellix.ai/kling/kling-video-o1
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Container
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import attrs

from .._errors import (
    APIError,
    InvalidInputError,
    ResponseFormatError,
    UnknownStatusError,
)
from .._http._transport import Response
from .._models import (
    Kind,
    OmniImageRequest,
    OmniVideoRequest,
    Request,
    Task,
    TaskResult,
    TaskStatus,
)
from .._requests._api_rules import refuse_for
from .._requests._validate import check_local_image, check_local_video
from ._codec import NoAccountCosts, NoUnifiedQuery
from ._modellix_answers import _dict, _error, _outputs, _reason, _time
from ._traits import ProviderTraits

__all__ = ["DEFAULT_BASE_URL", "TRAITS", "ModellixCodec"]

DEFAULT_BASE_URL = "https://api.modellix.ai/api/v1"  # [modellix-api] [modellix-cli]
# [modellix-query]: result URLs expire after about 7 days [modellix-cli]
RESULT_LIFETIME = dt.timedelta(days=7)

TRAITS = ProviderTraits(
    name="modellix",
    api_key_env="MODELLIX_API_KEY",
    base_url_env="MODELLIX_BASE_URL",
    default_base_url=DEFAULT_BASE_URL,
    # 100 requests a minute per key (https://docs.modellix.ai/ways-to-use/api)
    default_requests_per_minute=100.0,
    supports_jwt=False,  # API keys only
    supports_callbacks=False,  # no callback_url field
    supports_external_lookup=False,  # no client-chosen id, no lookup by it [modellix-api]
    supports_list_query=False,  # no list or batch query [modellix-api]
    shares_one_pool=True,  # the team's concurrency limit covers every model
    # A task answer carries no charge (https://docs.modellix.ai/api-reference/query-task-result)
    reports_units=False,
)

# [modellix-v3-image]–[modellix-image-o1]: request model_name + kind → the model slug in the path.
_MODELS: dict[tuple[str, Kind], str] = {
    ("kling-v3-omni", "image"): "kling-v3-omni-image",  # [modellix-v3-image]
    ("kling-image-o1", "image"): "kling-image-o1",  # [modellix-image-o1]
    ("kling-v3-omni", "video"): "kling-v3-omni-video",  # [modellix-v3-video]
    ("kling-video-o1", "video"): "kling-video-o1",  # [modellix-video-o1]
}

# [modellix-query]: pending → processing → success | failed [modellix-cli]. The official CLI also
# takes
# completed/succeeded as success and error/canceled/cancelled as failure [modellix-cli];
# canceled/cancelled as a terminal failure is INFERRED in [modellix-query].
_STATUS: dict[str, TaskStatus] = {
    "pending": TaskStatus.SUBMITTED,
    "processing": TaskStatus.PROCESSING,
    "success": TaskStatus.SUCCEEDED,
    "succeeded": TaskStatus.SUCCEEDED,
    "completed": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "error": TaskStatus.FAILED,
    "canceled": TaskStatus.FAILED,
    "cancelled": TaskStatus.FAILED,
}


def _refuse(field: str, section: str, why: str = "") -> InvalidInputError:
    """The refusal of a field Modellix has no place for; ``section`` names the page(s)."""
    reason = f": {why}" if why else ""
    pages = ", ".join(dict.fromkeys(page.strip() for page in section.split(", ")))
    return InvalidInputError(
        f"modellix cannot carry {field} ({pages}){reason}; remove it or use provider='kling'"
    )


def encode_media(field: str, value: str | Path | bytes, *, video: bool = False) -> str:
    """A URL as is; a local path or bytes checked and encoded as raw base64 (no ``data:``
    prefix).

    [modellix-v3-image]–[modellix-video-o1]: each ``images``/``videos`` item is a "URL or Base64"
    string. INFERRED: raw
    base64, the form Kling itself takes, since Modellix forwards to Kling and no page says it
    wants a ``data:`` URL (only the old kling-image-o1 page's example shows one). Local files
    are checked against Kling's rules, which Modellix does not relax. Blocking (reads files).

    Raises:
        InvalidInputError: the file breaks a documented rule (format, size, dimensions).
    """
    if isinstance(value, str):
        return value
    data = check_local_video(field, value) if video else check_local_image(field, value)
    return base64.b64encode(data).decode("ascii")


@attrs.frozen
class ModellixCodec(NoUnifiedQuery, NoAccountCosts):
    """Maps request models to Modellix's flat wire form and answers back to results.

    Attributes:
        submit_path: Which documented create path to use [modellix-api]: ``"async"``
            (``/kling/{model}/async``, the docs' form; default) or ``"plain"``
            (``/kling/{model}``, CLI 0.0.7's form). :meth:`other_submit_path` gives the other.
        name: ``"modellix"``.
    """

    submit_path: Literal["async", "plain"] = "async"
    name: str = "modellix"

    def fallback(self, status: int | None) -> ModellixCodec | None:
        """After a definite 404/405 the other documented create path form; else None."""
        return self.other_submit_path() if status in (404, 405) else None

    def is_duplicate_external_id(self, error: APIError) -> bool:
        """Modellix takes no client-chosen id: never."""
        return False

    def is_missing_path(self, error: APIError) -> bool:
        """HTTP 404/405 without Modellix's envelope (an answer in the envelope speaks of the
        request, not of the path)."""
        return error.code is None and error.http_status in (404, 405)

    def list_params(self, page: int, page_size: int) -> dict[str, str]:
        """Modellix has no list query.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError("modellix has no list or batch task query")

    def other_submit_path(self) -> ModellixCodec:
        """The same codec on the other create path form [modellix-api]. Use it only after a definite
        404/405: a create whose outcome is unknown must never be re-sent [modellix-errors]."""
        return attrs.evolve(self, submit_path="plain" if self.submit_path == "async" else "async")

    # -- requests ----------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        """Refuse what Modellix cannot carry, before any HTTP request. Pure: reads no files.

        Refused (each message names ``modellix``, the field and the vendor's page):

        - ``watermark``, ``callback_url``, ``external_task_id`` set on the request ([modellix-api],
        [modellix-api]:
          the Kling pages on Modellix have no such fields). The key the client generates for
          its own bookkeeping is not a request field and is never sent.
        - image: ``series_amount="auto"`` ([modellix-v3-image]: an integer 2–9); ``element_list`` on
          ``kling-image-o1`` ([modellix-image-o1]: the current page lists no element field, a GAP:
          refused
          rather than risk a paid task that silently ignores the elements).
        - video: ``shot_type="customize"`` / ``multi_prompt`` ([modellix-v3-video]: only
        ``intelligence``);
          an ``image_list`` item with a ``type`` (first/end frame; [modellix-v3-video]: images are
          plain
          references); ``element_list`` ([modellix-v3-video]: no ``element_ids``, CONFIRMED absent);
          ``mode="4k"`` ([modellix-v3-video]: ``std``/``pro``); ``keep_original_sound``
          ([modellix-v3-video]: not listed);
          ``refer_type="feature"`` ([modellix-v3-video]: with ``videos`` the duration must be left
          out, so the
          output follows the input video as in a base edit; INFERRED: feature reference is
          not available).
        - then the rules the Modellix pages state (prompt required, ``multi_shot`` /
          ``shot_type``, sound off with ``videos``, durations: 3–15 s, ``kling-video-o1``
          without a reference video 5 or 10 [modellix-video-o1]); see ``_api_rules``.

        Raises:
            InvalidInputError: (a ``ValueError``) naming the provider and the field.
        """
        if request.watermark is not None:
            raise _refuse(
                "watermark",
                "https://docs.modellix.ai/ways-to-use/api",
                "Modellix drops watermark_info",
            )
        if request.callback_url is not None:
            raise _refuse(
                "callback_url",
                "https://docs.modellix.ai/ways-to-use/api, https://docs.modellix.ai/ways-to-use/api",
                "no per-request callback exists",
            )
        if request.external_task_id is not None:
            raise _refuse(
                "external_task_id",
                "https://docs.modellix.ai/ways-to-use/api, https://docs.modellix.ai/ways-to-use/api",
                "no client-chosen id and no lookup by it",
            )
        if isinstance(request, OmniImageRequest):
            self._check_image(request)
        else:
            self._check_video(request)
        # The Modellix pages' own rules; Kling's native ones do not bind a Modellix request.
        refuse_for("modellix", request)

    def _check_image(self, r: OmniImageRequest) -> None:
        if r.result_type == "series" and r.series_amount == "auto":
            raise _refuse(
                "series_amount='auto'",
                "https://docs.modellix.ai/kling/kling-v3-omni-image",
                "series_amount is an integer 2–9",
            )
        if r.model_name == "kling-image-o1" and r.element_list:
            raise _refuse(
                "element_list on kling-image-o1",
                "https://docs.modellix.ai/kling/kling-image-o1",
                "the current page lists no element field (use kling-v3-omni)",
            )

    def _check_video(self, r: OmniVideoRequest) -> None:
        if r.shot_type == "customize" or r.multi_prompt:
            field = "multi_prompt" if r.multi_prompt else "shot_type='customize'"
            raise _refuse(
                field,
                "https://docs.modellix.ai/kling/kling-v3-omni-video",
                "only shot_type='intelligence' is exposed",
            )
        for i, image in enumerate(r.image_list):
            if image.type is not None:
                raise _refuse(
                    f"image_list[{i}].type={image.type!r}",
                    "https://docs.modellix.ai/kling/kling-v3-omni-video",
                    "images are plain references, no first/end frames",
                )
        if r.element_list:
            raise _refuse(
                "element_list",
                "https://docs.modellix.ai/kling/kling-v3-omni-video",
                "the video pages have no element_ids",
            )
        if r.mode == "4k":
            raise _refuse(
                "mode='4k'",
                "https://docs.modellix.ai/kling/kling-v3-omni-video",
                "mode is 'std' or 'pro'",
            )
        for i, video in enumerate(r.video_list):
            if video.keep_original_sound is not None:
                raise _refuse(
                    f"video_list[{i}].keep_original_sound",
                    "https://docs.modellix.ai/kling/kling-v3-omni-video",
                )
            if video.refer_type == "feature":
                raise _refuse(
                    f"video_list[{i}].refer_type='feature'",
                    "https://docs.modellix.ai/kling/kling-v3-omni-video",
                    "a reference video is edited; duration must be left out",
                )

    def create_path(self, request: Request) -> str:
        """Path of the create endpoint, below :data:`DEFAULT_BASE_URL` [modellix-api]: e.g.
        ``/kling/kling-v3-omni-image/async`` (``submit_path="async"``) or
        ``/kling/kling-v3-omni-image`` (``"plain"``)."""
        model = _MODELS[(request.model_name, request.kind)]
        suffix = "/async" if self.submit_path == "async" else ""
        return f"/kling/{model}{suffix}"

    def query_path(self, kind: Kind, task_id: str) -> str:
        """Path of the task query, ``/tasks/{task_id}`` for every kind [modellix-query]. The id is
        percent-encoded, as the official CLI does."""
        return f"/tasks/{quote(task_id, safe='')}"

    def list_path(self, kind: Kind) -> str:
        """Modellix has no list query [modellix-api].

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(
            "modellix has no list or batch task query https://docs.modellix.ai/ways-to-use/api"
        )

    def build_create(self, request: Request, external_task_id: str) -> dict[str, Any]:
        """The flat JSON body of a create [modellix-v3-image]. ``external_task_id`` is the client's
        key for
        its own bookkeeping; Modellix has no such field, so it is not sent [modellix-api]. No
        ``model_name`` either: the path names the model [modellix-api]. Blocking: reads and
        base64-encodes local files.

        Raises:
            InvalidInputError: :meth:`check` refuses the request, or a local input breaks a
                documented rule.
        """
        self.check(request)
        if isinstance(request, OmniImageRequest):
            return self._image_body(request)
        return self._video_body(request)

    def _image_body(self, r: OmniImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": r.prompt,
            "resolution": r.resolution,
            "aspect_ratio": r.aspect_ratio,
        }
        if r.model_name == "kling-v3-omni":
            # [modellix-v3-image]: series → series_amount and no n; single → n and no series_amount.
            body["result_type"] = r.result_type
            if r.result_type == "series":
                body["series_amount"] = r.series_amount
            else:
                body["n"] = r.n
            if r.element_list:
                # [modellix-v3-image]: item type not stated; Kling's element ids are integers
                # (INFERRED).
                body["element_ids"] = list(r.element_list)
        else:
            # [modellix-image-o1]: prompt, images, resolution, aspect_ratio, n only.
            body["n"] = r.n
        if r.image_list:
            body["images"] = [
                encode_media(f"image_list[{i}]", im) for i, im in enumerate(r.image_list)
            ]
        return body

    def _video_body(self, r: OmniVideoRequest) -> dict[str, Any]:
        # [modellix-v3-video]/[modellix-video-o1] [modellix-v3-video] [modellix-video-o1]. prompt is
        # always set here: validation requires it unless
        # shot_type='customize', which check() refuses.
        body: dict[str, Any] = {
            "prompt": r.prompt,
            "multi_shot": bool(r.multi_shot),  # unset: the pages' default, false
            "sound": r.sound,
            "mode": r.mode,
        }
        if r.multi_shot:
            body["shot_type"] = r.shot_type
        if r.image_list:
            body["images"] = [
                encode_media(f"image_list[{i}]", im.image) for i, im in enumerate(r.image_list)
            ]
        if r.video_list:
            # [modellix-v3-video]: exactly one video; duration left out when videos is given.
            body["videos"] = [
                encode_media(f"video_list[{i}]", v.video, video=True)
                for i, v in enumerate(r.video_list)
            ]
        else:
            body["duration"] = r.duration  # [modellix-v3-video]: an integer, seconds
        if r.aspect_ratio is not None:
            body["aspect_ratio"] = r.aspect_ratio
        return body

    # -- answers -----------------------------------------------------------------------------

    def unwrap(self, response: Response) -> Any:
        """Return the envelope's ``data`` or raise the mapped error ([modellix-api]–[modellix-api]).

        Success is a 2xx with ``code`` 0. Errors carry ``code`` = the HTTP status and
        ``message`` = ``"<Category>: <detail>"`` [modellix-errors]; the class follows ``code`` (or
        the HTTP
        status when the body is not the envelope): 400 :class:`InvalidRequestError`, 401
        :class:`AuthenticationError`, 402 :class:`AccountError`, 403
        :class:`PermissionDeniedError`, 404/405 :class:`InvalidRequestError`, 408/409/5xx
        :class:`ServerError`, 429 :class:`ConcurrencyLimitError` when the message speaks of
        concurrency, else :class:`RateLimitError`. ``http_status`` is the answer's status.
        On a 429, ``retry_after`` (seconds) comes from ``Retry-After`` (seconds or an HTTP
        date), else ``X-RateLimit-Reset`` ([modellix-api]; its unit is not documented: a value above
        1e9
        is read as an epoch time in seconds, above 1e12 in milliseconds, anything smaller as
        seconds to wait).

        Raises:
            APIError: a subclass as above.
            ResponseFormatError: a 2xx answer that is not the ``{code, message, data}``
                envelope.
        """
        body = response.body
        status = response.status
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            if status >= 300:
                raise _error(
                    f"HTTP {status}: {response.text[:200]}", None, status, response.headers, body
                )
            raise ResponseFormatError(
                f"HTTP {status} answer is not a Modellix envelope: {response.text[:200]!r}"
            )
        assert isinstance(body, dict)
        if code == 0 and status < 300:
            data = body.get("data")
            message = body.get("message")
            if (
                isinstance(data, dict)
                and "message" not in data
                and isinstance(message, str)
                and message.strip().lower() not in ("", "success", "ok")
            ):
                # [modellix-query] [modellix-errors]: a failed task's reason sits in the envelope's
                # message; carry it
                # into data so parse_task can read it.
                data = {**data, "message": message}
            return data
        message = body.get("message")
        text = message if isinstance(message, str) and message else f"HTTP {status}"
        raise _error(text, code if code != 0 else None, status, response.headers, body)

    def parse_create(self, data: Any, request: Request, external_task_id: str, cost: int) -> Task:
        """The :class:`Task` of a create answer (``data = {status: "pending", task_id,
        model_id, get_result}``, [modellix-api]). ``external_task_id`` is the client's key, kept on
        the
        task though Modellix never saw it. ``get_result.url`` is not trusted: queries build
        their path from ``task_id`` [modellix-api] [modellix-cli].

        Raises:
            ResponseFormatError: no usable ``task_id`` (the official CLI treats that as an
                unknown paid outcome, [modellix-api]).
        """
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id.strip():
            raise ResponseFormatError(f"create answer without a task_id: {data!r:.200}")
        return Task(
            task_id=task_id,
            external_task_id=external_task_id,
            kind=request.kind,
            model=request.model_name,
            cost=cost,
            created_at=None,  # [modellix-api]: the create answer carries no time
        )

    def parse_task(self, data: Any, *, series: bool | None = None) -> TaskResult:
        """The :class:`TaskResult` of a query answer [modellix-query].

        ``status`` maps ``pending`` → SUBMITTED, ``processing`` → PROCESSING, ``success``
        (also ``succeeded``, ``completed``) → SUCCEEDED, ``failed`` (also ``error``,
        ``canceled``, ``cancelled``) → FAILED. Outputs come from ``result.resources[]`` (or
        ``data.resources[]``; items may be bare URL strings, [modellix-query] [modellix-cli]):
        ``type`` ``image``
        → ``images``, ``video`` → ``videos``; ``audio`` and other types are skipped; a missing
        type is guessed from the URL's suffix, then from ``model_id`` (INFERRED).

        Series: the reference shows one ``resources[]`` entry per image and no series marker
        ([modellix-api], INFERRED; GAP ). Image outputs go to ``series_images`` when ``series`` is
        ``True`` (the caller knows its request's ``result_type``), or, when ``series`` is
        ``None``, when the answer says ``result_type: "series"`` in ``data``, ``result`` or
        ``result.metadata`` (INFERRED, by analogy with Kling's ``task_result.result_type``).

        Times: ``result.extensions.submit_time`` / ``end_time`` (ISO 8601, [modellix-query]) become
        ``created_at`` / ``updated_at``; ``result_expires_at`` (epoch, ms in the official
        client's fixture, [modellix-query] [modellix-cli]; seconds tolerated) becomes
        ``expires_at``. Without it
        a finished task's ``expires_at`` is estimated as its end time + 7 days [modellix-query]. All
        datetimes are aware (UTC when the wire gives no offset). Unknown fields are ignored;
        ill-typed optional fields are treated as absent.

        Raises:
            ResponseFormatError: ``data`` is not an object, lacks ``task_id`` or ``status``,
                has an unknown status, or a resource without a URL.
        """
        if not isinstance(data, dict):
            raise ResponseFormatError(f"malformed task answer: not an object: {data!r:.200}")
        task_id = data.get("task_id")
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        raw_status = data.get("status")
        if not isinstance(task_id, str) or not task_id:
            raise ResponseFormatError(f"malformed task answer: no task_id: {data!r:.200}")
        if not isinstance(raw_status, str):
            raise ResponseFormatError(f"malformed task answer: no status: {data!r:.200}")
        status = _STATUS.get(raw_status.strip().lower())
        if status is None:
            raise UnknownStatusError(raw_status, task_id)

        result = _dict(data.get("result"))
        metadata = _dict(result.get("metadata"))
        extensions = _dict(result.get("extensions"))
        if series is None:
            series = any(place.get("result_type") == "series" for place in (data, result, metadata))
        resources = result.get("resources")
        if not isinstance(resources, list):
            resources = data.get("resources")
        model_id = data.get("model_id")
        images, videos = _outputs(
            resources if isinstance(resources, list) else [],
            model_id if isinstance(model_id, str) else "",
        )

        created = _time(extensions.get("submit_time"))
        updated = _time(extensions.get("end_time"))
        expires = _time(data.get("result_expires_at"))
        if expires is None:
            expires = _time(result.get("result_expires_at"))
        if expires is None and updated is not None and status is TaskStatus.SUCCEEDED:
            expires = updated + RESULT_LIFETIME
        return TaskResult(
            task_id=task_id,
            external_task_id=None,  # [modellix-api]: Modellix never knew one
            status=status,
            status_message=_reason(data, raw_status) if status is TaskStatus.FAILED else None,
            images=() if series else images,
            series_images=images if series else (),
            videos=videos,
            created_at=created,
            updated_at=updated,
            expires_at=expires,
        )

    def parse_task_list(self, data: Any, wanted: Container[str] | None = None) -> list[TaskResult]:
        """Modellix has no list query [modellix-api].

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(
            "modellix has no list or batch task query https://docs.modellix.ai/ways-to-use/api"
        )

    def is_terminal_wire_status(self, raw: str) -> bool:
        """Whether a wire ``status`` string means the task has ended [modellix-query]: ``success``,
        ``failed`` and the aliases :meth:`parse_task` accepts. Case-insensitive."""
        status = _STATUS.get(raw.strip().lower())
        return status is not None and status.is_terminal


# -- helpers ---------------------------------------------------------------------------------
