"""Quickstart: submit one omni-image task, wait for it, print the image URLs.

Run it with your API key (KLING_BASE_URL is optional, e.g. to point at a sandbox):

    export KLING_API_KEY=...
    python examples/quickstart.py
"""

import asyncio
from pathlib import Path

import kling_async as ka

MEDIA = Path(__file__).parent / "media"


async def main() -> None:
    # The create body exactly as Kling's omni-image page prints it
    # (https://kling.ai/document-api/api/image/3-0-omni/image-omni). The image may be a URL, raw
    # base64, or a local path (resolved against base=); the SDK reads and encodes local files.
    request = ka.OmniImageRequest.from_wire(
        {
            "model_name": "kling-v3-omni",
            # <<<image_1>>> refers to the first entry of image_list.
            "prompt": "The perfume bottle from <<<image_1>>> on a pale stone plinth, surrounded "
            "by cherry-blossom petals, soft morning light, blush-pink backdrop.",
            "image_list": [{"image": "perfume_bottle.jpg"}],
            "n": 2,  # two alternatives in one task
            "resolution": "1k",
            "aspect_ratio": "1:1",
            "watermark_info": {"enabled": False},
        },
        base=MEDIA,
    )
    # The same request in Python: ka.OmniImageRequest(model_name="kling-v3-omni", prompt=...,
    # image_list=[MEDIA / "perfume_bottle.jpg"], n=2, aspect_ratio="1:1", watermark=False)
    # KlingClient() reads KLING_API_KEY and KLING_BASE_URL from the environment.
    async with ka.KlingClient() as client:
        task = await client.submit(request)  # creates the task, returns at once
        print(f"submitted task {task.task_id}, waiting...")
        result = await client.wait(task)  # polls until the task ends
        print(f"status: {result.status.value}")
        for image in result.images:
            print(f"  image {image.index}: {image.url}")


if __name__ == "__main__":
    asyncio.run(main())
