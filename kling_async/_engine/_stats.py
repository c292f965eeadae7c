"""What the client did, counted: the :class:`Counters` every part reports its events to (one
call per event, forwarded to OpenTelemetry when it is installed, see ``_telemetry``), and the
typed snapshot :meth:`KlingClient.stats` returns (:class:`ClientStats`, :class:`PoolStats`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from ._telemetry import HttpSpan, Telemetry

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .._models import TaskResult
    from .._quota._backend import Lease, PoolSnapshot

__all__ = ["ClientStats", "Counters", "PoolStats"]

_NO_HTTP_SPAN = HttpSpan(None)  # does nothing; reusable
_NOTHING = nullcontext()


@attrs.frozen(kw_only=True)
class PoolStats:
    """One quota pool, as :meth:`KlingClient.stats` saw it.

    Attributes:
        capacity: The pool's slots (its configured :class:`Quota`).
        held: Slots held by this process's tasks now (created, or being created).
        others: Slots held by other processes (a shared quota backend; 0 in process).
        waiting: Requests waiting for slots of this pool now.
        requeued_1303: Creates of this pool refused with 1303 (concurrency full) and put back
            in the queue; none of them reached an :class:`Outcome`.
        tasks_ended: Tasks of this pool this client followed to their end.
        mean_task_seconds: Exponentially weighted mean seconds from create to seen ended of
            the pool's tasks (weight 0.1 for the newest); ``None`` before one ended.
        poll_interval: Seconds between polls of the pool's tasks now (as the client paces
            them: the override, else a fraction of ``mean_task_seconds``); ``None`` when no
            task of the pool is in flight (nothing is polled).
    """

    capacity: int
    held: int
    others: int = 0
    waiting: int
    requeued_1303: int
    tasks_ended: int
    mean_task_seconds: float | None
    poll_interval: float | None


@attrs.frozen(kw_only=True)
class ClientStats:
    """A snapshot of what one :class:`KlingClient` did since it was constructed
    (:meth:`KlingClient.stats`); counts are totals, never reset.

    Attributes:
        pools: Per quota pool name (``"kling-v3-omni:image"``, ``"modellix:team"``), a
            :class:`PoolStats`; a pool appears once a request used it. Read-only.
        requests_sent: HTTP requests sent to the API (creates, queries, list queries, retries;
            not result downloads).
        tasks_created: Tasks created (each billed once; a create found by a lookup after an
            ambiguous failure counts once).
        tasks_succeeded: Tasks seen ended ``succeed``.
        tasks_failed: Tasks seen ended ``failed``, or that could no longer be followed.
        in_flight: Tasks created and not yet seen ended.
        requeued_1303: Creates refused with 1303 (concurrency full) and re-queued.
        units_spent: Units charged for the tasks this client followed to their end (the sum
            of :attr:`TaskResult.units`; ``0`` where the wire API reports none, as Modellix).
        queries: Single-task queries sent.
        list_queries: List or batch queries sent (each reports on many tasks).
        resumed: Requests answered from the journal (re-attached or already finished).
        overbooked: Creates sent in slots counted as held by ``auto`` series (to find out
            whether those series hold them).
        overbooked_requeued: Of those, creates refused with 1303 (the slots were held).
        adopted: Creates refused because their ``external_task_id`` was in use, whose task
            was looked up and followed instead (see :attr:`Task.adopted`).
    """

    pools: Mapping[str, PoolStats]
    requests_sent: int
    tasks_created: int
    tasks_succeeded: int
    tasks_failed: int
    in_flight: int
    requeued_1303: int
    units_spent: Decimal
    queries: int
    list_queries: int
    resumed: int
    overbooked: int
    overbooked_requeued: int
    adopted: int = 0


@attrs.define
class Counters:
    """The client's running counts, and the one place each part reports an event to (which
    also reaches the :class:`Telemetry`, when there is one).

    Each part that reports gets the counters as a constructor argument and calls one method
    per event (:meth:`created`, :meth:`retried`, :meth:`listed`, ...); the counts are private
    and read through :meth:`snapshot` only.

    Args:
        telemetry: The OpenTelemetry spans, or None (``opentelemetry-api`` not installed).
            Read-only.
    """

    telemetry: Telemetry | None = attrs.field(default=None, on_setattr=attrs.setters.frozen)
    _creates: int = attrs.field(default=0, init=False)  # tasks created
    _requeued: int = attrs.field(default=0, init=False)  # creates answered 1303, re-queued
    _queries: int = attrs.field(default=0, init=False)  # single-task queries sent
    _list_queries: int = attrs.field(default=0, init=False)  # list or batch queries sent
    _http_requests: int = attrs.field(default=0, init=False)  # all HTTP requests sent
    _resumed: int = attrs.field(default=0, init=False)  # requests answered from the journal
    _overbooked: int = attrs.field(default=0, init=False)  # grants in ``auto`` series' slots
    _overbooked_requeued: int = attrs.field(default=0, init=False)  # of those, answered 1303
    _adopted: int = attrs.field(default=0, init=False)  # duplicate external ids followed
    _succeeded: int = attrs.field(default=0, init=False)  # tasks ended ``succeed``
    _failed: int = attrs.field(default=0, init=False)  # tasks ended ``failed`` (or lost)
    _units: Decimal = attrs.field(default=Decimal(0), init=False)  # units charged
    _requeued_by_pool: dict[str, int] = attrs.field(factory=dict, init=False)
    _ended_by_pool: dict[str, int] = attrs.field(factory=dict, init=False)

    # -- a request's events ------------------------------------------------------------------

    def queued(self, lease: Lease) -> None:
        """``lease``'s request queues for its pool's slots."""
        if self.telemetry is not None:
            self.telemetry.queued(lease)

    def granted(self, lease: Lease) -> None:
        """``lease`` was granted slots for a create attempt (``lease.overbooked``: in slots
        counted as held by ``auto`` series)."""
        self._overbooked += lease.overbooked

    def created(self) -> None:
        """A create's task exists: the server accepted it, or a lookup after an ambiguous
        failure found it (billed once either way)."""
        self._creates += 1

    def adopted(self) -> None:
        """A create refused for its ``external_task_id`` in use was followed to the task that
        holds the id."""
        self._adopted += 1

    def resumed(self) -> None:
        """A request was answered from the journal (re-attached, or already finished)."""
        self._resumed += 1

    def refused(self, lease: Lease) -> None:
        """A create was refused with 1303 and the request re-queued."""
        self._requeued += 1
        self._overbooked_requeued += lease.overbooked
        self._requeued_by_pool[lease.pool] = self._requeued_by_pool.get(lease.pool, 0) + 1
        if self.telemetry is not None:
            self.telemetry.requeued(lease)

    def tracked(self, lease: Lease, task_id: str) -> None:
        """``lease``'s task exists (created now, or re-attached) and is followed."""
        if self.telemetry is not None:
            self.telemetry.created(lease, task_id)

    def abandoned(self, lease: Lease, error: BaseException) -> None:
        """``lease``'s request ends without a task (refused, failed, or cancelled)."""
        if self.telemetry is not None:
            outcome = "not_created" if isinstance(error, Exception) else "cancelled"
            self.telemetry.ended(lease, outcome, error=error if outcome != "cancelled" else None)

    def ended(
        self,
        lease: Lease,
        result: TaskResult | None,
        error: BaseException | None,
        *,
        earlier: bool = False,
    ) -> None:
        """``lease``'s task ended with ``result`` (``error`` when it failed or could no longer
        be followed). ``earlier``: an earlier run saw it end (from the journal): nothing of it
        is counted again."""
        units = result.units if result is not None else None
        if not earlier:
            if error is None:
                self._succeeded += 1
            else:
                self._failed += 1
            if units is not None:
                self._units += units
            self._ended_by_pool[lease.pool] = self._ended_by_pool.get(lease.pool, 0) + 1
        if self.telemetry is not None:
            self.telemetry.ended(
                lease,
                "failed" if error is not None else "succeeded",
                units=float(units) if units is not None else None,
                error=error,
            )

    def retried(self, attempt: int, failure: BaseException) -> None:
        """Attempt ``attempt`` (1-based) failed with ``failure``; another follows."""
        if self.telemetry is not None:
            self.telemetry.retry(attempt, failure)

    # -- the wire's events -------------------------------------------------------------------

    def queried(self) -> None:
        """A single-task query is asked (its HTTP requests are counted by :meth:`http`)."""
        self._queries += 1

    def listed(self) -> None:
        """A list or batch query is asked (one page, or one batch of ids)."""
        self._list_queries += 1

    # -- spans around work -------------------------------------------------------------------

    def within(self, lease: Lease | None) -> AbstractContextManager[Any]:
        """Work done inside belongs to ``lease``'s request (its HTTP spans are children)."""
        if self.telemetry is None:
            return _NOTHING
        return self.telemetry.within(lease)  # type: ignore[no-any-return]

    def poll(self, kind: str, leases: Iterable[Lease]) -> AbstractContextManager[Any]:
        """One list or batch poll asking about the tasks of ``leases``."""
        if self.telemetry is None:
            return _NOTHING
        return self.telemetry.poll(kind, leases)

    def http(
        self, method: str, base_url: str, path: str, params: Mapping[str, str] | None
    ) -> HttpSpan:
        """One HTTP request to ``base_url + path`` is sent: counted, and a context manager
        around the exchange (its span) returned."""
        self._http_requests += 1
        if self.telemetry is None:
            return _NO_HTTP_SPAN
        return self.telemetry.http(method, base_url, path, params)

    def close(self) -> None:
        """The client closes: spans of tasks still running end."""
        if self.telemetry is not None:
            self.telemetry.close()

    # -- the snapshot ------------------------------------------------------------------------

    def snapshot(
        self,
        pools: Mapping[str, PoolSnapshot],
        pace: Mapping[str, tuple[float | None, float | None]],
        in_flight: int = 0,
    ) -> ClientStats:
        """A :class:`ClientStats` of these counts, the quota backend's ``pools`` and the
        tracker's ``pace`` (per pool: mean task seconds, poll interval) and ``in_flight``
        (the tasks it follows)."""
        names = sorted(
            set(pools) | set(pace) | set(self._requeued_by_pool) | set(self._ended_by_pool)
        )
        per_pool = {}
        for name in names:
            quota = pools.get(name)
            mean, interval = pace.get(name, (None, None))
            per_pool[name] = PoolStats(
                capacity=quota.capacity if quota else 0,
                held=quota.in_use if quota else 0,
                others=quota.others if quota else 0,
                waiting=quota.waiting if quota else 0,
                requeued_1303=self._requeued_by_pool.get(name, 0),
                tasks_ended=self._ended_by_pool.get(name, 0),
                mean_task_seconds=mean,
                poll_interval=interval,
            )
        return ClientStats(
            pools=MappingProxyType(per_pool),
            requests_sent=self._http_requests,
            tasks_created=self._creates,
            tasks_succeeded=self._succeeded,
            tasks_failed=self._failed,
            in_flight=in_flight,
            requeued_1303=self._requeued,
            units_spent=self._units,
            queries=self._queries,
            list_queries=self._list_queries,
            resumed=self._resumed,
            overbooked=self._overbooked,
            overbooked_requeued=self._overbooked_requeued,
            adopted=self._adopted,
        )
