"""Polling frontier, modelled: requests per task against the p95 detection lag for list polls.

No client and no server: a campaign of N image tasks at quota Q with durations drawn uniformly
from 5–30 s (mean T = 17.5 s; the other scripts' range, unscaled) is replayed in simulated time.
A new task starts the instant an end is detected (one create each), and each poll (one list
query) detects every task that ended before it, plus a fixed ``--overhead`` (fraction of T: a
query's round trip and the hand-off to user code; 0 gives the policy's own lag). Times are in
units of T.

Rows:
- ``cadence``: the library's rules (``_engine/_cadence``): before any end a quarter of the
  oldest age (at most 1.4 s), then 4.5 % of the exponentially weighted mean while the pool
  is busy (requests wait, or ≥ 30 % of slots held), 7 % otherwise; ``previous`` is the rule
  before issue 25 (4.5 % / 7 % of max(1 s, age) before any end, busy only while requests
  wait);
- ``periodic f``: polls every ``f × T`` with T known exactly, from the first possible end
  on: the best a fixed rate does, so the frontier the cadence is measured against.

Usage: python benchmarks/polling_model.py [--seeds 6] [--overhead 0.005]
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable

LOW, HIGH = 5 / 17.5, 30 / 17.5  # durations in units of the mean T
Policy = Callable[..., float]


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0–100), linearly interpolated."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def campaign(
    tasks: int, quota: int, policy: Policy, seed: int, overhead: float
) -> tuple[float, float]:
    """``(requests per task, p95 lag / T)`` of one modelled campaign."""
    rng = random.Random(seed)
    durations = [rng.uniform(LOW, HIGH) for _ in range(tasks)]
    inflight = {i: (0.0, durations[i]) for i in range(min(quota, tasks))}
    created = len(inflight)
    now = last = 0.0
    mean: float | None = None
    shortest: float | None = None
    polls = 0
    lags: list[float] = []
    while inflight:
        ages = [now - started for started, _ in inflight.values()]
        state = {"n": len(inflight), "waiting": created < tasks, "quota": quota,
                 "mean": mean, "oldest": max(ages)}  # fmt: skip
        due = last + policy(**state) * rng.uniform(0.9, 1.1)
        if shortest is not None:  # no poll while no task can have ended yet
            due = max(due, min(started + 0.8 * shortest for started, _ in inflight.values()))
        now = last = due
        polls += 1
        ended = [i for i, (_, end) in inflight.items() if end <= now]
        for i in ended:
            started, end = inflight.pop(i)
            lags.append(now - end + overhead)
            seen = now - started
            shortest = seen if shortest is None else min(shortest, seen)
            mean = seen if mean is None else 0.9 * mean + 0.1 * seen
            if created < tasks:
                inflight[created] = (now, now + durations[created])
                created += 1
    return 1 + polls / tasks, percentile(lags, 95)


def cadence(n: int, waiting: bool, quota: int, mean: float | None, oldest: float) -> float:
    """The library's rules now (T = 17.5 s, so 1 s of age is 1 / 17.5)."""
    if mean is None:  # a quarter of the age, at most 7 % of the typical 20 s
        return min(0.25 * max(1 / 17.5, oldest), 0.07 * 20 / 17.5)
    return (0.045 if waiting or n >= 0.3 * quota else 0.07) * mean


def previous(n: int, waiting: bool, quota: int, mean: float | None, oldest: float) -> float:
    """The rules before issue 25."""
    pace = mean if mean is not None else min(20 / 17.5, max(1 / 17.5, oldest))
    return (0.045 if waiting else 0.07) * pace


def periodic(fraction: float) -> Policy:
    """Polls every ``fraction`` × T (T known), none before the shortest possible task."""

    def policy(n: int, waiting: bool, quota: int, mean: float | None, oldest: float) -> float:
        return max(fraction, LOW - oldest) if mean is None else fraction

    return policy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--quota", type=int, default=50)
    parser.add_argument("--overhead", type=float, default=0.005, help="fraction of T per poll")
    args = parser.parse_args()
    policies: dict[str, Policy] = {"previous": previous, "cadence": cadence}
    for fraction in (0.036, 0.038, 0.040, 0.042, 0.045):
        policies[f"periodic {fraction:.3f}"] = periodic(fraction)
    print(f"quota {args.quota}, durations 5–30 s (T = 17.5 s), overhead {args.overhead:g} T, "
          f"mean of {args.seeds} seeds")  # fmt: skip
    print(f"{'policy':16} {'300: req/task':>14} {'p95/T':>7} {'1000: req/task':>15} {'p95/T':>7}")
    for name, policy in policies.items():
        cells = []
        for tasks in (300, 1000):
            runs = [
                campaign(tasks, args.quota, policy, s, args.overhead) for s in range(args.seeds)
            ]
            cells.append(sum(r for r, _ in runs) / len(runs))
            cells.append(sum(p for _, p in runs) / len(runs))
        print(f"{name:16} {cells[0]:14.3f} {cells[1]:7.4f} {cells[2]:15.3f} {cells[3]:7.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
