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

Exclusive requests (each costing more than half the pool, so no two run at once) are protected
the same way, without waiting for the patience, when they pile up: when at least two of them
wait, they make up at least half of the waiters, none of them runs and the pool counts no
hidden slots, the oldest of them is protected. Best fit alone lets smaller requests plug every
gap, so the gap an exclusive request needs appears only by chance: they pile up in the
lookahead window, crowd out the small requests that would fill the gaps beside them, and run
last, one at a time, beside nothing. Protecting one once they are half the queue starts a run of
them, and while one runs, each that ends frees the room for the next.

``auto`` series [concurrency] [omni-image] [changelog]: the server decides the count at create and
admits the
series only if that many slots are free, so it may start in 2 free slots and is counted as
holding what was free, up to :class:`AutoSeriesEstimator`'s reservation (``acquire(upto=)``).
Its true count is known only when it ends; until then :meth:`PoolLimiter._grant` may overbook
the difference, one create at a time, and the server's answer settles it.

Sources:
[concurrency] https://kling.ai/document-api/api/get-started/concurrency-rules
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
[changelog] https://kling.ai/document-api/updates/api
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal

import anyio
import attrs

from .._errors import QuotaError
from .._models import OmniImageRequest

if TYPE_CHECKING:
    from .._models import Request

__all__ = [
    "AutoSeriesEstimator",
    "DurationEstimate",
    "PoolLimiter",
    "expected_frees",
    "request_cost",
]

MIN_SERIES, MAX_SERIES = 2, 9  # [omni-image]: series_amount 2–9 [omni-image]
PATIENCE_TASKS = 30  # hol_patience="auto": this many of the pool's mean task durations
FIRST_PATIENCE = 300.0  # hol_patience="auto" before any task of the pool has ended, seconds


@attrs.define(eq=False)
class _Waiter:
    ticket: int
    price: Callable[[], int]
    since: float
    event: anyio.Event = attrs.field(factory=anyio.Event)
    upto: Callable[[], int] | None = None  # see PoolLimiter.acquire
    granted: int = 0  # slots granted; 0 while waiting

    def __lt__(self, other: _Waiter) -> bool:
        return self.ticket < other.ticket


