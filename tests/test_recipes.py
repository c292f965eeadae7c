"""The recipes in examples/ run as a user runs them: separate processes, credentials and the
base URL from the environment, a sandbox process standing in for the account."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import pytest

from .test_cli_process import API_KEY, Account, _free_port

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "examples" / "media"


def _env(account: Account) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_", "MODELLIX_"))}
    env.update(KLING_API_KEY=API_KEY, KLING_BASE_URL=account.url)
    return env


def _run(script: str, account: Account, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        env=_env(account),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stats(account: Account) -> dict[str, Any]:
    with urllib.request.urlopen(account.url + "/sandbox/stats", timeout=5) as resp:
        return dict(json.load(resp))


@pytest.fixture
def account() -> Iterator[Account]:
    acct = Account(image="0.2,0.4")
    yield acct
    acct.stop()


@pytest.fixture
def slow_account() -> Iterator[Account]:
    acct = Account(image="0.3,2.0")
    yield acct
    acct.stop()


def test_sync_script_prints_and_saves_every_image(account: Account, tmp_path: Path) -> None:
    """sync_script.py (no asyncio) saves one image, then prints and saves three tasks of two
    images each as they end."""
    proc = _run("sync_script.py", account, str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("saved     ") == 1 and proc.stdout.count("ok        ") == 3
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "mug-image-0.png",
        *(f"shot-{i}-image-{k}.png" for i in range(3) for k in range(2)),
    ]
    assert len(account.tasks()) == 4


def test_queue_pipeline_creates_as_requests_arrive(account: Account) -> None:
    """queue_pipeline.py creates each task when its request arrives and handles outcomes while
    later requests are still arriving."""
    proc = _run("queue_pipeline.py", account)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split(maxsplit=2)[1:] for line in proc.stdout.splitlines()]
    arrived = [i for i, (what, _) in enumerate(lines) if what == "arrived"]
    done = [i for i, (what, _) in enumerate(lines) if what == "done"]
    assert len(arrived) == len(done) == 6 and "FAIL" not in proc.stdout
    assert done[0] < arrived[-1]  # an outcome was handled before the last request arrived
    created = sorted(t["created_at"] for t in account.tasks())
    ended = sorted(t["ends_at"] for t in account.tasks())
    assert ended[0] < created[-1]  # a task had ended before the last one was created
    assert created[-1] - created[0] > 4 * 0.5  # creates spread over the arrivals (0.5 s apart)


@contextlib.contextmanager
def _serve_sse(account: Account, tmp_path: Path) -> Iterator[str]:
    """examples/sse_server.py under uvicorn on a free port, against ``account``."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "sse_server.py"), "--port", str(port)],
        env=_env(account),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError((tmp_path / "server.log").read_text()) from None
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def sse_server(slow_account: Account, tmp_path: Path) -> Iterator[str]:
    """examples/sse_server.py under uvicorn on a free port, against the slow account."""
    with _serve_sse(slow_account, tmp_path) as url:
        yield url


async def _events(
    response: aiohttp.ClientResponse, stop_after: int | None = None
) -> list[tuple[float, str, dict[str, Any]]]:
    """The server-sent events as ``(arrival epoch seconds, event name, data)``."""
    events: list[tuple[float, str, dict[str, Any]]] = []
    name = "message"
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((time.time(), name, json.loads(line.removeprefix("data: "))))
            if stop_after is not None and len(events) >= stop_after:
                break
    return events


@pytest.mark.anyio
async def test_sse_server_sends_each_outcome_as_its_task_ends(
    sse_server: str, slow_account: Account
) -> None:
    """sse_server.py answers a POSTed list of Kling bodies with one event per request, the
    first before the last task ended, then a done event."""
    bodies = [{"prompt": f"shot {i}", "n": 1 + i % 3} for i in range(6)]
    async with (
        aiohttp.ClientSession() as session,
        session.post(sse_server + "/generate", json=bodies) as response,
    ):
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = await _events(response)
    outcomes = [data for _, name, data in events if name == "outcome"]
    assert sorted(d["line"] for d in outcomes) == list(range(6))
    assert all(d["status"] == "succeeded" for d in outcomes), outcomes
    assert all(len(d["urls"]) == bodies[d["line"]]["n"] for d in outcomes)
    assert events[-1][1:] == ("done", {"count": 6})
    tasks = await anyio.to_thread.run_sync(slow_account.tasks)
    assert len(tasks) == 6
    assert events[0][0] < max(t["ends_at"] for t in tasks)  # streamed, not gathered


