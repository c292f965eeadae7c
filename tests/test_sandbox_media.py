"""Sandbox result files look like what was asked: image pixels from resolution × aspect ratio
(``auto`` keeps the first reference image's ratio), videos whose MP4 headers declare the
requested duration and frame size and play in a browser (decoded frames in the requested aspect
ratio). Checked with Pillow, a small MP4 box reader and headless Chromium."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

import kling_async as ka
from kling_async.testing import Sandbox
from kling_async.testing._media import png_bytes

from .chromium import VIDEO_STATE_JS, open_page

pytestmark = pytest.mark.anyio

KEY = "media-key"


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("model", "resolution", "ratio", "expected"),
    [
        ("kling-image-o1", "1k", "1:1", (1024, 1024)),
        ("kling-image-o1", "2k", "16:9", (2728, 1536)),
        ("kling-v3-omni", "1k", "3:4", (888, 1184)),
        ("kling-v3-omni", "1k", "21:9", (1568, 672)),
    ],
)
async def test_images_have_the_pixels_of_resolution_and_ratio(
    tmp_path: Path, model: str, resolution: str, ratio: str, expected: tuple[int, int]
) -> None:
    """Downloaded images open in Pillow at the size the request's resolution and ratio give,
    and are not one flat colour."""
    async with (
        Sandbox(api_keys=(KEY,), image_duration=0.05) as sb,
        ka.KlingClient(api_key=KEY, base_url=sb.base_url, image_poll_interval=0.05) as client,
    ):
        request = ka.OmniImageRequest(
            prompt="x", model_name=model, resolution=resolution, aspect_ratio=ratio, n=2
        )
        result = await client.wait(await client.submit(request))
        saved = await client.download(result, tmp_path)
    for file in saved:
        with Image.open(file.path) as image:
            assert image.size == expected
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 1


async def test_auto_ratio_keeps_the_first_reference_image_ratio(tmp_path: Path) -> None:
    """aspect_ratio 'auto' gives the first reference image's ratio (here 3:2)."""
    async with (
        Sandbox(api_keys=(KEY,), image_duration=0.05) as sb,
        ka.KlingClient(api_key=KEY, base_url=sb.base_url, image_poll_interval=0.05) as client,
    ):
        request = ka.OmniImageRequest(prompt="x", image_list=[_png((600, 400))])
        result = await client.wait(await client.submit(request))
        (file,) = await client.download(result, tmp_path)
    with Image.open(file.path) as image:
        width, height = image.size
    assert abs(width / height - 1.5) < 0.01 and abs(width * height - 1024**2) < 0.01 * 1024**2


def _mp4_header(data: bytes) -> tuple[float, tuple[int, int]]:
    """(mvhd duration in seconds, tkhd width × height) of an MP4 with version-0 boxes."""
    found: dict[bytes, int] = {}

    def walk(start: int, end: int) -> None:
        while start + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, start)
            found.setdefault(kind, start + 8)
            if kind in (b"moov", b"trak"):
                walk(start + 8, start + size)
            start += size

    walk(0, len(data))
    mvhd, tkhd = found[b"mvhd"], found[b"tkhd"]
    scale, duration = struct.unpack_from(">II", data, mvhd + 12)
    width, height = struct.unpack_from(">II", data, tkhd + 76)
    return duration / scale, (width >> 16, height >> 16)


