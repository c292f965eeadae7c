"""Shared plumbing of the benchmark scripts (not a benchmark itself).

- :class:`SandboxProcess` runs ``kling_async.testing.serve`` in a separate Python process on
  127.0.0.1 (optionally pinned to one core) and reads the sandbox's own figures:
  ``GET /sandbox/stats`` and ``GET /sandbox/tasks``.
- :class:`Report` prints the settings header (command line, scale factor, machine) and a
  PASS/FAIL line per target, and gives the exit status.
- Small helpers: a free port, CPU pinning, percentiles, the library's own defaults, raw Kling
  create bodies for the bare-aiohttp loops.

Time is float seconds everywhere. Figures come from the sandbox whenever it can give them, so a
bug in the client cannot flatter its own benchmark.
"""

from __future__ import annotations

import argparse
import ast
import base64
import inspect
import json
import math
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

API_KEY = "bench"
IMAGE_MODEL = "kling-v3-omni"
IMAGE_PATH = "/v1/images/omni-image"  # Kling native create / query / list (ref §5)
STARTUP_TIMEOUT = 30.0


# --- machine ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cores() -> list[int]:
    """The CPUs this process may run on, sorted."""
    return sorted(os.sched_getaffinity(0))


def pin(cpu: int) -> None:
    """Pin the calling process (every thread created afterwards too) to CPU ``cpu``."""
    os.sched_setaffinity(0, {cpu})


def machine() -> str:
    """One line describing the machine: cores, CPU model, Python, load average now."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({model}), {platform.machine()}, Python "
        f"{platform.python_version()}, load average {load} (1/5/15 min, before the run)"
    )


# --- numbers ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) of ``values``, linearly interpolated; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and max of ``values``."""
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else math.nan,
    }


def library_default(option: str) -> Any:
    """The default of ``KlingClient(option=...)``, read from its signature, so the scripts
    scale whatever the library ships instead of a copy that could drift."""
    import kling_async as ka

    return inspect.signature(ka.KlingClient).parameters[option].default


