"""Result files and reference-image inspection for the sandbox.

Result files are real bytes: a small solid-colour PNG made with the standard library (colour
derived from the file name) and one tiny bundled MP4 (``data/sample.mp4``, 1 s, 64×64, H.264).
Their URLs are "anti-hotlinking" style (ref §5.3, §12): ``expires`` plus an HMAC ``sign`` over
name and expiry with a per-sandbox random secret.

Reference images sent as raw base64 are decoded and inspected here (format, size, dimensions,
ref §5.1 / §6.1) without Pillow, which is only a dev dependency.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.resources
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"


def png_bytes(name: str, size: int = 64) -> bytes:
    """A valid ``size``×``size`` RGB PNG of one colour derived from ``name``."""
    red, green, blue = hashlib.sha256(name.encode()).digest()[:3]
    row = b"\x00" + bytes((red, green, blue)) * size  # filter byte 0, then RGB pixels
    raw = row * size

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


@functools.cache
def mp4_bytes() -> bytes:
    """The bundled sample MP4 (read once from package data)."""
    return importlib.resources.files(__package__).joinpath("data/sample.mp4").read_bytes()


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
