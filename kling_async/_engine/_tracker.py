"""In-flight tasks, followed to their end: polls and callback hints learn that a task ended; the
tracker then frees its quota lease, journals the result and wakes whoever waits for it.

When to poll is decided here (per kind a tick at the pace of the tasks, ``_cadence``; where
requests are budgeted, each task on its own schedule, the most overdue first); how to ask is the
kind's polling strategy (``_polling``: list pages, unified batch queries or budgeted single
queries), chosen once from the wire API's traits. Queries use no quota.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Literal, assert_never

import anyio
import attrs

from .._errors import (
    AuthenticationError,
    InvalidRequestError,
    KlingError,
    TaskFailedError,
    TaskTimeoutError,
    UnknownStatusError,
)
from .._journal import Journal
from .._models import Kind, OmniImageRequest, Request, Task, TaskResult, TaskStatus
from .._providers._api import ProviderAPI
from .._quota._backend import Lease, QuotaBackend
from .._quota._durations import Durations, kept_by
from . import _cadence
from ._budget import Reservation
from ._polling import Strategy, strategies
from ._stats import Counters

__all__ = ["Tracked", "Tracker"]

_log = logging.getLogger("kling_async.client")

_FINISHED_KEPT = 1024  # results kept for wait() on tasks that already ended
_CALLBACK_POLL_FACTOR = 10.0  # with callbacks, polling is a slow safety net
# Budgeted polling (no list query) checks a task first after this many poll intervals while its
# pool has not seen a task end: with the default cadence 1 s after its create (4 x a quarter of
# 1 s), more for a task created while older ones of its kind run.
_FIRST_CHECK_FACTOR = 4.0

Spawn = Callable[..., None]


@attrs.define(eq=False)
class Tracked:
    """One task followed to its end (since ``lease.started``)."""

    task: Task
    lease: Lease
    series: bool = False  # a series request: Modellix answers need this to sort images
    next_check: float = 0.0  # budgeted polling: when to query this task next
    checks: int = 0  # queries that found it still running
    done: anyio.Event = attrs.field(factory=anyio.Event)
    result: TaskResult | None = None
    error: KlingError | None = None
    reservation: Reservation | None = None  # a stream's unit budget held for this create
    serial: int = 0  # creation order among the tracker's tasks (sizes list pages)


@attrs.define
class Tracker:
    """Follows every created task until the server reports it ended.

    Args:
        api: The wire API (its traits choose each kind's polling strategy).
        backend: Gets each ended task's lease back.
        spawn: Starts a background task (the scheduler's task group).
        poll_intervals: Seconds between polls per kind; None: at the pace of the tasks
            (see ``_cadence``).
        task_timeout: Seconds from create until :meth:`wait` gives up (None: never).
        journal: Where finished results are recorded, or None.
        callbacks: Whether a callback receiver feeds hints (polling then slows down).
        stats: The client's counters, told of each task followed, polled and ended.
    """

    api: ProviderAPI
    backend: QuotaBackend
    spawn: Spawn
    poll_intervals: dict[Kind, float | None]
    task_timeout: float | None = None
    journal: Journal | None = None
    callbacks: bool = False
    _stats: Counters = attrs.field(kw_only=True)
    _inflight: dict[str, Tracked] = attrs.field(factory=dict)
    _finished: OrderedDict[str, Tracked] = attrs.field(factory=OrderedDict)
    _durations: Durations = attrs.field(  # the quota backend's record, read by the cadence
        default=attrs.Factory(lambda self: kept_by(self.backend) or Durations(), takes_self=True)
    )
    _pollers: set[str] = attrs.field(factory=set)
    _confirming: set[str] = attrs.field(factory=set)
    _wakeup: anyio.Event = attrs.field(factory=anyio.Event)
    _created: int = 0  # tasks tracked so far: the next one's serial
    _polling: dict[Kind, Strategy] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        self._polling = strategies(self.api, self, self._stats)

    # -- what the client asks --------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Tasks created (or re-attached) and not yet seen ended."""
        return len(self._inflight)

    def get(self, task_id: str) -> Tracked | None:
        """The tracked task ``task_id``, running or recently ended."""
        return self._inflight.get(task_id) or self._finished.get(task_id)

    def track(self, task: Task, lease: Lease, request: Request) -> Tracked:
        """Follow ``task`` (created for ``request`` under ``lease``) until it ends."""
        tracked = Tracked(
            task,
            lease,
            series=isinstance(request, OmniImageRequest) and request.result_type == "series",
        )
        if not lease.started:  # a quota backend that does not note when tasks start
            lease.started = anyio.current_time()
        tracked.serial = self._created
        self._created += 1
        self._inflight[task.task_id] = tracked
        self._stats.tracked(lease, task.task_id)
        durations = self._durations[lease.pool]
        if self._polling[task.kind].per_task:
            interval = self.interval(task.kind)
            shortest = durations.shortest
            first = 0.8 * shortest if shortest else _FIRST_CHECK_FACTOR * interval
            tracked.next_check = lease.started + max(interval, first)
            self._wakeup.set()
            if "budgeted" not in self._pollers:
                self._pollers.add("budgeted")
                self.spawn(self._poll_budgeted)
        elif task.kind not in self._pollers:
            self._pollers.add(task.kind)
            self.spawn(self._poll_kind, task.kind)
        return tracked

    def finished_earlier(
        self, task: Task, lease: Lease, result: TaskResult | None, error: KlingError | None
    ) -> Tracked:
        """A task an earlier run saw end (from the journal): already done, holds nothing."""
        tracked = Tracked(task, lease, result=result, error=error)
        tracked.done.set()
        self._stats.ended(lease, result, error, earlier=True)
        return tracked

    async def query(self, kind: Kind, task_id: str, *, external: bool = False) -> TaskResult:
        """One query of ``task_id`` (an ``external_task_id`` with ``external``), parsed with
        what the tracker knows of it."""
        tracked = self.get(task_id)
        series = tracked.series if tracked else None
        with self._stats.within(tracked.lease if tracked else None):
            return await self.api.query(kind, task_id, series=series, external=external)

    async def task_state(
        self, kind: Kind, task_id: str, external: bool = False
    ) -> Literal["running", "ended", "missing"]:
        """Whether the server says ``task_id`` (an ``external_task_id`` with ``external``)
        still runs, ended, or does not exist (1203), for a shared quota's reconciliation.

        Raises:
            KlingError: the server could not tell (nothing is guessed).
        """
        try:
            result = await self.query(kind, task_id, external=external)
        except InvalidRequestError as exc:
            if exc.code not in (None, 1203):
                raise
            return "missing"
        return "ended" if result.status.is_terminal else "running"

    async def running_tasks(self, kind: Kind) -> list[tuple[str, str | None]]:
        """``(task_id, external_task_id)`` of every task of ``kind`` the account's listing
        shows still running; ``[]`` where the wire API has none (``ProviderAPI.list_running``).

        Raises:
            KlingError: a page could not be read.
        """
        return await self.api.list_running(kind)

    async def wait(self, tracked: Tracked, until: float | None = None) -> TaskResult:
        """The task's final result, waiting for it until ``until`` (``anyio.current_time()``)
        or ``task_timeout`` after its create.

        Raises:
            TaskFailedError: it ended failed.
            TaskTimeoutError: it was still running at the limit (its slots stay held).
            KlingError: it could no longer be followed.
        """
        limit = math.inf if until is None else until
        reason = "the run's deadline passed"
        if self.task_timeout is not None:
            created = tracked.task.created_at
            remaining = self.task_timeout
            if created is not None:
                age = (dt.datetime.now(dt.UTC) - created).total_seconds()
                remaining = max(0.0, self.task_timeout - max(0.0, age))
            if anyio.current_time() + remaining < limit:
                limit = anyio.current_time() + remaining
                reason = f"it did not end within task_timeout={self.task_timeout} s"
        if limit == math.inf:
            await tracked.done.wait()
        else:
            with anyio.CancelScope(deadline=limit):
                await tracked.done.wait()
        if not tracked.done.is_set():
            raise TaskTimeoutError(
                f"task {tracked.task.task_id} is still running: {reason}; its quota slots stay "
                "held until the server ends it"
            )
        if tracked.error is not None:
            raise tracked.error
        assert tracked.result is not None
        return tracked.result

    async def wait_untracked(self, kind: Kind, task_id: str) -> TaskResult:
        """Poll a task this client did not create until it ends (``task_timeout`` applies)."""
        try:
            with anyio.fail_after(self.task_timeout):
                while True:
                    result = await self.query(kind, task_id)
                    if _ended(result):
                        if result.status is TaskStatus.FAILED:
                            raise _failed(result)
                        return result
                    await anyio.sleep(self.interval(kind))
        except TimeoutError:
            raise TaskTimeoutError(
                f"task {task_id} did not end within {self.task_timeout} s"
            ) from None

    def on_hint(self, task_id: str, wire_status: str) -> None:
        """A callback said ``task_id`` is now ``wire_status``: if that is an end, confirm it
        with an authenticated query at once. Duplicates, late and out-of-order hints are
        harmless: a task already ended or being confirmed is skipped, and a hint never ends a
        task by itself."""
        tracked = self._inflight.get(task_id)
        if tracked is None or task_id in self._confirming:
            return
        if not self.api.is_terminal_wire_status(wire_status):
            return
        self._confirming.add(task_id)
        self.spawn(self._confirm, tracked)

    # -- polling -------------------------------------------------------------------------------

    async def _poll_budgeted(self) -> None:
        """Follow every in-flight task where there is no list query and requests are budgeted.
        A task is first checked once 80 % of its pool's shortest observed duration has passed,
        then again after a delay growing ×1.5 per check up to 5 s (images) or 20 s (videos).
        One query at a time, always for the most overdue task, the one most likely finished,
        so a tight budget goes where results are, not round-robin."""
        while self._inflight:
            now = anyio.current_time()
            tracked = min(self._inflight.values(), key=lambda t: t.next_check)
            if tracked.next_check > now:
                self._wakeup = anyio.Event()
                with anyio.move_on_after(tracked.next_check - now):
                    await self._wakeup.wait()  # a new task may be due sooner
                continue
            kind = tracked.task.kind
            await self._polling[kind].poll(kind, {tracked.task.task_id: tracked})
        self._pollers.discard("budgeted")

    def checked(self, tracked: Tracked, result: TaskResult | None) -> None:
        """Schedule the next check of a task polled on its own schedule: one poll interval
        after a failed query, else a delay growing ×1.5 per check up to 5 s (images) or 20 s
        (videos), never under one poll interval."""
        kind = tracked.task.kind
        interval = self.interval(kind)
        if result is None:
            tracked.next_check = anyio.current_time() + interval
            return
        tracked.checks += 1
        cap = 5.0 if kind == "image" else 20.0
        delay = min(cap, interval * 1.5 ** (tracked.checks - 1))
        tracked.next_check = anyio.current_time() + max(delay, interval)

    async def _poll_kind(self, kind: Kind) -> None:
        """Follow every in-flight task of ``kind`` until each has ended (see the module)."""
        tick = anyio.current_time()
        while any(t.task.kind == kind for t in self._inflight.values()):
            await anyio.sleep_until(self._next_poll(kind, tick))
            tick = anyio.current_time()
            pending = {t.task.task_id: t for t in self._inflight.values() if t.task.kind == kind}
            _log.debug("poll: %d %s task(s) in flight", len(pending), kind)
            await self._polling[kind].poll(kind, pending)
        self._pollers.discard(kind)  # no await since the check: track() starts a new poller

    async def check(self, tracked: Tracked) -> TaskResult | None:
        """One query of a tracked task; None after transient failures outlasting the retries
        (next tick). A task that can no longer be queried ends with that error."""
        try:
            return await self.query(tracked.task.kind, tracked.task.task_id)
        except (AuthenticationError, InvalidRequestError, UnknownStatusError) as exc:
            tracked.error = exc  # the task can no longer be followed
            await self._finish(tracked)
        except KlingError:
            pass
        return None

    def span(self, pending: Iterable[Tracked]) -> int:
        """How many of this tracker's tasks a newest-first list must reach to show the oldest
        of ``pending`` (the tasks created since it, inclusive)."""
        return _span(pending, self._created)

    def interval(self, kind: Kind) -> float:
        """Seconds between polls of ``kind`` now: the override, else at the pace of the tasks
        in flight (``_cadence``), shorter while the pool is busy (requests wait for its
        slots, or most of them are held)."""
        override = self.poll_intervals[kind]
        if override is not None:
            return override
        now = anyio.current_time()
        pools = {t.lease.pool for t in self._inflight.values() if t.task.kind == kind}
        ages = [now - t.lease.started for t in self._inflight.values() if t.task.kind == kind]
        snapshot = self.backend.snapshot()
        waiting = any(
            _cadence.busy(snapshot[p].waiting, snapshot[p].in_use, snapshot[p].capacity)
            for p in pools
            if p in snapshot
        )
        means = [self._durations[p].mean() for p in pools if p in self._durations]
        return _cadence.interval(kind, means, max(ages, default=0.0), waiting=waiting)

    def pace(self, polling: bool = True) -> dict[str, tuple[float | None, float | None]]:
        """Per pool a task of this client used: the mean seconds its tasks took (None before
        one ended) and the seconds between polls of its tasks now (None while none is in
        flight, or not ``polling``: nothing is polled)."""
        kinds = {t.lease.pool: t.task.kind for t in self._inflight.values()} if polling else {}
        factor = _CALLBACK_POLL_FACTOR if self.callbacks else 1.0
        return {
            pool: (estimate.mean(), self.interval(kinds[pool]) * factor if pool in kinds else None)
            for pool, estimate in self._durations.items()
        }

    def _next_poll(self, kind: Kind, last: float) -> float:
        """When to poll ``kind`` next (``anyio.current_time()`` clock): one poll interval, ±10 %
        jitter, after the previous poll *began* (so the time a poll takes does not stretch the
        cadence), or later while no task of that kind can have ended yet (each in-flight task
        is younger than 80 % of the shortest its pool has seen), so long video tasks cost few
        queries."""
        delay = self.interval(kind) * random.uniform(0.9, 1.1)
        if self.callbacks:
            delay *= _CALLBACK_POLL_FACTOR
        due = last + delay
        earliest = math.inf
        for tracked in self._inflight.values():
            if tracked.task.kind != kind:
                continue
            shortest = self._durations[tracked.lease.pool].shortest
            if shortest is None:
                return due
            earliest = min(earliest, tracked.lease.started + 0.8 * shortest)
        if earliest == math.inf:
            return due
        return max(due, earliest)

    async def _confirm(self, tracked: Tracked) -> None:
        try:
            result = await self.query(tracked.task.kind, tracked.task.task_id)
        except KlingError:
            return  # the poller will see the task end
        finally:
            self._confirming.discard(tracked.task.task_id)
        await self.observe(tracked, result)

    # -- the end -------------------------------------------------------------------------------

    async def observe(self, tracked: Tracked, result: TaskResult) -> None:
        """``result`` is what the server says of ``tracked`` now: if it ended, finish it."""
        if not _ended(result) or tracked.done.is_set():
            return
        tracked.result = result
        if result.status is TaskStatus.FAILED:
            tracked.error = _failed(result, tracked.task)
        await self._finish(tracked)

    async def _finish(self, tracked: Tracked) -> None:
        """The task ended: give its lease back, learn from it, journal it, wake its waiters."""
        task = tracked.task
        if self._inflight.pop(task.task_id, None) is None:
            return
        seconds = anyio.current_time() - tracked.lease.started
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "task %s ended: %s after %.1f s%s",
                task.task_id,
                tracked.result.status.value if tracked.result else "not followed",
                seconds,
                f" ({tracked.error})" if tracked.error else "",
            )
        if kept_by(self.backend) is None:  # else the backend's ended() records it
            self._durations.observe(tracked.lease.pool, seconds)
        result = tracked.result
        images = None  # unknown unless it succeeded (a failed series reports no images)
        if result is not None and result.status is TaskStatus.SUCCEEDED:
            images = len(result.series_images)
        await self.backend.ended(tracked.lease, images=images, seconds=seconds)
        self._stats.ended(tracked.lease, result, tracked.error)
        self._finished[task.task_id] = tracked
        while len(self._finished) > _FINISHED_KEPT:
            self._finished.popitem(last=False)
        try:
            if self.journal is not None and task.external_task_id:
                with anyio.CancelScope(shield=True):
                    await self.journal.record_finished(
                        task.external_task_id,
                        tracked.result,
                        str(tracked.error) if tracked.error else None,
                    )
        finally:
            tracked.done.set()


def _ended(result: TaskResult) -> bool:
    """Whether ``result`` is final; every status is named, so a new one is a type error."""
    status = result.status
    if status is TaskStatus.SUBMITTED or status is TaskStatus.PROCESSING:
        return False
    if status is TaskStatus.SUCCEEDED or status is TaskStatus.FAILED:
        return True
    assert_never(status)


def _failed(result: TaskResult, task: Task | None = None) -> TaskFailedError:
    return TaskFailedError(
        result.status_message or "",
        task_id=task.task_id if task else result.task_id,
        external_task_id=task.external_task_id if task else result.external_task_id,
    )


def _span(pending: Iterable[Tracked], created: int) -> int:
    """Tasks this tracker created since the oldest of ``pending`` (inclusive): how far down
    the newest-first list that one sits when no other program creates tasks."""
    return created - min((t.serial for t in pending), default=created)
