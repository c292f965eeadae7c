"""Headless Chromium driven over the DevTools protocol (CDP), for the tests that check what a
browser makes of a page: Debian's ``chromium`` (``.ci/run`` installs it), no downloaded browser,
no driver library. ``open_page`` starts a fresh browser with a throwaway profile, opens one
URL, and hands back a :class:`Page` to evaluate JavaScript in and take screenshots of.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--window-size=1280,1000",
    "--remote-debugging-port=0",
)


def chromium_path() -> str:
    """The Chromium binary; skips the test when there is none (``.ci/run`` installs it and
    sets ``KLING_ASYNC_REQUIRE_CHROMIUM`` so that CI fails instead)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("KLING_ASYNC_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required (KLING_ASYNC_REQUIRE_CHROMIUM) but not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


class Page:
    """One browser tab, attached through a flat CDP session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session_id: str) -> None:
        self._ws = ws
        self._session = session_id
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await _call(self._ws, self._ids, method, params, self._session)

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises awaited)."""
        answer = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in answer:
            raise AssertionError(f"page script failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        answer = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(answer["data"])


async def _call(
    ws: aiohttp.ClientWebSocketResponse,
    ids: itertools.count[int],
    method: str,
    params: dict[str, Any],
    session: str | None = None,
) -> dict[str, Any]:
    message_id = next(ids)
    message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
    if session is not None:
        message["sessionId"] = session
    await ws.send_str(json.dumps(message))
    async for frame in ws:
        data = json.loads(frame.data)
        if data.get("id") == message_id:
            if "error" in data:
                raise AssertionError(f"CDP {method}: {data['error']}")
            return dict(data["result"])
    raise AssertionError("the browser closed the DevTools connection")


@asynccontextmanager
async def _cancelled_at_exit(task: asyncio.Future[bytes]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def open_page(url: str) -> AsyncIterator[Page]:
    """A headless Chromium showing ``url``, its load event fired."""
    binary = chromium_path()
    with tempfile.TemporaryDirectory(prefix="ka-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stderr is not None
            browser_url = None
            while browser_url is None:
                line = (await process.stderr.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError("chromium exited before opening its DevTools port")
                match = re.search(r"DevTools listening on (ws://\S+)", line)
                browser_url = match[1] if match else None
            drain = asyncio.ensure_future(process.stderr.read())  # never let the pipe fill
            async with (
                _cancelled_at_exit(drain),
                aiohttp.ClientSession() as http,
                http.ws_connect(browser_url, max_msg_size=0) as ws,
            ):
                ids = itertools.count(1)
                target = await _call(ws, ids, "Target.createTarget", {"url": "about:blank"})
                attached = await _call(
                    ws,
                    ids,
                    "Target.attachToTarget",
                    {"targetId": target["targetId"], "flatten": True},
                )
                page = Page(ws, attached["sessionId"])
                await page.call("Page.navigate", url=url)
                await page.evaluate(
                    "document.readyState === 'complete' || new Promise("
                    "r => window.addEventListener('load', () => r(true)))"
                )
                yield page
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


# [readyState, duration, videoWidth, videoHeight, error] of every <video>, once each has a
# decoded frame (loadeddata) or failed; no timers: it waits on the elements' own events.
VIDEO_STATE_JS = """
Promise.all([...document.querySelectorAll('video')].map(v => new Promise(resolve => {
  const done = () => resolve([v.readyState, v.duration, v.videoWidth, v.videoHeight,
                              v.error ? v.error.message || String(v.error.code) : null]);
  if (v.readyState >= 2 || v.error) { done(); return; }
  v.addEventListener('loadeddata', done, {once: true});
  v.addEventListener('error', done, {once: true});
  v.preload = 'auto';
})))
"""
