"""The per-pool weighted limiter, its head-of-line policy, and request costs (reference §9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kling_async as ka
from kling_async._quota._policy import (
    FIRST_PATIENCE,
    PATIENCE_TASKS,
    AutoSeriesEstimator,
    PoolLimiter,
    request_cost,
)


@pytest.fixture
def anyio_backend() -> str:
    """The limiter runs on asyncio like the rest of the SDK."""
    return "asyncio"


async def _until(condition: Callable[[], bool]) -> None:
    """Wait up to about 2 s for ``condition`` to hold, checking every millisecond."""
    for _ in range(2000):
        if condition():
            return
        await anyio.sleep(0.001)
    pytest.fail("condition not reached within 2 s")


async def _take(limiter: PoolLimiter, cost: int, ticket: int, order: list[str], name: str) -> None:
    await limiter.acquire(cost, ticket=ticket, since=anyio.current_time())
    order.append(name)


# --------------------------------------------------------------------------------------------
# Basic grants
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_grants_up_to_capacity_without_waiting() -> None:
    """Acquires whose costs fit in the capacity return at once and are counted in in_use/peak."""
    limiter = PoolLimiter("kling-v3-omni:image", 9)
    with anyio.fail_after(1):
        await limiter.acquire(4, ticket=0, since=anyio.current_time())
        await limiter.acquire(5, ticket=1, since=anyio.current_time())
    assert (limiter.in_use, limiter.peak, limiter.waiting) == (9, 9, 0)
    limiter.release(4)
    limiter.release(5)
    assert (limiter.in_use, limiter.peak) == (0, 9)


@pytest.mark.anyio
async def test_waiter_is_woken_by_release() -> None:
    """A request that does not fit waits, and starts when enough slots are released."""
    limiter = PoolLimiter("kling-video-o1:video", 2)
    await limiter.acquire(2, ticket=0, since=anyio.current_time())
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_take, limiter, 1, 1, order, "waiter")
        await _until(lambda: limiter.waiting == 1)
        await anyio.sleep(0.02)
        assert order == []
        limiter.release(1)
        await _until(lambda: order == ["waiter"])
    assert (limiter.in_use, limiter.waiting) == (2, 0)


@pytest.mark.anyio
async def test_cost_over_capacity_raises_quota_error() -> None:
    """A cost above the pool's capacity raises QuotaError naming the cost, pool and capacity."""
    limiter = PoolLimiter("kling-image-o1:image", 5)
    with pytest.raises(ka.QuotaError, match=r"costing 9 slots .* kling-image-o1:image of 5 slots"):
        await limiter.acquire(9, ticket=0, since=anyio.current_time())
    assert (limiter.in_use, limiter.waiting) == (0, 0)


@pytest.mark.anyio
async def test_occupy_counts_slots_without_waiting() -> None:
    """occupy() holds slots of a re-attached task, so later acquires wait for them."""
    limiter = PoolLimiter("p:image", 3)
    limiter.occupy(3)
    assert (limiter.in_use, limiter.peak) == (3, 3)
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_take, limiter, 1, 0, order, "next")
        await _until(lambda: limiter.waiting == 1)
        limiter.release(3)
    assert order == ["next"]
    assert limiter.in_use == 1


@pytest.mark.anyio
async def test_wait_for_release_returns_on_release_or_patience() -> None:
    """wait_for_release() returns when slots are released, or after the patience otherwise."""
    limiter = PoolLimiter("p:image", 2)
    limiter.occupy(2)
    with anyio.fail_after(1):
        await limiter.wait_for_release(0.01)  # nothing released: returns after the patience
    with anyio.fail_after(1):  # would hang for 60 s if release did not wake the waiter
        async with anyio.create_task_group() as tg:
            tg.start_soon(limiter.wait_for_release, 60.0)
            await anyio.sleep(0.01)
            limiter.release(1)
    assert limiter.in_use == 1


