"""``KlingClient``: submit under quota, track tasks to the end, stream outcomes.

Structure (DESIGN §3): the client owns one aiohttp session (through the transport) and one
anyio task group in which a tracker polls every in-flight task until the server reports it
terminal, then releases its quota slots. ``stream()`` runs one lifecycle per request in its own
task group: encode → wait for slots → create → wait for the tracker → ``Outcome``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import random
import uuid
import warnings
from collections import OrderedDict
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Container,
    Iterable,
    Mapping,
)
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import anyio
import anyio.lowlevel
import attrs
from aiolimiter import AsyncLimiter
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from ._auth import ApiKeyAuth, JwtAuth
from ._callbacks import CallbackHint, CallbackReceiver
from ._download import SavedFile, download_result
from ._errors import (
    APIError,
    AuthenticationError,
    ConcurrencyLimitError,
    DeadlineExceededError,
    InvalidRequestError,
    KlingError,
    OutcomeUnknownError,
    QuotaError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from ._journal import Journal, JournalConflictError, JournalEntry, request_fingerprint
from ._models import (
    Kind,
    OmniImageRequest,
    OmniVideoRequest,
    Outcome,
    Quota,
    Request,
    Task,
    TaskResult,
    TaskStatus,
)
from ._providers.kling import DEFAULT_BASE_URL, KlingCodec
from ._providers.modellix import DEFAULT_BASE_URL as MODELLIX_BASE_URL
from ._providers.modellix import ModellixCodec
from ._quota import (
    MAX_SERIES,
    MIN_SERIES,
    AutoSeriesEstimator,
    PoolLimiter,
    expected_frees,
    request_cost,
)
from ._transport import Transport, new_session

_log = logging.getLogger("kling_async.client")
_quota_log = logging.getLogger("kling_async.quota")

__all__ = ["ClientStats", "KlingClient"]

_FINISHED_KEPT = 1024  # results kept for wait() on tasks that already ended
_SINGLE_GET_MAX = 2  # up to this many tasks in flight, single GETs are as cheap as a list
_PAGE_SIZE_MIN = 30  # §5.4: pageSize 1–500, default 30 [S1]
_PAGE_SIZE_MAX = 500
_PAGES_MAX = 3  # list pages per tick before falling back to single GETs for stragglers
MODELLIX_REQUESTS_PER_MINUTE = 100.0  # modellix_api.md §4: 100 requests/min per key [S-arch]
# Connections beyond one per quota slot (aiohttp's default pool size): creates up to the quota
# never queue inside aiohttp behind each other or behind queries.
_SPARE_CONNECTIONS = 100
_CALLBACK_POLL_FACTOR = 10.0  # with callbacks, polling is a slow safety net
# Budgeted polling (Modellix) checks a task first after this many poll intervals while its pool
# has not seen a task end: with the defaults 3.2 s for images, 20 s for videos (images usually
# take 3–10 s, videos 30–120 s, modellix_api.md §4 [G-skill]).
_FIRST_CHECK_FACTOR = 4.0

Codec = KlingCodec | ModellixCodec
_Job = tuple[int, Request, str | None]  # a stream request: input position, request, key
_PULLS_PER_PASS = 4  # stream(): requests pulled per pass of the event loop at most


@attrs.define(eq=False)
class _Tracked:
    task: Task
    pool: PoolLimiter
    reserved: int
    auto_series: bool
    series: bool = False  # a series request: Modellix answers need this to sort images
    started: float = attrs.field(factory=anyio.current_time)
    next_check: float = 0.0  # budgeted polling: when to query this task next
    checks: int = 0  # queries that found it still running
    done: anyio.Event = attrs.field(factory=anyio.Event)
    result: TaskResult | None = None
    error: KlingError | None = None


@attrs.define
class ClientStats:
    """Counters of what this client did (for progress displays and benchmarks).

    Attributes:
        creates: Tasks created.
        requeued: Creates answered 1303 (concurrency full) and put back in the queue.
        queries: Single-task queries sent.
        list_queries: List queries sent (each reports on many tasks).
        http_requests: All HTTP requests sent.
        in_flight: Tasks created and not yet seen terminal.
        resumed: Requests answered from the journal (re-attached or already finished).
        overbooked: Creates sent in slots counted as held by ``auto`` series, to find out
            whether those series hold them (see ``PoolLimiter``).
        overbooked_requeued: Of those, creates answered 1303 (the slots were held).
    """

    creates: int = 0
    requeued: int = 0
    queries: int = 0
    list_queries: int = 0
    http_requests: int = 0
    in_flight: int = 0
    resumed: int = 0
    overbooked: int = 0
    overbooked_requeued: int = 0


class KlingClient:
    """Async client for Kling's omni-image and omni-video APIs.

    Use it as an async context manager; it owns one ``aiohttp.ClientSession`` and a background
    task group that follows created tasks to the end::

        async with KlingClient(api_key="...") as client:
            task = await client.submit(OmniImageRequest(prompt="...", n=2))
            result = await client.wait(task)

    Args:
        api_key: Bearer API key (reference §3.1). Default: env ``KLING_API_KEY`` (Kling) or
            ``MODELLIX_API_KEY`` (Modellix).
        access_key: AccessKey for HS256 JWT auth (§3.2, Kling only); needs ``secret_key``.
            Default: env ``KLING_ACCESS_KEY``.
        secret_key: SecretKey. Default: env ``KLING_SECRET_KEY``.
        base_url: API root, optionally with a gateway path prefix such as
            ``"https://api.powertokens.ai/kling"``. Default (Kling): env ``KLING_BASE_URL``,
            else ``https://api-singapore.klingai.com``; (Modellix): env ``MODELLIX_BASE_URL``,
            else ``https://api.modellix.ai/api/v1``.
        provider: Wire API: ``"kling"`` (Kling's native API and gateways that proxy it) or
            ``"modellix"``. The same request models and results work on both; a request
            field a wire API cannot carry is refused before sending
            (:class:`InvalidInputError` naming the provider and the field). Default
            ``"kling"``.
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
        image_poll_interval: Seconds between polls of the image tasks in flight, ±10 % jitter.
            On Kling each poll is one list query for all of them (single GETs when only one or
            two are in flight); while no task can have ended yet (all younger than 80 % of the
            shortest their pool has seen) polls wait. Default 0.8.
        video_poll_interval: The same for video tasks. Default 5.0.
        lookahead: Requests ``stream()`` pulls from the input ahead of the ones running, so a
            small request can start while a large one waits for slots. Default 32.
        max_retries: Attempts for a query (and for a create the server certainly refused
            before creating) on 1302, 5000–5002, 5xx and transport errors. Default 5.
        journal: Path of a SQLite journal (created if missing). With it, the intent of each
            create is recorded before it is sent, the task id after, the result at the end;
            running the same requests (same ``external_task_id``, or same ``keys`` given to
            :meth:`stream`) again re-attaches to tasks still running, returns finished results
            without any request, and creates only what never reached the server. Default
            ``None`` (no journal).
        requests_per_minute: Budget of HTTP requests (creates and queries) per minute, kept
            with a leaky bucket that lets one request through every ``60 / budget`` seconds
            (no bursts, so no 60 s window ever holds more than the budget). A 429 rate-limit
            answer pauses all requests for its ``Retry-After`` / ``X-RateLimit-Reset``.
            Default: 100 on Modellix (its per-key limit, modellix_api.md §4), none on Kling.
        submit_path: Modellix only: which documented create path to use first, ``"async"``
            (``/kling/{model}/async``) or ``"plain"`` (``/kling/{model}``); the client
            switches to the other only after a definite 404/405. Default ``"async"``.
        callbacks: A :class:`CallbackReceiver` (Kling only). Creates without a
            ``callback_url`` get the receiver's URL; each callback is a hint confirmed by an
            authenticated query, so its outcome arrives within milliseconds, and polling
            goes on ten times slower as a safety net. Default ``None``.

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
        image_poll_interval: float = 0.8,
        video_poll_interval: float = 5.0,
        lookahead: int = 32,
        max_retries: int = 5,
        journal: str | os.PathLike[str] | None = None,
        requests_per_minute: float | None = None,
        submit_path: Literal["async", "plain"] = "async",
        callbacks: CallbackReceiver | None = None,
    ) -> None:
        env = os.environ
        self._codec: Codec
        if provider == "kling":
            api_key = api_key or env.get("KLING_API_KEY") or None
            access_key = access_key or env.get("KLING_ACCESS_KEY") or None
            secret_key = secret_key or env.get("KLING_SECRET_KEY") or None
            url = base_url or env.get("KLING_BASE_URL") or DEFAULT_BASE_URL
            self._codec = KlingCodec()
        elif provider == "modellix":
            if access_key or secret_key:
                raise ValueError("access_key/secret_key: Modellix takes an api_key only")
            if callbacks is not None:
                raise ValueError("callbacks: Modellix has no callback_url (modellix_api.md §4)")
            if submit_path not in ("async", "plain"):
                raise ValueError(f"submit_path: {submit_path!r}, must be 'async' or 'plain'")
            api_key = api_key or env.get("MODELLIX_API_KEY") or None
            url = base_url or env.get("MODELLIX_BASE_URL") or MODELLIX_BASE_URL
            self._codec = ModellixCodec(submit_path=submit_path)
            if requests_per_minute is None:
                requests_per_minute = MODELLIX_REQUESTS_PER_MINUTE
        else:
            raise ValueError(f"provider: {provider!r}, must be 'kling' or 'modellix'")
        self._auth: ApiKeyAuth | JwtAuth
        if api_key:
            self._auth = ApiKeyAuth(api_key)
        elif access_key and secret_key:
            self._auth = JwtAuth(access_key, secret_key)
        elif provider == "modellix":
            raise ValueError("no credentials: pass api_key=... or set MODELLIX_API_KEY")
        else:
            raise ValueError(
                "no credentials: pass api_key=... (or access_key=... and secret_key=...), or set "
                "KLING_API_KEY (or KLING_ACCESS_KEY and KLING_SECRET_KEY)"
            )
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: {url!r}, must be an http(s) URL")
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute: {requests_per_minute}, must be > 0")
        if lookahead < 1:
            raise ValueError(f"lookahead: {lookahead}, must be ≥ 1")
        if max_retries < 1:
            raise ValueError(f"max_retries: {max_retries}, must be ≥ 1")
        self.base_url = url.rstrip("/")
        self.provider = provider
        self.quota = quota or Quota()
        self.request_timeout = request_timeout
        self.task_timeout = task_timeout
        self.poll_intervals: dict[Kind, float] = {
            "image": image_poll_interval,
            "video": video_poll_interval,
        }
        self.lookahead = lookahead
        self.max_retries = max_retries
        self.stats = ClientStats()
        self.requests_per_minute = requests_per_minute
        self._budget = _RequestBudget(requests_per_minute) if requests_per_minute else None
        self.callbacks = callbacks
        self._unsubscribe: Callable[[], None] | None = None
        self._confirming: set[str] = set()
        self._pools: dict[str, PoolLimiter] = {}
        self._durations: dict[str, _DurationEstimate] = {}
        self._auto: dict[str, AutoSeriesEstimator] = {}
        self._inflight: dict[str, _Tracked] = {}
        self._finished: OrderedDict[str, _Tracked] = OrderedDict()
        self._ticket = 0
        self._pollers: set[str] = set()
        self._wakeup = anyio.Event()
        self._state: Literal["new", "open", "closed"] = "new"
        self._session: aiohttp.ClientSession | None = None
        self._transport: Transport | None = None
        self._tg: TaskGroup | None = None
        self.journal: Journal | None = Journal(Path(journal)) if journal is not None else None

    def __repr__(self) -> str:
        return f"KlingClient(provider={self.provider!r}, base_url={self.base_url!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError(f"KlingClient cannot be opened twice (it is {self._state})")
        if self.journal is not None:
            await self.journal.open()
        q = self.quota
        slots = q.image + q.video + q.team + sum(q.pools.values())
        self._session = new_session(_SPARE_CONNECTIONS + slots)
        self._transport = Transport(
            self._session, self.base_url, self._auth, request_timeout=self.request_timeout
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._state = "open"
        if self.callbacks is not None:
            self._unsubscribe = self.callbacks.subscribe(self._on_hint)
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
        self._state = "closed"
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tg, self._tg = self._tg, None
        try:
            if tg is not None:
                tg.cancel_scope.cancel()
                await tg.__aexit__(None, None, None)
        finally:
            if self._session is not None:
                await self._session.close()
            if self.journal is not None:
                await self.journal.aclose()

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
        tracked = await self._submit(request, None)
        return tracked.task

    async def get(self, task: Task | str, *, kind: Kind | None = None) -> TaskResult:
        """Query a task once.

        Args:
            task: A :class:`Task`, a ``task_id`` or an ``external_task_id`` (§5.3 [S1]).
            kind: ``"image"`` or ``"video"``; needed for a bare id of a video task the client
                is not following. Default: the task's kind, else ``"image"``.

        Raises:
            APIError: e.g. :class:`InvalidRequestError` (1203) for an unknown id.
        """
        self._check_open()
        task_id, kind = self._resolve(task, kind)
        return await self._query(kind, task_id)

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
        tracked = self._inflight.get(task_id) or self._finished.get(task_id)
        if tracked is not None:
            return await self._await_tracked(tracked)
        return await self._poll_until_done(kind, task_id)

    @asynccontextmanager
    async def stream(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        deadline: float | None = None,
        keys: Callable[[int, Request], str] | None = None,
    ) -> AsyncIterator[MemoryObjectReceiveStream[Outcome]]:
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

        Usage::

            async with client.stream(requests) as outcomes:
                async for outcome in outcomes:
                    ...

        Raises:
            TypeError: an item of ``requests`` is not a request model.
            RuntimeError: the client is not open.
        """
        self._check_open()
        # Unbounded: a slow reader never held anything back (a request leaves the lookahead
        # window when it gets its slots, not when its outcome is read), so a bounded buffer
        # only parked the outcomes of a burst (one list poll ends dozens of tasks) in blocked
        # lifecycles, each with an Event and a wake-up of its own.
        send, plain = anyio.create_memory_object_stream[Outcome](math.inf)
        receive = _OutcomeStream(plain._state)
        plain.close()
        try:
            until = None if deadline is None else anyio.current_time() + deadline
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._feed, requests, send, tg, until, keys)
                try:
                    async with receive:
                        yield receive
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _collapse(group) from None

    async def run_all(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        deadline: float | None = None,
        keys: Callable[[int, Request], str] | None = None,
    ) -> list[Outcome]:
        """Run every request under quota and return the outcomes in input order.

        Args:
            requests: As :meth:`stream`.
            deadline: As :meth:`stream`.
            keys: As :meth:`stream`.

        Raises:
            TypeError, RuntimeError: as :meth:`stream`.
        """
        outcomes: list[Outcome] = []
        async with self.stream(requests, deadline=deadline, keys=keys) as stream:
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
        30 days (reference §12).

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
        )

    def pool(self, model: str, kind: Kind) -> PoolLimiter:
        """The quota pool of ``(model, kind)`` (created on first use). On Modellix every model
        and kind share the team's pool, ``"modellix:team"``."""
        team = self.provider == "modellix"
        name = "modellix:team" if team else f"{model}:{kind}"
        pool = self._pools.get(name)
        if pool is None:
            capacity = self.quota.team if team else self.quota.capacity(model, kind)
            pool = PoolLimiter(name, capacity, hol_patience=self.quota.hol_patience)
            durations = _DurationEstimate()
            self._durations[name] = durations
            pool.expected_duration = durations.mean
            pool.expected_frees = lambda: self._expected_frees(pool, durations)
            self._pools[name] = pool
            self._auto[name] = AutoSeriesEstimator(initial=self.quota.auto_series_estimate)
        return pool

    # -- stream machinery --------------------------------------------------------------------

    async def _feed(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        send: MemoryObjectSendStream[Outcome],
        tg: TaskGroup,
        until: float | None,
        keys: Callable[[int, Request], str] | None,
    ) -> None:
        """Pull requests into the lookahead window and hand each to a lifecycle worker: an
        idle one if any waits, else a new one. Workers are reused, so a run spawns about as
        many tasks as lifecycles run at once, not one per request (spawning an anyio task
        costs more than the rest of the hand-over)."""
        # fast_acquire: taking a free place does not yield to the event loop (a pass of the
        # loop per request); pulling stops at the next await whenever the window is full.
        window = anyio.Semaphore(self.lookahead, fast_acquire=True)
        items = _aiter(requests)
        idle = _IdleWorkers()
        # Leaving ``idle`` at the end ends the idle workers; busy ones end after their job.
        async with send, idle:
            index = 0
            while True:
                await window.acquire()  # take a place in the window before pulling
                try:
                    request = await anext(items)
                except StopAsyncIteration:
                    break
                if not isinstance(request, OmniImageRequest | OmniVideoRequest):
                    raise TypeError(
                        f"requests[{index}]: expected OmniImageRequest or OmniVideoRequest, "
                        f"got {type(request).__name__}"
                    )
                key = keys(index, request) if keys is not None else None
                job = (index, request, key)
                if not idle.hand_over(job):
                    tg.start_soon(self._worker, job, idle, send.clone(), window, until)
                index += 1
                if index % _PULLS_PER_PASS == 0:
                    # Let answers that arrived be read before more creates start: a window
                    # filled in one pass starts its creates in one burst, whose allocations
                    # ran the garbage collector 2.5 times as often and delayed polls.
                    await anyio.lowlevel.checkpoint()

    async def _worker(
        self,
        job: _Job,
        idle: _IdleWorkers,
        send: MemoryObjectSendStream[Outcome],
        window: anyio.Semaphore,
        until: float | None,
    ) -> None:
        """Run the lifecycle of ``job``, then of each job the feeder hands over, until the
        feeder is done."""
        async with send:
            next_job: _Job | None = job
            while next_job is not None:
                await self._lifecycle(*next_job, send, window, until)
                next_job = await idle.next_job()

    async def _lifecycle(
        self,
        index: int,
        request: Request,
        key: str | None,
        send: MemoryObjectSendStream[Outcome],
        window: anyio.Semaphore,
        until: float | None,
    ) -> None:
        released = False

        def admitted() -> None:
            # The request left the lookahead window: let the feeder pull the next one.
            nonlocal released
            if not released:
                released = True
                window.release()

        try:
            outcome = await self._run_one(index, request, admitted, until, key)
        finally:
            admitted()
        try:
            send.send_nowait(outcome)  # a reader waits or the buffer has room: no yield
        except anyio.WouldBlock:
            await send.send(outcome)

    async def _run_one(
        self,
        index: int,
        request: Request,
        admitted: Callable[[], None],
        until: float | None,
        key: str | None,
    ) -> Outcome:
        tracked: _Tracked | None = None
        try:
            if until is None:
                tracked = await self._submit(request, admitted, key)
            else:
                # The create itself is shielded in _submit: the deadline never cuts one in half.
                with anyio.CancelScope(deadline=until):
                    tracked = await self._submit(request, admitted, key)
        except AuthenticationError:
            raise  # bad credentials make the whole batch pointless (DESIGN §4)
        except KlingError as exc:
            return Outcome(request=request, index=index, error=exc)
        if tracked is None:
            return Outcome(
                request=request,
                index=index,
                error=DeadlineExceededError(
                    "the run's deadline passed before this request was created; nothing was sent"
                ),
            )
        task = tracked.task
        try:
            result = await self._await_tracked(tracked, until)
        except TaskFailedError as exc:
            return Outcome(
                request=request, index=index, task=task, result=tracked.result, error=exc
            )
        except KlingError as exc:
            return Outcome(request=request, index=index, task=task, error=exc)
        return Outcome(request=request, index=index, task=task, result=result)

    # -- submit ------------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        """Check that this client's wire API can carry ``request``; sends nothing.

        Raises:
            InvalidInputError: a field the wire API cannot carry is set (e.g. ``watermark`` on
                Modellix), or a rule of that wire API is broken; the message names the provider
                and the field.
        """
        self._codec.check(request)

    async def _submit(
        self, request: Request, admitted: Callable[[], None] | None, key: str | None = None
    ) -> _Tracked:
        self._codec.check(request)
        external_task_id = request.external_task_id or key or f"ka-{uuid.uuid4().hex}"
        pool = self.pool(request.model_name, request.kind)
        if self.journal is not None:
            resumed = await self._resume(request, external_task_id, pool)
            if resumed is not None:
                if admitted is not None:
                    admitted()
                return resumed
        wire_request = request
        if self.callbacks is not None and request.callback_url is None:
            wire_request = attrs.evolve(request, callback_url=self.callbacks.url)
        if request.has_local_media:  # reading and encoding files blocks: off the loop
            body = await anyio.to_thread.run_sync(
                self._codec.build_create, wire_request, external_task_id
            )
        else:
            body = self._codec.build_create(wire_request, external_task_id)
        auto = self._auto[pool.name]
        self._ticket += 1
        ticket, since = self._ticket, anyio.current_time()
        backoff = 0.25
        price = request_cost(request, auto)
        is_auto = _is_auto_series(request)
        if self.provider == "modellix":  # Quota.team: a large request runs alone
            price = _capped(price, pool.capacity)
        upto: Callable[[], int] | None = None
        refused = 0  # most slots an auto series was granted and refused (1303) with
        if is_auto and callable(price):
            # The server decides an auto series' count at create and admits it if that many
            # slots are free (§9 [S1], admission: GAP): it may start in as few as 2 free slots
            # and is granted up to the estimator's reservation of what is free. Once it has
            # waited hol_patience, it asks for one slot more than it was ever refused with,
            # so the head-of-line policy protects it even if the server's count is fixed.
            upto = price

            def floor() -> int:
                patience = pool.patience()
                if patience is None or anyio.current_time() - since < patience:
                    return MIN_SERIES
                return max(MIN_SERIES, min(refused + 1, MAX_SERIES, pool.capacity))

            price = floor

        while True:
            cost = await pool.acquire(price, ticket=ticket, since=since, upto=upto)
            overbooked = pool.overbooking(ticket)
            self.stats.overbooked += overbooked
            if admitted is not None:
                admitted()
            try:
                # Shielded: once a create is on the wire, see it through and track the task,
                # so a cancelled stream never leaves an untracked task holding paid slots.
                with anyio.CancelScope(shield=True):
                    task = await self._journaled_create(request, body, external_task_id, cost)
                    pool.created(ticket=ticket, auto_reserved=cost if is_auto else 0)
                    _log.info(
                        "task %s created (external_task_id %s, %s, %d slot(s) of pool %s)",
                        task.task_id,
                        external_task_id,
                        request.kind,
                        cost,
                        pool.name,
                    )
                    return self._track(task, pool, cost, request)
            except ConcurrencyLimitError:
                # §9 [S4]: the server is the source of truth; wait for a slot and try again.
                pool.reject(cost, ticket=ticket, proves_hidden=not is_auto)
                self.stats.requeued += 1
                self.stats.overbooked_requeued += overbooked
                refused = max(refused, cost)
                _quota_log.info(
                    "create %s refused for a full pool %s (1303 at %d slot(s)): re-queued",
                    external_task_id,
                    pool.name,
                    cost,
                )
                await pool.wait_for_release(backoff)
                backoff = min(backoff * 2, 4.0)
            except BaseException:
                pool.release(cost)
                raise

    async def _journaled_create(
        self, request: Request, body: Mapping[str, Any], external_task_id: str, cost: int
    ) -> Task:
        journal = self.journal
        if journal is None:
            return await self._create(request, body, external_task_id, cost)
        await journal.record_intent(
            external_task_id, request_fingerprint(request), request.kind, request.model_name
        )
        try:
            task = await self._create(request, body, external_task_id, cost)
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

    async def _resume(
        self, request: Request, external_task_id: str, pool: PoolLimiter
    ) -> _Tracked | None:
        """Re-attach to what the journal knows of ``external_task_id``; ``None`` to create."""
        assert self.journal is not None
        entry = await self.journal.get(external_task_id)
        if entry is None:
            return None
        changed = entry.fingerprint != request_fingerprint(request)
        if entry.state == "intent":
            # A create may or may not have reached the server: ask it (§5.3 lookup by id).
            # Only "no such task" lets us create; a failed lookup is raised, never guessed.
            if not self._codec.supports_external_lookup:
                raise OutcomeUnknownError(
                    f"an earlier run sent the create for {external_task_id!r} on "
                    f"{self.provider} and never learnt its task id; the task may exist and be "
                    "billed, so it is not sent again",
                    provider=self.provider,
                    external_task_id=external_task_id,
                )
            found = await self._find_by_external_id(request, external_task_id, 0)
            if found is None:
                await self.journal.forget(external_task_id)
                return None
            if changed:
                raise _changed(external_task_id, found.task_id)
            price = request_cost(request, self._auto[pool.name])
            task_id, cost = found.task_id, price() if callable(price) else price
            await self.journal.record_created(external_task_id, task_id, cost)
        else:
            if changed:
                raise _changed(external_task_id, entry.task_id)
            if entry.state in ("finished", "saved"):
                return self._finished_from_journal(request, entry, pool)
            assert entry.task_id is not None
            task_id, cost = entry.task_id, entry.cost or 1
        task = Task(
            task_id=task_id,
            external_task_id=external_task_id,
            kind=request.kind,
            model=request.model_name,
            cost=cost,
        )
        is_auto = _is_auto_series(request)
        # The task already holds these slots on the server.
        pool.occupy(cost, auto_reserved=cost if is_auto else 0)
        self.stats.resumed += 1
        return self._track(task, pool, cost, request)

    def _finished_from_journal(
        self, request: Request, entry: JournalEntry, pool: PoolLimiter
    ) -> _Tracked:
        result = entry.result
        task = Task(
            task_id=entry.task_id or (result.task_id if result else ""),
            external_task_id=entry.external_task_id,
            kind=request.kind,
            model=request.model_name,
            cost=entry.cost or 0,
            created_at=result.created_at if result else None,
        )
        tracked = _Tracked(task, pool, 0, auto_series=False, result=result)
        if entry.error is not None or result is None:
            tracked.error = (
                TaskFailedError(
                    result.status_message or "",
                    task_id=task.task_id,
                    external_task_id=task.external_task_id,
                )
                if result is not None and result.status is TaskStatus.FAILED
                else KlingError(entry.error or "finished without a result")
            )
        tracked.done.set()
        self.stats.resumed += 1
        return tracked

    async def _create(
        self, request: Request, body: Mapping[str, Any], external_task_id: str, cost: int
    ) -> Task:
        """Send the create until the server certainly has the task, retrying only what
        certainly did not create one (DESIGN §7): 1302, a connection refused before sending,
        and an ambiguous failure after which a lookup by ``external_task_id`` finds no task.

        Raises:
            ConcurrencyLimitError: 1303 (or Modellix 429 concurrency): re-queued by the caller.
            OutcomeUnknownError: Modellix, after an ambiguous failure.
            KlingError: a terminal refusal, or retries exhausted.
        """
        delay = 0.5
        switched = False
        ambiguous = False  # an earlier attempt may have created the task
        for attempt in range(1, self.max_retries + 1):
            try:
                path = self._codec.create_path(request)
                data = await self._call("POST", path, json_body=body)
                task = self._codec.parse_create(data, request, external_task_id, cost)
                self.stats.creates += 1
                return task
            except ConcurrencyLimitError:
                raise
            except InvalidRequestError as exc:
                if ambiguous:
                    # Perhaps the earlier attempt did create it, and this refusal is about the
                    # reused external_task_id (§5.1: unique per account): look again.
                    found = await self._recover(exc, request, external_task_id, cost)
                    if found is not None:
                        return found
                # Modellix documents two create paths (modellix_api.md §1); a definite 404/405
                # proves nothing was created, so the other form may be tried, once.
                codec = self._codec
                if switched or exc.http_status not in (404, 405):
                    raise
                if not isinstance(codec, ModellixCodec):
                    raise
                switched = True
                if codec.create_path(request) == path:  # not yet switched by another create
                    self._codec = codec.other_submit_path()
                continue
            except RateLimitError as exc:  # 1302: certainly not created
                failure: KlingError = exc
                wait = exc.retry_after or delay
            except TransportError as exc:
                failure, wait = exc, delay
                if exc.sent:
                    found = await self._recover(exc, request, external_task_id, cost)
                    if found is not None:
                        return found
                    ambiguous = True
            except (ServerError, ResponseFormatError) as exc:
                failure, wait = exc, delay
                found = await self._recover(exc, request, external_task_id, cost)
                if found is not None:
                    return found
                ambiguous = True
            if attempt == self.max_retries:
                raise failure
            _log.info(
                "create %s: attempt %d failed (%s); retrying", external_task_id, attempt, failure
            )
            await anyio.sleep(wait * (0.5 + random.random()))
            delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _recover(
        self, failure: KlingError, request: Request, external_task_id: str, cost: int
    ) -> Task | None:
        """After an ambiguous create (the task may exist, §8 INFERRED [S15]): the task if the
        server has it, ``None`` when the server says it has none (1203), so the create may be
        sent again under the same ``external_task_id``. When the lookup itself fails,
        ``failure`` is raised: nothing is sent again on a guess. Where the wire API has no
        lookup by client id (Modellix), :class:`OutcomeUnknownError` is raised
        (modellix_api.md §3: never re-send a paid create)."""
        if not self._codec.supports_external_lookup:
            raise OutcomeUnknownError(
                f"the create for {external_task_id!r} on {self.provider} was sent but its "
                f"answer was lost ({failure}); the task may exist and be billed, and "
                f"{self.provider} cannot look it up by a client id, so it was not sent again",
                provider=self.provider,
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
            self.stats.creates += 1
        _log.info(
            "lookup of %s: %s",
            external_task_id,
            f"task {found.task_id} exists" if found else "no task, the create may be sent again",
        )
        return found

    async def _find_by_external_id(
        self, request: Request, external_task_id: str, cost: int
    ) -> Task | None:
        """The task created under ``external_task_id``, or ``None`` when the server says there
        is none (1203). Any other failure is raised: it proves nothing either way.

        Raises:
            KlingError: the lookup failed for another reason.
        """
        try:
            result = await self._query(request.kind, external_task_id)
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

    # -- tracking ----------------------------------------------------------------------------

    def _track(self, task: Task, pool: PoolLimiter, cost: int, request: Request) -> _Tracked:
        tracked = _Tracked(
            task,
            pool,
            cost,
            auto_series=_is_auto_series(request),
            series=isinstance(request, OmniImageRequest) and request.result_type == "series",
        )
        self._inflight[task.task_id] = tracked
        self.stats.in_flight += 1
        assert self._tg is not None
        if not self._codec.supports_list_query:
            shortest = self._durations[pool.name].shortest
            interval = self.poll_intervals[task.kind]
            first = 0.8 * shortest if shortest else _FIRST_CHECK_FACTOR * interval
            tracked.next_check = tracked.started + max(interval, first)
            self._wakeup.set()
            if "budgeted" not in self._pollers:
                self._pollers.add("budgeted")
                self._tg.start_soon(self._poll_budgeted)
        elif task.kind not in self._pollers:
            self._pollers.add(task.kind)
            self._tg.start_soon(self._poll_kind, task.kind)
        return tracked

    async def _poll_budgeted(self) -> None:
        """Follow every in-flight task where there is no list query and requests are budgeted
        (Modellix, DESIGN §6). A task is first checked once its pool's shortest observed
        duration has (80 %) passed (before any has ended: images 3 s, videos 30 s,
        modellix_api.md §4), then again after a delay growing ×1.5 per check up to 5 s
        (images) or 20 s (videos). One query at a time, always for the most overdue task, the
        one most likely finished, so a tight budget goes where results are, not round-robin.
        """
        while self._inflight:
            now = anyio.current_time()
            tracked = min(self._inflight.values(), key=lambda t: t.next_check)
            if tracked.next_check > now:
                self._wakeup = anyio.Event()
                with anyio.move_on_after(tracked.next_check - now):
                    await self._wakeup.wait()  # a new task may be due sooner
                continue
            kind = tracked.task.kind
            try:
                result = await self._query(kind, tracked.task.task_id)
            except (AuthenticationError, InvalidRequestError) as exc:
                tracked.error = exc  # the task can no longer be followed
                await self._finish(tracked)
                continue
            except KlingError:
                tracked.next_check = anyio.current_time() + self.poll_intervals[kind]
                continue
            tracked.checks += 1
            cap = 5.0 if kind == "image" else 20.0
            delay = min(cap, self.poll_intervals[kind] * 1.5 ** (tracked.checks - 1))
            tracked.next_check = anyio.current_time() + max(delay, self.poll_intervals[kind])
            await self._observe(tracked, result)
        self._pollers.discard("budgeted")

    async def _poll_kind(self, kind: Kind) -> None:
        """Follow every in-flight task of ``kind`` until each is terminal (DESIGN §6).

        Each tick, one list query (``GET …?pageNum=1&pageSize=N``, newest first, §5.4 [S1,
        S17]) reports on all of them; further pages only while tracked tasks are still
        missing; single GETs for the few the pages do not reach, or when only one or two tasks
        are in flight (then a single GET is as cheap). Queries use no quota (§9 [S4]).
        """
        tick = anyio.current_time()
        while any(t.task.kind == kind for t in self._inflight.values()):
            await anyio.sleep_until(self._next_poll(kind, tick))
            tick = anyio.current_time()
            pending = {t.task.task_id: t for t in self._inflight.values() if t.task.kind == kind}
            _log.debug("poll: %d %s task(s) in flight", len(pending), kind)
            if len(pending) > _SINGLE_GET_MAX:
                await self._poll_pages(kind, pending)
            for tracked in list(pending.values()):
                try:
                    result = await self._query(kind, tracked.task.task_id)
                except (AuthenticationError, InvalidRequestError) as exc:
                    tracked.error = exc  # the task can no longer be followed
                    await self._finish(tracked)
                    continue
                except KlingError:
                    continue  # transient failures outlasting the retries: next tick
                await self._observe(tracked, result)
        self._pollers.discard(kind)  # no await since the check: _track starts a new poller

    async def _poll_pages(self, kind: Kind, pending: dict[str, _Tracked]) -> None:
        """Remove from ``pending`` every task a list page reports on (and finish the ended)."""
        page_size = min(_PAGE_SIZE_MAX, max(_PAGE_SIZE_MIN, 2 * len(pending)))
        for page in range(1, _PAGES_MAX + 1):
            try:
                results, held = await self._list(kind, page, page_size, pending)
            except KlingError:
                return  # fall back to single GETs this tick
            for result in results:
                tracked = pending.pop(result.task_id, None)
                if tracked is not None:
                    await self._observe(tracked, result)
            if not pending or held < page_size:
                return

    async def _observe(self, tracked: _Tracked, result: TaskResult) -> None:
        if not result.status.is_terminal or tracked.done.is_set():
            return
        tracked.result = result
        if result.status is TaskStatus.FAILED:
            task = tracked.task
            tracked.error = TaskFailedError(
                result.status_message or "",
                task_id=task.task_id,
                external_task_id=task.external_task_id,
            )
        await self._finish(tracked)

    async def _finish(self, tracked: _Tracked) -> None:
        """The task ended: release its slots, learn from it, journal it, wake its waiters."""
        task = tracked.task
        if self._inflight.pop(task.task_id, None) is None:
            return
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "task %s ended: %s after %.1f s%s",
                task.task_id,
                tracked.result.status.value if tracked.result else "not followed",
                anyio.current_time() - tracked.started,
                f" ({tracked.error})" if tracked.error else "",
            )
        self._durations[tracked.pool.name].observe(anyio.current_time() - tracked.started)
        tracked.pool.release(tracked.reserved)
        if tracked.auto_series:
            result = tracked.result
            actual = None  # unknown unless it succeeded (a failed series reports no images)
            if result is not None and result.status is TaskStatus.SUCCEEDED:
                actual = len(result.series_images)
                self._auto[tracked.pool.name].observe(actual)
            tracked.pool.reconcile(tracked.reserved, actual)
        self.stats.in_flight -= 1
        self._finished[task.task_id] = tracked
        while len(self._finished) > _FINISHED_KEPT:
            self._finished.popitem(last=False)
        try:
            if self.journal is not None and task.external_task_id:
                with anyio.CancelScope(shield=True):
                    await self.journal.record_finished(
                        task.external_task_id,
                        tracked.result,
                        str(tracked.error) if tracked.error else None,
                    )
        finally:
            tracked.done.set()

    async def _await_tracked(self, tracked: _Tracked, until: float | None = None) -> TaskResult:
        limit = math.inf if until is None else until
        reason = "the run's deadline passed"
        if self.task_timeout is not None:
            created = tracked.task.created_at
            remaining = self.task_timeout
            if created is not None:
                age = (dt.datetime.now(dt.UTC) - created).total_seconds()
                remaining = max(0.0, self.task_timeout - max(0.0, age))
            if anyio.current_time() + remaining < limit:
                limit = anyio.current_time() + remaining
                reason = f"it did not end within task_timeout={self.task_timeout} s"
        if limit == math.inf:
            await tracked.done.wait()
        else:
            with anyio.CancelScope(deadline=limit):
                await tracked.done.wait()
        if not tracked.done.is_set():
            raise TaskTimeoutError(
                f"task {tracked.task.task_id} is still running: {reason}; its quota slots stay "
                "held until the server ends it"
            )
        if tracked.error is not None:
            raise tracked.error
        assert tracked.result is not None
        return tracked.result

    async def _poll_until_done(self, kind: Kind, task_id: str) -> TaskResult:
        try:
            with anyio.fail_after(self.task_timeout):
                return await self._poll_loop(kind, task_id)
        except TimeoutError:
            raise TaskTimeoutError(
                f"task {task_id} did not end within {self.task_timeout} s"
            ) from None

    async def _poll_loop(self, kind: Kind, task_id: str) -> TaskResult:
        while True:
            result = await self._query(kind, task_id)
            if result.status is TaskStatus.FAILED:
                raise TaskFailedError(
                    result.status_message or "",
                    task_id=result.task_id,
                    external_task_id=result.external_task_id,
                )
            if result.status is TaskStatus.SUCCEEDED:
                return result
            await anyio.sleep(self.poll_intervals[kind])

    # -- HTTP --------------------------------------------------------------------------------

    async def _query(self, kind: Kind, task_id: str) -> TaskResult:
        self.stats.queries += 1
        data = await self._get(self._codec.query_path(kind, task_id))
        tracked = self._inflight.get(task_id) or self._finished.get(task_id)
        return self._codec.parse_task(data, series=tracked.series if tracked else None)

    async def _list(
        self, kind: Kind, page: int, page_size: int, wanted: Container[str]
    ) -> tuple[list[TaskResult], int]:
        """One list page: the results of the tasks in ``wanted``, and how many tasks the page
        held (a full page means there may be more)."""
        self.stats.list_queries += 1
        params = {"pageNum": str(page), "pageSize": str(page_size)}
        data = await self._get(self._codec.list_path(kind), params)
        results = self._codec.parse_task_list(data, wanted)
        return results, len(data)

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """A GET, retried on transient errors with capped, jittered exponential backoff that
        honours ``Retry-After``."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self.max_retries),
            wait=_backoff,
            sleep=anyio.sleep,
            reraise=True,
        ):
            with attempt:
                return await self._call("GET", path, params=params)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        transport = self._check_open()
        for attempt in (1, 2):
            if self._budget is not None:
                await self._budget.acquire()
            self.stats.http_requests += 1
            response = await transport.request(method, path, json_body=json_body, params=params)
            try:
                return self._codec.unwrap(response)
            except RateLimitError as exc:
                if self._budget is not None and not isinstance(exc, ConcurrencyLimitError):
                    self._budget.pause(exc.retry_after or 1.0)
                raise
            except AuthenticationError as exc:
                # §3.2/§8: 1004 = JWT expired; re-sign once and try again.
                if exc.code == 1004 and attempt == 1 and transport.invalidate_auth():
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _resolve(self, task: Task | str, kind: Kind | None) -> tuple[str, Kind]:
        if isinstance(task, Task):
            return task.task_id, kind or task.kind
        tracked = self._inflight.get(task) or self._finished.get(task)
        return task, kind or (tracked.task.kind if tracked else "image")

    def _on_hint(self, hint: CallbackHint) -> None:
        """A callback arrived (DESIGN §6): if it says a task we follow has ended, confirm with
        an authenticated query at once. Duplicates, late and out-of-order hints are harmless:
        a task already ended or being confirmed is skipped, and a hint never ends a task by
        itself."""
        tracked = self._inflight.get(hint.task_id)
        if tracked is None or self._tg is None or hint.task_id in self._confirming:
            return
        if not self._codec.is_terminal_wire_status(hint.task_status):
            return
        self._confirming.add(hint.task_id)
        self._tg.start_soon(self._confirm, tracked)

    async def _confirm(self, tracked: _Tracked) -> None:
        try:
            result = await self._query(tracked.task.kind, tracked.task.task_id)
        except KlingError:
            return  # the poller will see the task end
        finally:
            self._confirming.discard(tracked.task.task_id)
        await self._observe(tracked, result)

    def _next_poll(self, kind: Kind, last: float) -> float:
        """When to poll ``kind`` next (``anyio.current_time()`` clock): one poll interval, ±10 %
        jitter, after the previous poll *began* (so the time a poll takes does not stretch the
        cadence), or later while no task of that kind can have ended yet (each in-flight task
        is younger than 80 % of the shortest its pool has seen), so long video tasks cost few
        queries."""
        delay = self.poll_intervals[kind] * random.uniform(0.9, 1.1)
        if self.callbacks is not None:
            delay *= _CALLBACK_POLL_FACTOR
        due = last + delay
        earliest = math.inf
        for tracked in self._inflight.values():
            if tracked.task.kind != kind:
                continue
            shortest = self._durations[tracked.pool.name].shortest
            if shortest is None:
                return due
            earliest = min(earliest, tracked.started + 0.8 * shortest)
        if earliest == math.inf:
            return due
        return max(due, earliest)

    def _expected_frees(
        self, pool: PoolLimiter, durations: _DurationEstimate
    ) -> list[tuple[float, int]]:
        """(expected end, slots) of the pool's in-flight tasks, for backfilling."""
        tasks = ((t.started, t.reserved) for t in self._inflight.values() if t.pool is pool)
        return expected_frees(tasks, durations.mean(), pool.clock())


