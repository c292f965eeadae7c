"""client.stats() and stream(on_progress=): what a user reads about a run, against the sandbox."""

from __future__ import annotations

import ast
import itertools
import logging
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anyio
import attrs
import pytest

import kling_async as ka
from kling_async._engine._stats import Counters
from kling_async.testing import Sandbox

from .conftest import API_KEY

pytestmark = pytest.mark.anyio

POOL = "kling-image-o1:image"  # the default image model's pool


def _held(client: ka.KlingClient) -> int:
    pool = client.stats().pools.get(POOL)
    return pool.held if pool is not None else 0


def _client(sandbox: Sandbox, **options: object) -> ka.KlingClient:
    options.setdefault("quota", ka.Quota(image=9, video=5))
    options.setdefault("image_poll_interval", 0.05)
    return ka.KlingClient(api_key=API_KEY, base_url=sandbox.base_url, **options)  # type: ignore[arg-type]


async def test_stats_count_a_finished_run(client: ka.KlingClient, sandbox: Sandbox) -> None:
    """After a run, stats() agrees with the server: creates, HTTP requests, units charged,
    and the pool's ended tasks and mean duration; nothing is held or waiting any more."""
    requests = [ka.OmniImageRequest(prompt=f"p{i}", n=(i % 3) + 1) for i in range(6)]
    outcomes = await client.run_all(requests)
    assert all(o.ok for o in outcomes)
    stats = client.stats()
    server = sandbox.stats()
    assert stats.tasks_created == server.creates == 6
    assert stats.tasks_succeeded == 6 and stats.tasks_failed == 0 and stats.in_flight == 0
    assert stats.requests_sent == server.requests
    charged = sum((o.result.units for o in outcomes if o.result and o.result.units), Decimal(0))
    assert stats.units_spent == charged > 0
    assert stats.requeued_1303 == 0
    pool = stats.pools[POOL]
    assert (pool.capacity, pool.held, pool.waiting, pool.tasks_ended) == (9, 0, 0, 6)
    assert pool.mean_task_seconds is not None and 0.05 <= pool.mean_task_seconds < 2.0
    assert pool.poll_interval is None  # nothing in flight: nothing polled


async def test_stats_while_requests_wait(sandbox: Sandbox) -> None:
    """Mid-run, a pool shows its slots held (never over capacity), requests waiting, the poll
    interval in use, and no mean before any task ended."""
    async with (
        Sandbox(api_keys=(API_KEY,), quota={"image": 9}, image_duration=0.6) as sb,
        _client(sb) as client,
    ):
        requests = [ka.OmniImageRequest(prompt=f"p{i}", n=3) for i in range(6)]
        async with client.stream(requests) as outcomes:
            with anyio.fail_after(5):
                # Slots are held from before each create; a task is polled once its create
                # answered (in_flight): wait for both, or the poll interval may not exist yet.
                while _held(client) != 9 or client.stats().in_flight != 3:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            pool = client.stats().pools[POOL]
            assert pool.held == 9 and pool.capacity == 9 and pool.waiting == 3
            assert pool.poll_interval == pytest.approx(0.05)
            assert pool.mean_task_seconds is None
            assert client.stats().in_flight == 3
            seen = [o async for o in outcomes]
    assert len(seen) == 6 and client.stats().pools[POOL].mean_task_seconds is not None


async def test_stats_count_1303s_per_pool(sandbox: Sandbox) -> None:
    """Creates refused with 1303 are counted per pool and in total, as the server saw them,
    and none reaches an outcome."""
    async with _client(sandbox, quota=ka.Quota(image=40)) as client:
        requests = [ka.OmniImageRequest(prompt=f"p{i}", n=3) for i in range(12)]
        outcomes = await client.run_all(requests)
    rejected = sandbox.stats().rejected_1303
    stats = client.stats()
    assert all(o.ok for o in outcomes)
    assert rejected > 0 and stats.requeued_1303 == stats.pools[POOL].requeued_1303 == rejected


async def test_stats_count_failed_tasks_without_units() -> None:
    """Tasks that end failed are counted failed and charge nothing."""
    async with (
        Sandbox(api_keys=(API_KEY,), image_duration=0.05, fail_rate=1.0) as sb,
        _client(sb) as client,
    ):
        outcomes = await client.run_all([ka.OmniImageRequest(prompt=f"p{i}") for i in range(3)])
        stats = client.stats()
    assert not any(o.ok for o in outcomes)
    assert (stats.tasks_created, stats.tasks_succeeded, stats.tasks_failed) == (3, 0, 3)
    assert stats.units_spent == 0


def test_stats_before_opening_are_empty_and_frozen() -> None:
    """A client never opened reports zeros; the snapshot and its pools are read-only."""
    stats = ka.KlingClient(api_key=API_KEY).stats()
    assert stats.pools == {} and stats.requests_sent == 0 and stats.units_spent == 0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.requests_sent = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        stats.pools["x"] = stats.pools.get("y")  # type: ignore[index]


