"""``KlingClient.account_costs()`` against the sandbox over sockets: the resource packs, their
window, the charges the sandbox takes from them, the ≤ 1 query per second spacing, Modellix's
refusal and malformed answers."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import kling_async as ka
from kling_async._engine._prices import list_price
from kling_async.testing import Faults, ResourcePackSpec, Sandbox

from .conftest import API_KEY, fast_retry

pytestmark = pytest.mark.anyio

DAY = 24 * 3600.0
UTC = dt.UTC


def client_for(sb: Sandbox, **kwargs: Any) -> ka.KlingClient:
    kwargs.setdefault("image_poll_interval", 0.05)
    kwargs.setdefault("video_poll_interval", 0.05)
    return ka.KlingClient(api_key=API_KEY, base_url=sb.base_url, **kwargs)


def sandbox(**kwargs: Any) -> Sandbox:
    return Sandbox(api_keys=(API_KEY,), image_duration=0.05, video_duration=0.1, seed=7, **kwargs)


async def test_default_packs_are_parsed(client: ka.KlingClient) -> None:
    """The sandbox's default image and video packs arrive as typed, online ResourcePacks."""
    before = dt.datetime.now(UTC)
    packs = await client.account_costs()
    assert [p.name for p in packs] == [
        "Image Generation - 10,000 units",
        "Video Generation - 10,000 units",
    ]
    for pack in packs:
        assert pack.type == "decreasing_total" and pack.status is ka.ResourcePackStatus.ONLINE
        assert pack.total == pack.remaining == Decimal(10_000)
        assert pack.effective_at is not None and pack.invalid_at is not None
        assert pack.effective_at.tzinfo is not None
        assert pack.effective_at < before < pack.invalid_at
        assert len(pack.id) == 32


async def test_remaining_goes_down_by_the_published_price() -> None:
    """Each succeeded task is charged Kling's list price, and its pack's remaining falls by
    that much (the sandbox's default: no 12 h delay)."""
    async with sandbox() as sb, client_for(sb) as client:
        picture = ka.OmniImageRequest(
            prompt="a chair", model_name="kling-v3-omni", resolution="4k", n=2, aspect_ratio="1:1"
        )
        clip = ka.OmniVideoRequest(
            prompt="a parrot",
            model_name="kling-v3-omni",
            sound="on",
            mode="std",
            aspect_ratio="16:9",
            duration=7,
        )
        outcomes = await client.run_all([picture, clip])
        assert all(o.ok for o in outcomes)
        image_units, video_units = (o.result.units for o in outcomes if o.result)
        # 16 units/image at 4K; 0.8 units/s at 720p with native audio
        assert (image_units, video_units) == (Decimal(32), Decimal("5.6"))
        for outcome, units in zip(outcomes, (image_units, video_units), strict=True):
            price = list_price(outcome.request)
            assert price is not None and price.units == units
        image_pack, video_pack = await client.account_costs()
    assert image_pack.remaining == Decimal(10_000) - 32
    assert video_pack.remaining == Decimal("9994.4")


async def test_charges_wait_for_the_remaining_delay() -> None:
    """With ``remaining_delay`` the sandbox shows a charge only that long after the task."""
    async with sandbox(remaining_delay=3600) as sb, client_for(sb) as client:
        await client.wait(await client.submit(ka.OmniImageRequest(prompt="a chair")))
        image_pack, _ = await client.account_costs()
    assert image_pack.remaining == image_pack.total


async def test_a_pack_runs_out_and_the_rest_goes_to_the_next() -> None:
    """A charge larger than a pack's remainder runs it out (``runOut``); the next pack of the
    kind takes the rest."""
    packs = [
        ResourcePackSpec(name="small", kind="image", total=10),
        ResourcePackSpec(name="big", kind="image", total="100.5", type="constant_period"),
    ]
    async with sandbox(resource_packs=packs) as sb, client_for(sb) as client:
        result = await client.wait(await client.submit(ka.OmniImageRequest(prompt="x", n=2)))
        assert result.units == 16
        small, big = await client.account_costs()
    assert (small.remaining, small.status) == (0, ka.ResourcePackStatus.RUN_OUT)
    assert (big.remaining, big.status, big.type) == (
        Decimal("94.5"),
        ka.ResourcePackStatus.ONLINE,
        "constant_period",
    )


