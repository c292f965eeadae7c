"""OpenTelemetry spans of the client's work, recorded with the SDK's in-memory exporter against
the sandbox; and the client without opentelemetry installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import kling_async as ka
from kling_async._engine._tracker import Tracker
from kling_async.testing import Faults, Sandbox

from .conftest import API_KEY, fast_retry

pytestmark = pytest.mark.anyio

REQUEST = "kling_async request"
POLL = "kling_async poll"
IMAGE_PATH = "/v1/images/omni-image"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Spans finished by a client made with :func:`traced`, kept in memory."""
    memory = InMemorySpanExporter()
    yield memory
    memory.clear()


def traced(sandbox: Sandbox, exporter: InMemorySpanExporter, **options: object) -> ka.KlingClient:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    options.setdefault("quota", ka.Quota(image=9, video=5))
    options.setdefault("image_poll_interval", 0.05)
    options["retry"] = fast_retry(options.pop("max_retries", 5))  # type: ignore[arg-type]
    return ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        tracer_provider=provider,
        **options,  # type: ignore[arg-type]
    )


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    ctx = parent.get_span_context()
    assert ctx is not None
    return [
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == ctx.span_id
    ]


async def test_a_span_per_request_with_its_attributes_and_events(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """Each request has one span from queued to ended, carrying its pool, cost, ids, outcome
    and units, with the events queued, created and ended in that order."""
    requests = [ka.OmniImageRequest(prompt=f"p{i}", n=i + 1) for i in range(3)]
    async with traced(sandbox, exporter) as client:
        outcomes = await client.run_all(requests)
    spans = {s.attributes["kling_async.task_id"]: s for s in named(exporter, REQUEST)}  # type: ignore[index]
    assert len(spans) == 3
    for outcome in outcomes:
        assert outcome.ok and outcome.task is not None and outcome.result is not None
        span = spans[outcome.task.task_id]
        attributes = dict(span.attributes or {})
        assert attributes == {
            "kling_async.kind": "image",
            "kling_async.model": outcome.request.model_name,
            "kling_async.pool": "kling-image-o1:image",
            "kling_async.external_task_id": outcome.task.external_task_id,
            "kling_async.task_id": outcome.task.task_id,
            "kling_async.cost": outcome.task.cost,
            "kling_async.outcome": "succeeded",
            "kling_async.units": float(outcome.result.units or 0),
        }
        assert attributes["kling_async.cost"] == outcome.request.n  # type: ignore[union-attr]
        assert [e.name for e in span.events] == ["queued", "created", "ended"]
        assert span.status.status_code is StatusCode.UNSET and span.parent is None


async def test_the_create_and_single_polls_are_http_children_of_the_request_span(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """The create's POST and the single-task GETs that follow the task are CLIENT spans under
    the request's span, in its trace, with the HTTP semantic-convention attributes."""
    async with traced(sandbox, exporter) as client:
        [outcome] = await client.run_all([ka.OmniImageRequest(prompt="one")])
    [request] = named(exporter, REQUEST)
    http = children(exporter, request)
    assert http[0].name == "POST" and len(http) >= 2
    assert all(s.kind is SpanKind.CLIENT for s in http)
    assert {s.context.trace_id for s in http} == {request.context.trace_id}  # type: ignore[union-attr]
    post, *gets = http
    port = int(sandbox.base_url.rsplit(":", 1)[1])
    assert dict(post.attributes or {}) == {
        "http.request.method": "POST",
        "url.full": sandbox.base_url + IMAGE_PATH,
        "server.address": "127.0.0.1",
        "server.port": port,
        "http.response.status_code": 200,
    }
    assert outcome.task is not None
    for get in gets:
        assert get.name == "GET" and get.attributes is not None
        assert (
            get.attributes["url.full"] == f"{sandbox.base_url}{IMAGE_PATH}/{outcome.task.task_id}"
        )
        assert "Bearer" not in str(get.attributes) and API_KEY not in str(get.attributes)


async def test_a_list_poll_is_a_span_linked_to_the_tasks_it_asks_about(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """A list poll covering many tasks is a root span of its own, linked to the request spans
    of the tasks it asked about, with its GETs as children."""
    async with traced(sandbox, exporter) as client:
        outcomes = await client.run_all([ka.OmniImageRequest(prompt=f"p{i}") for i in range(9)])
    assert all(o.ok for o in outcomes)
    polls = named(exporter, POLL)
    assert polls and all(p.parent is None for p in polls)
    requests = {s.context.span_id for s in named(exporter, REQUEST)}  # type: ignore[union-attr]
    linked = {link.context.span_id for p in polls for link in p.links}
    assert linked and linked <= requests
    gets = children(exporter, polls[0])
    assert gets and all(g.name == "GET" for g in gets)
    assert all("pageNum=" in str((g.attributes or {})["url.full"]) for g in gets)


async def test_a_1303_is_an_event_on_the_request_span(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """A create refused with 1303 and re-queued shows as a requeued_1303 event on its request's
    span (which still ends succeeded), and its POST span records HTTP 429."""
    async with traced(sandbox, exporter, quota=ka.Quota(image=40)) as client:
        outcomes = await client.run_all(
            [ka.OmniImageRequest(prompt=f"p{i}", n=3) for i in range(12)]
        )
    assert all(o.ok for o in outcomes)
    rejected = sandbox.stats().rejected_1303
    spans = named(exporter, REQUEST)
    events = [e for s in spans for e in s.events if e.name == "requeued_1303"]
    assert rejected > 0 and len(events) == rejected
    assert {s.attributes["kling_async.outcome"] for s in spans} == {"succeeded"}  # type: ignore[index]
    refused = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "POST" and (s.attributes or {}).get("http.response.status_code") == 429
    ]
    assert len(refused) == rejected
    assert all((s.attributes or {})["error.type"] == "429" for s in refused)


async def test_retries_are_events_on_the_span_they_belong_to(
    exporter: InMemorySpanExporter,
) -> None:
    """A create refused with 5000 and a failed query, each tried again, show as retry events
    on the request's span."""
    faults = Faults(error_before_create=0.5, query_error=0.5)
    async with (
        Sandbox(api_keys=(API_KEY,), image_duration=0.1, faults=faults, seed=5) as sb,
        traced(sb, exporter) as client,
    ):
        outcomes = await client.run_all([ka.OmniImageRequest(prompt=f"p{i}") for i in range(2)])
        injected = sb.stats().faults_injected
    assert all(o.ok for o in outcomes)
    retries = [e for s in named(exporter, REQUEST) for e in s.events if e.name == "retry"]
    assert injected.get("error_before_create") and injected.get("query_error")
    assert len(retries) == injected["error_before_create"] + injected["query_error"]
    kinds = {(e.attributes or {}).get("error.type") for e in retries}
    assert kinds == {"ServerError"}


async def test_a_failed_task_ends_its_span_in_error(exporter: InMemorySpanExporter) -> None:
    """A task that ends failed ends its span with outcome failed and status ERROR."""
    async with (
        Sandbox(api_keys=(API_KEY,), image_duration=0.05, fail_rate=1.0) as sb,
        traced(sb, exporter) as client,
    ):
        [outcome] = await client.run_all([ka.OmniImageRequest(prompt="x")])
    [span] = named(exporter, REQUEST)
    assert not outcome.ok and span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["kling_async.outcome"] == "failed"
    assert (span.attributes or {})["error.type"] == "TaskFailedError"


async def test_request_spans_are_children_of_the_callers_span(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """Requests streamed inside a caller's span belong to its trace, as its children."""
    client = traced(sandbox, exporter)
    tracer = client._counters.telemetry._tracer  # type: ignore[union-attr]  # the same provider
    async with client:
        with tracer.start_as_current_span("campaign") as campaign:
            await client.run_all([ka.OmniImageRequest(prompt=f"p{i}") for i in range(2)])
    spans = named(exporter, REQUEST)
    assert len(spans) == 2
    assert all(s.parent is not None for s in spans)
    assert {s.parent.span_id for s in spans} == {campaign.get_span_context().span_id}  # type: ignore[union-attr]


async def test_spans_of_tasks_still_running_end_when_the_client_closes(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """Closing the client with a task running ends its span, outcome unfollowed."""
    async with traced(sandbox, exporter) as client:
        await client.submit(ka.OmniVideoRequest(prompt="long", duration=5, aspect_ratio="16:9"))
    [span] = named(exporter, REQUEST)
    assert (span.attributes or {})["kling_async.outcome"] == "unfollowed"


async def test_a_request_refused_before_any_task_ends_not_created(
    exporter: InMemorySpanExporter,
) -> None:
    """A create that fails for good (5000, no task found, no attempt left) ends its span,
    outcome not_created, in error."""
    faults = Faults(error_before_create=1.0)
    async with (
        Sandbox(api_keys=(API_KEY,), faults=faults) as sb,
        traced(sb, exporter, max_retries=1) as client,
    ):
        [outcome] = await client.run_all([ka.OmniImageRequest(prompt="x")])
    [span] = named(exporter, REQUEST)
    assert isinstance(outcome.error, ka.ServerError)
    assert (span.attributes or {})["kling_async.outcome"] == "not_created"
    assert (span.attributes or {})["error.type"] == "ServerError"
    assert span.status.status_code is StatusCode.ERROR


async def test_requests_over_budget_or_past_the_deadline_end_their_spans_at_once(
    sandbox: Sandbox, exporter: InMemorySpanExporter
) -> None:
    """A request refused by the unit budget ends its span not_created with the error type
    while the client is still open; one cut by the deadline while it waited ends cancelled;
    none is lost."""
    async with traced(sandbox, exporter) as client:
        over = await client.run_all(
            [ka.OmniImageRequest(prompt=f"p{i}") for i in range(3)], budget_units=16
        )
        refused = {
            s.attributes["kling_async.external_task_id"]: s for s in named(exporter, REQUEST)
        }  # type: ignore[index]
        late = await client.run_all(
            [
                ka.OmniVideoRequest(
                    prompt="v", aspect_ratio="16:9", sound="on", model_name="kling-video-o1"
                )
            ]
            * 2,
            budget_units=1000,
            deadline=0.02,
        )
    assert sum(isinstance(o.error, ka.BudgetExceededError) for o in over) == 1
    [span] = [
        s for s in refused.values() if (s.attributes or {})["kling_async.outcome"] != "succeeded"
    ]
    assert (span.attributes or {})["kling_async.outcome"] == "not_created"
    assert (span.attributes or {})["error.type"] == "BudgetExceededError"
    assert any(isinstance(o.error, ka.DeadlineExceededError) for o in late)
    assert len(named(exporter, REQUEST)) == 5  # three, then two: none dropped


async def test_a_poller_belongs_to_no_request(
    sandbox: Sandbox, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list poller started by the first create runs in no span: not that request's (it
    serves every request, long after that one ended) and not the caller's."""
    current: list[trace.Span] = []
    poll_kind = Tracker._poll_kind

    async def watched(self: Tracker, kind: ka.Kind) -> None:
        current.append(trace.get_current_span())
        await poll_kind(self, kind)

    monkeypatch.setattr(Tracker, "_poll_kind", watched)
    client = traced(sandbox, exporter)
    tracer = client._counters.telemetry._tracer  # type: ignore[union-attr]  # the same provider
    async with client:
        with tracer.start_as_current_span("campaign"):
            await client.run_all([ka.OmniImageRequest(prompt=f"p{i}") for i in range(4)])
    assert current and all(not span.get_span_context().is_valid for span in current)
    polls = named(exporter, POLL)
    assert polls and all(p.parent is None for p in polls)


def test_the_client_works_without_opentelemetry() -> None:
    """With opentelemetry not importable, the client runs a stream and traces nothing."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["opentelemetry"] = None  # ``import opentelemetry`` raises ImportError
        import anyio
        import kling_async as ka
        from kling_async.testing import Sandbox

        async def main():
            async with Sandbox(api_keys=({API_KEY!r},), image_duration=0.05) as sb:
                async with ka.KlingClient(
                    api_key={API_KEY!r}, base_url=sb.base_url, image_poll_interval=0.05
                ) as client:
                    assert client._counters.telemetry is None
                    outcomes = await client.run_all(
                        [ka.OmniImageRequest(prompt=f"p{{i}}") for i in range(3)]
                    )
                    assert all(o.ok for o in outcomes)
                    print(client.stats().tasks_succeeded)
            assert not any(m.startswith("opentelemetry.") for m in sys.modules)

        anyio.run(main)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3"


async def test_requests_answered_from_the_journal_have_short_spans_and_count_nothing(
    sandbox: Sandbox, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    """Run again on a journal, finished requests get a span queued → ended (succeeded), and
    the second client's stats count them as resumed, not as tasks it followed or paid."""
    requests = [ka.OmniImageRequest(prompt=f"p{i}", external_task_id=f"job-{i}") for i in range(2)]
    journal = tmp_path / "journal.sqlite"
    async with traced(sandbox, exporter, journal=journal) as client:
        assert all(o.ok for o in await client.run_all(requests))
    exporter.clear()
    async with traced(sandbox, exporter, journal=journal) as again:
        assert all(o.ok for o in await again.run_all(requests))
    spans = named(exporter, REQUEST)
    assert [[e.name for e in s.events] for s in spans] == [["queued", "ended"]] * 2
    assert {(s.attributes or {})["kling_async.outcome"] for s in spans} == {"succeeded"}
    stats = again.stats()
    assert (stats.resumed, stats.tasks_succeeded, stats.units_spent) == (2, 0, 0)


async def test_account_costs_retries_are_events_on_the_callers_span(
    exporter: InMemorySpanExporter,
) -> None:
    """account_costs tried again after truncated answers shows each retry as an event on the
    span current when it was called."""
    async with (
        Sandbox(api_keys=(API_KEY,), faults=Faults(malformed_query=1.0)) as sb,
        traced(sb, exporter, max_retries=3) as client,
    ):
        tracer = client._counters.telemetry._tracer  # type: ignore[union-attr]  # same provider
        with tracer.start_as_current_span("budget check"), pytest.raises(ka.ResponseFormatError):
            await client.account_costs()
        assert len(sb.account.query_times) == 3
    [check] = named(exporter, "budget check")
    retries = [e for e in check.events if e.name == "retry"]
    assert [(e.attributes or {}).get("kling_async.attempt") for e in retries] == [1, 2]
    assert {(e.attributes or {}).get("error.type") for e in retries} == {"ResponseFormatError"}
