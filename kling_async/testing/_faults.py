"""Fault injection: the failures a client of a remote API must survive, at configured rates.

:class:`Faults` is the configuration (a value object users pass to ``Sandbox(faults=...)``);
:class:`FaultInjector` draws from it with the sandbox's ``random.Random`` and counts what fired.
The route handlers (Kling native in ``_kling.py``, Modellix) ask the injector at three points:

* a create: :meth:`FaultInjector.create_fault` → ``"error_before_create"`` (answer 5000, HTTP
  500, create nothing), ``"error_after_create"`` (create, answer 5002, HTTP 504) or
  ``"drop_after_create"`` (create, then :meth:`FaultInjector.drop` the connection);
* a single or list query: :meth:`FaultInjector.query_fault` → ``"query_error"`` (5001, HTTP 503)
  or ``"malformed_query"`` (HTTP 200 with :func:`truncated_json`);
* every API answer: ``await`` :meth:`FaultInjector.maybe_slow` just before returning it;
* a result-file download: ``return await`` :meth:`FaultInjector.maybe_slow_download`.

Ref [errors] gives the codes and HTTP statuses; its INFERRED note says 5000/5002, timeouts and
dropped connections on a create mean "task may exist" — the faults here make both outcomes real.

Sources:
[errors] https://kling.ai/document-api/api/get-started/error-codes
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, NoReturn, TypeVar

import attrs
from aiohttp import web

CreateFault = Literal["error_before_create", "error_after_create", "drop_after_create"]
QueryFault = Literal["query_error", "malformed_query"]

CREATE_FAULTS: Final[tuple[CreateFault, ...]] = (
    "error_before_create",
    "error_after_create",
    "drop_after_create",
)
QUERY_FAULTS: Final[tuple[QueryFault, ...]] = ("query_error", "malformed_query")
_Name = TypeVar("_Name", bound=str)
# A slow download is sent in this many chunks, spread over ``slow_seconds``.
DOWNLOAD_CHUNKS: Final = 8


def _rate(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{attribute.name}: expected a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name}: {value!r} is outside [0, 1]")


def _seconds(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{attribute.name}: expected a number of seconds, got {value!r}")
    if not value >= 0.0:  # also refuses NaN
        raise ValueError(f"{attribute.name}: {value!r} is negative, at least 0 allowed")


@attrs.frozen(kw_only=True)
class Faults:
    """Rates, each a probability in [0, 1], of the faults the sandbox injects (all 0 by default).

    The three create faults are mutually exclusive, as are the two query faults: each create
    (query) draws at most one. Their rates are exact while those of a group sum to at most 1;
    beyond that, earlier fields win (in the order listed) and later ones get what is left.

    Raises:
        ValueError: a rate is outside [0, 1], or ``slow_seconds`` is negative.
        TypeError: a field is not a number.
    """

    error_before_create: float = attrs.field(default=0.0, validator=_rate)
    """A create is answered ``{"code": 5000, "message": ...}`` with HTTP 500 [errors] and
    creates nothing."""
    error_after_create: float = attrs.field(default=0.0, validator=_rate)
    """A create makes the task (it runs, and a lookup by ``external_task_id`` finds it), then is
    answered 5002 "internal timeout" with HTTP 504 ([errors]; "task may exist", [errors])."""
    drop_after_create: float = attrs.field(default=0.0, validator=_rate)
    """A create makes the task, then the connection is closed with no HTTP answer at all ([errors],
    INFERRED: "dropped connections mean task may exist")."""
    query_error: float = attrs.field(default=0.0, validator=_rate)
    """A single or list query is answered 5001 "unavailable" with HTTP 503 [errors]."""
    malformed_query: float = attrs.field(default=0.0, validator=_rate)
    """A single or list query is answered HTTP 200 with a truncated, invalid JSON body (the
    envelope of [omni-image] cut in half)."""
    slow: float = attrs.field(default=0.0, validator=_rate)
    """An API answer (any route, including error answers) is delayed by ``slow_seconds``."""
    slow_download: float = attrs.field(default=0.0, validator=_rate)
    """A result file [omni-image] is streamed in chunks spread over about ``slow_seconds``."""
    slow_seconds: float = attrs.field(default=1.0, validator=_seconds)
    """Delay of a ``slow`` answer and duration of a ``slow_download``, in seconds (default 1)."""

    @classmethod
    def uniform(cls, rate: float, *, slow_seconds: float = 1.0) -> Faults:
        """Every rate set to ``rate`` (exclusive groups then follow the class's ordering rule)."""
        return cls(
            error_before_create=rate,
            error_after_create=rate,
            drop_after_create=rate,
            query_error=rate,
            malformed_query=rate,
            slow=rate,
            slow_download=rate,
            slow_seconds=slow_seconds,
        )


class _Dropped(web.HTTPException):
    """Raised after closing the transport: aiohttp's writer finds the transport closing and
    abandons the answer quietly (an ``HTTPException`` is not logged as a handler error)."""

    status_code = 500


@attrs.define
class FaultInjector:
    """Draws the faults of one :class:`Faults` with ``rng`` and counts those that fired.

    Args:
        faults: The configured rates.
        rng: The sandbox's random source (a seed makes fault sequences reproducible).

    Attributes:
        counts: Fault name → times it fired; only names that fired appear.
    """

    faults: Faults
    _rng: random.Random
    counts: dict[str, int] = attrs.field(factory=dict, init=False)

    def _fire(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def _pick(self, names: tuple[_Name, ...]) -> _Name | None:
        # One uniform draw over consecutive intervals [lo, lo + rate): each name's probability
        # is its rate exactly while the rates sum to ≤ 1; rate 0 never fires, rate 1 always.
        u = self._rng.random()
        low = 0.0
        for name in names:
            high = low + getattr(self.faults, name)
            if u < high:
                self._fire(name)
                return name
            low = high
        return None

    def create_fault(self) -> CreateFault | None:
        """Draw the fault of one create: at most one of :data:`CREATE_FAULTS`, counted."""
        return self._pick(CREATE_FAULTS)

    def query_fault(self) -> QueryFault | None:
        """Draw the fault of one single or list query: at most one of :data:`QUERY_FAULTS`."""
        return self._pick(QUERY_FAULTS)

    def retract(self, name: str) -> None:
        """Un-count a drawn fault that did not fire (e.g. a post-create fault when the create
        was then refused with 1303, so there was no task to fault)."""
        left = self.counts.get(name, 0) - 1
        if left > 0:
            self.counts[name] = left
        else:
            self.counts.pop(name, None)

    async def maybe_slow(self) -> None:
        """With probability ``slow``, sleep ``slow_seconds`` (counted as ``"slow"``)."""
        if self.faults.slow and self._rng.random() < self.faults.slow:
            self._fire("slow")
            await asyncio.sleep(self.faults.slow_seconds)

    async def maybe_slow_download(
        self, request: web.Request, body: bytes, content_type: str
    ) -> web.StreamResponse:
        """The answer of a result-file download: the file handler ``return await``\\ s this.

        With probability ``slow_download`` (counted as ``"slow_download"``) the complete ``body``
        is streamed in :data:`DOWNLOAD_CHUNKS` chunks with a pause of ``slow_seconds / chunks``
        before each, under a correct ``Content-Length``; otherwise it is a plain response.
        """
        if not (self.faults.slow_download and self._rng.random() < self.faults.slow_download):
            return web.Response(body=body, content_type=content_type)
        self._fire("slow_download")
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.content_length = len(body)
        await response.prepare(request)
        size = max(1, -(-len(body) // DOWNLOAD_CHUNKS))
        pause = self.faults.slow_seconds / DOWNLOAD_CHUNKS
        try:
            for start in range(0, max(len(body), 1), size):
                await asyncio.sleep(pause)
                await response.write(body[start : start + size])
            await response.write_eof()
        except ConnectionResetError:  # the client gave up on the slow file: nothing to answer
            pass
        return response

    async def drop(self, request: web.Request) -> NoReturn:
        """Close the connection without any HTTP answer (the client sees a disconnect).

        Read the request body first. The transport is closed (FIN, nothing written), then an
        ``HTTPException`` unwinds the handler: aiohttp tries to send it, finds the transport
        closing and gives up silently, so no status line ever reaches the client, which raises
        ``aiohttp.ServerDisconnectedError``. Middlewares must let ``web.HTTPException`` that
        they do not recognise pass through.
        """
        transport = request.transport
        if transport is not None:
            transport.close()
        raise _Dropped()


def truncated_json(payload: Mapping[str, Any]) -> web.Response:
    """HTTP 200, ``application/json``, whose body is ``payload``'s JSON cut in half (invalid)."""
    text = json.dumps(payload)
    return web.Response(
        body=text[: max(1, len(text) // 2)].encode(),
        content_type="application/json",
    )


T = TypeVar("T")


async def create_with_faults(
    faults: FaultInjector | None,
    request: web.Request,
    admit: Callable[[], T | None],
    *,
    before: Callable[[], Exception],
    full: Callable[[], Exception],
    after: Callable[[], Exception],
) -> T:
    """One validated create with its drawn fault, the same for every wire API: ``before()`` is
    raised for ``error_before_create`` (nothing created); ``admit()`` creates the task or gives
    None for a full pool, and ``full()`` is raised then (the drawn fault is retracted: there is
    no task to fault); ``after()`` is raised for ``error_after_create`` (the task exists and
    runs); ``drop_after_create`` closes the connection without an answer."""
    fault = faults.create_fault() if faults is not None else None
    if fault == "error_before_create":
        raise before()
    task = admit()
    if task is None:
        if fault is not None and faults is not None:
            faults.retract(fault)
        raise full()
    if fault == "error_after_create":
        raise after()
    if fault == "drop_after_create" and faults is not None:
        await faults.drop(request)
    return task
