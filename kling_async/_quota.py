"""Weighted concurrency limiting per quota pool (DESIGN §5, reference §9).

A pool is ``(model_name, kind)``: Kling counts concurrency per account × model version × pack
type (image/video) [S4]. A request takes ``cost`` slots before its create and gives them back
when the server reports the task terminal: slots belong to the remote task, not to a coroutine.

Head-of-line policy (``Quota.hol_patience``): waiters are served in arrival order. A waiter that
does not fit may be overtaken by later waiters that do fit, but only until it has waited
``hol_patience`` seconds; from then on nobody overtakes it and it starts as soon as enough slots
are free. So a cost-9 request is never starved by a stream of cost-1 requests, and cost-1
requests are not held up behind it for longer than the patience.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import TYPE_CHECKING

import anyio
import attrs

from ._errors import QuotaError
from ._models import OmniImageRequest

if TYPE_CHECKING:
    from ._models import Request

__all__ = ["AutoSeriesEstimator", "PoolLimiter", "request_cost"]

MAX_SERIES = 9  # §5.1: series_amount 2–9 [S1]


@attrs.define(eq=False)
class _Waiter:
    ticket: int
    cost: int
    since: float
    event: anyio.Event = attrs.field(factory=anyio.Event)
    granted: bool = False

    def __lt__(self, other: _Waiter) -> bool:
        return self.ticket < other.ticket


@attrs.define(eq=False)
class PoolLimiter:
    """A weighted semaphore for one pool, with the head-of-line policy above.

    Attributes:
        name: ``"<model_name>:<kind>"``.
        capacity: Slots of the pool.
        hol_patience: See the module docstring; ``None`` disables the protection.
        in_use: Slots held now (by this client).
        peak: Most slots held at once.
    """

    name: str
    capacity: int
    hol_patience: float | None = 10.0
    in_use: int = 0
    peak: int = 0
    _waiters: list[_Waiter] = attrs.field(factory=list)
    _released: anyio.Event = attrs.field(factory=anyio.Event)

    @property
    def waiting(self) -> int:
        """Requests waiting for slots."""
        return len(self._waiters)

    async def acquire(self, cost: int, *, ticket: int, since: float) -> None:
        """Wait until ``cost`` slots are granted.

        Args:
            cost: Slots wanted, 1 ≤ cost ≤ capacity.
            ticket: Arrival order; lower tickets are served first. A request put back after a
                1303 keeps its ticket, so it keeps its place.
            since: ``anyio.current_time()`` when the request first started waiting.

        Raises:
            QuotaError: ``cost`` exceeds the pool's capacity.
        """
        if cost > self.capacity:
            raise QuotaError(
                f"a request costing {cost} slots can never start in pool {self.name} of "
                f"{self.capacity} slots; raise the quota for this pool or lower n/series_amount"
            )
        waiter = _Waiter(ticket=ticket, cost=cost, since=since)
        bisect.insort(self._waiters, waiter)
        self._grant()
        if waiter.granted:
            return
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.release(cost)
            else:
                self._waiters.remove(waiter)
                self._grant()
            raise

    def release(self, cost: int) -> None:
        """Give back ``cost`` slots and wake the waiters that now fit."""
        self.in_use -= cost
        if self.in_use < 0:  # pragma: no cover - a bookkeeping bug, never expected
            raise RuntimeError(f"pool {self.name}: released more slots than held")
        released, self._released = self._released, anyio.Event()
        released.set()
        self._grant()

    def occupy(self, cost: int) -> None:
        """Count ``cost`` slots as held without waiting: for a task already running on the
        server (re-attached from a journal), which holds its slots whatever we think."""
        self.in_use += cost
        self.peak = max(self.peak, self.in_use)

    async def wait_for_release(self, patience: float) -> None:
        """Wait until some slots are released, or ``patience`` seconds pass."""
        event = self._released
        with anyio.move_on_after(patience):
            await event.wait()

    def _grant(self) -> None:
        now = anyio.current_time()
        blocked = False
        for waiter in list(self._waiters):
            if waiter.cost <= self.capacity - self.in_use:
                self._waiters.remove(waiter)
                waiter.granted = True
                self.in_use += waiter.cost
                self.peak = max(self.peak, self.in_use)
                waiter.event.set()
            elif not blocked:
                blocked = True
                patience = self.hol_patience
                if patience is not None and now - waiter.since >= patience:
                    break  # the head has waited long enough: nobody overtakes it now


@attrs.define
class AutoSeriesEstimator:
    """Slots to reserve for a ``series_amount="auto"`` series (DESIGN §5).

    Kling decides the count while generating, and the series then holds as many slots as images
    it produced (reference §9 [S1, S6]). We reserve ``initial`` (the maximum, 9, by default)
    until ``min_samples`` auto series have finished, then the rounded-up mean of the last
    ``window`` counts plus ``margin``, capped at 9. Under-reserving is safe: the server answers
    1303 and the scheduler re-queues the request.
    """

    initial: int = MAX_SERIES
    min_samples: int = 3
    window: int = 50
    margin: int = 1
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


def request_cost(request: Request, auto: AutoSeriesEstimator) -> int:
    """Quota slots a request holds (reference §9): image single ``n`` [S4], fixed series
    ``series_amount`` (INFERRED), auto series the estimator's reservation [S1], video 1 [S4]."""
    if not isinstance(request, OmniImageRequest):
        return 1
    if request.result_type == "series":
        amount = request.series_amount
        return auto.estimate() if amount == "auto" else int(amount)
    return request.n
