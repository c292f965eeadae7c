"""RedisQuotaBackend against a real redis-server: several clients (each its own holder, as
separate processes would be) share one account's quota on one sandbox."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import anyio
import pytest
import redis.asyncio as redis_asyncio

import kling_async as ka
from kling_async.testing import Sandbox

from .conftest import API_KEY
from .redis_server import RedisServer

pytestmark = pytest.mark.anyio

POOL = "kling-image-o1:image"
V3 = "kling-v3-omni"
V3_POOL = f"{V3}:image"


def _requests(count: int, seed: int) -> list[ka.OmniImageRequest]:
    rng = random.Random(seed)
    return [
        ka.OmniImageRequest(prompt=f"cat {i}", n=rng.choice((1, 1, 2, 3, 4))) for i in range(count)
    ]


class _Outcomes(list[ka.Outcome]):
    """Outcomes as they arrive, with a wait for the first ``count``."""

    def __init__(self) -> None:
        super().__init__()
        self._events: dict[int, anyio.Event] = {}

    def append(self, outcome: ka.Outcome) -> None:
        super().append(outcome)
        event = self._events.get(len(self))
        if event is not None:
            event.set()

    async def first(self, count: int) -> None:
        if len(self) < count:
            await self._events.setdefault(count, anyio.Event()).wait()


def _client(sandbox: Sandbox, backend: ka.RedisQuotaBackend, **kw: object) -> ka.KlingClient:
    return ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        quota=ka.Quota(image=9, video=5),
        quota_backend=backend,
        image_poll_interval=0.05,
        **kw,  # type: ignore[arg-type]
    )


async def _worker(
    sandbox: Sandbox,
    url: str,
    namespace: str,
    requests: list[ka.OmniImageRequest],
    outcomes: list[ka.Outcome],
    heartbeat: float = 1.0,
) -> None:
    """One client (one holder, as one process would be) streaming ``requests``."""
    backend = ka.RedisQuotaBackend(url, namespace=namespace, heartbeat=heartbeat)
    async with _client(sandbox, backend) as client, client.stream(requests) as results:
        async for outcome in results:
            outcomes.append(outcome)


async def _leases(url: str, namespace: str, pool: str = POOL) -> dict[bytes, bytes]:
    r = redis_asyncio.Redis.from_url(url)
    try:
        return await r.hgetall(f"kling_async:{{{namespace}}}:leases:{pool}")  # type: ignore[no-any-return]
    finally:
        await r.aclose()


async def _assert_nothing_held(url: str, namespace: str) -> None:
    """The shared pool ends with no lease and no slot in use."""
    assert await _leases(url, namespace) == {}
    assert (await _pool(url, namespace))[b"in_use"] == b"0"


async def _pool(url: str, namespace: str, pool: str = POOL) -> dict[bytes, bytes]:
    r = redis_asyncio.Redis.from_url(url)
    try:
        return await r.hgetall(f"kling_async:{{{namespace}}}:pool:{pool}")  # type: ignore[no-any-return]
    finally:
        await r.aclose()


async def test_clients_sharing_redis_never_trip_1303(redis_server: RedisServer) -> None:
    namespace = uuid.uuid4().hex
    async with Sandbox(
        api_keys=(API_KEY,), quota={"image": 9}, image_duration=(0.1, 0.3), seed=5
    ) as sandbox:
        outcomes: list[ka.Outcome] = []
        async with anyio.create_task_group() as tg:
            for seed in range(4):
                requests = _requests(30, seed)
                tg.start_soon(_worker, sandbox, redis_server.url, namespace, requests, outcomes)
        stats = sandbox.stats()
    assert len(outcomes) == 120
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
    assert stats.rejected_1303 == 0
    assert stats.pools[POOL].peak == 9  # full, and never more
    await _assert_nothing_held(redis_server.url, namespace)


async def test_a_restart_of_redis_mid_run_loses_no_request(redis_server: RedisServer) -> None:
    namespace = uuid.uuid4().hex
    async with Sandbox(
        api_keys=(API_KEY,), quota={"image": 9}, image_duration=(0.2, 0.5), seed=6
    ) as sandbox:
        outcomes = _Outcomes()
        async with anyio.create_task_group() as tg:
            for seed in range(3):
                requests = _requests(25, seed)
                tg.start_soon(
                    _worker, sandbox, redis_server.url, namespace, requests, outcomes, 0.2
                )
            await outcomes.first(20)
            await anyio.to_thread.run_sync(redis_server.restart)
        stats = sandbox.stats()
    assert len(outcomes) == 75
    assert all(o.ok for o in outcomes)
    assert stats.duplicate_external_ids == 0 and stats.creates == 75
    # The new epoch waits for the live processes to re-register before admitting: at most a
    # create or two race the rebuild.
    assert stats.rejected_1303 <= 2, stats.rejected_1303
    await _assert_nothing_held(redis_server.url, namespace)


async def test_redis_down_stops_creating_and_the_run_resumes(redis_server: RedisServer) -> None:
    namespace = uuid.uuid4().hex
    async with Sandbox(
        api_keys=(API_KEY,), quota={"image": 9}, image_duration=(0.2, 0.4), seed=7
    ) as sandbox:
        outcomes = _Outcomes()
        backend = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
        async with _client(sandbox, backend) as client, anyio.create_task_group() as tg:

            async def run() -> None:
                async with client.stream(_requests(40, 3)) as results:
                    async for outcome in results:
                        outcomes.append(outcome)

            tg.start_soon(run)
            await outcomes.first(10)
            await anyio.to_thread.run_sync(redis_server.stop)
            await anyio.sleep(1.0)  # the tasks running at the stop end; nothing new starts
            creates = sandbox.stats().creates
            await anyio.sleep(1.0)
            assert sandbox.stats().creates == creates  # nothing created while Redis is down
            assert sandbox.stats().pools[POOL].in_use == 0  # the running ones were followed
            await anyio.to_thread.run_sync(redis_server.start)
        stats = sandbox.stats()
    assert len(outcomes) == 40 and all(o.ok for o in outcomes)
    assert stats.rejected_1303 == 0 and stats.creates == 40
    assert await _leases(redis_server.url, namespace) == {}


async def test_processes_with_different_quotas_get_a_clear_error(
    redis_server: RedisServer,
) -> None:
    namespace = uuid.uuid4().hex
    async with Sandbox(api_keys=(API_KEY,), quota={"image": 9}) as sandbox:
        first = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
        async with _client(sandbox, first):
            second = ka.RedisQuotaBackend(redis_server.url, namespace=namespace)
            client = ka.KlingClient(
                api_key=API_KEY,
                base_url=sandbox.base_url,
                quota=ka.Quota(image=5),
                quota_backend=second,
            )
            with pytest.raises(ka.QuotaError) as caught:
                await client.__aenter__()
    message = str(caught.value)
    assert '"image": 9' in message and '"image": 5' in message, message


async def test_accounts_on_one_redis_never_mix(redis_server: RedisServer) -> None:
    keys = ("key-of-account-one", "key-of-account-two")
    async with Sandbox(api_keys=keys, quota={"image": 9}) as sandbox:
        for key in keys:
            backend = ka.RedisQuotaBackend(redis_server.url, heartbeat=0.2)
            async with ka.KlingClient(
                api_key=key, base_url=sandbox.base_url, quota_backend=backend
            ) as client:
                await client.run_all([ka.OmniImageRequest(prompt="a cat")])
    r = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        epochs = [k async for k in r.scan_iter("kling_async:*:epoch")]
        names = b" ".join([k async for k in r.scan_iter("kling_async:*")])
    finally:
        await r.aclose()
    namespaces = {k.split(b":")[1] for k in epochs}
    assert len(namespaces) >= 2  # one per account (other tests add their own)
    assert b"account" not in names  # the key itself never appears, only a hash of it


async def test_an_unreachable_redis_is_one_clear_error_at_open() -> None:
    backend = ka.RedisQuotaBackend("redis://127.0.0.1:1/0")
    client = ka.KlingClient(api_key=API_KEY, base_url="http://127.0.0.1:9", quota_backend=backend)
    with pytest.raises(ka.QuotaError, match=r"Redis at redis://127\.0\.0\.1:1/0 is unreachable"):
        await client.__aenter__()


async def test_the_oldest_waiting_request_is_not_starved(redis_server: RedisServer) -> None:
    """A cost-9 request of one process waits behind a stream of cost-1 requests of another;
    once it has waited its patience, the pool drains for it and it runs before the stream
    ends."""
    namespace = uuid.uuid4().hex
    async with Sandbox(
        api_keys=(API_KEY,), quota={"image": 9}, image_duration=(0.2, 0.4), seed=8
    ) as sandbox:
        ended: dict[str, float] = {}

        async def small() -> None:
            backend = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
            client = ka.KlingClient(
                api_key=API_KEY,
                base_url=sandbox.base_url,
                quota=ka.Quota(image=9, hol_patience=1.0),
                quota_backend=backend,
                image_poll_interval=0.05,
            )
            requests = [ka.OmniImageRequest(prompt=f"s{i}") for i in range(150)]
            async with client, client.stream(requests) as results:
                async for _ in results:
                    pass
            ended["small"] = anyio.current_time()

        async def large() -> None:
            await anyio.sleep(1.0)
            backend = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
            client = ka.KlingClient(
                api_key=API_KEY,
                base_url=sandbox.base_url,
                quota=ka.Quota(image=9, hol_patience=1.0),
                quota_backend=backend,
                image_poll_interval=0.05,
            )
            async with client:
                [outcome] = await client.run_all([ka.OmniImageRequest(prompt="big", n=9)])
            assert outcome.ok
            ended["large"] = anyio.current_time()

        async with anyio.create_task_group() as tg:
            tg.start_soon(small)
            tg.start_soon(large)
        assert sandbox.stats().rejected_1303 == 0
    assert ended["large"] < ended["small"] - 1.0, ended


async def test_auto_series_are_shared_learnt_and_overbooked(redis_server: RedisServer) -> None:
    """``auto`` series that produce 2–3 images: the first are counted at the 9-slot reservation,
    the shared pool overbooks on them, learns the count, and ends with nothing held."""
    namespace = uuid.uuid4().hex
    async with Sandbox(
        api_keys=(API_KEY,),
        quota={"image": 9},
        image_duration=(0.3, 0.6),
        auto_series_range=(2, 3),
        seed=9,
    ) as sandbox:
        outcomes = _Outcomes()
        overbooked = 0

        async def worker(seed: int) -> None:
            nonlocal overbooked
            rng = random.Random(seed)
            square = {"model_name": V3, "aspect_ratio": "1:1"}
            requests = [
                ka.OmniImageRequest(
                    prompt=f"auto {seed} {i}", result_type="series", series_amount="auto", **square
                )
                if rng.random() < 0.3
                else ka.OmniImageRequest(prompt=f"one {seed} {i}", **square)
                for i in range(30)
            ]
            backend = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
            async with _client(sandbox, backend) as client, client.stream(requests) as results:
                async for outcome in results:
                    outcomes.append(outcome)
                overbooked += client.stats().overbooked

        async with anyio.create_task_group() as tg:
            for seed in range(2):
                tg.start_soon(worker, seed)
        stats = sandbox.stats()
    assert len(outcomes) == 60 and all(o.ok for o in outcomes)
    assert stats.creates == 60 and stats.pools[V3_POOL].peak <= 9
    assert overbooked > 0
    pool = await _pool(redis_server.url, namespace, V3_POOL)
    assert pool[b"in_use"] == b"0" and pool[b"auto_slack"] == b"0"
    assert pool[b"overbooked"] == b"0"
    r = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        seen = await r.lrange(f"kling_async:{{{namespace}}}:auto:{V3_POOL}", 0, -1)
    finally:
        await r.aclose()
    assert seen and {int(x) for x in seen} <= {2, 3}  # the shared estimate learns 2–3
    assert await _leases(redis_server.url, namespace, V3_POOL) == {}


async def test_a_resumed_task_that_ended_meanwhile_is_not_counted_again(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A process leaves three tasks behind; another process's reconciler frees their slots once
    the server says they ended; the first, restarted with its journal, does not count them
    again (it asks the server before re-attaching)."""
    namespace = uuid.uuid4().hex
    journal = tmp_path / "journal.sqlite3"
    requests = [
        ka.OmniImageRequest(prompt=f"left {i}", external_task_id=f"left-{i}") for i in range(3)
    ]

    def client(backend: ka.RedisQuotaBackend, **kw: object) -> ka.KlingClient:
        return ka.KlingClient(
            api_key=API_KEY,
            base_url=sandbox.base_url,
            quota=ka.Quota(image=9),
            quota_backend=backend,
            image_poll_interval=5.0,
            **kw,  # type: ignore[arg-type]
        )

    async with Sandbox(api_keys=(API_KEY,), quota={"image": 9}, image_duration=0.2) as sandbox:
        first = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
        async with client(first, journal=journal) as c:
            for request in requests:
                await c.submit(request)
        assert (await _pool(redis_server.url, namespace))[b"in_use"] == b"3"
        other = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
        async with client(other):
            with anyio.fail_after(10):
                while (await _pool(redis_server.url, namespace))[b"in_use"] != b"0":  # noqa: ASYNC110
                    await anyio.sleep(0.1)  # the holder is dead and the tasks ended: freed
        again = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
        async with client(again, journal=journal) as c:
            for request in requests:
                await c.submit(request)  # re-attached from the journal, not created
            assert (await _pool(redis_server.url, namespace))[b"in_use"] == b"0"
            assert await _leases(redis_server.url, namespace) == {}
        assert sandbox.stats().creates == 3


