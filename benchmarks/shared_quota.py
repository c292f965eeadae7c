"""Shared quota: several ``kling-async run`` processes on one account's image quota of 9.

One campaign of N mixed image requests (``kling-image-o1``, n drawn from 1, 1, 2, 3, 4; no
``auto`` series) runs five times, each time against a fresh sandbox process (image quota 9,
task durations --duration LOW HIGH seconds) and, where Redis is used, a fresh private
``redis-server`` (no persistence) on a free port:

- (a) the requests split over --processes ``kling-async run`` processes (real OS processes,
  each with its own campaign file and ``--out`` folder), each with its own in-process quota
  of 9 (no ``--redis``): the contrast, shown, no target;
- (b) the same processes sharing the quota through ``--redis`` (``RedisQuotaBackend``);
- (c) one process with every request (the single-process reference, in-process quota);
- (d) as (b), but one process is killed with SIGKILL when a third of the outcomes are in and
  restarted (the same command, the same ``--out``) when two thirds are;
- (e) as (b), but Redis is stopped when half the outcomes are in and a new, empty
  ``redis-server`` is started on the same port --redis-down seconds later.

"Outcomes are in" counts the lines of every process's ``manifest.jsonl``, which a run appends to
as each outcome arrives. Every figure comes from the sandbox's own counts (``GET
/sandbox/stats``), the final manifests and, after the run, the shared pool's hash on Redis:

- utilisation = pool slot-seconds / (9 × makespan), makespan from the first accepted create to
  the last task end;
- 1303s absorbed per create = creates refused with 1303 / accepted creates;
- HTTP requests per task = API requests the sandbox saw / accepted creates;
- peak slots the sandbox's pool held;
- errors = campaign lines whose final manifest row is not ``succeeded`` (or is missing);
- duplicate creates = accepted creates − campaign lines, and creates refused for an
  ``external_task_id`` in use;
- slots left held at the end: the sandbox pool's ``in_use`` and Redis's ``in_use`` of the
  shared pool (``kling_async:{<namespace>}:pool:kling-image-o1:image``).

Targets: (b) utilisation ≥ 0.93 and no more than 0.02 below (c); (b) and (e) ≤ 0.02 1303s per
create; 0 errors and 0 duplicate creates in (b)–(e); (d) every line exactly one outcome, no slot
left held (sandbox and Redis), utilisation ≥ 0.85.

Only the command line and the sandbox's HTTP routes are used (no private module of
kling_async). Needs ``redis-server`` and ``redis-cli`` on the PATH.

Usage: python benchmarks/shared_quota.py [--requests 240] [--processes 4]
    [--duration 1 3] [--seed 7] [--scenarios abcde] [--redis-down 1.0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import API_KEY, Report, SandboxProcess, free_port, terminate
from quota_utilisation import idle_by_occupancy

QUOTA = 9
MODEL = "kling-image-o1"
POOL = f"{MODEL}:image"
N_CHOICES = (1, 1, 2, 3, 4)
PROCESS_TIMEOUT = 600.0  # seconds one scenario may take before it is called stuck
TARGET_UTILISATION = 0.93
TARGET_GAP = 0.02  # (b) may be at most this far below (c)
TARGET_1303 = 0.02  # per create
TARGET_UTILISATION_KILL = 0.85

SCENARIOS = {
    "a": "4 processes, own quota each",
    "b": "4 processes, shared (Redis)",
    "c": "1 process (reference)",
    "d": "(b) + SIGKILL, restart",
    "e": "(b) + Redis restarted",
}


# --- the campaign ----------------------------------------------------------------------------


def make_lines(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` reproducible campaign lines: single images, n drawn from ``N_CHOICES``."""
    rng = random.Random(seed)
    return [
        {
            "kind": "image",
            "model_name": MODEL,
            "prompt": f"product shot {i}",
            "n": rng.choice(N_CHOICES),
            "aspect_ratio": "1:1",
        }
        for i in range(count)
    ]


