"""The ``Codec`` protocol: everything one wire API knows, asked by everything above it.

A codec maps request models to a wire API's requests and its answers back to models, and answers
every wire-specific question the rest of the SDK has: paths and envelopes, pagination, which
lookups exist, how completion can be learned, the rate limit to keep, how quota pools are named,
and which credentials and environment variables apply. Nothing above the codecs asks which wire
API it talks to; a third wire API is a third class with these members.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Mapping
from typing import Any, Protocol

from .._account import ResourcePack
from .._errors import APIError, NotSupportedError
from .._http._transport import Response
from .._models import Kind, Request, Task, TaskResult
from .._quota._config import Quota

__all__ = ["Codec"]


class Codec(Protocol):
    """One wire API (Kling's native legacy standard, Modellix, ...)."""

    @property
    def name(self) -> str:
        """The provider's name, as users spell it (``"kling"``, ``"modellix"``)."""
        ...

    @property
    def supports_list_query(self) -> bool:
        """Whether one list query reports on many tasks (else single queries, budgeted)."""
        ...

    @property
    def supports_external_lookup(self) -> bool:
        """Whether a task can be looked up by the client's ``external_task_id`` (else a lost
        create answer can never be resolved, and is never re-sent)."""
        ...

    @property
    def supports_callbacks(self) -> bool:
        """Whether creates can carry a ``callback_url``."""
        ...

    @property
    def supports_jwt(self) -> bool:
        """Whether AccessKey/SecretKey (HS256 JWT) authentication is accepted."""
        ...

    @property
    def api_key_env(self) -> str:
        """Environment variable holding the API key."""
        ...

    @property
    def base_url_env(self) -> str:
        """Environment variable holding the API root."""
        ...

    @property
    def default_base_url(self) -> str:
        """The API root when none is given."""
        ...

    @property
    def default_requests_per_minute(self) -> float | None:
        """The documented per-key request limit, or None where there is none."""
        ...

    @property
    def shares_one_pool(self) -> bool:
        """Whether every model and kind share one concurrency pool (a team limit), in which a
        request costing more than the pool runs alone instead of never."""
        ...

    @property
    def reports_units(self) -> bool:
        """Whether an ended task's answer says what it was charged (:attr:`TaskResult.units`),
        which a unit budget needs."""
        ...

    def pool_name(self, model: str, kind: Kind) -> str:
        """The quota pool a task of ``(model, kind)`` holds slots in."""
        ...

    def pool_capacity(self, quota: Quota, model: str, kind: Kind) -> int:
        """Slots of that pool under ``quota``."""
        ...

    def check(self, request: Request) -> None:
        """Refuse, before sending, what this wire API cannot carry (``InvalidInputError``)."""
        ...

    def is_terminal_wire_status(self, raw: str) -> bool:
        """Whether a wire status (e.g. in a callback) means the task ended."""
        ...

    def create_path(self, request: Request) -> str:
        """Path of the create endpoint for ``request``."""
        ...

    def build_create(self, request: Request, external_task_id: str) -> dict[str, Any]:
        """The JSON body of a create (blocking: reads and encodes local files)."""
        ...

    def fallback(self, status: int | None) -> Codec | None:
        """The codec to try a create with after a definite refusal with HTTP ``status`` (a
        path form the API does not serve), or None."""
        ...

    def is_duplicate_external_id(self, error: APIError) -> bool:
        """Whether a create refused with ``error`` may have been refused because its
        ``external_task_id`` is already in use on the account (so the task exists and is
        looked up and followed). A wrong "yes" costs one lookup; a wire API without such ids
        answers ``False``."""
        ...

    def is_missing_path(self, error: APIError) -> bool:
        """Whether ``error`` says the requested path does not exist at this base URL (a wrong
        base URL or gateway prefix), so every request to it will fail alike."""
        ...

    def query_path(self, kind: Kind, task_id: str) -> str:
        """Path of the single-task query."""
        ...

    def list_path(self, kind: Kind) -> str:
        """Path of the list query (only where :attr:`supports_list_query`)."""
        ...

    def batch_query_size(self, kind: Kind) -> int:
        """Ids one unified query of ``kind`` answers for (0: no such query)."""
        ...

    def batch_query(
        self, ids: list[str], *, external: bool = False
    ) -> tuple[str, Mapping[str, str]]:
        """Path and parameters of a unified query of ``ids`` (external ids when
        ``external``); its answer is parsed with :meth:`parse_task_list`, and an id the server
        does not know is absent from it."""
        ...

    def running_listing(
        self, kind: Kind, cursor: str | None
    ) -> tuple[str, str, Mapping[str, str] | None, Mapping[str, Any] | None] | None:
        """How to list the account's running tasks of ``kind``, one page after ``cursor``:
        ``(method, path, params, json body)``, or ``None`` to use the list pages (or where
        there is no listing)."""
        ...

    def parse_running_page(self, data: Any) -> tuple[list[TaskResult], str | None]:
        """The tasks of one :meth:`running_listing` page and the next page's cursor (None:
        last page)."""
        ...

    def list_params(self, page: int, page_size: int) -> Mapping[str, str]:
        """Query parameters of list page ``page`` (1-based) of ``page_size`` tasks."""
        ...

    def list_page_size(self, tracked: int) -> int:
        """Page size for a list poll reaching ``tracked`` tasks (newest first)."""
        ...

    def unwrap(self, response: Response) -> Any:
        """The ``data`` of a successful answer; raises the mapped ``APIError`` otherwise."""
        ...

    def parse_create(self, data: Any, request: Request, external_task_id: str, cost: int) -> Task:
        """The created task."""
        ...

    def parse_task(self, data: Any, *, series: bool | None = None) -> TaskResult:
        """One task's state."""
        ...

    def parse_task_list(self, data: Any, wanted: Container[str] | None = None) -> list[TaskResult]:
        """The tasks of a list page (those in ``wanted`` only, when given)."""
        ...

    @property
    def account_costs_interval(self) -> float:
        """Seconds to keep between two account-costs queries (the documented rate limit)."""
        ...

    def account_costs_request(
        self, start: dt.datetime, end: dt.datetime, resource_pack_name: str | None
    ) -> tuple[str, Mapping[str, str]]:
        """Path and query parameters of the resource-pack query for the window ``start`` to
        ``end`` (aware datetimes), one pack's name only when given.

        Raises:
            NotSupportedError: the wire API has no such query.
        """
        ...

    def parse_account_costs(self, data: Any) -> list[ResourcePack]:
        """The resource packs of an account-costs answer's ``data``.

        Raises:
            APIError: ``data`` carries its own non-zero code.
            ResponseFormatError: ``data`` is not the documented shape.
        """
        ...


class NoUnifiedQuery:
    """The :class:`Codec` members of a wire API that follows tasks with list pages and single
    queries only: no unified query by many ids, no cursor listing (Kling's legacy standard,
    Modellix)."""

    __slots__ = ()

    def batch_query_size(self, kind: Kind) -> int:
        """No unified query: 0."""
        return 0

    def batch_query(
        self, ids: list[str], *, external: bool = False
    ) -> tuple[str, Mapping[str, str]]:
        """Never called (:meth:`batch_query_size` is 0)."""
        raise NotImplementedError("no unified task query")

    def running_listing(
        self, kind: Kind, cursor: str | None
    ) -> tuple[str, str, Mapping[str, str] | None, Mapping[str, Any] | None] | None:
        """Running tasks are listed with the list pages: None."""
        return None

    def parse_running_page(self, data: Any) -> tuple[list[TaskResult], str | None]:
        """Never called (:meth:`running_listing` is None)."""
        raise NotImplementedError("no cursor listing")


class NoAccountCosts:
    """The :class:`Codec` members of a wire API without a resource-pack query (Modellix)."""

    __slots__ = ()

    account_costs_interval: float = 0.0

    def account_costs_request(
        self, start: dt.datetime, end: dt.datetime, resource_pack_name: str | None
    ) -> tuple[str, Mapping[str, str]]:
        """Raises :class:`NotSupportedError`, naming the wire API."""
        name = getattr(self, "name", type(self).__name__)
        raise NotSupportedError(
            f"account_costs: the {name} wire API has no resource-pack query (Kling's"
            " GET /account/costs); nothing was sent"
        )

    def parse_account_costs(self, data: Any) -> list[ResourcePack]:
        """Never called (:meth:`account_costs_request` raises)."""
        raise NotImplementedError("no resource-pack query")
