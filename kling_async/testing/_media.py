"""Result files and reference-image inspection for the sandbox.

Result files are real bytes that look like what was asked (:func:`result_size`): PNGs of the
requested resolution and aspect ratio, a two-colour gradient derived from the file name, made
with the standard library; and playable H.264 MP4s (:mod:`._h264`, no ffmpeg) of the requested
duration, whose headers declare the requested frame size and whose frames have its aspect ratio
at a scaled-down size (:func:`video_coded_size`), different for every task.
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
import math
import struct
import zlib
from collections.abc import Mapping
from typing import Any

from ._h264 import h264_mp4

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


@functools.lru_cache(maxsize=256)  # 16 x 15 colour pairs: a campaign's images of one size
def _gradient_png(width: int, height: int, top: int, bottom: int) -> bytes:
    start, end = _PALETTE[top], _PALETTE[(top + 1 + bottom % 15) % 16]  # never the same colour
    rows = []
    made: dict[bytes, bytes] = {}  # at most 256 shades per channel: most rows repeat one
    for y in range(height):
        t = y / max(1, height - 1)
        pixel = bytes([round(a + (b - a) * t) for a, b in zip(start, end, strict=True)])
        row = made.get(pixel)
        if row is None:
            row = made[pixel] = b"\x00" + pixel * width  # filter byte 0, then RGB pixels
        rows.append(row)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", _deflate_rows(rows))
        + chunk(b"IEND", b"")
    )


def _deflate_rows(rows: list[bytes]) -> bytes:
    """A zlib stream (RFC 1950/1951) of ``rows`` joined that compresses each distinct row once.

    Each distinct row is compressed alone and ends in a full flush (byte-aligned, no history
    kept), so its bytes are valid wherever it repeats: a 4k gradient is ~4,096 rows of a few
    hundred distinct ones, which costs 1/15 of compressing its 50 MB whole."""
    made: dict[bytes, bytes] = {}
    parts = [b"\x78\x01"]  # deflate, 32 KiB window, fastest level; header checksum holds
    adler = 1
    for row in rows:
        piece = made.get(row)
        if piece is None:
            packer = zlib.compressobj(1, zlib.DEFLATED, -15)  # raw deflate
            piece = made[row] = packer.compress(row) + packer.flush(zlib.Z_FULL_FLUSH)
        parts.append(piece)
        adler = zlib.adler32(row, adler)
    parts.append(zlib.compressobj(1, zlib.DEFLATED, -15).flush())  # the final, empty block
    parts.append(struct.pack(">I", adler))
    return b"".join(parts)


@functools.lru_cache(maxsize=8)
def mp4_bytes(name: str, seconds: float = 1.0, size: tuple[int, int] = (1280, 720)) -> bytes:
    """A playable H.264 MP4 (Constrained Baseline, one frame per second) of ``seconds`` whose
    track header declares ``size`` (width, height) and whose coded frames have the same aspect
    ratio scaled down (:func:`video_coded_size`): a vertical gradient in two colours derived
    from ``name`` with a white bar that crosses the picture, so files differ per task and
    frames differ within a file."""
    coded = video_coded_size(size)
    digest = hashlib.sha256(name.encode()).digest()
    start, end = _PALETTE[digest[0] % 16], _PALETTE[(digest[0] + 1 + digest[1] % 15) % 16]
    return h264_mp4(coded, size, seconds, functools.partial(_frame, coded, start, end))


def video_coded_size(size: tuple[int, int]) -> tuple[int, int]:
    """The pixels a sandbox video is coded at for a declared ``size``: the short side 90 (up
    to 720p), 126 (up to 1080p) or 180 (larger), the long side in the same ratio (even)."""
    width, height = size
    short = min(width, height)
    coded_short = 90 if short <= 720 else 126 if short <= 1080 else 180
    scale = coded_short / short
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _ycbcr(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    """BT.601 limited-range Y, Cb, Cr of an RGB colour (0–255 each)."""
    r, g, b = rgb
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(cb), round(cr)


def _frame(
    coded: tuple[int, int],
    start: tuple[int, int, int],
    end: tuple[int, int, int],
    index: int,
    count: int,
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Frame ``index`` of ``count``: the gradient, and the bar at ``index / count`` across."""
    width, height = coded
    padded_w, padded_h = -(-width // 16) * 16, -(-height // 16) * 16
    bar_w = max(2, width // 10) // 2 * 2
    bar_x = (width - bar_w) * index // max(1, count - 1) // 2 * 2
    luma: list[bytes] = []
    cb: list[bytes] = []
    cr: list[bytes] = []
    for y in range(padded_h):
        t = min(y, height - 1) / max(1, height - 1)
        rgb = tuple(a + (b - a) * t for a, b in zip(start, end, strict=True))
        ly, lcb, lcr = _ycbcr(rgb)  # type: ignore[arg-type]
        luma.append(
            bytes([ly]) * bar_x + bytes([235]) * bar_w + bytes([ly]) * (padded_w - bar_x - bar_w)
        )
        if y % 2 == 0:
            half_x, half_w = bar_x // 2, bar_w // 2
            for plane, value in ((cb, lcb), (cr, lcr)):
                rest = padded_w // 2 - half_x - half_w
                plane.append(
                    bytes([value]) * half_x + bytes([128]) * half_w + bytes([value]) * rest
                )
    return luma, cb, cr


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