def split(lines: Sequence[dict[str, Any]], parts: int) -> list[list[dict[str, Any]]]:
    """``lines`` dealt round-robin into ``parts`` campaigns (every process gets the same mix)."""
    return [list(lines[i::parts]) for i in range(parts)]


# --- redis-server ----------------------------------------------------------------------------


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1 without persistence (a restart starts empty)."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server on ``self.port`` and wait until it answers PING."""
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SystemExit(f"redis-server exited at start; see {self._log}")
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        raise SystemExit(f"redis-server did not answer PING within 10 s; see {self._log}")

    def stop(self) -> None:
        """Stop the server (SIGTERM; without persistence it saves nothing). Idempotent."""
        proc, self._proc = self._proc, None
        terminate(proc)

    def cli(self, *args: str) -> str:
        """One ``redis-cli`` command; its output stripped ("" when the server is down)."""
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    def pool_state(self) -> dict[str, Any]:
        """The shared pool's hash on Redis (``kling_async:{<ns>}:pool:<pool>``), plus the
        number of leases and waiters left; ``{}`` when no pool key exists."""
        keys = self.cli("--scan", "--pattern", "kling_async:*:pool:*").split()
        keys = [k for k in keys if k.endswith(f":pool:{POOL}")]
        if not keys:
            return {}
        key = keys[0]
        fields = self.cli("HGETALL", key).splitlines()
        state: dict[str, Any] = dict(zip(fields[::2], fields[1::2], strict=False))
        state["key"] = key
        prefix = key[: -len(f":pool:{POOL}")]
        state["leases"] = int(self.cli("HLEN", f"{prefix}:leases:{POOL}") or 0)
        state["waiters"] = int(self.cli("ZCARD", f"{prefix}:queue:{POOL}") or 0)
        state["hget_in_use"] = self.cli("HGET", key, "in_use")
        return state


# --- kling-async run processes ---------------------------------------------------------------


def cli_command() -> list[str]:
    """The ``kling-async`` console script beside this Python, else ``python -m kling_async``."""
    script = Path(sys.executable).with_name("kling-async")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kling_async"]


