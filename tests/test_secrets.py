"""Credentials never appear in reprs, errors, CLI output, the manifest or the journal."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import anyio
import pytest
from rich.console import Console

import kling_async as ka
from kling_async.cli import RunOptions, run_campaign
from kling_async.testing import Sandbox

from .hostile_kling import hostile_kling

API_KEY = "sk-live-5e3c2a9d7f4b41c8a0e6d2b9c7a1f3e5"
ACCESS_KEY = "ak-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SECRET_KEY = "sec-0a1b2c3d4e5f60718293a4b5c6d7e8f9"

pytestmark = pytest.mark.anyio


def _assert_clean(text: str | bytes, *extra: str) -> None:
    blob = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for secret in (API_KEY, ACCESS_KEY, SECRET_KEY, *extra):
        assert secret not in blob


async def test_reprs_and_errors_hide_credentials() -> None:
    """Client and auth reprs, and the error of a refused key, never show the key."""
    async with Sandbox(api_keys=("other",), image_duration=0.05) as sb:
        async with ka.KlingClient(api_key=API_KEY, base_url=sb.base_url) as client:
            _assert_clean(repr(client) + repr(vars(client)))
            with pytest.raises(ka.AuthenticationError) as info:
                await client.submit(ka.OmniImageRequest(prompt="x"))
            _assert_clean(str(info.value) + repr(info.value))
        jwt_client = ka.KlingClient(access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        token = jwt_client._auth.header().removeprefix("Bearer ")
        _assert_clean(repr(jwt_client) + repr(vars(jwt_client)), token)


async def test_cli_outputs_hold_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a JWT-authenticated campaign, no output file, manifest, journal or console text
    contains the access key, the secret key or the signed token."""
    monkeypatch.delenv("KLING_API_KEY", raising=False)
    monkeypatch.setenv("KLING_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("KLING_SECRET_KEY", SECRET_KEY)
    campaign = tmp_path / "c.jsonl"
    campaign.write_text(
        '{"kind": "image", "prompt": "a mug", "n": 2}\n{"kind": "image", "prompt": "x", "n": 42}\n'
    )
    console = Console(file=io.StringIO(), width=200)
    async with Sandbox(access_keys={ACCESS_KEY: SECRET_KEY}, image_duration=0.05) as sb:
        options = RunOptions(campaign=campaign, out=tmp_path / "out", base_url=sb.base_url)
        assert await run_campaign(options, console) == 1  # the second line is invalid
    _assert_clean(console.file.getvalue())  # type: ignore[attr-defined]
    files = list((tmp_path / "out").iterdir())
    assert any(f.name == "journal.sqlite" for f in files)
    assert any(f.suffix == ".png" for f in files)
    for path in files:
        _assert_clean(path.read_bytes())


@pytest.mark.parametrize("auth", ["api_key", "ak/sk"])
async def test_a_server_echoing_the_auth_header_never_shows_the_credential(auth: str) -> None:
    """A server whose refusal quotes the Authorization header: the error's str, repr and
    message hold neither the key nor the signed token."""
    credentials = (
        {"api_key": API_KEY}
        if auth == "api_key"
        else {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
    )
    async with hostile_kling(echo_auth=True) as server:
        async with ka.KlingClient(base_url=server.base_url, **credentials) as client:
            with pytest.raises(ka.AuthenticationError) as info:
                await client.submit(ka.OmniImageRequest(prompt="x"))
        token = server.seen_auth[0].removeprefix("Bearer ")
        assert token in (API_KEY, client._auth.header().removeprefix("Bearer "))
    error = info.value
    shown = f"{error} {error!r} {error.message} {error.args}"
    _assert_clean(shown, token)
    assert "bad auth header: Bearer <" in shown


async def test_the_cli_never_shows_a_key_a_server_echoes(tmp_path: Path) -> None:
    """`kling-async run -v --log-file` against a server that echoes the Authorization header:
    the one-line refusal, the console and the log file hold no key."""
    campaign = tmp_path / "c.jsonl"
    campaign.write_text('{"kind": "image", "prompt": "a mug"}\n')
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    async with hostile_kling(echo_auth=True) as server:
        proc = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "kling_async",
                "run",
                str(campaign),
                "--out",
                str(tmp_path / "out"),
                "--base-url",
                server.base_url,
                "-vv",
                "--log-file",
                str(log),
            ],
            env=env | {"KLING_API_KEY": API_KEY},
            check=False,
        )
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert "credentials refused (bad auth header: Bearer <" in stderr
    _assert_clean(stderr + proc.stdout.decode() + log.read_text(encoding="utf-8"))
