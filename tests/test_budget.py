"""Unit budgets: ``stream(..., budget_units=N)`` against the sandbox, which charges units per
task as Kling documents them (``final_unit_deduction``); the stop comes within one task's
cost, nothing is sent for the requests that do not fit, and running tasks finish."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import attrs
import pytest

import kling_async as ka
from kling_async._engine._budget import UnitBudget, UnitEstimates
from kling_async._engine._prices import Estimate
from kling_async.testing import Sandbox

from .conftest import API_KEY

pytestmark = pytest.mark.anyio


def _image(n: int = 1, **kwargs: object) -> ka.OmniImageRequest:
    return ka.OmniImageRequest(prompt="a red chair", n=n, **kwargs)  # type: ignore[arg-type]


def _spent(outcomes: list[ka.Outcome]) -> Decimal:
    return sum((o.result.units or Decimal(0) for o in outcomes if o.result is not None), Decimal(0))


async def test_the_budget_stops_creates_within_one_tasks_cost(
    sandbox: Sandbox, client: ka.KlingClient
) -> None:
    """20 one-image requests of 8 units each (Kling's list price, which the sandbox charges)
    under a 50-unit budget: 6 tasks run (48 units), and the 7th and every later request ends
    with BudgetExceededError without a create."""
    outcomes = await client.run_all([_image() for _ in range(20)], budget_units=50)
    created = [o for o in outcomes if o.task is not None]
    refused = [o for o in outcomes if isinstance(o.error, ka.BudgetExceededError)]
    assert len(created) == 6 and all(o.ok for o in created)
    assert len(refused) == 14 and all(o.task is None for o in refused)
    assert sandbox.stats().creates == 6  # nothing was sent for the refused ones
    assert _spent(outcomes) == 48 <= 50
    error = refused[0].error
    assert isinstance(error, ka.BudgetExceededError)
    assert error.limit == 50 and "budget_units=50" in str(error)


def _o1_with_sound(mode: str, duration: int) -> ka.OmniVideoRequest:
    """A request Kling publishes no price for (Kling O1's rows say nothing of sound)."""
    return ka.OmniVideoRequest(
        prompt="a chair turns", duration=duration, mode=mode, aspect_ratio="16:9", sound="on"
    )


async def test_tasks_of_unknown_cost_run_one_at_a_time(
    sandbox: Sandbox, client: ka.KlingClient
) -> None:
    """With no estimate for a class, one request of unknown cost is in flight at a time: the
    first task of the second unpriced class starts after the first one's ended."""
    requests = [_o1_with_sound("pro", 5), _o1_with_sound("std", 10)] * 3
    outcomes = await client.run_all(requests, budget_units=1000)
    assert all(o.ok for o in outcomes)
    firsts = {}
    for task in sorted(sandbox.tasks, key=lambda t: t.created_at):
        firsts.setdefault(task.body.get("mode"), task)
    one, other = sorted(firsts.values(), key=lambda t: t.created_at)
    assert one.ends_at <= other.created_at


async def test_the_budget_is_passed_by_at_most_one_tasks_charge(
    sandbox: Sandbox, client: ka.KlingClient
) -> None:
    """A mix of priced and unpriced classes under a small budget: what was charged stays
    within the budget plus one task's charge, and nothing was sent for the refused."""
    requests = [
        _image(n=3, resolution="2k"),
        _o1_with_sound("pro", 5),
        _image(n=2, model_name="kling-v3-omni", resolution="4k", aspect_ratio="1:1"),
        _o1_with_sound("std", 10),
    ] * 3
    budget = 60
    outcomes = await client.run_all(requests, budget_units=budget)
    charged = [o.result.units for o in outcomes if o.result is not None and o.result.units]
    assert charged and _spent(outcomes) <= budget + max(charged)
    assert any(isinstance(o.error, ka.BudgetExceededError) for o in outcomes)
    assert sandbox.stats().creates == len(charged)


async def test_a_finished_journal_entry_costs_nothing_new(sandbox: Sandbox, tmp_path: Path) -> None:
    """A second run with the journal reuses finished results: they count nothing against the
    new run's budget, which a one-task budget would otherwise refuse."""
    requests = [_image(external_task_id=f"chair-{i}") for i in range(3)]
    kwargs: dict[str, object] = {
        "api_key": API_KEY,
        "base_url": sandbox.base_url,
        "journal": tmp_path / "j.sqlite",
        "image_poll_interval": 0.05,
    }
    async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
        first = await client.run_all(requests)
    assert all(o.ok for o in first)
    async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
        again = await client.run_all(requests, budget_units=1)
    assert all(o.ok for o in again) and sandbox.stats().creates == 3


async def test_the_estimate_learnt_in_one_stream_serves_the_next(
    sandbox: Sandbox, client: ka.KlingClient
) -> None:
    """After one stream saw what an unpriced class (Kling O1 video with sound) is charged,
    the next stream knows it: a budget for one such video refuses the second at once."""
    video = ka.OmniVideoRequest(prompt="a chair turns", aspect_ratio="16:9", sound="on")
    first = await client.run_all([video])
    charge = first[0].result.units if first[0].result is not None else None
    assert first[0].ok and charge
    outcomes = await client.run_all([video, video], budget_units=charge)
    assert outcomes[0].ok and isinstance(outcomes[1].error, ka.BudgetExceededError)
    assert f"estimated at {charge} units (observed" in str(outcomes[1].error)
    assert sandbox.stats().creates == 2


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-5, ValueError),
        ("ten", ValueError),
        ("NaN", ValueError),
        (1.5, TypeError),
        (True, TypeError),
    ],
)
async def test_a_bad_budget_is_refused_before_anything_is_sent(
    sandbox: Sandbox, client: ka.KlingClient, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="budget_units"):
        async with client.stream([_image()], budget_units=value):  # type: ignore[arg-type]
            pass
    assert sandbox.stats().requests == 0


