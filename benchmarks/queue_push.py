"""``kling-async push``: lines per second, Redis memory per 1,000,000 lines, flat memory.

Writes a campaign of --lines image lines (Kling's body form, ~110 bytes each), starts a private
``redis-server`` (no persistence) on a free port, and runs ``kling-async push`` as an OS process
(``/usr/bin/time``-free: the child's peak RSS comes from ``resource.getrusage``). Reported:

- lines/s = lines / wall time of the push process (start to exit, Python start-up included);
- Redis memory per 1,000,000 lines = (``used_memory`` after − before) scaled to 10⁶ lines;
- the push process's peak RSS, at --lines and at a tenth of it (flat memory: about equal);
- a second push of the same file: lines queued (target 0) and its time.

Targets (issue 24): ≥ 50,000 lines/s; flat memory.

Usage: python benchmarks/queue_push.py [--lines 1000000] [--processes 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import free_port


def campaign(path: Path, lines: int) -> None:
    with path.open("w") as f:
        for i in range(lines):
            body = {"kind": "image", "model_name": "kling-image-o1", "prompt": f"a red fox {i}"}
            f.write(json.dumps(body) + "\n")


def used_memory(port: int) -> int:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "memory"], capture_output=True, text=True
    ).stdout
    return int(next(x for x in out.splitlines() if x.startswith("used_memory:")).split(":")[1])


def push(path: Path, port: int, queue: str, processes: int) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes of the push process, its stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "kling_async", "push", str(path), "--redis",
         f"redis://127.0.0.1:{port}/0", "--queue", queue,
         *(["--processes", str(processes)] if processes > 1 else [])],
        capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far (kB): only a rise is this push's.
    return elapsed, max(peak, before) * 1024, proc.stderr.strip()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=1, help="push --processes N")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("needs redis-server on the PATH")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(0.5)
            small, big = folder / "small.jsonl", folder / "big.jsonl"
            campaign(small, args.lines // 10)
            campaign(big, args.lines)
            _, rss_small, _ = push(small, port, "small", args.processes)
            base = used_memory(port)
            seconds, rss_big, said = push(big, port, "big", args.processes)
            grown = used_memory(port) - base
            again, _, said_again = push(big, port, "big", args.processes)
        finally:
            server.terminate()
            server.wait()
    print(f"push of {args.lines} lines: {seconds:.1f} s, {args.lines / seconds:,.0f} lines/s")
    print(f"  ({said})")
    print(f"Redis memory: {grown / args.lines * 1e6 / 2**20:,.0f} MiB per 1,000,000 lines")
    print(
        f"push process peak RSS: {rss_small / 2**20:.0f} MiB at {args.lines // 10} lines, "
        f"{rss_big / 2**20:.0f} MiB at {args.lines} lines"
    )
    print(f"second push of the same file: {again:.1f} s ({said_again})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
