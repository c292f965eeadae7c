"""``kling-async run``: one campaign file run to the end (or to an interrupt), outputs on disk.

Submits every line under quota, downloads each output to ``DIR`` as soon as its task ends,
writes ``DIR/manifest.jsonl`` (one line per campaign line) and prints a summary. An interrupt
(:class:`Interrupt`, set off by the command line's signal handling) stops creating at once; the
manifest then says of every line whether it is done, running (followed on resume) or not
started, and the summary names the command that resumes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs
from rich.console import Console

from .._client import KlingClient
from .._errors import (
    AuthenticationError,
    BudgetExceededError,
    CredentialsRefused,
    EndpointError,
    KlingError,
    OutcomeUnknownError,
    SetupError,
)
from .._http._download import safe_stem
from .._models import Outcome, Request
from .._quota._config import Quota
from .._quota._redis import RedisQuotaBackend
from .._requests._campaign import CampaignLine, CampaignLineError, content_lines, read_campaign
from ._budget import campaign_budget, exhausted_reason, journal_spending, summary_lines
from ._files import gallery_hint
from ._folder import better_row, good_rows, journal_states
from ._manifest import (
    append_row,
    describe_row,
    new_row,
    request_fields,
    result_fields,
    row_line,
    unfinished_row,
)
from ._progress import progress_fields, run_progress
from ._status import record_run
from ._text import say

__all__ = [
    "CredentialsRefused",
    "Interrupt",
    "RunOptions",
    "SetupError",
    "check_redis_url",
    "parse_quota",
    "run_campaign",
    "sandbox_durations",
    "stderr_console",
]

SANDBOX_KEY = "sandbox-key"
JOURNAL_NAME = "journal.sqlite"
SANDBOX_STATE_NAME = "sandbox-state.jsonl"
_RUN_JSON_LIMIT = 4096  # bytes of run.json read (it holds one short id)
# Sandbox task durations for `run --sandbox`, in seconds: real Kling images take ~10–60 s and
# videos minutes; the demo scales them down so a campaign finishes in under a minute.
SANDBOX_IMAGE_DURATION = (1.0, 4.0)
SANDBOX_VIDEO_DURATION = (3.0, 8.0)


def sandbox_durations(
    sandbox: bool, image: tuple[float, float] | None, video: tuple[float, float] | None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The seconds (low, high) of ``--sandbox-image-duration`` / ``--sandbox-video-duration``,
    each :data:`SANDBOX_IMAGE_DURATION` / :data:`SANDBOX_VIDEO_DURATION` when not given.

    Raises:
        SetupError: one is given without ``--sandbox``.
    """
    if not sandbox and (image is not None or video is not None):
        raise SetupError("--sandbox-image-duration / --sandbox-video-duration need --sandbox")
    return image or SANDBOX_IMAGE_DURATION, video or SANDBOX_VIDEO_DURATION


@attrs.frozen(kw_only=True)
class RunOptions:
    """Settings of one ``kling-async run``."""

    campaign: Path
    out: Path
    quota: Quota = attrs.field(factory=Quota)
    sandbox: bool = False
    base_url: str | None = None
    task_timeout: float | None = None
    provider: Literal["kling", "modellix"] = "kling"
    api_standard: Literal["legacy", "new"] = "legacy"  # Kling's API standard for videos
    deadline: float | None = None
    resume_command: str | None = None  # shown after an interrupt
    redis: str | None = None  # share the account's quota on this Redis (RedisQuotaBackend)
    budget: Decimal | None = None  # the most units the run may spend (stream budget_units)
    budget_total: Decimal | None = None  # the most units every run into `out` may spend
    lookahead: int = 32  # requests pulled ahead of those running (KlingClient lookahead)
    # Seconds a --sandbox image / video task takes, (low, high): a random draw between them.
    sandbox_image_duration: tuple[float, float] = SANDBOX_IMAGE_DURATION
    sandbox_video_duration: tuple[float, float] = SANDBOX_VIDEO_DURATION


@attrs.define
class Interrupt:
    """Stops a run early: :meth:`stop` cancels the part of the run that creates and follows
    tasks; what was recorded stays recorded (journal, manifest, files)."""

    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    reason: str | None = None
    # Called (synchronously, from a signal handler) when the run must end at once: writes the
    # manifest and prints the summary from what is known. Set by the run while it runs.
    at_once: Callable[[], None] | None = None

    def stop(self, reason: str) -> None:
        """Stop creating at once (idempotent; the first reason is kept)."""
        if self.reason is None:
            self.reason = reason
        self.scope.cancel()


