"""An asyncio pipeline: requests arrive over time on a queue, each task is created as soon as
its request arrives, and a consumer handles each outcome as soon as its task ends.

    export KLING_API_KEY=...            # KLING_BASE_URL is optional
    python examples/queue_pipeline.py

The producer stands in for whatever feeds your service (a message bus, webhooks, a database
poll). ``client.stream()`` takes an async iterable and pulls from it as the quota allows, so
nothing waits for the producer to finish, and a full quota holds the queue back
(backpressure) instead of piling requests up in memory.
"""

import asyncio
import time
from collections.abc import AsyncIterator

import kling_async as ka

ARRIVALS = [
    "A ceramic mug on a walnut desk, morning light",
    "A white sneaker on a concrete step, side view",
    "A canvas backpack on a coat hook, muted colours",
    "A wrist watch on a slate tile, macro photograph",
    "A perfume bottle on a pale stone plinth, blush-pink backdrop",
    "A leather wallet on a linen cloth, top-down view",
]
GAP = 0.5  # seconds between two arrivals
Arrivals = asyncio.Queue[ka.OmniImageRequest | None]  # None: no more requests
START = time.monotonic()


def log(message: str) -> None:
    print(f"{time.monotonic() - START:6.2f}s  {message}", flush=True)


async def producer(queue: Arrivals) -> None:
    """Put requests on the queue as they "arrive", then None to say there are no more."""
    for i, prompt in enumerate(ARRIVALS):
        await asyncio.sleep(GAP)
        log(f"arrived   req-{i}")
        await queue.put(ka.OmniImageRequest(prompt=prompt))
    await queue.put(None)


async def arrivals(
    queue: asyncio.Queue[ka.OmniImageRequest | None],
) -> AsyncIterator[ka.OmniImageRequest]:
    """The queue as an async iterable, ending at the None the producer puts last."""
    while (request := await queue.get()) is not None:
        yield request


async def main() -> None:
    # A small queue and a small lookahead: when the quota is full, stream() pulls at most
    # `lookahead` requests more (default 32) and then stops pulling, the queue fills up, and
    # the producer waits in queue.put(): backpressure all the way to the source.
    queue: Arrivals = asyncio.Queue(maxsize=4)
    client = ka.KlingClient(quota=ka.Quota(image=9), lookahead=4)
    async with client, asyncio.TaskGroup() as tg:
        tg.create_task(producer(queue))
        async with client.stream(arrivals(queue)) as outcomes:
            async for outcome in outcomes:  # the consumer: each outcome as its task ends
                name = f"req-{outcome.index}"
                if outcome.ok:
                    assert outcome.result is not None  # ok implies a result
                    log(f"done      {name}: {outcome.result.images[0].url}")
                else:  # a failed task is a value here, never an exception
                    log(f"FAIL      {name}: {outcome.error}")


if __name__ == "__main__":
    asyncio.run(main())
