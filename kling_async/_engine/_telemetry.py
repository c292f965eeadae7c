"""OpenTelemetry traces of the client's work, when ``opentelemetry-api`` is installed
(``pip install 'kling-async[otel]'``); without it every hook here is never called (the client
holds no :class:`Telemetry`), so tracing costs nothing.

What is traced (tracer ``"kling_async"``; see docs/observability.md):

- a span ``kling_async request`` per request, from the moment it queues for quota slots to the
  end of its task, with the attributes ``kling_async.kind``, ``.model``, ``.pool``, ``.cost``,
  ``.external_task_id``, ``.task_id``, ``.requeued_1303``, ``.outcome`` and ``.units``, and
  the events ``queued``, ``requeued_1303``, ``retry``, ``created`` and ``ended``. Its context
  is kept with the lease from the create to the last poll, so the create and the single-task
  polls of one task are its children;
- a child span per HTTP request (kind ``CLIENT``, named after the method, with the stable HTTP
  semantic-convention attributes ``http.request.method``, ``url.full``, ``server.address``,
  ``server.port``, ``http.response.status_code`` and ``error.type``; URLs carry no secret:
  credentials travel in the ``Authorization`` header only,
  https://kling.ai/document-api/api/get-started/authentication);
- a span ``kling_async poll`` per list or batch poll, which reports on many tasks at once: a
  root span of its own, linked to the span of each task it asked about (at most
  ``POLL_LINKS``), parent of the poll's HTTP requests.
"""

from __future__ import annotations

import functools
import importlib.metadata
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .._quota._backend import Lease

__all__ = ["POLL_LINKS", "HttpSpan", "Telemetry"]

TRACER_NAME = "kling_async"
POLL_LINKS = 128  # links a poll span carries at most (the OTel SDK's default span limit)


class HttpSpan:
    """The span of one HTTP request, as a context manager the wire enters around the
    exchange (ended on exit, an exception recorded); without a recording span, it does
    nothing."""

    __slots__ = ("_span",)

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def __enter__(self) -> HttpSpan:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        span = self._span
        if span is None:
            return
        if isinstance(exc, Exception):
            from opentelemetry.trace import StatusCode

            span.record_exception(exc)
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(StatusCode.ERROR, str(exc))
        span.end()

    def answered(self, status: int) -> None:
        """The answer's HTTP status; 4xx and 5xx also set ``error.type`` (semconv)."""
        span = self._span
        if span is None:
            return
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            from opentelemetry.trace import StatusCode

            span.set_attribute("error.type", str(status))
            span.set_status(StatusCode.ERROR)


_NO_HTTP_SPAN = HttpSpan(None)


