"""The sandbox injects the faults of ref §8 at the configured rates, and counts them.

Real sockets on 127.0.0.1 and a plain aiohttp client: these tests never import the SDK.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from kling_async.testing import Faults, Sandbox
from kling_async.testing._faults import CREATE_FAULTS, FaultInjector

pytestmark = pytest.mark.anyio

KEY = "sk-test"
IMAGE = "/v1/images/omni-image"
VIDEO = "/v1/videos/omni-video"
VIDEO_BODY: dict[str, Any] = {
    "model_name": "kling-video-o1",
    "prompt": "a drone shot over a lake",
    "aspect_ratio": "16:9",
    "duration": "5",
}


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp is asyncio-only."""
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session that sends the test API key."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
        yield session


def sandbox(**rates: float) -> Sandbox:
    """A fast sandbox (tasks take 0.05 s) injecting the given faults."""
    return Sandbox(
        api_keys=(KEY,),
        quota={"image": 50, "video": 50},
        image_duration=0.05,
        video_duration=0.05,
        seed=3,
        faults=Faults(**rates),
    )


async def call(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """One request; returns (HTTP status, JSON body)."""
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.json()


async def wait_succeed(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Poll a task URL (by task_id or external_task_id) until it succeeds; return its data."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status, body = await call(session, "GET", url)
        assert status == 200, body
        if body["data"]["task_status"] == "succeed":
            return dict(body["data"])
        await asyncio.sleep(0.02)
    raise AssertionError("task did not succeed")


def assert_error(status: int, body: dict[str, Any], http_status: int, code: int) -> None:
    """An error answer: ref §8 HTTP status, ref §4 envelope without data."""
    assert (status, body["code"]) == (http_status, code), body
    assert body["message"] and body["request_id"] and "data" not in body


# --- configuration ------------------------------------------------------------------------


async def test_defaults_are_zero_and_uniform_sets_every_rate() -> None:
    """Faults() injects nothing; Faults.uniform sets every rate and keeps slow_seconds."""
    rates = [
        "error_before_create",
        "error_after_create",
        "drop_after_create",
        "query_error",
        "malformed_query",
        "slow",
        "slow_download",
    ]
    default = Faults()
    assert all(getattr(default, name) == 0 for name in rates) and default.slow_seconds == 1.0
    uniform = Faults.uniform(0.25, slow_seconds=0.5)
    assert all(getattr(uniform, name) == 0.25 for name in rates) and uniform.slow_seconds == 0.5
    with pytest.raises(ValueError, match="error_before_create"):
        Faults.uniform(2.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"error_before_create": -0.1}, ValueError, "error_before_create"),
        ({"slow": 1.5}, ValueError, "slow: 1.5 is outside"),
        ({"query_error": math.nan}, ValueError, "query_error"),
        ({"slow_seconds": -1.0}, ValueError, "slow_seconds"),
        ({"malformed_query": "0.5"}, TypeError, "malformed_query"),
        ({"slow_download": True}, TypeError, "slow_download"),
    ],
)
async def test_out_of_range_options_raise(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """A rate outside [0, 1], negative slow_seconds or a non-number names the field."""
    with pytest.raises(error, match=match):
        Faults(**kwargs)


# --- the injector alone -------------------------------------------------------------------


async def test_rates_at_zero_never_fire() -> None:
    """With every rate 0, no draw fires and counts stays empty."""
    injector = FaultInjector(Faults(slow_seconds=5.0), random.Random(0))
    for _ in range(2000):
        assert injector.create_fault() is None and injector.query_fault() is None
    await injector.maybe_slow()  # would take 5 s if it fired
    assert injector.counts == {}


async def test_rate_one_fires_every_time_first_field_wins() -> None:
    """At rate 1 a fault always fires; of exclusive faults the earlier field wins."""
    injector = FaultInjector(Faults.uniform(1.0, slow_seconds=0.0), random.Random(0))
    for _ in range(50):
        assert injector.create_fault() == "error_before_create"
        assert injector.query_fault() == "query_error"
        await injector.maybe_slow()
    assert injector.counts == {"error_before_create": 50, "query_error": 50, "slow": 50}


async def test_each_exclusive_rate_is_its_own_probability() -> None:
    """Exclusive create faults fire at their own configured rates (sum ≤ 1)."""
    faults = Faults(error_before_create=0.1, error_after_create=0.3, drop_after_create=0.2)
    injector = FaultInjector(faults, random.Random(42))
    draws = 20_000
    for _ in range(draws):
        injector.create_fault()
    for name in CREATE_FAULTS:
        assert injector.counts[name] / draws == pytest.approx(getattr(faults, name), abs=0.015)


async def test_retract_uncounts_a_fault_that_did_not_fire() -> None:
    """retract removes one count, and the name once it reaches 0."""
    injector = FaultInjector(Faults(error_after_create=1.0), random.Random(0))
    injector.create_fault()
    injector.create_fault()
    injector.retract("error_after_create")
    assert injector.counts == {"error_after_create": 1}
    injector.retract("error_after_create")
    assert injector.counts == {}


async def test_maybe_slow_sleeps_slow_seconds() -> None:
    """maybe_slow at rate 1 sleeps at least slow_seconds and counts "slow"."""
    injector = FaultInjector(Faults(slow=1.0, slow_seconds=0.1), random.Random(0))
    start = time.monotonic()
    await injector.maybe_slow()
    assert time.monotonic() - start >= 0.1 and injector.counts == {"slow": 1}


# --- through the sandbox ------------------------------------------------------------------


@pytest.mark.parametrize("path", [IMAGE, VIDEO])
async def test_error_before_create_is_5000_and_creates_nothing(
    http: aiohttp.ClientSession, path: str
) -> None:
    """error_before_create answers 5000 / HTTP 500 and no task exists."""
    body = {"prompt": "x", "external_task_id": "job-1"} if path == IMAGE else VIDEO_BODY
    async with sandbox(error_before_create=1.0) as sb:
        status, answer = await call(http, "POST", sb.base_url + path, json=body)
        assert_error(status, answer, 500, 5000)
        assert sb.tasks == [] and sb.stats().creates == 0
        assert sb.stats().faults_injected == {"error_before_create": 1}
        assert sb.stats().errors_by_code == {5000: 1}


@pytest.mark.parametrize("path", [IMAGE, VIDEO])
async def test_error_after_create_is_5002_and_the_task_runs(
    http: aiohttp.ClientSession, path: str
) -> None:
    """error_after_create answers 5002 / HTTP 504, yet one task exists, findable and running."""
    body = {"prompt": "x"} if path == IMAGE else dict(VIDEO_BODY)
    body["external_task_id"] = "job-2"
    async with sandbox(error_after_create=1.0) as sb:
        status, answer = await call(http, "POST", sb.base_url + path, json=body)
        assert_error(status, answer, 504, 5002)
        [task] = sb.tasks
        assert task.external_task_id == "job-2"
        found = await wait_succeed(http, f"{sb.base_url}{path}/job-2")
        assert found["task_id"] == task.task_id
        assert sb.stats().faults_injected == {"error_after_create": 1}


async def test_drop_after_create_disconnects_and_the_task_exists(
    http: aiohttp.ClientSession,
) -> None:
    """drop_after_create closes the connection with no answer; the task was created."""
    async with sandbox(drop_after_create=1.0) as sb:
        url = sb.base_url + IMAGE
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await call(http, "POST", url, json={"prompt": "x", "external_task_id": "job-3"})
        [task] = sb.tasks
        status, found = await call(http, "GET", f"{url}/job-3")
        assert status == 200 and found["data"]["task_id"] == task.task_id
        # the server keeps serving on new connections
        with pytest.raises(aiohttp.ClientConnectionError):
            await call(http, "POST", sb.base_url + VIDEO, json=VIDEO_BODY)
        assert len(sb.tasks) == 2
        assert sb.stats().faults_injected == {"drop_after_create": 2}


async def test_refused_create_keeps_its_answer_and_counts_no_fault(
    http: aiohttp.ClientSession,
) -> None:
    """A create refused for a bad body answers 1201 even when create faults are certain."""
    async with sandbox(error_after_create=1.0) as sb:
        status, answer = await call(http, "POST", sb.base_url + IMAGE, json={"n": 1})
        assert_error(status, answer, 400, 1201)
        assert sb.stats().faults_injected == {}


async def test_query_error_is_5001_for_single_and_list(http: aiohttp.ClientSession) -> None:
    """query_error answers 5001 / HTTP 503 to single and list queries, creates unaffected."""
    async with sandbox(query_error=1.0) as sb:
        url = sb.base_url + IMAGE
        status, created = await call(http, "POST", url, json={"prompt": "x"})
        assert status == 200 and created["code"] == 0
        task_id = created["data"]["task_id"]
        assert_error(*await call(http, "GET", f"{url}/{task_id}"), 503, 5001)
        assert_error(*await call(http, "GET", url, params={"pageNum": "1"}), 503, 5001)
        assert_error(*await call(http, "GET", sb.base_url + VIDEO), 503, 5001)
        assert sb.stats().faults_injected == {"query_error": 3}
        assert sb.stats().errors_by_code == {5001: 3}


async def test_malformed_query_is_http_200_with_invalid_json(
    http: aiohttp.ClientSession,
) -> None:
    """malformed_query answers HTTP 200 whose body does not parse as JSON."""
    async with sandbox(malformed_query=1.0) as sb:
        url = sb.base_url + IMAGE
        status, created = await call(http, "POST", url, json={"prompt": "x"})
        assert status == 200
        for query in (f"{url}/{created['data']['task_id']}", url):
            async with http.get(query) as response:
                assert response.status == 200
                text = await response.text()
            assert text.startswith('{"code": 0')
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
        assert sb.stats().faults_injected == {"malformed_query": 2}


async def test_slow_answers_take_slow_seconds(http: aiohttp.ClientSession) -> None:
    """slow delays creates, queries and error answers by at least slow_seconds."""
    async with sandbox(slow=1.0, slow_seconds=0.15) as sb:
        url = sb.base_url + IMAGE
        start = time.monotonic()
        status, _ = await call(http, "POST", url, json={"prompt": "x"})
        assert status == 200 and time.monotonic() - start >= 0.15
        start = time.monotonic()
        status, _ = await call(http, "GET", f"{url}/no-such-task")
        assert status == 404 and time.monotonic() - start >= 0.15
        assert sb.stats().faults_injected == {"slow": 2}


async def test_slow_download_still_delivers_the_whole_file(http: aiohttp.ClientSession) -> None:
    """slow_download streams a result file over slow_seconds, complete and intact."""
    async with sandbox(slow_download=1.0, slow_seconds=0.2) as sb:
        url = sb.base_url + IMAGE
        _, created = await call(http, "POST", url, json={"prompt": "x"})
        task_id = created["data"]["task_id"]
        found = await wait_succeed(http, f"{url}/{task_id}")
        file_url = found["task_result"]["images"][0]["url"]
        start = time.monotonic()
        async with http.get(file_url) as response:
            assert response.status == 200 and response.content_type == "image/png"
            data = await response.read()
            assert len(data) == response.content_length
        assert time.monotonic() - start >= 0.15
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
        assert sb.stats().faults_injected == {"slow_download": 1}


async def test_zero_rates_leave_the_sandbox_unchanged(http: aiohttp.ClientSession) -> None:
    """With Faults() every create and query answers normally and nothing is counted."""
    async with sandbox() as sb:
        url = sb.base_url + IMAGE
        for i in range(20):
            status, created = await call(http, "POST", url, json={"prompt": f"p{i}"})
            assert status == 200 and created["code"] == 0
            status, found = await call(http, "GET", f"{url}/{created['data']['task_id']}")
            assert status == 200 and found["code"] == 0
        assert len(sb.tasks) == 20 and sb.stats().faults_injected == {}
