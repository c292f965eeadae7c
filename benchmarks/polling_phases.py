"""Where polls and detection lag go: one campaign split into its phases.

N image tasks of 5–30 s (scaled) at quota Q through ``client.stream()`` (client only, no
baseline). Each poll tick is taken from the client's own debug log (``poll: N image task(s) in
flight``, logger ``kling_async.client``); task creates and ends from the sandbox
(``GET /sandbox/tasks``). Phases: ``start`` (before the first end), ``steady`` (until the last
create), ``tail`` (after it). For each task, the lag (end → outcome in user code) is split
into the wait for the next poll tick and the rest (``overhead``: the list query's round trip,
parsing, and the hand-off to user code), which polling cannot shorten. Fractions are of the
mean task duration T of the scaled range.

Usage: python benchmarks/polling_phases.py [--tasks 300] [--quota 50] [--scale 0.25] [--seed 7]
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import sys
import time
from collections import Counter

from _harness import (
    IMAGE_MODEL,
    Report,
    SandboxProcess,
    end_times,
    outcome_latencies,
    percentile,
    run_client,
    scaled,
    task_parser,
)

import kling_async as ka

REAL_IMAGE_SECONDS = (5.0, 30.0)


class _Ticks(logging.Handler):
    """Notes ``time.time()`` of every poll tick the client logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.at: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("poll:"):
            self.at.append(time.time())


def main() -> int:
    args = task_parser(__doc__, tasks=300, scale=0.25).parse_args()
    low, high = scaled(REAL_IMAGE_SECONDS, args.scale)
    mean = (low + high) / 2
    ticks = _Ticks()
    logger = logging.getLogger("kling_async.client")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(ticks)
    report = Report("polling phases", vars(args), args.scale)
    requests = [
        ka.OmniImageRequest(prompt=f"product shot {i}", model_name=IMAGE_MODEL, aspect_ratio="1:1")
        for i in range(args.tasks)
    ]
    options = {"quota": {"image": args.quota}, "image_duration": (low, high), "seed": args.seed}
    with SandboxProcess(**options) as sb:
        report.line(sb.describe())
        seen, _ = asyncio.run(run_client(sb.base_url, requests, quota=ka.Quota(image=args.quota)))
        stats = sb.stats()
        tasks = sb.tasks()
        ends = end_times(sb)
    lags = outcome_latencies(seen, ends)
    start = min(float(t["created_at"]) for t in tasks)
    first_end = min(ends.values())
    last_create = max(float(t["created_at"]) for t in tasks)

    def phase(at: float) -> str:
        return "start" if at < first_end else "steady" if at < last_create else "tail"

    polls = Counter(phase(at) for at in ticks.at)
    by_phase: dict[str, list[float]] = {}
    overhead: list[float] = []
    for outcome, at in seen:
        if outcome.task is None or outcome.task.task_id not in ends:
            continue
        end = ends[outcome.task.task_id]
        by_phase.setdefault(phase(end), []).append((at - end) / mean)
        i = bisect.bisect_left(ticks.at, end)
        if i < len(ticks.at):
            overhead.append(at - ticks.at[i])
    report.line(
        f"{stats['requests'] / args.tasks:.3f} requests per task ({stats['list_queries']} list "
        f"queries, {stats['queries']} single GETs, {stats['create_attempts']} creates); "
        f"makespan {stats['makespan'] / mean:.2f} T; first end at "
        f"{(first_end - start) / mean:.2f} T, last create at {(last_create - start) / mean:.2f} T; "
        f"p95 lag {percentile(lags, 95) / mean:.4f} T"
    )
    rows = [
        (
            name,
            polls.get(name, 0),
            len(by_phase.get(name, [])),
            f"{percentile(by_phase[name], 50):.4f}" if name in by_phase else "-",
            f"{percentile(by_phase[name], 95):.4f}" if name in by_phase else "-",
        )
        for name in ("start", "steady", "tail")
    ]
    report.table(("phase", "poll ticks", "tasks ended", "lag p50 / T", "lag p95 / T"), rows)
    gaps = [(b - a) / mean for a, b in zip(ticks.at, ticks.at[1:], strict=False)]
    report.line(
        f"overhead (lag − wait for the next tick): p50 {percentile(overhead, 50) * 1000:.1f} ms, "
        f"p95 {percentile(overhead, 95) * 1000:.1f} ms = {percentile(overhead, 95) / mean:.4f} T; "
        f"gap between ticks p50 {percentile(gaps, 50):.4f} T"
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
