"""``kling-async run``: one campaign file run to the end (or to an interrupt), outputs on disk.

Submits every line under quota, downloads each output to ``DIR`` as soon as its task ends,
writes ``DIR/manifest.jsonl`` (one line per campaign line) and prints a summary. An interrupt
(:class:`Interrupt`, set off by the command line's signal handling) stops creating at once; the
manifest then says of every line whether it is done, running (followed on resume) or not
started, and the summary names the command that resumes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ._campaign import CampaignLine, CampaignLineError, content_lines, read_campaign
from ._client import KlingClient
from ._download import safe_stem
from ._errors import AuthenticationError, BudgetExceededError, KlingError, OutcomeUnknownError
from ._models import Outcome, Request
from ._quota_config import Quota
from ._redis_quota import RedisQuotaBackend

__all__ = [
    "CredentialsRefused",
    "Interrupt",
    "RunOptions",
    "SetupError",
    "parse_quota",
    "run_campaign",
    "stderr_console",
]

SANDBOX_KEY = "sandbox-key"
JOURNAL_NAME = "journal.sqlite"
SANDBOX_STATE_NAME = "sandbox-state.jsonl"
# Sandbox task durations for `run --sandbox`, in seconds: real Kling images take ~10–60 s and
# videos minutes; the demo scales them down so a campaign finishes in under a minute.
SANDBOX_IMAGE_DURATION = (1.0, 4.0)
SANDBOX_VIDEO_DURATION = (3.0, 8.0)


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
    lookahead: int = 32  # requests pulled ahead of those running (KlingClient lookahead)


@attrs.define
class Interrupt:
    """Stops a run early: :meth:`stop` cancels the part of the run that creates and follows
    tasks; what was recorded stays recorded (journal, manifest, files)."""

    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    reason: str | None = None

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


class CredentialsRefused(Exception):
    """The API refused the credentials (codes 1000–1004, or Modellix 401): nothing can run."""


class SetupError(Exception):
    """Something to fix before a run (or the sandbox) can start; the command line shows it as
    one line and exits with status 2."""


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
    no outcome yet is ``running`` (created; a re-run follows it) or ``not_started``.

    Raises:
        CredentialsRefused: the API refused the key; the manifest then shows nothing ran.
    """
    console = console or stderr_console()
    interrupt = interrupt or Interrupt()
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(out)
    total = sum(1 for _ in content_lines(options.campaign))
    manifest_path = out / "manifest.jsonl"
    rows: dict[int, dict[str, Any]] = {}
    tally = _Tally()
    started = time.monotonic()
    line_of: list[int] = []
    key_of: list[str] = []
    refused: list[AuthenticationError] = []

    def invalid(line: int, reason: str) -> None:
        tally.invalid += 1
        rows[line] = _row(line, status="invalid", error=reason)
        console.print(f"[red]line {line}: invalid[/red]: {reason}")
        progress.advance(bar)

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
            try:
                client.check(request)
            except ValueError as exc:
                invalid(item.line, str(exc))
                continue
            line_of.append(item.line)
            key_of.append(key)
            yield request

    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(await _make_client(options, stack, console))
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        stack.enter_context(progress)
        bar = progress.add_task("campaign", total=total, detail="")

        async def finish(outcome: Outcome) -> None:
            if isinstance(outcome.error, AuthenticationError):
                refused.append(outcome.error)
                interrupt.stop("credentials refused")
                return
            line, key = line_of[outcome.index], key_of[outcome.index]
            row = await _save_outcome(client, outcome, line, key, out, tally)
            rows[line] = row
            _append(manifest_path, row)
            progress.advance(bar)
            stats = client.stats()
            progress.update(
                bar,
                detail=f"ok {tally.succeeded} · failed {tally.failed} · invalid {tally.invalid}"
                f" · running {stats.in_flight} · {stats.units_spent} units",
            )
            if not console.is_terminal:
                console.print(_describe(row))

        manifest_path.write_text("", encoding="utf-8")
        stream = client.stream(
            requests(),
            deadline=options.deadline,
            keys=lambda index, _: key_of[index],
            budget_units=options.budget,
        )
        try:
            with interrupt.scope:
                async with stream as outcomes, anyio.create_task_group() as tg:
                    async for outcome in outcomes:
                        tg.start_soon(finish, outcome)
        except* AuthenticationError as group:
            refused.extend(e for e in group.exceptions if isinstance(e, AuthenticationError))
        if interrupt.reason is not None or refused:
            with anyio.CancelScope(shield=True):
                await _mark_unfinished(client, rows, line_of, key_of)

    # Final manifest: one line per campaign line, in file order.
    manifest_path.write_text(
        "".join(json.dumps(rows[k], ensure_ascii=False) + "\n" for k in sorted(rows)),
        encoding="utf-8",
    )
    if refused:
        raise CredentialsRefused(str(refused[0]))
    elapsed = time.monotonic() - started
    if interrupt.reason is not None:
        statuses = [row["status"] for row in rows.values()]
        console.print(
            f"[bold]interrupted[/bold] ({interrupt.reason}) after {elapsed:.1f} s: "
            f"{tally.succeeded + tally.failed} done, {statuses.count('running')} running "
            f"(followed on resume), {statuses.count('not_started') + total - len(rows)} not "
            f"started, {tally.invalid} invalid; manifest {manifest_path}"
        )
        if options.resume_command:
            console.print(f"resume with: {options.resume_command}")
        return 1
    stats = client.stats()
    budget = f" of the budget of {options.budget}" if options.budget is not None else ""
    over = f", {tally.over_budget} over budget (not created)" if tally.over_budget else ""
    console.print(
        f"[bold]done[/bold] in {elapsed:.1f} s: {tally.succeeded} succeeded, "
        f"{tally.failed} failed{over}, {tally.invalid} invalid lines; {tally.files} files "
        f"({tally.bytes / 1e6:.1f} MB) in {out}; {stats.units_spent} units charged{budget}; "
        f"{stats.tasks_created} tasks created, "
        f"{stats.requeued_1303} creates re-queued on a full quota; manifest {manifest_path}"
    )
    if options.redis:
        for name, pool in sorted(client.quota_snapshot().items()):
            console.print(
                f"shared pool {name} on Redis: {pool.capacity} slots, {pool.in_use} held by "
                f"this process and {pool.others} by others at the end; peak {pool.peak}"
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
        running = entry is not None and entry.state in ("intent", "created", "finished")
        rows[line] = _row(
            line,
            task_id=entry.task_id if entry is not None else None,
            external_task_id=key,
            status="running" if running else "not_started",
        )


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
    from .testing import Sandbox

    quota = options.quota
    sandbox = await stack.enter_async_context(
        Sandbox(
            api_keys=(SANDBOX_KEY,),
            quota={"image": quota.image, "video": quota.video, **quota.pools},
            modellix_concurrency=quota.team,
            image_duration=SANDBOX_IMAGE_DURATION,
            video_duration=SANDBOX_VIDEO_DURATION,
            # Kept beside the journal, so a killed run resumes against the same tasks.
            state_file=options.out / SANDBOX_STATE_NAME,
        )
    )
    base_url = {"kling": sandbox.base_url, "modellix": sandbox.modellix_base_url}[options.provider]
    console.print(
        f"{options.provider} sandbox at {base_url} (task durations scaled down: images "
        f"{SANDBOX_IMAGE_DURATION[0]:g}–{SANDBOX_IMAGE_DURATION[1]:g} s, videos "
        f"{SANDBOX_VIDEO_DURATION[0]:g}–{SANDBOX_VIDEO_DURATION[1]:g} s)"
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


async def _save_outcome(
    client: KlingClient, outcome: Outcome, line: int, ext: str, out: Path, tally: _Tally
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
            try:
                saved = await client.download(
                    outcome.result, out, stem=f"{line:05d}-{safe_stem(ext)}"
                )
            except KlingError as exc:
                error, status = f"download failed: {exc}", "download_failed"
            else:
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
    return _row(
        line,
        task_id=task.task_id if task else None,
        external_task_id=ext,
        status=status,
        files=files,
        error=error,
        units=units,
    )


def _row(
    line: int,
    *,
    status: str,
    task_id: str | None = None,
    external_task_id: str | None = None,
    files: list[str] | None = None,
    error: str | None = None,
    units: Decimal | None = None,
) -> dict[str, Any]:
    return {
        "line": line,
        "task_id": task_id,
        "external_task_id": external_task_id,
        "status": status,
        "files": files or [],
        "error": error,
        "units": str(units) if units is not None else None,
    }


def _describe(row: dict[str, Any]) -> str:
    if row["status"] == "succeeded":
        return f"line {row['line']}: succeeded, {len(row['files'])} file(s)"
    return f"line {row['line']}: {row['status']}: {row['error']}"


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _run_id(out: Path) -> str:
    """A short id for this output folder, kept in ``run.json`` so a re-run of the same command
    derives the same ``external_task_id`` for each line."""
    marker = out / "run.json"
    if marker.exists():
        try:
            return str(json.loads(marker.read_text(encoding="utf-8"))["run_id"])
        except (ValueError, KeyError):
            pass
    run_id = f"ka{uuid.uuid4().hex[:10]}"
    marker.write_text(json.dumps({"run_id": run_id}) + "\n", encoding="utf-8")
    return run_id
