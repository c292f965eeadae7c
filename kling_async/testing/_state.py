"""Task records, per-pool slot accounting and statistics of the sandbox.

Time: slot accounting uses ``time.monotonic()`` seconds. Everything shown to users (task records,
stats, API timestamps) is wall-clock, obtained as ``monotonic + offset`` with one offset fixed when
the sandbox starts, so all figures are consistent with each other.

Quota model (ref §9 [S4]): a pool is ``(model_name, kind)``; a task holds ``cost`` slots of its
pool from create until it ends (succeed or failed) and releases them at that instant. Release is
computed from the task's end time, so it never depends on anyone querying.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import attrs

Kind = Literal["image", "video"]


class Status(enum.Enum):
    """Legacy task status (ref §4 [S1]); note the vendor spelling ``succeed``."""

    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEED = "succeed"
    FAILED = "failed"


# Fraction of a task's running time spent in "submitted" before "processing" (sandbox choice).
PROCESSING_AFTER = 0.1


@attrs.frozen(kw_only=True)
class Task:
    """One accepted create, as the sandbox keeps it (times monotonic seconds)."""

    task_id: str
    external_task_id: str | None
    kind: Kind
    model_name: str
    cost: int
    outputs: int  # images (single: n; series: cost) or videos (1)
    result_type: str | None  # image only: "single" | "series"
    watermark: bool
    units: str  # final_unit_deduction once succeeded (ref §5.3)
    video_seconds: int | None
    failed: bool
    callback_url: str | None
    body: dict[str, Any]
    start: float
    end: float
    created_ms: int
    end_ms: int

    @property
    def processing_at(self) -> float:
        """Monotonic instant the task turns from submitted to processing."""
        return self.start + PROCESSING_AFTER * (self.end - self.start)

    def status(self, now: float) -> Status:
        """Status at monotonic instant ``now``: submitted → processing → succeed|failed."""
        if now >= self.end:
            return Status.FAILED if self.failed else Status.SUCCEED
        if now >= self.processing_at:
            return Status.PROCESSING
        return Status.SUBMITTED

    def updated_ms(self, now: float, offset: float) -> int:
        """``updated_at`` (epoch ms) at monotonic ``now``: the last status change."""
        status = self.status(now)
        if status is Status.SUBMITTED:
            return self.created_ms
        if status is Status.PROCESSING:
            return round((self.processing_at + offset) * 1000)
        return self.end_ms


@attrs.frozen(kw_only=True)
class TaskRecord:
    """A read-only view of one accepted task, for tests (``Sandbox.tasks``).

    Attributes:
        task_id: The sandbox's task id.
        external_task_id: The client's ``external_task_id``, or None if it sent none.
        kind: ``"image"`` or ``"video"``.
        model_name: The model the task ran on (default applied).
        cost: Slots held in its pool (ref §9): ``n``, ``series_amount``, the drawn ``auto``
            count, or 1 for a video.
        created_at: Wall-clock create instant, epoch seconds.
        ends_at: Wall-clock instant the task ends and releases its slots, epoch seconds.
        status: ``submitted``, ``processing``, ``succeed`` or ``failed`` when the view was taken.
        body: The raw JSON body received on create.
    """

    task_id: str
    external_task_id: str | None
    kind: Kind
    model_name: str
    cost: int
    created_at: float
    ends_at: float
    status: str
    body: dict[str, Any]


@attrs.frozen(kw_only=True)
class PoolStats:
    """Slot figures of one pool ``(model_name, kind)`` (ref §9).

    Attributes:
        capacity: Concurrency limit of the pool, in slots.
        in_use: Slots held now.
        peak: Most slots held at any instant (exact, from the task intervals).
        slot_seconds: Sum over tasks of ``cost × seconds held``, up to now.
        tasks: Accepted creates in this pool.
    """

    capacity: int
    in_use: int
    peak: int
    slot_seconds: float
    tasks: int


@attrs.frozen(kw_only=True)
class SandboxStats:
    """A snapshot of what the sandbox saw (also served as JSON at ``GET /sandbox/stats``).

    Attributes:
        requests: HTTP requests to API routes (everything but ``/sandbox/...``).
        creates: Accepted creates.
        create_attempts: Create requests, accepted or not.
        queries: Single-task queries (``GET …/{id}``).
        list_queries: List queries (``GET …?pageNum=&pageSize=``).
        rejected_1303: Creates refused with code 1303 (pool full, ref §9 [S4]).
        errors_by_code: Error answers by API code (e.g. ``{1201: 3, 1303: 7}``).
        callbacks_sent: Callback POSTs answered with a 2xx status.
        callbacks_failed: Callback POSTs that failed (connection error, timeout, non-2xx).
        duplicate_external_ids: Creates refused because their ``external_task_id`` was in use.
        pools: ``"model_name:kind"`` → :class:`PoolStats`, every known pool.
        first_create_at: Wall-clock epoch seconds of the first accepted create, or None.
        last_end_at: Wall-clock epoch seconds of the latest task end so far, or None.
        makespan: Seconds from the first accepted create to the last task end (to now while
            tasks are still running); 0.0 before any create.
    """

    requests: int
    creates: int
    create_attempts: int
    queries: int
    list_queries: int
    rejected_1303: int
    errors_by_code: dict[int, int]
    callbacks_sent: int
    callbacks_failed: int
    duplicate_external_ids: int
    pools: dict[str, PoolStats]
    first_create_at: float | None
    last_end_at: float | None
    makespan: float

    def utilisation(self, pool: str) -> float:
        """``slot_seconds / (capacity × makespan)`` of ``pool`` (``"model:kind"``), in [0, 1]."""
        stats = self.pools[pool]
        if self.makespan <= 0 or stats.capacity <= 0:
            return 0.0
        return stats.slot_seconds / (stats.capacity * self.makespan)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``errors_by_code`` keys become strings), plus ``utilisation``:
        pool → :meth:`utilisation`."""
        data = attrs.asdict(self)
        data["errors_by_code"] = {str(k): v for k, v in self.errors_by_code.items()}
        data["utilisation"] = {pool: self.utilisation(pool) for pool in self.pools}
        return data


