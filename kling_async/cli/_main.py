"""The ``kling-async`` command line: arguments, logging, signals, and one line per setup error.

``kling-async run CAMPAIGN.jsonl --out DIR [--sandbox] [--quota image=9,video=5]
[--provider kling|modellix] [--base-url URL] [--deadline S] [-v] [--log-file PATH]`` runs a
campaign (see :mod:`kling_async.cli._run`). Exit status: 0 every line succeeded; 1 a line failed
or was invalid; 2 a setup error (credentials, campaign file, ``--out`` or another run holding
it, ``--quota``, a journal it cannot use, an API it cannot reach), told in one line on stderr;
130 / 143 interrupted by Ctrl-C (SIGINT) / SIGTERM, after a summary and the command that
resumes (two signals within 0.5 s are one press; a second press stops at once, after the
manifest and the summary); a signal the process was started ignoring stays ignored. A closed
stdout or stderr drops output, never the work. ``--debug`` shows the traceback of an
unexpected error. Each case and its limit: ``docs/failure-modes.md``.

``kling-async sandbox [--port N] [--api-key K] [--access-key AK --secret-key SK] [--quota ...]``
serves the built-in sandbox (a stand-in for Kling's and Modellix's APIs) until Ctrl-C or SIGTERM
(see :mod:`kling_async.cli._sandbox`), then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import anyio
from rich.console import Console
from rich.logging import RichHandler

from .._errors import QuotaError
from .._journal import JournalError
from .._providers import request_check, traits_for
from .._requests._campaign import content_lines, is_text_file
from ._estimate import estimate_campaign
from ._folder import FolderBusy, hold_folder, journal_hint
from ._look import LOOK_COMMANDS, run_look_command
from ._parser import build_parser
from ._pipes import tolerant_streams
from ._queue import QUEUE_COMMANDS, run_queue_command
from ._run import (
    JOURNAL_NAME,
    CredentialsRefused,
    Interrupt,
    RunOptions,
    SetupError,
    check_redis_url,
    parse_quota,
    run_campaign,
    sandbox_durations,
    stderr_console,
)
from ._sandbox import serve_sandbox
from ._settings import check_client_settings
from ._signals import Signals
from ._text import SafeRecords, safe

__all__ = ["RunOptions", "main", "run_campaign"]

_EXIT_SETUP = 2
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_SECRET_ENV = ("KLING_API_KEY", "KLING_SECRET_KEY", "MODELLIX_API_KEY")  # masked in log output


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kling-async``. Returns the exit status (a closed stdout or stderr
    drops the output, never the work: see :mod:`kling_async.cli._pipes`)."""
    with tolerant_streams():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = stderr_console()
    handlers: list[logging.Handler] = []
    try:
        handlers = _configure_logging(args.verbose, args.log_file, console)
        if args.command == "sandbox":
            return serve_sandbox(args)
        if args.command in QUEUE_COMMANDS or _queue_status(args):
            return run_queue_command(args, console, Signals(console))
        if args.command in LOOK_COMMANDS:
            return run_look_command(args)
        if args.command == "estimate":
            campaign = Path(args.campaign)
            _check_campaign(campaign)
            standard = _api_standard(args.api_standard, args.provider)
            check = request_check(args.provider, api_standard=standard)
            return estimate_campaign(campaign, print, args.provider, check)
        return _run(args, console, argv)
    except SetupError as exc:
        print(f"kling-async: {safe(exc)}", file=sys.stderr)
        return _EXIT_SETUP
    except KeyboardInterrupt:  # before the signal handlers were in place, or a second Ctrl-C
        print("kling-async: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(
                f"kling-async: unexpected error: {type(exc).__name__}: {safe(exc)} "
                "(run with --debug for the traceback)",
                file=sys.stderr,
            )
        return _EXIT_SETUP
    finally:
        for handler in handlers:
            logging.getLogger("kling_async").removeHandler(handler)
            handler.close()


def _queue_status(args: argparse.Namespace) -> bool:
    """``status`` of a queue (``--redis``/``--queue``) rather than of a run folder ``OUT``."""
    if args.command != "status":
        return False
    if args.out is not None and args.queue is not None:
        raise SetupError("status: give a run folder OUT, or --redis URL --queue NAME, not both")
    return args.out is None and (args.queue is not None or args.redis is not None)


def _api_standard(value: str, provider: str) -> Literal["legacy", "new"]:
    standard: Literal["legacy", "new"] = "new" if value == "new" else "legacy"
    try:
        traits_for(provider, api_standard=standard)
    except ValueError as exc:
        raise SetupError(f"--api-standard {value}: {exc}") from None
    return standard


def _redis_url(url: str | None, *, sandbox: bool) -> str | None:
    if not url:
        return None
    if sandbox:
        raise SetupError(
            "--redis with --sandbox: each --sandbox run has a private sandbox, so there is no "
            "account to share; run 'kling-async sandbox' once and point every run at it with "
            "--base-url"
        )
    return check_redis_url(url)