# --------------------------------------------------------------------------------------------
# Cancellation
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancelled_waiter_leaves_in_use_unchanged_and_lets_others_in() -> None:
    """Cancelling a waiting acquire frees its place: in_use is unchanged, later waiters start."""
    limiter = PoolLimiter("p:image", 3, hol_patience=0)
    await limiter.acquire(2, ticket=0, since=anyio.current_time())
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as big_group:
            big_group.start_soon(_take, limiter, 3, 1, order, "big")
            await _until(lambda: limiter.waiting == 1)
            tg.start_soon(_take, limiter, 1, 2, order, "small")
            await _until(lambda: limiter.waiting == 2)
            await anyio.sleep(0.02)
            assert order == []  # strict FIFO: small waits behind big
            big_group.cancel_scope.cancel()
        await _until(lambda: order == ["small"])
    assert (limiter.in_use, limiter.waiting) == (3, 0)


@pytest.mark.anyio
async def test_cancel_racing_a_grant_never_leaks_slots() -> None:
    """An acquire cancelled in the same step it is granted either holds its slots or gives
    them back; in_use never counts slots nobody holds."""
    limiter = PoolLimiter("p:image", 2)
    await limiter.acquire(2, ticket=0, since=anyio.current_time())
    acquired: list[bool] = []

    async def waiter() -> None:
        await limiter.acquire(2, ticket=1, since=anyio.current_time())
        acquired.append(True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await _until(lambda: limiter.waiting == 1)
        limiter.release(2)  # grants the waiter ...
        tg.cancel_scope.cancel()  # ... and cancels it before it resumes
    assert limiter.waiting == 0
    assert limiter.in_use == (2 if acquired else 0)


# --------------------------------------------------------------------------------------------
# Head-of-line policy
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_hol_patience_zero_is_strict_fifo() -> None:
    """With hol_patience=0 a large waiter at the head blocks later small ones that would fit."""
    limiter = PoolLimiter("p:image", 9, hol_patience=0)
    await limiter.acquire(5, ticket=0, since=anyio.current_time())
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_take, limiter, 9, 1, order, "big")
        await _until(lambda: limiter.waiting == 1)
        tg.start_soon(_take, limiter, 1, 2, order, "small")
        await _until(lambda: limiter.waiting == 2)
        await anyio.sleep(0.05)
        assert order == []  # 4 slots free, but small may not pass big
        limiter.release(5)
        await _until(lambda: order == ["big"])
        assert (limiter.in_use, limiter.waiting) == (9, 1)
        limiter.release(9)
    assert order == ["big", "small"]
    assert limiter.in_use == 1


@pytest.mark.anyio
async def test_hol_patience_none_lets_small_requests_overtake() -> None:
    """With hol_patience=None small requests that fit start before an earlier large waiter."""
    limiter = PoolLimiter("p:image", 9, hol_patience=None)
    await limiter.acquire(5, ticket=0, since=anyio.current_time())
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_take, limiter, 9, 1, order, "big")
        await _until(lambda: limiter.waiting == 1)
        await anyio.sleep(0.1)
        tg.start_soon(_take, limiter, 2, 2, order, "small1")
        tg.start_soon(_take, limiter, 2, 3, order, "small2")
        await _until(lambda: len(order) == 2)
        assert (limiter.in_use, limiter.waiting) == (9, 1)
        limiter.release(5)
        limiter.release(2)
        limiter.release(2)
    assert order == ["small1", "small2", "big"]
    assert limiter.in_use == 9


def _patient(patience: float | Literal["auto"]) -> PoolLimiter:
    """A pool whose patience is 0.15 s: given in seconds, or as ``"auto"``, 30 mean task
    durations of 5 ms."""
    if patience == "auto":
        limiter = PoolLimiter("p:image", 9, hol_patience="auto")
        limiter.expected_duration = lambda: 0.005
        return limiter
    return PoolLimiter("p:image", 9, hol_patience=patience)


def test_patience_in_seconds_or_in_mean_task_durations() -> None:
    """patience() is hol_patience in seconds, or for "auto" PATIENCE_TASKS mean durations of
    the pool's tasks (FIRST_PATIENCE while no duration is known), or None."""
    assert PoolLimiter("p:image", 9, hol_patience=12.5).patience() == 12.5
    assert PoolLimiter("p:image", 9, hol_patience=None).patience() is None
    limiter = PoolLimiter("p:image", 9)
    assert limiter.hol_patience == "auto"
    assert limiter.patience() == FIRST_PATIENCE == 300.0
    known: list[float | None] = [None]
    limiter.expected_duration = lambda: known[0]
    assert limiter.patience() == FIRST_PATIENCE
    known[0] = 20.0
    assert limiter.patience() == PATIENCE_TASKS * 20.0 == 600.0


