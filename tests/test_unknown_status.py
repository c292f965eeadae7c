"""A task status no documentation names ends the task with UnknownStatusError, at once, instead
of being polled forever (a tiny server on a real socket answers the undocumented status)."""

from __future__ import annotations

import time

import aiohttp.web
import anyio
import pytest

import kling_async as ka

pytestmark = pytest.mark.anyio


def _task(task_id: str, status: str) -> dict[str, object]:
    now = int(time.time() * 1000)
    return {
        "task_id": task_id,
        "task_status": status,
        "task_info": {"external_task_id": "odd-1"},
        "created_at": now,
        "updated_at": now,
    }


async def test_an_undocumented_status_ends_the_outcome() -> None:
    """The stream's outcome carries UnknownStatusError naming the status and the task, its
    slots are counted free again, and it took one query (no retries of the same answer)."""
    queries = 0

    async def create(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(
            {"code": 0, "message": "ok", "request_id": "r", "data": _task("t-1", "submitted")}
        )

    async def query(request: aiohttp.web.Request) -> aiohttp.web.Response:
        nonlocal queries
        queries += 1
        data = _task("t-1", "under_review")
        return aiohttp.web.json_response(
            {"code": 0, "message": "ok", "request_id": "r", "data": data}
        )

    app = aiohttp.web.Application()
    app.add_routes(
        [
            aiohttp.web.post("/v1/images/omni-image", create),
            aiohttp.web.get("/v1/images/omni-image/{task_id}", query),
        ]
    )
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ka.KlingClient(
            api_key="k", base_url=f"http://127.0.0.1:{port}", image_poll_interval=0.05
        ) as client:
            with anyio.fail_after(10):
                (outcome,) = await client.run_all([ka.OmniImageRequest(prompt="x", n=2)])
            assert client.pool("kling-image-o1", "image").in_use == 0
    finally:
        await runner.cleanup()
    assert isinstance(outcome.error, ka.UnknownStatusError)
    assert outcome.error.status == "under_review" and outcome.error.task_id == "t-1"
    assert "under_review" in str(outcome.error) and "t-1" in str(outcome.error)
    assert queries == 1
