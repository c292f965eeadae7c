"""``kling_async.sync.KlingClient``: the blocking client against a sandbox over sockets on
127.0.0.1. The sandbox runs on an event loop in a thread of its own, so a test may block its
own thread, or its own running event loop, on the client as a notebook does."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from PIL import Image

import kling_async as ka
from kling_async.sync import KlingClient
from kling_async.testing import Sandbox, SandboxStats, TaskRecord

from .conftest import API_KEY


class ThreadSandbox:
    """A :class:`Sandbox` on a loop in another thread; its figures read in that loop."""

    def __init__(self, portal: BlockingPortal, sandbox: Sandbox) -> None:
        self.portal = portal
        self.base_url = sandbox.base_url
        self._sandbox = sandbox

    def stats(self) -> SandboxStats:
        return self.portal.call(self._sandbox.stats)

    def tasks(self) -> list[TaskRecord]:
        return self.portal.call(lambda: self._sandbox.tasks)


@contextmanager
def _threaded_sandbox(**options: Any) -> Iterator[ThreadSandbox]:
    with start_blocking_portal() as portal:
        sandbox = portal.call(functools.partial(Sandbox, api_keys=(API_KEY,), seed=1234, **options))
        with portal.wrap_async_context_manager(sandbox):
            yield ThreadSandbox(portal, sandbox)


@pytest.fixture
def sandbox_thread() -> Iterator[ThreadSandbox]:
    """A sandbox with fast tasks (images 0.05–0.4 s) in a thread of its own."""
    with _threaded_sandbox(
        quota={"image": 9, "video": 5}, image_duration=(0.05, 0.4), video_duration=(0.1, 0.3)
    ) as sandbox:
        yield sandbox


@pytest.fixture
def client(sandbox_thread: ThreadSandbox) -> Iterator[KlingClient]:
    """A sync client on the threaded sandbox, polling fast."""
    with KlingClient(
        api_key=API_KEY,
        base_url=sandbox_thread.base_url,
        quota=ka.Quota(image=9, video=5),
        image_poll_interval=0.02,
        video_poll_interval=0.02,
    ) as c:
        yield c


def _sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kling-async-sync"]


def test_the_options_are_the_async_clients() -> None:
    """The constructor takes exactly the async client's keyword arguments and defaults."""
    sync_params = list(inspect.signature(KlingClient).parameters.values())
    assert sync_params == list(inspect.signature(ka.KlingClient).parameters.values())


VERBS = ("submit", "get", "wait", "stream", "run_all", "download", "check", "quota_snapshot")


@pytest.mark.parametrize("verb", [*VERBS, "stats", "account_costs"])
def test_every_verb_takes_the_async_verbs_arguments(verb: str) -> None:
    """The twins cannot drift: each sync verb has the async verb's parameters, by name and
    default, so an argument added to one and not the other fails here."""

    def params(func: object) -> list[tuple[str, object]]:
        found = inspect.signature(func).parameters.values()  # type: ignore[arg-type]
        return [(p.name, p.default) for p in found]

    assert params(getattr(KlingClient, verb)) == params(getattr(ka.KlingClient, verb))


def test_budget_and_progress_reach_the_async_stream(client: KlingClient) -> None:
    """budget_units and on_progress work through the sync client: two one-image requests at
    8 units under a 10-unit budget make one task; progress ends with finished=True."""
    seen: list[ka.Progress] = []
    requests = [ka.OmniImageRequest(prompt="a red chair") for _ in range(2)]
    outcomes = client.run_all(requests, budget_units=10, on_progress=seen.append)
    assert outcomes[0].ok or outcomes[1].ok
    assert sum(isinstance(o.error, ka.BudgetExceededError) for o in outcomes) == 1
    assert seen and seen[-1].finished and seen[-1].units_spent == 8


def test_account_costs_through_the_sync_client(client: KlingClient) -> None:
    packs = client.account_costs()
    assert packs and all(isinstance(p, ka.ResourcePack) for p in packs)


def test_bad_options_raise_at_construction_and_leave_no_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad option raises the async client's ValueError at once, with no thread left."""
    monkeypatch.delenv("KLING_API_KEY", raising=False)
    monkeypatch.delenv("KLING_ACCESS_KEY", raising=False)
    with pytest.raises(ValueError, match="no credentials"):
        KlingClient()
    with pytest.raises(ValueError, match="lookahead: 0"):
        KlingClient(api_key="k", lookahead=0)
    with pytest.raises(ValueError, match="callbacks"):
        KlingClient(api_key="k", callbacks=object())  # type: ignore[arg-type]
    assert _sync_threads() == []


