"""Creates that never bill twice: one create sent until the server certainly has the task, the
journal's record of each, and re-attaching to what an earlier run created.

A create is re-sent only when the server certainly created nothing (1302, a connection refused
before sending, or a lookup by ``external_task_id`` that finds no task after an ambiguous
failure). Where the wire API cannot look a task up by the client's id (Modellix), a create whose
answer was lost is never re-sent: it ends as :class:`OutcomeUnknownError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
import attrs

from .._errors import (
    APIError,
    EndpointError,
    InvalidRequestError,
    KlingError,
    OutcomeUnknownError,
    QuotaError,
    RateLimitError,
    ServerError,
    TaskFailedError,
    TransportError,
)
from .._http._retry import Retry
from .._journal import Journal, JournalConflictError, JournalEntry, request_fingerprint
from .._models import Request, Task, TaskStatus
from .._providers._api import ProviderAPI
from .._quota._backend import Lease, QuotaBackend
from ._stats import Counters
from ._tracker import Tracked, Tracker

__all__ = ["Creator"]

_log = logging.getLogger("kling_async.client")


@attrs.define
class Creator:
    """Sends creates and resumes journalled ones.

    Args:
        api: The wire API: one create at a time, its failures classified.
        tracker: Follows what was created or re-attached.
        backend: Counts the slots a re-attached task holds.
        retry: How often, and how far apart, a create the server certainly refused before
            creating is tried again.
        journal: The journal, or None.
        stats: The client's counters, told of each create, resumption, adoption and retry.
    """

    api: ProviderAPI
    tracker: Tracker
    backend: QuotaBackend
    retry: Retry
    journal: Journal | None = None
    _stats: Counters = attrs.field(kw_only=True)
    # Whether a create has succeeded (or found its task) since the client opened: until one
    # has, a failure every create will share ends the stream (EndpointError).
    _reached: bool = attrs.field(default=False, init=False)

    async def create(
        self, request: Request, body: Mapping[str, Any], external_task_id: str, cost: int
    ) -> Task:
        """Send the create (journalled: intent before, task id after).

        Raises:
            ConcurrencyLimitError: 1303 (or Modellix 429 concurrency): re-queue the request.
            OutcomeUnknownError: Modellix, after an ambiguous failure.
            KlingError: a terminal refusal, or retries exhausted.
        """
        journal = self.journal
        if journal is None:
            return await self._create(request, body, external_task_id, cost)
        await journal.record_intent(
            external_task_id, request_fingerprint(request), request.kind, request.model_name
        )
        try:
            task = await self._create(request, body, external_task_id, cost)
        except EndpointError:
            await journal.forget(external_task_id)  # nothing was created
            raise
        except (APIError, QuotaError) as exc:
            if not isinstance(exc, ServerError):
                await journal.forget(external_task_id)  # certainly not created
            raise
        except TransportError as exc:
            if not exc.sent:
                await journal.forget(external_task_id)
            raise
        await journal.record_created(external_task_id, task.task_id, cost)
        return task

    async def resume(self, request: Request, lease: Lease) -> Tracked | None:
        """Re-attach to what the journal knows of ``lease.key``; ``None`` to create.

        Raises:
            JournalConflictError: the request changed since its task was created.
            OutcomeUnknownError: an earlier create's answer was lost and cannot be looked up.
            KlingError: the lookup failed (nothing is guessed).
        """
        assert self.journal is not None
        key = lease.key
        entry = await self.journal.get(key)
        if entry is None:
            return None
        changed = entry.fingerprint != request_fingerprint(request)
        if entry.state == "intent":
            # A create may or may not have reached the server: ask it (lookup by id). Only
            # "no such task" lets us create; a failed lookup is raised, never guessed.
            traits = self.api.traits
            if not traits.supports_external_lookup:
                raise OutcomeUnknownError(
                    f"an earlier run sent the create for {key!r} on {traits.name} and "
                    "never learnt its task id; the task may exist and be billed, so it is not "
                    "sent again",
                    provider=traits.name,
                    external_task_id=key,
                )
            found = await self._find_by_external_id(request, key, 0)
            if found is None:
                await self.journal.forget(key)
                return None
            if changed:
                raise _changed(key, found.task_id)
            task_id = lease.task_id = found.task_id
            await self.backend.occupy(lease, None)  # the task already holds its slots
            await self.journal.record_created(key, task_id, lease.cost)
        else:
            if changed:
                raise _changed(key, entry.task_id)
            if entry.state in ("finished", "saved"):
                return self._finished_from_journal(request, entry, lease)
            assert entry.task_id is not None
            task_id = lease.task_id = entry.task_id
            await self.backend.occupy(lease, entry.cost or 1)  # the task already holds them
        task = Task(
            task_id=task_id,
            external_task_id=key,
            kind=request.kind,
            model=request.model_name,
            cost=lease.cost,
        )
        self._stats.resumed()
        return self.tracker.track(task, lease, request)

    def _finished_from_journal(
        self, request: Request, entry: JournalEntry, lease: Lease
    ) -> Tracked:
        result = entry.result
        task = Task(
            task_id=entry.task_id or (result.task_id if result else ""),
            external_task_id=entry.external_task_id,
            kind=request.kind,
            model=request.model_name,
            cost=entry.cost or 0,
            created_at=result.created_at if result else None,
        )
        error: KlingError | None = None
        if entry.error is not None or result is None:
            error = (
                TaskFailedError(
                    result.status_message or "",
                    task_id=task.task_id,
                    external_task_id=task.external_task_id,
                )
                if result is not None and result.status is TaskStatus.FAILED
                else KlingError(entry.error or "finished without a result")
            )
        self._stats.resumed()
        return self.tracker.finished_earlier(task, lease, result, error)

    async def _create(
        self, request: Request, body: Mapping[str, Any], external_task_id: str, cost: int
    ) -> Task:
        """Send the create (see :meth:`_send`); the first one to succeed proves the address."""
        task = await self._send(request, body, external_task_id, cost)
        self._reached = True
        return task

    async def _send(
        self, request: Request, body: Mapping[str, Any], external_task_id: str, cost: int
    ) -> Task:
        """Send the create until the server certainly has the task, retrying only what
        certainly did not create one: 1302, a connection refused before sending, and an
        ambiguous failure after which a lookup by ``external_task_id`` finds no task.

        Raises:
            EndpointError: before any create has succeeded, a failure every create will
                share (see :meth:`_shared_failure`).
        """
        ambiguous = False  # an earlier attempt may have created the task
        for attempt in range(1, self.retry.attempts + 1):
            try:
                task = await self.api.create(request, body, external_task_id, cost)
                self._stats.created()
                return task
            except KlingError as exc:
                verdict = self.api.classify(exc)
                failure: KlingError = exc
                if verdict == "busy" or verdict == "terminal":
                    raise
                if verdict == "refused" or verdict == "duplicate_id":
                    if ambiguous:
                        # Perhaps the earlier attempt did create it, and this refusal is about
                        # the reused external_task_id (unique per account): look again.
                        found = await self._recover(exc, request, external_task_id, cost)
                        if found is not None:
                            return found
                    elif verdict == "duplicate_id":
                        # The id is in use: an earlier run (whose journal is gone, or another
                        # folder) created the task. Follow that task instead of failing the line.
                        assert isinstance(exc, InvalidRequestError)
                        adopted = await self._adopt(exc, request, external_task_id, cost)
                        if adopted is not None:
                            return adopted
                    self._shared_failure(exc, request)
                    raise
                retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
                if isinstance(exc, TransportError):
                    self._shared_failure(exc, request)
                if verdict == "ambiguous":
                    found = await self._recover(exc, request, external_task_id, cost)
                    if found is not None:
                        return found
                    ambiguous = True
            if attempt == self.retry.attempts:
                raise failure
            _log.info(
                "create %s: attempt %d failed (%s); retrying", external_task_id, attempt, failure
            )
            self._stats.retried(attempt, failure)
            await anyio.sleep(self.retry.delay(attempt, retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    def _shared_failure(self, failure: KlingError, request: Request) -> None:
        """Raise :class:`EndpointError` when ``failure``, met before any create of this client
        has succeeded, is one every create will share (``ProviderAPI.unreachable``: no
        connection at all, or no create path at this base URL). Retrying them line by line
        only delays the same answer (issue: 26 lines failed after 51 s)."""
        if self._reached:
            return
        message = self.api.unreachable(failure, request)
        if message is not None:
            raise EndpointError(message, base_url=self.api.base_url) from failure

    async def _recover(
        self, failure: KlingError, request: Request, external_task_id: str, cost: int
    ) -> Task | None:
        """After an ambiguous create (the task may exist): the task if the server has it,
        ``None`` when the server says it has none (1203), so the create may be sent again
        under the same ``external_task_id``. When the lookup itself fails, ``failure`` is
        raised: nothing is sent again on a guess. Where the wire API has no lookup by client
        id, :class:`OutcomeUnknownError` is raised: a paid create is never re-sent blindly."""
        traits = self.api.traits
        if not traits.supports_external_lookup:
            raise OutcomeUnknownError(
                f"the create for {external_task_id!r} on {traits.name} was sent but its "
                f"answer was lost ({failure}); the task may exist and be billed, and "
                f"{traits.name} cannot look it up by a client id, so it was not sent again",
                provider=traits.name,
                external_task_id=external_task_id,
                http_status=getattr(failure, "http_status", None),
            ) from failure
        _log.info(
            "create %s may have reached the server (%s): looking it up by external_task_id",
            external_task_id,
            failure,
        )
        try:
            found = await self._find_by_external_id(request, external_task_id, cost)
        except KlingError:
            raise failure from None
        if found is not None:
            self._stats.created()
        _log.info(
            "lookup of %s: %s",
            external_task_id,
            f"task {found.task_id} exists" if found else "no task, the create may be sent again",
        )
        return found

    async def _adopt(
        self, refusal: InvalidRequestError, request: Request, external_task_id: str, cost: int
    ) -> Task | None:
        """The task already created under ``external_task_id`` (marked ``adopted``), or
        ``None`` when the lookup finds none (the refusal was about something else). A failed
        lookup raises ``refusal``: nothing is guessed."""
        try:
            found = await self._find_by_external_id(request, external_task_id, cost)
        except KlingError:
            raise refusal from None
        if found is None:
            return None
        _log.info(
            "create %s: the external_task_id is already in use (%s); adopted existing task %s",
            external_task_id,
            refusal,
            found.task_id,
        )
        self._stats.adopted()
        return attrs.evolve(found, adopted=True)

    async def _find_by_external_id(
        self, request: Request, external_task_id: str, cost: int
    ) -> Task | None:
        """The task created under ``external_task_id``, or ``None`` when the server says there
        is none (1203). Any other failure is raised: it proves nothing either way."""
        try:
            result = await self.tracker.query(request.kind, external_task_id, external=True)
        except InvalidRequestError as exc:
            if exc.code not in (None, 1203):
                raise
            return None  # 1203: no such task, so the create did not happen
        return Task(
            task_id=result.task_id,
            external_task_id=external_task_id,
            kind=request.kind,
            model=request.model_name,
            cost=cost,
            created_at=result.created_at,
        )


def _changed(external_task_id: str, task_id: str | None) -> KlingError:
    return JournalConflictError(
        f"external_task_id {external_task_id!r}: the request changed since the journal recorded "
        f"task {task_id}; give the changed request a new external_task_id (or use a new journal)"
    )
