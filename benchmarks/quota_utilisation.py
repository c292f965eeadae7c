"""Quota utilisation: how fully the client keeps an image pool of 9 slots busy.

Runs N mixed image requests (single n 1–4, fixed series 2–6, ``auto`` series) at quota 9
against the sandbox, which runs in a separate process on 127.0.0.1, and prints from the
sandbox's own counts:

- 1303s surfaced to outcomes (target 0) and 1303s the client absorbed by re-queueing,
- peak slots in use (target ≤ 9),
- quota utilisation = slot-seconds used / (9 × makespan): target ≥ 0.90, ≥ 0.95 with
  ``--no-auto`` (the ``auto`` share of the mix becomes fixed series).

``--foreign-load``: while the middle third of the outcomes arrive, another task in the client
process (a raw aiohttp loop with its own session, the same key, the same pool) keeps creating
n=3 tasks, each as soon as its previous one is seen ended, retrying 1303s every 10 ms (scaled).
The client must follow: no 1303 reaches an outcome; the table shows who held what.

``--callbacks``: a ``CallbackReceiver`` on 127.0.0.1 with a webhook secret, the sandbox
signing its callbacks with it; the client learns a task ended from its callback (confirmed by
one query) instead of the next list poll, which keeps polling as a safety net.

Task durations are scaled down by --scale from Kling-like 10–30 s images; the client polls at
its default cadence, which follows the task durations (no scaled override). Head-of-line
patience is the library default (30 mean task durations, so it scales with them) unless
--patience is given (in unscaled seconds).

Usage: python benchmarks/quota_utilisation.py [--requests 500] [--scale 0.05] [--seed 7]
    [--no-auto] [--foreign-load] [--callbacks] [--patience SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _harness import (
    IMAGE_MODEL,
    IMAGE_PATH,
    Report,
    SandboxProcess,
    auth_headers,
    image_body,
    library_default,
    run_client_with_callbacks,
    scaled,
    webhook_secret,
)

import kling_async as ka

QUOTA = 9
POOL = f"{IMAGE_MODEL}:image"
REAL_IMAGE_SECONDS = (10.0, 30.0)  # unscaled task durations
FOREIGN_COST = 3
FOREIGN_PREFIX = "foreign-"
REAL_FOREIGN_POLL = 0.8  # unscaled seconds between the foreign loop's polls
REAL_FOREIGN_RETRY = 0.2  # unscaled seconds between the foreign loop's retries after a 1303
TARGET = 0.90
TARGET_NO_AUTO = 0.95


def idle_by_occupancy(tasks: list[dict[str, Any]], capacity: int) -> dict[int, float]:
    """Idle slot-seconds spent at each occupancy level (slots held on the server), between
    the first task's start and the last task's end, from the sandbox's task records."""
    events = sorted(
        [(t["created_at"], t["cost"]) for t in tasks] + [(t["ends_at"], -t["cost"]) for t in tasks]
    )
    idle: dict[int, float] = {}
    level, last = 0, events[0][0] if events else 0.0
    for at, change in events:
        if at > last:
            idle[level] = idle.get(level, 0.0) + (capacity - level) * (at - last)
        level, last = level + change, at
    return idle