async def test_an_empty_redis_is_rebuilt_from_the_servers_task_list(
    redis_server: RedisServer,
) -> None:
    """A process leaves three running tasks and is gone; Redis restarts empty while a live
    process has two tasks running and one request waiting. The live process starts the new
    epoch, re-registers its own tasks and counts the three from the server's task list, so its
    waiting request waits for them instead of meeting a 1303."""
    namespace = uuid.uuid4().hex
    async with Sandbox(
        api_keys=(API_KEY,), quota={"image": 9}, image_duration=(2.0, 2.2), seed=13
    ) as sandbox:
        first = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
        async with _client(sandbox, first) as c:
            for i in range(3):
                await c.submit(ka.OmniImageRequest(prompt=f"left {i}"))
        live = ka.RedisQuotaBackend(redis_server.url, namespace=namespace, heartbeat=0.2)
        async with _client(sandbox, live) as c, anyio.create_task_group() as tg:
            outcomes: list[ka.Outcome] = []

            async def run() -> None:
                requests = [ka.OmniImageRequest(prompt=f"new {i}", n=3) for i in range(3)]
                outcomes.extend(await c.run_all(requests))

            tg.start_soon(run)
            with anyio.fail_after(5):
                while sandbox.stats().creates < 5:  # noqa: ASYNC110
                    await anyio.sleep(0.02)  # two of the three new ones run, one waits
            await anyio.to_thread.run_sync(redis_server.restart)
        stats = sandbox.stats()
    assert len(outcomes) == 3 and all(o.ok for o in outcomes)
    assert stats.rejected_1303 == 0
    assert await _leases(redis_server.url, namespace) == {}
