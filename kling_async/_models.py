"""Request and result models.

Requests carry Kling's own field names ([omni-image] omni-image, [omni-video] omni-video), one
shape for every wire API. Building one checks that shape (types, the values a field can take,
the limits every API states alike); the rules of the wire API a request goes to run before it
is sent (``KlingClient.check``; see ``docs/validation.md``). Either way a broken rule raises
``ValueError`` naming the field, the value and the rule, and nothing reaches the network.

Sources: https://kling.ai/document-api/api/image/3-0-omni/image-omni (omni-image) and the legacy
omni-video page ([omni-video], S13).

Sources:
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[omni-video] https://kling.ai/document-api (omni-video; legacy POST /v1/videos/omni-video)
"""

from __future__ import annotations

import datetime as dt
import enum
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs

from ._requests._api_rules import check_for, check_image_shape, check_video_shape
from ._requests._wire_bodies import Dialect, body_api, image_kwargs, video_kwargs

if TYPE_CHECKING:
    from ._errors import KlingError

__all__ = [
    "GeneratedImage",
    "GeneratedVideo",
    "ImageInput",
    "MultiPrompt",
    "OmniImageRequest",
    "OmniVideoRequest",
    "Outcome",
    "ReferenceVideo",
    "Request",
    "Task",
    "TaskResult",
    "TaskStatus",
    "VideoImage",
]

ImageInput: TypeAlias = "str | os.PathLike[str] | bytes"
"""An image or video input: an ``http(s)://`` URL (sent as is), a local path (read and sent as
raw base64, no ``data:`` prefix), or the file's bytes (sent as raw base64)."""

ImageModel = Literal["kling-image-o1", "kling-v3-omni"]
VideoModel = Literal["kling-video-o1", "kling-v3-omni"]
Resolution = Literal["1k", "2k", "4k"]
ResultType = Literal["single", "series"]
ImageAspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9", "auto"]
VideoAspectRatio = Literal["16:9", "9:16", "1:1"]
Kind = Literal["image", "video"]


