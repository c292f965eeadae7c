"""The provider API: one wire API in domain verbs, the seam between the engine and the codecs.

The engine (scheduler, creator, tracker) and the client ask a :class:`ProviderAPI` to check and
encode a request, create it (one attempt, its failure classified), query tasks (one, a batch, a
list page), list the account's running tasks and read the account's costs; they decide by its
:attr:`~ProviderAPI.traits`. The codec, the envelopes and the path forms stay below this line: a
wire API with two create path forms (Modellix's ``/async`` and plain) switches between them
inside :meth:`ProviderAPI.create`, unseen above it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Container, Mapping
from typing import Any, Literal

from .._account import ResourcePack
from .._engine._stats import Counters
from .._errors import (
    ConcurrencyLimitError,
    InvalidRequestError,
    KlingError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from .._http._rate import RateLimit
from .._http._retry import Retry
from .._http._transport import Transport
from .._http._wire import Wire
from .._models import Kind, Request, Task, TaskResult
from . import codec_for, traits_for
from ._codec import Codec
from ._traits import ProviderTraits

__all__ = ["CreateFailure", "ProviderAPI"]

CreateFailure = Literal["busy", "not_created", "ambiguous", "duplicate_id", "refused", "terminal"]
"""What a failed create proves (:meth:`ProviderAPI.classify`):

