"""Wire-level tests: the real client against the sandbox over sockets on 127.0.0.1."""

from __future__ import annotations

import base64
import itertools
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

import kling_async as ka
from kling_async.testing import Sandbox

from .conftest import API_KEY

pytestmark = pytest.mark.anyio


def _png(path: Path, size: tuple[int, int] = (400, 400)) -> Path:
    Image.new("RGB", size, (200, 120, 40)).save(path)
    return path


async def test_submit_and_wait_returns_n_images(client: ka.KlingClient) -> None:
    """submit() creates a task and wait() returns its n images."""
    task = await client.submit(ka.OmniImageRequest(prompt="a red mug", n=3))
    assert task.kind == "image" and task.cost == 3 and task.external_task_id
    result = await client.wait(task)
    assert result.status is ka.TaskStatus.SUCCEEDED
    assert [im.index for im in result.images] == [0, 1, 2]
    assert all(im.url.startswith("http://127.0.0.1") for im in result.images)
    assert result.created_at is not None and result.created_at.tzinfo is not None


async def test_get_by_task_id_and_external_task_id(client: ka.KlingClient) -> None:
    """get() finds a task by task_id and by the caller's external_task_id."""
    task = await client.submit(ka.OmniImageRequest(prompt="a mug", external_task_id="mug-01"))
    await client.wait(task)
    by_id = await client.get(task.task_id)
    by_ext = await client.get("mug-01")
    assert by_id.task_id == by_ext.task_id == task.task_id
    assert by_ext.external_task_id == "mug-01"


async def test_get_unknown_task_raises_invalid_request(client: ka.KlingClient) -> None:
    """An unknown id is an InvalidRequestError carrying Kling's code 1203."""
    with pytest.raises(ka.InvalidRequestError) as info:
        await client.get("no-such-task")
    assert info.value.code == 1203 and info.value.http_status == 404


async def test_stream_yields_every_outcome_in_completion_order(
    client: ka.KlingClient, sandbox: Sandbox
) -> None:
    """stream() yields one Outcome per request, in the order the server finished them."""
    requests = [ka.OmniImageRequest(prompt=f"shot {i}", n=1 + i % 3) for i in range(12)]
    seen: list[ka.Outcome] = []
    async with client.stream(requests) as outcomes:
        async for outcome in outcomes:
            seen.append(outcome)
    assert sorted(o.index for o in seen) == list(range(12))
    assert all(o.ok and len(o.result.images) == o.request.n for o in seen)  # type: ignore[union-attr]
    ends = {t.task_id: t.ends_at for t in sandbox.tasks}
    finish_times = [ends[o.task.task_id] for o in seen]  # type: ignore[union-attr]
    # Completion order: a later outcome never belongs to a task that ended much earlier
    # (allowing one poll interval of slack).
    assert all(b >= a - 0.15 for a, b in itertools.pairwise(finish_times))


async def test_run_all_returns_input_order(client: ka.KlingClient) -> None:
    """run_all() returns the outcomes in input order."""
    requests = [ka.OmniImageRequest(prompt=f"p{i}", n=(i % 4) + 1) for i in range(8)]
    outcomes = await client.run_all(requests)
    assert [o.index for o in outcomes] == list(range(8))
    assert [o.request for o in outcomes] == requests


async def test_quota_full_is_requeued_never_an_outcome_error(sandbox: Sandbox) -> None:
    """With a client quota above the server's, 1303s happen but never reach an Outcome."""
    async with ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        quota=ka.Quota(image=40),
        image_poll_interval=0.05,
    ) as client:
        requests = [ka.OmniImageRequest(prompt=f"p{i}", n=3) for i in range(15)]
        outcomes = await client.run_all(requests)
    stats = sandbox.stats()
    assert all(o.ok for o in outcomes), [str(o.error) for o in outcomes if not o.ok]
    assert stats.rejected_1303 > 0 and client.stats().requeued_1303 == stats.rejected_1303
    assert stats.creates == 15
    assert stats.pools["kling-image-o1:image"].peak <= 9


async def test_slots_never_exceed_quota_and_are_used(
    client: ka.KlingClient, sandbox: Sandbox
) -> None:
    """At quota 9 the client never triggers a 1303 and the server's peak stays ≤ 9."""
    requests = [
        ka.OmniImageRequest(prompt=f"p{i}", model_name="kling-v3-omni", aspect_ratio="1:1", n=n)
        for i, n in enumerate([1, 4, 2, 3, 1, 2, 4, 1, 3, 2])
    ]
    outcomes = await client.run_all(requests)
    assert all(o.ok for o in outcomes)
    pool = sandbox.stats().pools["kling-v3-omni:image"]
    assert sandbox.stats().rejected_1303 == 0
    assert 4 <= pool.peak <= 9


