"""Units and budgets: what a request is expected to cost (learnt from what ended tasks were
charged, starting from Kling's published prices), and the cap on one stream's spending.

Kling charges units per image and per second of video; the charge of an ended task is its
``final_unit_deduction`` (https://kling.ai/document-api/api/image/3-0-omni/image-omni).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import anyio
import attrs

from .._convert import units_of
from .._errors import BudgetExceededError
from .._models import OmniImageRequest, Request, TaskResult
from ._prices import AUTO_SERIES_IMAGES, Estimate, list_price

__all__ = [
    "Reservation",
    "UnitBudget",
    "UnitEstimates",
    "check_budget_units",
    "parse_units",
    "price_class",
]


def parse_units(value: Decimal | int | str) -> Decimal:
    """A budget in units as a ``Decimal`` (a float would not be exact, so it is refused).

    Raises:
        TypeError: not a ``Decimal``, ``int`` or ``str``.
        ValueError: not a positive, finite number.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"budget_units: expected a Decimal, int or str, got {type(value).__name__}")
    units = units_of(value)
    if units is None:
        raise ValueError(f"budget_units: {value!r} is not a number of units")
    if units <= 0:
        raise ValueError(f"budget_units: {value!r}, must be a positive number of units")
    return units


PriceTable = Callable[[Request], Estimate | None]


def price_class(request: Request) -> tuple[str, ...]:
    """The parts of a request its price depends on, apart from how many images or seconds it
    makes: model, kind, resolution (images) or mode, sound and video input (videos)."""
    if isinstance(request, OmniImageRequest):
        return (request.model_name, "image", request.resolution)
    if _edits_a_video(request):
        video_input = "base video"
    else:
        video_input = "video input" if request.video_list else "no video input"
    return (request.model_name, "video", request.mode, f"sound {request.sound}", video_input)


def _edits_a_video(request: Request) -> bool:
    """An edit of a ``base`` reference video: its output is as long as the input, which is not
    known before the task runs, so what it costs cannot be told from the request."""
    return not isinstance(request, OmniImageRequest) and any(
        v.refer_type == "base" for v in request.video_list
    )


def request_size(request: Request) -> tuple[int, str]:
    """How many images (an ``auto`` series: 9) or seconds of video a request makes, and the
    word for them."""
    if isinstance(request, OmniImageRequest):
        if request.is_auto_series:
            return AUTO_SERIES_IMAGES, "image"
        if request.result_type == "series":
            return int(request.series_amount), "image"
        return request.n, "image"
    return request.duration, "second"


def _produced(request: Request, result: TaskResult) -> int:
    """How many images or seconds a task made (what it was charged for)."""
    if isinstance(request, OmniImageRequest):
        return len(result.images) + len(result.series_images) or request_size(request)[0]
    seconds = sum(v.duration or 0 for v in result.videos)
    return round(seconds) if seconds else request.duration


def _class_name(request: Request) -> str:
    return " ".join(price_class(request))


@attrs.define
class _Seen:
    """The charges seen for one price class."""

    tasks: int = 0
    exact: dict[int, Decimal] = attrs.field(factory=dict)  # size → the most charged
    rate: Decimal = Decimal(0)  # the most charged per image or second


@attrs.define
class UnitEstimates:
    """Estimates per price class, learnt from the charges of ended tasks (the most seen, to
    stay on the safe side) and, before any, from a price table.

    Args:
        table: The prices to start from (default: Kling's published prices); it answers
            ``None`` for a request it has no price for. ``None``: learn every price.
    """

    table: PriceTable | None = list_price
    _seen: dict[tuple[str, ...], _Seen] = attrs.field(factory=dict, init=False)

    def estimate(self, request: Request) -> Estimate | None:
        """The request's expected units, or ``None`` when nothing is known of its class: no
        task of it ended here and no published price covers it. An edit of a ``base`` video
        is never estimated (its length is the input's), so each runs as one of unknown cost."""
        if _edits_a_video(request):
            return None
        size, word = request_size(request)
        seen = self._seen.get(price_class(request))
        listed = self.table(request) if self.table is not None else None
        auto = isinstance(request, OmniImageRequest) and request.is_auto_series
        if seen is not None and seen.tasks:
            exact = seen.exact.get(size)
            if exact is not None and not auto:
                units = exact
                basis = f"observed: at most {exact} units for {size} {word}(s)"
            else:
                units = seen.rate * size
                basis = f"observed: at most {seen.rate} units per {word}, × {size}"
            basis += f" ({seen.tasks} task(s) of {_class_name(request)})"
            if auto and listed is not None and listed.units > units:
                return listed  # an auto series may make more images than any seen so far
            return Estimate(units=units, basis=basis)
        return listed

    def observe(self, request: Request, result: TaskResult) -> None:
        """Learn from an ended task's charge (a task charged nothing teaches nothing: failed
        tasks are not charged)."""
        if result.units is None or result.units <= 0 or _edits_a_video(request):
            return
        seen = self._seen.setdefault(price_class(request), _Seen())
        seen.tasks += 1
        size = _produced(request, result)
        seen.exact[size] = max(seen.exact.get(size, Decimal(0)), result.units)
        seen.rate = max(seen.rate, result.units / size)


