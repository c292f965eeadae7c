"""One client's parts, checked and wired: the wire API's traits, credentials and address
(:func:`resolve`); the provider API over the transport, the quota backend, the tracker, the
creator and the scheduler (:class:`Parts`). The client keeps the configuration and the public
verbs; this module is where its parts meet.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

import attrs

from .._http._auth import Auth, credentials
from .._http._transport import Transport
from .._http._wire import RequestBudget
from .._journal import Journal
from .._models import Kind
from .._providers import ProviderTraits, traits_for
from .._providers._api import ProviderAPI
from .._quota._backend import LocalQuota, QuotaBackend
from .._quota._config import Quota
from ._creator import Creator
from ._scheduler import Scheduler
from ._stats import Counters
from ._tracker import Spawn, Tracker

__all__ = ["Parts", "Resolved", "resolve"]


@attrs.frozen(kw_only=True)
class Resolved:
    """What the options and the environment give: the wire API's traits, the credentials, the
    API root (no trailing ``/``) and the request budget per minute (None: none)."""

    traits: ProviderTraits
    auth: Auth
    base_url: str
    requests_per_minute: float | None


def resolve(
    *,
    provider: str,
    submit_path: Literal["async", "plain"],
    api_standard: Literal["legacy", "new"],
    api_key: str | None,
    access_key: str | None,
    secret_key: str | None,
    base_url: str | None,
    requests_per_minute: float | None,
    callbacks: bool,
) -> Resolved:
    """The client's wire API, credentials (given, else the wire API's environment variables),
    address (given, else its environment variable, else its default) and request budget (given,
    else its documented limit).

    Raises:
        ValueError: an unknown provider, path form or standard; callbacks where the wire API
            has none; no or half credentials; a base URL that is not http(s); a budget ≤ 0.
    """
    traits = traits_for(provider, submit_path=submit_path, api_standard=api_standard)
    if callbacks and not traits.supports_callbacks:
        raise ValueError(f"callbacks: {traits.name} has no callback_url field")
    where = "Kling's new-standard API" if api_standard == "new" else traits.name
    auth = credentials(
        api_key or os.environ.get(traits.api_key_env) or None,
        access_key,
        secret_key,
        jwt=traits.supports_jwt,
        api_key_env=traits.api_key_env,
        where=where,
    )
    url = base_url or os.environ.get(traits.base_url_env) or traits.default_base_url
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base_url: {url!r}, must be an http(s) URL")
    if requests_per_minute is None:
        requests_per_minute = traits.default_requests_per_minute
    if requests_per_minute is not None and requests_per_minute <= 0:
        raise ValueError(f"requests_per_minute: {requests_per_minute}, must be > 0")
    return Resolved(
        traits=traits, auth=auth, base_url=url.rstrip("/"), requests_per_minute=requests_per_minute
    )


@attrs.define
class Parts:
    """The parts of one client, wired to each other (see the architecture page)."""

    api: ProviderAPI
    quota: QuotaBackend
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
        max_retries: int,
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
            max_retries=max_retries,
            budget=RequestBudget(requests_per_minute) if requests_per_minute else None,
        )
        tracker = Tracker(
            api,
            quota,
            spawn,
            poll_intervals,
            task_timeout=task_timeout,
            journal=journal,
            callbacks=callback_url is not None,
        )
        creator = Creator(api, tracker, quota, max_retries, journal=journal)
        scheduler = Scheduler(
            api,
            quota,
            limits,
            creator,
            tracker,
            lookahead,
            journal=journal,
            callback_url=callback_url,
        )
        return cls(api, quota, tracker, creator, scheduler)
