"""The progress of one ``stream()``: :class:`Progress`, the value ``on_progress`` receives, and
the :class:`ProgressMeter` the scheduler counts into and reports from (in a task the scheduler
starts, at most every ``INTERVAL`` seconds).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from decimal import Decimal

import anyio
import attrs

from .._models import Outcome, Request

__all__ = ["INTERVAL", "Progress", "ProgressMeter"]

_log = logging.getLogger("kling_async.client")

INTERVAL = 0.1  # seconds: on_progress is called at most this often (plus a final call)


@attrs.frozen(kw_only=True)
class Progress:
    """Where one :meth:`KlingClient.stream` (or :meth:`KlingClient.run_all`) stands, as given
    to its ``on_progress`` callable.

    Every request pulled is in exactly one of ``waiting``, ``running``, ``succeeded`` and
    ``failed``: ``pulled == waiting + running + succeeded + failed``.

    Attributes:
        pulled: Requests pulled from the input so far (the input is read lazily, so this
            grows as slots free up).
        waiting: Requests pulled that wait for quota slots (not yet admitted once).
        running: Requests admitted (their create is being sent, or their task runs) without
            an outcome yet. A request whose create was refused with 1303 and went back to the
            queue stays counted here.
        succeeded: Outcomes with ``ok`` true.
        failed: Outcomes with an ``error`` (failed task, refused create, deadline, ...).
        units_spent: Units charged for this stream's ended tasks (the sum of their
            :attr:`TaskResult.units`; ``0`` where the wire API reports none).
        elapsed: Seconds since the stream started.
        finished: ``True`` on the last call, made when the stream's block is left (whether
            every request ran or the block was left early).
    """

    pulled: int
    waiting: int
    running: int
    succeeded: int
    failed: int
    units_spent: Decimal
    elapsed: float
    finished: bool = False


@attrs.define
class ProgressMeter:
    """Counts one stream's requests and calls ``on_progress`` with a :class:`Progress` after
    changes: from :meth:`run` at most every ``INTERVAL`` seconds, and once more from
    :meth:`finish`. The callable runs synchronously on the event loop; whatever it raises is
    logged (``kling_async.client``, the first time with its traceback) and otherwise ignored.
    """

    on_progress: Callable[[Progress], object]
    _started: float = attrs.field(factory=anyio.current_time)
    _pulled: int = 0
    _admitted: int = 0
    _succeeded: int = 0
    _failed: int = 0
    _units: Decimal = Decimal(0)
    _changed: anyio.Event = attrs.field(factory=anyio.Event)
    _raised: bool = False

    async def counting(
        self, requests: Iterable[Request] | AsyncIterable[Request]
    ) -> AsyncIterator[Request]:
        """``requests``, counting each as it is pulled."""
        if isinstance(requests, AsyncIterable):
            async for request in requests:
                self._pulled += 1
                self._change()
                yield request
        else:
            for request in requests:
                self._pulled += 1
                self._change()
                yield request

    def admitted(self) -> None:
        """A request got its slots for the first time, or has its outcome without ever
        getting them (the scheduler tells either once per request, before its outcome)."""
        self._admitted += 1
        self._change()

    def outcome(self, outcome: Outcome, *, earlier: bool = False) -> None:
        """A request has its outcome; ``earlier``: its task ended in an earlier run (the
        journal's result), so its units were spent then, not by this stream."""
        if outcome.error is None:
            self._succeeded += 1
        else:
            self._failed += 1
        units = outcome.result.units if outcome.result is not None else None
        if units is not None and not earlier:
            self._units += units
        self._change()

    def progress(self, *, finished: bool = False) -> Progress:
        """The counts now."""
        done = self._succeeded + self._failed
        return Progress(
            pulled=self._pulled,
            waiting=self._pulled - self._admitted,
            running=self._admitted - done,
            succeeded=self._succeeded,
            failed=self._failed,
            units_spent=self._units,
            elapsed=anyio.current_time() - self._started,
            finished=finished,
        )

    async def run(self) -> None:
        """Report after each change, at most every ``INTERVAL`` seconds, until cancelled."""
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            self._report(self.progress())
            await anyio.sleep(INTERVAL)

    def finish(self) -> None:
        """The stream is over: the final report (``finished`` true)."""
        self._report(self.progress(finished=True))

    def _change(self) -> None:
        self._changed.set()

    def _report(self, progress: Progress) -> None:
        try:
            self.on_progress(progress)
        except Exception as exc:
            _log.warning(
                "on_progress raised %r; ignored (the stream goes on)",
                exc,
                exc_info=not self._raised,
            )
            self._raised = True
