"""A blocking client for scripts and notebooks that do not use asyncio.

:class:`KlingClient` here has the verbs of :class:`kling_async.KlingClient` without ``await``.
It is not a second implementation: it runs the async client on one event loop in one
background thread (an anyio blocking portal) and hands each call over to that loop, so its
models, outcomes and exceptions are the async client's own. Because the loop is its own, it
also works where an event loop is already running in the caller's thread (Jupyter, IPython,
the sync handler of an async web framework), where ``asyncio.run`` wrappers fail::

    from kling_async import OmniImageRequest
    from kling_async.sync import KlingClient

    with KlingClient(api_key="...") as client:
        task = client.submit(OmniImageRequest(prompt="a red mug", n=2))
        result = client.wait(task)
        with client.stream(requests) as outcomes:
            for outcome in outcomes:  # completion order
                ...
"""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
import os
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Final, Literal, ParamSpec, Self, cast

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._client import KlingClient as AsyncKlingClient
from ._engine._stats import ClientStats

if TYPE_CHECKING:  # types only: at run time this module needs the async client alone
    import datetime as dt
    from decimal import Decimal

    from ._account import ResourcePack
    from ._engine._progress import Progress
    from ._engine._scheduler import Outcomes
    from ._http._download import SavedFile
    from ._models import Kind, Outcome, Request, Task, TaskResult
    from ._quota._backend import PoolSnapshot

__all__ = ["KlingClient", "SyncOutcomes"]

_P = ParamSpec("_P")
_END: Final = object()  # the end of a request iterable pulled in a worker thread


def _options_of(
    source: Callable[_P, object],
) -> Callable[[Callable[..., None]], Callable[Concatenate[Any, _P], None]]:
    """Give the decorated ``__init__`` the keyword arguments of ``source`` (for type checkers,
    ``help()`` and ``inspect.signature``), so the two clients' options cannot drift apart."""

    def take(init: Callable[..., None]) -> Callable[Concatenate[Any, _P], None]:
        params = list(inspect.signature(source).parameters.values())
        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        init.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [self_param, *params], return_annotation=None
        )
        return init

    return take


