"""Modellix rate limit: N image tasks on the Modellix routes within the requests per minute.

KlingClient(provider="modellix") runs N image tasks against the sandbox's Modellix routes
(``base_url`` = sandbox + ``/api/v1``), where one key may make ``--rpm`` requests in any
``--rpm-window`` seconds and the team runs ``--team`` tasks at once. From the sandbox's counts:

- ``rate_limited_429`` (requests refused by the window limit): target 0,
- ``peak_requests_per_window`` (most requests in one sliding window): target ≤ --rpm,
- ``concurrency_429`` (creates refused because the team was busy): absorbed by the client,
- no 429 of either kind reaches an outcome, every task succeeds.

The real limit is 100 requests per 60 s window, so ≥ 200 requests (a create and a query per
task) take ≥ 2 minutes. ``--rpm-window 6`` scales time by 6/60 = 0.1: the sandbox window
becomes 6 s, task durations (3–10 s, modellix_api.md §4) × 0.1, the client's budget
``requests_per_minute`` = rpm × 60 / window (1000 per minute) and its poll intervals × 0.1.
The client's built-in Modellix polling constants (first check of an image after 3 s before any
has ended, at most 5 s between checks) are not options and stay unscaled.

Usage: python benchmarks/modellix_budget.py [--tasks 100] [--rpm 100] [--rpm-window 60]
    [--team 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from _harness import IMAGE_MODEL, Report, SandboxProcess, run_client, scaled

import kling_async as ka

REAL_WINDOW = 60.0
REAL_IMAGE_SECONDS = (3.0, 10.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--rpm", type=int, default=100, help="requests per window per key")
    parser.add_argument("--rpm-window", type=float, default=REAL_WINDOW, help="seconds")
    parser.add_argument("--team", type=int, default=3, help="Modellix team concurrency")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    scale = args.rpm_window / REAL_WINDOW
    budget = args.rpm * 60.0 / args.rpm_window
    low, high = scaled(REAL_IMAGE_SECONDS, scale)
    report = Report("Modellix request budget", vars(args), scale)
    requests = [
        ka.OmniImageRequest(prompt=f"product shot {i}", model_name=IMAGE_MODEL, aspect_ratio="1:1")
        for i in range(args.tasks)
    ]
    with SandboxProcess(
        image_duration=(low, high),
        seed=args.seed,
        modellix_rpm=args.rpm,
        modellix_rpm_window=args.rpm_window,
        modellix_concurrency=args.team,
    ) as sb:
        report.line(sb.describe())
        report.line(
            f"client: provider='modellix', requests_per_minute {budget:g} "
            f"({args.rpm} per {args.rpm_window:g} s), Quota(team={args.team}), "
            "the library's default poll cadence"
        )
        seen, client_stats = asyncio.run(
            run_client(
                sb.base_url + "/api/v1",
                requests,
                provider="modellix",
                requests_per_minute=budget,
                quota=ka.Quota(team=args.team),
            )
        )
        stats = sb.stats()

    outcomes = [o for o, _ in seen]
    ok = sum(o.ok for o in outcomes)
    surfaced = sum(isinstance(o.error, ka.RateLimitError) for o in outcomes)
    errors = sorted({type(o.error).__name__ for o in outcomes if o.error is not None})
    makespan = stats["makespan"]
    report.line(
        f"{ok}/{args.tasks} succeeded{' (errors: ' + ', '.join(errors) + ')' if errors else ''}; "
        f"makespan {makespan:.1f} s"
    )
    report.line(
        f"sandbox: {stats['requests']} requests ({stats['create_attempts']} create attempts, "
        f"{stats['queries']} queries; {stats['requests'] / args.tasks:.2f} per task), "
        f"{stats['requests'] / max(makespan, 1e-9) * args.rpm_window:.0f} per window on average"
    )
    report.line(
        f"sandbox: rate_limited_429 {stats['rate_limited_429']}, peak_requests_per_window "
        f"{stats['peak_requests_per_window']} (limit {args.rpm}), concurrency_429 "
        f"{stats['concurrency_429']} (absorbed; client re-queued {client_stats.requeued_1303})"
    )
    team = stats["pools"].get("modellix:team")
    if team is not None:
        report.line(
            f"team pool: peak {team['peak']} of {team['capacity']}, utilisation "
            f"{team['slot_seconds'] / (team['capacity'] * max(makespan, 1e-9)):.3f}"
        )
    report.target(
        "requests refused by the window limit (rate_limited_429)",
        str(stats["rate_limited_429"]),
        "0",
        stats["rate_limited_429"] == 0,
    )
    report.target(
        "peak requests in one window",
        str(stats["peak_requests_per_window"]),
        f"≤ {args.rpm}",
        stats["peak_requests_per_window"] <= args.rpm,
    )
    report.target("429s reaching an outcome", str(surfaced), "0", surfaced == 0)
    report.target("every task succeeded", f"{ok}/{args.tasks}", "all", ok == args.tasks)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