@attrs.define(eq=False)
class Reservation:
    """The units one request holds of a budget from before its create until its task ends.

    Attributes:
        units: Its estimate (0 when unknown).
        known: Whether an estimate existed.
    """

    request: Request
    units: Decimal
    known: bool


@attrs.define
class UnitBudget:
    """One stream's cap on units (money; the pace of requests is ``_http._rate.RateLimit``):
    before each create, the units spent, plus the estimates of the tasks in flight, plus this
    request's estimate must stay within ``limit``.

    A request whose class has no estimate yet runs while no other such request is in flight
    (its cost is learnt when it ends), so the cap is passed by at most one task's cost. Once a
    request does not fit even with nothing else in flight, it and every later request end
    with :class:`BudgetExceededError`; tasks already created run to their end.

    Args:
        limit: The cap in units.
        estimates: The estimates, shared with the client's other streams.
    """

    limit: Decimal
    estimates: UnitEstimates
    spent: Decimal = attrs.field(default=Decimal(0), init=False)
    _held: Decimal = attrs.field(default=Decimal(0), init=False)
    _unknown: Reservation | None = attrs.field(default=None, init=False)
    _in_flight: int = attrs.field(default=0, init=False)
    _stopped: str | None = attrs.field(default=None, init=False)  # why nothing more is created
    _changed: anyio.Event = attrs.field(factory=anyio.Event, init=False)

    async def reserve(self, request: Request) -> Reservation:
        """Hold the request's estimate, waiting while tasks in flight may leave room.

        Raises:
            BudgetExceededError: the request does not fit (or an earlier one did not).
        """
        while True:
            if self._stopped is not None:
                raise BudgetExceededError(
                    f"budget_units={self.limit} reached: {self._stopped}; this request is not "
                    "created, nor any later one",
                    limit=self.limit,
                    spent=self.spent,
                )
            estimate = self.estimates.estimate(request)
            if estimate is None:
                if self.spent >= self.limit:
                    self._stop(request, None)
                    continue
                if self._unknown is None and self.spent + self._held < self.limit:
                    self._unknown = Reservation(request, Decimal(0), known=False)
                    self._in_flight += 1
                    return self._unknown
            elif self.spent + self._held + estimate.units <= self.limit:
                self._held += estimate.units
                self._in_flight += 1
                return Reservation(request, estimate.units, known=True)
            elif self._in_flight == 0 or self.spent + estimate.units > self.limit:
                self._stop(request, estimate)
                continue
            changed = self._changed
            await changed.wait()

    def adopt(self, request: Request) -> Reservation:
        """Hold the estimate of a task that already exists (re-attached from the journal):
        it is charged when it ends, whatever the budget, so it is counted, never refused."""
        estimate = self.estimates.estimate(request)
        units = estimate.units if estimate is not None else Decimal(0)
        self._held += units
        self._in_flight += 1
        return Reservation(request, units, known=estimate is not None)

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose request created nothing (or re-attached to a task
        this budget does not pay for)."""
        self._end(reservation)

    def settle(self, reservation: Reservation, result: TaskResult | None, task_id: str) -> None:
        """Count the charge of task ``task_id`` once the stream stops following it: the units
        ``result`` reports, else its estimate (a task still running when the deadline passed
        is charged later), and learn from it.

        A task whose class had no estimate and whose charge is not reported leaves the budget
        unknowable: nothing more is created.
        """
        if result is not None:
            self.estimates.observe(reservation.request, result)
        if result is not None and result.units is not None:
            self.spent += result.units
        elif reservation.known:
            self.spent += reservation.units
        else:
            self._stopped = (
                f"the charge of task {task_id}, which had no estimate, is not known, so the "
                "budget cannot be kept"
            )
        self._end(reservation)

    def _end(self, reservation: Reservation) -> None:
        if reservation is self._unknown:
            self._unknown = None
        self._held -= reservation.units
        self._in_flight -= 1
        self._changed.set()
        self._changed = anyio.Event()

    def _stop(self, request: Request, estimate: Estimate | None) -> None:
        what = (
            f"estimated at {estimate.units} units ({estimate.basis})"
            if estimate is not None
            else "of unknown cost"
        )
        self._stopped = (
            f"{self.spent} units spent and {self._held} held by tasks in flight, and an "
            f"{request.kind} request {what} does not fit"
        )
        self._changed.set()
        self._changed = anyio.Event()


def check_budget_units(
    units: Decimal | None, *, reports_units: bool, wire_api: str, name: str = "budget_units"
) -> None:
    """Refuse a unit budget on a wire API whose task answers carry no charge (Modellix): it
    could not be kept. ``name`` is the setting as the user gave it (``"--budget"``).

    Raises:
        ValueError: ``units`` is given and the wire API reports no units.
    """
    if units is not None and not reports_units:
        raise ValueError(
            f"{name}: {wire_api} reports no units per task, so a budget cannot be kept on it"
        )
