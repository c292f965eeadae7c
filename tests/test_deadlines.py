"""The three time limits, each with its documented action: per request (``request_timeout``),
per task (``task_timeout``) and per run (``stream(..., deadline=)``), plus age-aware polling."""

from __future__ import annotations

import pytest

import kling_async as ka
from kling_async.testing import Sandbox

from .conftest import API_KEY

pytestmark = pytest.mark.anyio


async def test_run_deadline_stops_creating_and_reports_every_request() -> None:
    """At the run deadline, created tasks end as TaskTimeoutError with their task (slots still
    held), everything not created ends as DeadlineExceededError, and nothing more is sent."""
    async with (
        Sandbox(api_keys=(API_KEY,), quota={"image": 2}, image_duration=30.0, seed=3) as sb,
        ka.KlingClient(
            api_key=API_KEY,
            base_url=sb.base_url,
            quota=ka.Quota(image=2),
            image_poll_interval=0.05,
        ) as client,
    ):
        requests = [ka.OmniImageRequest(prompt=f"shot {i}") for i in range(5)]
        outcomes = await client.run_all(requests, deadline=0.5)
        assert [o.index for o in outcomes] == [0, 1, 2, 3, 4]
        timed_out = [o for o in outcomes if isinstance(o.error, ka.TaskTimeoutError)]
        never_sent = [o for o in outcomes if isinstance(o.error, ka.DeadlineExceededError)]
        assert len(timed_out) == 2 and len(never_sent) == 3
        assert all(o.task is not None for o in timed_out)
        assert all(o.task is None for o in never_sent)
        assert sb.stats().creates == 2
        # The created tasks still hold their slots: the client keeps following them.
        assert client.pool(requests[0].model_name, "image").in_use == 2


async def test_task_timeout_yields_task_timeout_error_and_the_task(sandbox: Sandbox) -> None:
    """A task running past task_timeout ends as an Outcome with TaskTimeoutError and its task;
    a fast one in the same run succeeds."""
    async with (
        Sandbox(api_keys=(API_KEY,), image_duration=(0.05, 5.0), seed=11) as sb,
        ka.KlingClient(
            api_key=API_KEY, base_url=sb.base_url, image_poll_interval=0.05, task_timeout=0.6
        ) as client,
    ):
        outcomes = await client.run_all(ka.OmniImageRequest(prompt=f"p{i}") for i in range(8))
    durations = {r.external_task_id: r.ends_at - r.created_at for r in sb.tasks}
    for outcome in outcomes:
        assert outcome.task is not None
        took = durations[outcome.task.external_task_id]
        if took < 0.4:
            assert outcome.ok, outcome.error
        elif took > 0.9:
            assert isinstance(outcome.error, ka.TaskTimeoutError)


async def test_long_tasks_are_polled_less_once_their_shortest_duration_is_known() -> None:
    """After a first task of a pool has ended, the poller does not query while every task in
    flight is younger than 80 % of the shortest duration seen."""
    async with (
        Sandbox(api_keys=(API_KEY,), image_duration=1.0, seed=5) as sb,
        ka.KlingClient(api_key=API_KEY, base_url=sb.base_url, image_poll_interval=0.05) as client,
    ):
        await client.wait(await client.submit(ka.OmniImageRequest(prompt="first")))
        before = sb.stats().queries + sb.stats().list_queries
        await client.wait(await client.submit(ka.OmniImageRequest(prompt="second")))
        after = sb.stats().queries + sb.stats().list_queries
    # Without the age rule a 1 s task polled every 0.05 s costs about 20 queries.
    assert after - before <= 8
