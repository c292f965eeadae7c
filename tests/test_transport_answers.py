"""API answers are read with a size bound: a server streaming an endless answer over a real
socket costs the client at most ``max_answer_bytes + 1`` bytes, and the connection is closed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

import kling_async as ka
from kling_async._http._auth import ApiKeyAuth
from kling_async._http._transport import MAX_ANSWER_BYTES, Transport

from .hostile_server import HostileServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

LIMIT = 1024 * 1024  # bytes: the test's cap, far below the 64 MiB the server would send


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as s:
        yield s


@pytest.fixture
async def transport(server: HostileServer) -> AsyncIterator[Transport]:
    async with aiohttp.ClientSession() as session:
        yield Transport(session, server.url, ApiKeyAuth("k"), max_answer_bytes=LIMIT)


@pytest.mark.parametrize("declared", ["0", "1"])
async def test_an_oversized_answer_is_a_response_format_error(
    server: HostileServer, transport: Transport, declared: str
) -> None:
    """An answer over max_answer_bytes (chunked or with a Content-Length) raises
    ResponseFormatError naming the limit, and the client hangs up long before the end."""
    with pytest.raises(ka.ResponseFormatError, match=f"over the {LIMIT}-byte limit"):
        await transport.request("POST", "/huge", params={"declared": declared})
    await server.hung_up.wait()
    assert server.sent < server.huge_bytes // 4


async def test_an_answer_at_the_limit_is_read() -> None:
    """An answer of exactly max_answer_bytes is read whole (the limit is inclusive)."""
    async with HostileServer(huge_bytes=LIMIT) as server, aiohttp.ClientSession() as session:
        transport = Transport(session, server.url, ApiKeyAuth("k"), max_answer_bytes=LIMIT)
        response = await transport.request("POST", "/huge")
    assert response.status == 200 and len(response.raw) == LIMIT


def test_the_default_limit_is_16_mib() -> None:
    """The documented default cap on an API answer is 16 MiB."""
    assert MAX_ANSWER_BYTES == 16 * 1024 * 1024
