"""The client's own pace of HTTP requests: at most so many per minute (Modellix documents a
requests-per-minute limit per key, https://docs.modellix.ai/ways-to-use/api), and a pause when
the server answers 429 with ``Retry-After``.

A rate counts *requests*; a stream's cap on *units* (money) is ``_engine._budget.UnitBudget``.
"""

from __future__ import annotations

import anyio
from aiolimiter import AsyncLimiter

__all__ = ["RateLimit"]


class RateLimit:
    """At most ``per_minute`` HTTP requests in any minute: a leaky bucket of capacity one
    (aiolimiter) that lets one request through every ``60 / per_minute`` seconds (plus 2 %
    for clock differences with the server), and a pause honouring a 429's ``Retry-After``.

    Args:
        per_minute: Requests per minute, > 0.
    """

    def __init__(self, per_minute: float) -> None:
        self._limiter = AsyncLimiter(1, 60.0 / per_minute * 1.02)
        self._paused_until = 0.0

    async def acquire(self) -> None:
        """Wait for the next request's turn."""
        # A loop, not an Event: a 429 met while sleeping may push the pause further out.
        while (wait := self._paused_until - anyio.current_time()) > 0:  # noqa: ASYNC110
            await anyio.sleep(wait)
        await self._limiter.acquire()

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds``."""
        self._paused_until = max(self._paused_until, anyio.current_time() + seconds)