@pytest.mark.anyio
@pytest.mark.parametrize("patience", [0.15, "auto"])
async def test_finite_patience_lets_small_ones_overtake_only_until_it_runs_out(
    patience: float | Literal["auto"],
) -> None:
    """Small requests overtake a large head only until it has waited hol_patience seconds."""
    limiter = _patient(patience)
    await limiter.acquire(5, ticket=0, since=anyio.current_time())
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_take, limiter, 9, 1, order, "big")
        await _until(lambda: limiter.waiting == 1)
        tg.start_soon(_take, limiter, 1, 2, order, "early-small")
        await _until(lambda: order == ["early-small"])  # within patience: overtakes
        await anyio.sleep(0.25)
        tg.start_soon(_take, limiter, 1, 3, order, "late-small")
        await _until(lambda: limiter.waiting == 2)
        await anyio.sleep(0.05)
        assert order == ["early-small"]  # patience spent: late-small waits behind big
        limiter.release(5)
        await anyio.sleep(0.02)
        assert order == ["early-small"]  # 8 free, big needs 9, still nobody overtakes
        limiter.release(1)
        await _until(lambda: order == ["early-small", "big"])
        limiter.release(9)
    assert order == ["early-small", "big", "late-small"]
    assert (limiter.in_use, limiter.waiting) == (1, 0)


@pytest.mark.anyio
async def test_patience_is_judged_on_the_pools_clock() -> None:
    """With a virtual ``clock``, patience runs out when that clock says so, not anyio's: small
    requests overtake the large head at virtual seconds 10 and 500, not at 700, with an
    "auto" patience of 30 mean durations of 20 s (600 s)."""
    virtual = [0.0]
    limiter = PoolLimiter("p:image", 9, clock=lambda: virtual[0])
    limiter.expected_duration = lambda: 20.0
    await limiter.acquire(5, ticket=0, since=0.0)
    order: list[str] = []
    async with anyio.create_task_group() as tg:

        async def take(cost: int, ticket: int, name: str) -> None:
            await limiter.acquire(cost, ticket=ticket, since=virtual[0])
            order.append(name)

        tg.start_soon(take, 9, 1, "big")
        await _until(lambda: limiter.waiting == 1)
        virtual[0] = 10.0
        tg.start_soon(take, 1, 2, "early-small")
        await _until(lambda: order == ["early-small"])
        virtual[0] = 500.0  # past a fixed 300 s, within 30 × 20 s
        tg.start_soon(take, 1, 4, "mid-small")
        await _until(lambda: order == ["early-small", "mid-small"])
        virtual[0] = 700.0
        tg.start_soon(take, 1, 3, "late-small")
        await _until(lambda: limiter.waiting == 2)
        await anyio.wait_all_tasks_blocked()
        assert order == ["early-small", "mid-small"]  # big waited 700 s > 600 s: protected
        limiter.release(5)
        limiter.release(1)
        await anyio.wait_all_tasks_blocked()
        assert order == ["early-small", "mid-small"]  # 8 free: big needs 9
        limiter.release(1)
        await _until(lambda: order == ["early-small", "mid-small", "big"])
        limiter.release(9)
    assert order == ["early-small", "mid-small", "big", "late-small"]


@pytest.mark.anyio
async def test_head_larger_than_the_room_others_leave_is_not_protected() -> None:
    """A head whose patience ran out but which costs more than the slots other programs leave
    (capacity − hidden) is not protected: holding slots back could not start it, so a later
    small request still starts instead of the pool stalling. Once the hidden slots are gone,
    the head is protected again."""
    pool = PoolLimiter("m:image", 9, hol_patience=0.0)
    pool.hidden = 3  # another program holds 3 slots, as proven by 1303s
    await pool.acquire(2, ticket=0, since=anyio.current_time())
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_take, pool, 7, 1, order, "seven")
        await _until(lambda: pool.waiting == 1)
        tg.start_soon(_take, pool, 1, 2, order, "small")
        await _until(lambda: order == ["small"])  # 7 > 9 - 3: not protected, small starts
        pool.hidden = 0
        tg.start_soon(_take, pool, 1, 3, order, "late-small")
        await _until(lambda: pool.waiting == 2)
        await anyio.wait_all_tasks_blocked()
        assert order == ["small"]  # 7 <= 9 now: protected, late-small waits behind it
        pool.release(1)
        await _until(lambda: order == ["small", "seven"])
        pool.release(7)
        pool.release(2)
    assert order == ["small", "seven", "late-small"]


