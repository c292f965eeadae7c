"""The campaign queue's records on Redis: its keys, the push of a campaign file, and the
figures and rows read back (``status``, ``collect``). The workers' side is ``_queue.py``."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from ._validate import ChunkValidator

# A redis-py client made with decode_responses=True (answers are str; redis-py's own types
# also admit bytes, so the client is typed Any here).
Redis = Any

__all__ = [
    "GROUP",
    "SCRIPT",
    "Keys",
    "PushReport",
    "QueueStatus",
    "QueuedLine",
    "WorkerInfo",
    "ensure_group",
    "push_lines",
    "read_rows",
    "read_status",
]

SCRIPT = resources.files(__package__).joinpath("_queue.lua").read_text(encoding="utf-8")
GROUP = "workers"  # the one consumer group
_CHUNK = 2000  # lines per pipelined round trip of a push
# XADD of each line under the explicit id "<line>-1": Redis refuses an id not above the
# stream's top, so a line pushed before is counted as seen, not added again. Two arguments
# per call, not two per line (redis-py encodes each argument in Python): ARGV[1] the line
# numbers, space-separated; ARGV[2] their texts joined by "\n" (the last takes the rest, so
# a text holding "\n" is sent in a call of its own).
_PUSH = """
local added, seen = 0, 0
local numbers, texts, at = {}, ARGV[2], 1
for number in string.gmatch(ARGV[1], '%d+') do numbers[#numbers + 1] = number end
for i, number in ipairs(numbers) do
  local stop = #texts + 1
  if i < #numbers then stop = string.find(texts, '\\n', at, true) end
  local text = string.sub(texts, at, stop - 1)
  at = stop + 1
  local r = redis.pcall('XADD', KEYS[1], number .. '-1', 'line', number, 'text', text)
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'equal or smaller') then return redis.error_reply(r.err) end
    seen = seen + 1
  else
    added = added + 1
  end
