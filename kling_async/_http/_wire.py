"""Authenticated calls to one wire API in its codec's terms: the rate limit, the JWT re-sign
after a 1004, and queries retried on transient failures. Creates, which may not be retried
blindly, are sent once per call (see ``_providers/_api.py`` and ``_engine/_creator.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Container, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from aiolimiter import AsyncLimiter

from .._account import ResourcePack
from .._engine._stats import Counters
from .._errors import AuthenticationError, ConcurrencyLimitError, RateLimitError
from .._models import Kind, TaskResult
from ._rate import RateLimit
from ._retry import Retry, retrying
from ._transport import Transport

if TYPE_CHECKING:
    from .._providers._codec import Codec

__all__ = ["Wire"]


@attrs.define
class Wire:
    """Calls through one transport in one wire API's terms (its :attr:`codec`).

    Attributes:
        codec: The wire API's encoding and decoding.
        transport: Gives the open transport (raises ``RuntimeError`` when closed).
        stats: The client's counters, told of each request, query and retry (private).
        retry: How queries (and creates, see ``_engine/_creator.py``) are tried again.
        rate_limit: The client's requests-per-minute pace, or None.
    """

    codec: Codec
    transport: Callable[[], Transport]
    _stats: Counters
    retry: Retry
    rate_limit: RateLimit | None = None
    _costs_limiter: AsyncLimiter | None = attrs.field(default=None, init=False)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> Any:
        """One request (two after an expired JWT, 1004): the answer's ``data``. ``limiter``,
        when given, is acquired before each of them, as the rate limit is.

        Raises:
            APIError: the codec's mapping of an error answer.
            TransportError: the exchange failed.
        """
        transport = self.transport()
        for attempt in (1, 2):
            if limiter is not None:
                await limiter.acquire()
            if self.rate_limit is not None:
                await self.rate_limit.acquire()
            with self._stats.http(method, transport.base_url, path, params) as span:
                response = await transport.request(method, path, json_body=json_body, params=params)
                span.answered(response.status)
            try:
                return self.codec.unwrap(response)
            except RateLimitError as exc:
                if self.rate_limit is not None and not isinstance(exc, ConcurrencyLimitError):
                    self.rate_limit.pause(exc.retry_after or 1.0)
                raise
            except AuthenticationError as exc:
                # 1004: the JWT expired; re-sign once and try again.
                if exc.code == 1004 and attempt == 1 and transport.invalidate_auth():
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """A GET, retried on transient failures (see ``_retry``)."""
        async for attempt in retrying(self.retry, on_retry=self._stats.retried):
            with attempt:
                return await self.call("GET", path, params=params)
        raise AssertionError("unreachable")  # pragma: no cover

    async def query(self, kind: Kind, task_id: str, *, series: bool | None = None) -> TaskResult:
        """One task's state, by ``task_id``, from the single-task query."""
        self._stats.queried()
        data = await self.get(self.codec.query_path(kind, task_id))
        return self.codec.parse_task(data, series=series)

    async def query_batch(self, ids: list[str], *, external: bool = False) -> list[TaskResult]:
        """The states of ``ids`` (external ids with ``external``) in one unified query (those
        the server knows)."""
        self._stats.listed()
        path, params = self.codec.batch_query(ids, external=external)
        return self.codec.parse_task_list(await self.get(path, params))

    async def list_page(
        self, kind: Kind, page: int, page_size: int, wanted: Container[str] | None
    ) -> tuple[list[TaskResult], int]:
        """One list page: the results of the tasks in ``wanted``, and how many tasks the page
        held (a full page means there may be more)."""
        self._stats.listed()
        params = self.codec.list_params(page, page_size)
        data = await self.get(self.codec.list_path(kind), params)
        results = self.codec.parse_task_list(data, wanted)
        return results, len(data)

    async def account_costs(
        self,
        start: dt.datetime | None,
        end: dt.datetime | None,
        resource_pack_name: str | None,
        interval: float,
    ) -> list[ResourcePack]:
        """The account's resource packs in the window ``start`` (default 1970-01-01 UTC) to
        ``end`` (default now), one query at least ``interval`` seconds (plus 2 %) after the
        previous one, attempts included; transient failures are retried
        as queries are, a malformed pack list is not.

        Raises:
            ValueError: a naive datetime, ``start`` after ``end``, an empty name.
            NotSupportedError: the wire API has no such query (nothing is sent).
            APIError, TransportError, ResponseFormatError: as :meth:`call`, after the retries.
        """
        end = dt.datetime.now(dt.UTC) if end is None else end
        start = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) if start is None else start
        for field, moment in (("start", start), ("end", end)):
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"{field}: {moment!r} is naive; pass an aware datetime")
        if start > end:
            raise ValueError(f"start: {start.isoformat()} is after end {end.isoformat()}")
        if resource_pack_name is not None and not resource_pack_name.strip():
            raise ValueError("resource_pack_name: empty; pass a pack's name or None")
        path, params = self.codec.account_costs_request(start, end, resource_pack_name)
        if self._costs_limiter is None:
            self._costs_limiter = AsyncLimiter(1, interval * 1.02)
        data: Any = None
        async for attempt in retrying(self.retry, on_retry=self._stats.retried):
            with attempt:
                data = await self.call("GET", path, params=params, limiter=self._costs_limiter)
        return self.codec.parse_account_costs(data)
