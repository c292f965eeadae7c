"""The campaign queue: K ``kling-async work`` processes sharing one image quota of 9.

One campaign of --lines mixed image lines (``kling-image-o1``, n drawn from 1, 1, 2, 3, 4, as
``shared_quota.py``) is pushed onto a queue and worked through twice, each time against a fresh
sandbox process (image quota 9, task durations --duration LOW HIGH s) and a fresh private
``redis-server`` (no persistence): (1) by one worker, (2) by --workers workers (real OS
processes, each its own ``--out``). Figures from the sandbox's own counts (``GET
/sandbox/stats``) and ``kling-async collect``:

- utilisation = pool slot-seconds / (9 × makespan), makespan from the first accepted create to
  the last task end (as ``shared_quota.py``);
- 1303s per create = creates refused with 1303 / accepted creates;
- creates, duplicate creates (accepted − lines, and creates refused for an id in use), lines
  not ``succeeded`` in the collected manifest;
- each worker's RSS (``/proc/<pid>/status`` VmRSS) sampled every second: first sample after
  the first outcome, and the largest.

Targets (issue 24): (2) utilisation ≥ 0.93, ≤ 1 % 1303s per create, and within 0.02 of (1).

Usage: python benchmarks/queue_workers.py [--lines 1000] [--workers 4] [--duration 1 3]
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
from typing import Any

from _harness import API_KEY, SandboxProcess, free_port
from shared_quota import make_lines

QUOTA = 9


def rss_mib(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kb = next(int(x.split()[1]) for x in text.splitlines() if x.startswith("VmRSS:"))
    return kb / 1024


def scenario(lines: list[dict[str, Any]], workers: int, duration: tuple[float, float],
             folder: Path) -> dict[str, Any]:  # fmt: skip
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    data = folder / f"redis-{workers}"
    data.mkdir()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(data)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    cli = [sys.executable, "-m", "kling_async"]
    env = {**os.environ, "KLING_API_KEY": API_KEY}
    try:
        time.sleep(0.5)
        with SandboxProcess(quota={"image": QUOTA, "video": 5}, image_duration=duration) as sb:
            campaign = folder / f"c{workers}.jsonl"
            campaign.write_text("".join(json.dumps(line) + "\n" for line in lines))
            subprocess.run([*cli, "push", str(campaign), "--redis", url, "--queue", "bench"],
                           check=True, capture_output=True)  # fmt: skip
            procs = [
                subprocess.Popen(
                    [
                        *cli,
                        "work",
                        "--redis",
                        url,
                        "--queue",
                        "bench",
                        "--out",
                        str(folder / f"w{workers}-{i}"),
                        "--base-url",
                        sb.base_url,
                        "--quota",
                        f"image={QUOTA},video=5",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for i in range(workers)
            ]
            samples: dict[int, list[float]] = {p.pid: [] for p in procs}
            while any(p.poll() is None for p in procs):
                if sb.stats()["creates"] > 0:
                    for p in procs:
                        if (mib := rss_mib(p.pid)) is not None:
                            samples[p.pid].append(mib)
                time.sleep(1.0)
            codes = [p.returncode for p in procs]
            stats = sb.stats()
            out = folder / f"all-{workers}"
            subprocess.run([*cli, "collect", "--redis", url, "--queue", "bench", "--out",
                            str(out)], check=True, capture_output=True)  # fmt: skip
            rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    finally:
        server.terminate()
        server.wait()
    pool = stats["pools"]["kling-image-o1:image"]
    return {
        "workers": workers,
        "exit codes": codes,
        "utilisation": pool["slot_seconds"] / (QUOTA * stats["makespan"]),
        "makespan": stats["makespan"],
        "creates": stats["creates"],
        "rejected_1303": stats["rejected_1303"],
        "duplicates": stats["creates"] - len(lines) + stats["duplicate_external_ids"],
        "not succeeded": sum(r["status"] != "succeeded" for r in rows) + len(lines) - len(rows),
        "rss": {pid: (s[0], max(s)) for pid, s in samples.items() if s},
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=float, nargs=2, default=(1.0, 3.0))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("needs redis-server on the PATH")
        return 2
    lines = make_lines(args.lines, args.seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, args.workers):
            result = scenario(lines, workers, tuple(args.duration), Path(tmp))  # type: ignore[arg-type]
            results.append(result)
            print(
                f"{workers} worker(s): utilisation {result['utilisation']:.3f}, makespan "
                f"{result['makespan']:.1f} s, creates {result['creates']}, 1303s "
                f"{result['rejected_1303']} ({result['rejected_1303'] / result['creates']:.2%}), "
                f"duplicates {result['duplicates']}, not succeeded {result['not succeeded']}, "
                f"exit codes {result['exit codes']}"
            )
            for pid, (first, peak) in result["rss"].items():
                print(f"   worker {pid}: RSS {first:.0f} MiB at first create, peak {peak:.0f} MiB")
    one, many = results
    print(
        f"targets: utilisation ≥ 0.93: {many['utilisation'] >= 0.93}; 1303s ≤ 1 %: "
        f"{many['rejected_1303'] <= 0.01 * many['creates']}; within 0.02 of 1 worker: "
        f"{abs(many['utilisation'] - one['utilisation']) <= 0.02}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
