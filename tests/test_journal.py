"""The SQLite journal: records survive reopening, and a client resumes from them."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

import kling_async as ka
from kling_async._engine._tracker import Tracker
from kling_async._journal import request_fingerprint
from kling_async.testing import Sandbox

from .conftest import API_KEY

pytestmark = pytest.mark.anyio


async def test_states_are_recorded_in_order_and_survive_reopening(tmp_path: Path) -> None:
    """intent → created → finished → saved is stored on disk and read back after reopening."""
    path = tmp_path / "j.sqlite"
    result = ka.TaskResult(
        task_id="t1",
        external_task_id="e1",
        status=ka.TaskStatus.SUCCEEDED,
        images=(ka.GeneratedImage(index=0, url="http://x/0.png"),),
        units=Decimal("0.1"),  # exact after the round trip: stored as text, not a float
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    async with ka.Journal(path) as journal:
        await journal.record_intent("e1", "fp", "image", "kling-v3-omni")
        assert (await journal.get("e1")).state == "intent"  # type: ignore[union-attr]
        await journal.record_created("e1", "t1", 2)
        await journal.record_finished("e1", result, None)
        await journal.record_saved("e1", ["a.png"])
    async with ka.Journal(path) as journal:
        entry = await journal.get("e1")
    assert entry is not None
    assert (entry.state, entry.task_id, entry.cost, entry.files) == ("saved", "t1", 2, ("a.png",))
    assert entry.result == result and entry.result.units == Decimal("0.1")


async def test_forget_drops_only_intents(tmp_path: Path) -> None:
    """forget() removes an intent whose create certainly failed, never a created task."""
    async with ka.Journal(tmp_path / "j.sqlite") as journal:
        await journal.record_intent("a", "fp", "image", "m")
        await journal.record_intent("b", "fp", "image", "m")
        await journal.record_created("b", "tb", 1)
        await journal.forget("a")
        await journal.forget("b")
        assert await journal.get("a") is None
        assert (await journal.get("b")).task_id == "tb"  # type: ignore[union-attr]


async def test_a_file_that_is_not_a_journal_raises_journal_error(tmp_path: Path) -> None:
    """A corrupt journal file raises JournalError naming the file."""
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ka.JournalError, match=r"j\.sqlite"):
        async with ka.Journal(path):
            pass


async def test_a_database_of_another_shape_is_refused_at_open(tmp_path: Path) -> None:
    """A SQLite file whose ``tasks`` table is not a journal's raises JournalError when opened,
    not half-way through a run."""
    path = tmp_path / "j.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, name TEXT)")
    db.close()
    with pytest.raises(ka.JournalError, match=r"j\.sqlite.*no such column"):
        await ka.Journal(path).open()


async def test_damaged_pages_are_refused_at_open(tmp_path: Path) -> None:
    """A journal whose pages were overwritten raises JournalError when opened."""
    path = tmp_path / "j.sqlite"
    async with ka.Journal(path) as journal:
        for i in range(200):
            await journal.record_intent(f"e{i}", "fp" * 40, "image", "kling-v3-omni")
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 4 * page] = b"\xa5" * (2 * page)  # the table's pages, not the header
    path.write_bytes(bytes(data))
    with pytest.raises(ka.JournalError, match=r"j\.sqlite"):
        await ka.Journal(path).open()


def test_fingerprint_ignores_external_task_id_but_not_content() -> None:
    """The fingerprint changes with the content, not with the external_task_id."""
    a = ka.OmniImageRequest(prompt="x", n=2, external_task_id="one")
    assert request_fingerprint(a) == request_fingerprint(attrs.evolve(a, external_task_id="two"))
    assert request_fingerprint(a) != request_fingerprint(attrs.evolve(a, n=3))


async def test_second_run_with_the_journal_sends_no_request(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Finished requests are answered from the journal: no create and no query the 2nd time."""
    requests = [ka.OmniImageRequest(prompt=f"p{i}", external_task_id=f"job-{i}") for i in range(4)]
    kwargs = {
        "api_key": API_KEY,
        "base_url": sandbox.base_url,
        "image_poll_interval": 0.05,
        "journal": tmp_path / "j.sqlite",
    }
    async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
        first = await client.run_all(requests)
    before = sandbox.stats().requests
    async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
        second = await client.run_all(requests)
        assert client.stats().resumed == 4
    assert sandbox.stats().requests == before
    assert [o.result for o in second] == [o.result for o in first]
    assert all(o.ok for o in second)


async def test_resume_reattaches_to_a_running_task(sandbox: Sandbox, tmp_path: Path) -> None:
    """A task recorded as created is followed to its end, not created again."""
    request = ka.OmniImageRequest(prompt="slow", n=2, external_task_id="job-x")
    journal_path = tmp_path / "j.sqlite"
    async with ka.KlingClient(api_key=API_KEY, base_url=sandbox.base_url) as client:
        task = await client.submit(request)
    # Simulate a crash after the create: the journal knows the task, nothing else does.
    async with ka.Journal(journal_path) as journal:
        await journal.record_intent(
            "job-x", request_fingerprint(request), "image", "kling-image-o1"
        )
        await journal.record_created("job-x", task.task_id, 2)
    async with ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        journal=journal_path,
        image_poll_interval=0.05,
    ) as client:
        [outcome] = await client.run_all([request])
    assert outcome.ok and outcome.task.task_id == task.task_id  # type: ignore[union-attr]
    assert sandbox.stats().creates == 1


