"""How the tracker asks about its tasks: one strategy per kind, chosen once from the wire API's
traits, each a small class whose :meth:`poll` the tracker calls on every tick of that kind.

- :class:`ListPages` (Kling's legacy list query,
  https://kling.ai/document-api/api/image/3-0-omni/image-omni): one list query (``pageNum=1``,
  newest first) reports on every in-flight task, further pages only while tracked tasks are
  missing, single GETs for the few the pages do not reach (or when one or two are in flight).
- :class:`BatchQuery` (Kling's new standard for videos): unified queries of as many ids as the
  wire API takes; a task not in the answers is asked again next tick.
- :class:`BudgetedSingles` (no list query, requests budgeted: Modellix): one query of one task,
  the most overdue, which the tracker picks; the tracker schedules its next check.

When to poll (the tick, the first check, the next check) is the tracker's (and ``_cadence``'s);
a strategy only asks and hands each answer back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, Protocol

from .._errors import KlingError
from .._models import Kind, TaskResult
from .._providers._api import ProviderAPI

if TYPE_CHECKING:
    from ._stats import Counters
    from ._tracker import Tracked

__all__ = ["BatchQuery", "BudgetedSingles", "ListPages", "PollHost", "Strategy", "strategies"]

_SINGLE_GET_MAX = 2  # up to this many tasks in flight, single GETs are as cheap as a list
_PAGES_MAX = 3  # list pages per tick before falling back to single GETs for stragglers


class PollHost(Protocol):
    """What a strategy reports to (the tracker)."""

    async def check(self, tracked: Tracked) -> TaskResult | None:
        """One query of ``tracked``; None when it failed transiently (or ended the task)."""
        ...

    async def observe(self, tracked: Tracked, result: TaskResult) -> None:
        """``result`` is what the server says of ``tracked`` now (it may have ended)."""
        ...

    def span(self, pending: Iterable[Tracked]) -> int:
        """How far down a newest-first list the oldest of ``pending`` sits."""
        ...

    def checked(self, tracked: Tracked, result: TaskResult | None) -> None:
        """``tracked`` was just queried on its own schedule (``result`` None: it failed);
        schedule its next check."""
        ...


class Strategy(Protocol):
    """One way to ask about the in-flight tasks of a kind."""

    per_task: ClassVar[bool]
    """Whether tasks are checked one at a time, each on its own schedule (else per kind, all
    pending tasks each tick)."""

    async def poll(self, kind: Kind, pending: dict[str, Tracked]) -> None:
        """Ask the server about ``pending`` (task id → tracked task) and hand each answer to
        the host. Failures are not raised: what was not answered is asked again later."""
        ...


class ListPages:
    """List pages for many tasks, single GETs for the rest (see the module)."""

    per_task: ClassVar[bool] = False

    def __init__(self, api: ProviderAPI, host: PollHost, stats: Counters) -> None:
        self._api = api
        self._host = host
        self._stats = stats

    async def poll(self, kind: Kind, pending: dict[str, Tracked]) -> None:
        """Read list pages while more than two tasks are pending, then query the rest one by
        one."""
        pending = dict(pending)
        if len(pending) > _SINGLE_GET_MAX:
            with self._stats.poll(kind, (t.lease for t in pending.values())):
                await self._pages(kind, pending)
        for tracked in list(pending.values()):
            result = await self._host.check(tracked)
            if result is not None:
                await self._host.observe(tracked, result)

    async def _pages(self, kind: Kind, pending: dict[str, Tracked]) -> None:
        """Remove from ``pending`` every task a list page reports on (and hand it over)."""
        page_size = self._api.traits.list_page_size(self._host.span(pending.values()))
        for page in range(1, _PAGES_MAX + 1):
            try:
                results, held = await self._api.list_page(kind, page, page_size, pending)
            except KlingError:
                return  # fall back to single GETs this tick
            for result in results:
                tracked = pending.pop(result.task_id, None)
                if tracked is not None:
                    await self._host.observe(tracked, result)
            if not pending or held < page_size:
                return


class BatchQuery:
    """Unified queries of many ids each (see the module)."""

    per_task: ClassVar[bool] = False

    def __init__(self, api: ProviderAPI, host: PollHost, stats: Counters, size: int) -> None:
        self._api = api
        self._host = host
        self._stats = stats
        self._size = size

    async def poll(self, kind: Kind, pending: dict[str, Tracked]) -> None:
        """Ask about every task in ``pending``, ``size`` ids per request; stop at the first
        failed request (the rest is asked again next tick)."""
        pending = dict(pending)
        with self._stats.poll(kind, (t.lease for t in pending.values())):
            ids = list(pending)
            for start in range(0, len(ids), self._size):
                try:
                    results = await self._api.query_batch(ids[start : start + self._size])
                except KlingError:
                    return  # asked again next tick
                for result in results:
                    tracked = pending.pop(result.task_id, None)
                    if tracked is not None:
                        await self._host.observe(tracked, result)


class BudgetedSingles:
    """One query of one task at a time, each task on its own schedule (see the module)."""

    per_task: ClassVar[bool] = True

    def __init__(self, host: PollHost) -> None:
        self._host = host

    async def poll(self, kind: Kind, pending: dict[str, Tracked]) -> None:
        """Query each task in ``pending`` (the tracker gives the one most overdue), let the
        tracker schedule its next check, and hand the answer over."""
        for tracked in list(pending.values()):
            result = await self._host.check(tracked)
            self._host.checked(tracked, result)
            if result is not None:
                await self._host.observe(tracked, result)


def strategies(api: ProviderAPI, host: PollHost, stats: Counters) -> dict[Kind, Strategy]:
    """The strategy per kind that ``api``'s traits allow: budgeted single queries where there
    is no list query, else the unified query where the kind has one, else list pages."""
    traits = api.traits
    chosen: dict[Kind, Strategy] = {}
    kinds: tuple[Kind, ...] = ("image", "video")
    for kind in kinds:
        if not traits.supports_list_query:
            chosen[kind] = BudgetedSingles(host)
        elif size := traits.batch_size(kind):
            chosen[kind] = BatchQuery(api, host, stats, size)
        else:
            chosen[kind] = ListPages(api, host, stats)
    return chosen
