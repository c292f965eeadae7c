"""``RedisCampaign``: one campaign spread over many workers on a Redis Stream.

Redis Streams with a consumer group are the queue (https://redis.io/docs/latest/develop/data-
types/streams/): ``push`` adds each campaign line with ``XADD`` under the explicit entry id
``<line number>-1``, so a second push of the same file adds nothing (Redis refuses an id not
above the stream's top). Workers take lines with ``XREADGROUP`` only when their stream has room
(the client's lookahead), record each line's outcome in a hash and ``XACK`` it in one Lua script
(``_queue.lua``), so a line is acknowledged only once its outcome is stored.

Exactly one task per line: a line's ``external_task_id`` is its own, else ``kaq-<queue>-<campaign
id>-<line>``. A line taken over from another worker is first looked up by that id (its intent is
written to the taker's journal, which makes the client ask the server before creating), so it is
followed, never created twice. Workers prove they are alive with a key that expires after
``claim_timeout``; the lines of a worker whose key expired are claimed (``XPENDING`` + ``XCLAIM``,
by consumer, so a live but slow worker keeps its lines) once idle that long. A line delivered
``max_deliveries`` times without an outcome goes to the dead-letter list instead.

Redis unreachable: no line is taken and outcomes wait (retried until Redis answers); tasks
already created are still followed by the client.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import anyio
import attrs

from .._journal import request_fingerprint
from .._models import Outcome, Request
from .._requests._campaign import parse_line
from ._store import (
    GROUP,
    SCRIPT,
    Keys,
    PushReport,
    QueuedLine,
    QueueStatus,
    ensure_group,
    push_lines,
    read_rows,
    read_status,
)

if TYPE_CHECKING:
    from .._client import KlingClient

__all__ = ["RedisCampaign"]

_log = logging.getLogger("kling_async.queue")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class RedisCampaign:
    """A campaign queue on Redis Streams (``pip install 'kling-async[redis]'``), consumed by
    any number of workers: ``kling-async push/work/status/collect`` or an asyncio program::

        async with ka.RedisCampaign(url, "spring") as queue, ka.KlingClient(...) as client:
            await queue.push(open("campaign.jsonl"), base=Path("."))
            async with client.stream(queue.requests(client)) as outcomes:
                async for outcome in outcomes:
                    await queue.ack(outcome)

    Args:
        url: ``redis://`` (``rediss://``, ``unix://``) URL, redis-py's syntax.
        name: The queue's name: 1–64 letters, digits, ``_``, ``.`` or ``-``.
        claim_timeout: Seconds a worker's heartbeat lives (refreshed every third of it) and a
            line must have been idle before another worker claims it from a dead worker.
            Default 30.
        max_deliveries: Deliveries after which a line without an outcome goes to the
            dead-letter list. Default 5.
        follow: Keep waiting for new lines when the queue is drained (else :meth:`requests`
            ends once every line has an outcome).
        out: The folder this worker saves files to (shown by ``status`` and ``collect``).

    Raises:
        ValueError: a bad name or setting.
        ImportError: redis-py is not installed.
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        claim_timeout: float = 30.0,
        max_deliveries: int = 5,
        follow: bool = False,
        out: str | os.PathLike[str] = "",
    ) -> None:
        import redis.asyncio as redis_asyncio

        self.check_name(name)
        if claim_timeout <= 0:
            raise ValueError(f"claim_timeout: {claim_timeout}, must be > 0 seconds")
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries: {max_deliveries}, must be ≥ 1")
        self.name = name
        self.claim_timeout = claim_timeout
        self.max_deliveries = max_deliveries
        self.follow = follow
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._info = {"host": socket.gethostname(), "pid": os.getpid(), "out": str(out)}
        self._redis: Any = redis_asyncio.Redis.from_url(
            url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        self._errors: tuple[type[BaseException], ...] = (
            redis_asyncio.ConnectionError,
            redis_asyncio.TimeoutError,
            OSError,
        )
        self._script = self._redis.register_script(SCRIPT)
        self._keys = Keys(name)
        self._held: dict[int, QueuedLine] = {}  # stream index → line, until acknowledged
        self._taken = 0
        self._active = False  # registered as a worker (heartbeat running)
        self._stack: AsyncExitStack | None = None
        self._next_claim = 0.0

    @staticmethod
    def check_name(name: str) -> None:
        """Check a queue name: 1–64 letters, digits, ``_``, ``.`` or ``-``.

        Raises:
            ValueError: it is not.
        """
        if not _NAME.fullmatch(name):
            raise ValueError(f"queue name {name!r}: 1-64 letters, digits, '_', '.' or '-'")

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            stack.push_async_callback(self._redis.aclose)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            tg.start_soon(self._heartbeats)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self._retire()
            try:
                await stack.__aexit__(*exc_info)
            except BaseExceptionGroup as group:
                # The heartbeat's task group wraps an error of the body: raise it as itself.
                if [e for e in group.exceptions if e is not exc_info[1]]:
                    raise
                raise exc_info[1] from None

    async def _heartbeats(self) -> None:
        """Refresh this worker's alive key every third of ``claim_timeout`` (only once it has
        taken a line: a ``push`` or ``status`` is no worker)."""
        while True:
            if self._active:
                try:
                    await self._beat()
                except self._errors as exc:
                    _log.warning("queue %s: heartbeat failed (%s); retrying", self.name, exc)
            await anyio.sleep(self.claim_timeout / 3)

    async def _beat(self) -> None:
        info = json.dumps({**self._info, "last_seen": time.time()})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.alive + self.consumer, "1", px=int(self.claim_timeout * 1000))
            pipe.hset(self._keys.workers, self.consumer, info)
            await pipe.execute()

    async def _retire(self) -> None:
        """A clean exit: the heartbeat goes at once, so lines still held are claimable."""
        if not self._active:
            return
        self._active = False
        try:
            await self._redis.delete(self._keys.alive + self.consumer)
            await self._redis.hset(
                self._keys.workers,
                self.consumer,
                json.dumps({**self._info, "last_seen": time.time()}),
            )
        except self._errors:
            pass

    # -- push --------------------------------------------------------------------------------

    async def push(
        self,
        lines: Iterable[str],
        *,
        base: Path | None = None,
        provider: str = "kling",
        processes: int = 1,
    ) -> PushReport:
        """Queue each line of a campaign (JSON Lines text, numbered from 1; blank and ``#``
        lines keep their numbers and are skipped), validated and pipelined in chunks of
        2,000, ``lines`` read once (flat memory).

        Idempotent: lines pushed before (the first lines of the same text) are skipped; lines
        appended to the file since are queued by the next push.

        Args:
            lines: The campaign's lines, e.g. an open file.
            base: The folder local paths of the lines resolve against (default: the current
                one); every worker must read those files at the same paths.
            provider: The dialect of lines that name none (``"kling"`` or ``"modellix"``).
            processes: Validate the lines in this many processes (default 1: in this one).
                More than 1 starts a pool (``spawn``) once the first 2,000 lines are
                checked, so the calling program's main module must be guarded by ``if
                __name__ == "__main__":``; ``kling-async push`` uses one per core.

        Raises:
            ValueError: the queue holds a different campaign (its first lines differ), or
                another push of this queue is under way.
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        return await push_lines(
            self._redis,
            self._keys,
            lines,
            base=base,
            provider=provider,
            owner=self.consumer,
            processes=processes,
        )

    async def status(self) -> QueueStatus:
        """The queue's figures (see :class:`QueueStatus`).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        return await read_status(self._redis, self._keys)

    def rows(self) -> AsyncIterator[dict[str, Any]]:
        """One row per campaign line, in line order: its recorded outcome (``status``,
        ``files``, ``units``, ``error``, ``worker``: host, pid and folder holding its files),
        or ``{"line": n, "status": "not_done"}`` for a line still queued or running; 1,000
        lines per round trip.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        return read_rows(self._redis, self._keys)

    # -- taking lines ------------------------------------------------------------------------

    async def requests(self, client: KlingClient) -> AsyncIterator[Request]:
        """The queue's lines as requests for ``client.stream(...)`` (one stream per call),
        each taken from Redis only when the stream pulls it, so a worker holds no more lines
        than its client's lookahead beyond those running. Ends once no line is left without
        an outcome (with ``follow``, never). A line this worker cannot parse or the client
        refuses is acknowledged at once as ``invalid``. Redis unreachable: no line is taken
        until it answers again.

        Raises:
            ValueError: ``client`` has no journal, or cannot carry an ``external_task_id``
                (Modellix): a line taken over could not be looked up before being created.
        """
        if client.journal is None or not client.carries_external_task_id:
            raise ValueError(
                "RedisCampaign.requests: the client needs a journal and a wire API that looks "
                "tasks up by external_task_id (Kling), so a line taken over is never created twice"
            )
        journal = client.journal
        meta: dict[str, str] = await self._retried(self._redis.hgetall, self._keys.meta)
        base, provider = Path(meta.get("base", ".")), meta.get("provider", "kling")
        await self._retried(ensure_group, self._redis, self._keys)
        while (taken := await self._take()) is not None:
            entry_id, fields, deliveries, claimed = taken
            if "campaign" not in meta:  # started before the first push
                meta = await self._retried(self._redis.hgetall, self._keys.meta)
                base, provider = Path(meta.get("base", ".")), meta.get("provider", "kling")
            number = int(fields["line"])
            line = QueuedLine(
                line=number,
                text=fields["text"],
                entry_id=entry_id,
                deliveries=deliveries,
                key=f"kaq-{self.name}-{meta.get('campaign', 'x')}-{number}",
            )
            try:
                request = parse_line(line.text, base, provider)  # type: ignore[arg-type]
                if request.external_task_id:
                    line = attrs.evolve(line, key=request.external_task_id)
                request = attrs.evolve(request, external_task_id=line.key)
                client.check(request)
            except (ValueError, TypeError) as exc:
                await self._record(line, {"status": "invalid", "error": str(exc)})
                continue
            if claimed:
                # Another worker may have created it: the journal's intent makes the client
                # look the task up by external_task_id (and follow it) before creating.
                await journal.record_intent(
                    line.key, request_fingerprint(request), request.kind, request.model_name
                )
            self._held[self._taken] = line
            self._taken += 1
            yield request

    def line_of(self, outcome: Outcome) -> QueuedLine:
        """The queued line an outcome of the stream fed by :meth:`requests` belongs to.

        Raises:
            KeyError: the outcome is not of a line this worker holds (or it was acknowledged).
        """
        return self._held[outcome.index]

    async def _take(self) -> tuple[str, dict[str, str], int, bool] | None:
        """The next line (entry id, fields, deliveries, claimed from another worker), or
        ``None`` once the queue has nothing left for anyone (unless following)."""
        down = False
        while True:
            try:
                if not self._active:
                    await self._beat()  # alive before holding anything
                    self._active = True
                got = await self._take_once()
            except self._errors as exc:
                if not down:
                    _log.warning("queue %s: Redis unreachable (%s); taking no line", self.name, exc)
                down = True
                await anyio.sleep(min(1.0, self.claim_timeout / 4))
                continue
            if down:
                _log.warning("queue %s: Redis is back; taking lines again", self.name)
                down = False
            if isinstance(got, tuple):
                return got
            if got == "drained" and not self.follow:
                return None
            await anyio.sleep(min(1.0, self.claim_timeout / 4))

    async def _take_once(self) -> tuple[str, dict[str, str], int, bool] | str | None:
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + min(1.0, self.claim_timeout / 4)
            claimed = await self._claim_one()
            if claimed is not None:
                self._next_claim = 0.0  # a dead worker's lines: take the next one at once
                return claimed
        answer = await self._redis.xreadgroup(
            GROUP, self.consumer, {self._keys.stream: ">"}, count=1
        )
        if answer and answer[0][1]:
            entry_id, fields = answer[0][1][0]
            return entry_id, fields, 1, False
        summary = await self._redis.xpending(self._keys.stream, GROUP)
        others = sum(int(c["pending"]) for c in summary["consumers"] if c["name"] != self.consumer)
        if others:
            self._next_claim = 0.0  # lines held elsewhere: check for dead holders each pass
            return None
        return "drained"

    async def _claim_one(self) -> tuple[str, dict[str, str], int, bool] | None:
        """Claim one line idle for ``claim_timeout`` from a worker whose heartbeat expired;
        a line delivered ``max_deliveries`` times goes to the dead-letter list instead."""
        summary = await self._redis.xpending(self._keys.stream, GROUP)
        idle_ms = int(self.claim_timeout * 1000)
        for consumer in summary["consumers"]:
            name = consumer["name"]
            if name == self.consumer or await self._redis.exists(self._keys.alive + name):
                continue
            entries = await self._redis.xpending_range(
                self._keys.stream,
                GROUP,
                min="-",
                max="+",
                count=10,
                consumername=name,
                idle=idle_ms,
            )
            for entry in entries:
                entry_id, deliveries = entry["message_id"], int(entry["times_delivered"])
                got = await self._redis.xclaim(
                    self._keys.stream, GROUP, self.consumer, idle_ms, [entry_id]
                )
                if not got or not got[0][1]:
                    continue  # another worker claimed it first, or it was acknowledged
                fields = got[0][1]
                line = QueuedLine(
                    line=int(fields["line"]),
                    text=fields["text"],
                    entry_id=entry_id,
                    deliveries=deliveries + 1,
                    key="",
                )
                if await self._redis.hexists(self._keys.results, fields["line"]):
                    await self._record(line, None)  # its outcome is stored: acknowledge
                    continue
                if deliveries >= self.max_deliveries:
                    _log.warning(
                        "queue %s: line %d dead-lettered after %d deliveries",
                        self.name,
                        line.line,
                        deliveries,
                    )
                    await self._record(
                        line,
                        {
                            "status": "dead_letter",
                            "error": f"delivered {deliveries} times without an outcome",
                            "deliveries": deliveries,
                        },
                    )
                    continue
                _log.info("queue %s: line %d taken over from %s", self.name, line.line, name)
                return entry_id, fields, deliveries + 1, True
        return None

    # -- outcomes ----------------------------------------------------------------------------

    async def ack(self, outcome: Outcome, row: Mapping[str, Any] | None = None) -> None:
        """Record the outcome of a line taken by :meth:`requests`, then acknowledge the line
        (one atomic script: a line is never acknowledged without its outcome). Retried until
        Redis answers.

        Args:
            outcome: The stream's outcome.
            row: What to record (JSON values: ``status``, ``files``, ``error``, ``units``, …);
                default: the status, task ids, units and error of ``outcome``. The line number
                and this worker (host, pid, folder) are added.

        Raises:
            KeyError: the outcome is not of a line this worker holds.
        """
        line = self._held.pop(outcome.index)
        if row is None:
            result, task = outcome.result, outcome.task
            row = {
                "task_id": task.task_id if task else None,
                "external_task_id": line.key,
                "status": result.status.value if result is not None else "error",
                "files": [],
                "error": str(outcome.error) if outcome.error is not None else None,
                "units": str(result.units)
                if result is not None and result.units is not None
                else None,
            }
        await self._record(line, row)

    async def _record(self, line: QueuedLine, row: Mapping[str, Any] | None) -> None:
        """Store ``row`` as the line's outcome (``None``: keep the one stored) and
        acknowledge its entry, retrying while Redis is unreachable."""
        if row is None:
            args = [GROUP, line.entry_id, "0", "", "", ""]
            await self._retried(self._redis.xack, self._keys.stream, GROUP, line.entry_id)
            await self._retried(self._redis.xdel, self._keys.stream, line.entry_id)
            return
        worker = {"host": self._info["host"], "pid": self._info["pid"], "folder": self._info["out"]}
        full = {"line": line.line, "files": [], **row, "worker": worker}
        units = full.get("units")
        args = [
            GROUP,
            line.entry_id,
            str(line.line),
            json.dumps(full, ensure_ascii=False),
            str(full["status"]),
            str(units) if units is not None else "",
        ]
        await self._retried(self._script, keys=self._keys.script_keys(), args=args)

    async def hand_back(self) -> int:
        """Give back every line taken and not acknowledged (an orderly stop): they become
        claimable by the other workers at once (not counted as a delivery), whose lookup by
        ``external_task_id`` follows any task already created. Returns how many."""
        held = list(self._held.values())
        self._held.clear()
        for line in held:
            try:
                await self._redis.xclaim(
                    self._keys.stream,
                    GROUP,
                    self.consumer,
                    0,
                    [line.entry_id],
                    idle=int(self.claim_timeout * 1000) * 10,
                    retrycount=max(line.deliveries - 1, 0),
                )
            except self._errors:
                break  # Redis is down: the lines come back after claim_timeout anyway
        await self._retire()
        return len(held)

    async def _retried(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """``await func(...)``, retried every second while Redis is unreachable."""
        down = False
        while True:
            try:
                result = await func(*args, **kwargs)
            except self._errors as exc:
                if not down:
                    _log.warning("queue %s: Redis unreachable (%s); waiting", self.name, exc)
                down = True
                await anyio.sleep(min(1.0, self.claim_timeout / 4))
                continue
            return result
