"""``kling-async sandbox``: the built-in sandbox served on a port until SIGINT or SIGTERM.

Turns the command's options (keys, AccessKey / SecretKey, quota, task durations, faults, seed,
TLS) into :func:`kling_async.testing.serve`'s, which prints the base URLs and every credential
and serves until a signal; here it also prints ready-to-run ``kling-async run`` commands. A bad
option or a port that cannot be bound is a :class:`SetupError` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import errno
import shlex
import signal
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._redact import escape_controls
from ._run import SANDBOX_KEY, SetupError, parse_quota

if TYPE_CHECKING:
    from ..testing import Faults, Sandbox

__all__ = ["serve_sandbox"]


def serve_sandbox(args: argparse.Namespace) -> int:
    """Serve the sandbox the options in ``args`` describe until SIGINT or SIGTERM; return 0.

    Raises:
        SetupError: an option is malformed or out of range, or the port cannot be bound.
    """
    from ..testing import serve

    kwargs = _sandbox_kwargs(args)
    access_keys: dict[str, str] = kwargs["access_keys"] or {}

    trust = str(Path(args.tls_cert).resolve()) if args.tls_cert else None

    def commands(sandbox: Sandbox) -> list[str]:
        return _run_commands(
            sandbox.base_url, sandbox.modellix_base_url, kwargs["api_keys"], access_keys, trust
        )

    try:
        serve(args.port, args.host, hints=commands, **kwargs)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise SetupError(
            f"--port {args.port}: cannot listen on {args.host}:{args.port} ({reason or exc})"
        ) from None
    except (ValueError, TypeError) as exc:
        raise SetupError(f"sandbox: {exc}") from None
    # Stopped by a signal: the process ends now, and one more during the interpreter's
    # shutdown is ignored instead of ending it half-way.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    return 0


def _run_commands(
    kling_url: str,
    modellix_url: str,
    keys: tuple[str, ...],
    access_keys: dict[str, str],
    trust: str | None = None,
) -> list[str]:
    """Ready-to-run ``kling-async run`` commands; over TLS each names the certificate to trust
    in ``SSL_CERT_FILE`` (the file is the trust anchor when self-signed, as the README makes
    it; Python's ssl and OpenSSL read the variable)."""
    run = "kling-async run CAMPAIGN.jsonl --out DIR"
    if trust is not None:
        run = f"SSL_CERT_FILE={shlex.quote(trust)} {run}"
    lines = ["Run a campaign against it:"]
    if keys:
        lines.append(f"  KLING_API_KEY={shlex.quote(keys[0])} {run} --base-url {kling_url}")
    lines += [
        f"  KLING_ACCESS_KEY={shlex.quote(ak)} KLING_SECRET_KEY={shlex.quote(sk)} "
        f"{run} --base-url {kling_url}"
        for ak, sk in access_keys.items()
    ]
    if keys:
        lines.append(
            f"  MODELLIX_API_KEY={shlex.quote(keys[0])} {run} --provider modellix "
            f"--base-url {modellix_url}"
        )
    if trust is not None:
        lines.append(
            "Clients trust the sandbox's certificate through SSL_CERT_FILE (Python, OpenSSL; "
            "for a certificate signed by your own CA, name the CA's file instead), "
            "NODE_EXTRA_CA_CERTS (Node.js) or curl --cacert."
        )
    # Keys are the user's own (shown on purpose), but a control character in one is escaped.
    return [escape_controls(line) for line in lines]


def _sandbox_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    quota = parse_quota(args.quota)
    if bool(args.access_key) != bool(args.secret_key):
        raise SetupError("--access-key and --secret-key go together")
    return {
        "api_keys": tuple(args.api_key or [SANDBOX_KEY]),
        "access_keys": {args.access_key: args.secret_key} if args.access_key else None,
        "quota": {"image": quota.image, "video": quota.video, **quota.pools},
        "modellix_concurrency": quota.team,
        "image_duration": _seconds_range(args.image_duration, "--image-duration"),
        "video_duration": _seconds_range(args.video_duration, "--video-duration"),
        "seed": args.seed,
        "fail_rate": args.fail_rate,
        "faults": _faults(args.fault),
        "ssl_context": _tls(args.tls_cert, args.tls_key),
    }


def _seconds_range(text: str, flag: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    try:
        values = float(low), float(high or low)
    except ValueError:
        raise SetupError(f"{flag} {text!r}: give seconds as LOW,HIGH (e.g. 1,4)") from None
    if not 0 <= values[0] <= values[1]:
        raise SetupError(f"{flag} {text!r}: need 0 <= LOW <= HIGH")
    return values


def _faults(texts: list[str]) -> Faults | None:
    from ..testing import Faults

    if not texts:
        return None
    names = [field.name for field in attrs.fields(Faults)]
    rates: dict[str, float] = {}
    for text in texts:
        name, _, value = text.partition("=")
        name = name.strip().replace("-", "_")
        if name not in names:
            raise SetupError(f"--fault {text!r}: unknown fault {name!r}; one of {', '.join(names)}")
        try:
            rates[name] = float(value)
        except ValueError:
            raise SetupError(
                f"--fault {text!r}: give NAME=RATE, e.g. drop_after_create=0.05"
            ) from None
    try:
        return Faults(**rates)
    except (ValueError, TypeError) as exc:
        raise SetupError(f"--fault {exc}") from None


def _tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert:
        if key:
            raise SetupError("--tls-key needs --tls-cert")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SetupError(f"--tls-cert/--tls-key: {exc}") from None
    return context
