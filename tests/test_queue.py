"""RedisCampaign on a real redis-server with a client on the sandbox: idempotent pushes, the
outcome stored before the acknowledgement, take-over of a dead worker's line by lookup, the
dead-letter list, and the figures of status()."""

from __future__ import annotations

import json
import uuid
from contextlib import aclosing
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
import redis.asyncio as redis_asyncio

import kling_async as ka
from kling_async.testing import Sandbox

from .conftest import API_KEY
from .redis_server import RedisServer


def _lines(n: int, start: int = 0) -> list[str]:
    body = {"kind": "image", "model_name": "kling-image-o1"}
    return [json.dumps({**body, "prompt": f"line {i}"}) + "\n" for i in range(start, start + n)]


def _name() -> str:
    return f"q{uuid.uuid4().hex[:8]}"


def _client(sandbox: Sandbox, journal: Path) -> ka.KlingClient:
    return ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        quota=ka.Quota(image=9, video=5),
        image_poll_interval=0.05,
        journal=journal,
        lookahead=2,
    )


@pytest.mark.anyio
async def test_a_second_push_of_the_same_file_adds_nothing(redis_server: RedisServer) -> None:
    """Pushing the same lines twice queues each once; lines appended since are queued."""
    name = _name()
    async with ka.RedisCampaign(redis_server.url, name) as queue:
        first = await queue.push(_lines(5))
        again = await queue.push(_lines(5))
        longer = await queue.push([*_lines(5), "\n", *_lines(2, start=5)])
        status = await queue.status()
    assert (first.queued, first.skipped) == (5, 0)
    assert (again.queued, again.skipped) == (0, 5)
    assert (longer.queued, longer.skipped) == (2, 5)
    assert (status.lines, status.queued, status.running) == (7, 7, 0)


@pytest.mark.anyio
async def test_a_different_campaign_is_refused_on_a_used_queue(redis_server: RedisServer) -> None:
    """A file whose first lines differ from the queue's campaign is refused, nothing queued."""
    async with ka.RedisCampaign(redis_server.url, _name()) as queue:
        await queue.push(_lines(3))
        with pytest.raises(ValueError, match="different campaign"):
            await queue.push(_lines(3, start=10))
        assert (await queue.status()).queued == 3


@pytest.mark.anyio
async def test_invalid_lines_are_reported_at_push_and_counted_done(
    redis_server: RedisServer,
) -> None:
    """An invalid line is reported with its number, recorded as invalid, never queued."""
    async with ka.RedisCampaign(redis_server.url, _name()) as queue:
        report = await queue.push([*_lines(2), '{"kind": "image"}\n', "{oops\n"])
        status = await queue.status()
        rows = [row async for row in queue.rows()]
    assert report.queued == 2 and [line for line, _ in report.invalid] == [3, 4]
    assert status.done == {"invalid": 2} and status.queued == 2
    assert [r["status"] for r in rows] == ["not_done", "not_done", "invalid", "invalid"]