def test_submit_wait_get(client: KlingClient) -> None:
    """submit() creates a task, wait() returns its images, get() finds it by either id."""
    task = client.submit(ka.OmniImageRequest(prompt="a red mug", n=2, external_task_id="mug-1"))
    assert isinstance(task, ka.Task) and task.cost == 2
    result = client.wait(task)
    assert result.status is ka.TaskStatus.SUCCEEDED and len(result.images) == 2
    assert client.get(task.task_id).task_id == client.get("mug-1").task_id == task.task_id
    assert client.wait("mug-1").images == result.images


def test_api_errors_are_the_sdks_own(client: KlingClient) -> None:
    """An unknown id raises the SDK's InvalidRequestError (code 1203), not a wrapper."""
    with pytest.raises(ka.InvalidRequestError) as info:
        client.get("no-such-task")
    assert info.value.code == 1203 and info.value.http_status == 404


def test_invalid_input_sends_nothing(
    client: KlingClient, sandbox_thread: ThreadSandbox, tmp_path: Path
) -> None:
    """A too-small local image raises InvalidInputError and no HTTP request is made."""
    small = tmp_path / "tiny.png"
    Image.new("RGB", (100, 100)).save(small)
    before = sandbox_thread.stats().requests
    with pytest.raises(ka.InvalidInputError, match=r"image_list\[0\].*300 px"):
        client.submit(ka.OmniImageRequest(prompt="x", image_list=[small]))
    assert sandbox_thread.stats().requests == before


def test_check_refuses_what_the_wire_api_cannot_carry(sandbox_thread: ThreadSandbox) -> None:
    """check() raises the async client's InvalidInputError for a field Modellix lacks."""
    with KlingClient(
        api_key=API_KEY, base_url=sandbox_thread.base_url + "/api/v1", provider="modellix"
    ) as client:
        client.check(ka.OmniImageRequest(prompt="fine"))
        with pytest.raises(ka.InvalidInputError, match="watermark"):
            client.check(ka.OmniImageRequest(prompt="x", watermark=True))
    assert sandbox_thread.stats().requests == 0


def test_stream_yields_in_completion_order(
    client: KlingClient, sandbox_thread: ThreadSandbox
) -> None:
    """stream() gives one Outcome per request, in the order the server ended the tasks."""
    requests = [ka.OmniImageRequest(prompt=f"shot {i}", n=1 + i % 3) for i in range(12)]
    with client.stream(requests) as outcomes:
        seen = list(outcomes)
    assert sorted(o.index for o in seen) == list(range(12)) and all(o.ok for o in seen)
    ends = {t.task_id: t.ends_at for t in sandbox_thread.tasks()}
    finish = [ends[o.task.task_id] for o in seen]  # type: ignore[union-attr]
    assert all(b >= a - 0.1 for a, b in itertools.pairwise(finish))  # a poll of slack
    assert [o.index for o in seen] != list(range(12))  # durations differ: not input order


def test_run_all_returns_input_order(client: KlingClient) -> None:
    """run_all() returns the outcomes in input order, from a generator as from a list."""
    requests = [ka.OmniImageRequest(prompt=f"p{i}", n=(i % 4) + 1) for i in range(8)]
    assert [o.request for o in client.run_all(requests)] == requests
    assert [o.request for o in client.run_all(r for r in requests)] == requests


def test_download_writes_the_files(client: KlingClient, tmp_path: Path) -> None:
    """download() saves each image of a result as a PNG in the folder."""
    result = client.wait(client.submit(ka.OmniImageRequest(prompt="mug", n=2)))
    saved = client.download(result, tmp_path / "out", stem="mug")
    assert [s.path.name for s in saved] == ["mug-image-0.png", "mug-image-1.png"]
    assert all(s.path.read_bytes()[:4] == b"\x89PNG" for s in saved)


def test_quota_snapshot_shows_the_pool(client: KlingClient) -> None:
    """quota_snapshot() reports the image pool, all slots free once the task ended."""
    client.wait(client.submit(ka.OmniImageRequest(prompt="mug", n=3)))
    [snapshot] = client.quota_snapshot().values()
    assert snapshot.in_use == 0 and snapshot.peak == 3