def stderr_console() -> Console:
    """The console the command line writes to: stderr. When stderr is not a terminal (a file,
    a pipe, CI) nothing is wrapped: rich would otherwise break every line at 80 columns, which
    split the printed resume command over several lines."""
    console = Console(stderr=True)
    console.soft_wrap = not console.is_terminal
    return console


def check_redis_url(url: str) -> str:
    """``url`` when it is a Redis URL and redis-py is installed (``--redis``).

    Raises:
        SetupError: another scheme, or no redis-py.
    """
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise SetupError(f"--redis: {url!r} is not a redis://, rediss:// or unix:// URL")
    try:
        import redis  # noqa: F401
    except ImportError:
        raise SetupError("--redis needs redis-py: pip install 'kling-async[redis]'") from None
    return url


def parse_quota(text: str | None) -> Quota:
    """``--quota image=9,video=5,...`` as a :class:`Quota` (the default when not given).

    Raises:
        SetupError: the text is malformed, names an unknown pool or a capacity below 1; the
            message starts with the flag.
    """
    if not text:
        return Quota()
    try:
        return Quota.parse(text)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if message.startswith("--quota"):
            raise SetupError(message) from None
        raise SetupError(f"--quota {text!r}: {message}") from None


@attrs.define
class _Tally:
    succeeded: int = 0
    failed: int = 0
    invalid: int = 0
    over_budget: int = 0
    files: int = 0
    bytes: int = 0


