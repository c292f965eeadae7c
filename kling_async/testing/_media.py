"""Result files and reference-image inspection for the sandbox.

Result files are real bytes that look like what was asked (:func:`result_size`): PNGs of the
requested resolution and aspect ratio, a two-colour gradient derived from the file name, made
with the standard library; and MP4s whose container headers (``mvhd``, ``tkhd``, ``mdhd``,
``elst``, the ``avc1`` entry) declare the requested duration and frame size, made from one tiny
bundled H.264 clip (``data/sample.mp4``; its coded frames stay 64×64, 1 s).
Their URLs are "anti-hotlinking" style ([omni-image], [omni-image]): ``expires`` plus an HMAC
``sign`` over
name and expiry with a per-sandbox random secret.

Reference images sent as raw base64 are decoded and inspected here (format, size, dimensions,
[omni-image] / [omni-video]) without Pillow, which is only a dev dependency.

Sources:
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[omni-video] https://kling.ai/document-api (omni-video; legacy POST /v1/videos/omni-video)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import importlib.resources
import math
import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"


# Pixels of the square of each image resolution. Kling documents 1k / 2k / 4k but not the exact
# pixels (https://kling.ai/document-api/api/image/3-0-omni/image-omni); the sandbox takes the
# common meaning, a 1024² / 2048² / 4096² area, shaped to the aspect ratio.
IMAGE_SIDE = {"1k": 1024, "2k": 2048, "4k": 4096}
# Short side of a video per mode: std ≈ 720p, pro ≈ 1080p, 4k = 2160p (Kling's omni-video mode),
# and per new-standard settings.resolution (https://kling.ai/document-api/api/video/3-0-omni/video-omni).
VIDEO_SHORT_SIDE = {"std": 720, "pro": 1080, "4k": 2160, "720p": 720, "1080p": 1080}


def result_size(kind: str, body: Mapping[str, Any]) -> tuple[int, int]:
    """(width, height) in pixels of the outputs a create ``body`` asks for.

    Images: the resolution's area (:data:`IMAGE_SIDE`) in ``aspect_ratio``; ``auto`` keeps the
    first reference image's ratio when its bytes were sent (a URL is not fetched: 1:1). Videos:
    the mode's short side (:data:`VIDEO_SHORT_SIDE`) in ``aspect_ratio``, else the first
    frame's ratio, else 16:9. Sides are rounded to multiples of 8. A new-standard body is read
    through its ``settings`` (``resolution`` 720p/1080p/4k, ``aspect_ratio``).
    """
    settings = body.get("settings")
    if isinstance(settings, Mapping):
        body = {"mode": settings.get("resolution", "720p"), **settings}
    ratio = _ratio(body.get("aspect_ratio"))
    if ratio is None:
        ratio = _first_image_ratio(body) or (1.0 if kind == "image" else 16 / 9)
    if kind == "image":
        side = IMAGE_SIDE.get(str(body.get("resolution", "1k")), 1024)
        return _round8(side * math.sqrt(ratio)), _round8(side / math.sqrt(ratio))
    short = VIDEO_SHORT_SIDE.get(str(body.get("mode", "pro")), 1080)
    if ratio >= 1:
        return _round8(short * ratio), short
    return short, _round8(short / ratio)


def _ratio(value: Any) -> float | None:
    if not isinstance(value, str) or ":" not in value:
        return None
    width, _, height = value.partition(":")
    try:
        return float(width) / float(height)
    except (ValueError, ZeroDivisionError):
        return None


def _first_image_ratio(body: Mapping[str, Any]) -> float | None:
    items = body.get("image_list") or body.get("images") or []
    if not isinstance(items, list) or not items:
        return None
    first = items[0]
    if isinstance(first, Mapping):
        first = first.get("image") or first.get("image_url")
    if not isinstance(first, str) or first.startswith(("http://", "https://")):
        return None
    try:
        data = base64.b64decode(first.partition(",")[2] if first.startswith("data:") else first)
    except ValueError:
        return None
    size = image_dimensions(data)
    return None if size is None or not size[1] else size[0] / size[1]


def _round8(value: float) -> int:
    return max(8, round(value / 8) * 8)


def png_bytes(name: str, size: int | tuple[int, int] = 64) -> bytes:
    """A valid RGB PNG of ``size`` pixels (a side, or (width, height)): a top-to-bottom
    gradient between two colours derived from ``name``, so files differ and none is flat."""
    width, height = (size, size) if isinstance(size, int) else size
    digest = hashlib.sha256(name.encode()).digest()
    return _gradient_png(width, height, digest[0] % 16, digest[1] % 16)


_PALETTE = [
    (232, 90, 79), (244, 164, 96), (249, 215, 110), (150, 200, 120), (80, 170, 160),
    (70, 130, 200), (110, 100, 200), (180, 110, 190), (230, 120, 160), (140, 140, 140),
    (60, 60, 70), (200, 220, 230), (250, 240, 225), (120, 80, 60), (30, 90, 70), (20, 40, 90),
]  # fmt: skip


@functools.lru_cache(maxsize=32)
def _gradient_png(width: int, height: int, top: int, bottom: int) -> bytes:
    start, end = _PALETTE[top], _PALETTE[(top + 1 + bottom % 15) % 16]  # never the same colour
    rows = []
    for y in range(height):
        t = y / max(1, height - 1)
        pixel = bytes(round(a + (b - a) * t) for a, b in zip(start, end, strict=True))
        rows.append(b"\x00" + pixel * width)  # filter byte 0, then RGB pixels

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 1))
        + chunk(b"IEND", b"")
    )


@functools.cache
def _sample_mp4() -> bytes:
    """The bundled sample MP4 (read once from package data)."""
    return importlib.resources.files(__package__).joinpath("data/sample.mp4").read_bytes()


@functools.lru_cache(maxsize=32)
def mp4_bytes(seconds: float = 1.0, size: tuple[int, int] = (64, 64)) -> bytes:
    """An MP4 whose headers declare ``seconds`` and ``size`` (width, height): the sample clip
    with the durations of ``mvhd``, ``tkhd``, ``elst`` and ``mdhd`` and the frame size of
    ``tkhd`` and the ``avc1`` entry rewritten (version-0 boxes, as the sample has)."""
    data = bytearray(_sample_mp4())
    movie_scale = 1
    for kind, start in _boxes(data, 0, len(data)):
        body = start + 8
        if kind == b"mvhd":
            movie_scale = struct.unpack_from(">I", data, body + 12)[0]
            struct.pack_into(">I", data, body + 16, round(seconds * movie_scale))
        elif kind == b"tkhd":
            struct.pack_into(">I", data, body + 20, round(seconds * movie_scale))
            struct.pack_into(">II", data, body + 76, size[0] << 16, size[1] << 16)
        elif kind == b"elst":
            struct.pack_into(">I", data, body + 8, round(seconds * movie_scale))
        elif kind == b"mdhd":
            media_scale = struct.unpack_from(">I", data, body + 12)[0]
            struct.pack_into(">I", data, body + 16, round(seconds * media_scale))
        elif kind == b"stsd":
            struct.pack_into(">HH", data, body + 8 + 32, size[0], size[1])  # first entry
    return bytes(data)


_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def _boxes(data: bytearray, start: int, end: int) -> Iterator[tuple[bytes, int]]:
    """(type, offset) of every box under ``data[start:end]``, depth first (32-bit sizes)."""
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        if size < 8:
            return
        yield kind, start
        if kind in _CONTAINERS:
            yield from _boxes(data, start + 8, start + size)
        start += size


class Signer:
    """Signs and checks result-file URLs with an HMAC-SHA256 over ``name`` and ``expires``."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, name: str, expires: int) -> str:
        """Hex HMAC of ``name`` and ``expires`` (epoch seconds)."""
        message = f"{name}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def check(self, name: str, expires: str | None, sign: str | None) -> bool:
        """True if ``sign`` is the signature of ``name`` and ``expires`` (constant time)."""
        if expires is None or sign is None or not expires.isdigit():
            return False
        return hmac.compare_digest(self.sign(name, int(expires)), sign)


def image_format(data: bytes) -> str | None:
    """``"png"``, ``"jpeg"`` or None, from the magic bytes."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    return None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels of a PNG or JPEG, or None if it cannot be read."""
    kind = image_format(data)
    if kind == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if kind == "jpeg":
        return _jpeg_dimensions(data)
    return None


# JPEG start-of-frame markers that carry the dimensions (baseline, progressive, lossless, ...).
_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None