@attrs.define
class _DurationEstimate:
    """Exponentially weighted mean of how long a pool's tasks hold their slots, in seconds."""

    _mean: float | None = None
    weight: float = 0.1
    shortest: float | None = None

    def observe(self, seconds: float) -> None:
        self.shortest = seconds if self.shortest is None else min(self.shortest, seconds)
        self._mean = (
            seconds
            if self._mean is None
            else ((1 - self.weight) * self._mean + self.weight * seconds)
        )

    def mean(self) -> float | None:
        return self._mean


class _RequestBudget:
    """At most ``per_minute`` HTTP requests in any minute: a leaky bucket of capacity one
    (aiolimiter) that lets one request through every ``60 / per_minute`` seconds (plus 2 %
    for clock differences with the server), and a pause honouring a 429's ``Retry-After``."""

    def __init__(self, per_minute: float) -> None:
        self._limiter = AsyncLimiter(1, 60.0 / per_minute * 1.02)
        self._paused_until = 0.0

    async def acquire(self) -> None:
        # A loop, not an Event: a 429 met while sleeping may push the pause further out.
        while (wait := self._paused_until - anyio.current_time()) > 0:  # noqa: ASYNC110
            await anyio.sleep(wait)
        await self._limiter.acquire()

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, anyio.current_time() + seconds)


