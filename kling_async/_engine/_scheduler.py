"""Admission and concurrency: requests pulled lazily, each admitted by the quota, created, and
followed to an :class:`Outcome`. The scheduler is the only part that starts tasks: its task
group runs the tracker's pollers, and each ``stream()`` runs its lifecycle workers in a task
group of its own.
"""

from __future__ import annotations

import contextvars
import logging
import math
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from decimal import Decimal
from typing import Any, Self

import anyio
import anyio.lowlevel
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import (
    AuthenticationError,
    ConcurrencyLimitError,
    DeadlineExceededError,
    EndpointError,
    KlingError,
    TaskFailedError,
)
from .._journal import Journal
from .._models import OmniImageRequest, OmniVideoRequest, Outcome, Request
from .._providers._api import ProviderAPI
from .._quota._backend import Lease, QuotaBackend, QuotaContext
from .._quota._config import Quota
from ._budget import UnitBudget, UnitEstimates, check_budget_units
from ._creator import Creator
from ._progress import Progress, ProgressMeter
from ._stats import Counters
from ._tracker import Tracked, Tracker

__all__ = ["Scheduler"]

_quota_log = logging.getLogger("kling_async.quota")
_log = logging.getLogger("kling_async.client")

_Job = tuple[int, Request, str | None]  # a stream request: input position, request, key
_PULLS_PER_PASS = 4  # stream(): requests pulled per pass of the event loop at most


@attrs.frozen
class _Run:
    """What one ``stream()`` was given: its deadline (event-loop time), keys, unit budget and
    progress meter."""

    until: float | None
    keys: Callable[[int, Request], str] | None
    budget: UnitBudget | None
    meter: ProgressMeter | None


