"""The quota policy is written once: ``LocalQuota`` (which runs ``decide``) and the Redis
backend (whose Lua script mirrors it) grant the same requests the same slots, step by step, on
random event sequences replayed through both (a real redis-server, a virtual clock)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

import kling_async as ka
from kling_async._quota._backend import Lease, LocalQuota, QuotaContext
from kling_async._quota._redis import RedisQuotaBackend

from .redis_server import RedisServer

POOL = "kling-v3-omni:image"
T0 = 10_000.0  # virtual seconds at the start (past any probe interval)

settings.register_profile(
    "quota-equivalence",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

Event = tuple[Any, ...]
EVENTS = st.one_of(
    st.tuples(st.just("acquire"), st.integers(1, 9), st.booleans()),
    st.tuples(st.sampled_from(["created", "refused", "abandon"]), st.integers(0, 50)),
    st.tuples(st.just("end"), st.integers(0, 50), st.none() | st.integers(2, 9)),
    st.tuples(st.just("time"), st.integers(1, 90)),
)


def _request(cost: int, auto: bool) -> ka.OmniImageRequest:
    if auto:
        return ka.OmniImageRequest(
            prompt="p", model_name="kling-v3-omni", result_type="series", series_amount="auto"
        )
    return ka.OmniImageRequest(prompt="p", model_name="kling-v3-omni", n=cost)


async def _missing(kind: Any, key: str, external: bool) -> Literal["running", "ended", "missing"]:
    return "running"  # never asked: no holder dies here


class Side:
    """One backend under test: its leases, the grants it made, and how to let it settle."""

    def __init__(self, backend: Any, settle: Callable[[], Awaitable[None]]) -> None:
        self.backend = backend
        self.settle = settle
        self.leases: dict[str, Lease] = {}
        self.grants: dict[str, tuple[int, bool]] = {}  # key -> (slots, overbooked), not answered

    async def take(self, key: str) -> None:
        lease = self.leases[key]
        await self.backend.acquire(lease)
        self.grants[key] = (lease.cost, lease.overbooked)


async def _replay(
    url: str, capacity: int, patience: float | str | None, events: list[Event]
) -> None:
    namespace = uuid.uuid4().hex
    prefix = f"kling_async:{{{namespace}}}"
    now = [T0]
    redis = Redis.from_url(url)
    local = LocalQuota(hol_patience=patience, clock=lambda: now[0])
    shared = RedisQuotaBackend(url, namespace=namespace, heartbeat=1000.0)
    calls = [0]
    idle = anyio.Event()
    call = shared._call

    async def counted(op: str, *args: str) -> list[Any]:  # to know when the Redis side is idle
        nonlocal idle
        calls[0] += 1
        try:
            return await call(op, *args)
        finally:
            calls[0] -= 1
            if not calls[0]:
                idle.set()

    async def settle_shared() -> None:
        nonlocal idle
        while True:
            await anyio.wait_all_tasks_blocked()  # a started acquire has made its call
            if not calls[0]:
                return
            while calls[0]:
                await idle.wait()
                idle = anyio.Event()

    shared._call = counted  # type: ignore[method-assign]
    limits = ka.Quota(image=capacity, hol_patience=patience)  # type: ignore[arg-type]
    context = QuotaContext(account=namespace, limits=limits, lookup=_missing)
    await redis.set(f"{prefix}:clock", repr(T0))
    sides = [Side(local, anyio.wait_all_tasks_blocked), Side(shared, settle_shared)]
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(shared.run, context)
            await redis.delete(f"{prefix}:rebuild_until")  # no re-registration grace here
            started: dict[str, float] = {}
            for step, event in enumerate(events):
                created = [k for k in sides[0].leases if k in started]
                answering = sorted(sides[0].grants)
                match event:
                    case ("acquire", cost, auto):
                        key = f"k{step}"
                        request = _request(min(cost, capacity), auto)
                        for side in sides:
                            side.leases[key] = side.backend.lease(POOL, capacity, request, key)
                            tg.start_soon(side.take, key)
                            await side.settle()
                    case ("created" | "refused" | "abandon" as op, i) if answering:
                        key = answering[i % len(answering)]
                        for side in sides:
                            del side.grants[key]
                            if op == "created":
                                side.leases[key].task_id = key
                                await side.backend.created(side.leases[key])
                                started[key] = now[0]
                            elif op == "refused":
                                await side.backend.refused(side.leases[key])
                                tg.start_soon(side.take, key)  # it queues again, keeping its place
                            else:
                                await side.backend.abandon(side.leases[key])
                                del side.leases[key]
                            await side.settle()
                    case ("end", i, images) if created:
                        key = created[i % len(created)]
                        seconds = now[0] - started.pop(key)
                        for side in sides:
                            lease = side.leases.pop(key)
                            await side.backend.ended(lease, images=images, seconds=seconds)
                            await side.settle()
                    case ("time", seconds):
                        now[0] += seconds
                        await redis.set(f"{prefix}:clock", repr(now[0]))
                        if sides[0].leases:
                            local.pool(POOL, capacity).wake()
                            await shared._call("pass", POOL)
                        for side in sides:
                            await side.settle()
                    case _:
                        continue
                figures = await redis.hmget(
                    f"{prefix}:pool:{POOL}", "in_use", "hidden", "overbooked", "auto_slack"
                )
                limiter = local.pool(POOL, capacity)
                assert sides[0].grants == sides[1].grants, (step, event)
                assert [int(f or 0) for f in figures] == [
                    limiter.in_use,
                    limiter.hidden,
                    limiter.overbooked,
                    limiter.auto_slack,
                ], (step, event)
            tg.cancel_scope.cancel()
    finally:
        await redis.aclose()


@settings(settings.get_profile("quota-equivalence"))
@example(  # backfill judged from created tasks only (the script once counted bare grants too)
    capacity=3,
    patience=0.0,
    events=[
        ("acquire", 1, False),
        ("acquire", 1, False),
        ("acquire", 3, False),
        ("acquire", 1, False),
        ("created", 0),
        ("end", 0, None),
    ],
)
@given(
    capacity=st.integers(3, 9),
    patience=st.sampled_from([None, 0.0, 45.0, "auto"]),
    events=st.lists(EVENTS, min_size=5, max_size=40),
)
def test_local_and_redis_backends_grant_alike(
    redis_server: RedisServer, capacity: int, patience: float | str | None, events: list[Event]
) -> None:
    """Acquires of fixed and auto requests, creates, 1303s, abandons, task ends (with the
    images an auto series made) and time passing give the same grants and pool figures on
    LocalQuota and on the Redis backend, after every step."""
    anyio.run(_replay, redis_server.url, capacity, patience, events)
