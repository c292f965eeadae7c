"""``decide``, the quota policy written once: pure data in, pure data out."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from kling_async._quota._decide import PoolState, Waiter, decide

NOW = 1_000.0


@st.composite
def pools_and_waiters(draw: st.DrawFn) -> tuple[PoolState, list[Waiter]]:
    capacity = draw(st.integers(1, 9))
    in_use = draw(st.integers(0, capacity))
    auto_slack = draw(st.integers(0, 7))
    pool = PoolState(
        capacity=capacity,
        in_use=in_use,
        hidden=draw(st.integers(0, capacity - 1)),
        overbooked=draw(st.integers(0, auto_slack)),
        auto_slack=auto_slack,
        overbooking=draw(st.booleans()),
        refuted=draw(st.booleans()),
        mean=draw(st.none() | st.floats(0.0, 100.0)),
        hol_patience=draw(st.sampled_from([None, 0.0, 30.0, "auto"])),
        frees=tuple(
            draw(st.lists(st.tuples(st.floats(NOW, NOW + 200), st.integers(1, 9)), max_size=5))
        ),
    )
    waiters = [
        Waiter(
            ticket=ticket,
            cost=draw(st.integers(1, capacity)) if not auto else 2,
            since=draw(st.floats(NOW - 600, NOW)),
            upto=draw(st.integers(2, 9)) if auto else None,
            refused=draw(st.integers(0, 9)) if auto else 0,
        )
        for ticket, auto in enumerate(draw(st.lists(st.booleans(), max_size=12)))
    ]
    return pool, waiters


@given(pools_and_waiters())
def test_a_second_pass_at_the_same_time_grants_nothing_more(
    case: tuple[PoolState, list[Waiter]],
) -> None:
    """A pass is deterministic and idempotent: the same inputs give the same grants, and
    running it again on its result at the same time grants nothing (so the Redis backend's
    extra passes change nothing)."""
    pool, waiters = case
    first = decide(pool, waiters, NOW)
    assert decide(pool, waiters, NOW) == first
    granted = {g.ticket for g in first.grants}
    left = [w for w in waiters if w.ticket not in granted]
    again = decide(first.pool, left, NOW)
    assert again.grants == ()
    assert again.pool == first.pool


@given(pools_and_waiters())
def test_grants_never_exceed_the_free_slots_and_overbook_once(
    case: tuple[PoolState, list[Waiter]],
) -> None:
    """Slots counted as held never exceed the capacity less the hidden slots plus the
    overbooked ones, at most one grant overbooks, and only when none was in flight."""
    pool, waiters = case
    decision = decide(pool, waiters, NOW)
    after = decision.pool
    added = sum(g.slots for g in decision.grants)
    assert after.in_use == pool.in_use + added
    if added:
        assert after.in_use <= after.capacity - after.hidden + after.overbooked
    overbooking = [g for g in decision.grants if g.excess]
    assert len(overbooking) <= 1
    if overbooking:
        assert not pool.overbooking and not pool.refuted and after.hidden == 0
    assert attrs.has(type(after)) and after.capacity == pool.capacity