def _media(value: object, field: str = "input") -> str | Path | bytes:
    """Normalise an input: URLs stay strings, paths become ``Path``, bytes stay bytes."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, os.PathLike):
        return Path(value)
    if isinstance(value, str):
        if value.startswith(("http://", "https://")):
            return value
        return Path(value)
    raise TypeError(
        f"{field}: expected a URL, a local path or bytes, got {type(value).__name__}: {value!r:.60}"
    )


def _image_media(value: Any) -> str | Path | bytes:
    return _media(value, "image")


def _video_media(value: Any) -> str | Path | bytes:
    return _media(value, "video")


def _media_tuple(values: Any) -> tuple[str | Path | bytes, ...]:
    return tuple(_media(v, f"image_list[{i}]") for i, v in enumerate(_items(values, "image_list")))


def _items(values: Any, field: str) -> list[Any]:
    """The items of a list field; a lone string, path, bytes or non-iterable is refused."""
    if values is None:
        return []
    if isinstance(values, str | bytes | os.PathLike) or not hasattr(values, "__iter__"):
        raise TypeError(f"{field}: expected a list, got a single {type(values).__name__}")
    return list(values)


def _int_tuple(values: Any) -> tuple[int, ...]:
    out = []
    for v in _items(values, "element_list"):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"element_list: element ids are integers, got {v!r}")
        out.append(v)
    return tuple(out)


@attrs.frozen(kw_only=True)
class OmniImageRequest:
    """One omni-image task (``POST /v1/images/omni-image``, [omni-image]).

    Args:
        prompt: 1–2500 characters; reference inputs as ``<<<image_1>>>``.
        model_name: ``"kling-image-o1"`` (the API's default) or ``"kling-v3-omni"``.
        image_list: Reference images, each a URL, a local path or bytes (jpg/jpeg/png, ≤ 10 MB,
            each side ≥ 300 px, aspect ratio 1:2.5–2.5:1).
        element_list: Element ids from the element library. ``image_list`` + ``element_list`` ≤ 10.
        resolution: ``"1k"`` (default), ``"2k"`` or ``"4k"`` (not on ``kling-image-o1``).
        result_type: ``"single"`` (default) or ``"series"`` (``kling-v3-omni`` only).
        n: Images for a single result, 1–9 (default 1). Costs ``n`` quota slots.
        series_amount: Images in a series, 2–9 or ``"auto"`` (default 4). A fixed series costs
            ``series_amount`` slots; ``"auto"`` costs as many as the model finally produces.
        aspect_ratio: One of ``16:9 9:16 1:1 4:3 3:4 3:2 2:3 21:9 auto`` (default ``auto``;
            Kling's own API refuses ``auto`` for ``kling-v3-omni`` without reference images,
            Modellix does not).
        watermark: Also produce a watermarked copy (``watermark_info.enabled``). ``None`` omits it.
        callback_url: URL the server notifies on status changes.
        external_task_id: Your id for the task, unique per account. Generated when omitted.

    Raises:
        ValueError: A documented rule is broken; the message names the field, value and rule.
        TypeError: A field has the wrong type.
    """

    prompt: str
    model_name: ImageModel = "kling-image-o1"
    image_list: tuple[str | Path | bytes, ...] = attrs.field(default=(), converter=_media_tuple)
    element_list: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    resolution: Resolution = "1k"
    result_type: ResultType = "single"
    n: int = 1
    series_amount: int | Literal["auto"] = 4
    aspect_ratio: ImageAspectRatio = "auto"
    watermark: bool | None = None
    callback_url: str | None = None
    external_task_id: str | None = None

    kind: Kind = attrs.field(default="image", init=False)

    def __attrs_post_init__(self) -> None:
        check_image_shape(self)

    @classmethod
    def from_wire(
        cls,
        body: Mapping[str, Any],
        *,
        provider: Dialect = "kling",
        base: str | os.PathLike[str] | None = None,
    ) -> OmniImageRequest:
        """Build a request from an omni-image create body exactly as the vendor documents it.

        ``provider="kling"`` reads Kling's native body
        (https://kling.ai/document-api/api/image/3-0-omni/image-omni)::

            OmniImageRequest.from_wire({
                "model_name": "kling-v3-omni",
                "prompt": "cover in the style of <<<image_1>>>",
                "image_list": [{"image": "https://example.com/style.png"}],
                "element_list": [{"element_id": 160}],
                "result_type": "series", "series_amount": "auto",
                "watermark_info": {"enabled": False},
            })

        ``provider="modellix"`` reads Modellix's flat body (``images``, ``element_ids``;
        https://docs.modellix.ai/kling/kling-v3-omni-image), with the model as ``model_name``
        (``"kling-v3-omni-image"`` or ``"kling-v3-omni"``). The SDK's own field shapes are read
        as well. Images are URLs, raw base64 (or ``data:`` URIs), or local paths resolved
        against ``base`` (default: the working directory), which must exist.

        The body is checked against the rules of the API it is written for (Kling's legacy
        standard, Kling's new standard for a ``contents`` body, or Modellix; see
        ``docs/validation.md``), nothing else: the vendors' own example bodies are accepted as
        written.

        Raises:
            ValueError: an unknown field (the message names it and the nearest known one), a
                missing local file, or a broken rule of that API.
            TypeError: a field of the wrong JSON type.
        """
        folder = base if base is None or isinstance(base, Path) else Path(base)
        request = cls(**image_kwargs(body, dialect=provider, base=folder))
        check_for(body_api(body, provider), request)
        return request

    @property
    def is_auto_series(self) -> bool:
        """Whether this is a series whose size the model picks (``series_amount="auto"``)."""
        return self.result_type == "series" and self.series_amount == "auto"

    @property
    def has_local_media(self) -> bool:
        """Whether an input is a local path or bytes (building the create body then reads and
        encodes data, worth a worker thread); ``False`` when every input is a URL."""
        return any(not isinstance(image, str) for image in self.image_list)


@attrs.frozen(kw_only=True)
class VideoImage:
    """An image given to an omni-video task (``image_list`` item, [omni-video]).

    Args:
        image: URL, local path or bytes.
        type: ``"first_frame"``, ``"end_frame"`` or ``None`` for a plain reference image.
    """

    image: str | Path | bytes = attrs.field(converter=_image_media)
    type: Literal["first_frame", "end_frame"] | None = None


def _video_images(values: Any) -> tuple[VideoImage, ...]:
    return tuple(
        v
        if isinstance(v, VideoImage)
        else VideoImage(**v)
        if isinstance(v, Mapping)
        else VideoImage(image=_media(v, f"image_list[{i}]"))
        for i, v in enumerate(_items(values, "image_list"))
    )


@attrs.frozen(kw_only=True)
class ReferenceVideo:
    """A reference video for an omni-video task (``video_list`` item, [omni-video]).

    Args:
        video: URL, local path or bytes (MP4/MOV, ≥ 3 s, 720–2160 px, ≤ 200 MB).
        refer_type: ``"base"`` (edit this video, the API's default) or ``"feature"``
            (reference its style or camera, or make the next/previous shot).
        keep_original_sound: ``"yes"``, ``"no"`` or ``None`` (omitted).
    """

    video: str | Path | bytes = attrs.field(converter=_video_media)
    refer_type: Literal["base", "feature"] = "base"
    keep_original_sound: Literal["yes", "no"] | None = None


@attrs.frozen(kw_only=True)
class MultiPrompt:
    """One shot of a ``shot_type="customize"`` multi-shot video (``multi_prompt`` item).

    Args:
        index: Shot number, 1–6.
        prompt: 1–512 characters.
        duration: Shot length in whole seconds, ≥ 1. The shots' durations sum to the video's.
    """

    index: int
    prompt: str
    duration: int


def _multi_prompts(values: Any) -> tuple[MultiPrompt, ...]:
    return tuple(
        v if isinstance(v, MultiPrompt) else MultiPrompt(**v)
        for v in _items(values, "multi_prompt")
    )


def _ref_videos(values: Any) -> tuple[ReferenceVideo, ...]:
    if isinstance(values, ReferenceVideo):
        return (values,)
    return tuple(
        v
        if isinstance(v, ReferenceVideo)
        else ReferenceVideo(**v)
        if isinstance(v, Mapping)
        else ReferenceVideo(video=_media(v, f"video_list[{i}]"))
        for i, v in enumerate(_items(values, "video_list"))
    )


@attrs.frozen(kw_only=True)
class OmniVideoRequest:
    """One omni-video task (``POST /v1/videos/omni-video``, legacy standard, [omni-video]).

    Args:
        prompt: 1–2500 characters (3072 on the new standard's 3.0 Omni); required unless
            ``shot_type="customize"``. References as
            ``<<<image_1>>>``, ``<<<element_1>>>``, ``<<<video_1>>>``.
        model_name: ``"kling-video-o1"`` (the API's default) or ``"kling-v3-omni"``.
        multi_shot: Storyboard mode. ``None`` (default) leaves it to the API's default: false
            on the legacy standard and Modellix, true on the new standard's 3.0 Omni (which
            then needs no ``shot_type``); on the legacy standard ``True`` needs ``shot_type``.
        shot_type: ``"customize"`` (shots given in ``multi_prompt``) or ``"intelligence"``.
        multi_prompt: 1–6 :class:`MultiPrompt` shots for ``customize``.
        image_list: Reference images or frames (:class:`VideoImage`, or plain inputs). Images +
            elements ≤ 7, ≤ 4 with a reference video. An end frame needs a first frame.
        element_list: Element ids.
        video_list: At most one :class:`ReferenceVideo`.
        sound: ``"on"`` or ``"off"`` (default); must be ``"off"`` with a reference video.
        mode: ``"std"`` (720p), ``"pro"`` (1080p, default) or ``"4k"`` (``kling-v3-omni`` only;
            on the legacy standard not with a reference video).
        aspect_ratio: ``16:9``, ``9:16`` or ``1:1``. Legacy standard: required unless a first
            frame or a base video is given, and refused with them. New standard and Modellix:
            optional (default 16:9 there), taken with frames and videos too.
        duration: Seconds: ``kling-v3-omni`` 3–15, ``kling-video-o1`` 3–10 (5 or 10 from a
            first frame alone, and on Modellix whenever no reference video is given).
            Default 5.
        watermark, callback_url, external_task_id: As for :class:`OmniImageRequest`.

    Raises:
        ValueError: A rule every API states is broken; the message names the field, value and
            rule. The rules of one API are checked when the request goes to it.
        TypeError: A field has the wrong type.
    """

    prompt: str | None = None
    model_name: VideoModel = "kling-video-o1"
    multi_shot: bool | None = None
    shot_type: Literal["customize", "intelligence"] | None = None
    multi_prompt: tuple[MultiPrompt, ...] = attrs.field(default=(), converter=_multi_prompts)
    image_list: tuple[VideoImage, ...] = attrs.field(default=(), converter=_video_images)
    element_list: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    video_list: tuple[ReferenceVideo, ...] = attrs.field(default=(), converter=_ref_videos)
    sound: Literal["on", "off"] = "off"
    mode: Literal["std", "pro", "4k"] = "pro"
    aspect_ratio: VideoAspectRatio | None = None
    duration: int = 5
    watermark: bool | None = None
    callback_url: str | None = None
    external_task_id: str | None = None

    kind: Kind = attrs.field(default="video", init=False)

    def __attrs_post_init__(self) -> None:
        check_video_shape(self)

    @classmethod
    def from_wire(
        cls,
        body: Mapping[str, Any],
        *,
        provider: Dialect = "kling",
        base: str | os.PathLike[str] | None = None,
    ) -> OmniVideoRequest:
        """Build a request from an omni-video create body exactly as the vendor documents it.

        ``provider="kling"`` reads Kling's legacy-standard omni-video body (``POST
        /v1/videos/omni-video``, in Kling's API documentation, https://kling.ai/document-api)::

            OmniVideoRequest.from_wire({
                "model_name": "kling-v3-omni",
                "prompt": "the bottle turns slowly",
                "image_list": [{"image_url": "https://example.com/a.png", "type": "first_frame"}],
                "duration": "5", "mode": "pro", "sound": "off",
            })

        ``provider="modellix"`` reads Modellix's flat body (``images``, ``videos``, ``duration``
        an integer; https://docs.modellix.ai/kling/kling-v3-omni-video), with the model as
        ``model_name`` (``"kling-v3-omni-video"``, ``"kling-video-o1"`` or Kling's names). The
        SDK's own field shapes are read as well. Media are URLs, raw base64 (or ``data:``
        URIs), or local paths resolved against ``base`` (default: the working directory),
        which must exist.

        The body is checked against the rules of the API it is written for (Kling's legacy
        standard, Kling's new standard for a ``contents`` body, or Modellix; see
        ``docs/validation.md``), nothing else: the vendors' own example bodies are accepted as
        written.

        Raises:
            ValueError: an unknown field (the message names it and the nearest known one), a
                missing local file, or a broken rule of that API.
            TypeError: a field of the wrong JSON type.
        """
        folder = base if base is None or isinstance(base, Path) else Path(base)
        request = cls(**video_kwargs(body, dialect=provider, base=folder))
        check_for(body_api(body, provider), request)
        return request

    @property
    def has_local_media(self) -> bool:
        """Whether an input is a local path or bytes (building the create body then reads and
        encodes data, worth a worker thread); ``False`` when every input is a URL."""
        return any(not isinstance(item.image, str) for item in self.image_list) or any(
            not isinstance(item.video, str) for item in self.video_list
        )


Request: TypeAlias = OmniImageRequest | OmniVideoRequest
"""Any request the client accepts."""


class TaskStatus(enum.Enum):
    """A task's state, normalised across wire APIs.

    Kling's ``task_status`` values map as ``submitted`` → SUBMITTED, ``processing`` →
    PROCESSING, ``succeed`` → SUCCEEDED, ``failed`` → FAILED [omni-image].
    """

    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """``True`` for SUCCEEDED and FAILED: the task holds no quota slots any more."""
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)


@attrs.frozen(kw_only=True)
class Task:
    """A task the server accepted.

    Attributes:
        task_id: The server's id.
        external_task_id: The caller's id (generated by the SDK when not given).
        kind: ``"image"`` or ``"video"``.
        model: The model name, e.g. ``"kling-v3-omni"``.
        cost: Quota slots reserved for it (for an ``auto`` series, the reserved estimate).
        created_at: When the server created it (aware UTC datetime).
        adopted: ``True`` when this client did not create it: the create was refused because
            its ``external_task_id`` was already in use, and the task of that id was looked up
            and followed instead (an earlier run created it).
    """

    task_id: str
    external_task_id: str | None
    kind: Kind
    model: str
    cost: int
    created_at: dt.datetime | None = None
    adopted: bool = False


@attrs.frozen(kw_only=True)
class GeneratedImage:
    """One generated image.

    Attributes:
        index: Position in its list (``images`` or ``series_images``), from 0.
        url: Download URL (hotlink-protected; Kling purges results after 30 days).
        watermark_url: The watermarked copy's URL, when a watermark was requested.
    """

    index: int
    url: str
    watermark_url: str | None = None


@attrs.frozen(kw_only=True)
class GeneratedVideo:
    """One generated video.

    Attributes:
        index: Position in ``videos``, from 0.
        url: Download URL.
        watermark_url: The watermarked copy's URL, when requested.
        duration: Length in seconds, when reported.
        id: The server's id for the video, when reported.
    """

    index: int
    url: str
    watermark_url: str | None = None
    duration: float | None = None
    id: str | None = None


@attrs.frozen(kw_only=True)
class TaskResult:
    """A task's state as the server last reported it.

    Attributes:
        task_id, external_task_id: The task's ids.
        status: A :class:`TaskStatus`.
        status_message: The server's ``task_status_msg`` (the failure reason when failed).
        images: Single-result images (``task_result.images``).
        series_images: Series images (``task_result.series_images``).
        videos: Generated videos.
        units: The units the task was charged (Kling's ``final_unit_deduction``, a decimal
            string on the wire; the new standard's ``billing[]`` unit amounts, summed), or
            ``None`` when not reported: before the task ends, and always on Modellix, whose
            task answers carry no charge
            (https://docs.modellix.ai/api-reference/query-task-result). See
            https://kling.ai/document-api/api/image/3-0-omni/image-omni for the field.
        created_at, updated_at: Aware UTC datetimes.
        expires_at: When the result URLs stop working, when known (Kling: 30 days after the
            task ended, an estimate; Modellix reports it).
    """

    task_id: str
    external_task_id: str | None = None
    status: TaskStatus
    status_message: str | None = None
    images: tuple[GeneratedImage, ...] = ()
    series_images: tuple[GeneratedImage, ...] = ()
    videos: tuple[GeneratedVideo, ...] = ()
    units: Decimal | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None

    @property
    def outputs(self) -> tuple[GeneratedImage | GeneratedVideo, ...]:
        """Every output of the task: ``images``, then ``series_images``, then ``videos``."""
        return (*self.images, *self.series_images, *self.videos)


@attrs.frozen(kw_only=True)
class Outcome:
    """How one request ended. Per-task failures are values here, never raised.

    Attributes:
        request: The request as given.
        index: Its position in the input (0-based).
        task: The server task, or ``None`` when no task was created.
        result: The final :class:`TaskResult`, or ``None`` when the task never finished.
        error: A :class:`KlingError` when the request failed, else ``None``.
    """

    request: Request
    index: int
    task: Task | None = None
    result: TaskResult | None = None
    error: KlingError | None = None

    @property
    def ok(self) -> bool:
        """``True`` when the task succeeded."""
        return (
            self.error is None
            and self.result is not None
            and self.result.status is TaskStatus.SUCCEEDED
        )
