"""One duration record per pool: the quota backend writes it when a task ends, the policy and
the client's polling cadence read it."""

from __future__ import annotations

import pytest

import kling_async as ka
from kling_async._quota._backend import LocalQuota
from kling_async._quota._durations import Durations, kept_by
from kling_async._quota._redis import RedisQuotaBackend
from kling_async.testing import Sandbox

from .conftest import API_KEY

POOL = "kling-image-o1:image"


@pytest.mark.anyio
async def test_each_task_end_is_recorded_once_in_the_backends_record(sandbox: Sandbox) -> None:
    """Six tasks end: the backend's record holds six observations, and the stats' mean task
    seconds (the cadence's reading) is that record's mean."""
    backend = LocalQuota()
    async with ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        quota_backend=backend,
        image_poll_interval=0.05,
    ) as client:
        requests = [ka.OmniImageRequest(prompt=f"p{i}") for i in range(6)]
        async with client.stream(requests) as results:
            outcomes = [outcome async for outcome in results]
        stats = client.stats()
    assert all(o.ok for o in outcomes)
    record = backend.durations[POOL]
    assert record.count == 6
    assert record.mean() is not None
    assert stats.pools[POOL].mean_task_seconds == record.mean()


def test_both_backends_keep_a_record_the_engine_reads() -> None:
    """The in-process and the Redis backend each expose their record; a backend without one
    leaves the engine to keep its own."""
    local = LocalQuota()
    shared = RedisQuotaBackend("redis://127.0.0.1:1/0")  # never connects here
    assert kept_by(local) is local.durations
    assert kept_by(shared) is shared.durations
    assert kept_by(object()) is None
    durations = Durations()
    durations.observe("m:image", 2.0)
    durations.observe("m:image", 4.0)
    assert (durations["m:image"].mean(), durations["m:image"].shortest) == (2.2, 2.0)
    assert "m:image" in durations and "m:video" not in durations