@pytest.mark.anyio
async def test_lower_ticket_is_served_first() -> None:
    """A request put back with an earlier ticket is served before later arrivals."""
    limiter = PoolLimiter("p:video", 1, hol_patience=0)
    await limiter.acquire(1, ticket=0, since=anyio.current_time())
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_take, limiter, 1, 20, order, "late")
        await _until(lambda: limiter.waiting == 1)
        tg.start_soon(_take, limiter, 1, 5, order, "requeued")
        await _until(lambda: limiter.waiting == 2)
        limiter.release(1)
        await _until(lambda: len(order) == 1)
        limiter.release(1)
    assert order == ["requeued", "late"]


# --------------------------------------------------------------------------------------------
# Randomised invariant
# --------------------------------------------------------------------------------------------

_jobs = st.lists(
    st.tuples(
        st.integers(1, 9),  # cost (clamped to the capacity)
        st.integers(0, 4),  # checkpoints held
        st.one_of(st.none(), st.integers(0, 6)),  # cancelled after this many checkpoints
    ),
    min_size=1,
    max_size=20,
)


@given(
    capacity=st.integers(1, 9),
    jobs=_jobs,
    patience=st.sampled_from([0, None, 0.0005, 10.0, "auto"]),
)
@settings(max_examples=120, deadline=None)
def test_property_in_use_never_exceeds_capacity_and_returns_to_zero(
    capacity: int, jobs: list[tuple[int, int, int | None]], patience: float | Literal["auto"] | None
) -> None:
    """Random acquire/hold/release/cancel sequences never exceed capacity and end at in_use 0."""

    async def scenario() -> None:
        limiter = PoolLimiter("p:image", capacity, hol_patience=patience)

        async def job(ticket: int, cost: int, hold: int, scope: anyio.CancelScope) -> None:
            with scope:
                await limiter.acquire(cost, ticket=ticket, since=anyio.current_time())
                try:
                    assert limiter.in_use <= capacity
                    for _ in range(hold):
                        await anyio.lowlevel.checkpoint()
                        assert limiter.in_use <= capacity
                finally:
                    limiter.release(cost)

        async def canceller(scope: anyio.CancelScope, after: int) -> None:
            for _ in range(after):
                await anyio.lowlevel.checkpoint()
            scope.cancel()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for ticket, (cost, hold, cancel_after) in enumerate(jobs):
                    scope = anyio.CancelScope()
                    tg.start_soon(job, ticket, min(cost, capacity), hold, scope)
                    if cancel_after is not None:
                        tg.start_soon(canceller, scope, cancel_after)
        assert (limiter.in_use, limiter.waiting) == (0, 0)
        assert limiter.peak <= capacity

    anyio.run(scenario, backend="asyncio")


# --------------------------------------------------------------------------------------------
# AutoSeriesEstimator and request_cost
# --------------------------------------------------------------------------------------------


def test_auto_estimator_reserves_initial_until_min_samples() -> None:
    """Before min_samples series have finished, the estimate is the initial reservation."""
    estimator = AutoSeriesEstimator(initial=9, min_samples=3, margin=1)
    assert estimator.estimate() == 9
    estimator.observe(3)
    estimator.observe(3)
    assert estimator.estimate() == 9
    estimator.observe(4)
    assert estimator.estimate() == 5  # ceil(10/3)=4, plus margin 1


def test_auto_estimator_caps_at_9_and_floors_at_2() -> None:
    """The estimate is ceil(mean)+margin, never above 9 nor below 2."""
    high = AutoSeriesEstimator(min_samples=1)
    for _ in range(3):
        high.observe(9)
    assert high.estimate() == 9
    low = AutoSeriesEstimator(min_samples=1, margin=0)
    low.observe(1)
    assert low.estimate() == 2


def test_auto_estimator_reserves_the_rounded_up_mean() -> None:
    """Counts 2–9 seen once each (mean 5.5) give 6."""
    estimator = AutoSeriesEstimator(min_samples=1)
    for count in range(2, 10):
        estimator.observe(count)
    assert estimator.estimate() == 6