class Telemetry:
    """The spans of one client (see the module docstring).

    Args:
        tracer: The OpenTelemetry tracer the spans come from.
    """

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = tracer
        # A request's span, kept with its lease (weakly: a lease dropped without an end, e.g.
        # a client closed with tasks running, takes its unfinished span with it).
        self._spans: weakref.WeakKeyDictionary[Lease, Span] = weakref.WeakKeyDictionary()
        self._servers: dict[str, tuple[str, int]] = {}  # base URL → server.address, .port

    @classmethod
    def create(cls, tracer_provider: TracerProvider | None = None) -> Telemetry | None:
        """Telemetry from ``tracer_provider`` (default: the global one), or ``None`` when
        ``opentelemetry-api`` is not installed."""
        try:
            from opentelemetry import trace
        except ImportError:
            return None
        return cls(trace.get_tracer(TRACER_NAME, _version(), tracer_provider=tracer_provider))

    # -- a request's span --------------------------------------------------------------------

    def queued(self, lease: Lease) -> None:
        """``lease``'s request starts waiting for quota slots: its span begins (a child of the
        caller's current span, if any)."""
        request = lease.request
        span = self._tracer.start_span(
            "kling_async request",
            attributes={
                "kling_async.kind": request.kind,
                "kling_async.model": request.model_name,
                "kling_async.pool": lease.pool,
                "kling_async.external_task_id": lease.key,
            },
        )
        if span.is_recording():
            span.add_event("queued")
            self._spans[lease] = span

    def requeued(self, lease: Lease) -> None:
        """A create of ``lease``'s request was refused with 1303 and went back to the queue."""
        span = self._spans.get(lease)
        if span is not None:
            span.add_event("requeued_1303", {"kling_async.cost": lease.cost})

    def created(self, lease: Lease, task_id: str) -> None:
        """``lease``'s task exists (created now, or re-attached from the journal)."""
        span = self._spans.get(lease)
        if span is None:
            return
        span.set_attributes({"kling_async.task_id": task_id, "kling_async.cost": lease.cost})
        span.add_event("created")

    def ended(
        self,
        lease: Lease,
        outcome: str,
        *,
        units: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        """The request is over: its task ended (``outcome`` ``"succeeded"`` or ``"failed"``)
        or none was created (``"not_created"``, ``"cancelled"``); its span ends."""
        span = self._spans.pop(lease, None)
        if span is None:
            return
        attributes: dict[str, Any] = {"kling_async.outcome": outcome}
        if units is not None:
            attributes["kling_async.units"] = units
        span.set_attributes(attributes)
        if error is not None:
            from opentelemetry.trace import StatusCode

            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(StatusCode.ERROR, str(error))
        span.add_event("ended", {"kling_async.outcome": outcome})
        span.end()

    def close(self) -> None:
        """The client closes: end the spans of tasks still running, ``outcome`` ``"unfollowed"``
        (their results can still be fetched later by id)."""
        for lease in list(self._spans):
            self.ended(lease, "unfollowed")

    # -- context -----------------------------------------------------------------------------

    def within(self, lease: Lease | None) -> Any:
        """A context manager making ``lease``'s request span current (so HTTP requests sent
        inside are its children); does nothing for a request without a span."""
        span = self._spans.get(lease) if lease is not None else None
        if span is None:
            return nullcontext()
        return self._trace.use_span(span, record_exception=False, set_status_on_exception=False)

    def retry(self, attempt: int, failure: BaseException) -> None:
        """Attempt ``attempt`` failed with ``failure`` and will be tried again: an event
        ``retry`` on the current span (a request's, or a poll's)."""
        span = self._trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "retry",
                {"kling_async.attempt": attempt, "error.type": type(failure).__qualname__},
            )

    @contextmanager
    def poll(self, kind: str, leases: Iterable[Lease]) -> Iterator[None]:
        """The span of one list or batch poll of ``kind`` tasks: a root span linked to the
        spans of the tasks it asks about (at most ``POLL_LINKS``), current while it runs."""
        trace = self._trace
        links = []
        for lease in leases:
            span = self._spans.get(lease)
            if span is not None:
                links.append(trace.Link(span.get_span_context()))
                if len(links) == POLL_LINKS:
                    break
        root = trace.set_span_in_context(trace.INVALID_SPAN)
        poll = self._tracer.start_span(
            "kling_async poll", context=root, attributes={"kling_async.kind": kind}, links=links
        )
        if not poll.is_recording():
            yield
            return
        with trace.use_span(poll, end_on_exit=True):
            yield

    def http(
        self, method: str, base_url: str, path: str, params: Mapping[str, str] | None
    ) -> HttpSpan:
        """The span of one HTTP request to ``base_url + path``, a child of the current span
        (never made current itself: nothing inside it has spans of its own). Its attributes
        are given at the start, for samplers."""
        server = self._servers.get(base_url)
        if server is None:
            parts = urlsplit(base_url)
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
            server = self._servers[base_url] = (parts.hostname or "", port)
        url = base_url + path
        span = self._tracer.start_span(
            method,
            kind=self._trace.SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "url.full": f"{url}?{urlencode(params)}" if params else url,
                "server.address": server[0],
                "server.port": server[1],
            },
        )
        return HttpSpan(span) if span.is_recording() else _NO_HTTP_SPAN


@functools.cache
def _version() -> str | None:
    """The installed distribution's version (the tracer's instrumentation version)."""
    try:
        return importlib.metadata.version("kling-async")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return None
