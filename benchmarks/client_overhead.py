"""Client overhead: tasks per second through create → done → Outcome on one core.

N instant image tasks (sandbox durations 0) run through KlingClient with the client process
pinned to one core and the sandbox process to the other. The ceiling is measured in the same
run, against the same sandbox process and endpoint, from the same pinned core: bare aiohttp
POSTs of the same number of creates at the same concurrency, nothing else (no polling, no
parsing into models, no quota), once before and once after the client's run; the faster of
the two is the ceiling. Target: the client reaches ≥ 0.5 of that ceiling.

Tasks are instant, so no duration is scaled; the client's image poll interval is set by --poll
(small, so polling does not bound the rate: with Q slots and an interval p the client cannot
exceed Q / p tasks/s, printed as the polling bound).

Usage: python benchmarks/client_overhead.py [--tasks 10000] [--quota 200] [--poll 0.02]
    [--profile out.html]   (needs pyinstrument; profiles the client side only)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiohttp
from _harness import (
    IMAGE_MODEL,
    IMAGE_PATH,
    Report,
    SandboxProcess,
    auth_headers,
    cores,
    image_body,
    pin,
    run_client,
)

import kling_async as ka

TARGET_RATIO = 0.5


async def bare_posts(base_url: str, bodies: list[dict[str, Any]], concurrency: int) -> int:
    """POST every body to the create endpoint, ``concurrency`` at a time; return successes."""
    url = base_url + IMAGE_PATH
    queue = iter(bodies)
    created = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal created
        for body in queue:
            async with session.post(url, json=body) as response:
                answer = await response.json()
            created += answer["code"] == 0

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=auth_headers(), connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return created


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--quota", type=int, default=200, help="client and sandbox image slots")
    parser.add_argument("--poll", type=float, default=0.02, help="image_poll_interval, seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", help="write a pyinstrument profile of the client run (.html, else text)"
    )
    args = parser.parse_args()

    available = cores()
    client_cpu = available[0]
    sandbox_cpu = available[1] if len(available) > 1 else available[0]
    pin(client_cpu)
    report = Report(
        "client overhead",
        vars(args),
        "none: instant tasks (sandbox durations 0); client poll interval set by --poll",
    )
    report.line(f"client process pinned to CPU {client_cpu}, sandbox process to CPU {sandbox_cpu}")
    requests = [
        ka.OmniImageRequest(prompt=f"product shot {i}", model_name=IMAGE_MODEL, aspect_ratio="1:1")
        for i in range(args.tasks)
    ]
    profiler: Any = None
    rows = []
    with SandboxProcess(
        cpu=sandbox_cpu, quota={"image": args.quota}, image_duration=0.0, seed=args.seed
    ) as sb:
        report.line(sb.describe())

        def ceiling(label: str) -> float:
            bodies = [image_body(f"{label}-{i}") for i in range(args.tasks)]
            cpu0, t0 = time.process_time(), time.perf_counter()
            created = asyncio.run(bare_posts(sb.base_url, bodies, args.quota))
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            name = f"bare aiohttp POSTs, {label} (ceiling)"
            rows.append((name, created, wall, created / wall, cpu * 1e3 / args.tasks, created))
            return created / wall

        first = ceiling("before")
        requests_before = sb.stats()["requests"]
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled")
            profiler.start()
        cpu0, t0 = time.process_time(), time.perf_counter()
        seen, client_stats = asyncio.run(
            run_client(
                sb.base_url,
                requests,
                quota=ka.Quota(image=args.quota),
                image_poll_interval=args.poll,
            )
        )
        sdk_wall, sdk_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if profiler is not None:
            profiler.stop()
        sdk_requests = sb.stats()["requests"] - requests_before
        ok = sum(o.ok for o, _ in seen)
        rate = ok / sdk_wall
        rows.insert(
            1,
            (
                "KlingClient create→Outcome",
                ok,
                sdk_wall,
                rate,
                sdk_cpu * 1e3 / args.tasks,
                sdk_requests,
            ),
        )
        best = max(first, ceiling("after"))

    report.line()
    report.table(
        ("side", "tasks", "wall s", "tasks/s", "client CPU ms/task", "HTTP requests (sandbox)"),
        rows,
    )
    report.line("ceiling = the faster of the two bare runs")
    report.line(
        f"client: {client_stats.tasks_created} creates, {client_stats.list_queries} list queries, "
        f"{client_stats.queries} single GETs, {client_stats.requeued_1303} re-queued; "
        f"polling bound {args.quota / args.poll:.0f} tasks/s"
    )
    if profiler is not None:
        with open(args.profile, "w", encoding="utf-8") as f:
            html = args.profile.endswith(".html")
            f.write(profiler.output_html() if html else profiler.output_text(unicode=True))
        report.line(f"profile of the client run written to {args.profile}")
    report.target(
        "client rate / ceiling",
        f"{rate / best:.2f} ({rate:.0f} vs {best:.0f} tasks/s)",
        f"≥ {TARGET_RATIO}",
        rate >= TARGET_RATIO * best,
    )
    report.target("every task succeeded", f"{ok}/{args.tasks}", "all", ok == args.tasks)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