class _IdleWorkers:
    """The lifecycle workers of one stream waiting for a request, and the hand-over to one.

    A memory object stream did the same with a pass of the event loop and an exception more
    per request (its ``receive()`` always yields first)."""

    def __init__(self) -> None:
        self._waiting: list[tuple[anyio.Event, list[_Job]]] = []
        self._closed = False

    def hand_over(self, job: _Job) -> bool:
        """Give ``job`` to a waiting worker; ``False`` when none waits."""
        if not self._waiting:
            return False
        woken, slot = self._waiting.pop()
        slot.append(job)
        woken.set()
        return True

    async def next_job(self) -> _Job | None:
        """Wait for the next job; ``None`` once the feeder is done."""
        if self._closed:
            return None
        entry: tuple[anyio.Event, list[_Job]] = (anyio.Event(), [])
        self._waiting.append(entry)
        try:
            await entry[0].wait()
        finally:
            if not entry[0].is_set():  # cancelled while waiting
                self._waiting.remove(entry)
        return entry[1][0] if entry[1] else None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """The feeder is done: every waiting worker (and any that asks later) gets ``None``."""
        self._closed = True
        waiting, self._waiting = self._waiting, []
        for woken, _ in waiting:
            woken.set()


class _OutcomeStream(MemoryObjectReceiveStream[Outcome]):
    """The receive end ``stream()`` yields: an outcome already waiting is returned without
    first yielding to the event loop (as ``asyncio.Queue.get`` does). anyio's ``receive()``
    always yields first, so a reader took one outcome per pass of the event loop, and the
    tasks ending in a burst (one list poll ends dozens) queued up behind it."""

    # Built from the plain stream's ``_state`` (anyio 4 internals; pyproject pins anyio < 5,
    # and every stream test would fail if the layout changed).

    async def receive(self) -> Outcome:
        try:
            return self.receive_nowait()
        except anyio.WouldBlock:
            return await super().receive()


