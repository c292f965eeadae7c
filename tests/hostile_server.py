"""A small purpose-built aiohttp server for answers the sandbox cannot give: an endless API
answer and a result file trickled a byte at a time, over a real socket on 127.0.0.1.

It records what it sent and sets an event when the client hangs up, so a test can wait on
the hang-up instead of on a clock.
"""

from __future__ import annotations

import asyncio
import io
from types import TracebackType
from typing import Self

from aiohttp import web
from PIL import Image

CHUNK = 64 * 1024


def png_bytes() -> bytes:
    """A small real PNG (what a result file holds)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


class HostileServer:
    """``GET|POST /huge`` streams ``huge_bytes`` of a JSON string in 64 KiB chunks (with a
    ``Content-Length`` when ``?declared=1``); ``GET /trickle.png`` sends a PNG one byte every
    ``trickle_interval`` seconds, or at once while :attr:`fast` is set."""

    def __init__(self, *, huge_bytes: int = 64 * 1024 * 1024, trickle_interval: float = 1.0):
        self.huge_bytes = huge_bytes
        self.trickle_interval = trickle_interval
        self.fast = False
        self.sent = 0  # bytes of the last /huge body written
        self.hung_up = asyncio.Event()  # the client closed the connection mid-body
        self.trickle_started = asyncio.Event()
        self.trickles = 0  # /trickle.png requests answered slowly
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/huge", self._huge)
        app.router.add_get("/trickle.png", self._trickle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if request.query.get("declared") == "1":
            response.content_length = self.huge_bytes
        await response.prepare(request)
        self.sent = 0
        chunk = b'"' + b"x" * (CHUNK - 1)
        try:
            while self.sent < self.huge_bytes:
                await response.write(chunk)
                self.sent += len(chunk)
                await asyncio.sleep(0)
        except (ConnectionError, asyncio.CancelledError):
            self.hung_up.set()
            raise
        return response

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        body = png_bytes()
        if self.fast:
            return web.Response(body=body, content_type="image/png")
        self.trickles += 1
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = len(body)
        await response.prepare(request)
        self.trickle_started.set()
        try:
            for i in range(len(body)):
                await response.write(body[i : i + 1])
                await asyncio.sleep(self.trickle_interval)
        except (ConnectionError, asyncio.CancelledError):
            self.hung_up.set()
            raise
        return response
