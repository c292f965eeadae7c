"""A ``kling-async work`` process's RSS over a long run: flat, or growing with lines done?

Pushes --lines single-image lines (``kling-image-o1``, n = 1) onto a queue in a private
``redis-server`` (no persistence), then runs one worker (a real OS process) against a sandbox
process with a large image quota, short tasks (--duration LOW HIGH s) and a deep lookahead
(lines held beyond those running), for at most
--seconds. Every --every seconds it samples the worker's RSS (psutil) and the lines done
(the sandbox's accepted creates). Reported: lines done, and the mean RSS of the first and the
last tenth of the samples taken after the first 1,000 lines (start-up and warm-up excluded),
with the line counts they cover.

Target (issue 24): a worker's RSS flat over 100,000 lines.

Usage: python benchmarks/queue_worker_memory.py [--lines 100000] [--seconds 600]
    [--duration 0.01 0.05] [--quota 200] [--every 5] [--lookahead 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _harness import API_KEY, SandboxProcess, free_port


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--duration", type=float, nargs=2, default=(0.01, 0.05))
    parser.add_argument("--quota", type=int, default=200)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--lookahead", type=int, default=64, help="work --lookahead N")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("needs redis-server on the PATH")
        return 2
    cli = [sys.executable, "-m", "kling_async"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(0.5)
            campaign = folder / "c.jsonl"
            with campaign.open("w") as f:
                for i in range(args.lines):
                    body = {"kind": "image", "model_name": "kling-image-o1", "prompt": f"fox {i}"}
                    f.write(json.dumps(body) + "\n")
            subprocess.run([*cli, "push", str(campaign), "--redis", url, "--queue", "mem"],
                           check=True, capture_output=True)  # fmt: skip
            quota = {"image": args.quota, "video": 5}
            with SandboxProcess(quota=quota, image_duration=tuple(args.duration)) as sb:
                worker = subprocess.Popen(
                    [*cli, "work", "--redis", url, "--queue", "mem", "--out",
                     str(folder / "out"), "--base-url", sb.base_url, "--quota",
                     f"image={args.quota},video=5", "--lookahead", str(args.lookahead)],
                    env={**os.environ, "KLING_API_KEY": API_KEY},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                proc = psutil.Process(worker.pid)
                started = time.monotonic()
                samples: list[tuple[float, int, float]] = []  # (seconds, lines done, RSS MiB)
                try:
                    while worker.poll() is None and time.monotonic() - started < args.seconds:
                        time.sleep(args.every)
                        done = int(sb.stats()["creates"])
                        rss = proc.memory_info().rss / 2**20
                        samples.append((time.monotonic() - started, done, rss))
                        print(f"{samples[-1][0]:7.0f} s {done:7d} lines {rss:6.1f} MiB", flush=True)
                finally:
                    if worker.poll() is None:
                        worker.terminate()  # SIGTERM: an orderly stop
                        worker.wait(timeout=60)
        finally:
            server.terminate()
            server.wait()
    warm = [s for s in samples if s[1] >= 1000]
    if len(warm) < 10:
        print(f"too few samples after the first 1,000 lines ({len(warm)}); run longer")
        return 1
    tenth = len(warm) // 10
    first, last = warm[:tenth], warm[-tenth:]

    def mean(part: list[tuple[float, int, float]]) -> float:
        return sum(s[2] for s in part) / len(part)

    print(
        f"one worker, {samples[-1][1]:,} of {args.lines:,} lines created in "
        f"{samples[-1][0]:.0f} s ({len(samples)} samples every {args.every:g} s)"
    )
    print(
        f"RSS first tenth (lines {first[0][1]:,}–{first[-1][1]:,}): {mean(first):.1f} MiB; "
        f"last tenth (lines {last[0][1]:,}–{last[-1][1]:,}): {mean(last):.1f} MiB; "
        f"peak {max(s[2] for s in samples):.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
