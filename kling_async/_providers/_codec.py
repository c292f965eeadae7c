"""The ``Codec`` protocol: one wire API's encoding and decoding.

A codec maps request models to a wire API's requests (paths, bodies, query parameters) and its
answers back to models (envelopes, tasks, errors). What the wire API *is* (credentials, defaults,
pools, which queries exist) is its :class:`~._traits.ProviderTraits`; only the wire calls
(``_http/_wire.py``) and the provider API (``_providers/_api.py``) hold a codec. A third wire API
is a third codec class and a third traits value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Mapping
from typing import Any, Protocol

from .._account import ResourcePack
from .._errors import APIError, NotSupportedError
from .._http._transport import Response
from .._models import Kind, Request, Task, TaskResult

__all__ = ["Codec"]


class Codec(Protocol):
    """One wire API (Kling's native legacy standard, Modellix, ...)."""

    @property
    def name(self) -> str:
        """The provider's name, as users spell it (``"kling"``, ``"modellix"``)."""
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
        """Path of the list query (only where the traits say there is one)."""
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

    def batch_query(
        self, ids: list[str], *, external: bool = False
    ) -> tuple[str, Mapping[str, str]]:
        """Never called (the traits' batch size is 0)."""
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