async def test_on_progress_reports_a_stream(sandbox: Sandbox) -> None:
    """on_progress sees every request accounted for at each call (pulled = waiting + running +
    succeeded + failed), requests waiting while the pool is full, at most ten calls a second,
    and a final call with every outcome and the units spent."""
    calls: list[tuple[float, ka.Progress]] = []

    def record(progress: ka.Progress) -> None:
        calls.append((anyio.current_time(), progress))

    async with _client(sandbox) as client:
        requests = [ka.OmniImageRequest(prompt=f"p{i}", n=3) for i in range(12)]
        outcomes = []
        async with client.stream(requests, on_progress=record) as stream:
            async for outcome in stream:
                outcomes.append(outcome)
    progresses = [p for _, p in calls]
    for p in progresses:
        assert p.pulled == p.waiting + p.running + p.succeeded + p.failed
    assert any(p.waiting > 0 for p in progresses) and any(p.running > 0 for p in progresses)
    assert [p.finished for p in progresses] == [False] * (len(progresses) - 1) + [True]
    times = [t for t, p in calls if not p.finished]
    assert all(b - a >= 0.09 for a, b in itertools.pairwise(times))
    final = progresses[-1]
    assert (final.pulled, final.succeeded, final.failed, final.running) == (12, 12, 0, 0)
    units = sum((o.result.units for o in outcomes if o.result and o.result.units), Decimal(0))
    assert final.units_spent == units > 0
    assert final.elapsed >= max(p.elapsed for p in progresses[:-1])


async def test_on_progress_that_raises_is_logged_and_ignored(
    client: ka.KlingClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An on_progress that raises does not break the run; it is logged, the first time with
    its traceback."""

    def broken(progress: ka.Progress) -> None:
        raise ZeroDivisionError("bad display")

    with caplog.at_level(logging.WARNING, logger="kling_async.client"):
        outcomes = await client.run_all(
            [ka.OmniImageRequest(prompt=f"p{i}") for i in range(4)], on_progress=broken
        )
    assert all(o.ok for o in outcomes)
    records = [r for r in caplog.records if "on_progress raised" in r.getMessage()]
    assert len(records) >= 2
    assert records[0].exc_info and not any(r.exc_info for r in records[1:])
    assert all("bad display" in r.getMessage() for r in records)


async def test_on_progress_gets_a_final_call_when_the_block_is_left_early(
    client: ka.KlingClient,
) -> None:
    """Leaving the stream after the first outcome still gives one last, finished report."""
    calls: list[ka.Progress] = []
    requests = [ka.OmniImageRequest(prompt=f"p{i}", n=3) for i in range(10)]
    async with client.stream(requests, on_progress=calls.append) as stream:
        async for _ in stream:
            break
    assert calls[-1].finished and calls[-1].succeeded + calls[-1].failed >= 1
    assert calls[-1].pulled < 10 or calls[-1].running + calls[-1].waiting > 0


# -- Counters: one method per event, the counts private ------------------------------------------

PACKAGE = Path(ka.__file__).parent


def _counter_names() -> set[str]:
    """Every attribute of Counters, as spelt inside it (``_creates``) and without the
    underscore (``creates``, the spelling of the fields it once had)."""
    names = {field.name for field in attrs.fields(Counters)}
    return names | {name.lstrip("_") for name in names}


def _assigned_attributes(tree: ast.AST) -> Iterator[ast.Attribute]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        yield from (t for t in targets if isinstance(t, ast.Attribute))


def test_no_module_but_stats_assigns_a_counters_attribute() -> None:
    """Outside _engine/_stats.py no module writes a count of Counters (``stats.creates += 1``):
    every part reports its events through Counters' methods."""
    names = _counter_names()
    writes = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_stats.py" or "testing" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target in _assigned_attributes(tree):
            owner = ast.unparse(target.value).lower()
            if target.attr in names and ("stats" in owner or "counters" in owner):
                writes.append(f"{path.relative_to(PACKAGE)}:{target.lineno}: {ast.unparse(target)}")
    assert writes == []


def test_no_part_reaches_the_counters_through_the_wire() -> None:
    """The parts that report are handed the counters (a constructor argument); none reaches
    them through another part (``self.wire.stats``, ``self.api.stats``)."""
    reach = re.compile(r"\b(wire|api)\._?stats\b")
    found = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if reach.search(line)
    ]
    assert found == []


async def test_counters_count_only_through_their_event_methods() -> None:
    """A task's events, each one call, add up in the snapshot; the counts are not attributes
    a caller could set, and the telemetry is read-only."""
    counters = Counters()
    lease = ka.LocalQuota().lease(POOL, 9, ka.OmniImageRequest(prompt="p"), "key-1")
    counters.queued(lease)
    counters.granted(lease)
    with counters.http("POST", "http://127.0.0.1", "/v1/images/omni-image", None):
        counters.created()
    counters.tracked(lease, "task-1")
    counters.queried()
    counters.listed()
    counters.ended(lease, None, ka.KlingError("lost"))
    stats = counters.snapshot({}, {})
    assert (stats.requests_sent, stats.tasks_created) == (1, 1)
    assert (stats.queries, stats.list_queries, stats.tasks_failed) == (1, 1, 1)
    assert stats.pools[POOL].tasks_ended == 1
    public = {f.name for f in attrs.fields(Counters) if not f.name.startswith("_")}
    assert public == {"telemetry"}
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        counters.telemetry = None