def test_leaving_a_stream_early_leaves_nothing_running(
    client: KlingClient, sandbox_thread: ThreadSandbox
) -> None:
    """Leaving stream() early stops creating; created tasks end and free their slots; the
    loop runs no more tasks than before the stream."""
    client.wait(client.submit(ka.OmniImageRequest(prompt="warm-up")))
    portal = client._portal
    baseline = portal.call(lambda: len(asyncio.all_tasks()))
    pulled = 0

    def endless() -> Iterator[ka.OmniImageRequest]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield ka.OmniImageRequest(prompt=f"p{i}", n=3)

    with client.stream(endless()) as outcomes:
        first = next(outcomes)
    assert first.ok
    created = sandbox_thread.stats().creates
    deadline = time.monotonic() + 5
    while any(s.in_use for s in client.quota_snapshot().values()):
        assert time.monotonic() < deadline, client.quota_snapshot()
        time.sleep(0.02)
    time.sleep(0.2)
    assert sandbox_thread.stats().creates == created < 20 and pulled < 50
    assert portal.call(lambda: len(asyncio.all_tasks())) <= baseline
    with pytest.raises(RuntimeError, match="left"):
        next(outcomes)
    assert client.wait(client.submit(ka.OmniImageRequest(prompt="after"))).images


def test_a_blocking_generator_is_pulled_as_requests_arrive(client: KlingClient) -> None:
    """A generator waiting on a queue.Queue is pulled in a worker thread: each request is
    created when it arrives, here only after the previous outcome was read."""
    arrivals: queue.Queue[ka.OmniImageRequest | None] = queue.Queue()

    def arriving() -> Iterator[ka.OmniImageRequest]:
        while (request := arrivals.get()) is not None:
            yield request

    arrivals.put(ka.OmniImageRequest(prompt="p0"))
    seen = []
    with client.stream(arriving()) as outcomes:
        for outcome in outcomes:
            seen.append(outcome.request.prompt)
            arrivals.put(ka.OmniImageRequest(prompt=f"p{len(seen)}") if len(seen) < 3 else None)
    assert seen == ["p0", "p1", "p2"]


def test_a_run_ending_error_is_raised_by_the_iteration(sandbox_thread: ThreadSandbox) -> None:
    """Bad credentials raise AuthenticationError from the loop over outcomes; an item that is
    not a request raises the async client's TypeError."""
    requests = [ka.OmniImageRequest(prompt="a")]
    with (
        KlingClient(api_key="wrong", base_url=sandbox_thread.base_url) as client,
        client.stream(requests) as outcomes,
        pytest.raises(ka.AuthenticationError),
    ):
        list(outcomes)
    with KlingClient(api_key=API_KEY, base_url=sandbox_thread.base_url) as client:
        items = (x for x in [ka.OmniImageRequest(prompt="a"), "not a request"])
        with pytest.raises(TypeError, match=r"requests\[1\]"):
            client.run_all(items)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_caller_inside_a_running_event_loop(sandbox_thread: ThreadSandbox) -> None:
    """Called from a coroutine (as in Jupyter), the client runs on its own loop and works."""
    with KlingClient(
        api_key=API_KEY, base_url=sandbox_thread.base_url, image_poll_interval=0.02
    ) as client:
        result = client.wait(client.submit(ka.OmniImageRequest(prompt="in a loop")))
        assert result.status is ka.TaskStatus.SUCCEEDED
        with client.stream([ka.OmniImageRequest(prompt=f"s{i}") for i in range(3)]) as out:
            assert len(list(out)) == 3
    await anyio.lowlevel.checkpoint()  # the caller's loop is intact


def test_a_caller_under_asyncio_run(sandbox_thread: ThreadSandbox) -> None:
    """A main() run by asyncio.run may call the blocking client directly."""

    async def main() -> list[ka.Outcome]:
        with KlingClient(
            api_key=API_KEY, base_url=sandbox_thread.base_url, image_poll_interval=0.02
        ) as client:
            return client.run_all([ka.OmniImageRequest(prompt=f"p{i}") for i in range(4)])

    outcomes = asyncio.run(main())
    assert [o.index for o in outcomes] == [0, 1, 2, 3] and all(o.ok for o in outcomes)