@pytest.mark.anyio
async def test_sse_server_refuses_bad_bodies_with_422_and_sends_nothing(
    sse_server: str, slow_account: Account
) -> None:
    """Bad bodies get a 422 naming each bad line and field; Kling sees no request at all."""
    bodies = [
        {"prompt": "fine"},
        {"prompt": "too many", "n": 12},
        {"prompt": "typo", "nn": 2},
        "not an object",
        {
            "prompt": "a server file",
            "image_list": [{"image": str(ROOT / "examples/media/ceramic_mug.jpg")}],
        },
    ]
    async with (
        aiohttp.ClientSession() as session,
        session.post(sse_server + "/generate", json=bodies) as response,
    ):
        assert response.status == 422
        errors = (await response.json())["errors"]
    assert [e["line"] for e in errors] == [1, 2, 3, 4]
    assert errors[0]["error"].startswith("n: 12")
    assert "'nn'" in errors[1]["error"] and "JSON object" in errors[2]["error"]
    assert errors[3]["error"].startswith("image_list[0]: local paths are refused")
    assert (await anyio.to_thread.run_sync(_stats, slow_account))["requests"] == 0


TASK_SECONDS = 1.0  # every image task of the steady account takes exactly this long


@pytest.fixture
def steady_account() -> Iterator[Account]:
    acct = Account(image=f"{TASK_SECONDS},{TASK_SECONDS}")
    yield acct
    acct.stop()


@pytest.mark.anyio
async def test_sse_server_stops_creating_when_the_browser_goes_away(
    steady_account: Account, tmp_path: Path
) -> None:
    """A caller that disconnects after the first event cancels the requests not yet created:
    the create count stops rising, over several task durations after the disconnect."""
    bodies = [{"prompt": f"full pool {i}", "n": 9} for i in range(20)]  # one at a time
    with _serve_sse(steady_account, tmp_path) as url:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url + "/generate", json=bodies) as response,
        ):
            [(_, name, _)] = await _events(response, stop_after=1)
            assert name == "outcome"
        # Half a task: a create already on its way lands, no new one could have started.
        await anyio.sleep(TASK_SECONDS / 2)
        at_disconnect = (await anyio.to_thread.run_sync(_stats, steady_account))["creates"]
        await anyio.sleep(3.5 * TASK_SECONDS)  # a server still creating would add 3 or more
        later = (await anyio.to_thread.run_sync(_stats, steady_account))["creates"]
    assert at_disconnect <= 3
    assert later == at_disconnect


def test_budget_campaign_stops_at_its_budget_and_resumes_with_a_larger_one(
    account: Account, tmp_path: Path
) -> None:
    """budget_campaign.py with 50 units: three 16-unit shots run (48), the other nine are
    over budget with nothing sent. Again with 1,000: the three come from the journal (no
    create), the nine are made."""

    def run(budget: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "examples" / "budget_campaign.py"), budget],
            env=_env(account),
            cwd=tmp_path,  # its journal, budget-campaign.sqlite, is written here
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = run("50")
    assert first.returncode == 0, first.stderr
    assert "budget for this run: 50 units" in first.stdout
    assert first.stdout.count("ok ") == 3 and first.stdout.count("over budget ") == 9
    assert "charged 48 units; 9 shot(s) left" in first.stdout
    assert _stats(account)["creates"] == 3
    second = run("1000")
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("ok ") == 12 and "over budget " not in second.stdout
    assert _stats(account)["creates"] == 12  # the first three were not made again
