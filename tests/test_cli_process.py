"""``kling-async`` as a user meets it: real CLI processes, real signals, a sandbox process as the
account. Setup errors are one line with exit 2; Ctrl-C / SIGTERM stop creating and say how to
resume; a run killed at any point and resumed ends with every output and no duplicate create."""

from __future__ import annotations

import collections
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

ACCESS_KEY, SECRET_KEY = "ak-process-test", "sk-process-secret-0123456789"
API_KEY = "key-process-test-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "kling_async", *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kling_async", *args],
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Account:
    """A ``kling-async sandbox`` process standing in for a Kling account."""

    def __init__(self, image: str = "0.6,1.5", video: str = "1,2") -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = _start(
            "sandbox",
            "--port",
            str(self.port),
            "--api-key",
            API_KEY,
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            "--image-duration",
            image,
            "--video-duration",
            video,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.tasks()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the sandbox process did not start") from None
                time.sleep(0.1)

    def tasks(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/sandbox/tasks", timeout=5) as resp:
            return list(json.load(resp))

    def stop(self) -> str:
        """Ctrl-C the sandbox process; kill it if it has not ended within 20 s (a stand-in
        account's shutdown is not what these tests pin)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
        return out + err


@pytest.fixture
def account() -> Iterator[Account]:
    acct = Account()
    yield acct
    acct.stop()


def _campaign(folder: Path, lines: int = 8) -> Path:
    """A campaign in Kling's own body form: images, a series, an auto series, videos."""
    Image.new("RGB", (480, 360), (200, 120, 90)).save(folder / "ref.png")
    bodies: list[dict[str, Any]] = []
    for i in range(lines):
        if i % 4 == 3:
            bodies.append(
                {
                    "kind": "video",
                    "model_name": "kling-v3-omni",
                    "prompt": f"the object of <<<image_1>>> turns, take {i}",
                    "image_list": [{"image_url": "ref.png", "type": "first_frame"}],
                    "duration": "5",
                }
            )
        elif i % 4 == 2:
            bodies.append(
                {
                    "kind": "image",
                    "model_name": "kling-v3-omni",
                    "prompt": f"a story of <<<image_1>>> in frames, take {i}",
                    "image_list": [{"image": "ref.png"}],
                    "result_type": "series",
                    "series_amount": "auto" if i % 8 == 2 else 3,
                }
            )
        else:
            bodies.append(
                {
                    "kind": "image",
                    "prompt": f"product shot {i} of <<<image_1>>>",
                    "image_list": [{"image": "ref.png"}],
                    "n": 1 + i % 3,
                    "aspect_ratio": "1:1",
                    "watermark_info": {"enabled": False},
                }
            )
    path = folder / "campaign.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies), encoding="utf-8")
    return path


def _statuses(out: Path) -> collections.Counter[str]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return collections.Counter(row["status"] for row in rows)


def _duplicates(tasks: list[dict[str, Any]]) -> list[str]:
    seen = collections.Counter(t["external_task_id"] for t in tasks)
    return [key for key, count in seen.items() if count > 1]


def _wait_for_creates(account: Account, count: int, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while len(account.tasks()) < count:
        assert time.monotonic() < deadline, "the run created too few tasks"
        time.sleep(0.05)


# -- setup errors -------------------------------------------------------------------------------


def test_missing_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Without credentials the run stops at once: one stderr line naming the variables."""
    proc = _cli("run", str(_campaign(tmp_path)), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "KLING_API_KEY" in proc.stderr and "--sandbox" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("provider", "variables", "hint"),
    [
        ("kling", {"KLING_ACCESS_KEY": ACCESS_KEY, "KLING_SECRET_KEY": "not-the-secret"},
         "check KLING_ACCESS_KEY and KLING_SECRET_KEY"),
        ("modellix", {"MODELLIX_API_KEY": "not-the-key"}, "check the key in MODELLIX_API_KEY"),
    ],
)  # fmt: skip
def test_refused_credentials_name_their_variables(
    tmp_path: Path, account: Account, provider: str, variables: dict[str, str], hint: str
) -> None:
    """A refused AccessKey/SecretKey pair or Modellix key is one line naming the variables that
    held it, exit 2, nothing created, no secret shown."""
    out, campaign = tmp_path / "o", tmp_path / "plain.jsonl"
    campaign.write_text("".join(f'{{"kind": "image", "prompt": "mug {i}"}}\n' for i in range(4)))
    base = account.url + ("/api/v1" if provider == "modellix" else "")
    proc = _cli(
        "run", str(campaign), "--out", str(out), "--base-url", base,
        "--provider", provider, env=_env(**variables),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("kling-async: credentials refused (")
    assert proc.stderr.rstrip("\n").endswith(hint) and proc.stderr.count("\n") == 1
    assert "not-the-" not in proc.stderr
    assert account.tasks() == []
    assert set(_statuses(out)) == {"not_started"}


def test_wrong_key_stops_at_the_first_refusal(tmp_path: Path, account: Account) -> None:
    """A refused key ends the run with exit 2, names the variable, creates nothing, and the
    manifest says no line ran (it does not look finished)."""
    out = tmp_path / "o"
    env = _env(KLING_API_KEY="not-the-key")
    proc = _cli(
        "run", str(_campaign(tmp_path)), "--out", str(out), "--base-url", account.url, env=env
    )
    assert proc.returncode == 2, proc.stderr
    assert "credentials refused" in proc.stderr and "KLING_API_KEY" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "not-the-key" not in proc.stderr
    assert account.tasks() == []
    assert set(_statuses(out)) == {"not_started"}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "no requests in"),
        ("blank-and-comments", "no requests in"),
        ("folder", "is not a file"),
        ("binary", "is not UTF-8 text"),
        ("missing", "campaign file not found"),
    ],
)
def test_unusable_campaign_file_is_one_line(tmp_path: Path, setup: str, message: str) -> None:
    """An empty, unreadable or missing campaign file is one line on stderr and exit 2."""
    path = tmp_path / "c.jsonl"
    if setup == "empty":
        path.write_text("")
    elif setup == "blank-and-comments":
        path.write_text("\n# nothing here\n\n")
    elif setup == "folder":
        path.mkdir()
    elif setup == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
    proc = _cli("run", str(path), "--out", str(tmp_path / "o"), "--sandbox")
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_unwritable_out_is_one_line(tmp_path: Path) -> None:
    """An --out that cannot be created or written is one line and exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = _cli("run", str(_campaign(tmp_path)), "--out", str(blocker / "sub"), "--sandbox")
    assert proc.returncode == 2
    assert "--out" in proc.stderr and "not writable" in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.parametrize("quota", ["image=lots", "image=0", "foo=3", "image:9"])
def test_bad_quota_is_one_line(tmp_path: Path, quota: str) -> None:
    """A malformed or out-of-range --quota (a capacity of 0, an unknown pool) is one line
    starting with the flag, exit 2."""
    campaign = str(_campaign(tmp_path))
    proc = _cli("run", campaign, "--out", str(tmp_path / "o"), "--sandbox", "--quota", quota)
    assert proc.returncode == 2
    assert proc.stderr.startswith("kling-async: --quota") and proc.stderr.count("\n") == 1, (
        proc.stderr
    )


@pytest.mark.parametrize(
    ("variables", "args", "message"),
    [
        ({"KLING_ACCESS_KEY": ACCESS_KEY}, (),
         "KLING_ACCESS_KEY is set but KLING_SECRET_KEY is not"),
        ({"KLING_SECRET_KEY": SECRET_KEY}, (),
         "KLING_SECRET_KEY is set but KLING_ACCESS_KEY is not"),
        ({"KLING_API_KEY": API_KEY, "KLING_BASE_URL": "api.example.com"}, (),
         "KLING_BASE_URL 'api.example.com': must be an http(s) URL"),
        ({"KLING_API_KEY": API_KEY}, ("--base-url", "ftp://example.com"),
         "--base-url 'ftp://example.com': must be an http(s) URL"),
    ],
)  # fmt: skip
def test_half_set_environment_or_bad_base_url_is_one_line(
    tmp_path: Path, variables: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    """Half an AccessKey/SecretKey pair, or a base URL that is not http(s), is one line naming
    the variable or flag, exit 2, with no secret shown."""
    out = tmp_path / "o"
    proc = _cli("run", str(_campaign(tmp_path)), "--out", str(out), *args, env=_env(**variables))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"kling-async: {message}"), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert SECRET_KEY not in proc.stderr and not out.exists()


@pytest.mark.parametrize("flag", ["--deadline", "--task-timeout"])
def test_non_positive_seconds_are_refused(tmp_path: Path, flag: str) -> None:
    """--deadline and --task-timeout of 0 or less are refused before anything runs, exit 2."""
    out = tmp_path / "o"
    proc = _cli("run", str(_campaign(tmp_path)), "--out", str(out), "--sandbox", flag, "0")
    assert proc.returncode == 2
    assert f"{flag}: '0': need a positive number of seconds" in proc.stderr, proc.stderr
    assert not out.exists()


def test_debug_shows_the_traceback_of_an_unexpected_error(tmp_path: Path) -> None:
    """An unexpected error is one line suggesting --debug; with --debug the traceback shows."""
    (tmp_path / "manifest.jsonl").mkdir()  # the manifest cannot be written
    args = ("run", str(_campaign(tmp_path)), "--out", str(tmp_path), "--sandbox")
    plain = _cli(*args)
    assert plain.returncode == 2, plain.stderr
    assert "--debug" in plain.stderr and "Traceback" not in plain.stderr
    debug = _cli(*args, "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_missing_local_image_is_an_invalid_line(tmp_path: Path, account: Account) -> None:
    """A line whose image does not exist is invalid, naming the path; the others run."""
    campaign = _campaign(tmp_path, lines=3)
    lines = campaign.read_text().splitlines()
    broken = json.loads(lines[0])
    broken["image_list"] = [{"image": "no-such-photo.png"}]
    lines[0] = json.dumps(broken)
    campaign.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    proc = _cli(
        "run",
        str(campaign),
        "--out",
        str(out),
        "--base-url",
        account.url,
        env=_env(KLING_API_KEY=API_KEY),
    )
    assert proc.returncode == 1
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert rows[0]["status"] == "invalid"
    assert str(tmp_path / "no-such-photo.png") in rows[0]["error"]
    assert [row["status"] for row in rows[1:]] == ["succeeded", "succeeded"]
    assert len(account.tasks()) == 2


# -- signals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_creating_and_says_how_to_resume(
    tmp_path: Path, account: Account, signum: int, status: int
) -> None:
    """Ctrl-C or SIGTERM mid-run: exit 130/143 without a traceback, one summary line, a
    manifest of done / running / not started lines, and a resume command on one line (stderr is
    not a terminal) that, run as printed, finishes every line without a duplicate create."""
    campaign = _campaign(tmp_path, lines=16)
    out = tmp_path / "o"
    args = ("run", str(campaign), "--out", str(out), "--base-url", account.url)
    env = _env(KLING_ACCESS_KEY=ACCESS_KEY, KLING_SECRET_KEY=SECRET_KEY)
    proc = _start(*args, env=env)
    _wait_for_creates(account, 3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err and SECRET_KEY not in err
    summary = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(summary) == 1, err
    assert re.search(r"\d+ done, \d+ running \(followed on resume\), \d+ not started", summary[0])
    statuses = _statuses(out)
    assert sum(statuses.values()) == 16
    assert set(statuses) <= {"succeeded", "failed", "running", "not_started"}
    assert statuses["not_started"] + statuses["running"] > 0
    [command] = [line for line in err.splitlines() if line.startswith("resume with: ")]
    words = shlex.split(command.removeprefix("resume with: "))
    assert words == [sys.executable, "-m", "kling_async", *args, "--resume"], command
    resumed = subprocess.run(words, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert _statuses(out) == {"succeeded": 16}
    assert _duplicates(account.tasks()) == []
    assert len(account.tasks()) == 16


def test_second_ctrl_c_exits_at_once(tmp_path: Path, account: Account) -> None:
    """Two Ctrl-C in a row: exit 130 without a traceback."""
    args = ("run", str(_campaign(tmp_path, lines=16)), "--out", str(tmp_path / "o"))
    proc = _start(*args, "--base-url", account.url, env=_env(KLING_API_KEY=API_KEY))
    _wait_for_creates(account, 3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err


# -- killed and resumed ----------------------------------------------------------------------


def _kill_and_resume(args: tuple[str, ...], env: dict[str, str], created: Any, points: int) -> None:
    """Run, SIGKILL once ``created()`` reaches each of ``points`` rising counts, re-run."""
    for point in range(1, points + 1):
        proc = _start(*args, env=env)
        deadline = time.monotonic() + 60
        while created() < 2 * point and proc.poll() is None:
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    final = _cli(*args, env=env)
    assert final.returncode == 0, final.stderr


def _all_outputs_on_disk(out: Path, lines: int) -> None:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["succeeded"] * lines
    for row in rows:
        assert row["files"], row
        for name in row["files"]:
            assert (out / name).stat().st_size > 0


@pytest.mark.slow
def test_killed_five_times_on_an_account_resumes_without_duplicates(
    tmp_path: Path, account: Account
) -> None:
    """SIGKILL at five points against an account, then a re-run: every output on disk and
    no external_task_id created twice."""
    out = tmp_path / "o"
    args = ("run", str(_campaign(tmp_path, lines=14)), "--out", str(out), "--base-url", account.url)
    _kill_and_resume(args, _env(KLING_API_KEY=API_KEY), lambda: len(account.tasks()), 5)
    _all_outputs_on_disk(out, 14)
    assert _duplicates(account.tasks()) == [] and len(account.tasks()) == 14


@pytest.mark.slow
def test_killed_five_times_on_the_sandbox_resumes_without_duplicates(tmp_path: Path) -> None:
    """SIGKILL at five points with --sandbox, then a re-run: the sandbox's kept tasks answer
    the resumed run, so every line ends with its outputs and nothing is created twice."""
    out = tmp_path / "o"
    state = out / "sandbox-state.jsonl"

    def created() -> int:
        try:
            return max(0, len(state.read_text().splitlines()) - 1)
        except FileNotFoundError:
            return 0

    args = ("run", str(_campaign(tmp_path, lines=12)), "--out", str(out), "--sandbox")
    _kill_and_resume(args, _env(), created, 5)
    _all_outputs_on_disk(out, 12)
    tasks = [json.loads(line) for line in state.read_text().splitlines()[1:]]
    assert _duplicates(tasks) == [] and len(tasks) == 12


# -- logging ------------------------------------------------------------------------------------


def test_verbose_and_log_file_without_secrets(tmp_path: Path, account: Account) -> None:
    """-v logs task events to stderr and --log-file every HTTP request; no secret in either."""
    log = tmp_path / "run.log"
    env = _env(KLING_ACCESS_KEY=ACCESS_KEY, KLING_SECRET_KEY=SECRET_KEY)
    args = ("run", str(_campaign(tmp_path, lines=3)), "--out", str(tmp_path / "o"))
    proc = _cli(*args, "--base-url", account.url, "-v", "--log-file", str(log), env=env)
    assert proc.returncode == 0, proc.stderr
    text = log.read_text()
    assert "kling_async.http" in text and "POST /v1/images/omni-image -> 200" in text
    assert "kling_async.client" in text and "created" in text and "ended" in text
    # Not a terminal: one plain line per record, however long, none wrapped.
    assert any(
        "INFO kling_async.client: " in line and "created" in line
        for line in proc.stderr.splitlines()
    ), proc.stderr
    for secret in (SECRET_KEY, "eyJ"):  # a JWT's header starts with eyJ
        assert secret not in text and secret not in proc.stderr


def test_debug_logging_with_an_api_key_shows_no_key(tmp_path: Path, account: Account) -> None:
    """-vv and --log-file with an API key: every HTTP request is logged, the key nowhere."""
    log = tmp_path / "run.log"
    args = ("run", str(_campaign(tmp_path, lines=2)), "--out", str(tmp_path / "o"))
    proc = _cli(
        *args, "--base-url", account.url, "-vv", "--log-file", str(log),
        env=_env(KLING_API_KEY=API_KEY),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = log.read_text()
    assert "GET /v1/images/omni-image" in text and "GET /v1/images/omni-image" in proc.stderr
    assert API_KEY not in text and API_KEY not in proc.stderr


def test_a_signal_ignored_at_start_stays_ignored(tmp_path: Path, account: Account) -> None:
    """Started with SIGINT ignored (a background job of a script), the run ignores Ctrl-C and
    finishes, as Python programs do."""
    args = ("run", str(_campaign(tmp_path, lines=3)), "--out", str(tmp_path / "o"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kling_async", *args, "--base-url", account.url],
        env=_env(KLING_API_KEY=API_KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    _wait_for_creates(account, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert _statuses(tmp_path / "o") == {"succeeded": 3}
