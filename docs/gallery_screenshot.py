"""Makes docs/images/gallery.png, the README's picture of ``kling-async gallery``.

    .venv/bin/kling-async run examples/campaign.jsonl --out /tmp/campaign-out --sandbox
    .venv/bin/kling-async gallery /tmp/campaign-out
    .venv/bin/python docs/gallery_screenshot.py /tmp/campaign-out/index.html

Opens the page in headless Chromium (tests/chromium.py), waits for every image and video frame,
and keeps the top of the page and the first row of video cards, scaled to 1000 pixels wide.
"""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.chromium import VIDEO_STATE_JS, open_page

TARGET = Path(__file__).resolve().parent / "images" / "gallery.png"


async def main(page_url: str) -> None:
    async with open_page(page_url) as page:
        await page.evaluate(  # thumbnails load lazily: ask for all of them now
            "Promise.all([...document.images].map(i => (i.loading = 'eager', i.decode())))"
        )
        await page.evaluate(VIDEO_STATE_JS)
        await page.evaluate(  # every video able to play through: no loading spinner on it
            "Promise.all([...document.querySelectorAll('video')].map(v => v.readyState >= 4 "
            "|| new Promise(r => v.addEventListener('canplaythrough', r, {once: true}))))"
        )
        top = await page.evaluate(
            "document.querySelector('article[data-kind=video]').getBoundingClientRect().top"
            " + window.scrollY"
        )
        shot = Image.open(io.BytesIO(await page.screenshot()))
    header = shot.crop((0, 0, shot.width, 640))
    videos = shot.crop((0, int(top) - 16, shot.width, int(top) + 560))
    combined = Image.new("RGB", (shot.width, header.height + videos.height + 6), (200, 200, 210))
    combined.paste(header, (0, 0))
    combined.paste(videos, (0, header.height + 6))
    scale = 1000 / combined.width
    combined = combined.resize((1000, round(combined.height * scale)), Image.Resampling.LANCZOS)
    combined.save(TARGET, optimize=True)
    print(TARGET, combined.size)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]).resolve().as_uri()))