def task_parser(doc: str, *, tasks: int, scale: float, quota: int = 50) -> argparse.ArgumentParser:
    """The command line shared by the task-count benchmarks: ``--tasks``, ``--quota``,
    ``--scale`` and ``--seed`` (default 7), described by the first line of ``doc``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=tasks)
    parser.add_argument("--quota", type=int, default=quota)
    parser.add_argument("--scale", type=float, default=scale)
    parser.add_argument("--seed", type=int, default=7)
    return parser


# --- raw wire bodies (for the bare-aiohttp loops) --------------------------------------------


def image_body(external_task_id: str, n: int = 1, **extra: Any) -> dict[str, Any]:
    """A raw Kling omni-image create body (ref §5.1), as a user without the SDK would send."""
    return {
        "model_name": IMAGE_MODEL,
        "prompt": f"product shot {external_task_id}",
        "aspect_ratio": "1:1",
        "n": n,
        "external_task_id": external_task_id,
        **extra,
    }


def auth_headers(api_key: str = API_KEY) -> dict[str, str]:
    """The bearer header the sandbox accepts (ref §3.1)."""
    return {"Authorization": f"Bearer {api_key}"}


# --- the sandbox process ---------------------------------------------------------------------


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM ``proc`` (if any) and wait for it; SIGKILL after 10 s."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class SandboxProcess:
    """The sandbox (``kling_async.testing.serve``) in a separate process on 127.0.0.1.

    Args:
        cpu: Pin the sandbox process to this CPU; ``None`` leaves it free.
        **options: :class:`kling_async.testing.Sandbox` options (Python literals only: numbers,
            strings, tuples, dicts), e.g. ``quota={"image": 9}, image_duration=(0.5, 1.5)``.
            ``api_keys`` defaults to ``(API_KEY,)``.

    Use ``with SandboxProcess(...) as sandbox:``; it waits until ``/sandbox/stats`` answers.
    """

    def __init__(self, *, cpu: int | None = None, **options: Any) -> None:
        options.setdefault("api_keys", (API_KEY,))
        self.options = options
        self.cpu = cpu
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}{options.get('path_prefix', '')}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process and wait until the sandbox answers (raises SystemExit if not)."""
        literal = repr(self.options)
        ast.literal_eval(literal)  # only literals cross the process boundary
        pin_code = ""
        if self.cpu is not None:
            pin_code = f"import os; os.sched_setaffinity(0, {{{self.cpu}}}); "
        code = (
            f"{pin_code}import ast; from kling_async.testing import serve; "
            f"serve(port={self.port}, **ast.literal_eval({literal!r}))"
        )
        self._proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SystemExit(f"the sandbox exited at start (status {self._proc.returncode})")
            try:
                self.stats()
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"the sandbox did not answer within {STARTUP_TIMEOUT:g} s")

    def stop(self) -> None:
        """Terminate the process (idempotent)."""
        proc, self._proc = self._proc, None
        terminate(proc)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _get(self, path: str) -> Any:
        url = f"{self.base_url}{path}"
        with urllib.request.urlopen(url, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        """``GET /sandbox/stats``: the sandbox's counters and per-pool figures."""
        return self._get("/sandbox/stats")  # type: ignore[no-any-return]

    def tasks(self) -> list[dict[str, Any]]:
        """``GET /sandbox/tasks``: every accepted task with ``created_at`` / ``ends_at`` (epoch
        seconds), in creation order.

        Raises:
            SystemExit: the sandbox has no such route (an older sandbox).
        """
        try:
            data = self._get("/sandbox/tasks")
        except urllib.error.HTTPError as exc:
            message = f"GET /sandbox/tasks answered {exc.code}: this sandbox lacks it"
            raise SystemExit(message) from exc
        return data["tasks"] if isinstance(data, dict) else data  # type: ignore[no-any-return]

    def describe(self) -> str:
        """The options the sandbox runs with, for the header."""
        shown = {k: v for k, v in self.options.items() if k != "api_keys"}
        where = f", pinned to CPU {self.cpu}" if self.cpu is not None else ""
        return f"sandbox process on 127.0.0.1:{self.port}{where}: {shown}"


def end_times(sandbox: SandboxProcess) -> dict[str, float]:
    """task_id → the instant the sandbox ends it (epoch seconds, from ``/sandbox/tasks``)."""
    return {t["task_id"]: float(t["ends_at"]) for t in sandbox.tasks()}


# --- output ----------------------------------------------------------------------------------


class Report:
    """The printed report of one benchmark run: header, figures, targets, verdict.

    Args:
        title: The benchmark's name.
        settings: The parsed command-line settings (shown as given).
        scale: The factor applied to task durations and to the client's poll settings, or a
            sentence saying what was scaled instead (e.g. for instant tasks).
    """

    def __init__(self, title: str, settings: Mapping[str, Any], scale: float | str) -> None:
        self.title = title
        self._targets: list[tuple[str, str, str, bool]] = []
        print(f"== {title} ==")
        print(f"command: {shlex.join([os.path.basename(sys.executable), *sys.argv])}")
        print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        if isinstance(scale, str):
            print(f"scale: {scale}")
        else:
            print(
                f"scale: task durations × {scale:g}; the client polls at its default cadence, "
                "which follows the task durations (figures in seconds are as measured unless "
                "marked unscaled)"
            )
        print(f"machine: {machine()}")

    def line(self, text: str = "") -> None:
        """Print one line of figures."""
        print(text, flush=True)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Print an aligned plain-text table."""
        cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
        for i, row in enumerate(cells):
            print(
                "  ".join(
                    c.rjust(w) if j else c.ljust(w)
                    for j, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if i == 0:
                print("  ".join("-" * w for w in widths))

    def target(self, name: str, measured: str, target: str, ok: bool) -> bool:
        """Record one target: its figure, the target, and whether it was met."""
        self._targets.append((name, measured, target, ok))
        return ok

    def finish(self) -> int:
        """Print the PASS/FAIL table and return the exit status (0 when every target passed)."""
        print()
        self.table(
            ("target", "measured", "wanted", "verdict"),
            [(n, m, t, "PASS" if ok else "FAIL") for n, m, t, ok in self._targets],
        )
        passed = all(ok for *_, ok in self._targets)
        print(f"{self.title}: {'PASS' if passed else 'FAIL'}", flush=True)
        return 0 if passed else 1


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def ms(seconds: float) -> str:
    """``seconds`` as milliseconds with one decimal."""
    return f"{seconds * 1000:.1f} ms"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``fn`` and return its result and the wall seconds it took."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


# --- the client under test -------------------------------------------------------------------


async def run_client(
    base_url: str,
    requests: Iterable[Any],
    *,
    keep: bool = True,
    on_outcome: Callable[[Any, float], None] | None = None,
    **client_options: Any,
) -> tuple[list[tuple[Any, float]], Any]:
    """Stream ``requests`` through a ``KlingClient`` and note when user code sees each outcome.

    Args:
        base_url: The sandbox's base URL (``base_url=`` of the client).
        requests: Request models (any iterable, consumed lazily by the client).
        keep: Keep ``(outcome, seen_at)`` pairs to return; ``False`` keeps nothing (memory runs).
        on_outcome: Called with each outcome and ``time.time()`` taken in the ``async for``
            body, the instant the outcome reached user code.
        **client_options: Other ``KlingClient`` options (``quota``, ``image_poll_interval``...).

    Returns:
        The ``(outcome, seen_at)`` pairs in arrival order (empty unless ``keep``) and the
        client's ``stats()`` (``ClientStats``).
    """
    import kling_async as ka

    client_options.setdefault("api_key", API_KEY)
    seen: list[tuple[Any, float]] = []
    async with ka.KlingClient(base_url=base_url, **client_options) as client:
        async with client.stream(requests) as outcomes:
            async for outcome in outcomes:
                now = time.time()
                if keep:
                    seen.append((outcome, now))
                if on_outcome is not None:
                    on_outcome(outcome, now)
        return seen, client.stats()


def webhook_secret() -> str:
    """A fresh Standard Webhooks secret (``whsec_`` + base64 of 24 random bytes)."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


async def run_client_with_callbacks(
    base_url: str, requests: Iterable[Any], secret: str | None, **options: Any
) -> tuple[list[tuple[Any, float]], Any, Any]:
    """:func:`run_client`, with a ``CallbackReceiver`` on 127.0.0.1 verifying ``secret`` when
    ``secret`` is given. Returns the pairs, the client's stats and the receiver's (``None``
    without a secret)."""
    if secret is None:
        seen, stats = await run_client(base_url, requests, **options)
        return seen, stats, None
    from kling_async import CallbackReceiver

    async with CallbackReceiver(host="127.0.0.1", secret=secret) as receiver:
        seen, stats = await run_client(base_url, requests, callbacks=receiver, **options)
        return seen, stats, receiver.stats


def outcome_latencies(seen: Iterable[tuple[Any, float]], ends: Mapping[str, float]) -> list[float]:
    """Seconds from the sandbox ending each task to its outcome reaching user code."""
    return [
        at - ends[o.task.task_id] for o, at in seen if o.task is not None and o.task.task_id in ends
    ]


def scaled(seconds: tuple[float, float], scale: float) -> tuple[float, float]:
    """A ``(low, high)`` duration range × ``scale``, rounded to the microsecond."""
    low, high = seconds
    return round(low * scale, 6), round(high * scale, 6)