@dataclass
class RunProcess:
    """One ``kling-async run CAMPAIGN --out DIR`` process; (re)started with the same command."""

    name: str
    campaign: Path
    out: Path
    base_url: str
    redis_url: str | None
    proc: subprocess.Popen[bytes] | None = None
    exits: list[int] = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        command = [
            *cli_command(),
            "run",
            str(self.campaign),
            "--out",
            str(self.out),
            "--base-url",
            self.base_url,
            "--quota",
            f"image={QUOTA}",
        ]
        if self.redis_url is not None:
            command += ["--redis", self.redis_url]
        return command

    @property
    def log(self) -> Path:
        return self.out.with_name(self.out.name + ".log")

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "KLING_ASYNC_REDIS_URL"}
        env["KLING_API_KEY"] = API_KEY
        with self.log.open("ab") as log:
            log.write(f"$ {' '.join(self.command)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or released."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.exits.append(self.proc.wait())
        self.proc = None

    def poll(self) -> bool:
        """True once the process has exited (its status appended to ``exits``)."""
        if self.proc is None:
            return True
        status = self.proc.poll()
        if status is None:
            return False
        self.exits.append(status)
        self.proc = None
        return True

    def outcomes(self) -> int:
        """Lines of the manifest so far (one per outcome this run has seen)."""
        try:
            with (self.out / "manifest.jsonl").open(encoding="utf-8") as f:
                return sum(1 for line in f if line.strip())
        except OSError:
            return 0

    def rows(self) -> list[dict[str, Any]]:
        try:
            text = (self.out / "manifest.jsonl").read_text(encoding="utf-8")
        except OSError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# --- one scenario ----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    processes: int
    lines: int
    wall: float
    stats: dict[str, Any]
    errors: int
    missing: int
    doubled: int
    exits: list[list[int]]
    redis: dict[str, Any] | None
    events: list[str]
    tasks: list[dict[str, Any]]

    @property
    def pool(self) -> dict[str, Any]:
        return self.stats["pools"].get(POOL, {})

    @property
    def utilisation(self) -> float:
        return self.pool.get("slot_seconds", 0.0) / (QUOTA * self.stats["makespan"])

    @property
    def per_create_1303(self) -> float:
        return self.stats["rejected_1303"] / max(self.stats["creates"], 1)

    @property
    def requests_per_task(self) -> float:
        return self.stats["requests"] / max(self.stats["creates"], 1)

    @property
    def duplicate_creates(self) -> int:
        return self.stats["creates"] - self.lines

    @property
    def redis_in_use(self) -> str:
        if self.redis is None:
            return "—"
        return self.redis.get("hget_in_use", "") or "(no key)"


Trigger = tuple[float, Callable[[], str]]  # (share of the outcomes in, action → event text)


def run_scenario(
    name: str,
    campaigns: list[list[dict[str, Any]]],
    workdir: Path,
    args: argparse.Namespace,
    *,
    redis: bool,
    kill: bool = False,
    restart_redis: bool = False,
) -> Result:
    """Run ``campaigns`` (one process each) against a fresh sandbox (and Redis), with the
    scenario's mid-run event, and collect the figures."""
    root = workdir / name
    root.mkdir(parents=True)
    total = sum(len(c) for c in campaigns)
    server = RedisServer(root / "redis.log") if redis else None
    sandbox = SandboxProcess(
        quota={"image": QUOTA}, image_duration=tuple(args.duration), seed=args.seed
    )
    events: list[str] = []
    with sandbox:
        if server is not None:
            server.start()
        try:
            procs = []
            for i, lines in enumerate(campaigns):
                campaign = root / f"campaign-{i}.jsonl"
                campaign.write_text("".join(json.dumps(x) + "\n" for x in lines), "utf-8")
                procs.append(
                    RunProcess(
                        f"p{i}",
                        campaign,
                        root / f"out-{i}",
                        sandbox.base_url,
                        server.url if server is not None else None,
                    )
                )
            victim = procs[1 % len(procs)]

            def stamp(text: str) -> str:
                first = sandbox.stats().get("first_create_at")
                at = time.time() - first if first else 0.0
                done = sum(p.outcomes() for p in procs)
                return f"{at:.1f} s after the first create ({done}/{total} outcomes): {text}"

            def kill_victim() -> str:
                victim.kill()
                return stamp(f"SIGKILL {victim.name} (exit {victim.exits[-1]})")

            def restart_victim() -> str:
                victim.start()
                return stamp(f"restarted {victim.name} with the same command and --out")

            def bounce_redis() -> str:
                assert server is not None
                server.stop()
                stopped = stamp("redis-server stopped")
                time.sleep(args.redis_down)
                server.start()
                return f"{stopped}; a new empty one started {args.redis_down:g} s later"

            triggers: list[Trigger] = []
            if kill:
                triggers += [(1 / 3, kill_victim), (2 / 3, restart_victim)]
            if restart_redis:
                triggers.append((1 / 2, bounce_redis))
            started = time.monotonic()
            for p in procs:
                p.start()
            while True:
                # The victim's partial manifest stays on disk while it is down, and a restarted
                # run rewrites its own from the start, so the count may briefly fall back.
                done = sum(p.outcomes() for p in procs)
                while triggers and done >= triggers[0][0] * total:
                    events.append(triggers.pop(0)[1]())
                if all(p.poll() for p in procs) and not triggers:
                    break
                if time.monotonic() - started > PROCESS_TIMEOUT:
                    for p in procs:
                        if p.proc is not None:
                            p.kill()
                    events.append(f"stuck: killed after {PROCESS_TIMEOUT:g} s")
                    break
                time.sleep(0.05)
            wall = time.monotonic() - started
            # Tasks have all ended when every run has its outcomes; wait for the sandbox to
            # agree (at most the longest task) before reading its figures.
            deadline = time.monotonic() + args.duration[1] + 5
            while time.monotonic() < deadline and sandbox.stats()["pools"].get(POOL, {}).get(
                "in_use"
            ):
                time.sleep(0.1)
            stats = sandbox.stats()
            tasks = [t for t in sandbox.tasks() if t["kind"] == "image"]
            redis_state = server.pool_state() if server is not None else None
        finally:
            if server is not None:
                server.stop()
    errors = missing = doubled = 0
    for p, lines in zip(procs, campaigns, strict=True):
        rows = p.rows()
        seen = [r["line"] for r in rows]
        missing += len(set(range(1, len(lines) + 1)) - set(seen))
        doubled += len(seen) - len(set(seen))
        errors += sum(r["status"] != "succeeded" for r in rows)
        for p_row in rows:
            if p_row["status"] != "succeeded":
                events.append(f"{p.name} line {p_row['line']}: {p_row['status']}: {p_row['error']}")
        if p.exits and p.exits[-1] != 0:
            events.append(f"{p.name} exited {p.exits[-1]}; log tail:\n{p.tail()}")
    return Result(
        name=name,
        processes=len(campaigns),
        lines=total,
        wall=wall,
        stats=stats,
        errors=errors + missing,
        missing=missing,
        doubled=doubled,
        exits=[p.exits for p in procs],
        redis=redis_state,
        events=events,
        tasks=tasks,
    )


def describe_idle(result: Result) -> str:
    """Where the pool stood idle: share of 9 × makespan by slots held on the server, and the
    share idle after the last create (the drain, when no request is left to start)."""
    span = QUOTA * result.stats["makespan"]
    if not result.tasks or span <= 0:
        return "no tasks"
    by_level = idle_by_occupancy(result.tasks, QUOTA)
    last_create = max(t["created_at"] for t in result.tasks)
    drain = [
        {**t, "created_at": max(t["created_at"], last_create)}
        for t in result.tasks
        if t["ends_at"] > last_create
    ]
    drain_idle = sum(idle_by_occupancy(drain, QUOTA).values())
    levels = ", ".join(
        f"{level}: {seconds / span:.1%}"
        for level, seconds in sorted(by_level.items())
        if seconds / span >= 0.001
    )
    return (
        f"{sum(by_level.values()) / span:.1%} of {QUOTA} × makespan; by slots held {levels}; "
        f"after the last create {drain_idle / span:.1%}"
    )


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument(
        "--duration", type=float, nargs=2, default=[1.0, 3.0], metavar=("LOW", "HIGH")
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scenarios", default="abcde", help="which of a–e to run")
    parser.add_argument(
        "--redis-down", type=float, default=1.0, help="seconds Redis is down in (e)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and outputs here")
    args = parser.parse_args()
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on the PATH")

    lines = make_lines(args.requests, args.seed)
    split_lines = split(lines, args.processes)
    report = Report(
        "shared quota",
        vars(args),
        f"image tasks of {args.duration[0]:g}–{args.duration[1]:g} s as given (not scaled); "
        "the clients poll at their default cadence",
    )
    counts = {n: sum(x["n"] == n for x in lines) for n in sorted(set(N_CHOICES))}
    report.line(
        f"requests: {len(lines)} single {MODEL} images, n: {counts}, "
        f"{sum(x['n'] for x in lines)} slots in all; quota {QUOTA}; "
        f"{args.processes} processes of {[len(c) for c in split_lines]} lines"
    )
    report.line(f"processes: {' '.join(cli_command())} run … --quota image={QUOTA} [--redis URL]")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="shared-quota-", dir=args.keep))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="shared-quota-"))
    report.line(f"work folder: {workdir}")

    plans: dict[str, dict[str, Any]] = {
        "a": {"campaigns": split_lines, "redis": False},
        "b": {"campaigns": split_lines, "redis": True},
        "c": {"campaigns": [lines], "redis": False},
        "d": {"campaigns": split_lines, "redis": True, "kill": True},
        "e": {"campaigns": split_lines, "redis": True, "restart_redis": True},
    }
    results: dict[str, Result] = {}
    try:
        for key in args.scenarios:
            plan = plans[key]
            report.line(f"-- ({key}) {SCENARIOS[key]}")
            result = run_scenario(key, plan.pop("campaigns"), workdir, args, **plan)
            results[key] = result
            report.line(
                f"   wall {result.wall:.1f} s, makespan {result.stats['makespan']:.1f} s, "
                f"utilisation {result.utilisation:.3f}, 1303s {result.stats['rejected_1303']}, "
                f"creates {result.stats['creates']}, exits {result.exits}"
            )
            for event in result.events:
                report.line(f"   {event}")
            report.line(f"   idle: {describe_idle(result)}")
            if result.redis:
                shown = {
                    k: result.redis.get(k)
                    for k in ("in_use", "hidden", "peak", "overbooked", "leases", "waiters")
                }
                report.line(f"   redis {result.redis['key']}: {shown}")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)

    report.line()
    report.table(
        (
            "scenario",
            "utilisation",
            "1303/create",
            "requests/task",
            "peak",
            "errors",
            "dup creates",
            "dup ext ids",
            "in_use end (sandbox / redis)",
            "makespan s",
        ),
        [
            (
                f"({k}) {SCENARIOS[k]}",
                f"{r.utilisation:.3f}",
                f"{r.per_create_1303:.3f} ({r.stats['rejected_1303']}/{r.stats['creates']})",
                f"{r.requests_per_task:.2f}",
                r.pool.get("peak"),
                r.errors,
                r.duplicate_creates,
                r.stats["duplicate_external_ids"],
                f"{r.pool.get('in_use')} / {r.redis_in_use}",
                f"{r.stats['makespan']:.1f}",
            )
            for k, r in results.items()
        ],
    )

    b, c, d, e = (results.get(k) for k in "bcde")
    if b is not None:
        report.target(
            "(b) utilisation",
            f"{b.utilisation:.3f}",
            f"≥ {TARGET_UTILISATION:.2f}",
            b.utilisation >= TARGET_UTILISATION,
        )
        report.target(
            "(b) 1303s per create",
            f"{b.per_create_1303:.3f}",
            f"≤ {TARGET_1303:.2f}",
            b.per_create_1303 <= TARGET_1303,
        )
    if b is not None and c is not None:
        report.target(
            "(b) utilisation against (c)",
            f"{b.utilisation - c.utilisation:+.3f} ({c.utilisation:.3f} in (c))",
            f"≥ −{TARGET_GAP:.2f}",
            b.utilisation >= c.utilisation - TARGET_GAP,
        )
    for k in "bcde":
        r = results.get(k)
        if r is None:
            continue
        report.target(f"({k}) errors in outcomes", str(r.errors), "0", r.errors == 0)
        dups = r.duplicate_creates, r.stats["duplicate_external_ids"]
        report.target(f"({k}) duplicate creates", f"{dups[0]}, {dups[1]}", "0, 0", dups == (0, 0))
    if d is not None:
        report.target(
            "(d) every line one outcome",
            f"{d.missing} missing, {d.doubled} twice",
            "0, 0",
            d.missing == 0 and d.doubled == 0,
        )
        leaked_redis = d.redis_in_use
        report.target(
            "(d) slots held at the end (sandbox / redis)",
            f"{d.pool.get('in_use')} / {leaked_redis}",
            "0 / 0",
            d.pool.get("in_use") == 0 and leaked_redis == "0",
        )
        report.target(
            "(d) utilisation",
            f"{d.utilisation:.3f}",
            f"≥ {TARGET_UTILISATION_KILL:.2f}",
            d.utilisation >= TARGET_UTILISATION_KILL,
        )
    if e is not None:
        report.target(
            "(e) 1303s per create",
            f"{e.per_create_1303:.3f}",
            f"≤ {TARGET_1303:.2f}",
            e.per_create_1303 <= TARGET_1303,
        )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
