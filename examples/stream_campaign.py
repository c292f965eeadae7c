"""Run the image lines of campaign.jsonl under the account quota, printing each as it ends.

    export KLING_API_KEY=...            # KLING_BASE_URL is optional
    python examples/stream_campaign.py [path/to/campaign.jsonl]

(``kling-async run campaign.jsonl --out DIR`` is the full job: videos, downloads, resume.)
"""

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import kling_async as ka

CAMPAIGN = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("campaign.jsonl"))


def image_requests(path: Path) -> Iterator[ka.OmniImageRequest]:
    """Yield one OmniImageRequest per ``"kind": "image"`` line (lazily, one line at a time)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip() or line.lstrip().startswith("#"):
                continue  # blank and comment lines
            body = json.loads(line)
            if body.pop("kind") != "image":
                continue  # this example runs the image lines only
            # Each line is a create body as Kling's docs print it. Relative paths are relative
            # to the campaign file; URLs pass through unchanged.
            # external_task_id is unique per account: re-running the file fails line by line.
            yield ka.OmniImageRequest.from_wire(body, base=path.parent)


async def main() -> None:
    # Quota: concurrent slots per model pool. An image task holds n slots (a series: its size).
    async with (
        ka.KlingClient(quota=ka.Quota(image=9, video=5)) as client,
        client.stream(image_requests(CAMPAIGN)) as outcomes,
    ):
        async for outcome in outcomes:  # in completion order, not file order
            name = outcome.request.external_task_id or f"#{outcome.index}"
            if not outcome.ok:  # a failed task is a value here, never an exception
                print(f"FAIL {name}: {outcome.error}")
                continue
            assert outcome.result is not None  # ok implies a result
            images = [*outcome.result.images, *outcome.result.series_images]
            print(f"ok   {name}: {len(images)} image(s)")
            for image in images:
                print(f"       {image.url}")


if __name__ == "__main__":
    asyncio.run(main())
