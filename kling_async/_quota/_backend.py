"""The quota seam: the ``QuotaBackend`` protocol and the in-process backend behind it.

Everything the client asks of the quota goes through these few calls, keyed by the remote task's
key (its ``external_task_id``), so a backend that shares one account's quota between processes
(on Redis, say) can replace the in-process one without the client changing:

- :meth:`~QuotaBackend.lease` once per request, then :meth:`~QuotaBackend.acquire` (wait for
  slots) before each create attempt;
- the create's answer: :meth:`~QuotaBackend.created`, :meth:`~QuotaBackend.refused` (a 1303 at
  the lease's cost) or :meth:`~QuotaBackend.abandon` (nothing was created);
- :meth:`~QuotaBackend.occupy` for a task an earlier run created (it holds its slots already);
- :meth:`~QuotaBackend.ended` when the task ended, with the images an ``auto`` series produced;
- :meth:`~QuotaBackend.snapshot` for stats;
- :meth:`~QuotaBackend.run` in the background while the client is open (a shared backend's
  heartbeat and wake-ups).

:class:`LocalQuota` keeps one :class:`~._policy.PoolLimiter` per pool (which runs the policy,
:func:`~._decide.decide`), the ``auto``-series estimate and the pools' task durations
(:class:`~._durations.Durations`, read by the policy and by the engine's polling cadence), all in
this process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import anyio
import anyio.abc
import attrs

from .._models import Kind, OmniImageRequest, Request
from ._config import Quota
from ._decide import MAX_SERIES, MIN_SERIES, expected_frees
from ._durations import Durations
from ._policy import AutoSeriesEstimator, PoolLimiter, request_cost

__all__ = ["Lease", "LocalQuota", "PoolSnapshot", "QuotaBackend", "QuotaContext"]


@attrs.define(eq=False)
class Lease:
    """One request's claim on its pool, from before its create until its task ends.

    Attributes:
        key: The remote task's key (``external_task_id``).
        pool: The pool's name (``"kling-v3-omni:image"``, ``"modellix:team"``).
        capacity: The pool's slots.
        request: The request.
        alone_if_too_large: A request costing more than the pool runs alone (a team pool)
            instead of being refused.
        cost: Slots granted by the last :meth:`QuotaBackend.acquire` (0 before).
        overbooked: Whether that grant overbooked slots ``auto`` series reserved.
        refused: Most slots a create of this request was refused (1303) with.
        since: When the request first waited (``anyio.current_time()`` seconds).
        started: When its task was created or re-attached.
        task_id: Its task's id once created (or re-attached).
        ticket: Its place in the pool's queue (arrival order, kept across 1303s).
    """

    key: str
    pool: str
    capacity: int
    request: Request
    alone_if_too_large: bool = False
    cost: int = 0
    overbooked: bool = False
    refused: int = 0
    since: float = attrs.field(factory=anyio.current_time)
    started: float = 0.0
    ticket: int = 0
    task_id: str | None = None

    @property
    def is_auto(self) -> bool:
        """Whether the server decides the slots at create (``series_amount="auto"``)."""
        return isinstance(self.request, OmniImageRequest) and self.request.is_auto_series


@attrs.frozen(kw_only=True)
class PoolSnapshot:
    """Figures of one pool: ``capacity``, slots ``in_use`` by this process, requests
    ``waiting``, slots ``hidden`` (held outside the backend's count, as 1303s proved), ``peak``
    slots held, and on a shared backend the slots held by ``others`` (other processes)."""

    capacity: int
    in_use: int
    waiting: int
    hidden: int
    peak: int
    others: int = 0


@attrs.frozen
class QuotaContext:
    """What a backend learns of the client when it opens (:meth:`QuotaBackend.run`).

    Attributes:
        account: Who shares the quota, never a secret: the wire API, base URL and key id (a
            hash of an API key), joined; a shared backend namespaces its state by it.
        limits: The client's :class:`Quota`.
        lookup: ``await lookup(kind, id, external)`` → ``"running"``, ``"ended"`` or
            ``"missing"`` (the server has no such task) for a task id, or an
            ``external_task_id`` when ``external``; raises :class:`KlingError` when the server
            cannot tell.
        running: ``await running(kind)`` → ``(task_id, external_task_id)`` of the account's
            tasks of ``kind`` the server lists as still running (``[]`` where the wire API
            has no list query), for rebuilding a shared pool that lost its state.
    """

    account: str
    limits: Quota
    lookup: Callable[[Kind, str, bool], Awaitable[Literal["running", "ended", "missing"]]]
    running: Callable[[Kind], Awaitable[list[tuple[str, str | None]]]] | None = None


class QuotaBackend(Protocol):
    """Where the slot arithmetic happens; every call may wait on I/O in a shared backend."""

    def lease(
        self, pool: str, capacity: int, request: Request, key: str, *, alone: bool = False
    ) -> Lease:
        """A lease for ``request`` (not yet holding slots)."""
        ...

    async def acquire(self, lease: Lease) -> None:
        """Wait until slots are granted; sets ``lease.cost`` and ``lease.overbooked``.

        Raises:
            QuotaError: the request can never fit its pool.
        """
        ...

    async def created(self, lease: Lease) -> None:
        """The create succeeded: the task holds ``lease.cost`` slots until it ends."""
        ...

    async def refused(self, lease: Lease) -> None:
        """The create was refused for a full pool (1303 at ``lease.cost``): the slots go back,
        and what the refusal proves about slots held elsewhere is learnt."""
        ...

    async def wait_for_release(self, lease: Lease, patience: float) -> None:
        """After a refusal: wait until a task of the pool ends, or ``patience`` seconds."""
        ...

    async def abandon(self, lease: Lease) -> None:
        """Nothing was created (an error, or cancellation): the slots go back."""
        ...

    async def occupy(self, lease: Lease, cost: int | None) -> None:
        """A task an earlier run created holds ``cost`` slots (None: as many as the request
        is priced at now): count them without waiting; sets ``lease.cost``."""
        ...

    async def ended(self, lease: Lease, *, images: int | None, seconds: float) -> None:
        """The task ended after ``seconds``; an ``auto`` series made ``images`` (None: unknown)."""
        ...

    def snapshot(self) -> dict[str, PoolSnapshot]:
        """Figures per pool (as last seen, on a shared backend)."""
        ...

    async def run(self, context: QuotaContext, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Background work while the client is open (started by the client, cancelled when it
        closes): call ``task_status.started()`` once ready; may return after.

        Raises:
            QuotaError: the backend refuses this client's :class:`Quota`.
        """
        ...


@attrs.define
class LocalQuota:
    """The in-process :class:`QuotaBackend` (the default): one :class:`PoolLimiter` per pool.

    Args:
        hol_patience: ``Quota.hol_patience`` of every pool.
        auto_series_estimate: ``Quota.auto_series_estimate``: first reservation of an
            ``auto`` series.
        clock: Seconds for waiting times and task starts; default ``anyio.current_time``
            (a test or a simulation passes a virtual one).

    Attributes:
        durations: How long each pool's tasks held their slots, written by :meth:`ended`;
            the policy and the client's polling cadence read it.
    """

    hol_patience: float | str | None = "auto"
    auto_series_estimate: int = MAX_SERIES
    clock: Callable[[], float] = anyio.current_time
    durations: Durations = attrs.field(factory=Durations)
    _pools: dict[str, PoolLimiter] = attrs.field(factory=dict)
    _auto: dict[str, AutoSeriesEstimator] = attrs.field(factory=dict)
    _running: dict[str, dict[int, Lease]] = attrs.field(factory=dict)  # pool → id(lease) → lease
    _ticket: int = 0

    def pool(self, name: str, capacity: int) -> PoolLimiter:
        """The limiter of pool ``name`` (created with ``capacity`` slots on first use)."""
        limiter = self._pools.get(name)
        if limiter is None:
            limiter = PoolLimiter(name, capacity, hol_patience=self.hol_patience, clock=self.clock)  # type: ignore[arg-type]
            durations = self.durations[name]
            running: dict[int, Lease] = {}
            self._running[name] = running
            limiter.expected_duration = durations.mean
            limiter.expected_frees = lambda: expected_frees(
                [(lease.started, lease.cost) for lease in running.values()],
                durations.mean(),
                limiter.clock(),
            )
            self._pools[name] = limiter
            self._auto[name] = AutoSeriesEstimator(initial=self.auto_series_estimate)
        return limiter

    def lease(
        self, pool: str, capacity: int, request: Request, key: str, *, alone: bool = False
    ) -> Lease:
        self.pool(pool, capacity)
        self._ticket += 1
        return Lease(
            key,
            pool,
            capacity,
            request,
            alone_if_too_large=alone,
            ticket=self._ticket,
            since=self.clock(),
        )

    async def acquire(self, lease: Lease) -> None:
        limiter = self._pools[lease.pool]
        price: int | Callable[[], int] = request_cost(lease.request, self._auto[lease.pool])
        if lease.alone_if_too_large:  # a team pool: a large request runs alone
            price = _capped(price, limiter.capacity)
        upto: Callable[[], int] | None = None
        if lease.is_auto and callable(price):
            # The server decides an auto series' count at create and admits it if that many
            # slots are free: it may start in as few as 2 free slots and is granted up to the
            # estimator's reservation of what is free (rules PRICE and TAKE of the policy).
            upto, price = price, MIN_SERIES
        lease.cost = await limiter.acquire(
            price, ticket=lease.ticket, since=lease.since, upto=upto, refused=lease.refused
        )
        lease.overbooked = limiter.overbooking(lease.ticket)

    async def created(self, lease: Lease) -> None:
        self._pools[lease.pool].created(
            ticket=lease.ticket, auto_reserved=lease.cost if lease.is_auto else 0
        )
        self._hold(lease)

    async def refused(self, lease: Lease) -> None:
        self._pools[lease.pool].reject(
            lease.cost, ticket=lease.ticket, proves_hidden=not lease.is_auto
        )
        lease.refused = max(lease.refused, lease.cost)

    async def wait_for_release(self, lease: Lease, patience: float) -> None:
        await self._pools[lease.pool].wait_for_release(patience)

    async def abandon(self, lease: Lease) -> None:
        if lease.cost:
            self._pools[lease.pool].release(lease.cost, ticket=lease.ticket)

    async def occupy(self, lease: Lease, cost: int | None) -> None:
        if cost is None:
            price = request_cost(lease.request, self._auto[lease.pool])
            cost = price() if callable(price) else price
        lease.cost = cost
        self._pools[lease.pool].occupy(cost, auto_reserved=cost if lease.is_auto else 0)
        self._hold(lease)

    async def ended(self, lease: Lease, *, images: int | None, seconds: float) -> None:
        self._running[lease.pool].pop(id(lease), None)
        self.durations.observe(lease.pool, seconds)
        if lease.is_auto and images is not None:
            self._auto[lease.pool].observe(images)
        self._pools[lease.pool].release(
            lease.cost, ticket=lease.ticket, series=(lease.cost, images) if lease.is_auto else None
        )

    async def run(
        self,
        context: QuotaContext,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()  # nothing runs in the background in process

    def snapshot(self) -> dict[str, PoolSnapshot]:
        return {
            name: PoolSnapshot(
                capacity=p.capacity,
                in_use=p.in_use,
                waiting=p.waiting,
                hidden=p.hidden,
                peak=p.peak,
            )
            for name, p in self._pools.items()
        }

    def _hold(self, lease: Lease) -> None:
        lease.started = self.clock()
        self._running[lease.pool][id(lease)] = lease


def _capped(price: int | Callable[[], int], capacity: int) -> int | Callable[[], int]:
    if callable(price):
        return lambda: min(price(), capacity)
    return min(price, capacity)