@attrs.define(eq=False)
class PoolLimiter:
    """A weighted semaphore for one pool, with the head-of-line policy above.

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
            an under-reserved auto series ends (:meth:`reconcile`), by one slot per
            successful create, and by one slot per mean task duration while requests wait
            (additive probing, so capacity freed by other programs is found again).
        overbooked: Slots this client counts as held that the server has proven free: the
            ``auto`` series in flight reserved more than they produced. See
            :meth:`_grant` (overbooking); at most :attr:`auto_slack`.
        auto_slack: Σ (reserved − 2) over the ``auto`` series in flight: the most their
            reservations can exceed what they hold (a series has at least 2 images, [omni-image]).
        exclusive: Grants held that cost more than half the capacity (no two run at once;
            see the module docstring on how they are protected when they pile up).
        clock: Seconds on the clock of ``acquire(since=)`` and ``expected_frees``; default
            ``anyio.current_time`` (``benchmarks/quota_policy_sim.py`` passes a virtual one).
    """

    name: str
    capacity: int
    hol_patience: float | Literal["auto"] | None = "auto"
    in_use: int = 0
    peak: int = 0
    hidden: int = 0
    overbooked: int = 0
    auto_slack: int = 0
    exclusive: int = 0
    expected_frees: Callable[[], list[tuple[float, int]]] | None = None
    expected_duration: Callable[[], float | None] | None = None
    clock: Callable[[], float] = anyio.current_time
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
        if self.hol_patience != "auto":
            return self.hol_patience
        duration = self.expected_duration() if self.expected_duration is not None else None
        return FIRST_PATIENCE if duration is None else PATIENCE_TASKS * duration

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
    ) -> int:
        """Wait until slots are granted; return how many.

        Args:
            cost: Slots wanted, 1 ≤ cost ≤ capacity; or a function giving the current price,
                asked again at every grant decision (an ``auto`` series' reservation follows
                the estimator while it waits).
            ticket: Arrival order; lower tickets are served first. A request put back after a
                1303 keeps its ticket, so it keeps its place.
            since: :attr:`clock` when the request first started waiting.
            upto: For a request whose cost the server decides at create (an ``auto``
                series): it fits once ``cost`` slots are free and is granted as many of the
                free slots as ``upto()`` allows (at least ``cost``): as many as it may turn
                out to hold, so the pool never counts fewer slots than it could hold.

        Raises:
            QuotaError: the cost exceeds the pool's capacity.
        """
        price = cost if callable(cost) else (lambda: cost)
        if price() > self.capacity:
            raise QuotaError(
                f"a request costing {price()} slots can never start in pool {self.name} of "
                f"{self.capacity} slots; raise the quota for this pool or lower n/series_amount"
            )
        if not self._waiters:  # nobody to queue behind: grant without a waiter and an Event
            wanted, free = price(), self._free()
            if wanted <= free:
                return self._take(wanted, upto, free)
        waiter = _Waiter(ticket=ticket, price=price, since=since, upto=upto)
        bisect.insort(self._waiters, waiter)
        self._grant()
        if waiter.granted:
            return waiter.granted
        try:
            while not waiter.event.is_set():
                with anyio.move_on_after(self._probe_interval()):
                    await waiter.event.wait()
                if not waiter.event.is_set():
                    self._probe()
        except BaseException:
            if waiter.granted:
                self.release(waiter.granted)
            else:
                self._waiters.remove(waiter)
                self._grant()
            raise
        return waiter.granted

    def release(self, cost: int) -> None:
        """Give back ``cost`` slots and wake the waiters that now fit."""
        self._hold(-cost)
        if self.in_use < 0:  # pragma: no cover - a bookkeeping bug, never expected
            raise RuntimeError(f"pool {self.name}: released more slots than held")
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

    def _probe_interval(self) -> float:
        """Seconds a waiter waits before probing: the pool's mean task duration (a hidden slot
        held that long has likely been freed), else 1 s; at least 0.01 s."""
        duration = self.expected_duration() if self.expected_duration is not None else None
        return max(0.01, duration if duration is not None else 1.0)

    def _probe(self) -> None:
        """A waiter waited :meth:`_probe_interval` without a grant: if the pool counts hidden
        slots, give one back (at most once per interval for the whole pool) and grant again; a
        slot still held makes the next create a 1303, which raises the count again. Without
        this, hidden slots fall only on successful creates or releases, and a pool whose
        waiters all cost more than the room the hidden slots leave, with none of its own tasks
        running, would wait forever after the other program's tasks ended."""
        if not self.hidden:
            return
        now = self.clock()
        if now - self._last_probe < self._probe_interval():
            return
        self._last_probe = now
        self.hidden -= 1
        self._grant()

    def reconcile(self, reserved: int, actual: int | None) -> None:
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
        self._grant()

    def occupy(self, cost: int, *, auto_reserved: int = 0) -> None:
        """Count ``cost`` slots as held without waiting: for a task already running on the
        server (re-attached from a journal), which holds its slots whatever we think;
        ``auto_reserved`` as for :meth:`created`."""
        self._hold(cost)
        if auto_reserved:
            self.auto_slack += auto_reserved - MIN_SERIES

    def _backfill(
        self, head_cost: int, others: list[tuple[int, _Waiter]], free: int
    ) -> tuple[int, _Waiter] | None:
        """EASY backfilling for a head whose patience has expired: from the in-flight tasks'
        expected ends, find when the head can start (its shadow time) and how many slots will
        be spare then; a later request may start now if it fits and either is expected to end
        before the shadow time or fits in the spare slots. ``None`` when nothing qualifies or
        there is no duration estimate to reason with."""
        if self.expected_frees is None or self.expected_duration is None:
            return None
        duration = self.expected_duration()
        if duration is None:
            return None
        available, shadow, spare = free, None, 0
        for end, cost in sorted(self.expected_frees()):
            available += cost
            if available >= head_cost:
                shadow, spare = end, available - head_cost
                break
        if shadow is None:
            return None
        ends_in_time = self.clock() + duration <= shadow
        fitting = [
            (c, w) for c, w in others if c <= free and (ends_in_time or c <= min(spare, free))
        ]
        if not fitting:
            return None
        return max(fitting, key=lambda cw: (cw[0], -cw[1].ticket))

    async def wait_for_release(self, patience: float) -> None:
        """Wait until some slots are released, or ``patience`` seconds pass."""
        event = self._released
        if event is None:
            event = self._released = anyio.Event()
        with anyio.move_on_after(patience):
            await event.wait()

    def _grant(self) -> None:
        """Admit waiters while slots allow: the oldest waiter first if it fits; if it does not
        and has waited ``hol_patience``, only backfill that cannot delay it; otherwise the
        largest waiter that fits (best fit packs the pool fullest and lets large requests in
        as soon as room appears), the oldest among equals.

        Overbooking: when nothing fits and ``auto`` series are in flight, their reservations
        may exceed what they hold (:attr:`auto_slack`), so one waiter at a time may start in
        slots counted as held but possibly free: the smallest that fits them (the less it
        assumes, the likelier it holds), or only the oldest once it has waited
        ``hol_patience``, so overbooking never delays it. The server is the oracle: a success
        proves those slots free (:attr:`overbooked`); a 1303 proves them held, and nothing
        overbooks again until a task ends (:meth:`reject`).
        """
        while self._waiters:
            free = self._free()
            priced = [(min(w.price(), self.capacity), w) for w in self._waiters]
            chosen = self._choose(priced, free)
            excess = 0
            if chosen is None:
                room = self.auto_slack - self.overbooked
                if self._overbooking is not None or self._refuted or self.hidden or room <= 0:
                    return
                fitting = [(c, w) for c, w in priced if c <= free + room]
                protected = self._protected(priced)
                if protected is not None:
                    fitting = [cw for cw in fitting if cw[1] is protected[1]]
                if not fitting:
                    return
                chosen = min(fitting, key=lambda cw: (cw[0], cw[1].ticket))
                excess = chosen[0] - max(free, 0)
            cost, waiter = chosen
            self._waiters.remove(waiter)
            if excess:
                self.overbooked += excess
                self._overbooking = (waiter.ticket, excess)
                waiter.granted = self._take(cost, None, free)
            else:
                waiter.granted = self._take(cost, waiter.upto, free)
            waiter.event.set()

    def _free(self) -> int:
        """Slots counted as free: capacity less those held, hidden, plus those overbooked."""
        return self.capacity - self.in_use - self.hidden + self.overbooked

    def _take(self, cost: int, upto: Callable[[], int] | None, free: int) -> int:
        """Hold ``cost`` slots (with ``upto``, as many of the ``free`` ones as it allows, at
        least ``cost``; see :meth:`acquire`) and return how many."""
        if upto is not None:
            cost = max(cost, min(free, upto(), self.capacity))
        self._hold(cost)
        return cost

    def _hold(self, change: int) -> None:
        """Count ``change`` slots more held (fewer when negative): one grant taken or given
        back, so an exclusive one (more than half the capacity) is counted too."""
        self.in_use += change
        if 2 * abs(change) > self.capacity:
            self.exclusive += 1 if change > 0 else -1
        self.peak = max(self.peak, self.in_use - self.overbooked)

    def _protected(self, priced: list[tuple[int, _Waiter]]) -> tuple[int, _Waiter] | None:
        """The waiter later ones may not delay (module docstring), or ``None``: the oldest once
        it has waited its patience, unless it costs more than the slots not :attr:`hidden`
        (holding freed slots back for it could not start it, and would stall the pool until
        the hidden slots are given back); else, when exclusive requests pile up (at least two
        wait, at least half the waiters, none holds slots, no hidden slots), the oldest of
        them."""
        patience = self.patience()
        if patience is None:
            return None
        if self.clock() - priced[0][1].since >= patience:
            # Slots held back can make its room only if other programs' tasks leave enough.
            return priced[0] if priced[0][0] <= self.capacity - self.hidden else None
        if self.exclusive or self.hidden:
            return None
        exclusive = [cw for cw in priced if 2 * cw[0] > self.capacity]
        if len(exclusive) >= 2 and 2 * len(exclusive) >= len(priced):
            return exclusive[0]
        return None

    def _choose(self, priced: list[tuple[int, _Waiter]], free: int) -> tuple[int, _Waiter] | None:
        """The waiter to admit into ``free`` slots under the head-of-line policy, or ``None``."""
        head_cost, head = priced[0]
        if head_cost <= free:
            return (head_cost, head)
        protected = self._protected(priced)
        if protected is not None:
            # Only backfill that does not delay the protected waiter.
            if protected[0] <= free:
                return protected
            others = [cw for cw in priced if cw[1] is not protected[1]]
            return self._backfill(protected[0], others, free)
        fitting = [(c, w) for c, w in priced[1:] if c <= free]
        if not fitting:
            return None
        return max(fitting, key=lambda cw: (cw[0], -cw[1].ticket))


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


@attrs.define
class DurationEstimate:
    """Exponentially weighted mean of how long a pool's tasks hold their slots, in seconds, and
    the shortest seen."""

    _mean: float | None = None
    weight: float = 0.1
    shortest: float | None = None

    def observe(self, seconds: float) -> None:
        """Record one task that held its slots ``seconds``."""
        self.shortest = seconds if self.shortest is None else min(self.shortest, seconds)
        self._mean = (
            seconds
            if self._mean is None
            else ((1 - self.weight) * self._mean + self.weight * seconds)
        )

    def mean(self) -> float | None:
        """The mean so far, None before any task ended."""
        return self._mean


def expected_frees(
    tasks: Iterable[tuple[float, int]], mean: float | None, now: float
) -> list[tuple[float, int]]:
    """``(expected end, slots)`` of in-flight tasks given as ``(started, slots)``, for
    :attr:`PoolLimiter.expected_frees`: started + the mean duration (seconds), but no sooner
    than a tenth of the mean from ``now`` (a task older than the mean is due soon, not over)."""
    mean = mean or 0.0
    return [(max(started + mean, now + 0.1 * mean), slots) for started, slots in tasks]


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
