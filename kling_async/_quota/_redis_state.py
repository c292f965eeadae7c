"""The shared quota backend's own bookkeeping: what this process holds and waits for in the
shared pool, the two ways a Redis call fails, and small helpers (for ``_redis.py``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
import attrs

from .._errors import QuotaStoreLost as EpochLost
from .._errors import QuotaStoreUnavailable as Unavailable
from .._models import Kind
from ._backend import Lease

__all__ = ["EpochLost", "Held", "Queued", "Unavailable", "Waiting", "lookup", "text"]

_log = logging.getLogger("kling_async.quota")


@attrs.define(eq=False)
class Held:
    pool: str
    cost: int
    kind: Kind
    auto: bool
    task_id: str = ""


@attrs.define(eq=False)
class Waiting:
    lease: Lease
    event: anyio.Event = attrs.field(factory=anyio.Event)
    granted: int = 0
    overbooked: bool = False
    requeue: bool = False


@attrs.define(eq=False)
class Queued:
    ticket: int = 0
    since: float = 0.0


async def lookup(
    lookup: Callable[[Kind, str, bool], Awaitable[Literal["running", "ended", "missing"]]],
    kind: Kind,
    key: str,
    external: bool,
) -> Literal["running", "ended", "missing", "unknown"]:
    try:
        return await lookup(kind, key, external)
    except Exception as exc:  # a failed lookup proves nothing: keep the lease, ask again later
        _log.info("lookup of %s failed (%s): its slots stay held", key, exc)
        return "unknown"


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
