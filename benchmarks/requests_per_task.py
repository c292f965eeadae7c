"""Requests per task: HTTP requests the client sends per task, next to the naive baseline.

Runs N image tasks of 5–30 s (scaled) at quota Q through KlingClient, then the same N through
the naive baseline (``baseline_naive.py``: aiohttp + Semaphore + one GET per task every 1 s,
scaled), each on a fresh sandbox process with the same settings and seed. Figures come from the
sandbox's counts (``GET /sandbox/stats``); latency is from the sandbox ending a task
(``ends_at`` of ``GET /sandbox/tasks``) to the outcome reaching user code.

Targets: requests per task ≤ 1.5, and ≤ 1/10 of the baseline's, with p95 latency no worse than
the baseline's.

With ``--api-standard new`` it measures Kling's new standard instead: N omni-video tasks
(``kling-3.0-omni``) of the same durations at video quota Q, followed with the unified query
``GET /tasks?task_ids=…`` (50 ids per request), next to the same N videos on the legacy standard
(list pages); target: requests per task ≤ 1.5 on the new standard, each poll one request per 50
tasks in flight.

Usage: python benchmarks/requests_per_task.py [--tasks 1000] [--quota 50] [--scale 0.1]
       [--api-standard new]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from _harness import (
    IMAGE_MODEL,
    Report,
    SandboxProcess,
    end_times,
    image_body,
    outcome_latencies,
    run_client,
    scaled,
    spread,
    task_parser,
)
from baseline_naive import REAL_IMAGE_SECONDS, REAL_POLL_SECONDS, latencies, run_naive

import kling_async as ka

TARGET_PER_TASK = 1.5
TARGET_VS_BASELINE = 10.0


def sandbox_options(args: argparse.Namespace) -> dict[str, Any]:
    low, high = scaled(REAL_IMAGE_SECONDS, args.scale)
    return {"quota": {"image": args.quota}, "image_duration": (low, high), "seed": args.seed}


def main_new_standard(args: argparse.Namespace) -> int:
    """Videos on the new standard (unified query) next to the legacy standard (list pages)."""
    low, high = scaled(REAL_IMAGE_SECONDS, args.scale)
    options = {"quota": {"video": args.quota}, "video_duration": (low, high), "seed": args.seed}
    report = Report("requests per task, Kling's new standard", vars(args), args.scale)
    body = {"aspect_ratio": "16:9", "duration": 5, "multi_shot": False}
    requests = [
        ka.OmniVideoRequest.from_wire(
            {"model_name": "kling-3.0-omni", "contents": [{"type": "prompt", "text": f"kite {i}"}],
             "settings": body}
        )
        for i in range(args.tasks)
    ]  # fmt: skip
    rows, per_task = [], {}
    for standard in ("new", "legacy"):
        with SandboxProcess(**options) as sb:
            if standard == "new":
                report.line(sb.describe() + " (a fresh one per side)")
            seen, _ = asyncio.run(
                run_client(
                    sb.base_url,
                    requests,
                    quota=ka.Quota(video=args.quota),
                    api_standard=standard,
                )
            )
            stats = sb.stats()
        ok = sum(o.ok for o, _ in seen)
        per_task[standard] = stats["requests"] / args.tasks
        queries = stats.get("batch_queries", 0) + stats["list_queries"] + stats["queries"]
        rows.append(
            (
                standard,
                f"{ok}/{args.tasks}",
                stats["requests"],
                stats["create_attempts"],
                stats.get("batch_queries", 0),
                stats["list_queries"],
                stats["queries"],
                f"{queries / args.tasks:.3f}",
                f"{stats.get('batch_ids', 0) / max(1, stats.get('batch_queries', 0)):.1f}",
                f"{per_task[standard]:.3f}",
                f"{stats['makespan']:.1f}",
            )
        )
        if ok != args.tasks:
            report.line(f"{standard}: {args.tasks - ok} task(s) did not succeed")
    report.table(
        ("standard", "succeeded", "requests", "creates", "GET /tasks", "list GETs", "GETs",
         "queries per task", "ids per GET /tasks", "requests per task", "makespan s"),
        rows,
    )  # fmt: skip
    report.line(
        f"(in flight: at most {args.quota}; the client asks about at most 50 per GET /tasks, so "
        "each poll of the new standard is one request while ≤ 50 run)"
    )
    report.target(
        "requests per task (new standard)",
        f"{per_task['new']:.3f}",
        f"≤ {TARGET_PER_TASK}",
        per_task["new"] <= TARGET_PER_TASK,
    )
    return report.finish()


def main() -> int:
    parser = task_parser(__doc__, tasks=1000, scale=0.1)
    parser.add_argument("--api-standard", choices=("legacy", "new"), default="legacy")
    args = parser.parse_args()
    if args.api_standard == "new":
        return main_new_standard(args)

    naive_poll = REAL_POLL_SECONDS * args.scale
    report = Report("requests per task", vars(args), args.scale)
    requests = [
        ka.OmniImageRequest(prompt=f"product shot {i}", model_name=IMAGE_MODEL, aspect_ratio="1:1")
        for i in range(args.tasks)
    ]
    rows = []

    with SandboxProcess(**sandbox_options(args)) as sb:
        report.line(sb.describe() + " (a fresh one per side)")
        report.line(
            f"client: Quota(image={args.quota}), the library's default poll cadence; "
            f"baseline: Semaphore({args.quota}), GET every {naive_poll:g} s"
        )
        seen, client_stats = asyncio.run(
            run_client(
                sb.base_url,
                requests,
                quota=ka.Quota(image=args.quota),
            )
        )
        sdk_stats = sb.stats()
        sdk_lag = spread(outcome_latencies(seen, end_times(sb)))
    sdk_ok = sum(o.ok for o, _ in seen)

    with SandboxProcess(**sandbox_options(args)) as sb:
        bodies = [image_body(f"naive-{i}") for i in range(args.tasks)]
        run = asyncio.run(
            run_naive(sb.base_url, bodies, quota=args.quota, poll_interval=naive_poll)
        )
        naive_stats = sb.stats()
        naive_lag = spread(latencies(run, end_times(sb)))
    naive_ok = sum(t.status == "succeed" for t in run.tasks)

    for name, stats, lag, ok in (
        ("kling_async", sdk_stats, sdk_lag, sdk_ok),
        ("naive baseline", naive_stats, naive_lag, naive_ok),
    ):
        rows.append(
            (
                name,
                f"{ok}/{args.tasks}",
                stats["requests"],
                stats["create_attempts"],
                stats["queries"],
                stats["list_queries"],
                stats["requests"] / args.tasks,
                f"{stats['makespan']:.1f}",
                f"{lag['p50'] * 1000:.0f}",
                f"{lag['p95'] * 1000:.0f}",
                f"{lag['max'] * 1000:.0f}",
            )
        )
    report.line()
    report.table(
        (
            "side",
            "succeeded",
            "requests",
            "creates",
            "GETs",
            "list GETs",
            "per task",
            "makespan s",
            "p50 ms",
            "p95 ms",
            "max ms",
        ),
        rows,
    )
    report.line("(latency: sandbox ends the task → outcome in user code, as measured, scaled run)")
    report.line(
        f"client's own count: {client_stats.requests_sent} HTTP requests, "
        f"{client_stats.list_queries} list queries, {client_stats.queries} single GETs, "
        f"{client_stats.requeued_1303} creates re-queued after a 1303"
    )

    per_task = sdk_stats["requests"] / args.tasks
    naive_per_task = naive_stats["requests"] / args.tasks
    report.target(
        "requests per task", f"{per_task:.3f}", f"≤ {TARGET_PER_TASK}", per_task <= TARGET_PER_TASK
    )
    report.target(
        "vs baseline",
        f"1/{naive_per_task / per_task:.1f} ({naive_per_task:.2f} per task)",
        f"≤ 1/{TARGET_VS_BASELINE:g}",
        per_task * TARGET_VS_BASELINE <= naive_per_task,
    )
    report.target(
        "p95 latency vs baseline",
        f"{sdk_lag['p95'] * 1000:.0f} ms vs {naive_lag['p95'] * 1000:.0f} ms",
        "no worse",
        sdk_lag["p95"] <= naive_lag["p95"],
    )
    report.target(
        "every task succeeded (both sides)",
        f"{sdk_ok} + {naive_ok}",
        f"{args.tasks} + {args.tasks}",
        sdk_ok == naive_ok == args.tasks,
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
