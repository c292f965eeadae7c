"""A Starlette endpoint: POST a JSON list of Kling omni-image create bodies, get back a
``text/event-stream`` with one server-sent event per task, sent the moment the task ends.

    pip install 'kling-async[examples]'      # starlette and uvicorn
    export KLING_API_KEY=...                # KLING_BASE_URL is optional
    python examples/sse_server.py [--port 8000]

    curl -N localhost:8000/generate -H 'content-type: application/json' \\
        -d '[{"prompt": "a red mug on a desk"}, {"prompt": "a blue mug", "n": 2}]'

Each body is the create body exactly as Kling's omni-image page prints it
(https://kling.ai/document-api/api/image/3-0-omni/image-omni); images must be URLs or base64
(a web server should not read its own files on a caller's say-so). A bad body is answered
422 with the position and the field of every error, and nothing is sent to Kling. One
``KlingClient`` is opened in the app's lifespan and shared by every request, so all of them
share the account's quota. A browser that goes away cancels its requests not yet created.
"""

import argparse
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import kling_async as ka


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # KlingClient() reads KLING_API_KEY and KLING_BASE_URL from the environment.
    async with ka.KlingClient(quota=ka.Quota(image=9)) as client:
        yield {"client": client}  # available as request.state.client


def parse(bodies: Any, client: ka.KlingClient) -> tuple[list[ka.OmniImageRequest], list[Any]]:
    """The requests, or the errors as ``{"line": i, "error": "field: rule"}``."""
    if not isinstance(bodies, list) or not bodies:
        return [], [{"line": None, "error": "expected a non-empty JSON list of create bodies"}]
    requests, errors = [], []
    for i, body in enumerate(bodies):
        try:
            if not isinstance(body, dict):
                raise TypeError(f"expected a JSON object, got {type(body).__name__}")
            request = ka.OmniImageRequest.from_wire(body)  # raises naming the field and rule
            for k, image in enumerate(request.image_list):
                if isinstance(image, os.PathLike):
                    raise ValueError(f"image_list[{k}]: local paths are refused; give a URL")
            client.check(request)  # what this wire API cannot carry, before anything is sent
        except (TypeError, ValueError) as exc:  # InvalidInputError is a ValueError too
            errors.append({"line": i, "error": str(exc)})
        else:
            requests.append(request)
    return requests, errors


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def outcome_event(outcome: ka.Outcome) -> bytes:
    data: dict[str, Any] = {
        "line": outcome.index,
        "task_id": outcome.task.task_id if outcome.task else None,
        "status": outcome.result.status.value if outcome.result else "not finished",
    }
    if outcome.result is not None:
        images = [*outcome.result.images, *outcome.result.series_images]
        data["urls"] = [image.url for image in images]
    if outcome.error is not None:
        data["error"] = f"{type(outcome.error).__name__}: {outcome.error}"
    return event("outcome", data)


class OutcomeEvents:
    """An ASGI response streaming one ``client.stream()`` as server-sent events.

    The stream runs inside this response's own task group, next to a task that listens for
    the browser going away; either ending cancels the other, so leaving the stream early
    cancels the requests not yet created (the ones created are still followed to their end
    by the client, freeing their quota slots).
    """

    def __init__(self, client: ka.KlingClient, requests: list[ka.OmniImageRequest]) -> None:
        self.client = client
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.until_disconnected, receive, tg.cancel_scope)
            try:
                async with self.client.stream(self.requests) as outcomes:
                    async for outcome in outcomes:
                        await self.send_event(send, outcome_event(outcome))
                await self.send_event(send, event("done", {"count": len(self.requests)}))
            except ka.KlingError as exc:  # e.g. AuthenticationError: the whole run failed
                await self.send_event(send, event("error", {"error": str(exc)}))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            tg.cancel_scope.cancel()

    @staticmethod
    async def send_event(send: Send, body: bytes) -> None:
        await send({"type": "http.response.body", "body": body, "more_body": True})

    @staticmethod
    async def until_disconnected(receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()


async def generate(request: Request) -> Any:
    client: ka.KlingClient = request.state.client
    try:
        bodies = await request.json()
    except ValueError:
        return JSONResponse({"errors": [{"line": None, "error": "not JSON"}]}, status_code=422)
    requests, errors = parse(bodies, client)
    if errors:
        return JSONResponse({"errors": errors}, status_code=422)
    return OutcomeEvents(client, requests)


app = Starlette(routes=[Route("/generate", generate, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
