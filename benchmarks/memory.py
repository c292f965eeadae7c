"""Memory: peak RSS of the client process while it streams N requests from a generator.

N instant image tasks (sandbox durations 0) are pulled lazily from a generator by
``client.stream()`` at quota Q; user code keeps nothing. A thread samples the client process's
RSS (psutil) every --sample seconds, and the RSS is also read at every 10 % of the outcomes.

Targets: peak RSS < 200 MB, and flat: RSS after N outcomes within 20 % of RSS after N/10.

Tasks are instant, so no duration is scaled; the client's image poll interval is set by --poll.

Usage: python benchmarks/memory.py [--requests 100000] [--quota 50] [--poll 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil
from _harness import IMAGE_MODEL, Report, SandboxProcess, run_client

import kling_async as ka

TARGET_PEAK_MB = 200.0
TARGET_GROWTH = 0.20
MB = 1024 * 1024


class RssSampler(threading.Thread):
    """Samples this process's RSS every ``interval`` seconds; ``peak`` holds the largest."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.samples += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def requests(count: int) -> Iterator[ka.OmniImageRequest]:
    """The input, built one request at a time as the client pulls it."""
    for i in range(count):
        yield ka.OmniImageRequest(
            prompt=f"product shot {i}", model_name=IMAGE_MODEL, aspect_ratio="1:1"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--quota", type=int, default=50)
    parser.add_argument("--poll", type=float, default=0.02, help="image_poll_interval, seconds")
    parser.add_argument("--sample", type=float, default=0.05, help="RSS sampling period, s")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    report = Report(
        "memory",
        vars(args),
        "none: instant tasks (sandbox durations 0); client poll interval set by --poll",
    )
    process = psutil.Process()
    step = max(1, args.requests // 10)
    marks: dict[int, int] = {}
    counts = {"outcomes": 0, "ok": 0}

    def on_outcome(outcome: Any, _at: float) -> None:
        counts["outcomes"] += 1
        counts["ok"] += outcome.ok
        if counts["outcomes"] % step == 0 or counts["outcomes"] == args.requests:
            marks[counts["outcomes"]] = process.memory_info().rss

    with SandboxProcess(quota={"image": args.quota}, image_duration=0.0, seed=args.seed) as sb:
        report.line(sb.describe())
        start_rss = process.memory_info().rss
        sampler = RssSampler(args.sample)
        sampler.start()
        started = time.perf_counter()
        _, client_stats = asyncio.run(
            run_client(
                sb.base_url,
                requests(args.requests),
                keep=False,
                on_outcome=on_outcome,
                quota=ka.Quota(image=args.quota),
                image_poll_interval=args.poll,
            )
        )
        wall = time.perf_counter() - started
        sampler.stop()
        stats = sb.stats()

    report.line(
        f"{counts['outcomes']} outcomes ({counts['ok']} ok) in {wall:.1f} s "
        f"({counts['outcomes'] / wall:.0f}/s); sandbox saw {stats['requests']} requests, "
        f"{stats['creates']} creates; client re-queued {client_stats.requeued_1303}"
    )
    report.line(f"RSS before the client started: {start_rss / MB:.1f} MB")
    report.table(
        ("outcomes", "RSS MB"), [(n, f"{rss / MB:.1f}") for n, rss in sorted(marks.items())]
    )
    report.line(f"peak RSS (sampled {sampler.samples} times): {sampler.peak / MB:.1f} MB")

    first = marks.get(step)
    last = marks.get(args.requests)
    report.target(
        "peak RSS",
        f"{sampler.peak / MB:.1f} MB",
        f"< {TARGET_PEAK_MB:g} MB",
        sampler.peak / MB < TARGET_PEAK_MB,
    )
    if first is not None and last is not None:
        growth = last / first - 1
        report.target(
            f"RSS growth {step} → {args.requests}",
            f"{growth:+.1%} ({first / MB:.1f} → {last / MB:.1f} MB)",
            f"≤ {TARGET_GROWTH:.0%}",
            growth <= TARGET_GROWTH,
        )
    else:
        report.target("RSS growth", "not measured (too few outcomes)", "", False)
    report.target(
        "every task succeeded",
        f"{counts['ok']}/{args.requests}",
        "all",
        counts["ok"] == args.requests,
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
