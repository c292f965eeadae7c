"""The real client on the Modellix wire API, against the sandbox's Modellix routes over sockets:
same request models, same results, the team quota, the request budget, submit safety."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import kling_async as ka
from kling_async.testing import Faults, Sandbox

from .conftest import API_KEY, FAST_RETRY

pytestmark = pytest.mark.anyio

IMAGE = {"model_name": "kling-v3-omni", "aspect_ratio": "1:1"}


def _client(sb: Sandbox, **kwargs: object) -> ka.KlingClient:
    options: dict[str, object] = {
        "api_key": API_KEY,
        "provider": "modellix",
        "base_url": sb.modellix_base_url,
        "image_poll_interval": 0.05,
        "video_poll_interval": 0.05,
        "requests_per_minute": 60_000,
        "retry": FAST_RETRY,
    }
    options.update(kwargs)
    return ka.KlingClient(**options)  # type: ignore[arg-type]


@pytest.fixture
async def msb() -> AsyncIterator[Sandbox]:
    """A sandbox with fast tasks and the Modellix team limit of 3."""
    async with Sandbox(
        api_keys=(API_KEY,),
        image_duration=(0.05, 0.2),
        video_duration=(0.1, 0.3),
        modellix_concurrency=3,
        modellix_rpm=100_000,
        seed=77,
    ) as sb:
        yield sb


async def test_image_request_runs_unchanged_on_modellix(msb: Sandbox) -> None:
    """The same OmniImageRequest gives a TaskResult with images on Modellix."""
    request = ka.OmniImageRequest(
        prompt="a red mug", model_name="kling-v3-omni", aspect_ratio="1:1", n=2
    )
    async with _client(msb) as client:
        task = await client.submit(request)
        result = await client.wait(task)
    assert result.status is ka.TaskStatus.SUCCEEDED
    assert len(result.images) == 2 and all(im.url.startswith("http") for im in result.images)
    assert result.expires_at is not None and result.expires_at.tzinfo is not None
    body = msb.tasks[0].body
    assert body["prompt"] == "a red mug" and body["n"] == 2
    assert "model_name" not in body and "external_task_id" not in body


async def test_series_result_lands_in_series_images(msb: Sandbox) -> None:
    """A fixed series comes back in series_images, not images."""
    request = ka.OmniImageRequest(
        prompt="four frames",
        model_name="kling-v3-omni",
        aspect_ratio="1:1",
        result_type="series",
        series_amount=3,
    )
    async with _client(msb, quota=ka.Quota(team=3)) as client:
        result = await client.wait(await client.submit(request))
    assert len(result.series_images) == 3 and not result.images


async def test_video_request_runs_on_modellix(msb: Sandbox) -> None:
    """An OmniVideoRequest gives a TaskResult with one video."""
    request = ka.OmniVideoRequest(
        prompt="a slow dolly shot", model_name="kling-v3-omni", aspect_ratio="16:9", duration=5
    )
    async with _client(msb) as client:
        result = await client.wait(await client.submit(request))
    assert len(result.videos) == 1 and result.videos[0].url.startswith("http")


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("watermark", {"watermark": True}),
        ("callback_url", {"callback_url": "https://example.com/hook"}),
        ("external_task_id", {"external_task_id": "mine-1"}),
    ],
)
async def test_fields_modellix_cannot_carry_are_refused_before_sending(
    msb: Sandbox, field: str, kwargs: dict[str, object]
) -> None:
    """A field Modellix cannot carry is refused with an error naming the provider and the
    field, and no HTTP request is made."""
    request = ka.OmniImageRequest(
        prompt="mug", model_name="kling-v3-omni", aspect_ratio="1:1", **kwargs
    )  # type: ignore[arg-type]
    async with _client(msb) as client:
        with pytest.raises(ka.InvalidInputError) as info:
            await client.submit(request)
        outcomes = await client.run_all([request])
    assert field in str(info.value) and "modellix" in str(info.value).lower()
    assert isinstance(outcomes[0].error, ka.InvalidInputError)
    assert msb.stats().requests == 0


async def test_submit_path_falls_back_after_a_definite_404() -> None:
    """With only the plain path served, the client's first create gets a 404 and the same
    create goes to the other documented path, once: one task exists."""
    async with Sandbox(
        api_keys=(API_KEY,), image_duration=0.05, modellix_submit_paths=("plain",), seed=2
    ) as sb:
        async with _client(sb) as client:
            outcomes = await client.run_all(
                ka.OmniImageRequest(
                    prompt=f"mug {i}", model_name="kling-v3-omni", aspect_ratio="1:1"
                )
                for i in range(3)
            )
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert sb.stats().creates == 3


async def test_team_limit_is_kept_and_429_concurrency_is_requeued(msb: Sandbox) -> None:
    """A client that believes the team has 6 slots meets the sandbox's 3: the 429
    concurrency answers re-queue the requests and never reach an outcome."""
    requests = [
        ka.OmniImageRequest(prompt=f"p{i}", model_name="kling-v3-omni", aspect_ratio="1:1")
        for i in range(9)
    ]
    async with _client(msb, quota=ka.Quota(team=6)) as client:
        outcomes = await client.run_all(requests)
        requeued = client.stats().requeued_1303
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    stats = msb.stats()
    assert stats.creates == 9 and stats.concurrency_429 == requeued > 0


async def test_requests_stay_within_the_budget() -> None:
    """With a budget of 600 requests/minute (10/s) against a sandbox allowing 10 per 1 s
    window, no 429 is ever answered and no window holds more than 10 requests."""
    async with Sandbox(
        api_keys=(API_KEY,),
        image_duration=(0.2, 0.6),
        modellix_concurrency=3,
        modellix_rpm=10,
        modellix_rpm_window=1.0,
        seed=5,
    ) as sb:
        async with _client(sb, requests_per_minute=600) as client:
            outcomes = await client.run_all(
                ka.OmniImageRequest(prompt=f"p{i}", model_name="kling-v3-omni", aspect_ratio="1:1")
                for i in range(8)
            )
        stats = sb.stats()
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert stats.rate_limited_429 == 0
    assert stats.peak_requests_per_window <= 10


async def test_a_rate_limit_answer_is_honoured_not_surfaced() -> None:
    """Without a client budget, the sandbox's 429 rate-limit answers (with Retry-After) delay
    the work but never reach an outcome."""
    async with Sandbox(
        api_keys=(API_KEY,),
        image_duration=0.05,
        modellix_rpm=6,
        modellix_rpm_window=0.5,
        seed=6,
    ) as sb:
        async with _client(sb) as client:
            outcomes = await client.run_all(
                ka.OmniImageRequest(prompt=f"p{i}", model_name="kling-v3-omni", aspect_ratio="1:1")
                for i in range(6)
            )
        stats = sb.stats()
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert stats.rate_limited_429 > 0 and stats.creates == 6


@pytest.mark.parametrize("fault", ["error_after_create", "drop_after_create"])
async def test_an_ambiguous_create_is_never_sent_again(fault: str) -> None:
    """A create whose answer is lost ends as OutcomeUnknownError, and is not re-sent: the
    sandbox holds exactly one task."""
    async with Sandbox(
        api_keys=(API_KEY,), image_duration=0.05, faults=Faults(**{fault: 1.0}), seed=8
    ) as sb:
        async with _client(sb) as client:
            (outcome,) = await client.run_all(
                [ka.OmniImageRequest(prompt="mug", model_name="kling-v3-omni", aspect_ratio="1:1")]
            )
        assert isinstance(outcome.error, ka.OutcomeUnknownError)
        assert outcome.error.provider == "modellix"
        assert sb.stats().create_attempts == 1 and sb.stats().creates == 1


async def test_journal_resume_with_keys_creates_nothing_twice(msb: Sandbox, tmp_path: Path) -> None:
    """Keys name journal entries on Modellix: a second run of the same requests answers from
    the journal without creating anything."""
    requests = [
        ka.OmniImageRequest(prompt=f"p{i}", model_name="kling-v3-omni", aspect_ratio="1:1")
        for i in range(4)
    ]
    journal = tmp_path / "journal.sqlite"
    for _ in range(2):
        async with _client(msb, journal=journal) as client:
            outcomes = await client.run_all(requests, keys=lambda i, _: f"line-{i}")
        assert all(o.ok for o in outcomes)
        assert [o.task.external_task_id for o in outcomes if o.task] == [
            f"line-{i}" for i in range(4)
        ]
    assert msb.stats().creates == 4


def test_modellix_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """MODELLIX_API_KEY is the fallback key; without it the error says how to give one."""
    monkeypatch.delenv("MODELLIX_API_KEY", raising=False)
    monkeypatch.delenv("KLING_API_KEY", raising=False)
    with pytest.raises(ValueError, match="MODELLIX_API_KEY"):
        ka.KlingClient(provider="modellix")
    monkeypatch.setenv("MODELLIX_API_KEY", "mx-key")
    client = ka.KlingClient(provider="modellix")
    assert client.base_url == "https://api.modellix.ai/api/v1"


async def test_a_failed_task_carries_the_reason_from_the_envelope() -> None:
    """modellix_api.md §2: a failed task's reason sits in the envelope's ``message``; it
    reaches the outcome's TaskFailedError."""
    sandbox = Sandbox(api_keys=(API_KEY,), image_duration=0.05, fail_rate=1.0, seed=3)
    async with sandbox as sb, _client(sb) as client:
        (outcome,) = await client.run_all([ka.OmniImageRequest(prompt="mug", **IMAGE)])
    assert isinstance(outcome.error, ka.TaskFailedError)
    assert str(outcome.error) not in ("", "task failed")
    assert "fail_rate" in str(outcome.error), str(outcome.error)
