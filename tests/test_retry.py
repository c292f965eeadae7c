"""The client's retry policy (``ka.Retry``): its backoff and checks, and the attempts it sets
for queries, creates and downloads, against the sandbox over sockets on 127.0.0.1."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

import kling_async as ka
import kling_async.sync
from kling_async.testing import Faults, Sandbox

from .conftest import API_KEY


def at_once(attempts: int) -> ka.Retry:
    """A policy that retries without waiting."""
    return ka.Retry(attempts=attempts, base=0.0, cap=0.0, jitter=0.0)


def test_the_default_is_the_sdks_backoff() -> None:
    """Retry() is 5 attempts waiting 0.5, 1, 2, 4, then 8 s at most, each plus up to 0.5 s."""
    policy = ka.Retry()
    assert (policy.attempts, policy.base, policy.cap, policy.jitter) == (5, 0.5, 8.0, 0.5)
    for attempt, floor in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0], start=1):
        assert floor <= policy.delay(attempt) <= floor + 0.5


def test_the_wait_doubles_up_to_the_cap() -> None:
    """Without jitter, attempt n waits exactly min(cap, base × 2ⁿ⁻¹) seconds."""
    policy = ka.Retry(base=0.25, cap=1.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 1.0, 1.0]


def test_a_retry_after_is_never_cut_short() -> None:
    """The server's Retry-After is a floor: a near-zero policy still waits it, and a longer
    backoff is not shortened by a smaller one."""
    assert at_once(3).delay(1, 2.5) == 2.5
    assert at_once(3).delay(1, None) == 0.0
    assert ka.Retry(jitter=0.0).delay(3, 0.1) == 2.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("attempts", 0), ("base", -0.1), ("cap", -1.0), ("jitter", math.nan)],
)
def test_a_field_out_of_range_is_refused(field: str, value: float) -> None:
    """attempts < 1, or a negative (or NaN) number of seconds, is a ValueError naming it."""
    with pytest.raises(ValueError, match=f"^{field}: "):
        ka.Retry(**{field: value})  # type: ignore[arg-type]


def test_the_client_takes_retry_or_max_retries() -> None:
    """retry= is the client's policy; max_retries=N alone is Retry(attempts=N); the two
    disagreeing, or a retry that is not a Retry, is refused when the client is built."""
    policy = at_once(3)
    assert ka.KlingClient(api_key=API_KEY, retry=policy).retry is policy
    assert ka.KlingClient(api_key=API_KEY, retry=policy, max_retries=3).retry is policy
    assert ka.KlingClient(api_key=API_KEY, max_retries=2).retry == ka.Retry(attempts=2)
    assert ka.KlingClient(api_key=API_KEY).retry == ka.Retry()
    with pytest.raises(ValueError, match=r"max_retries: 2 disagrees with retry\.attempts 3"):
        ka.KlingClient(api_key=API_KEY, retry=policy, max_retries=2)
    with pytest.raises(ValueError, match="max_retries: 0"):
        ka.KlingClient(api_key=API_KEY, max_retries=0)
    with pytest.raises(TypeError, match="retry: int"):
        ka.KlingClient(api_key=API_KEY, retry=3)  # type: ignore[arg-type]


def test_the_blocking_client_takes_retry() -> None:
    """kling_async.sync.KlingClient passes retry= to the async client it runs."""
    policy = at_once(2)
    client = kling_async.sync.KlingClient(api_key=API_KEY, retry=policy)
    try:
        assert client._client.retry is policy
    finally:
        client.close()


@pytest.mark.anyio
@pytest.mark.parametrize("attempts", [1, 3])
async def test_a_query_is_tried_as_often_as_the_policy_says(attempts: int) -> None:
    """A query answered 5001 every time is sent ``attempts`` times, then its ServerError is
    raised."""
    async with (
        Sandbox(api_keys=(API_KEY,), faults=Faults(query_error=1.0), seed=1) as sb,
        ka.KlingClient(api_key=API_KEY, base_url=sb.base_url, retry=at_once(attempts)) as client,
    ):
        with pytest.raises(ka.ServerError):
            await client.get("no-such-task")
        assert sb.stats().faults_injected == {"query_error": attempts}


@pytest.mark.anyio
@pytest.mark.parametrize("attempts", [1, 3])
async def test_a_create_is_tried_as_often_as_the_policy_says(attempts: int) -> None:
    """A create refused with 5000 (nothing created) every time is sent ``attempts`` times,
    then its ServerError is raised; no task exists."""
    async with (
        Sandbox(api_keys=(API_KEY,), faults=Faults(error_before_create=1.0), seed=1) as sb,
        ka.KlingClient(api_key=API_KEY, base_url=sb.base_url, retry=at_once(attempts)) as client,
    ):
        with pytest.raises(ka.ServerError):
            await client.submit(ka.OmniImageRequest(prompt="a red mug"))
        assert sb.stats().faults_injected == {"error_before_create": attempts}
        assert sb.tasks == []


@pytest.fixture
async def failing_files() -> AsyncIterator[tuple[str, list[str]]]:
    """A file server on 127.0.0.1 that answers every GET with HTTP 503, and the paths asked."""
    asked: list[str] = []

    async def unavailable(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(status=503, text="busy")

    app = web.Application()
    app.router.add_get("/{name}", unavailable)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", asked
    finally:
        await runner.cleanup()


@pytest.mark.anyio
@pytest.mark.parametrize("attempts", [1, 3])
async def test_a_download_is_tried_as_often_as_the_policy_says(
    failing_files: tuple[str, list[str]], sandbox: Sandbox, tmp_path: Path, attempts: int
) -> None:
    """An output whose server answers 503 every time is fetched ``attempts`` times, then
    DownloadError is raised."""
    url, asked = failing_files
    result = ka.TaskResult(
        task_id="t-1",
        status=ka.TaskStatus.SUCCEEDED,
        images=(ka.GeneratedImage(index=0, url=f"{url}/out.png"),),
    )
    async with ka.KlingClient(
        api_key=API_KEY, base_url=sandbox.base_url, retry=at_once(attempts)
    ) as client:
        with pytest.raises(ka.DownloadError):
            await client.download(result, tmp_path)
    assert asked == ["/out.png"] * attempts
