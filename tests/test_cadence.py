"""Polling at the pace of the tasks: the interval is a fixed fraction of the observed task
duration (shorter while requests wait), and a client with default settings sees fast tasks end
within a small fraction of their duration."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kling_async as ka
from kling_async._engine import _cadence
from kling_async.testing import Sandbox

pytestmark = pytest.mark.anyio


@given(
    mean=st.floats(0.5, 600),
    waiting=st.booleans(),
    kind=st.sampled_from(["image", "video"]),
)
def test_interval_is_a_fixed_fraction_of_the_mean(mean: float, waiting: bool, kind: str) -> None:
    """Once a task has ended, the interval is the fraction of the pool's mean duration, clamped."""
    fraction = _cadence.FRACTION_BUSY if waiting else _cadence.FRACTION_IDLE
    got = _cadence.interval(kind, [mean, None], 0.0, waiting=waiting)  # type: ignore[arg-type]
    assert got == pytest.approx(min(_cadence.CEILING, max(_cadence.FLOOR, fraction * mean)))


def test_waiting_requests_make_polls_more_frequent() -> None:
    """The same tasks are polled more often while requests wait for slots."""
    busy = _cadence.interval("image", [20.0], 5.0, waiting=True)
    idle = _cadence.interval("image", [20.0], 5.0, waiting=False)
    assert busy < idle


def test_before_any_end_the_oldest_age_sets_the_pace() -> None:
    """Before a task has ended, the interval is a quarter of the oldest task's age (at least
    1 s of it), up to the idle fraction of the typical duration of the kind."""
    young = _cadence.interval("video", [None], 0.1, waiting=True)
    older = _cadence.interval("video", [None], 20.0, waiting=True)
    ancient = _cadence.interval("video", [None], 10_000.0, waiting=True)
    assert young == pytest.approx(_cadence.FRACTION_FIRST * _cadence.MIN_AGE)
    assert older == pytest.approx(_cadence.FRACTION_FIRST * 20.0)
    assert ancient == pytest.approx(_cadence.FRACTION_IDLE * _cadence.TYPICAL["video"])
    assert young < older < ancient


def test_a_pool_holding_a_third_of_its_slots_is_busy_without_waiters() -> None:
    """A pool is busy while requests wait or while it holds at least BUSY_SHARE of its slots
    (a campaign's tail), not when it holds a few."""
    assert _cadence.busy(waiting=1, in_use=0, capacity=50)
    assert _cadence.busy(waiting=0, in_use=15, capacity=50)
    assert not _cadence.busy(waiting=0, in_use=14, capacity=50)
    assert not _cadence.busy(waiting=0, in_use=0, capacity=0)


def test_the_fastest_pool_sets_the_pace() -> None:
    """With several pools of a kind in flight, the one with the shortest tasks decides."""
    assert _cadence.interval("image", [30.0, 2.0], 0.0, waiting=True) == pytest.approx(
        _cadence.FRACTION_BUSY * 2.0
    )


async def test_default_cadence_follows_fast_tasks() -> None:
    """With default poll settings and tasks of about 0.4 s, once tasks have ended the client
    polls every small fraction of their observed duration (not a fixed 0.8 s cadence); the
    figure is the client's own, not a wall-clock bound a loaded machine could break."""
    async with (
        Sandbox(api_keys=("k",), quota={"image": 4}, image_duration=(0.3, 0.5), seed=5) as sb,
        ka.KlingClient(api_key="k", base_url=sb.base_url, quota=ka.Quota(image=4)) as client,
    ):
        paces: list[tuple[float, float]] = []  # (seconds between polls, mean task seconds)
        requests = [ka.OmniImageRequest(prompt=f"p{i}", aspect_ratio="1:1") for i in range(24)]
        async with client.stream(requests) as outcomes:
            async for outcome in outcomes:
                assert outcome.ok
                [pool] = client.stats().pools.values()
                if pool.poll_interval is not None and pool.mean_task_seconds is not None:
                    paces.append((pool.poll_interval, pool.mean_task_seconds))
        assert len(sb.tasks) == 24
    assert len(paces) >= 8
    # 4.5 % of the mean while requests wait, 7 % when none do (at least 0.02 s).
    assert all(interval <= max(0.02, 0.1 * mean) for interval, mean in paces), paces


async def test_before_any_end_a_lone_task_costs_a_handful_of_queries() -> None:
    """Before any task has ended, polls are spaced at a quarter of the oldest task's age, so a
    lone 2 s task costs about 8 queries (at 7 % of its age it cost about 24)."""
    async with (
        Sandbox(api_keys=("k",), image_duration=2.0, seed=5) as sb,
        ka.KlingClient(api_key="k", base_url=sb.base_url) as client,
    ):
        outcome = await client.wait(await client.submit(ka.OmniImageRequest(prompt="lone")))
        assert outcome.task_id
        assert sb.stats().queries + sb.stats().list_queries <= 12


async def test_the_tail_of_a_campaign_is_polled_at_the_busy_pace() -> None:
    """With no request waiting, a pool holding a quarter of its slots is polled at the idle
    fraction of its mean task duration, and one holding half at the busy fraction."""
    async with (
        Sandbox(api_keys=("k",), quota={"image": 4}, image_duration=1.0, seed=5) as sb,
        ka.KlingClient(api_key="k", base_url=sb.base_url, quota=ka.Quota(image=4)) as client,
    ):
        await client.wait(await client.submit(ka.OmniImageRequest(prompt="first")))
        fractions = []
        for i in range(2):  # read right after each create: no task of these can end before
            await client.submit(ka.OmniImageRequest(prompt=f"p{i}"))
            (pool,) = client.stats().pools.values()
            assert pool.waiting == 0 and pool.held == i + 1 and pool.mean_task_seconds
            assert pool.poll_interval is not None
            fractions.append(pool.poll_interval / pool.mean_task_seconds)
    assert fractions == pytest.approx([_cadence.FRACTION_IDLE, _cadence.FRACTION_BUSY])


async def test_one_list_page_reaches_the_oldest_task_in_flight(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A list poll asks for a page reaching every task created since the oldest one in flight
    (the list is newest first), so no tick needs a second page even while a long task sits
    behind more than twice as many newer ones."""
    caplog.set_level(logging.DEBUG, logger="kling_async.client")
    async with (
        Sandbox(api_keys=("k",), quota={"image": 25}, image_duration=(0.01, 3.0), seed=3) as sb,
        ka.KlingClient(api_key="k", base_url=sb.base_url, quota=ka.Quota(image=25)) as client,
    ):
        outcomes = await client.run_all(ka.OmniImageRequest(prompt=f"p{i}") for i in range(120))
        assert all(o.ok for o in outcomes)
        list_queries = sb.stats().list_queries
    ticks = [r.args for r in caplog.records if r.getMessage().startswith("poll:")]
    paged = sum(1 for args in ticks if isinstance(args, tuple) and int(args[0]) > 2)
    assert paged > 0
    assert list_queries == paged  # one page per tick that lists