@pytest.mark.parametrize(
    ("mode", "ratio", "duration", "size"),
    [
        ("std", "16:9", 5, (1280, 720)),
        ("pro", "9:16", 10, (1080, 1920)),
        ("pro", "1:1", 7, (1080, 1080)),
    ],
)
async def test_videos_declare_the_requested_duration_and_size(
    tmp_path: Path, mode: str, ratio: str, duration: int, size: tuple[int, int]
) -> None:
    """A video's MP4 headers carry the requested duration and the mode's frame size."""
    async with (
        Sandbox(api_keys=(KEY,), video_duration=0.05) as sb,
        ka.KlingClient(api_key=KEY, base_url=sb.base_url, video_poll_interval=0.05) as client,
    ):
        request = ka.OmniVideoRequest(
            prompt="x", model_name="kling-v3-omni", mode=mode, aspect_ratio=ratio, duration=duration
        )
        result = await client.wait(await client.submit(request))
        (file,) = await client.download(result, tmp_path)
    assert _mp4_header(file.path.read_bytes()) == (duration, size)
    assert base64.b64encode(file.path.read_bytes()[4:8]) == base64.b64encode(b"ftyp")


async def test_two_videos_with_the_same_request_differ(tmp_path: Path) -> None:
    """Two tasks asking for the same video get different files (each task its own picture)."""
    async with (
        Sandbox(api_keys=(KEY,), video_duration=0.05) as sb,
        ka.KlingClient(api_key=KEY, base_url=sb.base_url, video_poll_interval=0.05) as client,
    ):
        request = ka.OmniVideoRequest(
            prompt="x", model_name="kling-v3-omni", aspect_ratio="16:9", duration=5
        )
        files = []
        for _ in range(2):
            result = await client.wait(await client.submit(request))
            files += await client.download(result, tmp_path)
    first, second = (file.path.read_bytes() for file in files)
    assert first != second


async def test_videos_play_in_chromium_with_the_requested_ratio_and_duration(
    tmp_path: Path,
) -> None:
    """Chromium's <video> decodes each sandbox MP4 (a frame is ready) with the requested
    duration, and the decoded frames have the requested aspect ratio."""
    cases = [("std", "16:9", 5), ("pro", "9:16", 10), ("pro", "1:1", 3)]
    async with (
        Sandbox(api_keys=(KEY,), video_duration=0.05) as sb,
        ka.KlingClient(api_key=KEY, base_url=sb.base_url, video_poll_interval=0.05) as client,
    ):
        names = []
        for mode, ratio, duration in cases:
            request = ka.OmniVideoRequest(
                prompt="x", model_name="kling-v3-omni", mode=mode, aspect_ratio=ratio,
                duration=duration,
            )  # fmt: skip
            result = await client.wait(await client.submit(request))
            (file,) = await client.download(result, tmp_path)
            names.append(file.path.name)
    page = tmp_path / "videos.html"
    page.write_text(
        "<!doctype html><body>"
        + "".join(f'<video src="{name}" preload="auto" muted></video>' for name in names)
        + "</body>",
        encoding="utf-8",
    )
    async with open_page(page.as_uri()) as browser:
        seen = await browser.evaluate(VIDEO_STATE_JS)
    for (_, ratio, duration), (ready, seconds, width, height, error) in zip(
        cases, seen, strict=True
    ):
        assert error is None and ready >= 2 and width > 0
        assert seconds == pytest.approx(duration, abs=0.01)
        across, down = (int(part) for part in ratio.split(":"))
        assert width / height == pytest.approx(across / down, rel=0.01)


@pytest.mark.parametrize("size", [(1, 1), (8, 2000), (1024, 1024), (2896, 1448)])
def test_image_bytes_are_one_checked_zlib_stream_of_a_two_colour_gradient(
    size: tuple[int, int],
) -> None:
    """A sandbox PNG's IDAT inflates whole with its Adler-32 checked (rows deflated once each
    and repeated): filter byte 0 per row, the first row one colour, the last another."""
    data = png_bytes("any task", size)
    chunks, offset = {}, 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunks[kind] = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(chunks[b"IDAT"])  # raises on a bad stream or checksum
    width, height = size
    stride = 1 + 3 * width
    assert len(raw) == stride * height
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 and row[1:] == row[1:4] * width for row in rows)
    assert height == 1 or rows[0][1:4] != rows[-1][1:4]
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == size and image.tobytes() == b"".join(row[1:] for row in rows)