async def run_campaign(
    options: RunOptions, console: Console | None = None, interrupt: Interrupt | None = None
) -> int:
    """Run a campaign file to the end; return the exit status (0 all succeeded, else 1).

    With ``interrupt`` stopped, return 1 after writing a manifest in which every line that has
    no outcome yet is ``running`` (created; a re-run follows it) or ``not_started`` (the lines
    the stream had not read yet included).

    Raises:
        CredentialsRefused: the API refused the key; the manifest then shows nothing ran.
        SetupError: before any create succeeded, the API could not be reached or has no
            create path at the base URL (:class:`EndpointError`); the manifest then shows the
            lines not started.
    """
    console = console or stderr_console()
    interrupt = interrupt or Interrupt()
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(out)
    total = sum(1 for _ in content_lines(options.campaign))
    manifest_path = out / "manifest.jsonl"
    rows: dict[int, dict[str, Any]] = {}
    invalid_lines: dict[int, str] = {}  # line → reason; kept apart, small (100,000 may come)
    tally = _Tally()
    started, started_at = time.monotonic(), time.time()
    line_of: list[int] = []
    key_of: list[str] = []
    refused: list[AuthenticationError] = []
    unreachable: list[EndpointError] = []
    described: dict[int, dict[str, Any]] = {}  # line → the manifest's kind, model and prompt

    money = await campaign_budget(out / JOURNAL_NAME, options.budget, options.budget_total)

    def spent_total(line: int, key: str) -> None:
        assert options.budget_total is not None
        tally.over_budget += 1
        reason = exhausted_reason(options.budget_total, money.spent_before)
        rows[line] = new_row(line, status="over_budget", external_task_id=key, error=reason)
        progress.advance(bar)

    def invalid(line: int, reason: str) -> None:
        tally.invalid += 1
        invalid_lines[line] = reason
        say(console, (f"line {line}: invalid", "red"), f": {reason}")
        if not progress.disable:  # off a terminal it shows nothing but costs per line
            progress.advance(bar)

    def write_manifest() -> dict[int, dict[str, Any]]:
        """The final manifest: one row per campaign line, in file order, never worse than
        an earlier run's. Returns the rows of the lines that were not invalid (invalid ones
        are written from their reasons, never held as rows: 100,000 may come)."""
        final = {line: better_row(row, earlier.get(line)) for line, row in rows.items()}
        final = {**earlier, **final}
        lines = final.keys() | invalid_lines.keys()
        if len(lines) < total:  # stopped before every line was read: they are not started
            lines |= {number for number, _ in content_lines(options.campaign)}
        with manifest_path.open("w", encoding="utf-8") as fh:
            for line in sorted(lines):
                row = final.get(line)
                if row is None and line in invalid_lines:
                    row = new_row(line, status="invalid", error=invalid_lines[line])
                fh.write(row_line(row or new_row(line, status="not_started")))
        return final

    def say_interrupted(final: dict[int, dict[str, Any]], reason: str) -> None:
        statuses = [row["status"] for row in final.values()]
        not_started = statuses.count("not_started") + total - len(final) - len(invalid_lines)
        say(
            console,
            ("interrupted", "bold"),
            f" ({reason}) after {time.monotonic() - started:.1f} s: "
            f"{tally.succeeded + tally.failed} done, {statuses.count('running')} running "
            f"(followed on resume), {not_started} not "
            f"started, {tally.invalid} invalid; manifest {manifest_path}",
        )
        if options.resume_command:
            say(console, f"resume with: {options.resume_command}")

    def stopped_at_once() -> None:
        """A second interrupt: no await is possible, so the journal is read directly for the
        lines without an outcome, the manifest written and the summary printed."""
        states = journal_states(out / JOURNAL_NAME)
        for line, key in zip(line_of, key_of, strict=True):
            if line not in rows:
                state, task_id = states.get(key, (None, None))
                rows[line] = {**unfinished_row(line, key, state, task_id), **described[line]}
        say_interrupted(write_manifest(), "stopped at once")

    interrupt.at_once = stopped_at_once
    earlier: dict[int, dict[str, Any]] = {}

    def requests() -> Iterator[Request]:
        for item in read_campaign(options.campaign, options.provider):
            if isinstance(item, CampaignLineError):
                invalid(item.line, item.reason)
                continue
            assert isinstance(item, CampaignLine)
            request = item.request
            # The line's key names its files and journal entry. Kling receives it as the
            # external_task_id; a wire API without one (Modellix) keeps it local.
            key = request.external_task_id or f"{run_id}-{item.line:05d}"
            if not client.carries_external_task_id:
                request = attrs.evolve(request, external_task_id=None)
            if money.exhausted and key not in money.known:
                spent_total(item.line, key)  # never sent: the campaign's budget total is spent
                continue
            try:
                client.check(request)
            except ValueError as exc:
                invalid(item.line, str(exc))
                continue
            line_of.append(item.line)
            key_of.append(key)
            described[item.line] = request_fields(request)
            yield request

    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(await _make_client(options, stack, console))
        progress = run_progress(console)
        stack.enter_context(progress)
        bar = progress.add_task("campaign", total=total, **progress_fields(None))

        async def finish(outcome: Outcome) -> None:
            if isinstance(outcome.error, AuthenticationError):
                refused.append(outcome.error)
                interrupt.stop("credentials refused")
                return
            line, key = line_of[outcome.index], key_of[outcome.index]
            if outcome.task is not None and outcome.task.adopted:
                say(
                    console,
                    f"line {line}: adopted existing task {outcome.task.task_id} (its "
                    f"external_task_id {key} was already in use)",
                )
            until = _line_until(outcome, options.task_timeout, run_until)
            row = await _save_outcome(client, outcome, line, key, out, tally, until)
            rows[line] = row = {**row, **described.get(line, {}), **result_fields(outcome.result)}
            append_row(manifest_path, row)
            progress.advance(bar)
            fields = progress_fields(client.stats(), tally.succeeded, tally.failed, tally.invalid)
            progress.update(bar, **fields)
            if not console.is_terminal:
                say(console, describe_row(row))

        # The good rows of an earlier run of this folder stay until better ones replace them.
        earlier = good_rows(manifest_path, out)
        manifest_path.write_text("".join(row_line(r) for r in earlier.values()), encoding="utf-8")
        run_until = None if options.deadline is None else anyio.current_time() + options.deadline
        pending = requests()  # kept: the lines a stopped stream never read are read below
        stream = client.stream(
            pending,
            deadline=options.deadline,
            keys=lambda index, _: key_of[index],
            budget_units=money.run_limit,
        )
        try:
            with interrupt.scope:
                async with stream as outcomes, anyio.create_task_group() as tg:
                    async for outcome in outcomes:
                        tg.start_soon(finish, outcome)
        except* AuthenticationError as group:
            refused.extend(e for e in group.exceptions if isinstance(e, AuthenticationError))
        except* EndpointError as group:  # nothing was created: the lines stay unsent
            unreachable.extend(e for e in group.exceptions if isinstance(e, EndpointError))
        if interrupt.reason is not None or refused or unreachable:
            with anyio.CancelScope(shield=True):
                for _ in pending:  # each line left unread gets its row (and its check)
                    pass
                await _mark_unfinished(client, rows, line_of, key_of)
                for line in rows:
                    rows[line].update(described.get(line, {}))

    interrupt.at_once = None  # from here on, the run ends its own way
    rows = write_manifest()
    if refused:
        raise CredentialsRefused(str(refused[0]))
    if unreachable:
        raise SetupError(
            f"{unreachable[0]}; nothing was created by this run, so the same command can run "
            "every line once that is fixed"
        )
    elapsed = time.monotonic() - started
    if interrupt.reason is not None:
        say_interrupted(rows, interrupt.reason)
        record_run(out, started_at=started_at, outcome="interrupted", stats=client.stats(),
                   resume_command=options.resume_command)  # fmt: skip
        return 1
    stats = client.stats()
    budget = f" of the budget of {money.run_limit}" if money.run_limit is not None else ""
    over = f", {tally.over_budget} over budget (not created)" if tally.over_budget else ""
    say(
        console,
        ("done", "bold"),
        f" in {elapsed:.1f} s: {tally.succeeded} succeeded, "
        f"{tally.failed} failed{over}, {tally.invalid} invalid lines; {tally.files} files "
        f"({tally.bytes / 1e6:.1f} MB) in {out}; {stats.units_spent} units charged{budget}; "
        f"{stats.tasks_created} tasks created, "
        f"{stats.requeued_1303} creates re-queued on a full quota; manifest {manifest_path}",
    )
    campaign_units, _ = await journal_spending(out / JOURNAL_NAME)
    for text in summary_lines(
        run_units=stats.units_spent,
        campaign_units=campaign_units,
        run_limit=money.run_limit,
        budget_total=options.budget_total,
    ):
        say(console, text)
    say(console, gallery_hint(out))
    record_run(out, started_at=started_at, outcome="done", stats=stats,
               resume_command=options.resume_command)  # fmt: skip
    if options.redis:
        for name, pool in sorted(client.quota_snapshot().items()):
            say(
                console,
                f"shared pool {name} on Redis: {pool.capacity} slots, {pool.in_use} held by "
                f"this process and {pool.others} by others at the end; peak {pool.peak}",
            )
    return 0 if tally.failed == tally.invalid == tally.over_budget == 0 else 1