async def test_series_results_fill_series_images(client: ka.KlingClient) -> None:
    """A fixed series returns series_amount series_images; an auto series 2–9 of them."""
    fixed = ka.OmniImageRequest(
        prompt="four seasons",
        model_name="kling-v3-omni",
        aspect_ratio="16:9",
        result_type="series",
        series_amount=4,
    )
    auto = attrs_evolve(fixed, series_amount="auto")
    outcomes = await client.run_all([fixed, auto])
    assert [o.ok for o in outcomes] == [True, True]
    fixed_result, auto_result = (o.result for o in outcomes)
    assert fixed_result is not None and auto_result is not None
    assert len(fixed_result.series_images) == 4 and fixed_result.images == ()
    assert 2 <= len(auto_result.series_images) <= 9


def attrs_evolve(request: ka.OmniImageRequest, **changes: object) -> ka.OmniImageRequest:
    import attrs

    return attrs.evolve(request, **changes)  # type: ignore[arg-type]


async def test_local_image_is_sent_as_raw_base64(
    client: ka.KlingClient, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A local reference image reaches the server as raw base64 (no data: prefix)."""
    photo = _png(tmp_path / "bottle.png")
    task = await client.submit(ka.OmniImageRequest(prompt="like <<<image_1>>>", image_list=[photo]))
    body = next(t.body for t in sandbox.tasks if t.task_id == task.task_id)
    sent = body["image_list"][0]["image"]
    assert not sent.startswith("data:")
    assert base64.b64decode(sent) == photo.read_bytes()


async def test_video_with_first_frame_and_downloads(
    client: ka.KlingClient, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A first-frame video runs to a real MP4 on disk; the frame is sent as image_url."""
    frame = _png(tmp_path / "frame.png", (640, 360))
    request = ka.OmniVideoRequest(
        prompt="the bottle turns",
        model_name="kling-v3-omni",
        image_list=[ka.VideoImage(image=frame, type="first_frame")],
        duration=5,
    )
    [outcome] = await client.run_all([request])
    assert outcome.ok and outcome.result is not None
    body = next(t.body for t in sandbox.tasks if t.task_id == outcome.task.task_id)  # type: ignore[union-attr]
    assert body["image_list"][0]["type"] == "first_frame"
    assert body["duration"] == "5"
    saved = await client.download(outcome.result, tmp_path / "out", stem="clip")
    assert [s.path.name for s in saved] == ["clip-video-0.mp4"]
    assert saved[0].path.read_bytes()[4:8] == b"ftyp"


async def test_download_writes_png_files(client: ka.KlingClient, tmp_path: Path) -> None:
    """download() writes each image as a complete PNG with an SDK-made name."""
    task = await client.submit(ka.OmniImageRequest(prompt="mug", n=2))
    result = await client.wait(task)
    saved = await client.download(result, tmp_path, stem="../../evil")
    assert [s.path.name for s in saved] == ["evil-image-0.png", "evil-image-1.png"]
    for s in saved:
        assert s.path.parent == tmp_path
        assert s.path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(tmp_path.glob(".*.part"))


async def test_invalid_request_sends_nothing(client: ka.KlingClient, sandbox: Sandbox) -> None:
    """A request breaking a rule fails at construction; the server sees no request."""
    before = sandbox.stats().requests
    with pytest.raises(ValueError, match="n: 12"):
        await client.submit(ka.OmniImageRequest(prompt="x", n=12))
    assert sandbox.stats().requests == before


async def test_bad_local_file_is_refused_before_sending(
    client: ka.KlingClient, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A too-small local image raises InvalidInputError and sends no HTTP request."""
    small = _png(tmp_path / "tiny.png", (100, 100))
    before = sandbox.stats().requests
    with pytest.raises(ka.InvalidInputError, match=r"image_list\[0\].*300 px"):
        await client.submit(ka.OmniImageRequest(prompt="x", image_list=[small]))
    assert sandbox.stats().requests == before


async def test_bad_local_file_in_stream_is_an_outcome(
    client: ka.KlingClient, tmp_path: Path
) -> None:
    """In a stream, a bad local file is one failed Outcome; the others still run."""
    small = _png(tmp_path / "tiny.png", (100, 100))
    requests = [
        ka.OmniImageRequest(prompt="ok"),
        ka.OmniImageRequest(prompt="bad", image_list=[small]),
        ka.OmniImageRequest(prompt="ok too"),
    ]
    outcomes = await client.run_all(requests)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert isinstance(outcomes[1].error, ka.InvalidInputError) and outcomes[1].task is None


async def test_failed_task_is_an_outcome_value() -> None:
    """A task the server fails ends as an Outcome with TaskFailedError and its reason."""
    async with (
        Sandbox(api_keys=(API_KEY,), image_duration=0.05, fail_rate=1.0) as sb,
        ka.KlingClient(api_key=API_KEY, base_url=sb.base_url, image_poll_interval=0.05) as client,
    ):
        [outcome] = await client.run_all([ka.OmniImageRequest(prompt="x", n=2)])
        assert not outcome.ok
        assert isinstance(outcome.error, ka.TaskFailedError)
        assert outcome.error.task_id == outcome.task.task_id  # type: ignore[union-attr]
        assert outcome.result is not None and outcome.result.status_message
        assert client.pool("kling-image-o1", "image").in_use == 0


async def test_leaving_stream_early_is_clean(client: ka.KlingClient, sandbox: Sandbox) -> None:
    """Breaking out of stream() cancels what was not created, with no warning or leak."""

    async def endless() -> AsyncIterator[ka.OmniImageRequest]:
        i = 0
        while True:
            yield ka.OmniImageRequest(prompt=f"p{i}", n=3)
            i += 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with client.stream(endless()) as outcomes:
            async for outcome in outcomes:
                assert outcome.ok
                break
    created = sandbox.stats().creates
    assert created < 20
    # The client stays usable and later work still runs.
    task = await client.submit(ka.OmniImageRequest(prompt="after"))
    assert (await client.wait(task)).status is ka.TaskStatus.SUCCEEDED


async def test_stream_pulls_lazily_from_a_generator(sandbox: Sandbox) -> None:
    """stream() pulls from the input only as quota and the lookahead allow."""
    pulled = 0

    def requests():  # type: ignore[no-untyped-def]
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield ka.OmniImageRequest(prompt=f"p{i}", n=9)

    async with (
        ka.KlingClient(
            api_key=API_KEY, base_url=sandbox.base_url, image_poll_interval=0.05, lookahead=4
        ) as client,
        client.stream(requests()) as outcomes,
    ):
        async for _ in outcomes:
            break
    assert pulled <= 4 + 2  # the lookahead window plus the running one(s)


async def test_jwt_auth_with_access_key(sandbox_jwt: Sandbox) -> None:
    """AccessKey + SecretKey sign an HS256 JWT the server accepts."""
    async with ka.KlingClient(
        access_key="ak-test",
        secret_key="sk-secret",
        base_url=sandbox_jwt.base_url,
        image_poll_interval=0.05,
    ) as client:
        task = await client.submit(ka.OmniImageRequest(prompt="x"))
        assert (await client.wait(task)).status is ka.TaskStatus.SUCCEEDED


@pytest.fixture
async def sandbox_jwt() -> AsyncIterator[Sandbox]:
    """A sandbox that knows one AccessKey/SecretKey pair."""
    async with Sandbox(access_keys={"ak-test": "sk-secret"}, image_duration=0.05) as sb:
        yield sb


async def test_bad_key_raises_authentication_error(sandbox: Sandbox) -> None:
    """A refused key raises AuthenticationError (code 1002) from submit()."""
    async with ka.KlingClient(api_key="wrong", base_url=sandbox.base_url) as client:
        with pytest.raises(ka.AuthenticationError) as info:
            await client.submit(ka.OmniImageRequest(prompt="x"))
    assert info.value.code in (1000, 1002) and info.value.http_status == 401


async def test_bad_key_in_stream_propagates(sandbox: Sandbox) -> None:
    """Bad credentials make the whole batch pointless, so stream() raises instead of
    yielding a failed Outcome per request."""
    async with ka.KlingClient(api_key="wrong", base_url=sandbox.base_url) as client:
        with pytest.raises(ka.AuthenticationError):
            await client.run_all([ka.OmniImageRequest(prompt="x")] * 3)


async def test_gateway_path_prefix() -> None:
    """A base URL with a path prefix (a gateway such as https://host/kling) works."""
    async with Sandbox(api_keys=(API_KEY,), path_prefix="/kling", image_duration=0.05) as sb:
        assert sb.base_url.endswith("/kling")
        async with ka.KlingClient(
            api_key=API_KEY, base_url=sb.base_url, image_poll_interval=0.05
        ) as client:
            [outcome] = await client.run_all([ka.OmniImageRequest(prompt="x")])
            assert outcome.ok


async def test_quota_error_for_a_request_larger_than_its_pool(sandbox: Sandbox) -> None:
    """A request costing more than its pool's capacity is a QuotaError outcome, not a hang."""
    async with ka.KlingClient(
        api_key=API_KEY, base_url=sandbox.base_url, quota=ka.Quota(image=4)
    ) as client:
        [outcome] = await client.run_all([ka.OmniImageRequest(prompt="x", n=9)])
    assert isinstance(outcome.error, ka.QuotaError)
    assert sandbox.stats().create_attempts == 0


def test_client_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key or env variables the client refuses to start, saying how to fix it."""
    for var in ("KLING_API_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="KLING_API_KEY"):
        ka.KlingClient()


def test_client_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """KLING_API_KEY and KLING_BASE_URL are read from the environment; repr hides the key."""
    monkeypatch.setenv("KLING_API_KEY", "sk-super-secret-value")
    monkeypatch.setenv("KLING_BASE_URL", "https://gateway.example/kling/")
    client = ka.KlingClient()
    assert client.base_url == "https://gateway.example/kling"
    assert "sk-super-secret" not in repr(client)


async def test_closed_client_raises_runtime_error(sandbox: Sandbox) -> None:
    """Using a client outside its async with block raises RuntimeError."""
    client = ka.KlingClient(api_key=API_KEY, base_url=sandbox.base_url)
    with pytest.raises(RuntimeError, match="not open"):
        await client.get("x")
    async with client:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await client.get("x")
    await client.aclose()  # idempotent


async def test_many_tasks_are_polled_with_list_queries(
    client: ka.KlingClient, sandbox: Sandbox
) -> None:
    """With several tasks in flight, one list query per tick reports on all of them."""
    requests = [ka.OmniImageRequest(prompt=f"p{i}") for i in range(9)]
    outcomes = await client.run_all(requests)
    assert all(o.ok for o in outcomes)
    stats = sandbox.stats()
    assert stats.list_queries > 0 and client.stats().list_queries == stats.list_queries
    assert stats.queries + stats.list_queries < 3 * len(requests)


async def series_then_auto(
    sandbox: Sandbox, quota: ka.Quota
) -> tuple[list[ka.Outcome], ka.ClientStats]:
    """Run a 6-image fixed series and then an auto series of the same prompt on ``sandbox``."""
    async with ka.KlingClient(
        api_key=API_KEY, base_url=sandbox.base_url, quota=quota, image_poll_interval=0.05
    ) as client:
        series = ka.OmniImageRequest(
            prompt="p",
            model_name="kling-v3-omni",
            aspect_ratio="1:1",
            result_type="series",
            series_amount=6,
        )
        outcomes = await client.run_all([series, attrs_evolve(series, series_amount="auto")])
    return outcomes, client.stats()


async def test_auto_series_starts_in_the_slots_a_running_task_leaves() -> None:
    """An auto series needs only as many free slots as the count the server draws (§9): with a
    6-slot series running it starts in the 3 slots left, before that series ends."""
    async with Sandbox(
        api_keys=(API_KEY,), quota={"image": 9}, image_duration=1.0, auto_series_range=(2, 3)
    ) as sb:
        outcomes, _ = await series_then_auto(sb, ka.Quota(image=9))
        assert all(o.ok for o in outcomes)
        fixed, auto = sb.tasks
        assert auto.created_at < fixed.ends_at
        assert sb.stats().pools["kling-v3-omni:image"].peak <= 9


async def test_refused_auto_series_asks_for_more_slots_once_patience_is_over() -> None:
    """With hol_patience=0, an auto series refused (1303) in 3 free slots waits for 4 before it
    tries again, instead of trying again in the same 3 at every backoff."""
    async with Sandbox(
        api_keys=(API_KEY,), quota={"image": 9}, image_duration=1.5, auto_series_range=(5, 5)
    ) as sb:
        outcomes, stats = await series_then_auto(sb, ka.Quota(image=9, hol_patience=0))
        assert all(o.ok for o in outcomes)
        assert sb.stats().rejected_1303 == stats.requeued_1303 == 1
        fixed, auto = sb.tasks
        assert auto.created_at >= fixed.ends_at
