"""One campaign, many hosts: push a campaign onto a Redis queue, then work through it. Start
this program on as many hosts as you like (with the same queue name): each takes lines only as
the shared quota admits them, and every line ends as exactly one task.

    export KLING_API_KEY=...  KLING_ASYNC_REDIS_URL=redis://host:6379/0
    python examples/redis_campaign.py                   # KLING_BASE_URL is optional
"""

import asyncio
import os
from pathlib import Path

import kling_async as ka

HERE = Path(__file__).resolve().parent


async def main() -> None:
    url = os.environ["KLING_ASYNC_REDIS_URL"]
    out = Path(os.environ.get("OUT", "redis-campaign-out"))
    async with (
        ka.RedisCampaign(url, "example", out=out) as queue,
        ka.KlingClient(
            quota=ka.Quota(image=9, video=5),
            quota_backend=ka.RedisQuotaBackend(url),  # the same Redis shares the quota
            journal=out / "journal.sqlite",  # a line taken over is looked up, not re-created
        ) as client,
    ):
        text = (HERE / "campaign.jsonl").read_text()
        lines = [line for line in text.splitlines() if '"image"' in line]
        report = await queue.push(lines, base=HERE)  # a second push adds nothing
        print(f"queued {report.queued}, pushed before {report.skipped}")
        async with client.stream(queue.requests(client)) as outcomes:
            async for outcome in outcomes:
                line = queue.line_of(outcome).line
                await queue.ack(outcome)  # the outcome is stored, then the line acknowledged
                print(f"line {line}: {'ok' if outcome.ok else outcome.error}")
        status = await queue.status()
        print(f"done: {status.done}, units charged: {status.units}")


if __name__ == "__main__":
    asyncio.run(main())
