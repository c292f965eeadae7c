"""One retry idiom for everything the SDK sends again: which failures are worth another try,
and one backoff for all of them.

The backoff: attempt ``n`` (1-based) waits ``min(8, 0.5 × 2ⁿ⁻¹)`` seconds plus a random 0–0.5 s
(so clients that failed together do not retry together), and never less than the server's
``Retry-After`` when it sent one. Queries, downloads and callback confirmations retry through
:func:`retrying` (tenacity); creates, which may only be re-sent when the server certainly
created nothing, decide that themselves and wait with :func:`delay`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .._errors import (
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TransportError,
    UnknownStatusError,
)

__all__ = ["delay", "is_transient", "retrying"]

BASE = 0.5  # seconds before the second attempt
CAP = 8.0  # seconds at most between attempts (before jitter)
JITTER = 0.5  # seconds of random extra wait, at most


def delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based)."""
    backoff: float = min(CAP, BASE * 2.0 ** (attempt - 1)) + random.uniform(0, JITTER)
    return max(backoff, float(retry_after or 0.0))


def is_transient(exc: BaseException) -> bool:
    """Failures worth another try of a query: 1302/1303, 5000–5002, HTTP 5xx, transport errors
    and malformed answers (not an unknown task status: asking again gives the same answer)."""
    if isinstance(exc, UnknownStatusError):
        return False
    return isinstance(exc, RateLimitError | ServerError | TransportError | ResponseFormatError)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    return delay(state.attempt_number, getattr(exc, "retry_after", None))


def retrying(
    attempts: int,
    retry_if: Callable[[BaseException], bool] = is_transient,
    *,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> AsyncRetrying:
    """A tenacity retry loop: up to ``attempts`` tries, :func:`delay` between them, the last
    failure re-raised as is; ``on_retry(attempt, failure)`` is called before each wait::

        async for attempt in retrying(5):
            with attempt:
                return await send()
    """
    before_sleep: Callable[[RetryCallState], None] | None = None
    if on_retry is not None:
        report = on_retry

        def tell(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            if failure is not None:
                report(state.attempt_number, failure)

        before_sleep = tell

    return AsyncRetrying(
        retry=retry_if_exception(retry_if),
        stop=stop_after_attempt(attempts),
        wait=_wait,
        sleep=anyio.sleep,
        reraise=True,
        before_sleep=before_sleep,
    )