def make_requests(count: int, seed: int, auto: bool) -> list[ka.OmniImageRequest]:
    """A reproducible mix: 60 % single n 1–4, 25 % fixed series 2–6, 15 % auto series (fixed
    series 2–6 instead when ``auto`` is False)."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        roll = rng.random()
        common: dict[str, Any] = {
            "prompt": f"product shot {i}",
            "model_name": IMAGE_MODEL,
            "aspect_ratio": "1:1",
        }
        if roll < 0.60:
            requests.append(ka.OmniImageRequest(**common, n=rng.randint(1, 4)))
        elif roll < 0.85 or not auto:
            amount = rng.randint(2, 6)
            requests.append(
                ka.OmniImageRequest(**common, result_type="series", series_amount=amount)
            )
        else:
            requests.append(
                ka.OmniImageRequest(**common, result_type="series", series_amount="auto")
            )
    return requests


@dataclass
class ForeignLoad:
    """A raw aiohttp loop holding ``FOREIGN_COST`` slots of the pool while ``active`` is set."""

    base_url: str
    poll: float
    retry: float
    active: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float | None = None
    stopped_at: float | None = None
    created: int = 0
    rejected_1303: int = 0
    requests: int = 0

    async def run(self) -> None:
        url = self.base_url + IMAGE_PATH
        await self.active.wait()
        self.started_at = time.time()
        async with aiohttp.ClientSession(headers=auth_headers()) as session:
            while not self.stopped.is_set():
                body = image_body(f"{FOREIGN_PREFIX}{self.created}", n=FOREIGN_COST)
                async with session.post(url, json=body) as response:
                    answer = await response.json()
                self.requests += 1
                if answer["code"] == 1303:
                    self.rejected_1303 += 1
                    await asyncio.sleep(self.retry)
                    continue
                if answer["code"] != 0:
                    raise RuntimeError(f"foreign create refused: {answer}")
                self.created += 1
                task_id = answer["data"]["task_id"]
                while True:
                    await asyncio.sleep(self.poll)
                    async with session.get(f"{url}/{task_id}") as response:
                        answer = await response.json()
                    self.requests += 1
                    if answer["data"]["task_status"] in ("succeed", "failed"):
                        break
        self.stopped_at = time.time()


async def run(
    base_url: str,
    requests: list[ka.OmniImageRequest],
    foreign: ForeignLoad | None,
    secret: str | None,
    **options: Any,
) -> tuple[list[tuple[ka.Outcome, float]], Any]:
    """Stream ``requests``, with a callback receiver when ``secret`` is given; with
    ``foreign``, run it from the 1/3 to the 2/3 outcome. Returns ``(outcome, seen_at)`` pairs
    and the client's stats."""
    if foreign is None:
        seen, stats, _ = await run_client_with_callbacks(base_url, requests, secret, **options)
        return seen, stats
    done = 0

    def on_outcome(_outcome: ka.Outcome, _at: float) -> None:
        nonlocal done
        done += 1
        if done >= len(requests) / 3:
            foreign.active.set()
        if done >= 2 * len(requests) / 3:
            foreign.stopped.set()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(foreign.run())
        try:
            pairs, stats, _ = await run_client_with_callbacks(
                base_url, requests, secret, on_outcome=on_outcome, **options
            )
        finally:
            foreign.active.set()
            foreign.stopped.set()
    return pairs, stats


