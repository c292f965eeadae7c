"""Shared fixtures: a sandbox server on 127.0.0.1 and a client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import kling_async as ka
from kling_async.testing import Sandbox

from .redis_server import RedisServer

API_KEY = "test-key"
# The SDK's backoff, a millisecond long: no test sleeps through real retry waits (a test of the
# backoff itself builds its own ka.Retry). A server's Retry-After is still honoured.
FAST_RETRY = ka.Retry(base=0.001, cap=0.001, jitter=0.0)


# `run --sandbox` with tasks of 0.05–0.2 s (images) and 0.1–0.4 s (videos) instead of its
# demo's seconds: for runs whose behaviour does not need tasks still running.
QUICK_SANDBOX = ("--sandbox-image-duration", "0.05,0.2", "--sandbox-video-duration", "0.1,0.4")


def fast_retry(attempts: int = 5) -> ka.Retry:
    """:data:`FAST_RETRY` with ``attempts`` tries."""
    return ka.Retry(attempts=attempts, base=0.001, cap=0.001, jitter=0.0)


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp is asyncio-only."""
    return "asyncio"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox with fast tasks (images 0.05–0.2 s, videos 0.1–0.3 s)."""
    async with Sandbox(
        api_keys=(API_KEY,),
        quota={"image": 9, "video": 5},
        image_duration=(0.05, 0.2),
        video_duration=(0.1, 0.3),
        seed=1234,
    ) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[ka.KlingClient]:
    """A client on the sandbox, polling fast, retrying at once."""
    async with ka.KlingClient(
        api_key=API_KEY,
        base_url=sandbox.base_url,
        quota=ka.Quota(image=9, video=5),
        image_poll_interval=0.05,
        video_poll_interval=0.05,
        retry=FAST_RETRY,
    ) as c:
        yield c


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for the session (each test uses its own namespace)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