async def _mark_unfinished(
    client: KlingClient, rows: dict[int, dict[str, Any]], line_of: list[int], key_of: list[str]
) -> None:
    """Rows for the lines a stopped run left without an outcome: ``running`` when the journal
    knows the task was (or may have been) created, else ``not_started``."""
    for line, key in zip(line_of, key_of, strict=True):
        if line in rows:
            continue
        entry = await client.journal.get(key) if client.journal is not None else None
        if entry is None:
            rows[line] = unfinished_row(line, key, None, None)
        else:
            rows[line] = unfinished_row(line, key, entry.state, entry.task_id)


async def _make_client(options: RunOptions, stack: AsyncExitStack, console: Console) -> KlingClient:
    journal = options.out / JOURNAL_NAME
    if not options.sandbox:
        return KlingClient(
            provider=options.provider,
            api_standard=options.api_standard,
            base_url=options.base_url,
            quota=options.quota,
            task_timeout=options.task_timeout,
            journal=journal,
            quota_backend=RedisQuotaBackend(options.redis) if options.redis else None,
            lookahead=options.lookahead,
        )
    from ..testing import Sandbox

    quota = options.quota
    sandbox = await stack.enter_async_context(
        Sandbox(
            api_keys=(SANDBOX_KEY,),
            quota={"image": quota.image, "video": quota.video, **quota.pools},
            modellix_concurrency=quota.team,
            image_duration=options.sandbox_image_duration,
            video_duration=options.sandbox_video_duration,
            # Kept beside the journal, so a killed run resumes against the same tasks.
            state_file=options.out / SANDBOX_STATE_NAME,
        )
    )
    base_url = {"kling": sandbox.base_url, "modellix": sandbox.modellix_base_url}[options.provider]
    (image_low, image_high), (video_low, video_high) = (
        options.sandbox_image_duration,
        options.sandbox_video_duration,
    )
    say(
        console,
        f"{options.provider} sandbox at {base_url} (task durations scaled down: images "
        f"{image_low:g}–{image_high:g} s, videos {video_low:g}–{video_high:g} s)",
    )
    return KlingClient(
        api_key=SANDBOX_KEY,
        provider=options.provider,
        api_standard=options.api_standard,
        base_url=base_url,
        quota=quota,
        task_timeout=options.task_timeout,
        journal=journal,
        lookahead=options.lookahead,
    )


