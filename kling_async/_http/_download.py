"""Saving a task's outputs to disk.

File names are made by the SDK, never taken from the server: ``{stem}-image-{i}.png``,
``{stem}-series-{i}.png``, ``{stem}-video-{i}.mp4``. Each file is written to a temporary name
in the same folder and renamed into place when complete, so a half-written file is never taken
for a finished one, and removed when the download fails or is cancelled. Only ``http``/``https``
URLs are fetched, bodies are capped (:data:`IMAGE_MAX_BYTES`, :data:`VIDEO_MAX_BYTES`), a body
must keep coming at :data:`MIN_RATE` bytes per second once :data:`GRACE` seconds have passed
(so a file of ``S`` bytes may take at most ``GRACE + S / MIN_RATE`` seconds), and the
``Content-Type`` must match the kind of output expected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import anyio
import attrs

from .._errors import DownloadError, TransportError
from .._models import GeneratedImage, GeneratedVideo, TaskResult
from ._retry import Retry, retrying
from ._transport import Transport

__all__ = ["GRACE", "MIN_RATE", "DownloadError", "SavedFile", "download_result", "safe_stem"]

IMAGE_MAX_BYTES = 64 * 1024 * 1024  # bytes; generous for 4k PNGs
VIDEO_MAX_BYTES = 2 * 1024 * 1024 * 1024  # bytes
# The throughput floor of a download: after GRACE seconds, at least MIN_RATE bytes per second
# on average since it started. A CDN serves MB/s; 64 KiB/s only stops a stalled or trickling
# server (a 2 GiB video may still take 9 hours, a 64 MiB image 17 minutes).
MIN_RATE = 64 * 1024  # bytes per second
GRACE = 30.0  # seconds

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
}


@attrs.frozen(kw_only=True)
class SavedFile:
    """One saved output.

    Attributes:
        path: Where it was written.
        role: ``"image"``, ``"series"`` or ``"video"``.
        index: Its index in the result list.
        bytes: Its size in bytes.
    """

    path: Path
    role: str
    index: int
    bytes: int


def safe_stem(text: str) -> str:
    """A file-name-safe version of ``text``: letters, digits, ``-``, ``_`` and ``.``, no path
    separators, no leading dots, at most 80 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-") or "task"
    return cleaned[:80]


async def download_result(
    transport: Transport,
    result: TaskResult,
    directory: Path,
    *,
    stem: str,
    watermarked: bool = False,
    retry: Retry,
    min_rate: float | None = MIN_RATE,
    grace: float = GRACE,
) -> list[SavedFile]:
    """Download every output of ``result`` into ``directory`` (created if missing). A file whose
    download failed for a passing reason (a dropped connection, a timeout, a body slower than
    ``min_rate`` bytes/s after ``grace`` s, HTTP 5xx or 429) is tried again as ``retry`` says
    (attempts, backoff). No temporary file stays behind, whatever happens
    (failure, cancellation).

    Raises:
        DownloadError: an output could not be saved; files already saved stay.
    """
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    stem = safe_stem(stem)
    jobs: list[tuple[str, Sequence[GeneratedImage | GeneratedVideo]]] = [
        ("image", result.images),
        ("series", result.series_images),
        ("video", result.videos),
    ]
    saved: list[SavedFile] = []
    for role, outputs in jobs:
        for position, output in enumerate(outputs):
            url = output.watermark_url if watermarked and output.watermark_url else output.url
            name = f"{stem}-{role}-{position}"
            async for attempt in retrying(retry, _worth_retrying):
                with attempt:
                    file = await _save(
                        transport, url, directory, name, role, position, min_rate, grace
                    )
                    saved.append(file)
    return saved


def _worth_retrying(exc: BaseException) -> bool:
    """A download failure that may pass: transport trouble, HTTP 429 or 5xx (not a 4xx, a size
    cap or a wrong ``Content-Type``, which fail the same way again)."""
    cause = exc.__cause__
    if not isinstance(exc, DownloadError) or not isinstance(cause, TransportError):
        return False
    status = cause.http_status
    return status is None or status == 429 or status >= 500


async def _save(
    transport: Transport,
    url: str,
    directory: Path,
    name: str,
    role: str,
    index: int,
    min_rate: float | None,
    grace: float,
) -> SavedFile:
    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"{name}: refusing to fetch a non-http(s) URL {url[:40]!r}")
    video = role == "video"
    tmp = directory / f".{name}.part"
    try:
        content_type = await transport.download(
            url,
            tmp,
            max_bytes=VIDEO_MAX_BYTES if video else IMAGE_MAX_BYTES,
            min_rate=min_rate,
            grace=grace,
        )
        expected = "video/" if video else "image/"
        if not content_type.startswith(expected):
            raise DownloadError(
                f"{name}: server sent Content-Type {content_type!r}, expected {expected}*"
            )
        final = directory / (name + _EXTENSIONS.get(content_type, ".mp4" if video else ".png"))
        size = (await anyio.Path(tmp).stat()).st_size
        await anyio.Path(tmp).rename(final)
        return SavedFile(path=final, role=role, index=index, bytes=size)
    except TransportError as exc:
        raise DownloadError(f"{name}: {exc}") from exc
    finally:
        with anyio.CancelScope(shield=True):  # a cancelled download leaves no .part behind
            await anyio.Path(tmp).unlink(missing_ok=True)