def test_auto_estimator_ignores_empty_series() -> None:
    """Counts of 0 (a series that produced nothing) are not samples."""
    estimator = AutoSeriesEstimator(initial=7, min_samples=1)
    estimator.observe(0)
    assert estimator.estimate() == 7


def test_auto_estimator_uses_only_the_last_window_counts() -> None:
    """With window=3 the estimate follows the mean of the last 3 counts only."""
    estimator = AutoSeriesEstimator(min_samples=3, window=3, margin=1)
    for count in (9, 9, 9, 2, 2, 2):
        estimator.observe(count)
    assert estimator.estimate() == 3  # ceil(mean(2, 2, 2)) + 1


@given(counts=st.lists(st.integers(1, 9), min_size=3, max_size=60))
def test_property_auto_estimate_is_between_2_and_9(counts: list[int]) -> None:
    """Whatever counts are observed, the reservation stays within series_amount's 2–9."""
    estimator = AutoSeriesEstimator()
    for count in counts:
        estimator.observe(count)
    assert 2 <= estimator.estimate() <= 9


def test_request_cost_single_image_is_n() -> None:
    """A single-result image costs n slots (§9: n = 9 → 9)."""
    estimator = AutoSeriesEstimator()
    assert request_cost(ka.OmniImageRequest(prompt="p"), estimator) == 1
    assert request_cost(ka.OmniImageRequest(prompt="p", n=7), estimator) == 7


def test_request_cost_fixed_series_is_series_amount() -> None:
    """A fixed series costs series_amount slots, whatever n says."""
    request = ka.OmniImageRequest(
        prompt="p",
        model_name="kling-v3-omni",
        result_type="series",
        series_amount=6,
        n=2,
        aspect_ratio="1:1",
    )
    assert request_cost(request, AutoSeriesEstimator()) == 6


def test_request_cost_auto_series_follows_the_estimator() -> None:
    """An auto series is priced by the estimator's current reservation, asked at grant time."""
    request = ka.OmniImageRequest(
        prompt="p",
        model_name="kling-v3-omni",
        result_type="series",
        series_amount="auto",
        aspect_ratio="1:1",
    )
    estimator = AutoSeriesEstimator(initial=9, min_samples=2)
    price = request_cost(request, estimator)
    assert callable(price) and price() == 9
    estimator.observe(3)
    estimator.observe(4)
    assert price() == 4  # ceil(mean(3, 4)), the default margin is 0


def test_request_cost_video_is_one() -> None:
    """A video task costs 1 slot (§9)."""
    request = ka.OmniVideoRequest(prompt="p", aspect_ratio="16:9")
    assert request_cost(request, AutoSeriesEstimator()) == 1


def test_reject_raises_hidden_to_the_proven_lower_bound() -> None:
    """A 1303 on a cost-2 create with 5 slots held proves ≥ 3 slots hidden (9 - 2 + 1 - 5)."""
    pool = PoolLimiter("m:image", 9)
    pool.occupy(5)
    pool.occupy(2)
    pool.reject(2)
    assert (pool.in_use, pool.hidden) == (5, 3)
    pool.created()
    assert pool.hidden == 2  # additive probing after a success
    pool.release(0, series=(5, 9))
    assert pool.hidden == 0  # the under-reserved auto series ended: its excess is gone


@pytest.mark.anyio
async def test_hidden_slots_are_probed_back_while_a_request_waits() -> None:
    """Hidden slots that leave no room for any waiter are given back one per mean task duration,
    so a pool with none of its own tasks running never waits forever (the foreign-load case)."""
    pool = PoolLimiter("m:image", 9, expected_duration=lambda: 0.05)
    pool.hidden = 8  # proven by 1303s while another program held the pool
    with anyio.fail_after(2):
        started = anyio.current_time()
        granted = await pool.acquire(3, ticket=1, since=started)
        waited = anyio.current_time() - started
    assert granted == 3 and pool.hidden == 6
    assert waited >= 0.09  # two probes, one per interval for the whole pool


def test_reject_of_an_auto_series_proves_nothing() -> None:
    """An auto series' 1303 leaves hidden unchanged: its real cost was the server's choice."""
    pool = PoolLimiter("m:image", 9)
    pool.occupy(6)
    pool.reject(6, proves_hidden=False)
    assert (pool.in_use, pool.hidden) == (0, 0)


