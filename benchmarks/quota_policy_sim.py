"""Head-of-line policy simulation: the real PoolLimiter on a virtual clock, many seeds in seconds.

Not one of the issue's benchmarks (no sandbox, no HTTP): a discrete-event simulation for
comparing head-of-line settings over many seeds, which the sandbox runs (minutes each, with a
spread of ±0.5 %) cannot tell apart, and for measuring each rule of the policy
(``kling_async._quota._decide.decide``; ``--without RULE`` leaves one out). It drives
``kling_async._quota._policy.PoolLimiter``, which runs ``decide``, through its public
``acquire``/``release`` with ``clock=`` set to a virtual clock, and models the rest of the
client as the client does it:

- requests are the quota benchmark's mix without ``auto`` series (60 % single n 1–4, 40 %
  fixed series 2–6: ``quota_utilisation.make_requests``, priced by ``request_cost``), at most
  ``--lookahead`` waiting (the client's lookahead window);
- a granted request's task starts at once and holds its slots for a uniform draw from
  ``--duration`` seconds;
- the client sees a task end at the first poll after it (polls every ``--poll`` seconds, a
  random phase; ``--poll 0`` for instant detection) and releases its slots then;
- the pool's mean duration is the client's ``DurationEstimate`` over the tasks seen to end,
  and ``expected_frees`` is the client's (``kling_async._quota._policy.expected_frees``).

Utilisation = Σ cost × duration / (capacity × makespan), as the sandbox counts it.

Usage: python benchmarks/quota_policy_sim.py [--seeds 30] [--requests 500] [--capacity 9]
    [--duration 10 30] [--poll 0.8] [--lookahead 32] [--patience auto 300 none ...]
    [--without - BACKFILL BEST_FIT ...]   (rules of ``decide`` to leave out, each compared)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
from typing import Literal

import anyio
from quota_utilisation import make_requests

from kling_async._quota._policy import (
    AutoSeriesEstimator,
    DurationEstimate,
    PoolLimiter,
    expected_frees,
    request_cost,
)

Patience = float | Literal["auto"] | None


def costs(count: int, seed: int) -> list[int]:
    """Slots of the quota benchmark's mix with fixed series in place of ``auto`` ones."""
    estimator = AutoSeriesEstimator()  # never asked: no auto series
    out = []
    for request in make_requests(count, seed, auto=False):
        cost = request_cost(request, estimator)
        if not isinstance(cost, int):  # an auto series: priced at its grant, not here
            raise TypeError(f"request {request.prompt!r}: not a fixed-size request")
        out.append(cost)
    return out


async def simulate(
    seed: int,
    *,
    requests: int,
    capacity: int,
    duration: tuple[float, float],
    poll: float,
    lookahead: int,
    patience: Patience,
    without: frozenset[str] = frozenset(),
) -> float:
    """One run; returns the utilisation."""
    now = 0.0
    rng = random.Random(seed * 7919 + 1)
    pool = PoolLimiter(
        "sim:image", capacity, hol_patience=patience, clock=lambda: now, without=without
    )
    durations = DurationEstimate()
    inflight: dict[int, tuple[float, int, float]] = {}  # ticket -> (start, slots, end)
    pool.expected_duration = durations.mean

    pool.expected_frees = lambda: expected_frees(
        ((start, slots) for start, slots, _ in inflight.values()), durations.mean(), now
    )
    granted: list[tuple[int, int]] = []
    waiting = 0

    async def wait(ticket: int, cost: int) -> None:
        nonlocal waiting
        slots = await pool.acquire(cost, ticket=ticket, since=now)
        waiting -= 1
        granted.append((ticket, slots))

    todo = iter(enumerate(costs(requests, seed)))
    exhausted, used, last_end, tick = False, 0.0, 0.0, rng.random() * poll
    async with anyio.create_task_group() as tg:
        while True:
            while not exhausted and waiting < lookahead:
                item = next(todo, None)
                if item is None:
                    exhausted = True
                    break
                waiting += 1
                tg.start_soon(wait, *item)
                await anyio.wait_all_tasks_blocked()
            await anyio.wait_all_tasks_blocked()
            for ticket, slots in granted:
                seconds = rng.uniform(*duration)
                inflight[ticket] = (now, slots, now + seconds)
                used += slots * seconds
            granted.clear()
            if waiting < lookahead and not exhausted:
                continue  # grants made room in the window
            if not inflight:
                if waiting:  # a limiter that grants nothing to an empty pool
                    raise RuntimeError(f"seed {seed}: {waiting} waiting, nothing running")
                break
            now = tick if poll > 0 else min(end for _, _, end in inflight.values())
            tick += poll
            for ticket in [t for t, (_, _, end) in inflight.items() if end <= now]:
                start, slots, end = inflight.pop(ticket)
                durations.observe(end - start)
                last_end = max(last_end, end)
                pool.release(slots)
    return used / (capacity * last_end)


def patience_value(text: str) -> Patience:
    if text == "auto":
        return "auto"
    if text == "none":
        return None
    return float(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--capacity", type=int, default=9)
    parser.add_argument("--duration", type=float, nargs=2, default=(10.0, 30.0))
    parser.add_argument("--poll", type=float, default=0.8, help="seconds; 0: instant detection")
    parser.add_argument("--lookahead", type=int, default=32)
    parser.add_argument(
        "--patience",
        nargs="+",
        default=["auto", "300", "600", "none"],
        help="hol_patience settings to compare: seconds, 'auto' or 'none'",
    )
    parser.add_argument(
        "--without",
        nargs="+",
        default=["-"],
        help="rules of decide() to leave out, per setting: comma-separated names "
        "(BACKFILL, BEST_FIT) or '-' for none; each is compared with each --patience",
    )
    args = parser.parse_args()
    print(
        f"simulation: {args.requests} requests (no auto series) at capacity {args.capacity}, "
        f"tasks uniform {args.duration[0]:g}–{args.duration[1]:g} s, polls every {args.poll:g} s, "
        f"lookahead {args.lookahead}, seeds 0–{args.seeds - 1}"
    )
    print(f"{'hol_patience':>12}  {'without':>16}  {'mean':>6}  {'p10':>6}  {'min':>6}")
    settings = [(p, w) for p in args.patience for w in args.without]
    for text, left_out in settings:
        without = frozenset() if left_out == "-" else frozenset(left_out.split(","))
        results = sorted(
            asyncio.run(
                simulate(
                    seed,
                    requests=args.requests,
                    capacity=args.capacity,
                    duration=tuple(args.duration),
                    poll=args.poll,
                    lookahead=args.lookahead,
                    patience=patience_value(text),
                    without=without,
                )
            )
            for seed in range(args.seeds)
        )
        mean = statistics.fmean(results)
        p10, low = results[len(results) // 10], results[0]
        print(f"{text:>12}  {left_out:>16}  {mean:6.4f}  {p10:6.4f}  {low:6.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
