"""One retry idiom for everything the SDK sends again: which failures are worth another try,
and one backoff for all of them, set by a :class:`Retry` policy.

The backoff: attempt ``n`` (1-based) waits ``min(cap, base × 2ⁿ⁻¹)`` seconds plus a random
``0–jitter`` seconds (so clients that failed together do not retry together), and never less
than the server's ``Retry-After`` when it sent one. Queries, downloads and callback
confirmations retry through :func:`retrying` (tenacity); creates, which may only be re-sent
when the server certainly created nothing, decide that themselves and wait
:meth:`Retry.delay`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import anyio
import attrs
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .._errors import (
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TransportError,
    UnknownStatusError,
)

__all__ = ["Retry", "is_transient", "retrying"]

BASE = 0.5  # seconds before the second attempt
CAP = 8.0  # seconds at most between attempts (before jitter)
JITTER = 0.5  # seconds of random extra wait, at most


def _at_least(low: float) -> Callable[[object, attrs.Attribute[Any], float], None]:
    def check(_: object, field: attrs.Attribute[Any], value: float) -> None:
        if not value >= low:  # also refuses NaN
            raise ValueError(f"{field.name}: {value!r}, must be ≥ {low}")

    return check


@attrs.frozen(kw_only=True)
class Retry:
    """How the client tries again what failed for a passing reason: queries (polls, lookups,
    ``get``, ``account_costs``), creates the server certainly refused before creating, and
    downloads.

    Attempt ``n`` (1-based) that failed is followed by a wait of ``min(cap, base × 2ⁿ⁻¹)``
    seconds plus a random ``0–jitter`` seconds, and never less than the ``Retry-After`` the
    server sent with the failure (Kling's 429 / 1302 rate-limit answers,
    https://kling.ai/document-api/api/get-started/error-codes; Modellix's 429, also as
    ``X-RateLimit-Reset``, https://docs.modellix.ai/how-to-use/error-handling). The defaults
    are the SDK's backoff: 0.5, 1, 2, 4 s (+ up to 0.5 s) between five attempts.
    ``Retry(base=0, cap=0, jitter=0)`` retries at once, e.g. in tests against the sandbox.

    Attributes:
        attempts: Tries in all, the first included (≥ 1). Default 5.
        base: Seconds of the first wait (≥ 0). Default 0.5.
        cap: Seconds at most of one wait before jitter (≥ 0). Default 8.0.
        jitter: Seconds of random extra wait at most (≥ 0). Default 0.5.

    Raises:
        ValueError: a field out of range (named in the message).
    """

    attempts: int = attrs.field(default=5, validator=_at_least(1))
    base: float = attrs.field(default=BASE, validator=_at_least(0.0))
    cap: float = attrs.field(default=CAP, validator=_at_least(0.0))
    jitter: float = attrs.field(default=JITTER, validator=_at_least(0.0))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), at least
        ``retry_after`` seconds (the server's ``Retry-After``) when given."""
        backoff = min(self.cap, self.base * 2.0 ** (attempt - 1)) + random.uniform(0, self.jitter)
        return max(backoff, float(retry_after or 0.0))

    @classmethod
    def of(cls, retry: Retry | None, max_retries: int) -> Retry:
        """The client's policy from its ``retry`` and ``max_retries`` options: ``retry`` when
        given (``max_retries`` then left at its default 5 or equal to ``retry.attempts``), else
        the default backoff with ``max_retries`` attempts.

        Raises:
            TypeError: ``retry`` is not a :class:`Retry`.
            ValueError: both are given and disagree, or ``max_retries`` < 1.
        """
        if retry is None:
            if max_retries < 1:
                raise ValueError(f"max_retries: {max_retries}, must be ≥ 1")
            return cls(attempts=max_retries)
        if not isinstance(retry, Retry):
            raise TypeError(f"retry: {type(retry).__name__}, expected kling_async.Retry")
        if max_retries not in (5, retry.attempts):
            raise ValueError(
                f"max_retries: {max_retries} disagrees with retry.attempts {retry.attempts}; "
                "give one of them"
            )
        return retry


def is_transient(exc: BaseException) -> bool:
    """Failures worth another try of a query: 1302/1303, 5000–5002, HTTP 5xx, transport errors
    and malformed answers (not an unknown task status: asking again gives the same answer)."""
    if isinstance(exc, UnknownStatusError):
        return False
    return isinstance(exc, RateLimitError | ServerError | TransportError | ResponseFormatError)


def retrying(
    policy: Retry,
    retry_if: Callable[[BaseException], bool] = is_transient,
    *,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> AsyncRetrying:
    """A tenacity retry loop: up to ``policy.attempts`` tries, :meth:`Retry.delay` between
    them, the last failure re-raised as is; ``on_retry(attempt, failure)`` is called before
    each wait::

        async for attempt in retrying(Retry()):
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

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.delay(state.attempt_number, getattr(exc, "retry_after", None))

    return AsyncRetrying(
        retry=retry_if_exception(retry_if),
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        sleep=anyio.sleep,
        reraise=True,
        before_sleep=before_sleep,
    )
