"""Weighted concurrency limiting per quota pool, [concurrency]).

A pool is ``(model_name, kind)``: Kling counts concurrency per account × model version × pack
type (image/video) [concurrency]. A request takes ``cost`` slots before its create and gives them
back
when the server reports the task terminal: slots belong to the remote task, not to a coroutine.

Head-of-line policy (``Quota.hol_patience``): the oldest waiter starts first when it fits. When
it does not, later waiters may overtake it, the largest that fits first (best fit: it packs the
pool fullest and gives large requests the room as soon as it appears), but only until the oldest
has waited its patience (:meth:`PoolLimiter.patience`: ``hol_patience`` seconds, or by default 30
of the pool's mean task durations); from then on a later request may start only if it cannot
delay the oldest (EASY backfilling): it is expected to end before enough slots free up for the
oldest — judged from the in-flight tasks' ages and the pool's mean task duration — or it fits in
the slots that will still be spare once the oldest starts. So a cost-9 request is never starved
by a stream of cost-1 requests, and cost-1 requests keep the pool busy while it waits.

The patience is counted in task durations because protection is not free: until the oldest fits,
the slots that free up wait for it, empty unless a backfill qualifies. In a simulation on this
limiter (``benchmarks/quota_policy_sim.py``: 500 requests of cost 1–6 at capacity 9, 20 s
tasks, polls every 0.8 s), a patience of 15 mean durations (300 s) gave 2 % less utilisation
than 30 (0.932 against 0.953), and 30 as much as 60; for 60 s tasks a fixed 300 s (5 durations)
gave 4 % less.

The rules are written once, as the pure function :func:`~._decide.decide` (whose docstring
lists them by name, in order); :class:`PoolLimiter` holds one pool's state and waiters and runs
it whenever something changes, and the Redis backend's script mirrors it. Each rule kept shows a
gain in ``benchmarks/quota_policy_sim.py``; the protection of piled-up exclusive requests (each
more than half the pool) did not (0.9537 without it against 0.9532 with it, 500 requests; 0.9678
against 0.9656 for 30–90 s tasks; 0.9370 against 0.9395 at 200 requests) and was removed rather
than written twice.

``auto`` series [concurrency] [omni-image] [changelog]: the server decides the count at create and
admits the
series only if that many slots are free, so it may start in 2 free slots and is counted as
holding what was free, up to :class:`AutoSeriesEstimator`'s reservation (``acquire(upto=)``).
Its true count is known only when it ends; until then the policy may overbook the difference
(rule ``OVERBOOK``), one create at a time, and the server's answer settles it.

Sources:
[concurrency] https://kling.ai/document-api/api/get-started/concurrency-rules
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[changelog] https://kling.ai/document-api/updates/api
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import anyio
import attrs

from .._errors import QuotaError
from .._models import OmniImageRequest
from ._decide import (
    FIRST_PATIENCE,
    MAX_SERIES,
    MIN_SERIES,
    PATIENCE_TASKS,
    PoolState,
    Waiter,
    decide,
    expected_frees,
    patience,
    probe_interval,
)
from ._durations import DurationEstimate

if TYPE_CHECKING:
    from .._models import Request

__all__ = [
    "FIRST_PATIENCE",
    "PATIENCE_TASKS",
    "AutoSeriesEstimator",
    "DurationEstimate",
    "PoolLimiter",
    "expected_frees",
    "request_cost",
]


@attrs.define(eq=False)
class _Waiter:
    ticket: int
    price: Callable[[], int]
    since: float
    event: anyio.Event = attrs.field(factory=anyio.Event)
    upto: Callable[[], int] | None = None  # see PoolLimiter.acquire
    refused: int = 0
    granted: int = 0  # slots granted; 0 while waiting

    def __lt__(self, other: _Waiter) -> bool:
        return self.ticket < other.ticket


@attrs.define(eq=False)
class PoolLimiter:
    """A weighted semaphore for one pool: the state of :func:`~._decide.decide`, which it runs
    whenever something changes.

    Attributes:
        name: ``"<model_name>:<kind>"``.
        capacity: Slots of the pool.
        hol_patience: Seconds, ``"auto"`` (see :meth:`patience`) or ``None``, which disables
            the protection; see the module docstring.
        in_use: Slots held now (by this client).
        peak: Most slots held at once.
        expected_frees: Gives ``(expected end, slots)`` of the pool's in-flight tasks, on the
            :attr:`clock`; with ``expected_duration`` (mean seconds a task
            holds its slots) it enables backfilling. The client sets both.
        hidden: Slots the server holds that this client cannot account for, as proven by its
            1303 answers: an ``auto`` series that produced more images than reserved, or
            another program sharing the account. They are treated as taken. A 1303 raises the
            figure to the lower bound it proves (:meth:`reject`); it falls again exactly when
            an under-reserved auto series ends (:meth:`release` with ``series``), by one slot per
            successful create, and by one slot per mean task duration while requests wait
            (additive probing, so capacity freed by other programs is found again).
        overbooked: Slots this client counts as held that the server has proven free: the
            ``auto`` series in flight reserved more than they produced (``OVERBOOK``); at
            most :attr:`auto_slack`.
        auto_slack: Σ (reserved − 2) over the ``auto`` series in flight: the most their
            reservations can exceed what they hold (a series has at least 2 images, [omni-image]).
        clock: Seconds on the clock of ``acquire(since=)`` and ``expected_frees``; default
            ``anyio.current_time`` (``benchmarks/quota_policy_sim.py`` passes a virtual one).
        without: Rules of :func:`~._decide.decide` to leave out (simulations only).
    """

    name: str
    capacity: int
    hol_patience: float | Literal["auto"] | None = "auto"
    in_use: int = 0
    peak: int = 0
    hidden: int = 0
    overbooked: int = 0
    auto_slack: int = 0
    expected_frees: Callable[[], Sequence[tuple[float, int]]] | None = None
    expected_duration: Callable[[], float | None] | None = None
    clock: Callable[[], float] = anyio.current_time
    without: frozenset[str] = frozenset()
    _waiters: list[_Waiter] = attrs.field(factory=list)
    _released: anyio.Event | None = None  # made by the first wait_for_release after a release
    _last_probe: float = -math.inf
    _overbooking: tuple[int, int] | None = None  # (ticket, excess) of the create in flight
    _refuted: bool = False  # an overbooking create got 1303 and no task has ended since

    def overbooking(self, ticket: int | None) -> bool:
        """Whether the request holding ``ticket`` was granted slots by overbooking and its
        create is not answered yet."""
        return (
            ticket is not None and self._overbooking is not None and self._overbooking[0] == ticket
        )

    def patience(self) -> float | None:
        """Seconds the oldest waiter may be overtaken before it is protected (``None``: never):
        :attr:`hol_patience`, or for ``"auto"`` ``PATIENCE_TASKS`` mean task durations of the
        pool (``FIRST_PATIENCE`` until one has ended)."""
        return patience(self.hol_patience, self._mean())

    @property
    def waiting(self) -> int:
        """Requests waiting for slots."""
        return len(self._waiters)

    async def acquire(
        self,
        cost: int | Callable[[], int],
        *,
        ticket: int,
        since: float,
        upto: Callable[[], int] | None = None,
        refused: int = 0,
    ) -> int:
        """Wait until slots are granted; return how many.

        Args:
            cost: Slots wanted, 1 ≤ cost ≤ capacity; or a function giving the current price,
                asked again at every grant decision.
            ticket: Arrival order; lower tickets are served first. A request put back after a
                1303 keeps its ticket, so it keeps its place.
            since: :attr:`clock` when the request first started waiting.
            upto: For a request whose cost the server decides at create (an ``auto``
                series): it fits once ``cost`` slots are free and is granted as many of the
                free slots as ``upto()`` allows (at least ``cost``): as many as it may turn
                out to hold, so the pool never counts fewer slots than it could hold.
            refused: With ``upto``: most slots a create of it was refused with (1303); once
                it has waited its patience it asks one more (rule ``PRICE``).

        Raises:
            QuotaError: the cost exceeds the pool's capacity.
        """
        price = cost if callable(cost) else (lambda: cost)
        if price() > self.capacity:
            raise QuotaError(
                f"a request costing {price()} slots can never start in pool {self.name} of "
                f"{self.capacity} slots; raise the quota for this pool or lower n/series_amount"
            )
        if not self._waiters and not self.hidden and upto is None:
            wanted = price()  # nobody to queue behind: HEAD, without a waiter and an Event
            if wanted <= self.capacity - self.in_use + self.overbooked:
                self._hold(wanted)
                return wanted
        waiter = _Waiter(ticket=ticket, price=price, since=since, upto=upto, refused=refused)
        bisect.insort(self._waiters, waiter)
        self._grant()
        if waiter.granted:
            return waiter.granted
        try:
            while not waiter.event.is_set():
                with anyio.move_on_after(probe_interval(self._mean())):
                    await waiter.event.wait()
                if not waiter.event.is_set():
                    self._grant()  # the time-based rules: PROBE, PROTECT, PRICE
        except BaseException:
            if waiter.granted:
                self.release(waiter.granted, ticket=ticket)
            else:
                self._waiters.remove(waiter)
                self._grant()
            raise
        return waiter.granted

    def release(
        self, cost: int, *, ticket: int | None = None, series: tuple[int, int | None] | None = None
    ) -> None:
        """Give back ``cost`` slots and wake the waiters that now fit; ``ticket`` is the
        releasing request's (an overbooking grant given up before its create was answered
        takes its overbooked slots with it); ``series`` is ``(reserved, actual)`` of an
        ``auto`` series that ended (see :meth:`_reconcile`), settled before the grant pass."""
        self._hold(-cost)
        if self.in_use < 0:  # pragma: no cover - a bookkeeping bug, never expected
            raise RuntimeError(f"pool {self.name}: released more slots than held")
        if self._overbooking is not None and self.overbooking(ticket):
            self.overbooked = max(0, self.overbooked - self._overbooking[1])
            self._overbooking = None
        if series is not None:
            self._reconcile(*series)
        self._refuted = False  # a task ended: overbooking may succeed again
        released, self._released = self._released, None
        if released is not None:
            released.set()
        self._grant()

    def reject(self, cost: int, *, ticket: int | None = None, proves_hidden: bool = True) -> None:
        """A create holding ``cost`` slots got 1303: give the slots back *without* signalling
        a release (no task ended, so nobody waiting for one should wake up).

        If it was the overbooking create (``ticket``), the slots it assumed free are not:
        :attr:`overbooked` falls back and no create overbooks again until a task ends.
        Otherwise, when ``proves_hidden``, the server holds more than ``capacity - cost``
        slots: :attr:`overbooked` falls and :attr:`hidden` rises until the slots counted as
        held reach that lower bound. ``proves_hidden`` is ``False`` for an ``auto`` series,
        whose real cost the server decides at create, so its 1303 says nothing about other
        slots.
        """
        self._hold(-cost)
        self.in_use = max(0, self.in_use)
        if self._overbooking is not None and self.overbooking(ticket):
            self.overbooked = max(0, self.overbooked - self._overbooking[1])
            self._overbooking, self._refuted = None, True
        elif proves_hidden:
            proven = self.capacity - cost + 1  # slots the server holds besides this create
            deficit = proven - (self.in_use + self.hidden - self.overbooked)
            if deficit > 0:
                taken = min(deficit, self.overbooked)
                self.overbooked -= taken
                # Keep room for a cost-1 probe so the pool can never lock itself up.
                ceiling = max(self.hidden, self.capacity - 1)
                self.hidden = min(self.hidden + deficit - taken, ceiling)
        self._grant()

    def created(self, *, ticket: int | None = None, auto_reserved: int = 0) -> None:
        """A create succeeded. ``ticket`` is its request's; ``auto_reserved`` the slots an
        ``auto`` series reserved (0 for any other request). An overbooking create that
        succeeds proves its assumption; any other success probes for one hidden slot
        (additive increase)."""
        if auto_reserved:
            self.auto_slack += auto_reserved - MIN_SERIES
        if self.overbooking(ticket):
            self._overbooking = None
        elif self.hidden:
            self.hidden -= 1
        self._grant()

    def wake(self) -> None:
        """Run the policy now: for its time-based rules (``PROBE``, ``PROTECT``, ``PRICE``),
        which the waiters' own timers also run once per probe interval."""
        self._grant()

    def _reconcile(self, reserved: int, actual: int | None) -> None:
        """An ``auto`` series that reserved ``reserved`` slots ended holding ``actual`` (its
        image count, [concurrency] [omni-image]; ``None`` when unknown, e.g. it failed). Its release
        already returned ``reserved``. Excess it held beyond that was counted as hidden, and is
        gone now; slots it reserved but did not hold may have been overbooked, and are gone too.
        """
        self.auto_slack = max(0, self.auto_slack - (reserved - MIN_SERIES))
        if actual is not None and actual > reserved and self.hidden:
            self.hidden = max(0, self.hidden - (actual - reserved))
        elif actual is not None and actual < reserved:
            self.overbooked = max(0, self.overbooked - (reserved - actual))
        self.overbooked = min(self.overbooked, self.auto_slack)

    def occupy(self, cost: int, *, auto_reserved: int = 0) -> None:
        """Count ``cost`` slots as held without waiting: for a task already running on the
        server (re-attached from a journal), which holds its slots whatever we think;
        ``auto_reserved`` as for :meth:`created`."""
        self._hold(cost)
        if auto_reserved:
            self.auto_slack += auto_reserved - MIN_SERIES

    async def wait_for_release(self, patience: float) -> None:
        """Wait until some slots are released, or ``patience`` seconds pass."""
        event = self._released
        if event is None:
            event = self._released = anyio.Event()
        with anyio.move_on_after(patience):
            await event.wait()

    def _hold(self, change: int) -> None:
        """Count ``change`` slots more held (fewer when negative), one grant taken or given
        back, and the :attr:`peak` figure with it."""
        self.in_use += change
        self.peak = max(self.peak, self.in_use - self.overbooked)

    def _mean(self) -> float | None:
        return self.expected_duration() if self.expected_duration is not None else None

    def _grant(self) -> None:
        """Run :func:`~._decide.decide` on the pool as it is now and apply its grants."""
        if not self._waiters:
            return
        mean = self._mean()
        frees = self.expected_frees() if self.expected_frees is not None else ()
        state = PoolState(
            capacity=self.capacity,
            in_use=self.in_use,
            hidden=self.hidden,
            overbooked=self.overbooked,
            auto_slack=self.auto_slack,
            overbooking=self._overbooking is not None,
            refuted=self._refuted,
            peak=self.peak,
            last_probe=self._last_probe,
            mean=mean,
            hol_patience=self.hol_patience,
            frees=tuple(frees),
        )
        waiters = [
            Waiter(
                ticket=w.ticket,
                cost=w.price(),
                since=w.since,
                upto=None if w.upto is None else w.upto(),
                refused=w.refused,
            )
            for w in self._waiters
        ]
        decision = decide(state, waiters, self.clock(), without=self.without)
        after = decision.pool
        self.in_use, self.hidden, self.overbooked = after.in_use, after.hidden, after.overbooked
        self.peak, self._last_probe = after.peak, after.last_probe
        if not decision.grants:
            return
        by_ticket = {w.ticket: w for w in self._waiters}
        for grant in decision.grants:
            waiter = by_ticket[grant.ticket]
            self._waiters.remove(waiter)
            if grant.excess:
                self._overbooking = (grant.ticket, grant.excess)
            waiter.granted = grant.slots
            waiter.event.set()