@pytest.mark.anyio
async def test_reject_does_not_wake_waiters_for_a_release() -> None:
    """Giving back a rejected create's slots is not a task ending: wait_for_release sleeps on."""
    pool = PoolLimiter("m:image", 9)
    pool.occupy(3)
    woke = False

    async def waiter() -> None:
        nonlocal woke
        await pool.wait_for_release(0.3)
        woke = anyio.current_time() - start < 0.25

    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.05)
        pool.reject(3)
    assert not woke


@pytest.mark.anyio
async def test_overtaking_picks_the_largest_request_that_fits() -> None:
    """When the head does not fit, the largest waiting request that fits goes first."""
    pool = PoolLimiter("m:image", 9, hol_patience=None)
    pool.occupy(9)  # full
    order: list[int] = []

    async def want(cost: int, ticket: int) -> None:
        await pool.acquire(cost, ticket=ticket, since=anyio.current_time())
        order.append(cost)

    async with anyio.create_task_group() as tg:
        for ticket, cost in enumerate((9, 2, 3, 1), start=1):
            tg.start_soon(want, cost, ticket)
            await anyio.sleep(0.01)
        assert order == []
        pool.release(3)  # 3 free: the head (9) does not fit; 3 is the largest that does
        await anyio.sleep(0.01)
        assert order == [3]
        pool.release(6 + 3)  # all free: the head first, then nothing else fits
        await anyio.sleep(0.01)
        assert order == [3, 9]
        pool.release(9)
    assert order == [3, 9, 2, 1]


@pytest.mark.anyio
async def test_auto_series_price_is_asked_at_grant_time() -> None:
    """A waiting auto series is granted at the estimator's price when it is admitted."""
    pool = PoolLimiter("m:image", 9)
    estimator = AutoSeriesEstimator(initial=9, min_samples=1)
    pool.occupy(4)
    granted: list[int] = []

    async def want() -> None:
        granted.append(await pool.acquire(estimator.estimate, ticket=1, since=0.0))

    async with anyio.create_task_group() as tg:
        tg.start_soon(want)
        await anyio.sleep(0.01)
        assert granted == []  # 9 does not fit in 5
        estimator.observe(5)
        pool.release(0)  # any change re-prices the waiters
    assert granted == [5]


@pytest.mark.parametrize(("duration", "backfilled"), [(1.0, True), (10.0, False)])
@pytest.mark.anyio
async def test_backfill_only_when_it_cannot_delay_an_expired_head(
    duration: float, backfilled: bool
) -> None:
    """Once the head's patience has expired, a later request may start only if it is expected
    to end before enough slots free up for the head (EASY backfilling)."""
    pool = PoolLimiter("m:image", 9, hol_patience=0.0)
    pool.occupy(7)  # 2 free; in flight: 4 slots ending in 1 s, 3 slots ending in 5 s
    now = anyio.current_time()
    pool.expected_frees = lambda: [(now + 1.0, 4), (now + 5.0, 3)]
    pool.expected_duration = lambda: duration
    granted: list[int] = []

    async def want(cost: int, ticket: int) -> None:
        await pool.acquire(cost, ticket=ticket, since=now - 1)
        granted.append(cost)

    async with anyio.create_task_group() as tg:
        tg.start_soon(want, 9, 1)  # the head can start in 5 s, when all 9 are free
        await anyio.sleep(0.01)
        tg.start_soon(want, 2, 2)
        await anyio.sleep(0.01)
        assert granted == ([2] if backfilled else [])
        tg.cancel_scope.cancel()


# -- auto series and overbooking ------------------------------------------------------------


def full_pool_with_auto(patience: float | None = None) -> PoolLimiter:
    """A full pool of 9: a cost-3 task and an auto series that reserved 6 (holds ≥ 2)."""
    pool = PoolLimiter("m:image", 9, hol_patience=patience)
    pool.occupy(3)
    pool.occupy(6, auto_reserved=6)
    return pool


@pytest.mark.anyio
async def test_auto_series_is_granted_up_to_its_reservation_of_the_free_slots() -> None:
    """An auto series fits once 2 slots are free and takes what is free, up to ``upto()``."""
    pool = PoolLimiter("m:image", 9)
    pool.occupy(5)
    assert await pool.acquire(2, ticket=1, since=0.0, upto=lambda: 6) == 4  # all 4 free
    empty = PoolLimiter("m:image", 9)
    assert await empty.acquire(2, ticket=1, since=0.0, upto=lambda: 6) == 6  # the reservation


