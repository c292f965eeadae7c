"""One client's parts, wired: the provider API over the transport, the quota backend, the
tracker, the creator and the scheduler (:class:`Parts`). The client keeps the configuration
and the public verbs; this module is where its parts meet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import attrs

from .._http._rate import RateLimit
from .._http._retry import Retry
from .._http._transport import Transport
from .._journal import Journal
from .._models import Kind
from .._providers._api import ProviderAPI
from .._quota._backend import LocalQuota, QuotaBackend
from .._quota._config import Quota
from ._creator import Creator
from ._scheduler import Scheduler
from ._stats import Counters
from ._tracker import Spawn, Tracker

__all__ = ["Parts"]


@attrs.define
class Parts:
    """The parts of one client, wired to each other (see the architecture page)."""

    api: ProviderAPI
    backend: QuotaBackend
    tracker: Tracker
    creator: Creator
    scheduler: Scheduler

    @classmethod
    def build(
        cls,
        *,
        provider: str,
        submit_path: Literal["async", "plain"],
        api_standard: Literal["legacy", "new"],
        transport: Callable[[], Transport],
        counters: Counters,
        limits: Quota,
        quota_backend: QuotaBackend | None,
        requests_per_minute: float | None,
        poll_intervals: dict[Kind, float | None],
        task_timeout: float | None,
        lookahead: int,
        retry: Retry,
        journal: Journal | None,
        callback_url: str | None,
        spawn: Spawn,
    ) -> Parts:
        """The parts over ``transport`` (which gives the open transport or raises
        ``RuntimeError``); ``spawn`` starts background work in the scheduler's task group."""
        quota = quota_backend or LocalQuota(
            hol_patience=limits.hol_patience, auto_series_estimate=limits.auto_series_estimate
        )
        api = ProviderAPI.connect(
            provider,
            submit_path=submit_path,
            api_standard=api_standard,
            transport=transport,
            stats=counters,
            retry=retry,
            budget=RateLimit(requests_per_minute) if requests_per_minute else None,
        )
        tracker = Tracker(
            api,
            quota,
            spawn,
            poll_intervals,
            task_timeout=task_timeout,
            journal=journal,
            callbacks=callback_url is not None,
            stats=counters,
        )
        creator = Creator(api, tracker, quota, retry, journal=journal, stats=counters)
        scheduler = Scheduler(
            api,
            quota,
            limits,
            creator,
            tracker,
            lookahead,
            journal=journal,
            callback_url=callback_url,
            stats=counters,
        )
        return cls(api, quota, tracker, creator, scheduler)
