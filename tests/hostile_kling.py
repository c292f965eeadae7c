"""A small purpose-built Kling-shaped server for what the sandbox cannot answer: a server that
echoes the ``Authorization`` header in its error message, or fails every task with a message of
its choosing (console markup, ANSI escapes, newlines)."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
from aiohttp import web


@attrs.define
class Hostile:
    """What the server saw and how to reach it."""

    base_url: str = ""
    creates: int = 0
    seen_auth: list[str] = attrs.field(factory=list)


def _envelope(data: Any, code: int = 0, message: str = "SUCCEED") -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "req-hostile", "data": data}


@asynccontextmanager
async def hostile_kling(
    *, echo_auth: bool = False, task_status_msg: str = "failed"
) -> AsyncIterator[Hostile]:
    """Serve on 127.0.0.1. With ``echo_auth`` every request is refused (code 1000, HTTP 401)
    with a message quoting its ``Authorization`` header; otherwise every create succeeds and
    every task is ``failed`` with ``task_status_msg``."""
    state = Hostile()
    ids = itertools.count(1)
    tasks: dict[str, str | None] = {}  # task_id → external_task_id
    now_ms = int(time.time() * 1000)

    def task(task_id: str) -> dict[str, Any]:
        return {
            "task_id": task_id,
            "task_status": "failed",
            "task_status_msg": task_status_msg,
            "task_info": {"external_task_id": tasks.get(task_id)},
            "created_at": now_ms,
            "updated_at": now_ms,
        }

    @web.middleware
    async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        state.seen_auth.append(header)
        if echo_auth:
            body = _envelope(None, code=1000, message=f"bad auth header: {header}")
            return web.json_response(body, status=401)
        return await handler(request)

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        state.creates += 1
        task_id = f"hostile-{next(ids)}"
        tasks[task_id] = body.get("external_task_id")
        answer = {"task_id": task_id, "task_status": "submitted", "created_at": now_ms}
        return web.json_response(_envelope(answer))

    async def query(request: web.Request) -> web.Response:
        return web.json_response(_envelope(task(request.match_info["task_id"])))

    async def listing(request: web.Request) -> web.Response:
        return web.json_response(_envelope([task(t) for t in tasks]))

    app = web.Application(middlewares=[refuse])
    for path in ("/v1/images/omni-image", "/v1/videos/omni-video"):
        app.router.add_post(path, create)
        app.router.add_get(path, listing)
        app.router.add_get(path + "/{task_id}", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base_url = "http://127.0.0.1:{}".format(*runner.addresses[0][1:2])
    try:
        yield state
    finally:
        await runner.cleanup()