def test_threads_share_one_client(client: KlingClient, sandbox_thread: ThreadSandbox) -> None:
    """Calls from several threads at once share the one loop and its quota."""

    def one(i: int) -> ka.TaskResult:
        return client.wait(client.submit(ka.OmniImageRequest(prompt=f"t{i}", n=3)))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert all(r.status is ka.TaskStatus.SUCCEEDED for r in results)
    assert len({r.task_id for r in results}) == 8
    assert sandbox_thread.stats().rejected_1303 == 0  # never over the quota of 9


def test_close_is_idempotent_and_use_after_close_is_refused(
    sandbox_thread: ThreadSandbox,
) -> None:
    """close() twice is fine, stops the loop's thread, and every later call raises."""
    client = KlingClient(api_key=API_KEY, base_url=sandbox_thread.base_url)
    client.submit(ka.OmniImageRequest(prompt="x"))
    client.close()
    client.close()
    assert _sync_threads() == []
    with pytest.raises(RuntimeError, match="closed"):
        client.submit(ka.OmniImageRequest(prompt="y"))
    with pytest.raises(RuntimeError, match="closed"):
        client.check(ka.OmniImageRequest(prompt="y"))
    with pytest.raises(RuntimeError, match="closed"), client:
        pass


def test_close_cancels_a_call_waiting_in_another_thread() -> None:
    """A wait() blocked in another thread raises RuntimeError when the client is closed."""
    with _threaded_sandbox(image_duration=60.0) as sandbox:
        client = KlingClient(api_key=API_KEY, base_url=sandbox.base_url)
        task = client.submit(ka.OmniImageRequest(prompt="x"))
        errors: list[BaseException] = []

        def waiter() -> None:
            try:
                client.wait(task)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()  # the task runs for a minute
        client.close()
        thread.join(5)
        assert not thread.is_alive()
        assert [type(e) for e in errors] == [RuntimeError], errors
        assert "closed while this call waited" in str(errors[0])


def test_an_interrupt_cancels_the_call_it_interrupts() -> None:
    """Ctrl-C during wait() raises KeyboardInterrupt in the caller and cancels the wait in
    the loop; the client stays usable."""
    with (
        _threaded_sandbox(image_duration=60.0) as sandbox,
        KlingClient(api_key=API_KEY, base_url=sandbox.base_url) as client,
    ):
        task = client.submit(ka.OmniImageRequest(prompt="slow"))
        portal = client._portal
        baseline = portal.call(lambda: len(asyncio.all_tasks()))
        main = threading.main_thread().ident
        assert main == threading.get_ident()  # a signal interrupts the main thread only
        timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            client.wait(task)
        timer.join()
        time.sleep(0.1)
        assert portal.call(lambda: len(asyncio.all_tasks())) <= baseline
        assert not client.get(task).status.is_terminal  # the client still answers


def test_a_client_never_closed_warns_and_does_not_hold_up_exit() -> None:
    """A forgotten client warns with ResourceWarning when collected, and the interpreter
    still exits at once (the loop's thread is a daemon)."""
    code = (
        "import gc, kling_async as ka\n"
        "from kling_async.sync import KlingClient\n"
        "client = KlingClient(api_key='k', base_url='http://127.0.0.1:9')\n"
        "client.__enter__()\n"
        "client.check(ka.OmniImageRequest(prompt='x'))\n"
        "del client\n"
        "gc.collect()\n"
        "print('end of script')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "end of script\n"  # a thread holding exit up meets the timeout
    assert "ResourceWarning: kling_async.sync.KlingClient was not closed" in proc.stderr


def test_a_request_generator_may_call_the_client(client: KlingClient) -> None:
    """A generator given to stream() runs in a worker thread, so it may call the client (here
    check()); a keys function runs in the client's thread, where a call raises RuntimeError."""

    def checked() -> Iterator[ka.OmniImageRequest]:
        for i in range(3):
            request = ka.OmniImageRequest(prompt=f"p{i}")
            client.check(request)
            yield request

    assert all(o.ok for o in client.run_all(checked()))

    def calling_key(index: int, request: ka.Request) -> str:
        client.check(request)
        return f"key-{index}"

    with pytest.raises(RuntimeError):
        client.run_all([ka.OmniImageRequest(prompt="k")], keys=calling_key)
    assert client.run_all([ka.OmniImageRequest(prompt="after")])[0].ok
