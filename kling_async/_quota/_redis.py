"""``RedisQuotaBackend``: one account's concurrency quota shared by many processes on Redis.

Every process that uses the same account (and wire API) keeps its slots in one Redis namespace,
so the account's quota is filled once, across any number of processes and hosts, instead of
each process believing it has the whole quota and tripping 1303 on the others.

How it works (the Lua script ``_redis.lua`` holds the bookkeeping and the policy, the latter
mirrored rule for rule from ``_decide.decide``, run atomically on the server; nothing is read in
one round trip and written in another):

- **Leases belong to remote tasks.** A lease is keyed by the task's ``external_task_id``, records
  its cost and its holder (a process), and is released by whichever process learns first that
  the task ended. A process proves it is alive with a heartbeat key that expires.
- **One wait queue.** Waiting requests of every process queue in arrival order; a grant pass
  admits the oldest when it fits, else the largest that fits (best fit), and once the oldest has
  waited its patience only requests that cannot delay it (so none starves): EASY backfilling
  from the leases' start times and the pool's mean task duration, as in process. Grants are
  posted to the holder's mailbox and announced on a pub/sub channel.
- **Observations are shared:** 1303s raise the pool's hidden slots (and successful creates and
  waiting lower them again), ended ``auto`` series teach the shared reservation, task durations
  the shared mean (which sets the patience). When nothing fits but ``auto`` series in flight may
  hold less than they reserved, one waiter at a time is admitted by overbooking their
  reservations; its create's answer settles it, as in process.
- **Dead holders.** Their leases are not freed on a timer (their tasks still run on the server
  and still hold its slots): a live process looks each task up and releases it once the server
  says it ended or never existed. A restarted process with its journal re-attaches to its own.
- **Redis unreachable:** nothing new is admitted (never over-admit); running tasks are still
  followed, and their releases are sent when Redis is back. **Redis restarted empty:** the lost
  epoch key is noticed, a new epoch starts, live processes re-register their leases, the process
  that started the epoch counts the tasks the server lists as running that nobody re-registered,
  and nothing is admitted until they have had the time to (two heartbeats).

Every rule of the policy is shared: ``tests/test_quota_equivalence.py`` replays random events
through this backend and the in-process one and compares their grants step by step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import uuid
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from .._errors import QuotaError
from .._models import Kind, Request
from ._backend import Lease, PoolSnapshot, QuotaContext
from ._decide import MIN_SERIES
from ._durations import Durations
from ._policy import AutoSeriesEstimator, request_cost
from ._redis_state import EpochLost, Held, Queued, Unavailable, Waiting, lookup, text

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisQuotaBackend"]

_log = logging.getLogger("kling_async.quota")
_FIXED = AutoSeriesEstimator()  # prices fixed requests; an auto series is priced by the script
_SCRIPT = resources.files(__package__).joinpath("_redis.lua").read_text(encoding="utf-8")


class RedisQuotaBackend:
    """A :class:`QuotaBackend` on Redis (``pip install 'kling-async[redis]'``), shared by every
    process that uses the same account and wire API.

    Use it as ``KlingClient(..., quota=Quota(image=9, video=5),
    quota_backend=RedisQuotaBackend("redis://host:6379/0"))``, or ``kling-async run ... --redis
    URL`` (environment ``KLING_ASYNC_REDIS_URL``). Every process of one account must use the
    same :class:`Quota`.

    Args:
        url: ``redis://`` (or ``rediss://``, ``unix://``) URL of the server; redis-py's URL
            syntax, with a database number and credentials if needed.
        namespace: Keys live under ``kling_async:{<namespace>}:``. Default: a hash of the wire
            API, the base URL and the key id (a hash of the API key, or the access key), so two
            accounts on one Redis never mix; never the secret itself.
        heartbeat: Seconds between heartbeats; a holder silent for five of them is dead and its
            leases are reconciled by the live processes. Default 1.0.
        redis: An open ``redis.asyncio.Redis`` client to use instead of ``url`` (not closed by
            the backend).

    Attributes:
        durations: This process's tasks' durations per pool, for its polling cadence.

    Raises:
        ImportError: redis-py is not installed (install the ``redis`` extra).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str | None = None,
        heartbeat: float = 1.0,
        redis: Redis | None = None,
    ) -> None:
        try:
            import redis.asyncio as redis_asyncio
        except ImportError as exc:  # pragma: no cover - the extra is installed in tests
            raise ImportError(
                "RedisQuotaBackend needs redis-py: pip install 'kling-async[redis]'"
            ) from exc
        if (url is None) == (redis is None):
            raise ValueError("RedisQuotaBackend: pass url= or redis= (exactly one)")
        if heartbeat <= 0:
            raise ValueError(f"heartbeat: {heartbeat}, must be > 0 seconds")
        self.url = url
        self.namespace = namespace
        self.heartbeat = heartbeat
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._own_client = redis is None
        self._redis: Redis = redis or redis_asyncio.Redis.from_url(
            url or "", socket_timeout=5.0, socket_connect_timeout=5.0, health_check_interval=0
        )
        self._redis_errors: tuple[type[BaseException], ...] = (
            redis_asyncio.ConnectionError,
            redis_asyncio.TimeoutError,
            OSError,
        )
        self._script = self._redis.register_script(_SCRIPT)
        self._epoch = ""
        self._config = ""
        self._epoch_key = ""
        self._context: QuotaContext | None = None
        self._waiting: dict[str, Waiting] = {}
        self._queued: dict[str, Queued] = {}
        self._held: dict[str, Held] = {}
        self._pending: list[tuple[str, ...]] = []
        self._figures: dict[str, PoolSnapshot] = {}
        self._kick = anyio.Event()
        self._released = anyio.Event()
        self._up = anyio.Event()
        self._up.set()
        self._rejoining = anyio.Lock()
        self.durations = Durations()  # this process's tasks, for its polling cadence

    def __repr__(self) -> str:
        return f"RedisQuotaBackend(url={self.url!r}, namespace={self.namespace!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def run(
        self,
        context: QuotaContext,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Join the shared pool, then keep this process's heartbeat, wake-ups and reconciliation
        going until cancelled.

        Raises:
            QuotaError: another process of this account runs with a different :class:`Quota`,
                or Redis cannot be reached when the client opens.
        """
        self._context = context
        namespace = self.namespace or hashlib.sha256(context.account.encode()).hexdigest()[:16]
        self._epoch_key = f"kling_async:{{{namespace}}}:epoch"
        limits = context.limits
        self._config = json.dumps(
            {
                "image": limits.image,
                "video": limits.video,
                "team": limits.team,
                "pools": dict(sorted(limits.pools.items())),
                "hol_patience": limits.hol_patience,
            },
            sort_keys=True,
        )
        try:
            try:
                await self._join("init", "")
                await self._call("heartbeat", str(int(self.heartbeat * 5000)))
            except Unavailable as exc:
                raise QuotaError(
                    f"the shared quota's Redis at {self.url} is unreachable: {exc}"
                ) from None
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeats)
                tg.start_soon(self._listen)
                tg.start_soon(self._dispatch)
                tg.start_soon(self._reconcile)
                task_status.started()
        finally:
            if self._own_client:
                with anyio.CancelScope(shield=True):
                    await self._redis.aclose()

    async def _join(self, op: str, old: str) -> bool:
        """Join (``init``) or restart (``rejoin``) the namespace's epoch; ``True`` when this
        process started a new one."""
        candidate = uuid.uuid4().hex
        answer = await self._eval(
            op, old, self.holder, self._config, candidate, str(2 * self.heartbeat)
        )
        if text(answer[0]) == "conflict":
            raise QuotaError(
                f"another process shares this account's quota on Redis with {text(answer[1])}; "
                f"this process has {self._config}; give every process the same Quota"
            )
        self._epoch = text(answer[1])
        return self._epoch == candidate

    # -- QuotaBackend ------------------------------------------------------------------------

    def lease(
        self, pool: str, capacity: int, request: Request, key: str, *, alone: bool = False
    ) -> Lease:
        return Lease(key, pool, capacity, request, alone_if_too_large=alone)

    async def acquire(self, lease: Lease) -> None:
        is_auto = lease.is_auto
        if is_auto:
            cost = MIN_SERIES
        else:
            price = request_cost(lease.request, _FIXED)
            cost = price() if callable(price) else price
        if lease.alone_if_too_large:
            cost = min(cost, lease.capacity)
        if cost > lease.capacity:
            raise QuotaError(
                f"a request costing {cost} slots can never start in pool {lease.pool} of "
                f"{lease.capacity} slots; raise the quota for this pool or lower n/series_amount"
            )
        waiting = self._waiting[lease.key] = Waiting(lease)
        queued = self._queued.setdefault(lease.key, Queued())
        try:
            enqueued = False
            while not waiting.granted:
                if not enqueued or waiting.requeue:
                    waiting.requeue = False
                    try:
                        answer = await self._call(
                            "enqueue",
                            lease.pool,
                            str(lease.capacity),
                            lease.key,
                            str(cost),
                            "1" if is_auto else "0",
                            lease.request.kind,
                            str(queued.ticket),
                            repr(queued.since),
                            str(lease.refused),
                        )
                    except Unavailable:
                        await self._up.wait()
                        continue
                    except EpochLost:
                        await self._rejoin()
                        continue
                    if answer[0] == "conflict":
                        raise QuotaError(
                            f"pool {lease.pool} has {text(answer[1])} slots on Redis (set by "
                            f"another process of this account); this process has "
                            f"{lease.capacity}; give every process the same Quota"
                        )
                    queued.ticket, queued.since = int(answer[3]), float(text(answer[4]))
                    enqueued = True
                    continue
                await waiting.event.wait()
                waiting.event = anyio.Event()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._send("cancel", lease.pool, lease.key)
            raise
        finally:
            self._waiting.pop(lease.key, None)
        lease.cost, lease.overbooked = waiting.granted, waiting.overbooked

    async def created(self, lease: Lease) -> None:
        self._queued.pop(lease.key, None)
        self._held[lease.key] = Held(
            lease.pool, lease.cost, lease.request.kind, lease.is_auto, lease.task_id or ""
        )
        lease.started = anyio.current_time()
        await self._send(
            "created",
            lease.pool,
            lease.key,
            lease.task_id or "",
            str(lease.cost),
            "1" if lease.is_auto else "0",
            lease.request.kind,
        )

    async def refused(self, lease: Lease) -> None:
        await self._send("refused", lease.pool, lease.key, "0" if lease.is_auto else "1")
        lease.refused = max(lease.refused, lease.cost)

    async def wait_for_release(self, lease: Lease, patience: float) -> None:
        with anyio.move_on_after(patience):
            await self._released.wait()

    async def abandon(self, lease: Lease) -> None:
        self._queued.pop(lease.key, None)
        if lease.cost:
            await self._send("release", lease.pool, lease.key, "0", "-1")

    async def occupy(self, lease: Lease, cost: int | None) -> None:
        if cost is None and not lease.is_auto:
            price = request_cost(lease.request, _FIXED)
            cost = price() if callable(price) else price
        lease.started = anyio.current_time()
        if lease.task_id and self._context is not None:
            # A task an earlier run created may have ended while nobody followed it, and a live
            # process may already have released its lease: counting it again would hold slots
            # nobody holds until the first poll. Ask the server first.
            state = await lookup(self._context.lookup, lease.request.kind, lease.task_id, False)
            if state in ("ended", "missing"):
                lease.cost = cost or MIN_SERIES
                return
        auto = "1" if lease.is_auto else "0"
        args = (lease.pool, str(lease.capacity), lease.key, str(cost or 0), auto)
        while True:
            try:
                answer = await self._call("occupy", *args, lease.request.kind, lease.task_id or "")
                break
            except Unavailable:
                await self._up.wait()
            except EpochLost:
                await self._rejoin()
        lease.cost = int(answer[1])
        self._held[lease.key] = Held(
            lease.pool, lease.cost, lease.request.kind, lease.is_auto, lease.task_id or ""
        )

    async def ended(self, lease: Lease, *, images: int | None, seconds: float) -> None:
        self._held.pop(lease.key, None)
        self.durations.observe(lease.pool, seconds)
        await self._send("release", lease.pool, lease.key, str(images or 0), repr(seconds))

    def snapshot(self) -> dict[str, PoolSnapshot]:
        return dict(self._figures)

    # -- calls -------------------------------------------------------------------------------

    async def _eval(self, *args: str) -> list[Any]:
        try:
            answer = await self._script(keys=[self._epoch_key], args=list(args))
        except self._redis_errors as exc:
            self._went_down(exc)
            raise Unavailable(str(exc)) from None
        return list(answer)

    async def _call(self, op: str, *args: str) -> list[Any]:
        """Run one operation of the script under this process's epoch and holder id."""
        try:
            answer = await self._script(
                keys=[self._epoch_key], args=[op, self._epoch, self.holder, *args]
            )
        except self._redis_errors as exc:
            self._went_down(exc)
            raise Unavailable(str(exc)) from None
        answer = list(answer)
        if answer and text(answer[0]) == "epoch":
            raise EpochLost
        answer[0] = text(answer[0])
        if answer[0] == "ok" and len(answer) >= 3:  # this holder's grants and the figures
            self._note_figures(answer[2])
            self._deliver(answer)
        return answer

    async def _send(self, op: str, *args: str) -> None:
        """An observation that must reach Redis: sent now, or kept (in order) until Redis is
        back; after a restart of Redis, sent under the new epoch."""
        if self._pending or not self._up.is_set():
            self._pending.append((op, *args))
            return
        try:
            await self._call(op, *args)
        except Unavailable:
            self._pending.append((op, *args))
        except EpochLost:
            self._pending.append((op, *args))
            await self._rejoin()

    async def _flush(self) -> None:
        while self._pending:
            op, *args = self._pending[0]
            await self._call(op, *args)
            self._pending.pop(0)

    def _went_down(self, exc: BaseException) -> None:
        if self._up.is_set():
            self._up = anyio.Event()
            _log.warning(
                "Redis at %s is unreachable (%s): creating nothing until it is back; running "
                "tasks are still followed",
                self.url,
                exc,
            )

    def _deliver(self, answer: list[Any]) -> None:
        grants = answer[1]
        for i in range(0, len(grants), 2):
            waiting = self._waiting.get(text(grants[i]))
            if waiting is not None and not waiting.granted:
                cost, _, overbooked = text(grants[i + 1]).partition(":")
                waiting.granted, waiting.overbooked = int(cost), bool(overbooked)
                waiting.event.set()

    def _note_figures(self, figures: list[Any]) -> None:
        for pool, capacity, in_use, hidden, waiting, mine, peak in figures:
            name = text(pool)
            self._figures[name] = PoolSnapshot(
                capacity=int(capacity),
                in_use=int(mine),
                waiting=int(waiting),
                hidden=int(hidden),
                peak=int(peak),
                others=int(in_use) - int(mine),
            )

    async def _rejoin(self) -> None:
        """Redis lost its state: start (or join) a new epoch, then re-register every lease this
        process holds and put its waiters back in the queue, in their old order."""
        async with self._rejoining:
            old = self._epoch
            try:
                await self._call("heartbeat", str(int(self.heartbeat * 5000)))
                return  # another call of this process already rejoined
            except EpochLost:
                pass
            started = await self._join("rejoin", old)
            _log.warning(
                "Redis lost the shared quota's state (restarted empty?): re-registered %d "
                "lease(s) of this process under a new epoch",
                len(self._held),
            )
            await self._call("heartbeat", str(int(self.heartbeat * 5000)))
            for key, held in list(self._held.items()):
                await self._call(
                    "occupy",
                    held.pool,
                    str(self._capacity(held.pool)),
                    key,
                    str(held.cost),
                    "1" if held.auto else "0",
                    held.kind,
                    held.task_id,
                )
            if started:
                await self._adopt_running_tasks()
            for waiting in self._waiting.values():
                waiting.requeue = True
                waiting.event.set()

    async def _adopt_running_tasks(self) -> None:
        """After starting a new epoch: count the tasks the server lists as running that no live
        process re-registered (their process died while Redis lost its state), at one slot
        each, in the pool of their kind where this process knows exactly one; more slots they
        hold show up as 1303s (hidden slots) until they end."""
        assert self._context is not None
        if self._context.running is None:
            return
        pools: dict[Kind, set[str]] = {}
        for held in self._held.values():
            pools.setdefault(held.kind, set()).add(held.pool)
        for waiting in self._waiting.values():
            pools.setdefault(waiting.lease.request.kind, set()).add(waiting.lease.pool)
        adopted = 0
        for kind, names in sorted(pools.items()):
            if len(names) != 1:
                continue
            [pool] = names
            try:
                tasks = await self._context.running(kind)
            except Exception as exc:  # the list proves nothing: 1303s will show the slots
                _log.info("could not list running %s tasks to rebuild the pool: %s", kind, exc)
                continue
            for task_id, external_task_id in tasks:
                answer = await self._call(
                    "adopt",
                    pool,
                    str(self._capacity(pool)),
                    external_task_id or task_id,
                    task_id,
                    kind,
                )
                adopted += int(answer[1])
        if adopted:
            _log.warning(
                "counted %d running task(s) no live process holds (from the server's task list)",
                adopted,
            )

    def _capacity(self, pool: str) -> int:
        figures = self._figures.get(pool)
        return figures.capacity if figures is not None else 0

    # -- background loops --------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        ttl = str(int(self.heartbeat * 5000))
        while True:
            await anyio.sleep(self.heartbeat)
            try:
                if not self._up.is_set():
                    await self._redis.ping()
                    await self._call("heartbeat", ttl)
                    await self._flush()
                    _log.warning("Redis at %s is back: creating again", self.url)
                    self._up.set()
                    for waiting in self._waiting.values():
                        waiting.requeue = True
                        waiting.event.set()
                else:
                    await self._call("heartbeat", ttl)
            except self._redis_errors as exc:
                self._went_down(exc)
            except Unavailable:
                pass
            except EpochLost:
                try:
                    await self._rejoin()
                    await self._flush()
                except (Unavailable, EpochLost):
                    pass

    async def _listen(self) -> None:
        """Wake waiters on grants and releases announced by any process."""
        channel = self._epoch_key.removesuffix(":epoch") + ":ch"
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(channel)
                    async for message in pubsub.listen():
                        if message["type"] != "message":
                            continue
                        if message["data"] == b"r":
                            released, self._released = self._released, anyio.Event()
                            released.set()
                        self._kick.set()
            except self._redis_errors as exc:
                self._went_down(exc)
                await anyio.sleep(self.heartbeat)

    async def _dispatch(self) -> None:
        """Collect grants for this process's waiters when woken (or every half second, for
        the time-based rules: patience, probing)."""
        while True:
            with anyio.move_on_after(0.5):
                await self._kick.wait()
            self._kick = anyio.Event()
            pools = sorted({w.lease.pool for w in self._waiting.values()} | self._pools_held())
            if not pools or not self._up.is_set():
                continue
            try:
                await self._call("pass", *pools)
            except (Unavailable, EpochLost):
                continue

    def _pools_held(self) -> set[str]:
        return {held.pool for held in self._held.values()}

    async def _reconcile(self) -> None:
        """Release the leases of dead holders whose tasks the server says ended (or never
        existed); one process at a time does it (a lock key)."""
        assert self._context is not None
        ask = self._context.lookup
        lock = self._epoch_key.removesuffix(":epoch") + ":reconciling"
        while True:
            await anyio.sleep(2.5 * self.heartbeat)
            if not self._up.is_set():
                continue
            try:
                if not await self._redis.set(lock, self.holder, nx=True, px=30_000):
                    continue
                try:
                    answer = await self._call("orphans")
                    orphans = answer[1]
                    for i in range(0, len(orphans), 5):
                        pool, key, kind, task_id, _state = (text(x) for x in orphans[i : i + 5])
                        state = await lookup(ask, kind, task_id or key, not task_id)  # type: ignore[arg-type]
                        if state in ("ended", "missing"):
                            await self._call("release", pool, key, "0", "-1")
                            _log.info(
                                "released %s's slots in pool %s: its holder is gone and the "
                                "server says the task %s",
                                key,
                                pool,
                                "ended" if state == "ended" else "does not exist",
                            )
                finally:
                    await self._redis.delete(lock)
            except self._redis_errors as exc:
                self._went_down(exc)
            except (Unavailable, EpochLost):
                continue