def slot_seconds(tasks: Iterable[dict[str, Any]], start: float, end: float) -> float:
    """Σ cost × seconds held within [start, end] (epoch seconds) over ``tasks``."""
    total = 0.0
    for t in tasks:
        overlap = min(end, t["ends_at"]) - max(start, t["created_at"])
        if overlap > 0:
            total += t["cost"] * overlap
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-auto", action="store_true", help="fixed series instead of auto")
    parser.add_argument("--foreign-load", action="store_true", help="hold 3 slots mid-run")
    parser.add_argument(
        "--callbacks", action="store_true", help="CallbackReceiver + polling as a safety net"
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=None,
        help="override Quota.hol_patience, in unscaled seconds (scaled like the durations); "
        "default: the library default, 'auto' (30 mean task durations)",
    )
    parser.add_argument(
        "--lookahead",
        type=int,
        default=None,
        help="override KlingClient(lookahead=...); default: the library default",
    )
    args = parser.parse_args()

    scale = args.scale
    lookahead = args.lookahead or library_default("lookahead")
    foreign_poll = REAL_FOREIGN_POLL * scale
    quota_options: dict[str, Any] = {"image": QUOTA}
    if args.patience is not None:
        quota_options["hol_patience"] = args.patience * scale
    quota = ka.Quota(**quota_options)
    target = TARGET_NO_AUTO if args.no_auto else TARGET
    requests = make_requests(args.requests, args.seed, auto=not args.no_auto)
    low, high = scaled(REAL_IMAGE_SECONDS, scale)

    report = Report(
        "quota utilisation"
        + (" with foreign load" if args.foreign_load else "")
        + (" with callbacks" if args.callbacks else ""),
        vars(args),
        scale,
    )
    kinds = {
        "single": sum(r.result_type == "single" for r in requests),
        "fixed series": sum(r.result_type == "series" and not r.is_auto_series for r in requests),
        "auto series": sum(r.is_auto_series for r in requests),
    }
    report.line(f"requests: {len(requests)} {kinds}; quota {QUOTA}")
    report.line(
        f"client: poll cadence the library default (at the pace of the tasks); "
        f"lookahead {lookahead}; "
        + (
            f"Quota.hol_patience {quota.hol_patience:g} s (override, scaled)"
            if args.patience is not None
            else "Quota.hol_patience 'auto' (library default: 30 mean task durations, so it "
            "scales with them)"
        )
    )
    secret = webhook_secret() if args.callbacks else None
    sandbox_options: dict[str, Any] = {
        "quota": {"image": QUOTA},
        "image_duration": (low, high),
        "seed": args.seed,
    }
    if secret is not None:
        sandbox_options["callback_secret"] = secret
    with SandboxProcess(**sandbox_options) as sb:
        report.line(sb.describe().replace(secret or "\0", "whsec_…"))
        if secret is not None:
            report.line("client: CallbackReceiver on 127.0.0.1 with a webhook secret")
        foreign = None
        if args.foreign_load:
            foreign = ForeignLoad(sb.base_url, poll=foreign_poll, retry=REAL_FOREIGN_RETRY * scale)
            report.line(
                f"foreign load: n={FOREIGN_COST} creates, same key and pool, from the 1/3 to the "
                f"2/3 outcome; polls every {foreign_poll:g} s, retries a 1303 after "
                f"{foreign.retry:g} s"
            )
        started = time.monotonic()
        pairs, client_stats = asyncio.run(
            run(
                sb.base_url,
                requests,
                foreign,
                secret,
                quota=quota,
                lookahead=lookahead,
            )
        )
        wall = time.monotonic() - started
        stats = sb.stats()
        tasks = sb.tasks()

    pool = stats["pools"][POOL]
    outcomes = [o for o, _ in pairs]
    ends = {t["task_id"]: t["ends_at"] for t in tasks}
    held_after_end = sum(
        o.task.cost * (at - ends[o.task.task_id])
        for o, at in pairs
        if o.task is not None and o.task.task_id in ends
    )
    surfaced = sum(isinstance(o.error, ka.ConcurrencyLimitError) for o in outcomes)
    failed = sum(not o.ok for o in outcomes)
    utilisation = pool["slot_seconds"] / (QUOTA * stats["makespan"])
    report.line(f"wall time {wall:.1f} s; sandbox makespan {stats['makespan']:.1f} s")
    report.line(f"outcomes failed: {failed}")
    report.line(
        f"1303s: surfaced to outcomes {surfaced}; absorbed by the client (re-queued) "
        f"{client_stats.requeued_1303}; sandbox total {stats['rejected_1303']}"
        + (f" (foreign loop: {foreign.rejected_1303})" if foreign is not None else "")
    )
    report.line(
        f"overbooking creates (in slots held by auto series' reservations): "
        f"{client_stats.overbooked}, of them answered 1303: {client_stats.overbooked_requeued}"
    )
    report.line(f"peak slots in use: {pool['peak']} of {QUOTA}")
    idle = QUOTA * stats["makespan"] - pool["slot_seconds"]
    report.line(
        f"slot-seconds used: {pool['slot_seconds']:.1f}; idle: {idle:.1f} "
        f"({idle / (QUOTA * stats['makespan']):.1%} of {QUOTA} × makespan)"
    )
    report.line(
        f"  of it detection lag, Σ cost × (outcome seen − task end): {held_after_end:.1f} slot-s "
        f"({held_after_end / (QUOTA * stats['makespan']):.1%} of {QUOTA} × makespan)"
    )
    by_level = idle_by_occupancy([t for t in tasks if t["kind"] == "image"], QUOTA)
    report.line(
        "  idle by slots held on the server: "
        + ", ".join(
            f"{level}: {seconds / (QUOTA * stats['makespan']):.1%}"
            for level, seconds in sorted(by_level.items())
            if seconds / (QUOTA * stats["makespan"]) >= 0.001
        )
    )
    report.line(
        f"HTTP requests seen by the sandbox: {stats['requests']} "
        f"({stats['requests'] / len(requests):.2f} per request"
        + (f", {foreign.requests} of them the foreign loop's)" if foreign is not None else ")")
    )
    if foreign is not None and foreign.started_at and foreign.stopped_at:
        ours = [t for t in tasks if not (t["external_task_id"] or "").startswith(FOREIGN_PREFIX)]
        theirs = [t for t in tasks if (t["external_task_id"] or "").startswith(FOREIGN_PREFIX)]
        a, b = foreign.started_at, foreign.stopped_at
        first = min(t["created_at"] for t in tasks)
        last = max(t["ends_at"] for t in tasks)
        rows = []
        last_create = max(t["created_at"] for t in ours)
        phases = (
            ("before", first, a),
            ("foreign window", a, b),
            ("after, to the last create", b, last_create),
            ("drain (no request left)", last_create, last),
        )
        for name, lo, hi in phases:
            span = max(hi - lo, 1e-9)
            rows.append(
                (
                    name,
                    f"{span:.1f}",
                    f"{slot_seconds(ours, lo, hi) / span:.2f}",
                    f"{slot_seconds(theirs, lo, hi) / span:.2f}",
                    f"{(slot_seconds(ours, lo, hi) + slot_seconds(theirs, lo, hi)) / span:.2f}",
                )
            )
        report.line(f"foreign loop created {foreign.created} tasks of {FOREIGN_COST} slots")
        report.table(
            ("phase", "seconds", "client slots (mean)", "foreign slots (mean)", "pool (mean)"),
            rows,
        )

    report.target("1303s surfaced to outcomes", str(surfaced), "0", surfaced == 0)
    report.target("peak slots", str(pool["peak"]), f"≤ {QUOTA}", pool["peak"] <= QUOTA)
    report.target(
        "quota utilisation" + (" (client + foreign)" if foreign is not None else ""),
        f"{utilisation:.3f}",
        f"≥ {target:.2f}",
        utilisation >= target,
    )
    report.target("outcomes failed", str(failed), "0", failed == 0)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