@attrs.define
class AutoSeriesEstimator:
    """Most slots to count an admitted ``series_amount="auto"`` series as holding.

    Kling decides the count while generating, and the series then holds as many slots as images
    it produced [concurrency] [omni-image] [changelog]. The client counts an admitted series as
    holding the
    free slots it started in, up to this reservation: ``initial`` (the maximum, 9, by default)
    until ``min_samples`` auto series have finished, then the rounded-up mean of the last
    ``window`` counts plus ``margin``, within 2–9. The observed counts are those of admitted
    series, so they are the right sample for the next admitted one. Under-reserving is safe:
    the server answers 1303 to a later create, and the slots the series really holds are
    counted as hidden until it ends; over-reserving is corrected by overbooking (see
    :class:`PoolLimiter`).
    """

    initial: int = MAX_SERIES
    min_samples: int = 1
    window: int = 50
    margin: int = 0
    _seen: deque[int] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._seen = deque(maxlen=self.window)

    def estimate(self) -> int:
        """Slots to reserve for the next auto series."""
        if len(self._seen) < self.min_samples:
            return self.initial
        mean = sum(self._seen) / len(self._seen)
        return max(2, min(MAX_SERIES, math.ceil(mean) + self.margin))

    def observe(self, count: int) -> None:
        """Record how many images a finished auto series produced."""
        if count > 0:
            self._seen.append(count)


def request_cost(request: Request, auto: AutoSeriesEstimator) -> int | Callable[[], int]:
    """Quota slots a request holds [concurrency]: image single ``n`` [concurrency], fixed series
    ``series_amount`` (INFERRED), video 1 [concurrency]; for an ``auto`` series [omni-image], the
    estimator's
    current reservation as a function, so it is priced when it is granted."""
    if not isinstance(request, OmniImageRequest):
        return 1
    if request.result_type == "series":
        amount = request.series_amount
        return auto.estimate if amount == "auto" else int(amount)
    return request.n
