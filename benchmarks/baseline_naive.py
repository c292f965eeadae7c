"""The naive baseline: what a user writes without kling_async.

aiohttp + ``asyncio.Semaphore(quota)`` + one GET per task every poll interval (1 s, scaled):
each request takes a semaphore place, POSTs its create (sleeping one interval and trying again
on a 1303), then GETs its task every interval until it is terminal. The comparison scripts
(``requests_per_task.py``) import :func:`run_naive` and run it on the same sandbox settings in
the same run; run alone, this prints the baseline's own figures.

Usage: python benchmarks/baseline_naive.py [--tasks 200] [--quota 50] [--scale 0.1]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _harness import (
    API_KEY,
    IMAGE_PATH,
    Report,
    SandboxProcess,
    auth_headers,
    end_times,
    image_body,
    scaled,
    spread,
    task_parser,
)

REAL_POLL_SECONDS = 1.0  # the naive loop's poll interval, unscaled
REAL_IMAGE_SECONDS = (5.0, 30.0)  # unscaled image task durations of the comparison


@dataclass
class NaiveTask:
    """One request of the naive loop.

    Attributes:
        task_id: The sandbox's task id ("" when the create was refused).
        status: Terminal status seen (``succeed`` / ``failed``), or the refusal's code.
        seen_at: Wall clock (``time.time()``) when the loop saw the task terminal.
    """

    task_id: str
    status: str
    seen_at: float


@dataclass
class NaiveRun:
    """What the naive loop did: its tasks, HTTP requests sent and 1303s met."""

    tasks: list[NaiveTask] = field(default_factory=list)
    http_requests: int = 0
    rejected_1303: int = 0
    wall: float = 0.0


async def run_naive(
    base_url: str,
    bodies: Iterable[dict[str, Any]],
    *,
    quota: int,
    poll_interval: float,
    api_key: str = API_KEY,
    on_done: Callable[[NaiveTask], None] | None = None,
) -> NaiveRun:
    """Run ``bodies`` (raw omni-image create bodies) the naive way and return what happened.

    Args:
        base_url: Sandbox (or API) root, e.g. ``http://127.0.0.1:8000``.
        bodies: Raw create bodies (ref §5.1), e.g. from :func:`_harness.image_body`.
        quota: The semaphore's size: tasks in flight at once.
        poll_interval: Seconds between the GETs of one task, and before a retried create.
        api_key: Bearer key.
        on_done: Called with each task the moment the loop sees it terminal.
    """
    run = NaiveRun()
    semaphore = asyncio.Semaphore(quota)
    url = base_url + IMAGE_PATH

    async def one(session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        async with semaphore:
            while True:
                async with session.post(url, json=body) as response:
                    answer = await response.json()
                run.http_requests += 1
                if answer["code"] != 1303:
                    break
                run.rejected_1303 += 1
                await asyncio.sleep(poll_interval)
            if answer["code"] != 0:
                task = NaiveTask("", str(answer["code"]), time.time())
            else:
                task_id = answer["data"]["task_id"]
                while True:
                    await asyncio.sleep(poll_interval)
                    async with session.get(f"{url}/{task_id}") as response:
                        answer = await response.json()
                    run.http_requests += 1
                    status = answer["data"]["task_status"] if answer["code"] == 0 else "?"
                    if status in ("succeed", "failed"):
                        break
                task = NaiveTask(task_id, status, time.time())
            run.tasks.append(task)
            if on_done is not None:
                on_done(task)

    started = time.monotonic()
    async with aiohttp.ClientSession(headers=auth_headers(api_key)) as session:
        await asyncio.gather(*(one(session, body) for body in bodies))
    run.wall = time.monotonic() - started
    return run


def latencies(run: NaiveRun, ends: dict[str, float]) -> list[float]:
    """Seconds from the sandbox ending each task to the loop seeing it."""
    return [t.seen_at - ends[t.task_id] for t in run.tasks if t.task_id in ends]


def main() -> int:
    parser = task_parser(__doc__, tasks=200, scale=0.1)
    args = parser.parse_args()

    low, high = scaled(REAL_IMAGE_SECONDS, args.scale)
    poll = REAL_POLL_SECONDS * args.scale
    report = Report("naive baseline (aiohttp + Semaphore + GET per task)", vars(args), args.scale)
    bodies = [image_body(f"naive-{i}") for i in range(args.tasks)]
    with SandboxProcess(
        quota={"image": args.quota}, image_duration=(low, high), seed=args.seed
    ) as sb:
        report.line(sb.describe())
        report.line(f"naive poll interval {poll:g} s (scaled from {REAL_POLL_SECONDS:g} s)")
        run = asyncio.run(run_naive(sb.base_url, bodies, quota=args.quota, poll_interval=poll))
        stats = sb.stats()
        lag = spread(latencies(run, end_times(sb)))
    report.line(f"wall {run.wall:.1f} s; sandbox makespan {stats['makespan']:.1f} s")
    report.line(
        f"HTTP requests (sandbox): {stats['requests']} = {stats['requests'] / args.tasks:.2f} "
        f"per task (loop's own count {run.http_requests}); 1303s {stats['rejected_1303']}"
    )
    report.line(
        "end → seen latency: "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in lag.items())
        + f" (unscaled: p95 {lag['p95'] / args.scale:.2f} s)"
    )
    report.target(
        "every task succeeded",
        f"{sum(t.status == 'succeed' for t in run.tasks)}/{args.tasks}",
        "all",
        all(t.status == "succeed" for t in run.tasks) and len(run.tasks) == args.tasks,
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
