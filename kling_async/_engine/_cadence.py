"""How often to poll: at the pace of the tasks.

A task's end is seen at the first poll after it, on average half an interval late, and while
requests wait for slots that lag leaves slots idle. So the interval is a fixed fraction of how
long the pool's tasks take (from create to seen ended), whether they take 1 s or 5 minutes:

- ``FRACTION_WAITING`` (4.5 %) of the mean duration while requests wait for slots of that kind:
  the mean detection lag is then about 2.3 % of a task, and a list poll every 4.5 % of a task
  costs, at a quota of ``q`` tasks in flight, ``1 / (0.045 q)`` requests per task (0.44 at 50);
- ``FRACTION_IDLE`` (7 %) when nothing waits: only the caller's latency is at stake, so a
  third fewer polls;
- before any task of the pool has ended: the same fraction of the oldest in-flight task's age
  (a task that has run ``t`` seconds takes at least that long), at least ``MIN_AGE`` and at most
  the documented typical duration (``TYPICAL``: Kling images take tens of seconds, videos
  minutes; https://kling.ai/document-api/api/image/3-0-omni/image-omni);
- never below ``FLOOR`` nor above ``CEILING`` seconds.

An explicit ``image_poll_interval`` / ``video_poll_interval`` overrides all of this.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._models import Kind

__all__ = ["CEILING", "FLOOR", "FRACTION_IDLE", "FRACTION_WAITING", "TYPICAL", "interval"]

FRACTION_WAITING = 0.045
FRACTION_IDLE = 0.07
TYPICAL: dict[Kind, float] = {"image": 20.0, "video": 120.0}  # seconds
MIN_AGE = 1.0  # seconds: before any end, the age the interval is scaled from at least
FLOOR = 0.02  # seconds
CEILING = 30.0  # seconds


def interval(
    kind: Kind, means: Iterable[float | None], oldest_age: float, *, waiting: bool
) -> float:
    """Seconds between two polls of ``kind``.

    Args:
        kind: ``"image"`` or ``"video"``.
        means: Mean durations (seconds) of the pools with tasks of ``kind`` in flight; None for
            a pool where no task has ended yet.
        oldest_age: Seconds since the oldest in-flight task of ``kind`` was created.
        waiting: Whether requests wait for slots of ``kind``.
    """
    known = [m for m in means if m is not None]
    pace = min(known) if known else min(TYPICAL[kind], max(MIN_AGE, oldest_age))
    fraction = FRACTION_WAITING if waiting else FRACTION_IDLE
    return min(CEILING, max(FLOOR, fraction * pace))