async def test_resume_after_an_intent_looks_the_task_up(sandbox: Sandbox, tmp_path: Path) -> None:
    """An intent with no task id (crash mid-create) is looked up by external_task_id: found
    tasks are re-attached, missing ones are created once."""
    sent = ka.OmniImageRequest(prompt="was sent", external_task_id="job-sent")
    lost = ka.OmniImageRequest(prompt="never sent", external_task_id="job-lost")
    journal_path = tmp_path / "j.sqlite"
    async with ka.KlingClient(api_key=API_KEY, base_url=sandbox.base_url) as client:
        await client.submit(sent)
    async with ka.Journal(journal_path) as journal:
        for r in (sent, lost):
            await journal.record_intent(
                r.external_task_id,
                request_fingerprint(r),
                "image",
                r.model_name,  # type: ignore[arg-type]
            )
    async with ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        journal=journal_path,
        image_poll_interval=0.05,
    ) as client:
        outcomes = await client.run_all([sent, lost])
    assert all(o.ok for o in outcomes)
    assert sandbox.stats().creates == 2  # one earlier, one now for the lost request
    assert sorted(t.external_task_id for t in sandbox.tasks) == ["job-lost", "job-sent"]


async def test_changed_request_is_a_conflict(sandbox: Sandbox, tmp_path: Path) -> None:
    """A request whose content changed under the same external_task_id is refused."""
    kwargs = {
        "api_key": API_KEY,
        "base_url": sandbox.base_url,
        "image_poll_interval": 0.05,
        "journal": tmp_path / "j.sqlite",
    }
    async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
        await client.run_all([ka.OmniImageRequest(prompt="v1", external_task_id="job")])
    async with ka.KlingClient(**kwargs) as client:  # type: ignore[arg-type]
        [outcome] = await client.run_all([ka.OmniImageRequest(prompt="v2", external_task_id="job")])
    assert isinstance(outcome.error, ka.JournalConflictError)
    assert sandbox.stats().creates == 1


def test_journal_is_plain_sqlite(tmp_path: Path) -> None:
    """The journal is an ordinary SQLite file a user can inspect."""
    import anyio

    async def make() -> None:
        async with ka.Journal(tmp_path / "j.sqlite") as journal:
            await journal.record_intent("e", "fp", "video", "kling-v3-omni")

    anyio.run(make)
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        assert db.execute("SELECT external_task_id, state FROM tasks").fetchall() == [
            ("e", "intent")
        ]


async def test_resume_never_creates_when_the_lookup_fails(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An intent whose lookup fails (here a 5000) is not taken as "never created": nothing is
    sent, the request ends with the lookup's error, and the intent stays for the next run."""
    request = ka.OmniImageRequest(prompt="maybe sent", external_task_id="job-unsure")
    journal_path = tmp_path / "j.sqlite"
    async with ka.Journal(journal_path) as journal:
        await journal.record_intent(
            "job-unsure", request_fingerprint(request), "image", request.model_name
        )

    async def failing_query(
        self: Tracker, kind: str, task_id: str, *, external: bool = False
    ) -> ka.TaskResult:
        raise ka.ServerError("internal error", code=5000, http_status=500)

    async with ka.KlingClient(
        api_key=API_KEY, base_url=sandbox.base_url, journal=journal_path
    ) as client:
        monkeypatch.setattr(Tracker, "query", failing_query)
        [outcome] = await client.run_all([request])
    assert isinstance(outcome.error, ka.ServerError)
    assert sandbox.stats().create_attempts == 0
    async with ka.Journal(journal_path) as journal:
        assert (await journal.get("job-unsure")).state == "intent"  # type: ignore[union-attr]


@pytest.mark.parametrize("api_standard", ["legacy", "new"])
async def test_a_create_refused_as_a_duplicate_id_adopts_the_task(
    sandbox: Sandbox, tmp_path: Path, api_standard: str
) -> None:
    """Without the journal that knew it, a request whose external_task_id is in use follows
    the existing task (Task.adopted, stats.adopted) instead of failing; nothing is created
    twice, on either Kling standard."""
    request: ka.Request = ka.OmniImageRequest(prompt="mug", external_task_id="job-dup")
    if api_standard == "new":
        request = ka.OmniVideoRequest(
            prompt="mug turns", duration=5, aspect_ratio="16:9", external_task_id="vid-dup"
        )
    kwargs = {
        "api_key": API_KEY,
        "base_url": sandbox.base_url,
        "api_standard": api_standard,
        "image_poll_interval": 0.05,
        "video_poll_interval": 0.05,
    }
    async with ka.KlingClient(**kwargs, journal=tmp_path / "one.sqlite") as client:  # type: ignore[arg-type]
        [first] = await client.run_all([request])
        assert first.ok and first.task is not None and not first.task.adopted
    async with ka.KlingClient(**kwargs, journal=tmp_path / "two.sqlite") as client:  # type: ignore[arg-type]
        [second] = await client.run_all([request])
        assert client.stats().adopted == 1
    assert second.ok, second.error
    assert second.task is not None and second.task.adopted
    assert second.task.task_id == first.task.task_id
    assert sandbox.stats().creates == 1 and sandbox.stats().duplicate_external_ids == 1
