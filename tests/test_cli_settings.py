"""The command line's setup errors come from the client's own check of its settings: a real
``python -m kling_async run`` says what ``KlingClient(...)`` says, in one line, exit 2, with
nothing sent and nothing created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kling_async as ka

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = str(ROOT / "examples" / "campaign.jsonl")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    env.update(extra)
    return env


def _run(out: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kling_async", "run", CAMPAIGN, "--out", str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variables", "options"),
    [
        ({"KLING_API_KEY": "k", "KLING_BASE_URL": "api.example.com"}, {}),
        ({"KLING_ACCESS_KEY": "ak"}, {}),
        ({"KLING_SECRET_KEY": "sk-0123456789"}, {}),
        ({"KLING_ACCESS_KEY": "ak", "KLING_SECRET_KEY": "sk-0123456789"}, {"api_standard": "new"}),
    ],
    ids=["base-url-variable", "half-pair-access", "half-pair-secret", "new-standard-ak-sk"],
)
def test_the_command_line_says_what_the_client_says(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    options: dict[str, str],
) -> None:
    """A setting from the environment that the client refuses is refused by the command line
    with the client's very message: one line, exit 2, no --out folder made."""
    for name in [k for k in os.environ if k.startswith(("KLING_", "MODELLIX_"))]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as refused:
        ka.KlingClient(**options)  # type: ignore[arg-type]
    flags = [f"--{k.replace('_', '-')}" for k in options] + list(options.values())
    proc = _run(tmp_path / "o", *flags, env=_env(**variables))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"kling-async: {refused.value}"]
    assert proc.stdout == "" and not (tmp_path / "o").exists()


def test_modellix_without_its_key_names_its_variable(tmp_path: Path) -> None:
    """On Modellix, Kling's AccessKey/SecretKey are no credentials: the one line names
    MODELLIX_API_KEY and the sandbox, not Kling's new standard."""
    env = _env(KLING_ACCESS_KEY="ak", KLING_SECRET_KEY="sk-0123456789")
    proc = _run(tmp_path / "o", "--provider", "modellix", env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "kling-async: no credentials: set MODELLIX_API_KEY, or try it offline with --sandbox"
    ]
    assert not (tmp_path / "o").exists()


def test_a_base_url_flag_is_named_as_the_flag(tmp_path: Path) -> None:
    """The client names a bad base URL by where it came from: the command line's --base-url
    (the client's keyword is base_url)."""
    with pytest.raises(ValueError, match=r"^base_url 'ftp://example\.com': must be an http"):
        ka.KlingClient(api_key="k", base_url="ftp://example.com")
    proc = _run(tmp_path / "o", "--base-url", "ftp://example.com", env=_env(KLING_API_KEY="k"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "kling-async: --base-url 'ftp://example.com': must be an http(s) URL, e.g. "
        "https://host/kling"
    ]


def test_a_worker_without_credentials_is_one_line(tmp_path: Path) -> None:
    """`kling-async work` without credentials stops with the client's one line, exit 2,
    before it reaches Redis or makes its --out folder."""
    out = tmp_path / "o"
    proc = subprocess.run(
        [sys.executable, "-m", "kling_async", "work", "--redis", "redis://127.0.0.1:1/0",
         "--queue", "q", "--out", str(out)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "kling-async: no credentials: set KLING_API_KEY, or KLING_ACCESS_KEY and "
        "KLING_SECRET_KEY, or try it offline with --sandbox"
    ]
    assert not out.exists()
