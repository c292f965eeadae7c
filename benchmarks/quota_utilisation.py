"""Quota utilisation: how fully the client keeps an image pool of 9 slots busy.

Runs N mixed image requests (single n 1–4, fixed series, auto series) against the sandbox,
which runs in a separate process on 127.0.0.1, and prints from the sandbox's own counts:

- 1303s surfaced to outcomes (target 0; 1303s the client absorbed are shown separately),
- peak slots in use (target ≤ 9),
- quota utilisation = slot-seconds used / (9 × makespan) (target ≥ 0.85).

Task durations are scaled down by --scale from Kling-like 10–30 s images, and the client's
poll interval is scaled by the same factor; the output says so.

Usage: python benchmarks/quota_utilisation.py [--requests 200] [--scale 0.05] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import time
import urllib.request

import kling_async as ka

QUOTA = 9
REAL_IMAGE_SECONDS = (10.0, 30.0)  # unscaled task durations
REAL_POLL_SECONDS = 1.0  # the client's default image poll interval


def make_requests(count: int, seed: int) -> list[ka.OmniImageRequest]:
    """A reproducible mix: 60 % single n 1–4, 25 % fixed series 2–6, 15 % auto series."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        roll = rng.random()
        common = {
            "prompt": f"product shot {i}",
            "model_name": "kling-v3-omni",
            "aspect_ratio": "1:1",
        }
        if roll < 0.60:
            requests.append(ka.OmniImageRequest(**common, n=rng.randint(1, 4)))
        elif roll < 0.85:
            requests.append(
                ka.OmniImageRequest(**common, result_type="series", series_amount=rng.randint(2, 6))
            )
        else:
            requests.append(
                ka.OmniImageRequest(**common, result_type="series", series_amount="auto")
            )
    return requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox(port: int, scale: float, seed: int) -> subprocess.Popen[bytes]:
    low, high = (d * scale for d in REAL_IMAGE_SECONDS)
    code = (
        "from kling_async.testing import serve; "
        f"serve(port={port}, api_keys=('bench',), quota={{'image': {QUOTA}}}, "
        f"image_duration=({low}, {high}), seed={seed})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("sandbox did not start")


def sandbox_stats(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/sandbox/stats") as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


async def run(
    port: int,
    requests: list[ka.OmniImageRequest],
    poll: float,
    patience: float | None,
    lookahead: int,
) -> list[ka.Outcome]:
    async with ka.KlingClient(
        api_key="bench",
        base_url=f"http://127.0.0.1:{port}",
        quota=ka.Quota(image=QUOTA, hol_patience=patience),
        image_poll_interval=poll,
        lookahead=lookahead,
    ) as client:
        return await client.run_all(requests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--patience",
        type=float,
        default=10.0,
        help="Quota.hol_patience in unscaled seconds (default 10, the library default)",
    )
    parser.add_argument(
        "--lookahead", type=int, default=32, help="KlingClient(lookahead=); 32 is its default"
    )
    args = parser.parse_args()

    requests = make_requests(args.requests, args.seed)
    poll = REAL_POLL_SECONDS * args.scale
    port = free_port()
    proc = start_sandbox(port, args.scale, args.seed)
    try:
        started = time.monotonic()
        outcomes = asyncio.run(
            run(port, requests, poll, args.patience * args.scale, args.lookahead)
        )
        wall = time.monotonic() - started
        stats = sandbox_stats(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    pool = stats["pools"]["kling-v3-omni:image"]  # type: ignore[index]
    surfaced = sum(isinstance(o.error, ka.ConcurrencyLimitError) for o in outcomes)
    failed = sum(not o.ok for o in outcomes)
    utilisation = pool["slot_seconds"] / (QUOTA * stats["makespan"])  # type: ignore[operator]
    kinds = {
        "single": sum(r.result_type == "single" for r in requests),
        "fixed series": sum(r.result_type == "series" and not r.is_auto_series for r in requests),
        "auto series": sum(r.is_auto_series for r in requests),
    }
    print(f"requests: {len(requests)} {kinds}; quota {QUOTA}")
    print(
        f"task durations scaled by {args.scale}: {REAL_IMAGE_SECONDS[0] * args.scale:g}–"
        f"{REAL_IMAGE_SECONDS[1] * args.scale:g} s; client poll interval {poll:g} s "
        f"(scaled from {REAL_POLL_SECONDS:g} s)"
    )
    print(f"wall time: {wall:.1f} s; sandbox makespan {stats['makespan']:.1f} s")
    print(f"outcomes failed: {failed}")
    print(
        f"1303s surfaced to outcomes: {surfaced} (target 0); "
        f"1303s absorbed by re-queueing: {stats['rejected_1303']}"
    )
    print(f"peak slots in use: {pool['peak']} (target ≤ {QUOTA})")
    print(f"slot-seconds used: {pool['slot_seconds']:.1f}")
    print(f"quota utilisation: {utilisation:.3f} (target ≥ 0.85)")
    print(
        f"HTTP requests seen by the sandbox: {stats['requests']} "
        f"({stats['requests'] / len(requests):.2f} per task)"
    )
    ok = surfaced == 0 and pool["peak"] <= QUOTA and utilisation >= 0.85 and failed == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