@pytest.mark.anyio
async def test_a_worker_runs_the_queue_and_status_counts_it(
    redis_server: RedisServer, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The library loop (requests → stream → ack) does every line once; status and rows say so."""
    name = _name()
    async with (
        ka.RedisCampaign(redis_server.url, name, out=tmp_path) as queue,
        _client(sandbox, tmp_path / "journal.sqlite") as client,
    ):
        await queue.push(_lines(12))
        async with client.stream(queue.requests(client)) as outcomes:
            async for outcome in outcomes:
                await queue.ack(outcome)
        status = await queue.status()
        rows = [row async for row in queue.rows()]
    assert status.done == {"succeeded": 12} and (status.queued, status.running) == (0, 0)
    assert status.units == sum(Decimal(r["units"]) for r in rows) > 0
    assert [r["line"] for r in rows] == list(range(1, 13))
    assert {r["worker"]["folder"] for r in rows} == {str(tmp_path)}
    assert sandbox.stats().creates == 12


@pytest.mark.anyio
async def test_a_line_taken_over_is_looked_up_not_created_again(
    redis_server: RedisServer, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A worker that created a line's task and vanished without acknowledging: the next
    worker claims the line, finds the task by external_task_id and follows it."""
    name = _name()
    async with ka.RedisCampaign(redis_server.url, name, claim_timeout=0.3) as first:
        await first.push(_lines(1))
        client = _client(sandbox, tmp_path / "a.sqlite")
        async with client, client.stream(first.requests(client)) as outcomes:
            async for _ in outcomes:
                break  # created and ended, never acknowledged
    await anyio.sleep(0.4)  # the line must be idle for claim_timeout
    async with (
        ka.RedisCampaign(redis_server.url, name, claim_timeout=0.3) as second,
        _client(sandbox, tmp_path / "b.sqlite") as client,
    ):
        async with client.stream(second.requests(client)) as outcomes:
            async for outcome in outcomes:
                assert outcome.ok
                await second.ack(outcome)
        status = await second.status()
    assert status.done == {"succeeded": 1}
    stats = sandbox.stats()
    assert stats.creates == 1 and stats.duplicate_external_ids == 0


@pytest.mark.anyio
async def test_a_line_delivered_five_times_goes_to_the_dead_letter_list(
    redis_server: RedisServer, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A line taken by five workers that each stopped without an outcome is dead-lettered by
    the sixth, which then finds the queue done."""
    name = _name()
    async with ka.RedisCampaign(redis_server.url, name) as queue:
        await queue.push(_lines(1))
    for attempt in range(6):
        async with (
            ka.RedisCampaign(redis_server.url, name, claim_timeout=0.2) as worker,
            _client(sandbox, tmp_path / f"{attempt}.sqlite") as client,
        ):
            requests = worker.requests(client)
            async with aclosing(requests):
                taken = await anext(requests, None)
            figures = await worker.status()
        assert (taken is not None) == (attempt < 5)
        await anyio.sleep(0.3)  # idle past claim_timeout
    assert figures.dead_letter == (1,) and figures.done == {"dead_letter": 1}
    assert figures.running == 0


@pytest.mark.anyio
async def test_a_key_a_dead_holder_was_granted_is_granted_to_its_taker(
    redis_server: RedisServer, sandbox: Sandbox
) -> None:
    """The shared quota: a line's key granted to a process that died before creating (its
    lease left in Redis) is queued and granted to the worker that took the line over."""
    namespace, pool = uuid.uuid4().hex[:12], "kling-image-o1:image"
    backend = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
    request = ka.OmniImageRequest(prompt="taken over", external_task_id="kaq-x-1")
    async with ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        quota=ka.Quota(image=9, video=5),
        quota_backend=backend,
        image_poll_interval=0.05,
    ) as client:
        r = redis_asyncio.Redis.from_url(redis_server.url)
        p = f"kling_async:{{{namespace}}}"
        lease = {"c": 9, "h": "dead-holder", "s": "g", "k": "image", "a": 0, "t": 0, "i": ""}
        await r.sadd(f"{p}:pools", pool)
        await r.sadd(f"{p}:holders", "dead-holder")
        await r.hset(f"{p}:pool:{pool}", mapping={"capacity": 9, "in_use": 9})
        await r.hset(f"{p}:leases:{pool}", "kaq-x-1", json.dumps(lease))
        await r.aclose()
        outcome = await client.run_all([request])
    assert outcome[0].ok
    assert sandbox.stats().creates == 1


@pytest.mark.anyio
async def test_a_worker_started_before_the_push_derives_the_campaigns_ids(
    redis_server: RedisServer, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A worker waiting on an empty queue (follow) names a pushed line's task after the
    campaign's identity, as every other worker does, so a take-over finds it."""
    name = _name()
    async with (
        ka.RedisCampaign(redis_server.url, name, follow=True, claim_timeout=0.4) as worker,
        ka.RedisCampaign(redis_server.url, name) as pusher,
        _client(sandbox, tmp_path / "j.sqlite") as client,
    ):
        requests = worker.requests(client)
        async with aclosing(requests), anyio.create_task_group() as tg:
            tg.start_soon(pusher.push, _lines(1))
            request = await anext(requests)
        r = redis_asyncio.Redis.from_url(redis_server.url, decode_responses=True)
        campaign = await r.hget(f"kling_async:queue:{{{name}}}:meta", "campaign")
        await r.aclose()
    assert request.external_task_id == f"kaq-{name}-{campaign}-1"