class KlingClient:
    """Blocking client for Kling's omni-image and omni-video APIs.

    Takes exactly the keyword arguments of :class:`kling_async.KlingClient` (credentials and
    their environment fallbacks, ``base_url``, ``provider``, ``quota``, timeouts in seconds,
    ``journal``, ``quota_backend``, ...) with the same defaults and rules. Use it as a context
    manager, or call :meth:`close` when done::

        with KlingClient() as client:  # KLING_API_KEY, KLING_BASE_URL from the environment
            result = client.wait(client.submit(OmniImageRequest(prompt="...")))

    Constructing it starts one daemon thread running an event loop, where the async client is
    built (so bad options raise here); the HTTP session opens on ``with`` or the first call,
    and :meth:`close` stops the thread. A client never closed does not keep the interpreter
    from exiting (the thread is a daemon), but warns with ``ResourceWarning`` when collected.

    Thread safety: every method may be called from any thread, also from several at once; the
    calls share the one loop (and its quota), as concurrent tasks of one async client do. A call
    blocks its caller until its answer; called from inside a running event loop it blocks that
    loop for as long (the client's own loop keeps going). A request generator given to
    :meth:`stream` runs in a worker thread and may call the client; a ``keys`` function runs in
    the client's own thread and may not (that raises ``RuntimeError``).

    Exceptions are those of the async client, unwrapped: :class:`~kling_async.APIError` and
    its subclasses, :class:`~kling_async.InvalidInputError`, ``ValueError`` for a bad option,
    ``RuntimeError`` for use after :meth:`close`. An interrupt (``KeyboardInterrupt``) while
    a call waits cancels that call in the loop.

    Raises:
        ValueError: as :class:`kling_async.KlingClient` (no credentials, an unknown provider,
            an option out of range), or ``callbacks`` is given: a :class:`CallbackReceiver`
            runs in the caller's event loop, which a blocking program does not have.
    """

    @_options_of(AsyncKlingClient)
    def __init__(self, **options: Any) -> None:
        if options.get("callbacks") is not None:
            raise ValueError(
                "callbacks: kling_async.sync.KlingClient cannot take a CallbackReceiver (it runs "
                "in an event loop); use kling_async.KlingClient, or leave callbacks out to poll"
            )
        self._lock = threading.Lock()
        self._state: Literal["new", "open", "closed"] = "closed"  # until built below
        with ExitStack() as stack:
            self._portal: BlockingPortal = stack.enter_context(
                start_blocking_portal(name="kling-async-sync")
            )
            self._client = self._portal.call(functools.partial(AsyncKlingClient, **options))
            self._threads = stack.pop_all()
        self._opened: AbstractContextManager[AsyncKlingClient] | None = None
        self._state = "new"

    def __repr__(self) -> str:
        return (
            f"kling_async.sync.KlingClient(provider={self._client.provider!r}, "
            f"base_url={self._client.base_url!r})"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the async client (its HTTP session) and stop the loop's thread. Idempotent.

        Calls still waiting in other threads are cancelled and raise ``RuntimeError``. Tasks
        running on the server keep running there; fetch them later with :meth:`get`.
        """
        with self._lock:
            state, self._state = self._state, "closed"
        if state == "closed":
            return
        try:
            if self._opened is not None:
                opened, self._opened = self._opened, None
                opened.__exit__(None, None, None)
        finally:
            try:
                self._portal.call(self._portal.stop, True)  # cancel what other threads wait on
            finally:
                self._threads.close()  # joins the loop's thread

    def __del__(self) -> None:
        if getattr(self, "_state", "closed") != "closed":
            warnings.warn(
                "kling_async.sync.KlingClient was not closed; use 'with KlingClient(...)' "
                "or call close()",
                ResourceWarning,
                stacklevel=1,
            )

    def _open(self) -> AsyncKlingClient:
        """The async client, opened in the loop on first use."""
        with self._lock:
            if self._state == "closed":
                raise RuntimeError("kling_async.sync.KlingClient is closed")
            if self._state == "new":
                # Entered and left in one task of the loop (its task group lives there).
                opened = self._portal.wrap_async_context_manager(self._client)
                opened.__enter__()
                self._opened = opened
                self._state = "open"
        return self._client

    def _call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` (a coroutine function or a plain one) in the loop and
        wait for it; an interrupt of the wait cancels it there."""
        try:
            future = self._portal.start_task_soon(functools.partial(func, **kwargs), *args)
        except RuntimeError:
            if self._state == "closed":
                raise RuntimeError("kling_async.sync.KlingClient is closed") from None
            raise
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise RuntimeError(
                "kling_async.sync.KlingClient was closed while this call waited"
            ) from None
        except BaseException:
            future.cancel()  # a no-op when the call itself raised; stops it on an interrupt
            raise

    # -- the verbs ---------------------------------------------------------------------------

    def submit(self, request: Request) -> Task:
        """Create one task, waiting for quota slots first; see
        :meth:`kling_async.KlingClient.submit` (same errors).

        Returns:
            The created :class:`~kling_async.Task`.
        """
        client = self._open()
        task: Task = self._call(client.submit, request)
        return task

    def get(self, task: Task | str, *, kind: Kind | None = None) -> TaskResult:
        """Query a task once by :class:`~kling_async.Task`, ``task_id`` or
        ``external_task_id``; see :meth:`kling_async.KlingClient.get`."""
        client = self._open()
        result: TaskResult = self._call(client.get, task, kind=kind)
        return result

    def wait(self, task: Task | str, *, kind: Kind | None = None) -> TaskResult:
        """Block until a task ends and return its final result; see
        :meth:`kling_async.KlingClient.wait` (raises ``TaskFailedError``,
        ``TaskTimeoutError``, ...)."""
        client = self._open()
        result: TaskResult = self._call(client.wait, task, kind=kind)
        return result

    def stream(
        self,
        requests: Iterable[Request],
        *,
        deadline: float | None = None,
        keys: Callable[[int, Request], str] | None = None,
        budget_units: Decimal | int | str | None = None,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> AbstractContextManager[SyncOutcomes]:
        """Run many requests under quota; a context manager giving an iterator of each
        :class:`~kling_async.Outcome` as its task ends (completion order)::

            with client.stream(requests) as outcomes:
                for outcome in outcomes:
                    ...

        Works as :meth:`kling_async.KlingClient.stream` (same arguments, same outcomes).
        ``requests`` is pulled lazily, one item at a time in a worker thread, so a generator
        may block (read a file, wait on a ``queue.Queue`` for requests as they arrive) without
        holding up the client. Leaving the ``with`` block early cancels the requests not yet
        created; tasks already created are followed until they end, so their slots are
        released. An error that ends the whole run (e.g. ``AuthenticationError``, or one
        raised by ``requests``) is raised by the iteration.

        Args:
            requests: Request models, any iterable (a list, a generator, ...).
            deadline: Seconds the whole run may take; see the async :meth:`stream`.
            keys: ``keys(index, request)`` gives each request's key; see the async
                :meth:`stream`.
            budget_units: The most units the stream may spend; see the async :meth:`stream`
                (``BudgetExceededError`` outcomes).
            on_progress: Called with a :class:`~kling_async.Progress`; see the async
                :meth:`stream`. It runs on the client's event-loop thread, not the caller's.

        Raises:
            TypeError: an item of ``requests`` is not a request model (from the iteration).
            ValueError: a bad ``budget_units``, or a budget on Modellix.
            RuntimeError: the client is closed.
        """
        client = self._open()
        source = requests if isinstance(requests, list | tuple) else _pulled_in_thread(requests)
        opened = self._portal.wrap_async_context_manager(
            client.stream(
                source,
                deadline=deadline,
                keys=keys,
                budget_units=budget_units,
                on_progress=on_progress,
            )
        )
        return SyncOutcomes(self, opened)

    def run_all(
        self,
        requests: Iterable[Request],
        *,
        deadline: float | None = None,
        keys: Callable[[int, Request], str] | None = None,
        budget_units: Decimal | int | str | None = None,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> list[Outcome]:
        """Run every request under quota and return the outcomes in input order; see
        :meth:`kling_async.KlingClient.run_all` and :meth:`stream` (same arguments)."""
        outcomes: list[Outcome] = []
        with self.stream(
            requests,
            deadline=deadline,
            keys=keys,
            budget_units=budget_units,
            on_progress=on_progress,
        ) as stream:
            outcomes.extend(stream)
        outcomes.sort(key=lambda o: o.index)
        return outcomes

    def download(
        self,
        result: TaskResult,
        directory: str | os.PathLike[str],
        *,
        stem: str | None = None,
        watermarked: bool = False,
    ) -> list[SavedFile]:
        """Save every output of a finished task into ``directory``; see
        :meth:`kling_async.KlingClient.download` (file names, ``DownloadError``).

        Returns:
            The saved files, as ``SavedFile(path, role, index, bytes)``.
        """
        client = self._open()
        saved: list[SavedFile] = self._call(
            client.download, result, directory, stem=stem, watermarked=watermarked
        )
        return saved

    def account_costs(
        self,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        resource_pack_name: str | None = None,
    ) -> list[ResourcePack]:
        """The account's resource packs; see :meth:`kling_async.KlingClient.account_costs`
        (same arguments, ``remaining`` lags up to 12 hours, at most one query per second,
        ``NotSupportedError`` on Modellix)."""
        client = self._open()
        packs: list[ResourcePack] = self._call(
            client.account_costs, start=start, end=end, resource_pack_name=resource_pack_name
        )
        return packs

    def check(self, request: Request) -> None:
        """Check that this client's wire API can carry ``request``; sends nothing. See
        :meth:`kling_async.KlingClient.check` (raises ``InvalidInputError``)."""
        self._call(self._client.check, request)

    def quota_snapshot(self) -> dict[str, PoolSnapshot]:
        """Figures per quota pool, keyed by pool name; see
        :meth:`kling_async.KlingClient.quota_snapshot`."""
        snapshot: dict[str, PoolSnapshot] = self._call(self._client.quota_snapshot)
        return snapshot

    def stats(self) -> ClientStats:
        """A snapshot of the client's figures (:class:`~kling_async.ClientStats`), as
        :meth:`kling_async.KlingClient.stats`; also after :meth:`close`."""
        if self._state == "closed":
            return self._client.stats()
        stats: ClientStats = self._call(self._client.stats)
        return stats


class SyncOutcomes:
    """The outcomes of one :meth:`KlingClient.stream`, as a plain iterator: each
    :class:`~kling_async.Outcome` as soon as its task ends. A context manager: leaving it
    cancels the requests not yet created (see :meth:`KlingClient.stream`)."""

    def __init__(self, owner: KlingClient, opened: AbstractContextManager[Outcomes]) -> None:
        self._owner = owner
        self._opened: AbstractContextManager[Outcomes] | None = opened
        self._outcomes: Outcomes | None = None
        self._state: Literal["new", "open", "ended", "left"] = "new"

    def __enter__(self) -> Self:
        if self._state != "new" or self._opened is None:
            raise RuntimeError("stream(): a stream can be entered once")
        self._outcomes = self._opened.__enter__()
        self._state = "open"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == "open":
            self._state = "left"
        self._finish()

    def __iter__(self) -> Iterator[Outcome]:
        return self

    def __next__(self) -> Outcome:
        if self._state == "ended":
            raise StopIteration
        if self._state != "open" or self._outcomes is None:
            raise RuntimeError(
                "stream(): the 'with' block was left"
                if self._state == "left"
                else "stream(): use it as 'with client.stream(...) as outcomes'"
            )
        try:
            outcome: Outcome = self._owner._call(self._outcomes.receive)
        except anyio.EndOfStream:
            self._state = "ended"
            self._finish()  # raises what ended the run early, if anything did
            raise StopIteration from None
        return outcome

    def _finish(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None and self._outcomes is not None:
            opened.__exit__(None, None, None)


async def _pulled_in_thread(requests: Iterable[Request]) -> AsyncIterator[Request]:
    """``requests`` as an async iterator, each item pulled in a worker thread when the
    scheduler asks for it: a blocking generator never holds up the event loop, and one that
    never returns is abandoned when the stream is left."""
    items = iter(requests)
    while True:
        item = await anyio.to_thread.run_sync(next, items, _END, abandon_on_cancel=True)
        if item is _END:
            return
        yield cast("Request", item)  # checked by the scheduler like any other item
