"""The provider API seam: traits instead of codec flags, polling strategies chosen from them,
and the Modellix path fallback inside one create (against the sandbox over sockets)."""

from __future__ import annotations

from typing import Literal

import pytest

import kling_async as ka
from kling_async._engine._polling import BatchQuery, BudgetedSingles, ListPages, strategies
from kling_async._engine._stats import Counters
from kling_async._http._transport import Transport
from kling_async._models import TaskResult
from kling_async._providers import traits_for
from kling_async._providers._api import ProviderAPI
from kling_async._providers.kling import KlingCodec
from kling_async._providers.kling_new import KlingNewCodec
from kling_async._providers.modellix import ModellixCodec
from kling_async.testing import Sandbox

from .conftest import API_KEY

_POLICY = (
    "supports_list_query",
    "supports_external_lookup",
    "supports_callbacks",
    "supports_jwt",
    "api_key_env",
    "base_url_env",
    "default_base_url",
    "default_requests_per_minute",
    "shares_one_pool",
    "reports_units",
    "pool_name",
    "pool_capacity",
    "batch_query_size",
    "list_page_size",
    "account_costs_interval",
)


@pytest.mark.parametrize("codec", [KlingCodec(), KlingNewCodec(), ModellixCodec()])
def test_codecs_hold_no_policy(codec: object) -> None:
    """A codec encodes and decodes only: credentials, defaults, pools and capabilities are
    its traits'."""
    assert [name for name in _POLICY if hasattr(codec, name)] == []


def test_traits_name_and_size_the_pools() -> None:
    """Kling counts a pool per model and kind (``Quota.capacity``); Modellix one team pool
    (``Quota.team``) that a request larger than it runs in alone."""
    quota = ka.Quota(image=7, video=4, team=2)
    kling, modellix = traits_for("kling"), traits_for("modellix")
    assert kling.pool_name("kling-v3-omni", "video") == "kling-v3-omni:video"
    assert kling.pool_capacity(quota, "kling-v3-omni", "video") == 4
    assert not kling.shares_one_pool
    assert modellix.pool_name("kling-v3-omni", "video") == "modellix:team"
    assert modellix.pool_capacity(quota, "kling-v3-omni", "image") == 2
    assert modellix.shares_one_pool


class _Host:
    async def check(self, tracked: object) -> TaskResult | None:
        return None

    async def observe(self, tracked: object, result: TaskResult) -> None:
        return None

    def checked(self, tracked: object, result: TaskResult | None) -> None:
        return None


def _never_open() -> Transport:
    raise RuntimeError("not open")


@pytest.mark.parametrize(
    ("provider", "standard", "image", "video"),
    [
        ("kling", "legacy", ListPages, ListPages),
        ("kling", "new", ListPages, BatchQuery),
        ("modellix", "legacy", BudgetedSingles, BudgetedSingles),
    ],
)
def test_each_kind_polls_as_its_traits_allow(
    provider: str, standard: Literal["legacy", "new"], image: type, video: type
) -> None:
    """List pages where there is a list query, the unified batch query for the new standard's
    videos, budgeted single queries where there is no list query (Modellix)."""
    api = ProviderAPI.connect(
        provider,
        submit_path="async",
        api_standard=standard,
        transport=_never_open,
        stats=Counters(),
        max_retries=1,
        rate_limit=None,
    )
    chosen = strategies(api, _Host(), Counters())
    assert (type(chosen["image"]), type(chosen["video"])) == (image, video)
    assert chosen["image"].per_task is (image is BudgetedSingles)


@pytest.mark.anyio
async def test_the_path_fallback_is_part_of_one_create_attempt() -> None:
    """With one attempt allowed and only Modellix's plain path served, a create refused with
    404 on the /async path is sent once on the plain path and succeeds; the next create goes
    straight to the plain path."""
    async with Sandbox(
        api_keys=(API_KEY,), image_duration=0.05, modellix_submit_paths=("plain",), seed=3
    ) as sb:
        client = ka.KlingClient(
            api_key=API_KEY,
            provider="modellix",
            base_url=sb.modellix_base_url,
            image_poll_interval=0.05,
            requests_per_minute=60_000,
            max_retries=1,
        )
        request = ka.OmniImageRequest(prompt="mug", model_name="kling-v3-omni", aspect_ratio="1:1")
        async with client:
            first = await client.run_all([request])
            before = client.stats()
            second = await client.run_all([request])
            after = client.stats()
        assert all(o.ok for o in first + second), [o.error for o in first + second]
        assert sb.stats().creates == 2

        def posts(stats: ka.ClientStats) -> int:
            return stats.requests_sent - stats.queries - stats.list_queries

        assert (posts(before), posts(after) - posts(before)) == (2, 1)