@attrs.define
class Scheduler:
    """Creates requests under quota and runs streams of them.

    Args:
        api: The wire API (it checks and encodes requests; its traits name pools).
        backend: The quota backend (the configured slots are ``limits``).
        limits: The configured slots (``Quota``).
        creator: Sends creates and resumes journalled ones.
        tracker: Follows created tasks.
        lookahead: Requests a stream pulls ahead of those running.
        journal: The journal, or None.
        callback_url: A URL given to creates that have none (a callback receiver), or None.
        estimates: Units per request, learnt from the charges of ended tasks, for budgets.
        stats: The client's counters, told of each request queued, granted, refused, dropped.
    """

    api: ProviderAPI
    backend: QuotaBackend
    limits: Quota
    creator: Creator
    tracker: Tracker
    lookahead: int
    journal: Journal | None = None
    callback_url: str | None = None
    estimates: UnitEstimates = attrs.field(factory=UnitEstimates)
    _stats: Counters = attrs.field(kw_only=True)
    _tg: TaskGroup | None = None

    @asynccontextmanager
    async def running(self, context: QuotaContext) -> AsyncIterator[Self]:
        """The background task group (pollers, callback confirmations, the quota backend's own
        work) while the client is open; leaving it cancels them.

        Raises:
            QuotaError: the quota backend refused this client's quota (see its ``run``).
        """
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            try:
                await tg.start(self.backend.run, context)
            except Exception as exc:  # raised as itself below, not inside a group
                failure = exc
            else:
                self._tg = tg
                try:
                    yield self
                finally:
                    self._tg = None
                    tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        """Start ``func(*args)`` in the background task group."""
        if self._tg is None:
            raise RuntimeError("KlingClient is not open")
        # In an empty context: background work (a poller serving every request) inherits no
        # caller's context variables, such as the span of the request that started it.
        contextvars.Context().run(self._tg.start_soon, func, *args)

    # -- one request -------------------------------------------------------------------------

    async def submit(
        self,
        request: Request,
        admitted: Callable[[], None] | None,
        key: str | None = None,
        budget: UnitBudget | None = None,
    ) -> Tracked:
        """Create ``request`` once its pool has room (re-queued on 1303), or re-attach to what
        the journal knows of it; ``admitted()`` is called once it holds its slots. A create
        first holds its estimate of ``budget`` (``Tracked.reservation``).

        Raises:
            BudgetExceededError: ``budget`` has no room for it; nothing was sent.
        """
        self.api.check(request)
        traits = self.api.traits
        external_task_id = request.external_task_id or key or f"ka-{uuid.uuid4().hex}"
        pool = traits.pool_name(request.model_name, request.kind)
        capacity = traits.pool_capacity(self.limits, request.model_name, request.kind)
        lease = self.backend.lease(
            pool, capacity, request, external_task_id, alone=traits.shares_one_pool
        )
        self._stats.queued(lease)
        try:
            resumed = None
            if self.journal is not None:
                resumed = await self.creator.resume(request, lease)
            if resumed is not None:
                if admitted is not None:
                    admitted()
                if budget is not None and not resumed.done.is_set():
                    # Created by an earlier run and still running: charged now, so counted.
                    resumed.reservation = budget.adopt(request)
                return resumed
            reservation = None if budget is None else await budget.reserve(request)
            try:
                tracked = await self._create(request, lease, external_task_id, admitted)
            except BaseException:
                if budget is not None and reservation is not None:
                    budget.release(reservation)  # nothing was created
                raise
        except BaseException as exc:
            self._stats.abandoned(lease, exc)  # its span ends: no task
            raise
        tracked.reservation = reservation
        return tracked

    async def _create(
        self,
        request: Request,
        lease: Lease,
        external_task_id: str,
        admitted: Callable[[], None] | None,
    ) -> Tracked:
        pool = lease.pool
        wire_request = request
        if self.callback_url is not None and request.callback_url is None:
            wire_request = attrs.evolve(request, callback_url=self.callback_url)
        if request.has_local_media:  # reading and encoding files blocks: off the loop
            body = await anyio.to_thread.run_sync(self.api.encode, wire_request, external_task_id)
        else:
            body = self.api.encode(wire_request, external_task_id)
        stats = self._stats
        backoff = 0.25
        while True:
            await self.backend.acquire(lease)
            stats.granted(lease)
            if admitted is not None:
                admitted()
            try:
                # Shielded: once a create is on the wire, see it through and track the task,
                # so a cancelled stream never leaves an untracked task holding paid slots.
                with anyio.CancelScope(shield=True):
                    with stats.within(lease):
                        task = await self.creator.create(
                            request, body, external_task_id, lease.cost
                        )
                        lease.task_id = task.task_id
                        await self.backend.created(lease)
                        _log.info(
                            "task %s created (external_task_id %s, %s, %d slot(s) of pool %s)",
                            task.task_id,
                            external_task_id,
                            request.kind,
                            lease.cost,
                            pool,
                        )
                    # Outside the request's span: pollers it starts belong to no request.
                    return self.tracker.track(task, lease, request)
            except ConcurrencyLimitError:
                # The server is the source of truth: wait for a slot and try again.
                await self.backend.refused(lease)
                stats.refused(lease)
                _quota_log.info(
                    "create %s refused for a full pool %s (1303 at %d slot(s)): re-queued",
                    external_task_id,
                    pool,
                    lease.cost,
                )
                await self.backend.wait_for_release(lease, backoff)
                backoff = min(backoff * 2, 4.0)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.backend.abandon(lease)
                raise

    # -- streams -------------------------------------------------------------------------------

    @asynccontextmanager
    async def stream(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        deadline: float | None,
        keys: Callable[[int, Request], str] | None,
        budget_units: Decimal | None = None,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> AsyncIterator[Outcomes]:
        """See :meth:`KlingClient.stream`."""
        budget = None
        traits = self.api.traits
        check_budget_units(budget_units, reports_units=traits.reports_units, wire_api=traits.name)
        if budget_units is not None:
            budget = UnitBudget(budget_units, self.estimates)
        meter = ProgressMeter(on_progress) if on_progress is not None else None
        if meter is not None:
            requests = meter.counting(requests)
        # Unbounded: a slow reader never held anything back (a request leaves the lookahead
        # window when it gets its slots, not when its outcome is read), so a bounded buffer
        # only parked the outcomes of a burst (one list poll ends dozens of tasks) in blocked
        # lifecycles, each with an Event and a wake-up of its own.
        send, receive = anyio.create_memory_object_stream[Outcome](math.inf)
        try:
            until = None if deadline is None else anyio.current_time() + deadline
            run = _Run(until, keys, budget, meter)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._feed, requests, send, tg, run)
                if meter is not None:
                    tg.start_soon(meter.run)
                try:
                    async with receive:
                        yield Outcomes(receive)
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _collapse(group) from None
        finally:
            if meter is not None:
                meter.finish()

    async def _feed(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        send: MemoryObjectSendStream[Outcome],
        tg: TaskGroup,
        run: _Run,
    ) -> None:
        """Pull requests into the lookahead window and hand each to a lifecycle worker: an
        idle one if any waits, else a new one. Workers are reused, so a run spawns about as
        many tasks as lifecycles run at once, not one per request (spawning an anyio task
        costs more than the rest of the hand-over)."""
        # fast_acquire: taking a free place does not yield to the event loop (a pass of the
        # loop per request); pulling stops at the next await whenever the window is full.
        window = anyio.Semaphore(self.lookahead, fast_acquire=True)
        items = _aiter(requests)
        idle = _IdleWorkers()
        # Leaving ``idle`` at the end ends the idle workers; busy ones end after their job.
        async with send, idle:
            index = 0
            while True:
                await window.acquire()  # take a place in the window before pulling
                try:
                    request = await anext(items)
                except StopAsyncIteration:
                    break
                if not isinstance(request, OmniImageRequest | OmniVideoRequest):
                    raise TypeError(
                        f"requests[{index}]: expected OmniImageRequest or OmniVideoRequest, "
                        f"got {type(request).__name__}"
                    )
                key = run.keys(index, request) if run.keys is not None else None
                job = (index, request, key)
                if not idle.hand_over(job):
                    tg.start_soon(self._worker, job, idle, send.clone(), window, run)
                index += 1
                if index % _PULLS_PER_PASS == 0:
                    # Let answers that arrived be read before more creates start: a window
                    # filled in one pass starts its creates in one burst, whose allocations
                    # ran the garbage collector 2.5 times as often and delayed polls.
                    await anyio.lowlevel.checkpoint()

    async def _worker(
        self,
        job: _Job,
        idle: _IdleWorkers,
        send: MemoryObjectSendStream[Outcome],
        window: anyio.Semaphore,
        run: _Run,
    ) -> None:
        """Run the lifecycle of ``job``, then of each job the feeder hands over, until the
        feeder is done."""
        async with send:
            next_job: _Job | None = job
            while next_job is not None:
                await self._lifecycle(*next_job, send, window, run)
                next_job = await idle.next_job()

    async def _lifecycle(
        self,
        index: int,
        request: Request,
        key: str | None,
        send: MemoryObjectSendStream[Outcome],
        window: anyio.Semaphore,
        run: _Run,
    ) -> None:
        released = False

        def admitted() -> None:
            # The request left the lookahead window: let the feeder pull the next one.
            nonlocal released
            if not released:
                released = True
                window.release()
                if run.meter is not None:
                    run.meter.admitted()

        try:
            outcome, earlier = await self._run_one(index, request, admitted, run, key)
        finally:
            admitted()
        if run.meter is not None:
            run.meter.outcome(outcome, earlier=earlier)
        try:
            send.send_nowait(outcome)  # a reader waits or the buffer has room: no yield
        except anyio.WouldBlock:
            await send.send(outcome)

    async def _run_one(
        self,
        index: int,
        request: Request,
        admitted: Callable[[], None],
        run: _Run,
        key: str | None,
    ) -> tuple[Outcome, bool]:
        """The request's outcome, and whether an earlier run saw its task end (the journal
        had its result: nothing of it is charged in this run)."""
        tracked: Tracked | None = None
        try:
            with _deadline(run.until):
                # The create itself is shielded in submit(): the deadline never cuts one in half.
                tracked = await self.submit(request, admitted, key, run.budget)
        except (AuthenticationError, EndpointError):
            raise  # bad credentials, or an API not there, make the whole batch pointless
        except KlingError as exc:
            return Outcome(request=request, index=index, error=exc), False
        if tracked is None:
            error = DeadlineExceededError(
                "the run's deadline passed before this request was created; nothing was sent"
            )
            return Outcome(request=request, index=index, error=error), False
        earlier = tracked.done.is_set()
        reservation, budget = tracked.reservation, run.budget
        if reservation is None or budget is None:
            return await self._follow(index, request, tracked, run.until), earlier
        outcome: Outcome | None = None
        try:
            outcome = await self._follow(index, request, tracked, run.until)
        finally:
            if outcome is None:
                budget.release(reservation)  # the stream was left: it no longer counts
            else:
                budget.settle(reservation, outcome.result, tracked.task.task_id)
        return outcome, earlier

    async def _follow(
        self, index: int, request: Request, tracked: Tracked, until: float | None
    ) -> Outcome:
        """Wait for a created task's end (or the run's deadline) and make its outcome."""
        task = tracked.task
        try:
            result = await self.tracker.wait(tracked, until)
        except TaskFailedError as exc:
            return Outcome(
                request=request, index=index, task=task, result=tracked.result, error=exc
            )
        except KlingError as exc:
            return Outcome(request=request, index=index, task=task, error=exc)
        return Outcome(request=request, index=index, task=task, result=result)