def _line_until(
    outcome: Outcome, task_timeout: float | None, run_until: float | None
) -> float | None:
    """When a line's time is up (``anyio.current_time()``): its download counts against the
    run's ``--deadline`` and its task's ``--task-timeout`` (from the task's create)."""
    limits = [] if run_until is None else [run_until]
    if task_timeout is not None:
        created = outcome.task.created_at if outcome.task is not None else None
        age = 0.0 if created is None else (dt.datetime.now(dt.UTC) - created).total_seconds()
        limits.append(anyio.current_time() + task_timeout - max(0.0, age))
    return min(limits, default=None)


async def _save_outcome(
    client: KlingClient,
    outcome: Outcome,
    line: int,
    ext: str,
    out: Path,
    tally: _Tally,
    until: float | None = None,
) -> dict[str, Any]:
    task = outcome.task
    files: list[str] = []
    error = str(outcome.error) if outcome.error is not None else None
    status = outcome.result.status.value if outcome.result else "error"
    if isinstance(outcome.error, OutcomeUnknownError):
        status = "outcome_unknown"
    elif isinstance(outcome.error, BudgetExceededError):
        status = "over_budget"
    units = outcome.result.units if outcome.result is not None else None
    if outcome.ok and outcome.result is not None:
        entry = await client.journal.get(ext) if client.journal else None
        if entry is not None and entry.files and all((out / f).exists() for f in entry.files):
            files = list(entry.files)  # saved by an earlier run: nothing to fetch
            tally.files += len(files)
            tally.bytes += sum((out / f).stat().st_size for f in files)
        else:
            saved = None
            with anyio.CancelScope(deadline=math.inf if until is None else until):
                try:
                    saved = await client.download(
                        outcome.result, out, stem=f"{line:05d}-{safe_stem(ext)}"
                    )
                except KlingError as exc:
                    error, status = f"download failed: {exc}", "download_failed"
            if saved is None and status != "download_failed":
                error = "download failed: the line's time (--task-timeout/--deadline) ran out"
                status = "download_failed"
            if saved is not None:
                files = [s.path.name for s in saved]
                tally.files += len(saved)
                tally.bytes += sum(s.bytes for s in saved)
                if client.journal is not None:
                    await client.journal.record_saved(ext, files)
    if status == "succeeded":
        tally.succeeded += 1
    elif status == "over_budget":
        tally.over_budget += 1
    else:
        tally.failed += 1
    return new_row(
        line,
        task_id=task.task_id if task else None,
        external_task_id=ext,
        status=status,
        files=files,
        error=error,
        units=units,
    )


def _run_id(out: Path) -> str:
    """A short id for this output folder, kept in ``run.json`` so a re-run of the same command
    derives the same ``external_task_id`` for each line.

    Raises:
        SetupError: ``run.json`` is damaged while a journal holds the tasks made under it: a
            new id would create (and bill) every line again.
    """
    marker = out / "run.json"
    if marker.exists():
        try:
            with marker.open("rb") as fh:
                run_id = json.loads(fh.read(_RUN_JSON_LIMIT))["run_id"]
            if isinstance(run_id, str) and run_id:
                return run_id
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            pass
        if (out / JOURNAL_NAME).exists():
            raise SetupError(
                f"{marker} is damaged (it should hold the folder's run id, e.g. "
                '{"run_id": "ka0123456789"}): restore it, or move the folder\'s journal aside '
                "to start over (lines the journal knew of would be created again)"
            )
    run_id = f"ka{uuid.uuid4().hex[:10]}"
    # Written whole or not at all (a killed run never leaves a half-written run.json).
    temporary = out / f".run.json.{os.getpid()}.tmp"
    temporary.write_text(json.dumps({"run_id": run_id}) + "\n", encoding="utf-8")
    os.replace(temporary, marker)
    return run_id
