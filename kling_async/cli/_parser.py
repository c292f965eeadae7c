"""The ``kling-async`` command line's arguments: one :mod:`argparse` parser with its
subcommands (``run``, ``estimate``, ``gallery``, ``status``, ``sandbox``) and the types of
their values. :mod:`kling_async.cli` runs what it parses.
"""

from __future__ import annotations

import argparse
import os
from decimal import Decimal

from .. import __version__
from .._engine._budget import parse_units
from .._providers import API_STANDARDS, PROVIDERS
from ._look import add_look_commands
from ._queue import add_queue_commands
from ._run import SANDBOX_IMAGE_DURATION, SANDBOX_KEY, SANDBOX_VIDEO_DURATION

__all__ = ["build_parser"]


def _seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive number of seconds")
    return value


def _seconds_range(text: str) -> tuple[float, float]:
    """An argparse type: ``LOW,HIGH`` seconds (``S`` alone: LOW = HIGH), 0 ≤ LOW ≤ HIGH."""
    low, _, high = text.partition(",")
    try:
        values = float(low), float(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds as LOW,HIGH (e.g. 1,4)") from None
    if not 0 <= values[0] <= values[1]:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= LOW <= HIGH")
    return values


def _units(text: str) -> Decimal:
    try:
        return parse_units(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive number of units") from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``kling-async`` command line: every subcommand, option and help."""
    parser = argparse.ArgumentParser(
        prog="kling-async", description="Kling omni image/video generation at volume."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="log INFO (-v) or DEBUG (-vv)"
    )
    common.add_argument("--log-file", help="write every DEBUG log record to this file")
    common.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        parents=[common],
        help="run a campaign file (one JSON request per line)",
        description="Each line is a create body as Kling's docs print it "
        "(https://kling.ai/document-api/api/image/3-0-omni/image-omni) plus "
        '"kind": "image" or "video"; with --provider modellix (or "provider": "modellix" '
        "on a line), Modellix's flat body (https://docs.modellix.ai/kling/kling-v3-omni-image).",
    )
    run.add_argument("campaign", help="campaign file, JSON Lines")
    run.add_argument("--out", required=True, help="output folder (files + manifest.jsonl)")
    run.add_argument(
        "--sandbox", action="store_true", help="run against the built-in sandbox, no account"
    )
    run.add_argument(
        "--quota",
        help="concurrency slots, e.g. image=9,video=5,kling-image-o1:image=4 (Modellix: team=3)",
    )
    run.add_argument(
        "--provider",
        choices=PROVIDERS,
        default="kling",
        help="wire API: Kling's native API and gateways (default), or Modellix",
    )
    run.add_argument("--base-url", help="API root, e.g. a gateway https://host/kling")
    for kind, (low, high) in (("image", SANDBOX_IMAGE_DURATION), ("video", SANDBOX_VIDEO_DURATION)):
        run.add_argument(
            f"--sandbox-{kind}-duration",
            type=_seconds_range,
            default=None,
            metavar="LOW,HIGH",
            help=f"with --sandbox: seconds a sandbox {kind} task takes, drawn between LOW and "
            f"HIGH (default {low:g},{high:g})",
        )
    run.add_argument(
        "--api-standard",
        choices=API_STANDARDS,
        default="legacy",
        help="Kling's API standard for videos: legacy (default; POST /v1/videos/omni-video) or "
        "new (POST /omni-video/kling-3.0-omni with contents/settings/options, unified "
        "GET /tasks query; API key only). Images always use the legacy standard.",
    )
    run.add_argument(
        "--redis",
        default=os.environ.get("KLING_ASYNC_REDIS_URL") or None,
        metavar="URL",
        help="share the account's quota with every process using this Redis, e.g. "
        "redis://host:6379/0 (default: $KLING_ASYNC_REDIS_URL; needs kling-async[redis])",
    )
    run.add_argument(
        "--deadline",
        type=_seconds,
        default=None,
        help="seconds the whole run may take; then nothing more is created, running tasks are "
        "left to a later resume (default none)",
    )
    run.add_argument(
        "--budget",
        type=_units,
        default=None,
        metavar="UNITS",
        help="the most units the run may spend (Kling only): a line is created only while the "
        "units charged, the estimates of the tasks running and its own estimate fit; the rest "
        "end as over_budget, nothing sent (see 'kling-async estimate')",
    )
    run.add_argument(
        "--budget-total",
        type=_units,
        default=None,
        metavar="UNITS",
        help="the most units every run into --out may spend together, resumes included "
        "(Kling only): this run may spend what earlier runs left; once it is spent, lines "
        "never sent end as over_budget",
    )
    run.add_argument(
        "--task-timeout", type=_seconds, default=None, help="seconds a task may take (default none)"
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an earlier run in --out (re-running the same command does the same; "
        "--resume also insists that the journal exists)",
    )
    estimate = sub.add_parser(
        "estimate",
        parents=[common],
        help="estimate a campaign's units per line class and in total (sends nothing)",
        description="Kling's published prices per image and per second of video "
        "(https://kling.ai/document-api/pricing/base/image, .../video), an auto series at 9 "
        "images: the estimates a run with --budget starts from.",
    )
    estimate.add_argument("campaign", help="campaign file, JSON Lines (as for 'run')")
    estimate.add_argument(
        "--provider",
        choices=PROVIDERS,
        default="kling",
        help="the wire API whose rules the lines are checked by (as for 'run')",
    )
    estimate.add_argument(
        "--api-standard",
        choices=API_STANDARDS,
        default="legacy",
        help="Kling's API standard for videos, whose rules the lines are checked by",
    )
    status = add_look_commands(sub, common)
    add_queue_commands(sub, common, status)  # push, work, collect; status --redis --queue
    sandbox = sub.add_parser(
        "sandbox", parents=[common], help="serve the sandbox API on a local port"
    )
    sandbox.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    sandbox.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    sandbox.add_argument(
        "--api-key",
        action="append",
        help=f"accepted Bearer key, repeatable (default {SANDBOX_KEY})",
    )
    sandbox.add_argument("--access-key", help="AccessKey for HS256 JWT auth")
    sandbox.add_argument("--secret-key", help="SecretKey that signs the AccessKey's JWTs")
    sandbox.add_argument("--quota", help="slots per pool, e.g. image=9,video=5,team=3")
    sandbox.add_argument(
        "--image-duration", default="2,6", help="image task seconds LOW,HIGH (default 2,6)"
    )
    sandbox.add_argument(
        "--video-duration", default="20,60", help="video task seconds LOW,HIGH (default 20,60)"
    )
    sandbox.add_argument("--seed", type=int, default=None, help="seed of its random draws")
    sandbox.add_argument(
        "--tls-cert", help="serve HTTPS with this PEM certificate (for clients that need https)"
    )
    sandbox.add_argument("--tls-key", help="the certificate's PEM private key")
    sandbox.add_argument(
        "--fail-rate", type=float, default=0.0, help="fraction of tasks that end failed"
    )
    sandbox.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=RATE",
        help="inject a fault at a rate, repeatable: error_before_create, error_after_create, "
        "drop_after_create, query_error, malformed_query, slow, slow_download "
        "(slow_seconds=S sets how slow)",
    )
    return parser