async def test_modellix_cannot_keep_a_budget() -> None:
    """Modellix's task answers carry no charge: a budget there is refused, with the reason,
    before any request."""
    async with (
        Sandbox(api_keys=(API_KEY,), image_duration=0.05, seed=3) as sb,
        ka.KlingClient(
            api_key=API_KEY, provider="modellix", base_url=sb.modellix_base_url
        ) as client,
    ):
        with pytest.raises(ValueError, match="reports no units"):
            async with client.stream([_image()], budget_units=100):
                pass
        assert sb.stats().requests == 0


# -- the rules on their own (no server: the arithmetic of reserve / settle) --------------------


def _result(units: str | None, images: int = 1) -> ka.TaskResult:
    return ka.TaskResult(
        task_id="t",
        status=ka.TaskStatus.SUCCEEDED,
        images=tuple(ka.GeneratedImage(index=i, url=f"http://x/{i}") for i in range(images)),
        units=None if units is None else Decimal(units),
    )


async def test_a_request_waits_while_a_pessimistic_estimate_may_leave_room() -> None:
    """An auto series is estimated at 9 images; when it is charged for 3, the request that
    waited behind it fits."""
    table = Estimate(units=Decimal(72), basis="list price: 9 images × 8")
    estimates = UnitEstimates(table=lambda r: table)
    budget = UnitBudget(Decimal(100), estimates)
    series = _image(
        model_name="kling-v3-omni", result_type="series", series_amount="auto", aspect_ratio="1:1"
    )
    first = await budget.reserve(series)
    waited = False
    async with anyio.create_task_group() as tg:

        async def second() -> None:
            nonlocal waited
            await budget.reserve(series)
            waited = True

        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        assert not waited  # 72 + 72 > 100: wait, the first may cost less
        budget.settle(first, _result("24", images=3), "t1")
    assert waited and budget.spent == 24


async def test_an_unreported_charge_of_unknown_cost_stops_the_budget() -> None:
    budget = UnitBudget(Decimal(100), UnitEstimates(table=None))
    unknown = await budget.reserve(_image())
    budget.settle(unknown, _result(None), "t1")
    with pytest.raises(ka.BudgetExceededError, match="charge of task t1"):
        await budget.reserve(_image())


def test_estimates_scale_the_most_seen_per_image() -> None:
    """Learnt per image: after 8 and then 10 units for one image, four images are 40."""
    estimates = UnitEstimates(table=None)
    estimates.observe(_image(), _result("8"))
    estimates.observe(_image(), _result("10"))
    four = estimates.estimate(_image(n=4))
    assert four is not None and four.units == 40 and "per image" in four.basis
    one = estimates.estimate(_image())
    assert one is not None and one.units == 10
    assert estimates.estimate(_image(resolution="2k")) is None  # another class


def test_an_edit_of_a_base_video_is_never_estimated() -> None:
    """A base video edit's output is as long as its input: what one edit was charged says
    nothing of the next, so each stays of unknown cost (runs alone among such requests)."""
    edit = ka.OmniVideoRequest(
        prompt="make it night",
        model_name="kling-v3-omni",
        video_list=[ka.ReferenceVideo(video="https://example.com/in.mp4", refer_type="base")],
    )
    estimates = UnitEstimates()
    estimates.observe(
        edit, ka.TaskResult(task_id="t", status=ka.TaskStatus.SUCCEEDED, units=Decimal(9))
    )
    assert estimates.estimate(edit) is None
    feature = attrs.evolve(
        edit,
        video_list=[ka.ReferenceVideo(video="https://example.com/in.mp4", refer_type="feature")],
        aspect_ratio="16:9",
    )
    assert estimates.estimate(feature) is not None  # priced: 3.0 Omni with video input


async def test_a_task_still_running_from_an_earlier_run_counts_against_the_budget(
    tmp_path: Path,
) -> None:
    """A run re-attached (through the journal) to a task created earlier and still running
    pays for it when it ends: its estimate is held, so an 8-unit budget has no room for a
    second 8-unit request."""
    async with Sandbox(api_keys=(API_KEY,), image_duration=(1.0, 1.0), seed=5) as sb:
        kwargs: dict[str, object] = {
            "api_key": API_KEY,
            "base_url": sb.base_url,
            "journal": tmp_path / "j.sqlite",
            "image_poll_interval": 0.05,
        }
        first = _image(external_task_id="chair-running")
        async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
            await client.submit(first)  # created, then the client goes away
        async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
            outcomes = await client.run_all([first, _image()], budget_units=8)
        assert outcomes[0].ok and isinstance(outcomes[1].error, ka.BudgetExceededError)
        assert sb.stats().creates == 1


async def test_progress_counts_no_units_for_results_of_an_earlier_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Progress.units_spent is what this stream's tasks were charged: a second run answered
    from the journal reports 0, as client.stats() does, though each result says 8 units."""
    kwargs: dict[str, object] = {
        "api_key": API_KEY,
        "base_url": sandbox.base_url,
        "journal": tmp_path / "j.sqlite",
        "image_poll_interval": 0.05,
    }
    requests = [_image(external_task_id=f"chair-{i}") for i in range(2)]
    async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
        await client.run_all(requests)
    seen: list[ka.Progress] = []
    async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
        again = await client.run_all(requests, on_progress=seen.append)
        stats = client.stats()
    assert all(o.result is not None and o.result.units == 8 for o in again)
    assert seen[-1].finished and seen[-1].units_spent == 0 == stats.units_spent
