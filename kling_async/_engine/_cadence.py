"""How often to poll: at the pace of the tasks.

A task's end is seen at the first poll after it, on average half an interval late, and while
requests wait for slots that lag leaves slots idle. So the interval is a fixed fraction of how
long the pool's tasks take (from create to seen ended), whether they take 1 s or 5 minutes:

- ``FRACTION_BUSY`` (4.5 %) of the mean duration while the pool is busy (:func:`busy`:
  requests wait for its slots, or at least ``BUSY_SHARE`` of them are held): the mean
  detection lag is then about 2.3 % of a task, and a list poll every 4.5 % of a task costs, at
  ``q`` tasks in flight, ``1 / (0.045 q)`` requests per task (0.44 at 50). The tail of a
  campaign (nothing waits any more, most slots still held) is polled like its middle: many
  tasks end there, and a slower tail is what set the p95 detection lag before;
- ``FRACTION_IDLE`` (7 %) when the pool is not busy: few tasks end per poll, so a third fewer
  polls;
- before any task of the pool has ended: ``FRACTION_FIRST`` (25 %) of the oldest in-flight
  task's age (a task that has run ``t`` seconds takes at least that long; the age at least
  ``MIN_AGE``), but at most ``FRACTION_IDLE`` of the documented typical duration (``TYPICAL``:
  Kling images take tens of seconds, videos minutes;
  https://kling.ai/document-api/api/image/3-0-omni/image-omni), so 1.4 s for images and
  8.4 s for videos. Polls grow geometrically (×1.25) with the age up to that: the first end
  is seen at most a quarter of its duration late, and a campaign spends a handful of polls,
  not dozens, before it;
- never below ``FLOOR`` nor above ``CEILING`` seconds.

An explicit ``image_poll_interval`` / ``video_poll_interval`` overrides all of this.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._models import Kind

__all__ = [
    "BUSY_SHARE",
    "CEILING",
    "FLOOR",
    "FRACTION_BUSY",
    "FRACTION_FIRST",
    "FRACTION_IDLE",
    "TYPICAL",
    "busy",
    "interval",
]

FRACTION_BUSY = 0.045
FRACTION_IDLE = 0.07
FRACTION_FIRST = 0.25  # before any end: of the oldest in-flight task's age
BUSY_SHARE = 0.3  # a pool holding at least this share of its slots is busy
TYPICAL: dict[Kind, float] = {"image": 20.0, "video": 120.0}  # seconds
MIN_AGE = 1.0  # seconds: before any end, the age the interval is scaled from at least
FLOOR = 0.02  # seconds
CEILING = 30.0  # seconds


def busy(waiting: int, in_use: int, capacity: int) -> bool:
    """Whether a pool is busy: requests wait for its slots, or it holds at least
    ``BUSY_SHARE`` of its ``capacity`` (slots) in use, so tasks end often."""
    return waiting > 0 or (capacity > 0 and in_use >= BUSY_SHARE * capacity)


def interval(
    kind: Kind, means: Iterable[float | None], oldest_age: float, *, waiting: bool
) -> float:
    """Seconds between two polls of ``kind``.

    Args:
        kind: ``"image"`` or ``"video"``.
        means: Mean durations (seconds) of the pools with tasks of ``kind`` in flight; None for
            a pool where no task has ended yet.
        oldest_age: Seconds since the oldest in-flight task of ``kind`` was created.
        waiting: Whether a pool of ``kind`` is busy (:func:`busy`; the name is the earlier
            one, when only waiting requests counted).
    """
    known = [m for m in means if m is not None]
    if known:
        fraction = FRACTION_BUSY if waiting else FRACTION_IDLE
        return min(CEILING, max(FLOOR, fraction * min(known)))
    first = min(FRACTION_FIRST * max(MIN_AGE, oldest_age), FRACTION_IDLE * TYPICAL[kind])
    return min(CEILING, max(FLOOR, first))
