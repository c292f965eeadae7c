"""Invalid lines: `kling-async run --sandbox` over a campaign of N invalid lines.

Writes a campaign of N lines that each break a request rule (``"n": 0``), runs the CLI as a
subprocess (``python -m kling_async run FILE --out DIR --sandbox``, stderr a pipe read to the
end, as CI would), and measures its wall time and peak RSS (``resource.getrusage`` of the
children: ``ru_maxrss``); their CPU time is printed too, as a check that does not depend on
the machine's load. Checks the exit status (1: lines were invalid) and that the manifest
holds one ``invalid`` row per line, in order.

Targets: wall time ≤ 10 s and peak RSS ≤ 120 MB for 100,000 lines.

Usage: python benchmarks/invalid_lines.py [--lines 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import Report

TARGET_SECONDS = 10.0
TARGET_PEAK_MB = 120.0
LINE = '{"kind": "image", "prompt": "a mug", "n": 0}\n'  # n must be 1–9: invalid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="campaign lines (100000)")
    args = parser.parse_args()
    report = Report("invalid lines", vars(args), scale="no task runs: every line is invalid")
    with tempfile.TemporaryDirectory() as folder:
        campaign, out = Path(folder) / "campaign.jsonl", Path(folder) / "out"
        campaign.write_text(LINE * args.lines, encoding="utf-8")
        started = time.perf_counter()
        command = ["run", str(campaign), "--out", str(out), "--sandbox"]
        proc = subprocess.run(
            [sys.executable, "-m", "kling_async", *command],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
        cpu = usage.ru_utime + usage.ru_stime
        manifest = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in manifest]
    in_order = [r["line"] for r in rows] == list(range(1, args.lines + 1))
    all_invalid = all(r["status"] == "invalid" for r in rows)
    printed = sum(1 for line in proc.stderr.splitlines() if ": invalid: " in line)
    report.line(f"exit status {proc.returncode}; {printed} 'invalid' lines printed on stderr")
    report.line(f"manifest: {len(rows)} rows, in order: {in_order}, all invalid: {all_invalid}")
    report.line(f"wall time {seconds:.2f} s (CPU {cpu:.2f} s); peak RSS {peak_mb:.1f} MB")
    report.target("exit status", str(proc.returncode), "1", proc.returncode == 1)
    report.target(
        "manifest rows",
        str(len(rows)),
        f"{args.lines}, in order, invalid",
        in_order and all_invalid,
    )
    report.target(
        "wall time", f"{seconds:.2f} s", f"≤ {TARGET_SECONDS:g} s", seconds <= TARGET_SECONDS
    )
    report.target(
        "peak RSS", f"{peak_mb:.1f} MB", f"≤ {TARGET_PEAK_MB:g} MB", peak_mb <= TARGET_PEAK_MB
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
