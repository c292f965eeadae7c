"""The wire-independent core of the sandbox: tasks, pools, random draws, stats.

A wire API (Kling native in ``_kling.py``, Modellix in ``_modellix.py``) parses and validates its
own requests, asks the engine to admit a task, and renders the engine's :class:`~._state.Task` in
its own shapes. Both share one clock, one ``random.Random`` (durations, failures, ids, faults)
and one set of counters. Kling tasks hold slots of their ``(model_name, kind)`` pool; Modellix
tasks hold slots of the team pool :data:`MODELLIX_POOL`.

Sources:
[concurrency] https://kling.ai/document-api/api/get-started/concurrency-rules
[modellix-api] https://docs.modellix.ai/ways-to-use/api
[omni-image] https://kling.ai/document-api/api/image/3-0-omni/image-omni
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs

from ._kling_new_rules import POOL_OF
from ._rules import IMAGE_MODELS, VIDEO_MODELS
from ._state import (
    Api,
    Counters,
    Kind,
    Pool,
    SandboxStats,
    Status,
    Task,
    TaskRecord,
)

# [concurrency] : 9 image, 5 video packs
DEFAULT_CAPACITY: dict[Kind, int] = {"image": 9, "video": 5}
KNOWN_MODELS: dict[Kind, tuple[str, ...]] = {"image": IMAGE_MODELS, "video": VIDEO_MODELS}

# Stats key of the Modellix team concurrency pool ([modellix-api]: limits are per team).
MODELLIX_POOL: Final = "modellix:team"

Duration = float | tuple[float, float]
_T = TypeVar("_T")


def _duration_range(value: Duration, name: str) -> tuple[float, float]:
    low, high = (value, value) if isinstance(value, int | float) else value
    if not 0 <= low <= high:
        raise ValueError(f"{name}: need 0 <= low <= high seconds, got {value!r}")
    return float(low), float(high)


def _capacities(quota: Mapping[str, int] | None) -> tuple[dict[Kind, int], dict[str, int]]:
    per_kind = dict(DEFAULT_CAPACITY)
    per_pool: dict[str, int] = {}
    for key, value in (quota or {}).items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"quota[{key!r}]: need an integer >= 0, got {value!r}")
        if key in ("image", "video"):
            per_kind["image" if key == "image" else "video"] = value
            continue
        model, sep, kind = key.rpartition(":")
        if not sep or not model or kind not in ("image", "video"):
            raise ValueError(f"quota key {key!r}: use 'image', 'video' or '<model_name>:<kind>'")
        per_pool[f"{POOL_OF.get(model, model)}:{kind}"] = value  # new-standard name: same pool
    return per_kind, per_pool


@attrs.define
class Engine:
    """Tasks and per-pool slots of one sandbox account (see :class:`~._server.Sandbox`)."""

    _per_kind: dict[Kind, int]
    _per_pool: dict[str, int]
    _durations: dict[Kind, tuple[float, float]]
    _auto_range: tuple[int, int]
    _fail_rate: float
    _rng: random.Random
    _clock: Callable[[], float] = time.monotonic
    offset: float = attrs.field(init=False)  # wall-clock epoch seconds = monotonic + offset
    counters: Counters = attrs.field(factory=Counters)
    _tasks: list[Task] = attrs.field(factory=list)
    _by_id: dict[str, Task] = attrs.field(factory=dict)
    _by_external: dict[str, Task] = attrs.field(factory=dict)
    _pools: dict[str, Pool] = attrs.field(factory=dict)
    _first_start: float | None = None
    on_admit: Callable[[Task], None] | None = None  # told of every accepted task

    def __attrs_post_init__(self) -> None:
        self.offset = time.time() - self._clock()
        for kind, models in KNOWN_MODELS.items():
            for model in models:
                self.pool(model, kind)
        for key in self._per_pool:
            model, _, kind_name = key.rpartition(":")
            self.pool(model, "image" if kind_name == "image" else "video")

    @classmethod
    def build(
        cls,
        *,
        quota: Mapping[str, int] | None,
        image_duration: Duration,
        video_duration: Duration,
        auto_series_range: tuple[int, int],
        seed: int | None,
        fail_rate: float,
    ) -> Engine:
        """Check the sandbox options and build an engine (raises ValueError on bad options)."""
        per_kind, per_pool = _capacities(quota)
        low, high = auto_series_range
        if not 1 <= low <= high:
            raise ValueError(f"auto_series_range: need 1 <= low <= high, got {auto_series_range!r}")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate: need a fraction in [0, 1], got {fail_rate!r}")
        return cls(
            per_kind,
            per_pool,
            {
                "image": _duration_range(image_duration, "image_duration"),
                "video": _duration_range(video_duration, "video_duration"),
            },
            (low, high),
            fail_rate,
            random.Random(seed),
        )

    # --- time -------------------------------------------------------------------------------

    def now(self) -> float:
        """Monotonic seconds."""
        return self._clock()

    def wall(self, mono: float) -> float:
        """Wall-clock epoch seconds of monotonic instant ``mono``."""
        return mono + self.offset

    def ms(self, mono: float) -> int:
        """Epoch milliseconds of monotonic instant ``mono`` ([omni-image]: timestamps in ms)."""
        return round((mono + self.offset) * 1000)

    # --- pools, draws ------------------------------------------------------------------------

    def pool(self, model_name: str, kind: Kind) -> Pool:
        """The pool ``(model_name, kind)`` ([concurrency]: per account × model × pack type); a
        new-standard model name (``kling-3.0-omni``) gives its legacy model's pool (INFERRED)."""
        key = f"{POOL_OF.get(model_name, model_name)}:{kind}"
        pool = self._pools.get(key)
        if pool is None:
            pool = Pool(self._per_pool.get(key, self._per_kind[kind]))
            self._pools[key] = pool
        return pool

    def add_pool(self, key: str, capacity: int) -> Pool:
        """Create (or resize) the pool ``key`` with ``capacity`` slots."""
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = Pool(capacity)
        pool.capacity = capacity
        return pool

    def named_pool(self, key: str) -> Pool:
        """The existing pool ``key`` (raises KeyError if there is none)."""
        return self._pools[key]

    def choice(self, options: Sequence[_T]) -> _T:
        """One of ``options``, drawn with the sandbox's seeded random source."""
        return self._rng.choice(options)

    def draw_auto_count(self) -> int:
        """Images an ``auto`` series will produce, drawn from ``auto_series_range``."""
        low, high = self._auto_range
        return self._rng.randint(low, high)

    def _new_task_id(self, prefix: str) -> str:
        while True:
            # 18 digits, like Kling ids; Modellix ids look like "task-<digits>" [modellix-api]
            task_id = prefix + str(self._rng.randrange(10**17, 10**18))
            if task_id not in self._by_id:
                return task_id

    # --- tasks -------------------------------------------------------------------------------

    def external_id_taken(self, external_task_id: str) -> bool:
        """True if an accepted task already carries ``external_task_id``."""
        return external_task_id in self._by_external

    def admit(
        self,
        *,
        kind: Kind,
        model_name: str,
        cost: int,
        outputs: int,
        result_type: str | None,
        watermark: bool,
        units: str,
        video_seconds: int | None,
        callback_url: str | None,
        external_task_id: str | None,
        body: dict[str, Any],
        api: Api = "kling",
        pool: str | None = None,
        id_prefix: str = "",
    ) -> Task | None:
        """Create a task if ``cost`` slots fit in its pool now; None if they do not (1303).

        ``pool`` names the pool to hold slots in (default ``"model_name:kind"``, which must
        exist or is created); ``api`` tags the task for the wire API that owns it; task ids are
        ``id_prefix`` + 18 digits.
        """
        now = self.now()
        low, high = self._durations[kind]
        end = now + self._rng.uniform(low, high)
        slots = self.pool(model_name, kind) if pool is None else self._pools[pool]
        if not slots.try_admit(now, end, cost):
            return None
        failed = self._rng.random() < self._fail_rate
        task = Task(
            task_id=self._new_task_id(id_prefix),
            external_task_id=external_task_id,
            kind=kind,
            model_name=model_name,
            cost=cost,
            outputs=outputs,
            result_type=result_type,
            watermark=watermark,
            units=units,
            video_seconds=video_seconds,
            failed=failed,
            callback_url=callback_url,
            body=body,
            start=now,
            end=end,
            created_ms=self.ms(now),
            end_ms=self.ms(end),
            api=api,
        )
        self._tasks.append(task)
        self._by_id[task.task_id] = task
        if external_task_id is not None:
            self._by_external[external_task_id] = task
        if self._first_start is None:
            self._first_start = now
        self.counters.creates += 1
        if self.on_admit is not None:
            self.on_admit(task)
        return task

    def restore(self, tasks: Iterable[Task]) -> None:
        """Take back tasks accepted by an earlier sandbox process: they answer queries and
        lookups as before and hold their pool slots until their original end."""
        for task in tasks:
            if task.task_id in self._by_id:
                continue
            if task.api == "modellix":
                self._pools[MODELLIX_POOL].hold(task.start, task.end, task.cost)
            else:
                self.pool(task.model_name, task.kind).hold(task.start, task.end, task.cost)
            self._tasks.append(task)
            self._by_id[task.task_id] = task
            if task.external_task_id is not None:
                self._by_external[task.external_task_id] = task

    def by_external(self, external_task_id: str) -> Task | None:
        """The task (any wire API) whose external_task_id is ``external_task_id``, or None."""
        return self._by_external.get(external_task_id)

    def of_api(self, api: Api) -> list[Task]:
        """The tasks of wire API ``api``, in creation order."""
        return [t for t in self._tasks if t.api == api]

    def find(self, kind: Kind, ident: str) -> Task | None:
        """The Kling task of ``kind`` whose task_id, else external_task_id, is ``ident``
        [omni-image]. Tasks of another wire API are not found."""
        task = self._by_id.get(ident) or self._by_external.get(ident)
        if task is None or task.kind != kind or task.api != "kling":
            return None
        return task

    def task(self, task_id: str) -> Task | None:
        """The task whose task_id is ``task_id`` (either wire API), or None."""
        return self._by_id.get(task_id)

    def get(self, api: Api, task_id: str) -> Task | None:
        """The task of wire API ``api`` whose task_id is ``task_id``, or None."""
        task = self._by_id.get(task_id)
        return task if task is not None and task.api == api else None

    def newest_first(self, kind: Kind) -> Iterator[Task]:
        """Kling tasks of ``kind``, most recently created first [omni-image]."""
        return (t for t in reversed(self._tasks) if t.kind == kind and t.api == "kling")

    def records(self) -> list[TaskRecord]:
        """Read-only views of every accepted task, in creation order."""
        now = self.now()
        return [
            TaskRecord(
                task_id=t.task_id,
                external_task_id=t.external_task_id,
                kind=t.kind,
                model_name=t.model_name,
                cost=t.cost,
                created_at=self.wall(t.start),
                ends_at=self.wall(t.end),
                status=t.status(now).value,
                body=t.body,
                api=t.api,
            )
            for t in self._tasks
        ]

    def stats(
        self,
        *,
        peak_requests_per_window: int = 0,
        faults_injected: Mapping[str, int] | None = None,
    ) -> SandboxStats:
        """A snapshot of the counters and pool figures at this instant (the figures kept
        outside the engine are passed in)."""
        now = self.now()
        c = self.counters
        ended = [t.end for t in self._tasks if t.end <= now]
        running = any(t.end > now for t in self._tasks)
        last_end = max(ended) if ended else None
        makespan = 0.0
        if self._first_start is not None:
            stop = now if running or last_end is None else last_end
            makespan = max(0.0, stop - self._first_start)
        return SandboxStats(
            requests=c.requests,
            creates=c.creates,
            create_attempts=c.create_attempts,
            queries=c.queries,
            batch_queries=c.batch_queries,
            batch_ids=c.batch_ids,
            list_queries=c.list_queries,
            rejected_1303=c.rejected_1303,
            errors_by_code=dict(sorted(c.errors_by_code.items())),
            callbacks_sent=c.callbacks_sent,
            callbacks_failed=c.callbacks_failed,
            duplicate_external_ids=c.duplicate_external_ids,
            pools={key: pool.snapshot(now) for key, pool in sorted(self._pools.items())},
            first_create_at=None if self._first_start is None else self.wall(self._first_start),
            last_end_at=None if last_end is None else self.wall(last_end),
            makespan=makespan,
            concurrency_429=c.concurrency_429,
            rate_limited_429=c.rate_limited_429,
            peak_requests_per_window=peak_requests_per_window,
            faults_injected=dict(sorted((faults_injected or {}).items())),
        )

    def is_terminal(self, task: Task) -> bool:
        """True once ``task`` has ended (succeed or failed)."""
        return task.status(self.now()) in (Status.SUCCEED, Status.FAILED)
