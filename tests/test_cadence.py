"""Polling at the pace of the tasks: the interval is a fixed fraction of the observed task
duration (shorter while requests wait), and a client with default settings sees fast tasks end
within a small fraction of their duration."""

from __future__ import annotations

import statistics
import time

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
    fraction = _cadence.FRACTION_WAITING if waiting else _cadence.FRACTION_IDLE
    got = _cadence.interval(kind, [mean, None], 0.0, waiting=waiting)  # type: ignore[arg-type]
    assert got == pytest.approx(min(_cadence.CEILING, max(_cadence.FLOOR, fraction * mean)))


def test_waiting_requests_make_polls_more_frequent() -> None:
    """The same tasks are polled more often while requests wait for slots."""
    busy = _cadence.interval("image", [20.0], 5.0, waiting=True)
    idle = _cadence.interval("image", [20.0], 5.0, waiting=False)
    assert busy < idle


def test_before_any_end_the_oldest_age_sets_the_pace() -> None:
    """Before a task has ended, the interval grows with the oldest task's age, up to the
    typical duration of the kind."""
    young = _cadence.interval("video", [None], 0.1, waiting=True)
    older = _cadence.interval("video", [None], 40.0, waiting=True)
    ancient = _cadence.interval("video", [None], 10_000.0, waiting=True)
    assert young < older < ancient
    assert ancient == pytest.approx(_cadence.FRACTION_WAITING * _cadence.TYPICAL["video"])


def test_the_fastest_pool_sets_the_pace() -> None:
    """With several pools of a kind in flight, the one with the shortest tasks decides."""
    assert _cadence.interval("image", [30.0, 2.0], 0.0, waiting=True) == pytest.approx(
        _cadence.FRACTION_WAITING * 2.0
    )


async def test_default_cadence_follows_fast_tasks() -> None:
    """With default poll settings and tasks of about 0.4 s, once tasks have ended each is seen
    within a small fraction of its duration (a fixed 0.8 s cadence would take about 0.4 s)."""
    async with (
        Sandbox(api_keys=("k",), quota={"image": 4}, image_duration=(0.3, 0.5), seed=5) as sb,
        ka.KlingClient(api_key="k", base_url=sb.base_url, quota=ka.Quota(image=4)) as client,
    ):
        seen: dict[str, float] = {}
        requests = [ka.OmniImageRequest(prompt=f"p{i}", aspect_ratio="1:1") for i in range(24)]
        async with client.stream(requests) as outcomes:
            async for outcome in outcomes:
                assert outcome.ok and outcome.task is not None
                seen[outcome.task.task_id] = time.time()
        ends = {t.task_id: t.ends_at for t in sb.tasks}
    lags = [seen[task_id] - ends[task_id] for task_id in list(seen)[8:]]  # after the first ends
    assert statistics.median(lags) < 0.1  # 4.5 % of ~0.4 s tasks is about 0.02 s
