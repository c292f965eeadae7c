"""Reading Modellix's answers: outputs, times, ``Retry-After`` / ``X-RateLimit-Reset`` and the
error classes of its ``{code, message}`` envelope (https://docs.modellix.ai/how-to-use/error-handling,
https://docs.modellix.ai/api-reference/query-task-result). Used by :mod:`.modellix` only.

Sources:
[modellix-errors] https://docs.modellix.ai/how-to-use/error-handling
[modellix-api] https://docs.modellix.ai/ways-to-use/api
[modellix-cli] https://docs.modellix.ai/ways-to-use/cli
[modellix-query] https://docs.modellix.ai/api-reference/query-task-result
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .._convert import ms_to_datetime
from .._errors import (
    AccountError,
    APIError,
    AuthenticationError,
    ConcurrencyLimitError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
)
from .._models import GeneratedImage, GeneratedVideo

# [modellix-errors]: ``code`` equals the HTTP status; no business codes exist beyond it.
_ERRORS: dict[int, type[APIError]] = {
    400: InvalidRequestError,  # invalid, missing or out-of-range parameters; bad JSON
    401: AuthenticationError,  # missing, invalid or expired key
    402: AccountError,  # insufficient balance [modellix-api] [modellix-cli]
    403: PermissionDeniedError,
    404: InvalidRequestError,  # not found; http_status kept: the client may switch path
    405: InvalidRequestError,  # wrong path form (kept: the client may switch path)
    # [modellix-errors]: official clients treat 408 and 409 as "outcome unknown", like a 5xx:
    # ServerError is
    # the class the client handles as ambiguous on a create.
    408: ServerError,
    409: ServerError,
    413: InvalidRequestError,  # [modellix-errors]: counted as definitely rejected [modellix-cli]
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,  # split by message in _error(): rate limit vs concurrency
}

# [modellix-errors]: concurrency and rate limit share 429 and differ only in the message text
# (INFERRED:
# parsing the message is the only way to tell them apart).
_CONCURRENCY = re.compile(r"concurren|parallel|simultaneous|running tasks|task limit", re.I)

_VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".m4v", ".mkv")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _outputs(
    resources: list[Any], model_id: str
) -> tuple[tuple[GeneratedImage, ...], tuple[GeneratedVideo, ...]]:
    images: list[GeneratedImage] = []
    videos: list[GeneratedVideo] = []
    for position, item in enumerate(resources):
        if isinstance(item, str):
            url, kind, duration = item, None, None
        elif isinstance(item, dict) and isinstance(item.get("url"), str):
            url = item["url"]
            kind = item.get("type") if isinstance(item.get("type"), str) else None
            duration = _seconds(item.get("duration"))
        else:
            raise ResponseFormatError(
                f"malformed task answer: resources[{position}] has no url: {item!r:.200}"
            )
        kind = (kind or _guess_kind(url, model_id)).lower()
        if kind == "image":
            images.append(GeneratedImage(index=len(images), url=url))
        elif kind == "video":
            videos.append(GeneratedVideo(index=len(videos), url=url, duration=duration))
        # [modellix-query]: "audio" (and anything else) is not an output the SDK models: skipped.
    return tuple(images), tuple(videos)


def _guess_kind(url: str, model_id: str) -> str:
    """INFERRED: [modellix-query] makes ``type`` part of each resource, but the CLI tolerates
    its absence."""
    path = urlsplit(url).path.lower()
    if path.endswith(_VIDEO_SUFFIXES):
        return "video"
    if path.endswith(_IMAGE_SUFFIXES):
        return "image"
    return "video" if "video" in model_id else "image"


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _reason(data: dict[str, Any], raw_status: str) -> str:
    """A failed task's reason. [modellix-query]/[modellix-errors]: no documented field
    (``data.error`` "is no longer
    used"); the fields tried here are INFERRED, and the status itself is the fallback."""
    for key in ("message", "error_message", "fail_reason", "reason", "error"):
        value = data.get(key)
        if isinstance(value, dict):
            value = value.get("message")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"task {raw_status.strip().lower()}"


def _time(value: Any) -> dt.datetime | None:
    """An aware datetime from an ISO 8601 string (UTC when it has no offset) or an epoch
    number. Epoch values above 1e11 are milliseconds, smaller ones seconds (the 1e11 split
    puts both forms of any date between 1973 and 5138 on the right side). Unreadable → None.
    """
    if isinstance(value, bool) or value is None or value == "":
        return None
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            try:
                parsed = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if number is None or not math.isfinite(number) or number <= 0:
        return None
    ms = number if number >= 1e11 else number * 1000.0
    try:
        return ms_to_datetime(ms)
    except (OverflowError, ValueError, OSError):
        return None


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in (headers or {}).items() if k.lower() == lowered), None)


def _retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or an HTTP date) or else
    ``X-RateLimit-Reset`` ([modellix-api]; epoch seconds or ms when large, else seconds). ``None``
    when
    neither is usable."""
    now = time.time() if now is None else now
    value = _header(headers, "Retry-After")
    if value is not None:
        seconds = _number(value)
        if seconds is not None:
            return max(0.0, seconds)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            return max(0.0, when.timestamp() - now)
    reset = _number(_header(headers, "X-RateLimit-Reset"))
    if reset is None:
        return None
    if reset >= 1e12:
        return max(0.0, reset / 1000.0 - now)
    if reset >= 1e9:
        return max(0.0, reset - now)
    return max(0.0, reset)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _error(
    message: str,
    code: int | None,
    http_status: int,
    headers: Mapping[str, str] | None,
    body: Any,
) -> APIError:
    """Build the :class:`APIError` for an error answer [modellix-errors], with
    ``retry_after`` on 429."""
    key = code if code is not None and 400 <= code < 600 else http_status
    cls: type[APIError] = ServerError if key >= 500 else _ERRORS.get(key, APIError)
    if cls is RateLimitError and _CONCURRENCY.search(message):
        cls = ConcurrencyLimitError
    request_id = body.get("request_id") if isinstance(body, dict) else None
    if not isinstance(request_id, str | int) or isinstance(request_id, bool) or request_id == "":
        request_id = _header(headers, "X-Request-Id")
    error = cls(
        message,
        code=code,
        request_id=str(request_id) if request_id is not None else None,
        http_status=http_status,
    )
    if isinstance(error, RateLimitError):
        error.retry_after = _retry_after(headers)
    return error