- ``busy``: the pool is full on the server (1303, Modellix's concurrency 429); nothing created,
  the request waits for a slot.
- ``not_created``: certainly nothing was created (1302, a connection refused before sending);
  the create may be sent again.
- ``ambiguous``: the create may have reached the server (a timeout after sending, a 5xx, an
  unreadable answer); only a lookup by ``external_task_id`` can tell.
- ``duplicate_id``: refused, perhaps because the ``external_task_id`` is already in use (so the
  task exists and can be followed).
- ``refused``: a definite refusal of this request (a parameter error).
- ``terminal``: anything else (authentication, account, an unknown failure): never retried.
"""

_PAGES_MAX = 3  # pages of the account's running tasks read at most


class ProviderAPI:
    """One client's wire API, in domain verbs.

    Args:
        codec: The wire API's encoding and decoding (the create codec may switch path form).
        traits: What the wire API is and supports.
        wire: The calls through the transport in the codec's terms.
    """

    def __init__(self, codec: Codec, traits: ProviderTraits, wire: Wire, stats: Counters) -> None:
        self._create_codec = codec
        self._wire = wire
        self._stats = stats
        self.traits = traits

    @classmethod
    def connect(
        cls,
        provider: str,
        *,
        submit_path: Literal["async", "plain"],
        api_standard: Literal["legacy", "new"],
        transport: Callable[[], Transport],
        stats: Counters,
        retry: Retry,
        budget: RateLimit | None,
    ) -> ProviderAPI:
        """The provider API of ``provider`` over ``transport`` (which gives the open transport
        or raises ``RuntimeError``).

        Raises:
            ValueError: an unknown provider, ``submit_path`` or ``api_standard``.
        """
        codec = codec_for(provider, submit_path=submit_path, api_standard=api_standard)
        traits = traits_for(provider, submit_path=submit_path, api_standard=api_standard)
        return cls(codec, traits, Wire(codec, transport, stats, retry, budget), stats)

    @property
    def base_url(self) -> str:
        """The open transport's API root.

        Raises:
            RuntimeError: the client is not open.
        """
        return self._wire.transport().base_url

    # -- requests ----------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        """Refuse, before sending, what this wire API cannot carry.

        Raises:
            InvalidInputError: naming the provider, the field and the rule.
        """
        self._create_codec.check(request)

    def encode(self, request: Request, external_task_id: str) -> dict[str, Any]:
        """The JSON body of ``request``'s create (blocking: reads and encodes local files)."""
        return self._create_codec.build_create(request, external_task_id)

    async def create(
        self, request: Request, body: Mapping[str, Any], external_task_id: str, cost: int
    ) -> Task:
        """One create of ``request`` (``body`` from :meth:`encode`). Where the wire API has a
        second create path form, a definite refusal of the first (404/405: nothing was
        created) sends it once more on the other, which later creates use too.

        Raises:
            KlingError: the create failed; :meth:`classify` says what that proves.
        """
        codec = self._create_codec
        path = codec.create_path(request)
        try:
            data = await self._wire.call("POST", path, json_body=body)
        except InvalidRequestError as exc:
            other = codec.fallback(exc.http_status)
            if other is None:
                raise
            if self._create_codec is codec:  # not switched meanwhile by another create
                self._create_codec = other
            codec = other
            data = await self._wire.call("POST", other.create_path(request), json_body=body)
        return codec.parse_create(data, request, external_task_id, cost)

    def classify(self, error: KlingError) -> CreateFailure:
        """What a create's ``error`` proves about the task (see :data:`CreateFailure`)."""
        if isinstance(error, ConcurrencyLimitError):
            return "busy"
        if isinstance(error, InvalidRequestError):
            return (
                "duplicate_id" if self._create_codec.is_duplicate_external_id(error) else "refused"
            )
        if isinstance(error, RateLimitError):
            return "not_created"
        if isinstance(error, TransportError):
            return "ambiguous" if error.sent else "not_created"
        if isinstance(error, ServerError | ResponseFormatError):
            return "ambiguous"
        return "terminal"

    def unreachable(self, error: KlingError, request: Request) -> str | None:
        """Why every create will fail as ``request``'s did, or None: no connection at all
        (refused, DNS, TLS verification: ``sent`` false), or an answer that the create path does
        not exist at this base URL (e.g. 404 without the API's envelope, 1202)."""
        base_url = self.base_url
        if isinstance(error, TransportError) and not error.sent:
            return f"cannot reach the API at {base_url}: {error}"
        codec = self._create_codec
        if isinstance(error, InvalidRequestError) and codec.is_missing_path(error):
            return (
                f"the API at {base_url} has no create path {codec.create_path(request)} "
                f"({error}): check the base URL (a gateway's prefix, e.g. https://host/kling)"
            )
        return None

    # -- tasks ---------------------------------------------------------------------------------

    async def query(
        self, kind: Kind, task_id: str, *, series: bool | None = None, external: bool = False
    ) -> TaskResult:
        """One task's state, by ``task_id`` (or by ``external_task_id`` with ``external``,
        where :attr:`ProviderTraits.supports_external_lookup`); through the unified query
        where the wire API follows ``kind`` with it.

        Raises:
            InvalidRequestError: code 1203, the server has no such task (a unified query
                answers an unknown id by leaving it out).
        """
        if self.traits.batch_size(kind):
            self._stats.queried()
            found = await self._wire.query_batch([task_id], external=external)
            if not found:
                raise InvalidRequestError(f"no task {task_id!r}", code=1203)
            return found[0]
        return await self._wire.query(kind, task_id, series=series)

    async def query_batch(self, ids: list[str]) -> list[TaskResult]:
        """The states of ``ids`` (at most :meth:`ProviderTraits.batch_size`) in one unified
        query; an id the server does not know is absent."""
        return await self._wire.query_batch(ids)

    async def list_page(
        self, kind: Kind, page: int, page_size: int, wanted: Container[str] | None
    ) -> tuple[list[TaskResult], int]:
        """One list page (1-based) of ``kind``: the results of the tasks in ``wanted`` (every
        task when None), and how many tasks the page held (a full page means there may be
        more)."""
        return await self._wire.list_page(kind, page, page_size, wanted)

    def is_terminal_wire_status(self, raw: str) -> bool:
        """Whether a wire status (e.g. in a callback) means the task ended."""
        return self._create_codec.is_terminal_wire_status(raw)

    async def list_running(self, kind: Kind) -> list[tuple[str, str | None]]:
        """``(task_id, external_task_id)`` of every task of ``kind`` the account's listing
        shows still running (newest pages first, at most 3 pages); ``[]`` where the wire API
        has no listing.

        Raises:
            KlingError: a page could not be read.
        """
        codec, wire = self._create_codec, self._wire
        running: list[tuple[str, str | None]] = []
        if codec.running_listing(kind, None) is not None:
            cursor: str | None = None
            for _ in range(_PAGES_MAX):
                listing = codec.running_listing(kind, cursor)
                assert listing is not None
                method, path, params, json_body = listing
                self._stats.listed()
                data = await wire.call(method, path, params=params, json_body=json_body)
                results, cursor = codec.parse_running_page(data)
                running += _still_running(results)
                if cursor is None:
                    break
            return running
        if not self.traits.supports_list_query:
            return []
        size = self.traits.list_page_size(10**6)
        for page in range(1, _PAGES_MAX + 1):
            results, held = await wire.list_page(kind, page, size, None)
            running += _still_running(results)
            if held < size:
                break
        return running

    async def account_costs(
        self, start: dt.datetime | None, end: dt.datetime | None, resource_pack_name: str | None
    ) -> list[ResourcePack]:
        """The account's resource packs (see :meth:`KlingClient.account_costs`), queries kept
        :attr:`ProviderTraits.account_costs_interval` seconds (plus 2 %) apart.

        Raises:
            ValueError: a naive datetime, ``start`` after ``end``, an empty name.
            NotSupportedError: the wire API has no such query (nothing is sent).
            APIError, TransportError, ResponseFormatError: after the retries.
        """
        interval = self.traits.account_costs_interval
        return await self._wire.account_costs(start, end, resource_pack_name, interval)


def _still_running(results: list[TaskResult]) -> list[tuple[str, str | None]]:
    """``(task_id, external_task_id)`` of the results that are not terminal."""
    return [(r.task_id, r.external_task_id) for r in results if not r.status.is_terminal]