async def test_the_window_and_the_name_select_packs() -> None:
    """Packs whose validity overlaps ``start``–``end`` are listed (expired and future ones
    with their status); ``resource_pack_name`` picks one."""
    now = time.time()
    packs = [
        ResourcePackSpec(
            name="old",
            kind="image",
            total=5,
            effective_at=now - 60 * DAY,
            invalid_at=now - 30 * DAY,
        ),
        ResourcePackSpec(name="current", kind="image", total=5),
        ResourcePackSpec(
            name="next",
            kind="video",
            total=5,
            effective_at=now + 10 * DAY,
            invalid_at=now + 40 * DAY,
            purchased_at=now - DAY,
        ),
    ]
    async with sandbox(resource_packs=packs) as sb, client_for(sb) as client:
        everything = await client.account_costs(end=dt.datetime.now(UTC) + dt.timedelta(days=90))
        recent = await client.account_costs(start=dt.datetime.now(UTC) - dt.timedelta(days=1))
        named = await client.account_costs(resource_pack_name="old")
    assert [(p.name, p.status.value) for p in everything] == [
        ("old", "expired"),
        ("current", "online"),
        ("next", "toBeOnline"),
    ]
    upcoming = everything[2]
    assert upcoming.purchased_at is not None and upcoming.effective_at is not None
    assert upcoming.purchased_at < dt.datetime.now(UTC) < upcoming.effective_at
    assert [p.name for p in recent] == ["current"]  # default end: now, before "next"
    assert [p.name for p in named] == ["old"]


async def test_spacing_is_measured_at_the_server() -> None:
    """Three back-to-back calls arrive at the sandbox at least ~1 s apart each."""
    async with sandbox() as sb, client_for(sb) as client:
        for _ in range(3):
            await client.account_costs()
        times = sb.account.query_times
    assert len(times) == 3
    assert all(later - earlier >= 0.98 for earlier, later in itertools.pairwise(times))


async def test_modellix_has_no_resource_pack_query() -> None:
    """On Modellix, account_costs raises NotSupportedError and sends nothing."""
    async with (
        sandbox() as sb,
        ka.KlingClient(
            api_key=API_KEY, base_url=sb.modellix_base_url, provider="modellix"
        ) as client,
    ):
        with pytest.raises(ka.NotSupportedError, match=r"modellix.*account/costs"):
            await client.account_costs()
        assert sb.stats().requests == 0


async def test_bad_arguments_are_refused_before_sending(client: ka.KlingClient) -> None:
    """A naive datetime, a window that ends before it starts or an empty name: ValueError
    naming the field, nothing sent."""
    with pytest.raises(ValueError, match=r"start: .* naive"):
        await client.account_costs(start=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match=r"start: .* is after end"):
        await client.account_costs(
            start=dt.datetime(2026, 2, 1, tzinfo=UTC), end=dt.datetime(2026, 1, 1, tzinfo=UTC)
        )
    with pytest.raises(ValueError, match="resource_pack_name"):
        await client.account_costs(resource_pack_name=" ")


async def test_a_truncated_answer_is_retried_then_raised() -> None:
    """A malformed (truncated) answer is a ResponseFormatError once the retries run out."""
    async with (
        sandbox(faults=Faults(malformed_query=1.0)) as sb,
        client_for(sb, retry=fast_retry(2)) as client,
    ):
        with pytest.raises(ka.ResponseFormatError):
            await client.account_costs()
        assert len(sb.account.query_times) == 2


@pytest.fixture
async def fake_kling() -> AsyncIterator[tuple[list[Any], str, list[dict[str, str]]]]:
    """A server on 127.0.0.1 answering /account/costs with the ``data`` queued in the list,
    and the query parameters of each request it received."""
    answers: list[Any] = []
    seen: list[dict[str, str]] = []

    async def costs(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response(
            {"code": 0, "message": "SUCCEED", "request_id": "r", "data": answers.pop(0)}
        )

    app = web.Application()
    app.router.add_get("/account/costs", costs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield answers, f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


PACK = {
    "resource_pack_name": "Video Generation - 10,000 entries",
    "resource_pack_id": "509f3fd3d4ab4a3f9eec5db27aa44f27",
    "resource_pack_type": "decreasing_total",
    "total_quantity": 200.0,
    "remaining_quantity": 118.0,
    "purchase_time": 1726124664368,
    "effective_time": 1726124664368,
    "invalid_time": 1727366400000,
    "status": "expired",
}


async def test_the_documented_example_parses(
    fake_kling: tuple[list[Any], str, list[dict[str, str]]],
) -> None:
    """Kling's own example request and answer: the window is sent in epoch ms, and the answer
    gives the pack it describes, times as aware UTC."""
    answers, url, seen = fake_kling
    answers.append({"code": 0, "msg": "string", "resource_pack_subscribe_infos": [PACK]})
    async with ka.KlingClient(api_key="k", base_url=url) as client:
        [pack] = await client.account_costs(
            start=dt.datetime.fromtimestamp(1726124664.368, UTC),
            end=dt.datetime.fromtimestamp(1727366400, UTC),
        )
    assert pack == ka.ResourcePack(
        name="Video Generation - 10,000 entries",
        id="509f3fd3d4ab4a3f9eec5db27aa44f27",
        type="decreasing_total",
        total=Decimal(200),
        remaining=Decimal(118),
        status=ka.ResourcePackStatus.EXPIRED,
        purchased_at=dt.datetime(2024, 9, 12, 7, 4, 24, 368000, tzinfo=UTC),
        effective_at=dt.datetime(2024, 9, 12, 7, 4, 24, 368000, tzinfo=UTC),
        invalid_at=dt.datetime(2024, 9, 26, 16, 0, tzinfo=UTC),
    )
    assert seen == [{"start_time": "1726124664368", "end_time": "1727366400000"}]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param(
            {"code": 0, "resource_pack_subscribe_infos": [{**PACK, "remaining_quantity": "lots"}]},
            ka.ResponseFormatError,
            id="bad-quantity",
        ),
        pytest.param(
            {"code": 0, "resource_pack_subscribe_infos": [{**PACK, "status": "paused"}]},
            ka.ResponseFormatError,
            id="unknown-status",
        ),
        pytest.param([PACK], ka.ResponseFormatError, id="not-double-wrapped"),
        pytest.param({"code": 1102, "msg": "arrears"}, ka.AccountError, id="inner-code"),
    ],
)
async def test_malformed_answers_raise(
    fake_kling: tuple[list[Any], str, list[dict[str, str]]], data: Any, error: type[Exception]
) -> None:
    """An answer off the documented shape is a ResponseFormatError (not retried); an inner
    non-zero code is the APIError of that code."""
    answers, url, seen = fake_kling
    answers.append(data)
    async with ka.KlingClient(api_key="k", base_url=url) as client:
        with pytest.raises(error):
            await client.account_costs()
    assert answers == [] and len(seen) == 1  # asked once


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"code": 0, "msg": ""}, id="no-key"),
        pytest.param({"code": 0, "resource_pack_subscribe_infos": None}, id="null"),
        pytest.param({"code": 0, "resource_pack_subscribe_infos": []}, id="empty"),
    ],
)
async def test_an_answer_without_packs_is_no_packs(
    fake_kling: tuple[list[Any], str, list[dict[str, str]]], data: Any
) -> None:
    """An answer whose pack list is missing, null or empty means the account has no packs."""
    answers, url, _ = fake_kling
    answers.append(data)
    async with ka.KlingClient(api_key="k", base_url=url) as client:
        assert await client.account_costs() == []


