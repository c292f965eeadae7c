"""Downloads never hang: a result file trickled over a real socket fails against the throughput
floor, a cancelled download leaves no temporary file, and ``kling-async run`` ends a line whose
download outlives ``--task-timeout`` / ``--deadline`` as ``download_failed``, which a resume
downloads once the server is fast again."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

import kling_async as ka
from kling_async._http._auth import ApiKeyAuth
from kling_async._http._download import DownloadError, download_result
from kling_async._http._transport import Transport
from kling_async.testing import Faults, Sandbox

from .hostile_server import HostileServer, png_bytes

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

API_KEY = "key-download-limits"


def _result(url: str) -> ka.TaskResult:
    return ka.TaskResult(
        task_id="t-1",
        status=ka.TaskStatus.SUCCEEDED,
        images=(ka.GeneratedImage(index=0, url=url),),
    )


def _leftovers(folder: Path) -> list[str]:
    """Temporary files left in ``folder`` (the run's folder lock is meant to stay)."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if ("part" in p.name or p.name.startswith(".")) and p.name != ".kling-async.lock"
    )


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer(trickle_interval=0.5) as s:
        yield s


@pytest.fixture
async def transport(server: HostileServer) -> AsyncIterator[Transport]:
    async with aiohttp.ClientSession() as session:
        yield Transport(session, server.url, ApiKeyAuth("k"))


async def test_a_trickled_file_fails_against_the_throughput_floor(
    server: HostileServer, transport: Transport, tmp_path: Path
) -> None:
    """A file served a byte at a time fails once the grace period is over and the average rate
    is below min_rate; the error says so, and no temporary file remains."""
    with pytest.raises(DownloadError, match=r"slower than the floor of 1000 bytes/s") as caught:
        await download_result(
            transport,
            _result(server.url + "/trickle.png"),
            tmp_path,
            stem="s",
            retry=ka.Retry(attempts=1),
            min_rate=1000,
            grace=0.3,
        )
    assert isinstance(caught.value.__cause__, ka.RequestTimeoutError)
    await server.hung_up.wait()
    assert list(tmp_path.iterdir()) == []


async def test_a_fast_file_passes_the_floor(
    server: HostileServer, transport: Transport, tmp_path: Path
) -> None:
    """A file served at full speed is saved under the same floor."""
    server.fast = True
    saved = await download_result(
        transport,
        _result(server.url + "/trickle.png"),
        tmp_path,
        stem="s",
        retry=ka.Retry(attempts=1),
        min_rate=1000,
        grace=0.3,
    )
    assert [s.path.name for s in saved] == ["s-image-0.png"]
    assert saved[0].path.read_bytes() == png_bytes()
    assert _leftovers(tmp_path) == []


async def test_a_cancelled_download_leaves_no_temporary_file(
    server: HostileServer, transport: Transport, tmp_path: Path
) -> None:
    """Cancelling a download mid-body removes its temporary .part file."""
    async with anyio.create_task_group() as tg:

        async def fetch() -> None:
            await download_result(
                transport,
                _result(server.url + "/trickle.png"),
                tmp_path,
                stem="s",
                retry=ka.Retry(attempts=1),
            )

        tg.start_soon(fetch)
        await server.trickle_started.wait()
        # The .part file appears when the client opens it: no event to wait on but the folder.
        while not any(tmp_path.iterdir()):  # noqa: ASYNC110
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert list(tmp_path.iterdir()) == []


# -- the command line ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


async def _run(*args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    env["KLING_API_KEY"] = API_KEY
    return await anyio.run_process(
        [sys.executable, "-m", "kling_async", "run", *args], env=env, check=False
    )


@pytest.mark.parametrize("flag", ["--task-timeout", "--deadline"])
async def test_run_ends_a_slow_download_and_resume_downloads_it(tmp_path: Path, flag: str) -> None:
    """A result file the sandbox sends in 8 chunks over 40 s: the run ends the line within its
    --task-timeout / --deadline as download_failed with no temporary file left, and a --resume
    against a fast server downloads it without creating the task again."""
    campaign = tmp_path / "campaign.jsonl"
    campaign.write_text(json.dumps({"kind": "image", "prompt": "a red chair"}) + "\n")
    out, state, port = tmp_path / "out", tmp_path / "sandbox.jsonl", _free_port()
    options: dict[str, Any] = {
        "api_keys": (API_KEY,),
        "port": port,
        "image_duration": (0.2, 0.4),
        "state_file": state,
    }
    slow = Faults(slow_download=1.0, slow_seconds=40.0)
    async with Sandbox(faults=slow, **options) as sandbox:
        first = await _run(
            str(campaign), "--out", str(out), "--base-url", sandbox.base_url, flag, "6"
        )
        assert sandbox.stats().faults_injected == {"slow_download": 1}
    assert first.returncode == 1, first.stderr.decode()
    [row] = _rows(out)
    assert row["status"] == "download_failed" and row["files"] == []
    assert "--task-timeout/--deadline" in row["error"]
    assert _leftovers(out) == []
    async with Sandbox(**options) as sandbox:
        second = await _run(
            str(campaign), "--out", str(out), "--base-url", sandbox.base_url, flag, "60", "--resume"
        )
        created = len(sandbox.tasks)
    assert second.returncode == 0, second.stderr.decode()
    [row] = _rows(out)
    assert row["status"] == "succeeded" and len(row["files"]) == 1
    assert (out / row["files"][0]).stat().st_size > 0
    assert created == 1 and _leftovers(out) == []