class Outcomes:
    """The outcomes of one :meth:`KlingClient.stream`, as an async iterator: each as soon as
    its task ends. An outcome already waiting is returned without first yielding to the event
    loop (as ``asyncio.Queue.get`` does), so outcomes of tasks that ended together (one list
    poll ends dozens) are read in one go."""

    def __init__(self, receive: MemoryObjectReceiveStream[Outcome]) -> None:
        self._receive = receive

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def receive(self) -> Outcome:
        """The next outcome.

        Raises:
            anyio.EndOfStream: every request has its outcome.
        """
        try:
            return self._receive.receive_nowait()
        except anyio.WouldBlock:
            return await self._receive.receive()

    def receive_nowait(self) -> Outcome:
        """The next outcome if one is waiting.

        Raises:
            anyio.WouldBlock: none is waiting yet.
            anyio.EndOfStream: every request has its outcome.
        """
        return self._receive.receive_nowait()


class _IdleWorkers:
    """The lifecycle workers of one stream waiting for a request, and the hand-over to one.

    A memory object stream did the same with a pass of the event loop and an exception more
    per request (its ``receive()`` always yields first)."""

    def __init__(self) -> None:
        self._waiting: list[tuple[anyio.Event, list[_Job]]] = []
        self._closed = False

    def hand_over(self, job: _Job) -> bool:
        """Give ``job`` to a waiting worker; ``False`` when none waits."""
        if not self._waiting:
            return False
        woken, slot = self._waiting.pop()
        slot.append(job)
        woken.set()
        return True

    async def next_job(self) -> _Job | None:
        """Wait for the next job; ``None`` once the feeder is done."""
        if self._closed:
            return None
        entry: tuple[anyio.Event, list[_Job]] = (anyio.Event(), [])
        self._waiting.append(entry)
        try:
            await entry[0].wait()
        finally:
            if not entry[0].is_set():  # cancelled while waiting
                self._waiting.remove(entry)
        return entry[1][0] if entry[1] else None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """The feeder is done: every waiting worker (and any that asks later) gets ``None``."""
        self._closed = True
        waiting, self._waiting = self._waiting, []
        for woken, _ in waiting:
            woken.set()


def _deadline(until: float | None) -> AbstractContextManager[object]:
    """A cancel scope ending at ``until`` (event-loop time), or nothing when there is none."""
    return nullcontext() if until is None else anyio.CancelScope(deadline=until)


_RUN_ENDING = (AuthenticationError, EndpointError)


def _collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one real error of a task group's exception group (aiometer's collapse): the user
    sees ``AuthenticationError``, not ``ExceptionGroup([AuthenticationError])``."""
    real = [e for e in group.exceptions if not isinstance(e, anyio.get_cancelled_exc_class())]
    real = [_collapse(e) if isinstance(e, BaseExceptionGroup) else e for e in real]
    if len(real) == 1 or (real and all(isinstance(e, _RUN_ENDING) for e in real)):
        return real[0]  # several lifecycles met the same bad credentials (or address) at once
    return group


async def _aiter(items: Iterable[Request] | AsyncIterable[Request]) -> AsyncIterator[Request]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
