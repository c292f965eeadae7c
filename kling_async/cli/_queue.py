"""``kling-async push / work / status / collect``: one campaign spread over many hosts on a
Redis Stream (see :class:`RedisCampaign`).

- ``push CAMPAIGN --redis URL --queue NAME [--processes N]``: queue every line (idempotent),
  validated in N processes; one row per invalid line on stderr; exit 1 if any, else 0.
- ``work --redis URL --queue NAME --out DIR [--base-url URL | --sandbox] [--quota ...]``: one
  worker: takes lines as the shared quota (on the same Redis) admits them, creates, follows,
  downloads into ``DIR``, records the outcome, then acknowledges. Exits 0 once no line is left
  without an outcome (``--follow``: waits for more); SIGINT / SIGTERM hand back what it holds
  and exit 130 / 143.
- ``status --redis URL --queue NAME [--json]``: lines queued, running, done by status, units,
  dead letters, workers.
- ``collect --redis URL --queue NAME --out DIR``: ``DIR/manifest.jsonl``, a row per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import attrs
from rich.console import Console

from .._errors import AuthenticationError
from .._models import Outcome
from .._queue._redis_campaign import RedisCampaign
from .._quota._config import Quota
from ._manifest import append_row, request_fields, result_fields
from ._run import (
    CredentialsRefused,
    Interrupt,
    RunOptions,
    SetupError,
    _make_client,
    _save_outcome,
    _Tally,
    check_redis_url,
    parse_quota,
)
from ._settings import check_client_settings
from ._signals import Signals

__all__ = ["QUEUE_COMMANDS", "WorkOptions", "add_queue_commands", "run_queue_command", "work"]

QUEUE_COMMANDS = ("push", "work", "collect")  # and ``status`` with --redis / --queue
DEFAULT_CLAIM_TIMEOUT = 30.0  # seconds; documented in docs/scaling.md
DEFAULT_LOOKAHEAD = 4  # lines a worker holds beyond those running


@attrs.frozen(kw_only=True)
class WorkOptions:
    """Settings of one ``kling-async work``."""

    redis: str
    queue: str
    out: Path
    quota: Quota = attrs.field(factory=Quota)
    sandbox: bool = False
    base_url: str | None = None
    task_timeout: float | None = None
    follow: bool = False
    claim_timeout: float = DEFAULT_CLAIM_TIMEOUT
    lookahead: int = DEFAULT_LOOKAHEAD


def add_queue_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    status: argparse.ArgumentParser,
) -> None:
    """Add ``push``, ``work`` and ``collect`` to the command line's subparsers, and
    ``--redis``/``--queue`` to the ``status`` parser (a run folder's status, or a queue's)."""
    redis_help = "the Redis holding the queue (and the shared quota), e.g. redis://host:6379/0"

    def queue_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--redis",
            default=os.environ.get("KLING_ASYNC_REDIS_URL") or None,
            metavar="URL",
            help=redis_help + " (default: $KLING_ASYNC_REDIS_URL; needs kling-async[redis])",
        )
        parser.add_argument("--queue", metavar="NAME", help="the queue's name, e.g. spring-2026")

    push = sub.add_parser("push", parents=[common], help="queue a campaign's lines on Redis")
    push.add_argument("campaign", help="campaign file, JSON Lines (as for 'run')")
    queue_args(push)
    push.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="validate the lines in N processes (default 1: this one)",
    )
    work = sub.add_parser(
        "work", parents=[common], help="work through a queue: create, follow, download"
    )
    queue_args(work)
    work.add_argument("--out", required=True, help="this worker's output folder")
    work.add_argument("--sandbox", action="store_true", help="a private built-in sandbox")
    work.add_argument("--base-url", help="API root, e.g. a gateway https://host/kling")
    work.add_argument("--quota", help="concurrency slots, e.g. image=9,video=5 (as for 'run')")
    work.add_argument("--task-timeout", type=float, default=None, help="seconds a task may take")
    work.add_argument(
        "--follow", action="store_true", help="keep waiting for new lines once the queue is done"
    )
    work.add_argument(
        "--claim-timeout",
        type=float,
        default=DEFAULT_CLAIM_TIMEOUT,
        metavar="S",
        help="seconds a silent worker keeps its lines before others take them over "
        f"(default {DEFAULT_CLAIM_TIMEOUT:g})",
    )
    work.add_argument(
        "--lookahead",
        type=int,
        default=DEFAULT_LOOKAHEAD,
        metavar="N",
        help=f"lines held beyond those running (default {DEFAULT_LOOKAHEAD})",
    )
    queue_args(status)  # `status --redis URL --queue NAME [--json]`: a queue's figures
    collect = sub.add_parser(
        "collect", parents=[common], help="one manifest.jsonl for a queue's whole campaign"
    )
    queue_args(collect)
    collect.add_argument("--out", required=True, help="folder to write manifest.jsonl to")


def run_queue_command(args: argparse.Namespace, console: Console, signals: Signals) -> int:
    """Run ``args.command`` (one of :data:`QUEUE_COMMANDS`); the exit status.

    Raises:
        SetupError: a missing or bad ``--redis`` / ``--queue``, an unreadable campaign, a
            queue holding another campaign, Redis unreachable; for ``work``, settings the
            client refuses (no credentials, a bad ``--base-url``).
    """
    url, name = _redis_url(args.redis), _queue_name(args.queue)
    if args.command == "work":
        check_client_settings("kling", sandbox=args.sandbox, base_url=args.base_url)
        options = WorkOptions(
            redis=url,
            queue=name,
            out=Path(args.out),
            quota=parse_quota(args.quota),
            sandbox=args.sandbox,
            base_url=args.base_url,
            task_timeout=args.task_timeout,
            follow=args.follow,
            claim_timeout=args.claim_timeout,
            lookahead=args.lookahead,
        )
        return _work_with_signals(options, console, signals)
    command = {"push": _push, "status": _status, "collect": _collect}[args.command]
    return anyio.run(_redis_down_is_setup_error, command, args, url, name, backend="asyncio")


def _redis_url(url: str | None) -> str:
    if not url:
        raise SetupError("--redis URL is required (or set KLING_ASYNC_REDIS_URL)")
    return check_redis_url(url)


def _queue_name(name: str | None) -> str:
    if not name:
        raise SetupError("--queue NAME is required")
    try:
        RedisCampaign.check_name(name)
    except ValueError as exc:
        raise SetupError(f"--queue: {exc}") from None
    return name


async def _redis_down_is_setup_error(command: Any, *args: Any) -> int:
    import redis

    try:
        return int(await command(*args))
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise SetupError(f"--redis: cannot reach Redis ({exc})") from None


async def _push(args: argparse.Namespace, url: str, name: str) -> int:
    path = Path(args.campaign)
    if not path.is_file():  # noqa: ASYNC240 (nothing else runs on this loop)
        raise SetupError(f"campaign file not found: {path}")
    base = path.resolve().parent  # noqa: ASYNC240
    started = time.monotonic()
    async with RedisCampaign(url, name) as queue:
        try:
            # Read as it is pushed (flat memory); the loop has nothing else to do meanwhile.
            with path.open(encoding="utf-8") as lines:  # noqa: ASYNC230
                report = await queue.push(lines, base=base, processes=args.processes)
        except UnicodeDecodeError:
            raise SetupError(f"campaign file {path} is not UTF-8 text (JSON Lines)") from None
        except ValueError as exc:
            raise SetupError(str(exc)) from None
    for line, reason in report.invalid:
        print(f"line {line}: invalid: {_plain(reason)}", file=sys.stderr)
    elapsed = time.monotonic() - started
    print(
        f"queue {name}: {report.queued} lines queued, {report.skipped} pushed before, "
        f"{len(report.invalid)} invalid, in {elapsed:.1f} s",
        file=sys.stderr,
    )
    return 1 if report.invalid else 0


async def _status(args: argparse.Namespace, url: str, name: str) -> int:
    async with RedisCampaign(url, name) as queue:
        figures = await queue.status()
    if args.json:
        print(json.dumps(figures.as_json(), indent=2))
        return 0
    done = ", ".join(f"{n} {s}" for s, n in sorted(figures.done.items())) or "none"
    print(f"queue {name}: {figures.lines} lines")
    print(f"  queued {figures.queued}, running {figures.running}, done: {done}")
    print(f"  units charged: {figures.units}")
    if figures.dead_letter:
        print(f"  dead letters (lines): {', '.join(map(str, figures.dead_letter))}")
    now = time.time()
    for w in figures.workers:
        state = "alive" if w.alive else "gone"
        print(
            f"  worker {_plain(w.host)} pid {w.pid} {state}, last seen {now - w.last_seen:.0f} s "
            f"ago, folder {_plain(w.out)}"
        )
    return 0


async def _collect(args: argparse.Namespace, url: str, name: str) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (nothing else runs on this loop)
    manifest, count, not_done = out / "manifest.jsonl", 0, 0
    partial = manifest.with_suffix(".jsonl.part")
    async with RedisCampaign(url, name) as queue:
        with partial.open("w", encoding="utf-8") as fh:
            async for row in queue.rows():
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
                not_done += row["status"] == "not_done"
    partial.replace(manifest)
    print(f"{manifest}: {count} lines, {not_done} not done yet", file=sys.stderr)
    return 0 if not_done == 0 else 1


def _plain(text: str) -> str:
    """Untrusted text with control characters escaped (never printed raw)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:2000])