def _run(args: argparse.Namespace, console: Console, argv: Sequence[str] | None) -> int:
    quota = parse_quota(args.quota)
    campaign = Path(args.campaign)
    _check_campaign(campaign)
    standard: Literal["legacy", "new"] = "new" if args.api_standard == "new" else "legacy"
    check_client_settings(
        args.provider,
        standard,
        sandbox=args.sandbox,
        base_url=args.base_url,
        budgets={"--budget": args.budget, "--budget-total": args.budget_total},
    )
    durations = sandbox_durations(
        args.sandbox, args.sandbox_image_duration, args.sandbox_video_duration
    )
    out = Path(args.out)
    if args.resume and not (out / JOURNAL_NAME).exists():
        raise SetupError(f"--resume: no journal at {out / JOURNAL_NAME}")
    _check_writable(out)
    options = RunOptions(
        campaign=campaign,
        out=out,
        quota=quota,
        sandbox=args.sandbox,
        base_url=args.base_url,
        task_timeout=args.task_timeout,
        provider=args.provider,
        api_standard=standard,
        deadline=args.deadline,
        resume_command=_resume_command(argv),
        redis=_redis_url(args.redis, sandbox=args.sandbox),
        budget=args.budget,
        budget_total=args.budget_total,
        sandbox_image_duration=durations[0],
        sandbox_video_duration=durations[1],
    )
    signals = Signals(console)
    with signals.installed(), _hold_folder(out):
        status = anyio.run(_run_campaign, options, console, signals, backend="asyncio")
    if signals.signum is not None:
        return 128 + signals.signum
    if isinstance(status, SetupError):
        raise status
    if isinstance(status, CredentialsRefused):
        raise SetupError(f"credentials refused ({status}); {_refused_hint(args)}")
    return status


async def _run_campaign(
    options: RunOptions, console: Console, signals: Signals
) -> int | CredentialsRefused | SetupError:
    signals.attach(Interrupt(), asyncio.get_running_loop())
    assert signals.interrupt is not None
    try:
        return await run_campaign(options, console, signals.interrupt)
    except CredentialsRefused as exc:
        return exc
    except QuotaError as exc:  # the client could not open its shared quota (--redis)
        return SetupError(str(exc))
    except JournalError as exc:  # damaged, not a journal, unreadable
        can_look_up = traits_for(options.provider).supports_external_lookup
        return SetupError(journal_hint(exc, options.out / JOURNAL_NAME, can_look_up=can_look_up))


def _check_campaign(path: Path) -> None:
    if not path.exists():
        raise SetupError(f"campaign file not found: {path}")
    if not path.is_file():
        raise SetupError(f"campaign file is not a file: {path}")
    try:
        text = is_text_file(path)
        empty = next(content_lines(path), None) is None
    except OSError as exc:
        raise SetupError(f"cannot read campaign file {path}: {exc.strerror}") from None
    if not text:  # a line of bad bytes in a text file is one invalid line, not this
        raise SetupError(f"campaign file {path} is not UTF-8 text (JSON Lines)")
    if empty:
        raise SetupError(f"no requests in {path} (one JSON object per line)")


@contextlib.contextmanager
def _hold_folder(out: Path) -> Iterator[None]:
    """The run's lock on ``--out`` (one run per folder), a held lock as a setup error."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(hold_folder(out))
    except FolderBusy as exc:
        raise SetupError(str(exc)) from None
    except OSError as exc:
        raise SetupError(f"--out {out}: cannot lock ({exc.strerror or exc})") from None
    with stack:
        yield


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise SetupError(f"--out {out}: not writable ({exc.strerror or exc})") from None


def _refused_hint(args: argparse.Namespace) -> str:
    """Which variables held the refused credentials (an API key is used before AK/SK)."""
    if args.sandbox:  # the built-in sandbox's own key; its refusal is a bug
        return "run with --debug and report it"
    traits = traits_for(args.provider)
    if os.environ.get(traits.api_key_env) or not traits.supports_jwt:
        return f"check the key in {traits.api_key_env}"
    return "check KLING_ACCESS_KEY and KLING_SECRET_KEY"


def _resume_command(argv: Sequence[str] | None) -> str:
    """The command line that resumes this run, started the way this process was."""
    words = list(sys.argv[1:] if argv is None else argv)
    return shlex.join([*_program(argv), *[w for w in words if w != "--resume"], "--resume"])


def _program(argv: Sequence[str] | None) -> list[str]:
    first = sys.argv[0] if argv is None and sys.argv and sys.argv[0] else ""
    if not first:
        return ["kling-async"]
    if Path(first).name == "__main__.py":  # python -m kling_async
        return [sys.executable, "-m", "kling_async"]
    found = shutil.which(Path(first).name)
    if found and Path(found).resolve() == Path(first).resolve():
        return [Path(first).name]  # on PATH: the short name runs the same program
    return [first]  # e.g. .venv/bin/kling-async, as the README starts it


def _configure_logging(
    verbose: int, log_file: str | None, console: Console
) -> list[logging.Handler]:
    """``-v`` INFO and ``-vv`` DEBUG records of the ``kling_async`` loggers on stderr (through
    rich on a terminal, so the progress bar stays readable; one plain line per record
    otherwise, never wrapped); ``--log-file`` gets every DEBUG record. Both mask the
    credentials found in the environment, Bearer tokens and anything shaped like a JWT, and
    show control characters escaped (:class:`SafeRecords`). Returns the handlers added."""
    logger = logging.getLogger("kling_async")
    handlers: list[logging.Handler] = []
    if verbose:
        handler: logging.Handler
        if console.is_terminal:
            handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        else:
            handler = logging.StreamHandler(console.file)
            handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        handler.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
        handlers.append(handler)
    if log_file:
        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise SetupError(f"--log-file {log_file}: {exc.strerror or exc}") from None
        file_handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        file_handler.setLevel(logging.DEBUG)
        handlers.append(file_handler)
    records = SafeRecords(os.environ.get(name, "") for name in _SECRET_ENV)
    for handler in handlers:
        handler.addFilter(records)
        logger.addHandler(handler)
    if handlers:
        logger.setLevel(logging.DEBUG if (verbose > 1 or log_file) else logging.INFO)
    return handlers


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