def _is_transient(exc: BaseException) -> bool:
    """Query errors worth retrying: 1302/1303, 5000–5002, 5xx, transport, malformed JSON."""
    return isinstance(exc, RateLimitError | ServerError | TransportError | ResponseFormatError)


_exp = wait_exponential(multiplier=0.5, max=8.0) + wait_random(0, 0.5)


def _backoff(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    retry_after = getattr(exc, "retry_after", None) or 0.0
    return max(float(_exp(state)), float(retry_after))


def _is_auto_series(request: Request) -> bool:
    return isinstance(request, OmniImageRequest) and request.is_auto_series


def _capped(price: int | Callable[[], int], capacity: int) -> int | Callable[[], int]:
    if callable(price):
        return lambda: min(price(), capacity)
    return min(price, capacity)


def _changed(external_task_id: str, task_id: str | None) -> KlingError:
    return JournalConflictError(
        f"external_task_id {external_task_id!r}: the request changed since the journal recorded "
        f"task {task_id}; give the changed request a new external_task_id (or use a new journal)"
    )


def _collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one real error of a task group's exception group (aiometer's collapse): the user
    sees ``AuthenticationError``, not ``ExceptionGroup([AuthenticationError])``."""
    real = [e for e in group.exceptions if not isinstance(e, anyio.get_cancelled_exc_class())]
    real = [_collapse(e) if isinstance(e, BaseExceptionGroup) else e for e in real]
    if len(real) == 1 or (real and all(isinstance(e, AuthenticationError) for e in real)):
        return real[0]  # several lifecycles met the same bad credentials at once
    return group


async def _aiter(items: Iterable[Request] | AsyncIterable[Request]) -> AsyncIterator[Request]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