# -- work ----------------------------------------------------------------------------------


def _work_with_signals(options: WorkOptions, console: Console, signals: Signals) -> int:
    with signals.installed():
        status = anyio.run(_work_attached, options, console, signals, backend="asyncio")
    if signals.signum is not None:
        return 128 + signals.signum
    return status


async def _work_attached(options: WorkOptions, console: Console, signals: Signals) -> int:
    interrupt = Interrupt()
    signals.attach(interrupt, asyncio.get_running_loop())
    try:
        return await work(options, console, interrupt)
    except CredentialsRefused as exc:
        raise SetupError(f"credentials refused ({exc})") from None


async def work(options: WorkOptions, console: Console, interrupt: Interrupt) -> int:
    """One worker on the queue until no line is left without an outcome (0), or until
    ``interrupt`` stops it: the lines it holds are handed back (1).

    Raises:
        CredentialsRefused: the API refused the key (the lines held are handed back).
    """
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    run = RunOptions(
        campaign=out,
        out=out,
        quota=options.quota,
        sandbox=options.sandbox,
        base_url=options.base_url,
        task_timeout=options.task_timeout,
        redis=None if options.sandbox else options.redis,
        lookahead=options.lookahead,
    )
    manifest, tally = out / "manifest.jsonl", _Tally()
    refused: list[AuthenticationError] = []
    async with AsyncExitStack() as stack:
        queue = await stack.enter_async_context(
            RedisCampaign(
                options.redis,
                options.queue,
                claim_timeout=options.claim_timeout,
                follow=options.follow,
                out=out.resolve(),
            )
        )
        client = await stack.enter_async_context(await _make_client(run, stack, console))

        async def finish(outcome: Outcome) -> None:
            if isinstance(outcome.error, AuthenticationError):
                refused.append(outcome.error)
                interrupt.stop("credentials refused")
                return
            line = queue.line_of(outcome)
            row = await _save_outcome(client, outcome, line.line, line.key, out, tally)
            row = {**row, **request_fields(outcome.request), **result_fields(outcome.result)}
            append_row(manifest, row)
            del row["line"]
            await queue.ack(outcome, row)
            if not console.is_terminal:
                console.print(f"line {line.line}: {row['status']}", markup=False)

        with interrupt.scope:
            stream = client.stream(queue.requests(client))
            async with stream as outcomes, anyio.create_task_group() as tg:
                async for outcome in outcomes:
                    tg.start_soon(finish, outcome)
        if interrupt.reason is not None or refused:
            with anyio.CancelScope(shield=True):
                handed = await queue.hand_back()
            console.print(
                f"[bold]stopped[/bold] ({interrupt.reason}): {tally.succeeded + tally.failed} "
                f"lines done here, {handed} handed back to the queue"
            )
            if refused:
                raise CredentialsRefused(str(refused[0]))
            return 1
        stats = client.stats()
    console.print(
        f"[bold]queue {options.queue} done[/bold]: {tally.succeeded} succeeded, {tally.failed} "
        f"failed here; {tally.files} files in {out}; {stats.tasks_created} tasks created, "
        f"{stats.resumed} taken over, {stats.requeued_1303} creates re-queued on a full quota"
    )
    return 0
