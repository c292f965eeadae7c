"""The quota policy, written once: :func:`decide`, a pure function of a pool and its waiters.

``decide(pool, waiters, now)`` says which waiting requests start now and with how many slots;
it reads only its arguments and returns new values (no I/O, no clock, no anyio). The in-process
backend runs it (:class:`~._policy.PoolLimiter`); the Redis backend's script
(``_redis.lua``, ``grant_pass``) mirrors it rule for rule, under the same rule names and in the
same order, and ``tests/test_quota_equivalence.py`` replays random event sequences through both
and compares their grants.

The rules, in the order a pass applies them (the module docstring of ``_policy`` says why
each exists; ``benchmarks/quota_policy_sim.py`` measures them):

1. ``LOOKAHEAD``: only the oldest :data:`LOOKAHEAD` waiters are looked at.
2. ``PROBE``: slots proven held elsewhere (``hidden``) are given back one per probe interval
   (the mean task duration, 1 s before one ended) once the oldest has waited that long.
3. ``PRICE``: an ``auto`` series fits in ``MIN_SERIES`` free slots; once it has waited its
   patience it asks one slot more than it was ever refused with.
4. ``HEAD``: the oldest waiter starts when it fits.
5. ``PROTECT``: once the oldest has waited its patience (:func:`patience`), and it could fit
   beside the hidden slots, it is protected: later waiters may not delay it.
6. ``BACKFILL``: beside a protected head, a later waiter starts only if it fits and is expected
   to end before the head can start (its shadow time, from the in-flight tasks' expected ends)
   or fits in the slots that will be spare then (EASY backfilling).
7. ``BEST_FIT``: otherwise the largest waiter that fits, the oldest among equals.
8. ``OVERBOOK``: when nothing fits, ``auto`` series are in flight (``auto_slack``), no
   overbooking create is unanswered, none was refuted since a task ended and nothing is
   hidden, the smallest waiter that fits in the free slots plus the slack starts (only the
   protected head, if there is one); the excess is counted ``overbooked``.
9. ``TAKE``: a granted ``auto`` series (not overbooking) holds as many of the free slots as its
   reservation (``upto``) allows, at least its price.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import attrs

__all__ = [
    "FIRST_PATIENCE",
    "LOOKAHEAD",
    "MAX_SERIES",
    "MIN_SERIES",
    "PATIENCE_TASKS",
    "Decision",
    "Grant",
    "PoolState",
    "Waiter",
    "decide",
    "patience",
    "probe_interval",
]

MIN_SERIES, MAX_SERIES = (
    2,
    9,
)  # series_amount 2–9: https://kling.ai/document-api/api/image/3-0-omni/image-omni
PATIENCE_TASKS = 30  # hol_patience="auto": this many of the pool's mean task durations
FIRST_PATIENCE = 300.0  # hol_patience="auto" before any task of the pool has ended, seconds
LOOKAHEAD = 64  # waiters a pass looks at, oldest first

Patience = float | Literal["auto"] | None


@attrs.frozen(kw_only=True)
class PoolState:
    """What the policy knows of one pool at the start of a pass.

    Attributes:
        capacity: Slots of the pool.
        in_use: Slots counted as held by granted requests (overbooked ones included).
        hidden: Slots the server holds that no grant accounts for (proven by 1303s).
        overbooked: Slots counted as held that the server has proven free.
        auto_slack: Σ (reserved − ``MIN_SERIES``) over the ``auto`` series in flight.
        overbooking: An overbooking grant's create is not answered yet.
        refuted: An overbooking create got 1303 and no task has ended since.
        peak: Most slots held at once (``in_use - overbooked``).
        last_probe: When ``PROBE`` last gave a hidden slot back, seconds (``-inf``: never).
        mean: The pool's mean task duration, seconds (None before one ended).
        hol_patience: Seconds, ``"auto"`` or None (see :func:`patience`).
        frees: ``(expected end, slots)`` of the in-flight tasks (:func:`expected_frees`).
    """

    capacity: int
    in_use: int = 0
    hidden: int = 0
    overbooked: int = 0
    auto_slack: int = 0
    overbooking: bool = False
    refuted: bool = False
    peak: int = 0
    last_probe: float = -math.inf
    mean: float | None = None
    hol_patience: Patience = "auto"
    frees: tuple[tuple[float, int], ...] = ()


@attrs.frozen(kw_only=True)
class Waiter:
    """One waiting request: ``ticket`` (arrival order, lowest first), ``cost`` (slots; for an
    ``auto`` series the fewest it may start in), ``since`` (seconds, when it first waited),
    and for an ``auto`` series ``upto`` (its reservation: most slots it is counted as
    holding) and ``refused`` (most slots a create of it was refused with)."""

    ticket: int
    cost: int
    since: float
    upto: int | None = None
    refused: int = 0


@attrs.frozen(kw_only=True)
class Grant:
    """``ticket`` starts holding ``slots``, of which ``excess`` are overbooked (0: none)."""

    ticket: int
    slots: int
    excess: int = 0


@attrs.frozen(kw_only=True)
class Decision:
    """The grants of one pass, oldest decision first, and the pool after them."""

    grants: tuple[Grant, ...]
    pool: PoolState


def patience(hol_patience: Patience, mean: float | None) -> float | None:
    """Seconds the oldest waiter may be overtaken before it is protected (None: never):
    ``hol_patience`` seconds, or for ``"auto"`` ``PATIENCE_TASKS`` mean task durations
    (``FIRST_PATIENCE`` before one ended)."""
    if hol_patience != "auto":
        return hol_patience
    return FIRST_PATIENCE if mean is None else PATIENCE_TASKS * mean


def probe_interval(mean: float | None) -> float:
    """Seconds between two hidden slots given back (``PROBE``): the mean task duration, 1 s
    before one ended; at least 0.01 s."""
    return max(0.01, mean if mean is not None else 1.0)


def expected_frees(
    tasks: Sequence[tuple[float, int]], mean: float | None, now: float
) -> tuple[tuple[float, int], ...]:
    """``(expected end, slots)`` of in-flight tasks given as ``(started, slots)``: started +
    the mean duration (seconds), but no sooner than a tenth of the mean from ``now`` (a task
    older than the mean is due soon, not over)."""
    m = mean or 0.0
    return tuple((max(started + m, now + 0.1 * m), slots) for started, slots in tasks)


def decide(
    pool: PoolState,
    waiters: Sequence[Waiter],
    now: float,
    *,
    without: frozenset[str] = frozenset(),
) -> Decision:
    """One grant pass over ``waiters`` (sorted by ticket) of ``pool`` at ``now`` (seconds):
    the rules of the module docstring, in order, until nothing more starts.

    ``without`` names rules to leave out (``"BACKFILL"``: a protected head is never
    overtaken; ``"BEST_FIT"``: the oldest waiter that fits instead of the largest), for the
    ablations of ``benchmarks/quota_policy_sim.py``; the library never sets it."""
    ws = list(waiters[:LOOKAHEAD])  # LOOKAHEAD
    if not ws:
        return Decision(grants=(), pool=pool)
    cap, hidden, last_probe = pool.capacity, pool.hidden, pool.last_probe
    in_use, overbooked, peak, overbooking = pool.in_use, pool.overbooked, pool.peak, False
    # PROBE
    probe = probe_interval(pool.mean)
    if hidden > 0 and now - ws[0].since >= probe and now - last_probe >= probe:
        hidden, last_probe = hidden - 1, now
    wait = patience(pool.hol_patience, pool.mean)

    def price(w: Waiter) -> int:  # PRICE
        if w.upto is not None and wait is not None and now - w.since >= wait:
            return max(w.cost, min(w.refused + 1, MAX_SERIES, cap))
        return min(w.cost, cap)

    grants: list[Grant] = []
    while ws:
        free = cap - in_use - hidden + overbooked
        head_price = price(ws[0])
        # PROTECT
        protected = wait is not None and now - ws[0].since >= wait and head_price <= cap - hidden
        chosen, chosen_price, excess = -1, 0, 0
        if head_price <= free:  # HEAD
            chosen, chosen_price = 0, head_price
        elif protected and "BACKFILL" in without:
            pass
        elif protected:  # BACKFILL
            ends_in_time, spare = _shadow(pool, free, head_price, now)
            for i in range(1, len(ws)):
                c = price(ws[i])
                if c <= free and (ends_in_time or c <= min(spare, free)) and c > chosen_price:
                    chosen, chosen_price = i, c
        else:  # BEST_FIT
            for i in range(1, len(ws)):
                c = price(ws[i])
                if c <= free and c > chosen_price:
                    chosen, chosen_price = i, c
                    if "BEST_FIT" in without:
                        break
        if chosen < 0:  # OVERBOOK
            slack = pool.auto_slack - overbooked
            if pool.overbooking or overbooking or pool.refuted or hidden > 0 or slack <= 0:
                break
            for i in range(1 if protected else len(ws)):
                c = price(ws[i])
                if c <= free + slack and (chosen < 0 or c < chosen_price):
                    chosen, chosen_price = i, c
            if chosen < 0:
                break
            excess = chosen_price - max(free, 0)
        w = ws.pop(chosen)
        slots = chosen_price
        if excess > 0:
            overbooked += excess
            overbooking = True
        elif w.upto is not None:  # TAKE
            slots = max(slots, min(free, w.upto, cap))
        in_use += slots
        peak = max(peak, in_use - overbooked)
        grants.append(Grant(ticket=w.ticket, slots=slots, excess=max(excess, 0)))
    after = attrs.evolve(
        pool,
        in_use=in_use,
        hidden=hidden,
        overbooked=overbooked,
        overbooking=pool.overbooking or overbooking,
        peak=peak,
        last_probe=last_probe,
    )
    return Decision(grants=tuple(grants), pool=after)


def _shadow(pool: PoolState, free: int, head: int, now: float) -> tuple[bool, int]:
    """For ``BACKFILL``: whether a task started now is expected to end before the head can
    start (its shadow time), and the slots spare beside the head then."""
    spare = free - head
    if pool.mean is None:
        return False, spare
    available = free
    for end, slots in sorted(pool.frees):
        available += slots
        if available >= head:
            return now + pool.mean <= end, available - head
    return False, spare
