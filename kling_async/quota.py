"""The quota seam, for those who implement a backend: where a client's concurrency slots are
counted.

A :class:`~kling_async.KlingClient` never creates a task without slots from its quota backend
(``KlingClient(quota_backend=...)``). The default, :class:`LocalQuota`, counts them in this
process; :class:`RedisQuotaBackend` shares one account's slots among processes and hosts. Any
object with the methods of :class:`QuotaBackend` can take their place: the client reaches the
quota through these calls only.

How the client uses a backend, per request (every call keyed by the :class:`Lease`, whose
``key`` is the remote task's ``external_task_id``):

1. :meth:`~QuotaBackend.lease` once, then :meth:`~QuotaBackend.acquire` before each create
   attempt: wait until the request's pool can hold its cost, then set ``lease.cost`` (the
   slots granted) and ``lease.overbooked``. Raise :class:`~kling_async.QuotaError` when the
   request can never fit.
2. The create's answer: :meth:`~QuotaBackend.created` (the task now holds ``lease.cost`` slots
   until it ends), :meth:`~QuotaBackend.refused` (the server said the pool is full, code 1303:
   the slots go back, and the backend may learn that slots are held elsewhere; the client then
   awaits :meth:`~QuotaBackend.wait_for_release` and acquires again) or
   :meth:`~QuotaBackend.abandon` (nothing was created, or the request was cancelled).
3. :meth:`~QuotaBackend.occupy` instead of 1–2 for a task an earlier run created (re-attached
   from the journal): count its slots without waiting.
4. :meth:`~QuotaBackend.ended` once the server reports the task ended, with the number of
   images an ``auto`` series produced and the task's duration in seconds.

While the client is open, :meth:`~QuotaBackend.run` runs in the client's task group (a shared
backend's heartbeat and wake-ups go there) and learns who the client is from a
:class:`QuotaContext`; :meth:`~QuotaBackend.snapshot` gives a :class:`PoolSnapshot` per pool
for :meth:`KlingClient.quota_snapshot() <kling_async.KlingClient.quota_snapshot>` and
:meth:`KlingClient.stats() <kling_async.KlingClient.stats>`. :class:`Quota` is the
configuration (slots per pool) every backend applies.

Rules a backend keeps: slots belong to the remote task, not to a coroutine (a created task's
slots are released by :meth:`~QuotaBackend.ended`, never when the code awaiting it goes away);
a backend that cannot tell whether slots are free grants none (never more than the pool's
capacity); every method may wait on I/O, and is cancelled cleanly.

These names are also importable from ``kling_async`` itself (``ka.QuotaBackend is
kling_async.quota.QuotaBackend``); the top-level names are kept for one release.
"""

from __future__ import annotations

from ._quota._backend import Lease as Lease
from ._quota._backend import LocalQuota as LocalQuota
from ._quota._backend import PoolSnapshot as PoolSnapshot
from ._quota._backend import QuotaBackend as QuotaBackend
from ._quota._backend import QuotaContext as QuotaContext
from ._quota._config import Quota as Quota
from ._quota._redis import RedisQuotaBackend as RedisQuotaBackend

__all__ = [
    "Lease",
    "LocalQuota",
    "PoolSnapshot",
    "Quota",
    "QuotaBackend",
    "QuotaContext",
    "RedisQuotaBackend",
]
