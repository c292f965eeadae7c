"""A run's units against the campaign's: ``run --budget N`` (this run) and ``--budget-total N``
(every run into the same ``--out``, resumes included).

The campaign's units are what the journal's finished tasks were charged, whichever run they
ended in. A run with ``--budget-total`` may spend what is left of it (and no more than
``--budget`` when both are given); when nothing is left, lines that never reached the server
are ``over_budget`` and nothing new is sent, while tasks created earlier are still followed and
their files fetched. The summary lines say what this run and the campaign have spent, and why
when a budget was passed (a task of a price class with no estimate yet: see docs/budgets.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import anyio
import attrs

from .._journal import Journal, JournalEntry

__all__ = [
    "CampaignBudget",
    "campaign_budget",
    "campaign_units",
    "exhausted_reason",
    "journal_spending",
    "summary_lines",
]


@attrs.frozen(kw_only=True)
class CampaignBudget:
    """What one run may spend.

    Attributes:
        run_limit: ``budget_units`` for this run's stream (None: no cap).
        exhausted: ``--budget-total`` is spent: nothing new may be created.
        spent_before: Units the journal's tasks were charged before this run.
        known: Keys of the journal's entries (lines that reached, or may have reached, the
            server in an earlier run).
    """

    run_limit: Decimal | None
    exhausted: bool
    spent_before: Decimal
    known: frozenset[str]


async def journal_spending(journal: Path) -> tuple[Decimal, frozenset[str]]:
    """(units charged to the journal's finished tasks, the journal's keys); zeros when there
    is no journal yet."""
    if not await anyio.Path(journal).is_file():
        return Decimal(0), frozenset()
    async with Journal(journal) as opened:
        entries = await opened.entries()
    return campaign_units(entries), frozenset(e.external_task_id for e in entries)


def campaign_units(entries: Iterable[JournalEntry]) -> Decimal:
    """The units charged for the journal's finished tasks, by every run that used it."""
    return sum(
        (e.result.units for e in entries if e.result is not None and e.result.units is not None),
        Decimal(0),
    )


async def campaign_budget(
    journal: Path, budget: Decimal | None, budget_total: Decimal | None
) -> CampaignBudget:
    """This run's budget from ``--budget`` and what ``--budget-total`` leaves."""
    spent, known = await journal_spending(journal)
    limit = budget
    exhausted = False
    if budget_total is not None:
        left = budget_total - spent
        exhausted = left <= 0
        if not exhausted:
            limit = left if limit is None else min(limit, left)
    return CampaignBudget(
        run_limit=None if exhausted else limit,
        exhausted=exhausted,
        spent_before=spent,
        known=known,
    )


def exhausted_reason(total: Decimal, spent: Decimal) -> str:
    """The error of a line not sent because ``--budget-total`` is spent."""
    return (
        f"--budget-total {total} is spent ({spent} units charged by earlier runs into this "
        "folder): nothing new is created"
    )


def summary_lines(
    *,
    run_units: Decimal,
    campaign_units: Decimal,
    run_limit: Decimal | None,
    budget_total: Decimal | None,
) -> list[str]:
    """What the summary says of money beyond the run's own line: the campaign's units so far
    (against ``--budget-total``), and why a budget was passed."""
    total = f" of the budget total of {budget_total}" if budget_total is not None else ""
    lines = [
        f"units: {run_units} charged by this run, {campaign_units} by the campaign so far "
        f"(every run into this folder){total}"
    ]
    why = (
        "a task of a price class with no estimate yet (no published price, nothing charged for "
        "one so far) may start while nothing else runs, and its price is known only when it "
        "ends; see docs/budgets.md"
    )
    if run_limit is not None and run_units > run_limit:
        lines.append(
            f"this run passed its budget of {run_limit} units by {run_units - run_limit}: {why}"
        )
    if budget_total is not None and campaign_units > budget_total:
        lines.append(
            f"the campaign passed its budget total of {budget_total} units by "
            f"{campaign_units - budget_total}: {why}"
        )
    return lines
