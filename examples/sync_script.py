"""Notebook-style: no asyncio, no await. Submit a few image requests, print each as it ends,
save the images to a folder.

    export KLING_API_KEY=...            # KLING_BASE_URL is optional
    python examples/sync_script.py [OUT_DIR]      # default: ./kling-output

``kling_async.sync.KlingClient`` runs the async client on an event loop of its own in a
background thread, so these same lines also work cell by cell in Jupyter or IPython, where an
event loop is already running and ``asyncio.run`` fails.
"""

import sys
from pathlib import Path

import kling_async as ka
from kling_async.sync import KlingClient

MEDIA = Path(__file__).parent / "media"
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "kling-output")


def one_image(client: KlingClient) -> None:
    """One task: submit() returns as soon as Kling accepted it, wait() blocks until it ends."""
    task = client.submit(
        ka.OmniImageRequest(
            prompt="The mug from <<<image_1>>> on a walnut desk, soft morning light",
            image_list=[MEDIA / "ceramic_mug.jpg"],  # a local file: read and encoded for you
            aspect_ratio="1:1",
        )
    )
    print(f"submitted {task.task_id}")
    result = client.wait(task)  # raises TaskFailedError if Kling fails the task
    for saved in client.download(result, OUT, stem="mug"):
        print(f"saved     {saved.path} ({saved.bytes} bytes)")


def many_images(client: KlingClient) -> None:
    """Several tasks under the account's quota, each printed and saved as soon as it ends."""
    prompts = [
        "A white sneaker on a concrete step, side view, late afternoon sun",
        "A canvas backpack hanging from a coat hook, muted colours",
        "A wrist watch on a slate tile, macro photograph",
    ]
    requests = [ka.OmniImageRequest(prompt=p, n=2) for p in prompts]
    with client.stream(requests) as outcomes:
        for outcome in outcomes:  # completion order, not list order
            name = f"shot-{outcome.index}"
            if not outcome.ok:  # a failed task is a value here, never an exception
                print(f"FAIL      {name}: {outcome.error}")
                continue
            assert outcome.result is not None  # ok implies a result
            saved = client.download(outcome.result, OUT, stem=name)
            print(f"ok        {name}: {', '.join(s.path.name for s in saved)}")


def main() -> None:
    # KlingClient() reads KLING_API_KEY and KLING_BASE_URL from the environment. In a
    # notebook, keep `client = KlingClient()` in a cell and call client.close() when done.
    with KlingClient(quota=ka.Quota(image=9)) as client:
        one_image(client)
        many_images(client)
    print(f"all files in {OUT.resolve()}")


if __name__ == "__main__":
    main()
