"""``KlingClient``: configuration, lifecycle and the public verbs, delegating the work.

The parts (built and wired in ``_engine/_parts.py``), each with one job: the provider API, the
wire API in domain verbs (``_providers/_api.py``); the quota backend (``_quota/_backend.py``); the
scheduler, which admits requests under quota and runs streams; the creator, which never bills
twice; and the tracker, which follows every created task to its end (``_engine/``).
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from ._account import ResourcePack
from ._engine._budget import parse_units
from ._engine._parts import Parts
from ._engine._progress import Progress
from ._engine._scheduler import Outcomes
from ._engine._stats import ClientStats, Counters
from ._engine._telemetry import Telemetry
from ._http._callbacks import CallbackHint, CallbackReceiver
from ._http._download import SavedFile, download_result
from ._http._retry import Retry
from ._http._settings import resolve_settings
from ._http._transport import Transport, new_session
from ._journal import Journal
from ._models import Kind, Outcome, Request, Task, TaskResult
from ._quota._backend import LocalQuota, PoolSnapshot, QuotaBackend, QuotaContext
from ._quota._config import Quota
from ._quota._policy import PoolLimiter

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["KlingClient"]

# Connections beyond one per quota slot (aiohttp's default pool size): creates up to the quota
# never queue inside aiohttp behind each other or behind queries.
_SPARE_CONNECTIONS = 100


class KlingClient:
    """Async client for Kling's omni-image and omni-video APIs.

    Use it as an async context manager; it owns one ``aiohttp.ClientSession`` and a background
    task group that follows created tasks to the end::

        async with KlingClient(api_key="...") as client:
            task = await client.submit(OmniImageRequest(prompt="...", n=2))
            result = await client.wait(task)

    Args:
        api_key: Bearer API key
            (https://kling.ai/document-api/api/get-started/authentication). Default: env
            ``KLING_API_KEY`` (Kling) or ``MODELLIX_API_KEY`` (Modellix).
        access_key: AccessKey for HS256 JWT auth (Kling only); needs ``secret_key``.
            Default: env ``KLING_ACCESS_KEY``.
        secret_key: SecretKey. Default: env ``KLING_SECRET_KEY``.
        base_url: API root, optionally with a gateway path prefix such as
            ``"https://api.powertokens.ai/kling"``. Default (Kling): env ``KLING_BASE_URL``,
            else ``https://api-singapore.klingai.com``; (Modellix): env ``MODELLIX_BASE_URL``,
            else ``https://api.modellix.ai/api/v1``.
        provider: Wire API: ``"kling"`` (Kling's native API and gateways that proxy it) or
            ``"modellix"``. The same request models and results work on both; a request
            field a wire API cannot carry is refused before sending
            (:class:`InvalidInputError` naming the provider and the field). Default ``"kling"``.
        quota: Concurrency slots (:class:`Quota`): per pool on Kling, the team limit
            ``Quota.team`` on Modellix. Default ``Quota()`` (image 9, video 5, team 3).
        request_timeout: Seconds one HTTP request may take. On expiry a query is retried (with
            backoff); a create is treated as ambiguous: on Kling the task is looked up by its
            ``external_task_id`` before anything is sent again, on Modellix it ends as
            :class:`OutcomeUnknownError`. Default 30.0; ``None`` disables.
        task_timeout: Seconds from create until a task must end; on expiry ``wait()`` raises and
            ``stream()`` yields :class:`TaskTimeoutError` while the SDK keeps following the
            task so its quota slots are released when the server ends it. Default ``None``.
            (The whole-run deadline is ``stream(..., deadline=)``.)
        image_poll_interval: Seconds between polls of the image tasks in flight, ±10 % jitter;
            ``None`` (default) polls at the pace of the tasks: 4.5 % of the mean time the pool's
            tasks take while requests wait for slots, 7 % when none wait (so detection lag
            stays about 2.3 % of a task whether tasks take 1 s or 5 min), scaled from the
            oldest task's age until one has ended, within 0.02–30 s. On Kling each poll is one
            list query for all of them (single GETs when only one or two are in flight); while
            no task can have ended yet (all younger than 80 % of the shortest their pool has
            seen) polls wait.
        video_poll_interval: The same for video tasks.
        lookahead: Requests ``stream()`` pulls from the input ahead of the ones running, so a
            small request can start while a large one waits for slots. Default 32.
        max_retries: Shorthand for ``retry=Retry(attempts=max_retries)``. Default 5.
        retry: How queries, downloads and creates the server certainly refused before creating
            are tried again (:class:`Retry`). Default ``Retry()``: 5 attempts, 0.5–8 s apart.
        journal: Path of a SQLite journal (created if missing). With it, the intent of each
            create is recorded before it is sent, the task id after, the result at the end;
            running the same requests (same ``external_task_id``, or same ``keys`` given to
            :meth:`stream`) again re-attaches to tasks still running, returns finished results
            without any request, and creates only what never reached the server. Default
            ``None`` (no journal).
        requests_per_minute: Most HTTP requests (creates and queries) per minute, kept
            with a leaky bucket that lets one request through every ``60 / rate`` seconds
            (no bursts, so no 60 s window ever holds more than the rate). A 429 rate-limit
            answer pauses all requests for its ``Retry-After`` / ``X-RateLimit-Reset``.
            Default: 100 on Modellix (its per-key limit, https://docs.modellix.ai/ways-to-use/api),
            none on Kling.
        submit_path: Modellix only: which documented create path to use first, ``"async"``
            (``/kling/{model}/async``) or ``"plain"`` (``/kling/{model}``); the client
            switches to the other only after a definite 404/405. Default ``"async"``.
        callbacks: A :class:`CallbackReceiver` (Kling only). Creates without a
            ``callback_url`` get the receiver's URL; each callback is a hint confirmed by an
            authenticated query, so its outcome arrives within milliseconds, and polling
            goes on ten times slower as a safety net. Default ``None``.
        quota_backend: Where the slot arithmetic runs (:class:`QuotaBackend`). Default: in
            this process. A shared backend lets many processes fill one account's quota.
        api_standard: Kling only: ``"legacy"`` (default) or ``"new"``, which sends videos in
            Kling's new standard (``POST /omni-video/kling-3.0-omni`` with ``contents`` /
            ``settings`` / ``options``, https://kling.ai/document-api/api/video/3-0-omni/video-omni)
            and follows them with the unified query ``GET /tasks?task_ids=…``, 50 ids per
            request (the batch size is undocumented; 50 is what was probed). API key only.
            Images stay on the legacy standard, the only one Kling documents for omni-image.
        tracer_provider: The OpenTelemetry ``TracerProvider`` the client's spans go to (a
            span per request, one per HTTP request; see docs/observability.md). Default: the
            global one. Needs ``opentelemetry-api`` (``pip install 'kling-async[otel]'``);
            without it nothing is traced and this is ignored.

    Raises:
        ValueError: no credentials were given or found in the environment, an unknown
            provider, or an option out of range.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        provider: Literal["kling", "modellix"] = "kling",
        quota: Quota | None = None,
        request_timeout: float | None = 30.0,
        task_timeout: float | None = None,
        image_poll_interval: float | None = None,
        video_poll_interval: float | None = None,
        lookahead: int = 32,
        max_retries: int = 5,
        retry: Retry | None = None,
        journal: str | os.PathLike[str] | None = None,
        requests_per_minute: float | None = None,
        submit_path: Literal["async", "plain"] = "async",
        callbacks: CallbackReceiver | None = None,
        quota_backend: QuotaBackend | None = None,
        api_standard: Literal["legacy", "new"] = "legacy",
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        settings = resolve_settings(  # the same check as the command line's
            provider=provider,
            submit_path=submit_path,
            api_standard=api_standard,
            api_key=api_key,
            access_key=access_key,
            secret_key=secret_key,
            base_url=base_url,
            requests_per_minute=requests_per_minute,
            callbacks=callbacks is not None,
        )
        if lookahead < 1:
            raise ValueError(f"lookahead: {lookahead}, must be ≥ 1")
        self._auth = settings.auth
        self.base_url = settings.base_url
        self.provider = provider
        self.quota = quota or Quota()
        self.request_timeout = request_timeout
        self.task_timeout = task_timeout
        self.poll_intervals: dict[Kind, float | None] = {
            "image": image_poll_interval,
            "video": video_poll_interval,
        }
        self.lookahead = lookahead
        self.retry = Retry.of(retry, max_retries)
        self.max_retries = self.retry.attempts
        self._counters = Counters(Telemetry.create(tracer_provider))
        self.requests_per_minute = settings.requests_per_minute
        self.callbacks = callbacks
        self.journal: Journal | None = Journal(Path(journal)) if journal is not None else None
        parts = Parts.build(
            provider=provider,
            submit_path=submit_path,
            api_standard=api_standard,
            transport=self._check_open,
            counters=self._counters,
            limits=self.quota,
            quota_backend=quota_backend,
            requests_per_minute=self.requests_per_minute,
            poll_intervals=self.poll_intervals,
            task_timeout=task_timeout,
            lookahead=lookahead,
            retry=self.retry,
            journal=self.journal,
            callback_url=callbacks.url if callbacks is not None else None,
            spawn=self._spawn,
        )
        self._api, self._backend, self._tracker = parts.api, parts.backend, parts.tracker
        self._scheduler = parts.scheduler
        self._state: Literal["new", "open", "closed"] = "new"
        self._transport: Transport | None = None
        self._stack: AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"KlingClient(provider={self.provider!r}, base_url={self.base_url!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError(f"KlingClient cannot be opened twice (it is {self._state})")
        async with AsyncExitStack() as stack:
            if self.journal is not None:
                await self.journal.open()
                stack.push_async_callback(self.journal.aclose)
            q = self.quota
            slots = q.image + q.video + q.team + sum(q.pools.values())
            session = new_session(_SPARE_CONNECTIONS + slots)
            stack.push_async_callback(session.close)
            stack.callback(self._counters.close)  # spans of tasks still running end
            self._transport = Transport(
                session, self.base_url, self._auth, request_timeout=self.request_timeout
            )
            context = QuotaContext(
                account=f"{self._api.traits.name}|{self.base_url}|{self._auth.key_id()}",
                limits=self.quota,
                lookup=self._tracker.task_state,
                running=self._tracker.running_tasks,
            )
            await stack.enter_async_context(self._scheduler.running(context))
            if self.callbacks is not None:
                stack.callback(self.callbacks.subscribe(self._on_hint))
            self._stack = stack.pop_all()
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following tasks and close the HTTP session. Idempotent.

        Tasks still running on the server keep running there; their results can be fetched
        later with :meth:`get` by ``task_id`` or ``external_task_id``.
        """
        if self._state != "open":
            self._state = "closed"
            return
        stack, self._stack = self._stack or AsyncExitStack(), None
        try:  # "open" while its background work ends: a poller spawned just before may start
            await stack.aclose()
        finally:
            self._state = "closed"

    def __del__(self) -> None:
        if getattr(self, "_state", None) == "open":
            warnings.warn(
                "KlingClient was not closed; use 'async with KlingClient(...)'",
                ResourceWarning,
                stacklevel=1,
            )

    def _check_open(self) -> Transport:
        if self._state != "open" or self._transport is None:
            raise RuntimeError(
                "KlingClient is not open; use 'async with KlingClient(...) as client'"
                if self._state == "new"
                else "KlingClient is closed"
            )
        return self._transport

    def _spawn(self, func: Callable[..., Any], *args: Any) -> None:
        self._scheduler.spawn(func, *args)

    def _on_hint(self, hint: CallbackHint) -> None:
        self._tracker.on_hint(hint.task_id, hint.task_status)

    # -- public API --------------------------------------------------------------------------

    async def submit(self, request: Request) -> Task:
        """Create one task, waiting for quota slots first.

        The slots stay held until the server reports the task terminal (the client follows it
        in the background). A 1303 answer puts the request back in the queue; it is not raised.

        Args:
            request: An :class:`OmniImageRequest` or :class:`OmniVideoRequest`.

        Returns:
            The created :class:`Task`.

        Raises:
            InvalidInputError: a local input file breaks a rule (nothing was sent).
            QuotaError: the request costs more slots than its pool holds.
            APIError: the server refused the create (subclass by code).
            TransportError: the create could not be sent, or its outcome is unknown and the
                task was not found by its ``external_task_id``.
            RuntimeError: the client is not open.
        """
        self._check_open()
        tracked = await self._scheduler.submit(request, None)
        return tracked.task

    async def get(self, task: Task | str, *, kind: Kind | None = None) -> TaskResult:
        """Query a task once.

        Args:
            task: A :class:`Task`, a ``task_id`` or an ``external_task_id``.
            kind: ``"image"`` or ``"video"``; needed for a bare id of a video task the client
                is not following. Default: the task's kind, else ``"image"``.

        Raises:
            APIError: e.g. :class:`InvalidRequestError` (1203) for an unknown id.
        """
        self._check_open()
        task_id, kind = self._resolve(task, kind)
        return await self._tracker.query(kind, task_id)

    async def wait(self, task: Task | str, *, kind: Kind | None = None) -> TaskResult:
        """Wait until a task ends and return its final result.

        Args:
            task: A :class:`Task` or an id (see :meth:`get`).
            kind: As for :meth:`get`.

        Raises:
            TaskFailedError: the task ended ``failed``.
            TaskTimeoutError: ``task_timeout`` passed first.
            APIError, TransportError: the task could not be queried.
        """
        self._check_open()
        task_id, kind = self._resolve(task, kind)
        tracked = self._tracker.get(task_id)
        if tracked is not None:
            return await self._tracker.wait(tracked)
        return await self._tracker.wait_untracked(kind, task_id)

    @asynccontextmanager
    async def stream(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        deadline: float | None = None,
        keys: Callable[[int, Request], str] | None = None,
        budget_units: Decimal | int | str | None = None,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> AsyncIterator[Outcomes]:
        """Run many requests under quota and yield each :class:`Outcome` as its task ends.

        Requests are pulled from ``requests`` lazily (at most ``lookahead`` ahead of those
        running), so a generator of a million requests runs in memory proportional to the
        quota. Outcomes come in completion order; ``outcome.index`` is the input position.
        Per-task failures are values (``outcome.error``); a 1303 never appears there.

        A slow reader does not hold creates back: the quota is kept full and outcomes not yet
        read wait in an unbounded buffer (each holds its result's URLs, not the files). To
        limit how far creates run ahead of your processing, feed ``requests`` from an async
        iterable that waits for it.

        Leaving the block early cancels the requests not yet created; tasks already created
        are followed until they end, so their slots are released correctly.

        Args:
            requests: Request models, as an iterable or an async iterable.
            deadline: Seconds the whole run may take, from this call; ``None`` (default) for
                no limit. When it passes, nothing more is created: every request not yet
                created (also those still in ``requests``, which are then read to the end
                without any HTTP request) yields an ``Outcome`` with
                :class:`DeadlineExceededError`, and every task still running yields one with
                :class:`TaskTimeoutError` and its ``task`` set, so it can be fetched later
                with :meth:`get` (a journal re-attaches to it on the next run). The tasks'
                quota slots stay held until the server ends them.
            keys: Gives each request's key from its input position and itself: the
                ``external_task_id`` sent to Kling (when the request has none) and, on every
                wire API, the name of its journal entry and of :attr:`Task.external_task_id`.
                Stable keys let a journal resume a run; on Modellix, which has no
                ``external_task_id``, they are the only way to. Default: the request's
                ``external_task_id``, else a random one.
            budget_units: The most units this stream may spend (default ``None``: no cap).
                A create happens only while the units charged to its ended tasks, plus an
                estimate per task in flight, plus its own estimate stay within it; else that
                request and every later one end with :class:`BudgetExceededError`, nothing
                sent, while created tasks run to their end. Estimates come from the charges
                seen per class, else Kling's price list; a request of unknown cost runs while no
                other request of unknown cost is in flight, so the cap is passed by at most one
                task's charge (see docs/budgets.md). Kling only: Modellix reports no charges.
            on_progress: Called with a :class:`Progress` of this stream (requests pulled,
                waiting for slots, running, succeeded, failed, units spent, seconds elapsed)
                after it changes, at most every 0.1 s, and once more with ``finished=True``
                when the block is left. It runs synchronously on the event loop, so it must
                not block (update a bar, set a gauge); an exception from it is logged on
                ``kling_async.client`` and ignored, the stream goes on. Default ``None``.

        Usage::

            async with client.stream(requests) as outcomes:
                async for outcome in outcomes:
                    ...

        Raises:
            TypeError: an item of ``requests`` is not a request model.
            ValueError: ``budget_units`` is not a positive number, or the wire API reports no
                charges (Modellix).
            RuntimeError: the client is not open.
        """
        self._check_open()
        budget = None if budget_units is None else parse_units(budget_units)
        async with self._scheduler.stream(
            requests,
            deadline=deadline,
            keys=keys,
            budget_units=budget,
            on_progress=on_progress,
        ) as outcomes:
            yield outcomes

    async def run_all(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        deadline: float | None = None,
        keys: Callable[[int, Request], str] | None = None,
        budget_units: Decimal | int | str | None = None,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> list[Outcome]:
        """Run every request under quota and return the outcomes in input order.

        Args:
            requests: As :meth:`stream`.
            deadline: As :meth:`stream`.
            keys: As :meth:`stream`.
            budget_units: As :meth:`stream`.
            on_progress: As :meth:`stream`.

        Raises:
            TypeError, RuntimeError: as :meth:`stream`.
        """
        outcomes: list[Outcome] = []
        async with self.stream(
            requests,
            deadline=deadline,
            keys=keys,
            budget_units=budget_units,
            on_progress=on_progress,
        ) as stream:
            async for outcome in stream:
                outcomes.append(outcome)
        outcomes.sort(key=lambda o: o.index)
        return outcomes

    async def download(
        self,
        result: TaskResult,
        directory: str | os.PathLike[str],
        *,
        stem: str | None = None,
        watermarked: bool = False,
    ) -> list[SavedFile]:
        """Save every output of a finished task into ``directory``.

        Files are named ``{stem}-image-{i}``, ``{stem}-series-{i}``, ``{stem}-video-{i}`` with
        the extension of the served ``Content-Type``; ``stem`` defaults to the task's
        ``external_task_id`` (else its ``task_id``). Each file is written under a temporary
        name and renamed when complete. Download result URLs promptly: Kling purges them after
        30 days (https://kling.ai/document-api/api/image/3-0-omni/image-omni).

        Args:
            result: A :class:`TaskResult` (e.g. ``outcome.result``).
            directory: Target folder, created if missing.
            stem: File name prefix (made file-name safe).
            watermarked: Save the ``watermark_url`` copies instead, where present.

        Returns:
            The saved files, as ``SavedFile(path, role, index, bytes)``.

        Raises:
            DownloadError: an output could not be saved (bad scheme, HTTP error, size cap,
                unexpected ``Content-Type``).
        """
        transport = self._check_open()
        return await download_result(
            transport,
            result,
            Path(directory),
            stem=stem or result.external_task_id or result.task_id,
            watermarked=watermarked,
            retry=self.retry,
        )

    def pool(self, model: str, kind: Kind) -> PoolLimiter:
        """The in-process quota pool of ``(model, kind)`` (created on first use); on a team
        pool (Modellix) every model and kind share one.

        Raises:
            TypeError: the client runs on another quota backend (see its own figures).
        """
        if not isinstance(self._backend, LocalQuota):
            raise TypeError("pool(): only the in-process quota backend has PoolLimiter pools")
        traits = self._api.traits
        return self._backend.pool(
            traits.pool_name(model, kind), traits.pool_capacity(self.quota, model, kind)
        )

    def quota_snapshot(self) -> dict[str, PoolSnapshot]:
        """Figures per quota pool, keyed by pool name: slots held by this process
        (``in_use``), by other processes on a shared backend (``others``), requests
        ``waiting``, ``hidden`` slots, ``peak``; see :class:`PoolSnapshot`. A shared backend
        reports what it saw last (updated whenever this process waits or its tasks end)."""
        return self._backend.snapshot()

    def stats(self) -> ClientStats:
        """A snapshot of what this client did since it was constructed: per quota pool the
        slots held, capacity, requests waiting, 1303s absorbed, mean task seconds and poll
        interval; HTTP requests sent; tasks created, succeeded and failed; units spent (see
        :class:`ClientStats`). Cheap (no I/O); works before opening and after closing."""
        pace = self._tracker.pace(polling=self._state == "open")
        return self._counters.snapshot(self._backend.snapshot(), pace, self._tracker.in_flight)

    @property
    def carries_external_task_id(self) -> bool:
        """Whether this wire API takes (and can look tasks up by) ``external_task_id``; where
        it does not (Modellix), the id stays the client's own key for journal and files."""
        return self._api.traits.supports_external_lookup

    def check(self, request: Request) -> None:
        """Check that this client's wire API can carry ``request``; sends nothing.

        Raises:
            InvalidInputError: a field the wire API cannot carry is set (e.g. ``watermark`` on
                Modellix), or a rule of that wire API is broken; the message names the provider
                and the field.
        """
        self._api.check(request)

    async def account_costs(
        self,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        resource_pack_name: str | None = None,
    ) -> list[ResourcePack]:
        """The account's resource packs (:class:`ResourcePack`, in the server's order) with
        their total and remaining units: one free ``GET /account/costs``
        (https://kling.ai/document-api/api/assets/account-usage). ``remaining`` lags by up to
        12 hours (Kling's documented delay). Calls, retries included, are kept at least
        1.02 s apart (Kling asks for at most one query per second).

        Args:
            start: Start of the window, aware (sent as epoch ms, ``start_time``); which of a
                pack's times Kling compares with it is undocumented. Default: 1970-01-01 UTC.
            end: End of the window, aware (``end_time``). Default: now.
            resource_pack_name: Only the pack of this exact name. Default: every pack.

        Raises:
            ValueError: ``start``/``end`` is naive or ``start`` is after ``end``, or
                ``resource_pack_name`` is empty (nothing is sent).
            NotSupportedError: the wire API has no such query (Modellix; nothing is sent).
            APIError: the server refused (the answer's outer or inner ``code``).
            ResponseFormatError: the answer is not the documented shape.
            TransportError: the query failed after the retries.
            RuntimeError: the client is not open.
        """
        self._check_open()
        return await self._api.account_costs(start, end, resource_pack_name)

    def _resolve(self, task: Task | str, kind: Kind | None) -> tuple[str, Kind]:
        if isinstance(task, Task):
            return task.task_id, kind or task.kind
        tracked = self._tracker.get(task)
        return task, kind or (tracked.task.kind if tracked else "image")