@attrs.define
class Pool:
    """Slot accounting of one pool; times are monotonic seconds."""

    capacity: int
    _active: list[tuple[float, float, int]] = attrs.field(factory=list)  # (start, end, cost)
    _done_slot_seconds: float = 0.0
    peak: int = 0
    tasks: int = 0

    def _release(self, now: float) -> None:
        # ref §9 [S4]: slots are released the instant a task ends (succeed or failed)
        still: list[tuple[float, float, int]] = []
        for start, end, cost in self._active:
            if end <= now:
                self._done_slot_seconds += cost * (end - start)
            else:
                still.append((start, end, cost))
        self._active = still

    def in_use(self, now: float) -> int:
        """Slots held at ``now``."""
        self._release(now)
        return sum(cost for _, _, cost in self._active)

    def try_admit(self, now: float, end: float, cost: int) -> bool:
        """Hold ``cost`` slots from ``now`` to ``end`` if they fit; False if they do not."""
        used = self.in_use(now)
        if cost > self.capacity - used:  # ref §9 [S4]: over the pack's concurrency → 1303
            return False
        self._active.append((now, end, cost))
        self.tasks += 1
        # Slots in use only rise at admissions, so the exact peak is the max seen right after one.
        # A zero-length task ends the instant it starts, so it never holds slots at an instant.
        if end > now:
            self.peak = max(self.peak, used + cost)
        return True

    def snapshot(self, now: float) -> PoolStats:
        """Figures at ``now``."""
        used = self.in_use(now)
        running = sum(cost * (now - start) for start, _, cost in self._active)
        return PoolStats(
            capacity=self.capacity,
            in_use=used,
            peak=self.peak,
            slot_seconds=self._done_slot_seconds + running,
            tasks=self.tasks,
        )


@attrs.define
class Counters:
    """Mutable counters behind :class:`SandboxStats`."""

    requests: int = 0
    creates: int = 0
    create_attempts: int = 0
    queries: int = 0
    list_queries: int = 0
    rejected_1303: int = 0
    errors_by_code: dict[int, int] = attrs.field(factory=dict)
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    duplicate_external_ids: int = 0

    def error(self, code: int) -> None:
        """Count one error answer with API ``code``."""
        self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1