async def test_the_sandbox_requires_the_window(sandbox: Sandbox) -> None:
    """The sandbox answers 1201 without ``start_time``/``end_time``, as the page requires them."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(sandbox.base_url + "/account/costs", headers=headers) as response:
            body = await response.json()
        assert response.status == 400 and body["code"] == 1201 and "start_time" in body["message"]
        url = sandbox.base_url + "/account/costs?start_time=0&end_time=1"
        async with http.get(url, headers=headers) as response:
            body = await response.json()
    assert body["code"] == 0 and body["data"]["resource_pack_subscribe_infos"] == []
    assert sandbox.stats().requests == 2


FEATURE = ka.ReferenceVideo(video="https://example.com/in.mp4", refer_type="feature")


@pytest.mark.parametrize("standard", ["legacy", "new"])
@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(
            ka.OmniVideoRequest(prompt="p", mode="std", duration=10, aspect_ratio="1:1"),
            id="o1-720p",
        ),
        pytest.param(
            ka.OmniVideoRequest(prompt="p <<<video_1>>>", video_list=[FEATURE], aspect_ratio="1:1"),
            id="o1-video-input",
        ),
        pytest.param(
            ka.OmniVideoRequest(
                prompt="p", model_name="kling-v3-omni", mode="4k", aspect_ratio="1:1"
            ),
            id="3.0-4k",
        ),
        pytest.param(
            ka.OmniVideoRequest(
                prompt="p", model_name="kling-v3-omni", sound="on", duration=9, aspect_ratio="1:1"
            ),
            id="3.0-native-audio",
        ),
        pytest.param(
            ka.OmniVideoRequest(
                prompt="p <<<video_1>>>",
                model_name="kling-v3-omni",
                multi_shot=True,
                shot_type="intelligence",
                video_list=[FEATURE],
                aspect_ratio="1:1",
            ),
            id="3.0-video-input",
        ),
    ],
)
async def test_the_sandbox_charges_the_list_price(
    request_: ka.OmniVideoRequest, standard: str
) -> None:
    """On both Kling standards the sandbox (its own copy of the price page) charges a video
    what ``list_price`` says the page asks."""
    price = list_price(request_)
    assert price is not None
    async with sandbox() as sb, client_for(sb, api_standard=standard) as client:
        result = await client.wait(await client.submit(request_))
    assert result.units == price.units


async def test_the_retry_after_an_expired_jwt_keeps_the_one_per_second_spacing() -> None:
    """After a 1004 (JWT expired) the re-signed second try of account_costs still waits its
    turn: it reaches the server at least ~1 s after the first."""
    arrivals: list[float] = []

    async def costs(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            body = {"code": 1004, "message": "Authorization has expired", "request_id": "r1"}
            return web.json_response(body, status=401)
        data = {"code": 0, "msg": "", "resource_pack_subscribe_infos": [PACK]}
        body = {"code": 0, "message": "SUCCEED", "request_id": "r2", "data": data}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/account/costs", costs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with ka.KlingClient(access_key="ak", secret_key="sk", base_url=url) as client:
            [pack] = await client.account_costs()
    finally:
        await runner.cleanup()
    assert pack.name == PACK["resource_pack_name"]
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 0.98