end
return {added, seen}
"""
_DEAD_SHOWN = 50  # dead-letter lines listed by status


@attrs.frozen
class Keys:
    """The Redis keys of queue ``name`` (one hash slot: the name is the cluster hash tag)."""

    name: str

    def _key(self, part: str) -> str:
        return f"kling_async:queue:{{{self.name}}}:{part}"

    @property
    def stream(self) -> str:
        return self._key("stream")

    @property
    def meta(self) -> str:
        return self._key("meta")

    @property
    def results(self) -> str:
        return self._key("results")

    @property
    def counts(self) -> str:
        return self._key("counts")

    @property
    def dead(self) -> str:
        return self._key("dead")

    @property
    def workers(self) -> str:
        return self._key("workers")

    @property
    def alive(self) -> str:
        return self._key("alive:")

    def script_keys(self) -> list[str]:
        """The keys of ``_queue.lua``, in its order."""
        return [self.stream, self.results, self.counts, self.dead]


@attrs.frozen(kw_only=True)
class QueuedLine:
    """A line taken from the queue: its number, text, stream entry id and deliveries so far."""

    line: int
    text: str
    entry_id: str
    deliveries: int
    key: str  # the external_task_id the line is created (or looked up) under


@attrs.frozen(kw_only=True)
class PushReport:
    """What :meth:`RedisCampaign.push` did: lines ``queued`` now, lines ``skipped`` (already
    on the queue from an earlier push) and ``invalid`` lines as ``(line, reason)`` (recorded
    as outcomes with status ``invalid``, nothing queued for them)."""

    queued: int
    skipped: int
    invalid: tuple[tuple[int, str], ...]


@attrs.frozen(kw_only=True)
class WorkerInfo:
    """A worker that took lines: consumer name, host, pid, output folder, the wall-clock time
    (Unix seconds) it was last seen, and whether its heartbeat is alive."""

    name: str
    host: str
    pid: int
    out: str
    last_seen: float
    alive: bool


@attrs.frozen(kw_only=True)
class QueueStatus:
    """A queue's figures: ``lines`` pushed (valid and invalid), ``queued`` (not taken yet),
    ``running`` (taken, no outcome yet), ``done`` (outcomes by status, e.g. ``succeeded``,
    ``failed``, ``invalid``, ``dead_letter``), ``units`` charged (sum of the outcomes' units),
    ``dead_letter`` (line numbers, the first 50) and the ``workers``."""

    lines: int
    queued: int
    running: int
    done: dict[str, int]
    units: Decimal
    dead_letter: tuple[int, ...]
    workers: tuple[WorkerInfo, ...]

    def as_json(self) -> dict[str, Any]:
        """The figures as JSON-ready values (units as a string)."""
        return {
            "lines": self.lines,
            "queued": self.queued,
            "running": self.running,
            "done": dict(sorted(self.done.items())),
            "units": str(self.units),
            "dead_letter": list(self.dead_letter),
            "workers": [attrs.asdict(w) for w in self.workers],
        }


async def push_lines(
    redis: Redis,
    keys: Keys,
    lines: Iterable[str],
    *,
    base: Path | None,
    provider: str,
    owner: str,
    processes: int = 1,
) -> PushReport:
    """Queue each line of a campaign (JSON Lines text, numbered from 1; blank and ``#``
    lines are numbered and skipped), pipelined in chunks of 2,000, reading ``lines`` once.

    Idempotent: lines already pushed (the first lines of the same text) are skipped; more
    lines appended to the file are queued by the next push.

    Args:
        lines: The campaign's lines, e.g. an open file.
        base: The folder local paths of the lines resolve against (default: the current
            one); workers read those files at the same paths.
        provider: The dialect of lines that name none (``"kling"`` or ``"modellix"``).
        processes: Validate the lines in this many processes (see :class:`ChunkValidator`).

    Raises:
        ValueError: the queue holds a different campaign (its first lines differ), or
            another push of this queue is under way.
        redis.exceptions.ConnectionError: Redis is unreachable.
    """
    base = (base or Path.cwd()).resolve()
    lock = keys.meta + ":push"
    if not await redis.set(lock, owner, nx=True, px=600_000):
        raise ValueError(f"queue {keys.name}: another push is under way")
    try:
        async with ChunkValidator(base, provider, processes) as validator:
            return await _push(redis, keys, lines, base, provider, validator)
    finally:
        await redis.delete(lock)


async def _push(
    redis: Redis,
    keys: Keys,
    lines: Iterable[str],
    base: Path,
    provider: str,
    validator: ChunkValidator,
) -> PushReport:
    """:func:`push_lines` once the push holds the queue's lock."""
    await ensure_group(redis, keys)
    sha = await redis.script_load(SCRIPT)  # the pipeline calls it by its hash
    meta = await redis.hgetall(keys.meta)
    if "campaign" not in meta:
        # Before any line: a worker that takes a line finds the campaign's identity (its
        # lines' external_task_ids derive from it) and the folder paths resolve against.
        first = {"campaign": uuid.uuid4().hex[:8], "base": str(base), "provider": provider}
        for field, value in first.items():
            await redis.hsetnx(keys.meta, field, value)
        meta = await redis.hgetall(keys.meta)
    hashed, digest = int(meta.get("hashed", 0)), meta.get("digest", "")
    running = hashlib.sha256()
    queued = skipped = 0
    invalid: list[tuple[int, str]] = []
    batch: list[tuple[int, str]] = []
    number = 0
    for number, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        running.update(text.encode() + b"\n")
        if number == hashed and running.hexdigest() != digest:
            raise ValueError(
                f"queue {keys.name} holds a different campaign (its first {hashed} "
                "lines differ); push it to another --queue"
            )
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        if number <= hashed:
            skipped += 1
            continue
        batch.append((number, text))
        if len(batch) >= _CHUNK:
            for chunk, bad in await validator.put(batch):
                added, seen = await _push_batch(redis, keys, sha, chunk, bad, invalid)
                queued, skipped = queued + added, skipped + seen
            batch = []
    if number < hashed:
        raise ValueError(
            f"queue {keys.name} holds a longer campaign ({hashed} lines, this one has "
            f"{number}); push it to another --queue"
        )
    ready = await validator.put(batch) if batch else []
    for chunk, bad in ready + await validator.drain():
        added, seen = await _push_batch(redis, keys, sha, chunk, bad, invalid)
        queued, skipped = queued + added, skipped + seen
    await redis.hset(
        keys.meta,
        mapping={
            "hashed": max(number, hashed),
            "digest": running.hexdigest() if number >= hashed else digest,
        },
    )
    await redis.hincrby(keys.meta, "lines", queued + len(invalid))
    return PushReport(queued=queued, skipped=skipped, invalid=tuple(invalid))


async def _push_batch(
    redis: Redis,
    keys: Keys,
    sha: str,
    chunk: list[tuple[int, str]],
    bad: list[tuple[int, str]],
    invalid: list[tuple[int, str]],
) -> tuple[int, int]:
    """Queue a chunk of lines in one round trip (the valid lines in one script call, or one
    each for a text holding a newline; the ``bad`` ones, ``(line, reason)``, recorded as
    outcomes and added to ``invalid``): (lines queued, lines already queued)."""
    refused = {number for number, _ in bad}
    good = [(n, text) for n, text in chunk if n not in refused] if bad else chunk
    texts = "\n".join(text for _, text in good)
    if texts.count("\n") == len(good) - 1:
        calls = [(" ".join(str(n) for n, _ in good), texts)] if good else []
    else:
        calls = [(str(n), text) for n, text in good]
    async with redis.pipeline(transaction=False) as pipe:
        for number, reason in bad:
            invalid.append((number, reason))
            row = {"line": number, "status": "invalid", "error": reason, "files": []}
            args = (GROUP, "", str(number), json.dumps(row), "invalid", "")
            pipe.evalsha(sha, 4, *keys.script_keys(), *args)
        for numbers, joined in calls:
            pipe.eval(_PUSH, 1, keys.stream, numbers, joined)
        answers = await pipe.execute()
    pushed = answers[len(bad) :]
    return sum(int(a[0]) for a in pushed), sum(int(a[1]) for a in pushed)


async def read_status(redis: Redis, keys: Keys) -> QueueStatus:
    """The queue's figures (see :class:`QueueStatus`).

    Raises:
        redis.exceptions.ConnectionError: Redis is unreachable.
    """
    r = redis
    meta = await r.hgetall(keys.meta)
    counts = await r.hgetall(keys.counts)
    length = int(await r.xlen(keys.stream))
    running = 0
    if meta:
        await ensure_group(redis, keys)
        running = int((await r.xpending(keys.stream, GROUP))["pending"])
    dead = [int(x) for x in await r.lrange(keys.dead, 0, _DEAD_SHOWN - 1)]
    workers = []
    for name, raw in sorted((await r.hgetall(keys.workers)).items()):
        info = json.loads(raw)
        workers.append(
            WorkerInfo(
                name=name,
                host=str(info["host"]),
                pid=int(info["pid"]),
                out=str(info["out"]),
                last_seen=float(info["last_seen"]),
                alive=bool(await r.exists(keys.alive + name)),
            )
        )
    done = {
        k.removeprefix("status:"): int(v)
        for k, v in counts.items()
        if k.startswith("status:") and int(v) > 0
    }
    units = Decimal(counts.get("units", "0")).quantize(Decimal("0.0001"))
    units = units.quantize(Decimal(1)) if units == units.to_integral() else units.normalize()
    return QueueStatus(
        lines=int(meta.get("lines", 0)),
        queued=max(length - running, 0),
        running=running,
        done=done,
        units=units,
        dead_letter=tuple(dead),
        workers=tuple(workers),
    )


async def read_rows(redis: Redis, keys: Keys) -> AsyncIterator[dict[str, Any]]:
    """One row per campaign line, in line order: its recorded outcome (with the worker
    that holds its files), or ``{"line": n, "status": "not_done"}`` for a line still
    queued or running. Reads 1,000 lines per round trip.

    Raises:
        redis.exceptions.ConnectionError: Redis is unreachable.
    """
    hashed = int(await redis.hget(keys.meta, "hashed") or 0)
    for low in range(1, hashed + 1, 1000):
        high = min(low + 999, hashed)
        numbers = [str(n) for n in range(low, high + 1)]
        found = await redis.hmget(keys.results, numbers)
        waiting = {
            int(f["line"]) for _, f in await redis.xrange(keys.stream, f"{low}-1", f"{high}-1")
        }
        for number, raw in zip(range(low, high + 1), found, strict=True):
            if raw is not None:
                yield json.loads(raw)
            elif number in waiting:
                yield {"line": number, "status": "not_done"}


async def ensure_group(redis: Redis, keys: Keys) -> None:
    """Create the stream and its consumer group unless they exist."""
    import redis.asyncio as redis_asyncio

    try:
        await redis.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)
    except redis_asyncio.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
