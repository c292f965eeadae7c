"""RedisQuotaBackend against a real redis-server: several clients (each its own holder, as
separate processes would be) share one account's quota on one sandbox."""

from __future__ import annotations

import random
import uuid

import anyio
import pytest
import redis.asyncio as redis_asyncio

import kling_async as ka
from kling_async.testing import Sandbox

from .conftest import API_KEY
from .redis_server import RedisServer

pytestmark = pytest.mark.anyio

POOL = "kling-image-o1:image"


def _requests(count: int, seed: int) -> list[ka.OmniImageRequest]:
    rng = random.Random(seed)
    return [
        ka.OmniImageRequest(prompt=f"cat {i}", n=rng.choice((1, 1, 2, 3, 4))) for i in range(count)
    ]


def _client(sandbox: Sandbox, backend: ka.RedisQuotaBackend, **kw: object) -> ka.KlingClient:
    return ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        quota=ka.Quota(image=9, video=5),
        quota_backend=backend,
        image_poll_interval=0.05,
        **kw,  # type: ignore[arg-type]
    )


async def _leases(url: str, namespace: str) -> dict[bytes, bytes]:
    r = redis_asyncio.Redis.from_url(url)
    try:
        return await r.hgetall(f"kling_async:{{{namespace}}}:leases:{POOL}")  # type: ignore[no-any-return]
    finally:
        await r.aclose()


async def _pool(url: str, namespace: str) -> dict[bytes, bytes]:
    r = redis_asyncio.Redis.from_url(url)
    try:
        return await r.hgetall(f"kling_async:{{{namespace}}}:pool:{POOL}")  # type: ignore[no-any-return]
    finally:
        await r.aclose()


async def test_clients_sharing_redis_never_trip_1303(redis_server: RedisServer) -> None:
    namespace = uuid.uuid4().hex
    async with Sandbox(
        api_keys=(API_KEY,), quota={"image": 9}, image_duration=(0.1, 0.3), seed=5
    ) as sandbox:
        outcomes: list[ka.Outcome] = []

        async def worker(seed: int) -> None:
            backend = ka.RedisQuotaBackend(redis_server.url, namespace=namespace)
            async with (
                _client(sandbox, backend) as client,
                client.stream(_requests(30, seed)) as results,
            ):
                async for outcome in results:
                    outcomes.append(outcome)

        async with anyio.create_task_group() as tg:
            for seed in range(4):
                tg.start_soon(worker, seed)
        stats = sandbox.stats()
    assert len(outcomes) == 120
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
    assert stats.rejected_1303 == 0
    assert stats.pools[POOL].peak == 9  # full, and never more
    assert await _leases(redis_server.url, namespace) == {}
    assert (await _pool(redis_server.url, namespace))[b"in_use"] == b"0"
