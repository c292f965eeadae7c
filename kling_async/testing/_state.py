"""Task records, per-pool slot accounting and statistics of the sandbox.

Time: slot accounting uses ``time.monotonic()`` seconds. Everything shown to users (task records,
stats, API timestamps) is wall-clock, obtained as ``monotonic + offset`` with one offset fixed when
the sandbox starts, so all figures are consistent with each other.

Quota model [concurrency]: a pool is ``(model_name, kind)``; a task holds ``cost`` slots of its
pool from create until it ends (succeed or failed) and releases them at that instant. Release is
computed from the task's end time, so it never depends on anyone querying.

Sources:
[concurrency] https://kling.ai/document-api/api/get-started/concurrency-rules
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
"""

from __future__ import annotations

import collections
import enum
from typing import Any, Literal

import attrs

Kind = Literal["image", "video"]
Api = Literal["kling", "kling-new", "modellix"]


class Status(enum.Enum):
    """Legacy task status [omni-image]; note the vendor spelling ``succeed``."""

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
    units: str  # final_unit_deduction once succeeded [omni-image]
    video_seconds: int | None
    failed: bool
    callback_url: str | None
    body: dict[str, Any]
    start: float
    end: float
    created_ms: int
    end_ms: int
    api: Api = "kling"  # the wire API that accepted it

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
        cost: Slots held in its pool [concurrency]: ``n``, ``series_amount``, the drawn ``auto``
            count, or 1 for a video.
        created_at: Wall-clock create instant, epoch seconds.
        ends_at: Wall-clock instant the task ends and releases its slots, epoch seconds.
        status: ``submitted``, ``processing``, ``succeed`` or ``failed`` when the view was taken
            (Kling's spelling for both APIs; Modellix answers ``pending`` / ``success``).
        body: The raw JSON body received on create.
        api: ``"kling"`` (native legacy routes), ``"kling-new"`` (new-standard
            ``/omni-video/{model}`` routes) or ``"modellix"`` (``/api/v1`` routes).
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
    api: Api = "kling"

    def to_json(self) -> dict[str, Any]:
        """The record without ``body``, JSON-ready (as served at ``GET /sandbox/tasks``)."""
        return {
            "task_id": self.task_id,
            "external_task_id": self.external_task_id,
            "kind": self.kind,
            "model_name": self.model_name,
            "cost": self.cost,
            "created_at": self.created_at,
            "ends_at": self.ends_at,
            "status": self.status,
            "api": self.api,
        }


@attrs.frozen(kw_only=True)
class SandboxPoolStats:
    """Slot figures of one pool ``(model_name, kind)`` [concurrency], or of the Modellix team,
    as the sandbox saw them (the client's own view of a pool is ``kling_async.PoolStats``).

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


PoolStats = SandboxPoolStats  # the earlier name, kept for one release


@attrs.frozen(kw_only=True)
class SandboxStats:
    """A snapshot of what the sandbox saw (also served as JSON at ``GET /sandbox/stats``).

    Kling and Modellix routes share the counters unless a field says otherwise.

    Attributes:
        requests: HTTP requests to API routes (everything but ``/sandbox/...``).
        creates: Accepted creates.
        create_attempts: Create requests, accepted or not (on Modellix: POSTs to an enabled
            submit path of a known model).
        queries: Single-task queries (``GET …/{id}``, Modellix ``GET /api/v1/tasks/{id}``).
        list_queries: List queries (``GET …?pageNum=&pageSize=``, new-standard ``POST /tasks``).
        batch_queries: New-standard unified queries ``GET /tasks?task_ids=`` or
            ``?external_task_ids=`` (one per request, whatever the number of ids).
        batch_ids: Ids asked for in those queries, in all (``batch_ids / batch_queries`` is
            how many tasks one unified query answered for).
        rejected_1303: Creates refused with code 1303 (pool full, [concurrency]).
        errors_by_code: Error answers by API code (e.g. ``{1201: 3, 1303: 7}``; Modellix codes
            are HTTP statuses such as 400 or 429).
        callbacks_sent: Callback POSTs answered with a 2xx status.
        callbacks_failed: Callback POSTs that failed (connection error, timeout, non-2xx).
        duplicate_external_ids: Creates refused because their ``external_task_id`` was in use.
        pools: ``"model_name:kind"`` → :class:`SandboxPoolStats`, every known pool, plus
            ``"modellix:team"``, the Modellix team concurrency pool.
        first_create_at: Wall-clock epoch seconds of the first accepted create, or None.
        last_end_at: Wall-clock epoch seconds of the latest task end so far, or None.
        makespan: Seconds from the first accepted create to the last task end (to now while
            tasks are still running); 0.0 before any create.
        concurrency_429: Modellix creates refused with 429 because the team concurrency
            limit was reached.
        rate_limited_429: Modellix requests refused with 429 by the per-key requests-per-window
            limit.
        peak_requests_per_window: Most Modellix API requests one key had inside one sliding
            window (``modellix_rpm_window`` seconds); rate-limited requests are not counted.
        faults_injected: Fault name → times it fired (see :class:`~._faults.Faults`); ``{}``
            without faults.
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
    pools: dict[str, SandboxPoolStats]
    first_create_at: float | None
    last_end_at: float | None
    makespan: float
    concurrency_429: int = 0
    rate_limited_429: int = 0
    peak_requests_per_window: int = 0
    faults_injected: dict[str, int] = attrs.field(factory=dict)
    batch_queries: int = 0
    batch_ids: int = 0

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
        # [concurrency]: slots are released the instant a task ends (succeed or failed)
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
        if cost > self.capacity - used:  # [concurrency]: over the pack's concurrency → 1303
            return False
        self._active.append((now, end, cost))
        self.tasks += 1
        # Slots in use only rise at admissions, so the exact peak is the max seen right after one.
        # A zero-length task ends the instant it starts, so it never holds slots at an instant.
        if end > now:
            self.peak = max(self.peak, used + cost)
        return True

    def hold(self, start: float, end: float, cost: int) -> None:
        """Hold ``cost`` slots from ``start`` to ``end`` unconditionally: a task accepted
        earlier (by a previous sandbox process) still runs, so its slots are taken."""
        self._active.append((start, end, cost))
        self.tasks += 1

    def snapshot(self, now: float) -> SandboxPoolStats:
        """Figures at ``now``."""
        used = self.in_use(now)
        running = sum(cost * (now - start) for start, _, cost in self._active)
        return SandboxPoolStats(
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
    batch_queries: int = 0
    batch_ids: int = 0
    account_queries: int = 0
    rejected_1303: int = 0
    errors_by_code: dict[int, int] = attrs.field(factory=dict)
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    duplicate_external_ids: int = 0
    concurrency_429: int = 0
    rate_limited_429: int = 0

    def error(self, code: int) -> None:
        """Count one error answer with API ``code``."""
        self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1


@attrs.define
class RequestWindow:
    """A sliding-window request limit per key: at most ``limit`` requests in any ``window``
    seconds (times are monotonic seconds).

    A request at instant ``t`` stays in its key's window until ``t + window``. Refused requests
    are not recorded, so they never push the window further out.
    """

    limit: int
    window: float
    _hits: dict[str, collections.deque[float]] = attrs.field(factory=dict)
    peak: int = 0  # most requests one key held inside one window

    def hit(self, key: str, now: float) -> float | None:
        """Record a request of ``key`` at ``now``; None if accepted, else the seconds until
        the oldest request in the window leaves it (when a retry can succeed)."""
        hits = self._hits.setdefault(key, collections.deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(0.0, hits[0] + self.window - now)
        hits.append(now)
        # The count inside a window only rises at an accepted request, so the exact peak is
        # the largest count seen right after one.
        self.peak = max(self.peak, len(hits))
        return None

    def remaining(self, key: str, now: float) -> int:
        """Requests ``key`` may still make in the window ending at ``now``."""
        hits = self._hits.get(key, collections.deque())
        return max(0, self.limit - sum(1 for t in hits if t > now - self.window))