@pytest.mark.anyio
async def test_overbooking_starts_one_request_at_a_time_in_an_auto_series_reservation() -> None:
    """A full pool whose auto series reserved 6 (it holds ≥ 2) lets one request start in the
    slots that series may not hold; the next waits until that create is answered."""
    pool = full_pool_with_auto()
    assert pool.auto_slack == 4
    assert await pool.acquire(2, ticket=1, since=0.0) == 2
    assert pool.overbooking(1) and pool.overbooked == 2
    granted: list[int] = []

    async def second() -> None:
        granted.append(await pool.acquire(1, ticket=2, since=0.0))

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await anyio.sleep(0.05)
        assert granted == []  # one overbooking create at a time
        pool.created(ticket=1)  # the server took it: those 2 slots were free
        await _until(lambda: granted == [1])
    assert pool.overbooking(2) and pool.overbooked == 3
    assert pool.peak == 9  # slots counted as held on the server never exceed the capacity


@pytest.mark.anyio
async def test_refused_overbooking_waits_for_a_task_to_end() -> None:
    """A 1303 on an overbooking create takes the assumption back; nothing overbooks again
    until a task ends, and then the waiter starts in the slots that task freed."""
    pool = full_pool_with_auto()
    assert await pool.acquire(2, ticket=1, since=0.0) == 2
    pool.reject(2, ticket=1)
    assert (pool.in_use, pool.overbooked, pool.hidden) == (9, 0, 0)
    granted: list[int] = []

    async def retry() -> None:
        granted.append(await pool.acquire(2, ticket=1, since=0.0))

    async with anyio.create_task_group() as tg:
        tg.start_soon(retry)
        await anyio.sleep(0.05)
        assert granted == []
        pool.release(3)
        await _until(lambda: granted == [2])
    assert not pool.overbooking(1) and pool.overbooked == 0


@pytest.mark.anyio
async def test_auto_series_end_takes_back_what_was_overbooked_on_it() -> None:
    """Overbooked slots belong to the auto series' reservation: when it ends holding less than
    it reserved, those slots are gone with it; when it ends, its slack is gone too."""
    pool = full_pool_with_auto()
    assert await pool.acquire(2, ticket=1, since=0.0) == 2
    pool.created(ticket=1)
    pool.release(6, series=(6, 3))
    assert (pool.in_use, pool.overbooked, pool.auto_slack) == (5, 0, 0)


def test_a_1303_outside_overbooking_first_takes_back_overbooked_slots() -> None:
    """A 1303 on an ordinary create proves the server holds ≥ capacity - cost + 1 slots: the
    overbooked slots are counted as held again before any slot is counted as hidden."""
    pool = PoolLimiter("m:image", 9, hol_patience=None)
    pool.occupy(6, auto_reserved=6)
    pool.occupy(3)
    pool.overbooked = 2  # proven free earlier
    pool.occupy(2)  # a create in the 2 slots the counts say are free
    pool.reject(2)  # the server holds ≥ 8 besides it: 6 + 3 - 2 = 7 counted, so 1 more
    assert (pool.overbooked, pool.hidden) == (1, 0)


@pytest.mark.anyio
@pytest.mark.parametrize(("patience", "overbooks"), [(0, False), (None, True)])
async def test_overbooking_never_delays_a_protected_head(
    patience: float | None, overbooks: bool
) -> None:
    """Once the oldest waiter has waited hol_patience, only it may overbook: a later cost-1
    request that fits the slack waits behind a head of 7 that does not (without protection,
    it overbooks)."""
    pool = full_pool_with_auto(patience)
    order: list[int] = []

    async def want(cost: int, ticket: int) -> None:
        await pool.acquire(cost, ticket=ticket, since=0.0)
        order.append(ticket)

    async with anyio.create_task_group() as tg:
        tg.start_soon(want, 7, 1)
        await anyio.sleep(0.01)
        tg.start_soon(want, 1, 2)
        await anyio.sleep(0.05)
        assert order == ([2] if overbooks else [])
        assert pool.overbooking(2) is overbooks
        tg.cancel_scope.cancel()
